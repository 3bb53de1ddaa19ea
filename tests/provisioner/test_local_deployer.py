"""The local deployer against real workflow-api processes: start, supervise, adopt, remove."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from provisioner.deployers.base import ConsumerSpec, DeploymentStatus
from provisioner.deployers.local.deployer import (
    LOG_FILE,
    LocalDeployer,
    ProcessIdentity,
    consumer_environment,
)
from provisioner.deployers.local.sandbox import WORKER_UID_FILE, LocalSandbox
from provisioner.tokens.signing_key import SigningKey
from tests.workflow_api.test_execution import _tree
from workflow_contracts.tokens import ADMIN_SCOPE, CONSUMER_SCOPE
from workflow_testkit.sandbox import require_sandbox, sandbox_settings
from workflow_testkit.workflow_api import execute, wait_for_job

REPOSITORY = Path(__file__).resolve().parents[2]
DUMMY_ASSETS = REPOSITORY / "dummy-job" / "assets"
ISSUER = "test-issuer"
READY_WITHIN_SECONDS = 10.0

CONSUMER_A = ConsumerSpec("consumer-a", "consumer-a-1f2e", "workflow-api/consumer-a")
CONSUMER_B = ConsumerSpec("consumer-b", "consumer-b-3d4c", "workflow-api/consumer-b")


# --- fixtures and helpers -------------------------------------------------------------------------


class Processes:
    """Every process a test may have started, killed (group and all) when the test ends."""

    def __init__(self) -> None:
        self.seen: set[ProcessIdentity] = set()

    def track(self, status: DeploymentStatus) -> DeploymentStatus:
        if status.detail.get("pid"):
            self.seen.add(ProcessIdentity(status.detail["pid"], status.detail["start_ticks"]))
        return status

    def kill_all(self) -> None:
        for identity in self.seen:
            if identity.exists():
                for job in children_of(identity.pid):  # each job leads a process group
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(job, signal.SIGKILL)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(identity.pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(identity.pid, 0)


@pytest.fixture(scope="module")
def signing_key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="module")
def common_env(signing_key: SigningKey, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    jwks = signing_key.write_jwks(tmp_path_factory.mktemp("keys") / "jwks.json")
    return {
        "WORKFLOW_API_JWKS_FILE": str(jwks),
        "WORKFLOW_API_ASSETS_DIR": str(DUMMY_ASSETS),
        "WORKFLOW_API_TOKEN_ISSUER": ISSUER,
    }


@pytest.fixture
def processes() -> Iterator[Processes]:
    tracked = Processes()
    yield tracked
    tracked.kill_all()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "deployments"


@pytest.fixture
def make_deployer(root: Path, common_env: dict[str, str]) -> Callable[..., LocalDeployer]:
    def make(**overrides: Any) -> LocalDeployer:
        options: dict[str, Any] = {
            "root": root,
            "workflow_api_env": common_env,
            "start_timeout_seconds": 20.0,
            "stop_timeout_seconds": 5.0,
            "sandbox": LocalSandbox(
                sandbox_settings()["sandbox"], uid_base=200_000, uid_count=1000
            ),
        }
        return LocalDeployer(**(options | overrides))

    return make


@pytest.fixture
def sleeper_python(tmp_path: Path) -> str:
    """A stand-in for python that starts but never answers (the start-timeout and port tests)."""
    script = tmp_path / "never-answers"
    script.write_text("#!/bin/sh\nexec sleep 30\n")
    script.chmod(0o755)
    return str(script)


def deploy_until(
    deployer: LocalDeployer,
    spec: ConsumerSpec,
    detail: dict[str, Any],
    processes: Processes,
    wanted: str = "ready",
    within: float = READY_WITHIN_SECONDS,
) -> tuple[DeploymentStatus, list[str]]:
    """Call `deploy` every 50 ms, as the reconciler does, until it answers `wanted`."""
    states: list[str] = []
    deadline = time.monotonic() + within
    while True:
        status = processes.track(deployer.deploy(spec, detail))
        states.append(status.state)
        if status.state == wanted:
            return status, states
        assert status.state == "starting", status.message
        assert time.monotonic() < deadline, f"not {wanted} after {within} s: {status.message}"
        detail = status.detail
        time.sleep(0.05)


def gone(pid: int) -> bool:
    """No such process, not even a zombie."""
    return not Path(f"/proc/{pid}").exists()


def start_ticks(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[19])


def workflow_apis_in(data_dir: Path) -> list[int]:
    """Live processes whose working directory is `data_dir` (the deployer starts them there)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if Path(os.readlink(entry / "cwd")) == data_dir and "Z" not in state(entry):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def children_of(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rpartition(")")[2].split()[1]) == parent:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def state(entry: Path) -> str:
    return (entry / "stat").read_text().rpartition(")")[2].split()[0]


