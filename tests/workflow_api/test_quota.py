"""The storage quota covers everything stored: uploads, job outputs and logs, on real servers."""

from __future__ import annotations

import hashlib
import io
import os
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from data_sidecar import run_push_out
from provisioner.tokens.signing_key import SigningKey
from workflow_api.storage import base as keys
from workflow_contracts.manifest import JobManifest, OutputTarget
from workflow_testkit.workflow_api import RunningApi, execute, start_api, upload, wait_for_job

MiB = 1024**2
ApiFactory = Callable[..., RunningApi]

WRITER = """\
import os, sys
outputs = os.environ["WORKFLOW_OUTPUTS_DIR"]
with open(os.path.join(outputs, "blob"), "wb") as blob:
    blob.write(os.urandom(int(os.environ["INPUT_SIZE"])))
with open(os.path.join(outputs, "note"), "w") as note:
    note.write("written by the writer")
sys.stdout.write("log line\\n" * int(os.environ.get("INPUT_LOG_LINES", "1")))
"""


@pytest.fixture
def writer_assets(tmp_path: Path) -> Path:
    """An asset whose worker writes an output `blob` of `size` random bytes and a small `note`."""
    assets = tmp_path / "assets"
    assets.mkdir()
    script = assets / "writer.py"  # inside the catalog: the sandbox shows it read-only
    script.write_text(WRITER)
    (assets / "writer.yaml").write_text(
        "id: writer\ntitle: Writer\nexecution: {image: x}\n"
        f"local: {{command: [{sys.executable}, {script}]}}\n"
        "inputs:\n"
        "  - {id: size, kind: literal, type: integer}\n"
        "  - {id: log_lines, kind: literal, type: integer, default: 1, required: false}\n"
        "outputs: [{id: blob}, {id: note}]\n"
    )
    return assets


def _writer_api(api_factory: ApiFactory, assets: Path, **settings: Any) -> RunningApi:
    return api_factory(assets_dir=assets, grants=("writer",), **settings)


def _quota(client: httpx.Client) -> dict[str, int]:
    document: dict[str, int] = client.get("/quota").raise_for_status().json()
    return document


def _stored_of_jobs(api: RunningApi) -> int:
    return sum(job.stored_bytes for job in _jobs(api))


def _jobs(api: RunningApi) -> list[Any]:
    from sqlmodel import Session, select  # noqa: PLC0415

    from workflow_api.db import Job  # noqa: PLC0415

    with Session(api.services.engine) as session:
        return list(session.exec(select(Job)))


def _download(client: httpx.Client, job_id: str, output_id: str) -> bytes:
    response = client.get(f"/jobs/{job_id}/results/{output_id}", follow_redirects=True)
    response.raise_for_status()
    return response.content


def test_outputs_over_the_quota_fail_the_job_and_leave_other_data_alone(
    api_factory: ApiFactory, writer_assets: Path
) -> None:
    api = _writer_api(api_factory, writer_assets, storage_quota=8 * MiB)
    client = api.consumer
    earlier_upload = os.urandom(2 * MiB)
    uploaded = upload(client, earlier_upload)
    fine = wait_for_job(client, execute(client, "writer", {"size": MiB}))
    assert fine["status"] == "successful", fine
    fine_blob = _download(client, fine["jobID"], "blob")
    before = _quota(client)

    job_id = execute(client, "writer", {"size": 6 * MiB})
    info = wait_for_job(client, job_id)

    assert info["status"] == "failed"
    free = before["free"]
    assert info["message"].startswith("outputs need 6 MiB but only ")
    assert info["message"].endswith(" of the 8 MiB quota is free")
    assert f"{free / MiB:.1f}".removesuffix(".0") in info["message"]
    after = _quota(client)
    assert after["stored"] <= after["quota"]
    assert after["reserved"] == 0
    outputs = api.settings.data_dir / "storage" / "jobs" / job_id / "outputs"
    assert not outputs.exists() or not any(outputs.iterdir()), "nothing half-stored"
    # Only its log was kept and counted.
    log_size = api.services.store.size(keys.log_key(job_id)) or 0
    assert after["stored"] == before["stored"] + log_size
    # Earlier data is untouched and still downloadable.
    stored_upload = api.settings.data_dir / "storage" / "uploads" / uploaded["id"]
    assert hashlib.sha256(stored_upload.read_bytes()).hexdigest() == uploaded["sha256"]
    assert client.get(f"/uploads/{uploaded['id']}").json()["size"] == 2 * MiB
    assert _download(client, fine["jobID"], "blob") == fine_blob
    assert client.get(f"/jobs/{job_id}/results").status_code == 500  # failed: no results


