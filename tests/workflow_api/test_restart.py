"""A restart loses no job: finished stay, queued run, running are failed and stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlmodel import Session, create_engine

from provisioner.tokens.signing_key import SigningKey
from tests.workflow_api.test_execution import _alive, _tree
from workflow_api.db import Job
from workflow_api.execution.local.limits import JobCgroups
from workflow_api.execution.manager import RESTARTED_MESSAGE
from workflow_testkit.ports import bound_socket
from workflow_testkit.sandbox import sandbox_settings
from workflow_testkit.workflow_api import (
    DUMMY_ASSETS,
    ISSUER,
    execute,
    start_api,
    wait_for_job,
)


def _spawn_api(data_dir: Path, jwks: Path, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "WORKFLOW_API_CONSUMER_ID": "consumer-a",
        "WORKFLOW_API_DATA_DIR": str(data_dir),
        "WORKFLOW_API_ASSETS_DIR": str(DUMMY_ASSETS),
        "WORKFLOW_API_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "WORKFLOW_API_TOKEN_ISSUER": ISSUER,
        "WORKFLOW_API_TOKEN_AUDIENCE": "workflow-api/consumer-a",
        "WORKFLOW_API_JWKS_FILE": str(jwks),
        "WORKFLOW_API_MAX_RUNNING_JOBS": "1",
        "WORKFLOW_API_PROGRESS_POLL_SECONDS": "0.1",
        **{
            f"WORKFLOW_API_{name.upper()}": str(value)
            for name, value in sandbox_settings().items()
            if value is not None
        },
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "workflow_api", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/conformance", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("the workflow-api did not start")


def _wait_until_gone(pids: list[int]) -> None:
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids):
        assert time.monotonic() < deadline, f"still running after the API died: {pids}"
        time.sleep(0.05)


def _free_port() -> int:
    sock = bound_socket()
    port: int = sock.getsockname()[1]
    sock.close()
    return port


def test_killed_api_recovers_every_job_on_restart(tmp_path: Path, signing_key: SigningKey) -> None:
    data_dir = tmp_path / "api"
    data_dir.mkdir()
    jwks = signing_key.write_jwks(tmp_path / "jwks.json")
    port = _free_port()
    api = _spawn_api(data_dir, jwks, port)
    token = signing_key.mint(
        issuer=ISSUER, subject="consumer-a", audience="workflow-api/consumer-a"
    )
    admin = signing_key.mint(
        issuer=ISSUER,
        subject="provisioner",
        audience="workflow-api/consumer-a",
        scope="workflow:admin",
    )
    base = f"http://127.0.0.1:{port}"
    for asset in ("echo", "dummy"):
        httpx.put(
            f"{base}/admin/grants/{asset}", json={}, headers={"Authorization": f"Bearer {admin}"}
        ).raise_for_status()
    client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    try:
        finished = execute(client, "echo", {"message": "kept"})
        wait_for_job(client, finished)
        running = execute(client, "dummy", {"duration": 300, "spawn_child": True})
        queued = execute(client, "echo", {"message": "after restart"})
        wait_for_job(client, running, {"running"})
        engine = create_engine(f"sqlite:///{data_dir / 'workflow-api.db'}")
        deadline = time.monotonic() + 20
        expected = 2 if sandbox_settings()["sandbox"] == "none" else 4
        group = None
        while group is None or len(_tree(group)) < expected:
            assert time.monotonic() < deadline
            with Session(engine) as session:
                group = session.get(Job, running).process_group  # type: ignore[union-attr]
            time.sleep(0.05)
        workers = _tree(group)

        api.send_signal(signal.SIGKILL)
        api.wait()
        if sandbox_settings()["sandbox"] == "none":
            assert all(_alive(pid) for pid in workers), "the crash left the worker running"
        else:  # bwrap --die-with-parent: the sandbox ends with the API
            _wait_until_gone(workers)

        api = _spawn_api(data_dir, jwks, port)
        after = wait_for_job(client, running)
        assert after["status"] == "failed"
        assert after["message"] == RESTARTED_MESSAGE
        assert not any(_alive(pid) for pid in workers)
        cgroups = JobCgroups.existing(running)
        assert cgroups is None or not cgroups.exist()  # recovery removed what the crash left
        assert wait_for_job(client, queued)["status"] == "successful"
        assert client.get(f"/jobs/{finished}").json()["status"] == "successful"
        echoed = client.get(f"/jobs/{finished}/results/echo", follow_redirects=True)
        assert echoed.text == "kept"
    finally:
        client.close()
        api.kill()
        api.wait()


def test_graceful_restart_keeps_queued_jobs(tmp_path: Path, signing_key: SigningKey) -> None:
    first = start_api(tmp_path / "api", signing_key, grants=("echo",), max_running_jobs=1)
    client = first.consumer
    blocker = execute(client, "echo", {"message": "1", "pause": 30})
    queued = execute(client, "echo", {"message": "2"})
    wait_for_job(client, blocker, {"running"})
    first.stop()

    second = start_api(tmp_path / "api", signing_key, max_running_jobs=1)
    try:
        client = second.consumer
        assert wait_for_job(client, blocker)["message"] == RESTARTED_MESSAGE
        assert wait_for_job(client, queued)["status"] == "successful"
    finally:
        second.stop()