def consumer_client(status: DeploymentStatus, key: SigningKey, spec: ConsumerSpec) -> httpx.Client:
    token = key.mint(
        issuer=ISSUER, subject=spec.consumer_id, audience=spec.token_audience, scope=CONSUMER_SCOPE
    )
    assert status.endpoint is not None
    return httpx.Client(
        base_url=status.endpoint,
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
        trust_env=False,
    )


# --- pure parts -----------------------------------------------------------------------------------


def test_environment_is_minimal_base_common_settings_and_the_consumers_own(tmp_path: Path) -> None:
    common = {"WORKFLOW_API_STORAGE": "s3", "WORKFLOW_API_TOKEN_ISSUER": ISSUER}
    environment = consumer_environment(
        common,
        CONSUMER_A,
        data_dir=tmp_path / "a",
        public_url="http://api.example:8123",
        python="/opt/venv/bin/python",
        inherited={"PATH": "/usr/bin", "HOME": "/home/p", "SECRET_OF_PROVISIONER": "x"},
        storage={"WORKFLOW_API_S3_BUCKET": "wf-consumer-a-1f2e", "WORKFLOW_API_S3_PREFIX": ""},
    )
    assert environment["PATH"] == "/opt/venv/bin:/usr/bin"
    assert "SECRET_OF_PROVISIONER" not in environment
    assert environment["WORKFLOW_API_CONSUMER_ID"] == "consumer-a"
    assert environment["WORKFLOW_API_DATA_DIR"] == str(tmp_path / "a")
    assert environment["WORKFLOW_API_PUBLIC_URL"] == "http://api.example:8123"
    assert environment["WORKFLOW_API_TOKEN_AUDIENCE"] == "workflow-api/consumer-a"
    assert environment["WORKFLOW_API_TOKEN_ISSUER"] == ISSUER
    assert environment["WORKFLOW_API_S3_BUCKET"] == "wf-consumer-a-1f2e"  # its own storage


def test_storage_settings_come_from_the_consumer_storage(
    make_deployer: Callable[..., LocalDeployer], root: Path
) -> None:
    """`ensure` when it starts, `remove` when removed (the S3 kinds: test_consumer_storage)."""
    calls: list[tuple[str, str]] = []

    class Recording:
        def ensure(self, spec: ConsumerSpec) -> dict[str, str]:
            calls.append(("ensure", spec.slug))
            return {}

        def remove(self, spec: ConsumerSpec) -> None:
            calls.append(("remove", spec.slug))

    deployer = make_deployer(storage=Recording(), python="/nonexistent/python")
    assert deployer.deploy(CONSUMER_A, {}).state == "failed"  # no python: but storage came first
    deployer.remove(CONSUMER_A, {})
    assert calls == [("ensure", CONSUMER_A.slug), ("remove", CONSUMER_A.slug)]


def test_per_consumer_settings_in_the_common_environment_are_refused(root: Path) -> None:
    with pytest.raises(ValueError, match="WORKFLOW_API_CONSUMER_ID"):
        LocalDeployer(root=root, workflow_api_env={"WORKFLOW_API_CONSUMER_ID": "everyone"})


