from __future__ import annotations

import hashlib
import io
import json
import os
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from data_sidecar import TransferPolicy, push_out, run_push_out
from data_sidecar.push_out import zip_directory
from tests.data_sidecar.builders import manifest
from tests.data_sidecar.storage_server import Answer, FakeStorage
from workflow_contracts.manifest import PushOutReport


def target(storage: FakeStorage, output_id: str, kind: str = "file") -> dict[str, Any]:
    return {"id": output_id, "kind": kind, "url": storage.url(f"/out/{output_id}")}


def push_manifest(storage: FakeStorage, *outputs: dict[str, Any], report: bool = True) -> Any:
    return manifest(
        outputs=list(outputs),
        log_url=storage.url("/logs/job-1.log"),
        report_url=storage.url("/reports/job-1.json") if report else None,
    )


@pytest.fixture
def outputs(workspace: Path) -> Path:
    path = workspace / "outputs"
    path.mkdir()
    return path


def test_push_out_uploads_files_directories_log_and_report(
    storage: FakeStorage, workspace: Path, outputs: Path, policy: TransferPolicy, tmp_path: Path
) -> None:
    (outputs / "result").write_bytes(b"result bytes" * 100_000)
    transformed = outputs / "transformed"
    (transformed / "checksums" / "deep").mkdir(parents=True)
    (transformed / "empty").mkdir()
    (transformed / "document.upper.txt").write_text("HELLO")
    (transformed / "checksums" / "deep" / "a.sha256").write_text("abc  a\n")
    secret = tmp_path / "secret.txt"
    secret.write_text("must not leave the machine")
    (transformed / "link-out").symlink_to(secret)
    (transformed / "dir-link").symlink_to(tmp_path)
    log_file = tmp_path / "job.log"
    log_file.write_text("line 1\nline 2\n")
    job = push_manifest(
        storage,
        target(storage, "result"),
        target(storage, "transformed", "directory"),
        target(storage, "absent"),
    )

    report = push_out(job, workspace, log_file, policy=policy)

    assert storage.objects["/out/result"] == (outputs / "result").read_bytes()
    bundle = zipfile.ZipFile(io.BytesIO(storage.objects["/out/transformed"]))
    assert sorted(bundle.namelist()) == [
        "checksums/",
        "checksums/deep/",
        "checksums/deep/a.sha256",
        "document.upper.txt",
        "empty/",
    ]
    assert bundle.read("document.upper.txt") == b"HELLO"
    files = [info for info in bundle.infolist() if not info.is_dir()]
    assert all(info.compress_type == zipfile.ZIP_DEFLATED for info in files)
    assert storage.objects["/logs/job-1.log"] == b"line 1\nline 2\n"
    for output_id in ("result", "transformed"):
        uploaded = storage.objects[f"/out/{output_id}"]
        assert report.pushed[output_id].size == len(uploaded)
        assert report.pushed[output_id].sha256 == hashlib.sha256(uploaded).hexdigest()
    assert report.missing == ["absent"]
    assert report.failed == {}
    assert report.log_pushed is True
    stored_report = PushOutReport.model_validate_json(storage.objects["/reports/job-1.json"])
    assert stored_report == report
    puts = [seen for seen in storage.requests if seen.method == "PUT"]
    assert [seen.path for seen in puts] == [
        "/out/result",
        "/out/transformed",
        "/logs/job-1.log",
        "/reports/job-1.json",
    ]
    assert puts[0].headers["Content-Length"] == str(len(storage.objects["/out/result"]))
    assert "Transfer-Encoding" not in puts[0].headers
    assert sorted(p.name for p in workspace.iterdir()) == ["outputs"], "temporary zip left behind"


def test_push_out_continues_after_one_output_fails_for_good(
    storage: FakeStorage, workspace: Path, outputs: Path, policy: TransferPolicy
) -> None:
    (outputs / "first").write_bytes(b"1")
    (outputs / "second").write_bytes(b"2")
    storage.always["/out/first"] = Answer(status=403)
    job = push_manifest(storage, target(storage, "first"), target(storage, "second"))

    outcome = run_push_out(job, workspace, None, policy=policy)

    assert set(outcome.report.failed) == {"first"}
    assert "HTTP 403" in outcome.report.failed["first"]
    assert "s3cr3t" not in outcome.report.failed["first"]
    assert storage.count("PUT", "/out/first") == 1
    assert storage.objects["/out/second"] == b"2"
    assert list(outcome.report.pushed) == ["second"]
    assert outcome.report.log_pushed is False
    assert not outcome.succeeded
    assert json.loads(storage.objects["/reports/job-1.json"])["failed"] == outcome.report.failed