def test_outputs_within_the_quota_are_counted_and_deleting_the_job_frees_them(
    api_factory: ApiFactory, writer_assets: Path
) -> None:
    api = _writer_api(api_factory, writer_assets, storage_quota=8 * MiB)
    client = api.consumer
    empty = _quota(client)
    assert empty == {"quota": 8 * MiB, "stored": 0, "reserved": 0, "free": 8 * MiB}

    info = wait_for_job(client, execute(client, "writer", {"size": 3 * MiB}))

    assert info["status"] == "successful", info
    store = api.services.store
    job_id = info["jobID"]
    expected = sum(
        store.size(key) or 0
        for key in (
            keys.output_key(job_id, "blob"),
            keys.output_key(job_id, "note"),
            keys.log_key(job_id),
        )
    )
    assert expected > 3 * MiB
    assert _quota(client)["stored"] == expected == _stored_of_jobs(api)

    client.delete(f"/jobs/{job_id}").raise_for_status()
    assert _quota(client)["stored"] == 0


def test_parallel_jobs_that_filled_one_and_a_half_quotas_now_stop_at_the_quota(
    api_factory: ApiFactory, writer_assets: Path
) -> None:
    """The issue's scenario: four jobs of 3 MiB each for an 8 MiB quota used to store 12 MiB."""
    api = _writer_api(api_factory, writer_assets, storage_quota=8 * MiB, max_running_jobs=4)
    client = api.consumer
    job_ids = [execute(client, "writer", {"size": 3 * MiB}) for _ in range(4)]
    finished = [wait_for_job(client, job_id) for job_id in job_ids]

    statuses = sorted(info["status"] for info in finished)
    assert statuses == ["failed", "failed", "successful", "successful"], finished
    for info in finished:
        if info["status"] == "failed":
            assert "of the 8 MiB quota is free" in info["message"]
    usage = _quota(client)
    assert usage["stored"] <= 8 * MiB
    on_disk = sum(
        path.stat().st_size
        for path in (api.settings.data_dir / "storage" / "jobs").rglob("*")
        if path.is_file()
    )
    assert on_disk == usage["stored"], "the ledger counts exactly what is stored"
    assert on_disk <= 1.0 * api.settings.storage_quota


def test_the_ledger_survives_a_restart_and_removal_after_it_frees(
    tmp_path: Path, signing_key: SigningKey, writer_assets: Path
) -> None:
    settings = {"assets_dir": writer_assets, "storage_quota": 8 * MiB}
    api = start_api(tmp_path / "api", signing_key, grants=("writer",), **settings)
    try:
        client = api.consumer
        upload(client, os.urandom(MiB))
        job_id = wait_for_job(client, execute(client, "writer", {"size": 2 * MiB}))["jobID"]
        before = _quota(client)
    finally:
        api.stop()

    api = start_api(tmp_path / "api", signing_key, **settings)
    try:
        client = api.consumer
        assert _quota(client) == before
        refused = wait_for_job(client, execute(client, "writer", {"size": 5 * MiB}))
        assert refused["status"] == "failed"
        assert "quota is free" in refused["message"]
        client.delete(f"/jobs/{job_id}").raise_for_status()
        client.delete(f"/jobs/{refused['jobID']}").raise_for_status()
        assert _quota(client)["stored"] == MiB
    finally:
        api.stop()


def test_a_local_jobs_log_is_bounded_and_counted(
    api_factory: ApiFactory, writer_assets: Path
) -> None:
    api = _writer_api(api_factory, writer_assets, max_job_log_size=64 * 1024)
    client = api.consumer
    info = wait_for_job(client, execute(client, "writer", {"size": 10, "log_lines": 100_000}))
    assert info["status"] == "successful", info

    log = client.get(f"/jobs/{info['jobID']}/logs", follow_redirects=True).content
    assert len(log) <= 64 * 1024
    assert log.startswith(b"[runner] the log had ")
    assert log.endswith(b"log line\n")
    assert _quota(client)["stored"] == _stored_of_jobs(api) >= len(log)


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_an_archive_expanding_beyond_the_free_quota_is_refused_at_stage_in(
    api_factory: ApiFactory,
) -> None:
    api = api_factory(storage_quota=8 * MiB)
    client = api.consumer
    document = upload(client, b"a document\n")
    dataset = upload(client, _zip({"zeros.bin": bytes(9 * MiB)}))  # ~9 KiB packed
    job_id = execute(
        client,
        "input-dummy",
        {"document": {"href": document["href"]}, "dataset": {"href": dataset["href"]}},
    )
    info = wait_for_job(client, job_id)

    assert info["status"] == "failed"
    assert "stage-in failed: input 'dataset'" in info["message"]
    assert "free part of the 8 MiB storage quota" in info["message"]
    assert _quota(client)["stored"] <= 8 * MiB