def test_a_slug_that_is_not_a_dns_label_is_refused(
    make_deployer: Callable[..., LocalDeployer],
) -> None:
    with pytest.raises(ValueError, match="DNS label"):
        make_deployer().remove(ConsumerSpec("x", "../x", "aud"), {})


# --- real workflow-apis ---------------------------------------------------------------------------


def test_deploy_starts_a_workflow_api_that_serves_the_consumer(
    make_deployer: Callable[..., LocalDeployer],
    processes: Processes,
    signing_key: SigningKey,
    root: Path,
) -> None:
    deployer = make_deployer()
    started = time.monotonic()
    status, states = deploy_until(deployer, CONSUMER_A, {}, processes)
    assert time.monotonic() - started < READY_WITHIN_SECONDS
    assert states[0] == "starting"
    assert status.endpoint == f"http://127.0.0.1:{status.detail['port']}"
    assert status.detail["waiting_since"] is None
    assert (root / CONSUMER_A.slug / LOG_FILE).exists()
    assert httpx.get(f"{status.endpoint}/conformance", trust_env=False).status_code == 200
    with consumer_client(status, signing_key, CONSUMER_A) as client:
        processes_page = client.get("/processes")
        assert processes_page.status_code == 200
        assert processes_page.json()["processes"] == []
        landing = client.get("/").json()
        assert all(link["href"].startswith(status.endpoint) for link in landing["links"])

    again = deployer.deploy(CONSUMER_A, status.detail)
    assert again.state == "ready"
    assert again.endpoint == status.endpoint
    assert again.detail["pid"] == status.detail["pid"]
    assert again.detail["starts"] == 1


def test_two_consumers_get_their_own_port_data_dir_and_audience(
    make_deployer: Callable[..., LocalDeployer],
    processes: Processes,
    signing_key: SigningKey,
    root: Path,
) -> None:
    deployer = make_deployer()
    a = processes.track(deployer.deploy(CONSUMER_A, {}))
    b = processes.track(deployer.deploy(CONSUMER_B, {}))
    assert a.state == b.state == "starting"
    assert a.detail["port"] != b.detail["port"]
    a, _ = deploy_until(deployer, CONSUMER_A, a.detail, processes)
    b, _ = deploy_until(deployer, CONSUMER_B, b.detail, processes)
    assert a.endpoint != b.endpoint
    assert workflow_apis_in(root / CONSUMER_A.slug) == [a.detail["pid"]]
    assert workflow_apis_in(root / CONSUMER_B.slug) == [b.detail["pid"]]
    with consumer_client(a, signing_key, CONSUMER_B) as b_at_a:
        assert b_at_a.get("/processes").status_code in {401, 403}
    with consumer_client(b, signing_key, CONSUMER_B) as b_at_b:
        assert b_at_b.get("/processes").status_code == 200


def test_killed_workflow_api_is_started_again_on_the_same_port(
    make_deployer: Callable[..., LocalDeployer], processes: Processes
) -> None:
    deployer = make_deployer()
    ready, _ = deploy_until(deployer, CONSUMER_A, {}, processes)
    first_pid = ready.detail["pid"]
    first = ProcessIdentity(first_pid, ready.detail["start_ticks"])
    os.kill(first_pid, signal.SIGKILL)
    while first.alive():  # until it is a zombie: the deployer reaps it
        time.sleep(0.02)

    restarting = processes.track(deployer.deploy(CONSUMER_A, ready.detail))
    assert restarting.state == "starting"
    assert restarting.detail["pid"] != first_pid
    again, _ = deploy_until(deployer, CONSUMER_A, restarting.detail, processes)
    assert again.detail["port"] == ready.detail["port"]
    assert again.endpoint == ready.endpoint
    assert again.detail["starts"] == 2
    assert gone(first_pid)


