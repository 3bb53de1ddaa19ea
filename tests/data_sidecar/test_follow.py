"""`data-sidecar follow`: progress relayed while the worker runs, push-out on SIGTERM (a real
subprocess against the real HTTP server, signalled as the kubelet signals a native sidecar)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from data_sidecar.follow import follow, latest_progress_line
from tests.data_sidecar.storage_server import Answer, FakeStorage
from tests.data_sidecar.test_cli import FAST_RETRIES, write_manifest
from workflow_contracts.manifest import JobManifest


def _wait_for(predicate: object, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_latest_progress_line_skips_partial_and_invalid_lines(tmp_path: Path) -> None:
    progress = tmp_path / ".progress"
    assert latest_progress_line(progress) is None
    progress.write_text("10 starting\n55 halfway\nnot progress\n60 unfinis")
    assert latest_progress_line(progress) == "55 halfway"
    progress.write_text("x" * 10_000 + "\n70 late\n")
    assert latest_progress_line(progress) == "70 late"


def test_follow_relays_changes_only_and_pushes_out_when_stopped(
    storage: FakeStorage, workspace: Path
) -> None:
    (workspace / "outputs").mkdir()
    progress = workspace / ".progress"
    progress.write_text("5 starting\n")
    manifest = JobManifest(
        job_id="job-follow",
        outputs=[{"id": "result", "kind": "file", "url": storage.url("/out/result")}],
        log_url=storage.url("/log"),
        report_url=storage.url("/report"),
        progress_url=storage.url("/progress"),
    )
    stop = threading.Event()
    done: list[object] = []
    thread = threading.Thread(
        target=lambda: done.append(follow(manifest, workspace, progress, stop, interval=0.05))
    )
    thread.start()
    _wait_for(lambda: storage.objects.get("/progress") == b"5 starting")
    time.sleep(0.2)
    assert storage.count("PUT", "/progress") == 1  # unchanged: not sent again
    with progress.open("a") as handle:
        handle.write("80 nearly\n")
    (workspace / "outputs" / "result").write_text("42")
    _wait_for(lambda: storage.objects.get("/progress") == b"80 nearly")
    assert "/report" not in storage.objects

    stop.set()
    thread.join(timeout=15)
    (outcome,) = done
    assert outcome.succeeded  # type: ignore[attr-defined]
    assert storage.objects["/out/result"] == b"42"
    assert json.loads(storage.objects["/report"])["pushed"]["result"]["size"] == 2
    assert "/log" not in storage.objects  # the runner keeps the log, not the sidecar


def test_a_failing_progress_url_does_not_hurt_the_job(
    storage: FakeStorage, workspace: Path
) -> None:
    storage.always["/progress"] = Answer(status=503)
    progress = workspace / ".progress"
    progress.write_text("5 starting\n")
    manifest = JobManifest(
        job_id="job-follow",
        log_url=storage.url("/log"),
        report_url=storage.url("/report"),
        progress_url=storage.url("/progress"),
    )
    stop = threading.Event()
    stop.set()
    outcome = follow(manifest, workspace, progress, stop, interval=0.05)
    assert outcome.succeeded
    assert storage.count("PUT", "/progress") == 1  # one attempt, no retries
    assert "/report" in storage.objects


def test_follow_command_pushes_out_on_sigterm_after_it_is_ready(
    storage: FakeStorage, workspace: Path, tmp_path: Path
) -> None:
    (workspace / "outputs").mkdir()
    (workspace / "outputs" / "result").write_text("done")
    (workspace / ".progress").write_text("100 done\n")
    ready = tmp_path / "run" / "ready"
    manifest_file = write_manifest(
        tmp_path / "manifest.json",
        outputs=[{"id": "result", "kind": "file", "url": storage.url("/out/result")}],
        log_url=storage.url("/log"),
        report_url=storage.url("/report"),
        progress_url=storage.url("/progress"),
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DATA_SIDECAR_")}
    environment |= FAST_RETRIES | {
        "DATA_SIDECAR_MANIFEST": str(manifest_file),
        "WORKFLOW_WORKSPACE": str(workspace),
        "DATA_SIDECAR_READY_FILE": str(ready),
        "DATA_SIDECAR_PROGRESS_INTERVAL": "0.05",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "data_sidecar", "follow"],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(ready.exists)
        _wait_for(lambda: storage.objects.get("/progress") == b"100 done")
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert json.loads(stdout)["pushed"]["result"]["size"] == 4
    assert storage.objects["/out/result"] == b"done"
    assert "s3cr3t" not in stderr