def test_push_out_records_an_output_whose_retries_run_out(
    storage: FakeStorage, workspace: Path, outputs: Path, policy: TransferPolicy
) -> None:
    (outputs / "result").write_bytes(b"x")
    storage.always["/out/result"] = Answer(status=500)
    report = push_out(
        push_manifest(storage, target(storage, "result")), workspace, None, policy=policy
    )
    assert "HTTP 500" in report.failed["result"]
    assert storage.count("PUT", "/out/result") == policy.attempts


def test_a_put_is_retried_and_its_body_sent_again_from_the_start(
    storage: FakeStorage, workspace: Path, outputs: Path, policy: TransferPolicy
) -> None:
    body = os.urandom(3 * 1024 * 1024 + 17)
    (outputs / "result").write_bytes(body)
    storage.script("/out/result", Answer(drop=True), Answer(status=503))
    job = push_manifest(storage, target(storage, "result"))

    outcome = run_push_out(job, workspace, None, policy=policy)

    assert outcome.succeeded
    assert storage.objects["/out/result"] == body
    assert storage.count("PUT", "/out/result") == 3
    assert outcome.report.pushed["result"].sha256 == hashlib.sha256(body).hexdigest()


def test_a_server_that_never_answers_cannot_hang_push_out(
    storage: FakeStorage, workspace: Path, outputs: Path
) -> None:
    (outputs / "result").write_bytes(b"x")
    storage.always["/out/result"] = Answer(delay=5.0)
    policy = TransferPolicy(attempts=2, initial_wait=0.01, max_wait=0.01, read_timeout=0.2)
    job = push_manifest(storage, target(storage, "result"), report=False)

    started = time.monotonic()
    report = push_out(job, workspace, None, policy=policy)

    assert time.monotonic() - started < 3
    assert "ReadTimeout" in report.failed["result"]
    assert storage.count("PUT", "/out/result") == 2


@pytest.mark.parametrize("kind", ["file", "directory"])
def test_outputs_that_are_not_what_they_claim_fail_without_reading(
    storage: FakeStorage,
    workspace: Path,
    outputs: Path,
    policy: TransferPolicy,
    tmp_path: Path,
    kind: str,
) -> None:
    os.mkfifo(outputs / "pipe")
    (tmp_path / "elsewhere").write_text("outside")
    (outputs / "link").symlink_to(tmp_path / "elsewhere")
    (outputs / "other").mkdir() if kind == "file" else (outputs / "other").write_text("file")
    job = push_manifest(
        storage,
        target(storage, "pipe", kind),
        target(storage, "link", kind),
        target(storage, "other", kind),
    )

    report = push_out(job, workspace, None, policy=policy)

    assert sorted(report.failed) == ["link", "other", "pipe"]
    assert report.pushed == {}
    assert not any(seen.path.startswith("/out/") for seen in storage.requests)


def test_missing_log_and_missing_outputs_are_not_failures(
    storage: FakeStorage, workspace: Path, policy: TransferPolicy, tmp_path: Path
) -> None:
    job = push_manifest(storage, target(storage, "result"), target(storage, "listing"))
    outcome = run_push_out(job, workspace, tmp_path / "no-such.log", policy=policy)
    assert outcome.succeeded
    assert outcome.report.missing == ["result", "listing"]
    assert outcome.report.log_pushed is False
    assert "/logs/job-1.log" not in storage.objects
    assert "/reports/job-1.json" in storage.objects


def test_a_failed_log_or_report_upload_is_an_error_of_the_outcome(
    storage: FakeStorage, workspace: Path, policy: TransferPolicy, tmp_path: Path
) -> None:
    log_file = tmp_path / "job.log"
    log_file.write_text("log")
    storage.always["/logs/job-1.log"] = Answer(status=403)
    storage.always["/reports/job-1.json"] = Answer(status=404)

    outcome = run_push_out(push_manifest(storage), workspace, log_file, policy=policy)

    assert outcome.report.log_pushed is False
    assert [error.split(":")[0] for error in outcome.errors] == ["log", "report"]


def test_zip_directory_stores_relative_names_and_skips_special_files(tmp_path: Path) -> None:
    source = tmp_path / "source"
    (source / "a" / "b").mkdir(parents=True)
    (source / "a" / "b" / "c.txt").write_bytes(b"c" * 10_000)
    os.mkfifo(source / "fifo")
    (source / "loop").symlink_to(source)
    old = source / "old.txt"
    old.write_text("from 1970")
    os.utime(old, (0, 0))
    archive = tmp_path / "out.zip"

    zip_directory(source, archive)

    with zipfile.ZipFile(archive) as bundle:
        assert sorted(bundle.namelist()) == ["a/", "a/b/", "a/b/c.txt", "old.txt"]
        assert bundle.read("a/b/c.txt") == b"c" * 10_000
        assert bundle.getinfo("a/b/c.txt").compress_size < 1000