def test_a_new_deployer_adopts_the_running_workflow_api(
    make_deployer: Callable[..., LocalDeployer], processes: Processes, root: Path
) -> None:
    ready, _ = deploy_until(make_deployer(), CONSUMER_A, {}, processes)

    after_restart = make_deployer()
    adopted = after_restart.deploy(CONSUMER_A, ready.detail)
    assert adopted.state == "ready"
    assert adopted.detail["pid"] == ready.detail["pid"]
    assert adopted.endpoint == ready.endpoint
    # detail lost (the provisioner died before persisting it): adopted from the pid file
    from_pid_file = make_deployer().deploy(CONSUMER_A, {})
    assert from_pid_file.state == "ready"
    assert from_pid_file.detail["pid"] == ready.detail["pid"]
    assert workflow_apis_in(root / CONSUMER_A.slug) == [ready.detail["pid"]]

    # not its child: remove polls /proc for the exit
    after_restart.remove(CONSUMER_A, adopted.detail)
    assert gone(ready.detail["pid"])
    assert not (root / CONSUMER_A.slug).exists()


def test_remove_stops_the_workflow_api_and_its_jobs_and_deletes_the_data_dir_once(
    make_deployer: Callable[..., LocalDeployer],
    processes: Processes,
    signing_key: SigningKey,
    root: Path,
) -> None:
    deployer = make_deployer()
    ready, _ = deploy_until(deployer, CONSUMER_A, {}, processes)
    pid = ready.detail["pid"]
    admin = signing_key.mint(
        issuer=ISSUER,
        subject="provisioner",
        audience=CONSUMER_A.token_audience,
        scope=ADMIN_SCOPE,
    )
    assert ready.endpoint is not None
    httpx.put(
        f"{ready.endpoint}/admin/grants/dummy",
        json={},
        headers={"Authorization": f"Bearer {admin}"},
        trust_env=False,
    ).raise_for_status()
    with consumer_client(ready, signing_key, CONSUMER_A) as client:
        job = execute(client, "dummy", {"duration": 300, "spawn_child": True})
        wait_for_job(client, job, {"running"})
    deadline = time.monotonic() + 10
    while not (jobs := children_of(pid)):  # the worker starts after stage-in
        assert time.monotonic() < deadline, "no worker process"
        time.sleep(0.05)

    started = time.monotonic()
    deployer.remove(CONSUMER_A, ready.detail)
    assert time.monotonic() - started < 10
    assert gone(pid)
    assert not any(Path(f"/proc/{job_pid}").exists() for job_pid in jobs)
    assert not (root / CONSUMER_A.slug).exists()
    deployer.remove(CONSUMER_A, ready.detail)
    deployer.remove(CONSUMER_A, {})
    make_deployer().remove(CONSUMER_A, ready.detail)
    assert not (root / CONSUMER_A.slug).exists()


@pytest.fixture
def stranger() -> Iterator[tuple[subprocess.Popen[bytes], dict[str, Any]]]:
    """Someone else's process, and a `detail` naming its pid with another start time."""
    process = subprocess.Popen(["sleep", "30"], start_new_session=True)
    recycled = {
        "pid": process.pid,
        "start_ticks": start_ticks(process.pid) + 1,
        "port": 1,
        "endpoint": "http://127.0.0.1:1",
        "waiting_since": None,
        "starts": 1,
    }
    yield process, recycled
    process.kill()
    process.wait()


def test_remove_never_signals_a_process_that_recycled_the_pid(
    make_deployer: Callable[..., LocalDeployer],
    root: Path,
    stranger: tuple[subprocess.Popen[bytes], dict[str, Any]],
) -> None:
    process, recycled = stranger
    (root / CONSUMER_A.slug).mkdir(parents=True)
    make_deployer(stop_timeout_seconds=0.5).remove(CONSUMER_A, recycled)
    assert process.poll() is None
    assert not (root / CONSUMER_A.slug).exists()


