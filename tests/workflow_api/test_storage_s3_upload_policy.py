"""The S3 store's presigned POST uploads: the policy names one key and bounds the size, and a
real MinIO enforces both (moto does not check policies: those tests are skipped there)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from minio import Minio

from data_sidecar import run_push_out
from data_sidecar.follow import ProgressRelay
from workflow_api.storage.s3 import S3Store
from workflow_contracts.manifest import JobManifest, OutputTarget

pytestmark = pytest.mark.s3

TTL = timedelta(minutes=5)


@pytest.fixture
def store(s3_client: Minio, s3_bucket_name: str) -> S3Store:
    store = S3Store(s3_client, s3_bucket_name, prefix="consumer-a")
    store.prepare()
    return store


def _post(url: str, form: dict[str, str], body: bytes) -> httpx.Response:
    return httpx.post(url, data=form, files={"file": ("blob", body)}, timeout=30)


def test_a_presigned_post_within_its_cap_stores_the_object(store: S3Store) -> None:
    upload = store.signed_upload("jobs/j/outputs/blob", TTL, 1000)
    assert upload.form is not None
    response = _post(upload.url, upload.form, b"x" * 1000)
    assert response.status_code in (200, 201, 204), response.text
    assert store.size("jobs/j/outputs/blob") == 1000


@pytest.mark.usefixtures("s3_checks_signatures")
def test_a_presigned_post_beyond_its_cap_is_refused_and_stores_nothing(store: S3Store) -> None:
    upload = store.signed_upload("jobs/j/outputs/blob", TTL, 1000)
    assert upload.form is not None
    response = _post(upload.url, upload.form, os.urandom(1001))
    assert response.status_code == 400
    assert "EntityTooLarge" in response.text
    assert store.size("jobs/j/outputs/blob") is None


@pytest.mark.usefixtures("s3_checks_signatures")
def test_a_presigned_post_is_for_its_own_key_only(store: S3Store) -> None:
    upload = store.signed_upload("jobs/j/outputs/blob", TTL, 1000)
    assert upload.form is not None
    other = {**upload.form, "key": "consumer-a/uploads/someone-elses"}
    response = _post(upload.url, other, b"x")
    assert response.status_code == 403, response.text
    assert store.size("uploads/someone-elses") is None


@pytest.mark.usefixtures("s3_checks_signatures")
def test_push_out_through_presigned_posts_reads_a_cap_refusal_as_a_quota_refusal(
    store: S3Store, tmp_path: Path
) -> None:
    """What a job container meets on S3: each output may take at most what was free at the
    start; a sidecar that sends more is refused by S3 itself, and says why."""
    workspace = tmp_path / "workspace"
    (workspace / "outputs").mkdir(parents=True)
    (workspace / "outputs" / "small").write_bytes(b"s" * 100)
    (workspace / "outputs" / "big").write_bytes(os.urandom(5000))
    targets = []
    for output_id in ("small", "big"):
        upload = store.signed_upload(f"jobs/j/outputs/{output_id}", TTL, 1000)
        targets.append(OutputTarget(id=output_id, kind="file", url=upload.url, form=upload.form))
    report = store.signed_upload("jobs/j/push-out-report.json", TTL, 64 * 1024)
    manifest = JobManifest(
        job_id="j",
        outputs=targets,
        log_url=store.signed_url("PUT", "jobs/j/log.txt", TTL),
        report_url=report.url,
        report_form=report.form,
    )

    outcome = run_push_out(manifest, workspace, None)

    assert set(outcome.report.pushed) == {"small"}
    assert outcome.report.refused is not None
    assert outcome.report.refused.startswith("the storage refused 5000 bytes")
    assert store.size("jobs/j/outputs/small") == 100
    assert store.size("jobs/j/outputs/big") is None
    assert store.size("jobs/j/push-out-report.json") is not None


def test_progress_is_relayed_through_a_presigned_post(store: S3Store, tmp_path: Path) -> None:
    progress = store.signed_upload("jobs/j/progress.txt", TTL, 1024)
    manifest = JobManifest(
        job_id="j",
        log_url="http://127.0.0.1:9/unused",
        progress_url=progress.url,
        progress_form=progress.form,
    )
    progress_file = tmp_path / ".progress"
    progress_file.write_text("42 halfway\n")
    with httpx.Client(timeout=10) as http:
        ProgressRelay(manifest, progress_file).relay(http)
    assert store.size("jobs/j/progress.txt") == len("42 halfway")
