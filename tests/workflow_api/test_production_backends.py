"""The same consumer cycle on the production backends: a real PostgreSQL and an S3 server."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from minio import Minio

from provisioner.tokens.signing_key import SigningKey
from workflow_testkit.servers.s3 import S3_ACCESS_KEY, S3_SECRET_KEY
from workflow_testkit.workflow_api import RunningApi, execute, start_api, upload, wait_for_job


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _run_input_dummy(api: RunningApi) -> str:
    client = api.consumer
    document = upload(client, b"from a real backend\n")
    dataset = upload(client, _zip({"one.txt": b"1", "dir/two.txt": b"2"}))
    job_id = execute(
        client,
        "input-dummy",
        {
            "document": {"href": document["href"]},
            "dataset": {"href": dataset["href"]},
            "settings": "GREETING=pg\nREPEAT=1",
        },
    )
    info = wait_for_job(client, job_id)
    assert info["status"] == "successful", info
    results = client.get(f"/jobs/{job_id}/results").json()
    listing = client.get(results["listing"]["href"], follow_redirects=True)
    assert "two.txt" in listing.text
    return job_id


@pytest.mark.postgres
def test_jobs_persist_in_postgresql_across_a_restart(
    tmp_path: Path, signing_key: SigningKey, fresh_postgres_url: str
) -> None:
    settings = {"database_url": fresh_postgres_url, "max_running_jobs": 1}
    api = start_api(tmp_path / "api", signing_key, grants=("echo", "input-dummy"), **settings)
    try:
        finished = _run_input_dummy(api)
        blocker = execute(api.consumer, "echo", {"message": "b", "pause": 30})
        queued = execute(api.consumer, "echo", {"message": "queued"})
        wait_for_job(api.consumer, blocker, {"running"})
    finally:
        api.stop()

    api = start_api(tmp_path / "api", signing_key, **settings)
    try:
        client = api.consumer
        assert client.get(f"/jobs/{finished}").json()["status"] == "successful"
        assert wait_for_job(client, blocker)["status"] == "failed"
        assert wait_for_job(client, queued)["status"] == "successful"
        statuses = {job["status"] for job in client.get("/jobs").json()["jobs"]}
        assert statuses == {"successful", "failed"}
    finally:
        api.stop()


@pytest.mark.s3
def test_job_cycle_on_s3_storage_stays_in_the_consumers_bucket(
    api_factory: Callable[..., RunningApi],
    s3_endpoint: str,
    s3_client: Minio,
    s3_bucket_name: str,
) -> None:
    api = api_factory(
        storage="s3",
        s3_endpoint=s3_endpoint,
        s3_access_key=S3_ACCESS_KEY,
        s3_secret_key=S3_SECRET_KEY,
        s3_bucket=s3_bucket_name,
        s3_prefix="consumer-a/",
        s3_secure=False,
    )
    job_id = _run_input_dummy(api)
    keys = {o.object_name for o in s3_client.list_objects(s3_bucket_name, recursive=True)}
    assert all(key.startswith("consumer-a/") for key in keys), keys
    assert f"consumer-a/jobs/{job_id}/outputs/transformed" in keys
    assert f"consumer-a/jobs/{job_id}/log.txt" in keys
    assert not (api.settings.data_dir / "storage").exists()

    redirect = api.consumer.get(f"/jobs/{job_id}/results/listing")
    assert redirect.status_code == 307
    assert redirect.headers["location"].startswith(f"http://{s3_endpoint}/{s3_bucket_name}/")
    assert "X-Amz-Signature" in redirect.headers["location"]

    api.consumer.delete(f"/jobs/{job_id}").raise_for_status()
    left = {o.object_name for o in s3_client.list_objects(s3_bucket_name, recursive=True)}
    assert not any(f"jobs/{job_id}/" in key for key in left)
    assert httpx.get(redirect.headers["location"]).status_code == 404