def test_the_signed_put_route_refuses_beyond_the_quota_with_the_reason(
    api_factory: ApiFactory,
) -> None:
    """What a job container's push-out meets on the filesystem store: the route checks itself."""
    api = api_factory(storage_quota=4 * MiB)
    client = api.consumer
    upload(client, os.urandom(3 * MiB))
    job_id = execute(client, "echo", {"message": "hi", "pause": 30})
    wait_for_job(client, job_id, {"running"})
    store = api.services.store
    from datetime import timedelta  # noqa: PLC0415

    url = store.signed_url("PUT", keys.output_key(job_id, "echo"), timedelta(minutes=5))

    declared = httpx.put(url, content=os.urandom(2 * MiB))
    streamed = httpx.put(url, content=iter([os.urandom(MiB)] * 2))

    for response in (declared, streamed):
        assert response.status_code == 413, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["detail"].startswith("output 'echo' needs ")
        assert response.json()["detail"].endswith("of the 4 MiB quota is free")
    assert store.size(keys.output_key(job_id, "echo")) is None
    assert _quota(client) == {"quota": 4 * MiB, "stored": 3 * MiB, "reserved": 0, "free": MiB}
    assert httpx.put(url, content=b"fits").status_code == 200
    assert _quota(client)["stored"] == 3 * MiB + 4

    # A container's push-out (no admission hook, no budget) reads the route's reason.
    workspace = api.settings.data_dir / "push-out-test"
    (workspace / "outputs").mkdir(parents=True)
    (workspace / "outputs" / "echo").write_bytes(os.urandom(2 * MiB))
    manifest = JobManifest(
        job_id=job_id,
        outputs=[OutputTarget(id="echo", kind="file", url=url)],
        log_url=store.signed_url("PUT", keys.log_key(job_id), timedelta(minutes=5)),
    )
    outcome = run_push_out(manifest, workspace, None)
    assert outcome.report.refused is not None
    assert outcome.report.refused.startswith("output 'echo' needs 2 MiB but only ")

    unknown = store.signed_url("PUT", keys.output_key("no-such-job", "x"), timedelta(minutes=5))
    assert httpx.put(unknown, content=b"x").status_code == 404
    client.delete(f"/jobs/{job_id}").raise_for_status()


@pytest.mark.s3
def test_outputs_over_the_quota_are_refused_on_s3_too(
    api_factory: ApiFactory,
    writer_assets: Path,
    s3_endpoint: str,
    s3_client: Any,
    s3_bucket_name: str,
) -> None:
    from workflow_testkit.servers.s3 import S3_ACCESS_KEY, S3_SECRET_KEY  # noqa: PLC0415

    api = _writer_api(
        api_factory,
        writer_assets,
        storage_quota=8 * MiB,
        storage="s3",
        s3_endpoint=s3_endpoint,
        s3_access_key=S3_ACCESS_KEY,
        s3_secret_key=S3_SECRET_KEY,
        s3_bucket=s3_bucket_name,
        s3_secure=False,
    )
    client = api.consumer
    fine = wait_for_job(client, execute(client, "writer", {"size": 3 * MiB}))
    assert fine["status"] == "successful", fine
    refused = wait_for_job(client, execute(client, "writer", {"size": 6 * MiB}))

    assert refused["status"] == "failed"
    assert "of the 8 MiB quota is free" in refused["message"]
    names = {o.object_name for o in s3_client.list_objects(s3_bucket_name, recursive=True)}
    assert not any(name.startswith(f"jobs/{refused['jobID']}/outputs/") for name in names)
    in_bucket = sum(
        o.size for o in s3_client.list_objects(s3_bucket_name, prefix="jobs/", recursive=True)
    )
    usage = _quota(client)
    assert in_bucket == usage["stored"] <= 8 * MiB
    client.delete(f"/jobs/{fine['jobID']}").raise_for_status()
    assert _quota(client)["stored"] == api.services.store.size(keys.log_key(refused["jobID"]))
