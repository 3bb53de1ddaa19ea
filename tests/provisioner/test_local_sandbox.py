"""The local deployer's sandbox: a uid per consumer, and `serve`/`dev` never silently unconfined."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from provisioner.deployers.local.sandbox import WORKER_UID_FILE, LocalSandbox
from workflow_testkit.ports import bound_socket
from workflow_testkit.workflow_api import DUMMY_ASSETS


def _consumer_dirs(root: Path, *slugs: str) -> None:
    for slug in slugs:
        (root / slug).mkdir(parents=True)


def test_each_consumer_gets_its_own_worker_uid_kept_across_calls(tmp_path: Path) -> None:
    sandbox = LocalSandbox("bubblewrap", uid_base=300_000, uid_count=2)
    _consumer_dirs(tmp_path, "a", "b", "c")
    a = sandbox.worker_uid(tmp_path, "a")
    b = sandbox.worker_uid(tmp_path, "b")
    assert {a, b} == {300_000, 300_001}
    assert sandbox.worker_uid(tmp_path, "a") == a  # recorded, not derived again
    assert (tmp_path / "a" / WORKER_UID_FILE).read_text().strip() == str(a)
    assert (tmp_path / "a" / WORKER_UID_FILE).stat().st_mode & 0o777 == 0o600
    with pytest.raises(OSError, match="taken"):
        sandbox.worker_uid(tmp_path, "c")
    shutil.rmtree(tmp_path / "a")  # teardown frees it
    assert sandbox.worker_uid(tmp_path, "c") == a


def _provisioner(command: str, tmp_path: Path, **environment: str) -> subprocess.Popen[str]:
    port = bound_socket()
    number = port.getsockname()[1]
    port.close()
    env = {
        "PATH": str(Path(sys.executable).parent),  # no bwrap on it
        "PROVISIONER_DATA_DIR": str(tmp_path / "data"),
        "PROVISIONER_PUBLIC_URL": f"http://127.0.0.1:{number}",
        "PROVISIONER_ASSETS_DIR": str(DUMMY_ASSETS),
        "PROVISIONER_ADMIN_TOKEN": secrets.token_urlsafe(32),
        "PROVISIONER_EDC_ENDPOINT_SECRET": secrets.token_urlsafe(32),
        **environment,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "provisioner", command, "--port", str(number)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _output_until(process: subprocess.Popen[str], text: str) -> str:
    """Read its output until `text` appears (then stop it) or it exits."""
    assert process.stdout is not None
    seen = ""
    try:
        for line in process.stdout:
            seen += line
            if text in line:
                break
    finally:
        process.terminate()
        process.wait(timeout=20)
    return seen


def test_serve_refuses_to_run_workers_unconfined_without_being_told(tmp_path: Path) -> None:
    process = _provisioner("serve", tmp_path)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 2, output
    assert "needs the bwrap program" in output
    assert "PROVISIONER_LOCAL_SANDBOX=none" in output


def test_serve_told_to_run_unconfined_says_so_loudly(tmp_path: Path) -> None:
    process = _provisioner("serve", tmp_path, PROVISIONER_LOCAL_SANDBOX="none")
    output = _output_until(process, "Uvicorn running")
    assert "ERROR" in output and "UNCONFINED" in output, output
    assert "Uvicorn running" in output


def test_dev_without_bwrap_runs_unconfined_and_says_why(tmp_path: Path) -> None:
    process = _provisioner("dev", tmp_path)
    output = _output_until(process, "Uvicorn running")
    assert "the bubblewrap sandbox cannot run here" in output, output
    assert "UNCONFINED" in output
    assert "Uvicorn running" in output