def test_a_recycled_pid_in_detail_is_not_taken_for_the_workflow_api(
    make_deployer: Callable[..., LocalDeployer],
    processes: Processes,
    sleeper_python: str,
    stranger: tuple[subprocess.Popen[bytes], dict[str, Any]],
) -> None:
    process, recycled = stranger
    status = processes.track(make_deployer(python=sleeper_python).deploy(CONSUMER_A, recycled))
    assert status.state == "starting"
    assert status.detail["pid"] != process.pid
    assert process.poll() is None


def test_a_workflow_api_that_cannot_start_fails_with_its_log_tail(
    make_deployer: Callable[..., LocalDeployer],
    processes: Processes,
    common_env: dict[str, str],
    tmp_path: Path,
) -> None:
    broken = {**common_env, "WORKFLOW_API_ASSETS_DIR": str(tmp_path / "missing")}
    deployer = make_deployer(workflow_api_env=broken)
    failed, states = deploy_until(deployer, CONSUMER_A, {}, processes, wanted="failed")
    assert states[0] == "starting"
    assert "exited with code 3 while starting" in failed.message
    assert "FileNotFoundError" in failed.message
    assert str(tmp_path / "missing") in failed.message
    assert failed.detail["pid"] is None
    # the reconciler calls again: it is started again (and fails again)
    retried = processes.track(deployer.deploy(CONSUMER_A, failed.detail))
    assert retried.state == "starting"
    deployer.remove(CONSUMER_A, retried.detail)


def test_a_workflow_api_that_never_answers_is_stopped_after_the_start_timeout(
    make_deployer: Callable[..., LocalDeployer], processes: Processes, sleeper_python: str
) -> None:
    deployer = make_deployer(python=sleeper_python, start_timeout_seconds=0.5)
    first = processes.track(deployer.deploy(CONSUMER_A, {}))
    failed, _ = deploy_until(deployer, CONSUMER_A, first.detail, processes, wanted="failed")
    assert "did not answer /conformance" in failed.message
    assert "starting on 127.0.0.1" in failed.message  # the log tail
    assert gone(first.detail["pid"])


def test_ports_handed_out_are_not_given_to_another_consumer_before_they_are_bound(
    make_deployer: Callable[..., LocalDeployer], processes: Processes, sleeper_python: str
) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    free_port = probe.getsockname()[1]
    probe.close()
    deployer = make_deployer(python=sleeper_python)
    a = processes.track(deployer.deploy(CONSUMER_A, {"port": free_port}))
    b = processes.track(deployer.deploy(CONSUMER_B, {"port": free_port}))
    assert a.detail["port"] == free_port
    assert b.detail["port"] != free_port


