"""The local runner's bubblewrap sandbox, attacked by a real worker (`hostile_worker.py`).

Each test runs a workflow-api with the sandbox (real bwrap, real cgroups where writable, a real
uid switch when the tests run as root) and an asset whose worker tries one way out; the
worker reports what it saw, and the test checks that every attempt failed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from workflow_api.execution.local.limits import JobCgroups
from workflow_testkit.sandbox import OTHER_WORKER_UID, TEST_WORKER_UID, require_sandbox
from workflow_testkit.workflow_api import RunningApi, execute, wait_for_job

WORKER = Path(__file__).with_name("hostile_worker.py")
FAILED_OPEN = {"FileNotFoundError", "PermissionError"}


@pytest.fixture(autouse=True)
def _sandbox_required() -> None:
    require_sandbox()


HostileRun = Callable[..., tuple[RunningApi, dict[str, Any], dict[str, Any]]]


@pytest.fixture
def hostile(api_factory: Callable[..., RunningApi], tmp_path: Path) -> HostileRun:
    """Run the hostile worker once: (api, job info, the worker's report). With `watch`, the
    job's status documents are collected while it runs."""

    def run(
        env: dict[str, str],
        *,
        memory: str = "256Mi",
        network: str = "none",
        watch: list[dict[str, Any]] | None = None,
        **settings: Any,
    ) -> tuple[RunningApi, dict[str, Any], dict[str, Any]]:
        assets = tmp_path / "assets"
        assets.mkdir(exist_ok=True)
        shutil.copy(WORKER, assets / "hostile_worker.py")
        asset = {
            "id": "hostile",
            "title": "Hostile",
            "execution": {"image": "x", "resources": {"memory": memory}, "timeout_seconds": 60},
            "local": {
                "command": [sys.executable, str(assets / "hostile_worker.py")],
                "env": env,
                "network": network,
            },
            "outputs": [{"id": "report"}],
        }
        (assets / "hostile.yaml").write_text(yaml.safe_dump(asset))
        api = api_factory(assets_dir=assets, grants=("hostile",), **settings)
        client = api.consumer
        job_id = execute(client, "hostile", {})
        deadline = time.monotonic() + 90
        while watch is not None and time.monotonic() < deadline:
            status = client.get(f"/jobs/{job_id}").json()
            watch.append(status)
            if status["status"] not in {"accepted", "running"}:
                break
            time.sleep(0.05)
        info = wait_for_job(client, job_id, timeout=90)
        response = client.get(f"/jobs/{job_id}/results/report", follow_redirects=True)
        report = response.json() if response.status_code == 200 else {}
        return api, info, report

    return run


def _consumer_data(directory: Path, owner: int | None = None) -> list[str]:
    """A data directory like another consumer's workflow-api keeps; the paths to try."""
    directory.mkdir(parents=True)
    (directory / "workflow-api.db").write_bytes(b"SQLite format 3\x00 other consumer")
    (directory / "storage").mkdir()
    (directory / "storage" / "result.bin").write_bytes(b"another consumer's result")
    directory.chmod(0o700)
    if owner is not None:
        for path in (directory, *directory.rglob("*")):
            os.lchown(path, owner, owner)
    return [str(directory), str(directory / "workflow-api.db"), str(directory / "storage")]


def _provisioner_data(directory: Path) -> list[str]:
    directory.mkdir(parents=True)
    for name, content in (
        ("signing-key.pem", "-----BEGIN PRIVATE KEY-----\n"),
        ("admin-token", "a" * 40),
        ("credentials.key", "k" * 32),
        ("provisioner.db", "SQLite format 3"),
    ):
        (directory / name).write_text(content)
    return [str(directory / name) for name in sorted(os.listdir(directory))]


def test_worker_sees_no_other_consumer_nor_the_api_nor_the_provisioner(
    hostile: HostileRun, tmp_path: Path
) -> None:
    other = _consumer_data(tmp_path / "consumers" / "other")
    provisioner = _provisioner_data(tmp_path / "provisioner")
    own_data = tmp_path / "api"  # the API's own data directory (api_factory's default name)
    targets = [
        *other,
        *provisioner,
        str(own_data),
        str(own_data / "workflow-api.db"),
        str(own_data / "storage"),
        "/root",
        "/home",
        str(Path.home()),
        "inputs.json",  # its own workspace: the one thing here it may read
    ]
    _, info, report = hostile({"ATTACK": "read", "TARGETS": json.dumps(targets)})

    assert info["status"] == "successful", info
    results = report["results"]
    assert results.pop("inputs.json").startswith("read "), "the worker could not read at all"
    assert (own_data / "workflow-api.db").exists()  # the targets are real
    # Directories on the way to what is mounted exist in the sandbox, empty but for that way.
    mounted = [Path(os.path.realpath(p)) for p in (sys.prefix, sys.base_prefix)]
    mounted.append(own_data / "workspaces")
    readable = {}
    for path, result in results.items():
        way = {m.relative_to(path).parts[0] for m in mounted if m.is_relative_to(path)}
        if result not in FAILED_OPEN and result != " ".join(["listed", *sorted(way)]):
            readable[path] = result
    assert readable == {}
    if os.geteuid() == 0:
        assert (report["uid"], report["gid"], report["groups"]) == (
            TEST_WORKER_UID,
            TEST_WORKER_UID,
            [],
        )


@pytest.mark.skipif(os.geteuid() != 0, reason="separate uids need root")
def test_another_consumers_files_stay_unreadable_even_when_mounted(
    hostile: HostileRun, tmp_path: Path
) -> None:
    """The uid layer alone: the other consumer's data is shown to the worker on purpose (as if
    the mount confinement failed); its owner is another worker uid, so it stays closed."""
    other_dir = tmp_path / "consumers" / "other"
    other = _consumer_data(other_dir, owner=OTHER_WORKER_UID)
    targets = [*other, str(other_dir / "storage" / "result.bin")]
    _, info, report = hostile(
        {"ATTACK": "read", "TARGETS": json.dumps(targets)},
        sandbox_read_only_paths=[other_dir],
    )
    assert info["status"] == "successful", info
    assert report["uid"] == TEST_WORKER_UID
    assert report["results"] == dict.fromkeys(targets, "PermissionError")


@pytest.fixture
def loopback_listener() -> Iterator[tuple[int, list[object]]]:
    """A TCP listener on 127.0.0.1 (free port) that records each connection it accepts."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    accepted: list[object] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, peer = server.accept()
            except TimeoutError:
                continue
            accepted.append(peer)
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join(timeout=5)
    server.close()


def test_worker_without_egress_has_no_network(
    hostile: HostileRun, loopback_listener: tuple[int, list[object]]
) -> None:
    port, accepted = loopback_listener
    _, info, report = hostile({"ATTACK": "connect", "PORT": str(port)})
    assert info["status"] == "successful", info
    assert report["result"] != "connected"
    assert accepted == []
    assert "no network" in info["message"]


def test_worker_of_an_egress_asset_reaches_the_network(
    hostile: HostileRun, loopback_listener: tuple[int, list[object]]
) -> None:
    port, accepted = loopback_listener
    _, info, report = hostile({"ATTACK": "connect", "PORT": str(port)}, network="egress")
    assert info["status"] == "successful", info
    assert report["result"] == "connected"
    assert len(accepted) == 1
    assert (
        info["message"].startswith("finished (sandbox: bubblewrap") and "egress" in info["message"]
    )


def _processes_tagged(tag: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if tag.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_nothing_the_worker_starts_outlives_the_job(hostile: HostileRun) -> None:
    tag = f"lingerer-{os.getpid()}-{time.monotonic_ns()}"
    _, info, report = hostile({"ATTACK": "linger", "TAG": tag})
    assert info["status"] == "successful", info
    assert report["running"] is True, "the worker did not manage to start its lingerer"
    deadline = time.monotonic() + 5
    while _processes_tagged(tag) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_tagged(tag) == []
    cgroups = JobCgroups.existing(info["jobID"])
    assert cgroups is None or not cgroups.exist()  # removed with the job


def test_exceeding_the_memory_limit_fails_the_job_saying_so(hostile: HostileRun) -> None:
    api, info, report = hostile({"ATTACK": "memory", "MEGABYTES": "400"}, memory="64Mi")
    assert info["status"] == "failed"
    assert report == {}  # it never got to write its report
    if JobCgroups.existing("probe") is not None:
        assert "exceeded its memory limit of 64Mi" in info["message"]
        assert "limits by cgroup" in info["message"]
    else:
        assert "limits by setrlimit: address space 64Mi" in info["message"]
    leftovers = list((api.settings.data_dir / "workspaces").iterdir())
    assert leftovers == []


def test_progress_file_linked_to_a_secret_is_not_relayed(
    hostile: HostileRun, tmp_path: Path
) -> None:
    """The API reads the progress file with its own rights: a link to a file of the API's
    must not turn into progress messages the consumer can read."""
    secret = tmp_path / "api-secret"
    secret.write_text("42 SECRET-VALUE-OF-THE-API\n")
    seen: list[dict[str, Any]] = []
    _, info, report = hostile(
        {"ATTACK": "progress-link", "TARGETS": json.dumps([str(secret)])}, watch=seen
    )
    assert report["result"] == "linked"
    assert info["status"] == "successful", info
    assert sum(status["status"] == "running" for status in seen) >= 10  # watched it run
    assert not any("SECRET" in status.get("message", "") for status in seen)
    assert not any(status.get("progress") == 42 for status in seen)