def test_a_port_taken_meanwhile_is_replaced_by_a_free_one(
    make_deployer: Callable[..., LocalDeployer], processes: Processes, sleeper_python: str
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        status = processes.track(
            make_deployer(python=sleeper_python).deploy(CONSUMER_A, {"port": taken})
        )
    assert status.state == "starting"
    assert status.detail["port"] != taken
    assert status.endpoint == f"http://127.0.0.1:{status.detail['port']}"


def test_a_prepared_spare_becomes_the_next_consumers_workflow_api(
    make_deployer: Callable[..., LocalDeployer],
    processes: Processes,
    signing_key: SigningKey,
    root: Path,
) -> None:
    deployer = make_deployer()
    deployer.prepare()
    spare = deployer._spare
    assert spare is not None
    time.sleep(3)  # let it finish its imports, as it would between two new consumers
    try:
        started = time.monotonic()
        status, _ = deploy_until(deployer, CONSUMER_A, {}, processes)
        warm_seconds = time.monotonic() - started
        assert status.detail["pid"] == spare.pid, "the spare was handed to the consumer"
        assert warm_seconds < 10.0, f"a warm start took {warm_seconds:.2f} s"  # generous: CI load
        assert (root / CONSUMER_A.slug / LOG_FILE).read_text().strip(), "logs go to its own file"
        with consumer_client(status, signing_key, CONSUMER_A) as client:
            assert client.get("/processes").status_code == 200
        next_spare = deployer._spare
        assert next_spare is not None and next_spare.pid != spare.pid
    finally:
        deployer.close()
    assert deployer._spare is None
    assert next_spare.wait(timeout=10) == 0, "an unneeded spare exits at end of file"
    deployer.remove(CONSUMER_A, status.detail)
    assert gone(spare.pid)


# --- a uid per consumer (as root) ---------------------------------------------------------------


def _worker_uids(status: DeploymentStatus, spec: ConsumerSpec, signing_key: SigningKey) -> set[int]:
    """Run a dummy job in the consumer's workflow-api; the uids of its worker processes."""
    admin = signing_key.mint(
        issuer=ISSUER, subject="provisioner", audience=spec.token_audience, scope=ADMIN_SCOPE
    )
    assert status.endpoint is not None
    httpx.put(
        f"{status.endpoint}/admin/grants/dummy",
        json={},
        headers={"Authorization": f"Bearer {admin}"},
        trust_env=False,
    ).raise_for_status()
    with consumer_client(status, signing_key, spec) as client:
        job = execute(client, "dummy", {"duration": 30, "spawn_child": True})
        wait_for_job(client, job, {"running"})
        deadline = time.monotonic() + 10
        while True:
            workers = [p for p in _tree(status.detail["pid"]) if _uid(p) != 0]
            if len(workers) >= 2:
                break
            assert time.monotonic() < deadline, "the worker and its child did not start"
            time.sleep(0.05)
        uids = {_uid(pid) for pid in workers}
        client.delete(f"/jobs/{job}")
    return uids


def _uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(pid)


@pytest.mark.skipif(os.geteuid() != 0, reason="separate uids need root")
def test_two_consumers_workers_run_as_separate_uids_that_cannot_read_each_other(
    make_deployer: Callable[..., LocalDeployer],
    processes: Processes,
    signing_key: SigningKey,
    root: Path,
) -> None:
    require_sandbox()
    deployer = make_deployer()
    a, _ = deploy_until(deployer, CONSUMER_A, {}, processes)
    b, _ = deploy_until(deployer, CONSUMER_B, {}, processes)
    uid_a = int((root / CONSUMER_A.slug / WORKER_UID_FILE).read_text())
    uid_b = int((root / CONSUMER_B.slug / WORKER_UID_FILE).read_text())
    assert uid_a != uid_b
    for directory in (root, root / CONSUMER_A.slug, root / CONSUMER_B.slug):
        assert directory.stat().st_mode & 0o777 == 0o700
    # the workers really run as those uids (one workflow-api may be the pre-started spare,
    # whose settings arrive on stdin, so they are checked on the workers themselves)
    assert _worker_uids(a, CONSUMER_A, signing_key) == {uid_a}
    assert _worker_uids(b, CONSUMER_B, signing_key) == {uid_b}

    # Even by path, outside any sandbox: consumer A's worker uid cannot read B's data.
    for command in (
        ["ls", str(root / CONSUMER_B.slug)],
        ["cat", str(root / CONSUMER_B.slug / "workflow-api.db")],
    ):
        attempt = subprocess.run(
            ["setpriv", "--reuid", str(uid_a), "--regid", str(uid_a), "--clear-groups", *command],
            capture_output=True,
            text=True,
            check=False,
        )
        assert attempt.returncode != 0
        assert "Permission denied" in attempt.stderr
    assert (root / CONSUMER_B.slug / "workflow-api.db").exists()

    # after a provisioner restart (a new LocalSandbox): the same uid
    assert LocalSandbox("bubblewrap", 200_000, 1000).worker_uid(root, CONSUMER_A.slug) == uid_a
