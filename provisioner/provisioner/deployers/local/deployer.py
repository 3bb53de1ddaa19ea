"""The local deployer: one supervised `workflow_api serve` process per consumer on this machine.

Each consumer gets a data directory `root/<slug>` (the workflow-api's database and storage, its
`workflow-api.log` and `workflow-api.pid`), a port of its own, and a process in a session of its
own, so that it outlives a provisioner crash and can be stopped as a group. A process is known by
its pid and its start time (field 22 of /proc/<pid>/stat): a recycled pid is never taken for it.

`detail`, persisted by the reconciler between calls:

    pid, start_ticks   the process (None while there is none)
    port, endpoint     kept across restarts, so the consumer's endpoint stays put while it can
    waiting_since      epoch seconds since it has been starting or not answering; None when ready
    starts             how often it was started

The same record goes to `workflow-api.pid` at every start, so a process whose detail was never
persisted (the provisioner died right after starting it) is adopted, not started a second time.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeGuard

import httpx

from provisioner.deployers.base import ConsumerSpec, DeploymentStatus
from provisioner.deployers.local.sandbox import LocalSandbox
from provisioner.storage.consumer import ConsumerStorage, ConsumerStorageError, NoConsumerStorage
from workflow_api.private_files import open_private, private_dir, write_private
from workflow_api.processes import ProcessIdentity, child_groups, process_stat, signal_group
from workflow_common.retry import TemporaryError

log = logging.getLogger(__name__)

LOG_FILE = "workflow-api.log"
SPARE_LOG_FILE = ".spare-workflow-api.log"
PID_FILE = "workflow-api.pid"
HEALTH_PATH = "/conformance"
HEALTH_TIMEOUT_SECONDS = 0.5
KILL_WAIT_SECONDS = 5.0
POLL_SECONDS = 0.05
LOG_TAIL_LINES = 20
LOG_TAIL_BYTES = 8192
SLUG_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
PER_CONSUMER_VARIABLES = frozenset(
    {
        "WORKFLOW_API_CONSUMER_ID",
        "WORKFLOW_API_DATA_DIR",
        "WORKFLOW_API_PUBLIC_URL",
        "WORKFLOW_API_TOKEN_AUDIENCE",
        "WORKFLOW_API_DATABASE_URL",  # one database shared by consumers would undo the isolation
        "WORKFLOW_API_SANDBOX",
        "WORKFLOW_API_SANDBOX_UID",
    }
)


class LocalDeploymentError(TemporaryError):
    """A workflow-api process that does not go away even after SIGKILL; the caller retries."""


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class _Record:
    """What `detail` holds, validated."""

    port: int | None = None
    endpoint: str | None = None
    process: ProcessIdentity | None = None
    waiting_since: float | None = None
    starts: int = 0

    @classmethod
    def from_detail(cls, detail: Mapping[str, Any]) -> _Record:
        pid, ticks, port = detail.get("pid"), detail.get("start_ticks"), detail.get("port")
        endpoint, since = detail.get("endpoint"), detail.get("waiting_since")
        starts = detail.get("starts")
        record = cls(
            port=port if _is_int(port) and 0 < port < 65536 else None,
            endpoint=endpoint if isinstance(endpoint, str) else None,
            waiting_since=float(since) if isinstance(since, int | float) else None,
            starts=starts if _is_int(starts) else 0,
        )
        if _is_int(pid) and _is_int(ticks) and pid > 0 and record.port and record.endpoint:
            return replace(record, process=ProcessIdentity(pid, ticks))
        return record

    def __str__(self) -> str:
        pid = self.process.pid if self.process else None
        return f"pid {pid}, port {self.port}, endpoint {self.endpoint}"

    def to_detail(self) -> dict[str, Any]:
        return {
            "pid": self.process.pid if self.process else None,
            "start_ticks": self.process.start_ticks if self.process else None,
            "port": self.port,
            "endpoint": self.endpoint,
            "waiting_since": self.waiting_since,
            "starts": self.starts,
        }


def consumer_environment(
    common: Mapping[str, str],
    spec: ConsumerSpec,
    *,
    data_dir: Path,
    public_url: str,
    python: str,
    inherited: Mapping[str, str],
    storage: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """A minimal base, the settings every workflow-api shares, then this consumer's own (its
    storage settings from `ConsumerStorage.ensure`, its identity)."""
    path = os.pathsep.join([str(Path(python).parent), inherited.get("PATH", os.defpath)])
    environment = {
        "PATH": path,
        "HOME": inherited.get("HOME", str(data_dir)),
        "LANG": inherited.get("LANG", "C.UTF-8"),
        **common,
        **(storage or {}),
        "WORKFLOW_API_CONSUMER_ID": spec.consumer_id,
        "WORKFLOW_API_DATA_DIR": str(data_dir),
        "WORKFLOW_API_PUBLIC_URL": public_url,
        "WORKFLOW_API_TOKEN_AUDIENCE": spec.token_audience,
    }
    return environment


class LocalDeployer:
    """Runs each consumer's workflow-api as a local process; see the module docstring."""

    def __init__(
        self,
        *,
        root: Path,
        workflow_api_env: Mapping[str, str],
        storage: ConsumerStorage | None = None,
        host: str = "127.0.0.1",
        public_host: str | None = None,
        start_timeout_seconds: float = 30.0,
        stop_timeout_seconds: float = 10.0,
        python: str = sys.executable,
        sandbox: LocalSandbox | None = None,
    ) -> None:
        clashing = sorted(PER_CONSUMER_VARIABLES & set(workflow_api_env))
        if clashing:
            raise ValueError(f"set per consumer, not in workflow_api_env: {', '.join(clashing)}")
        self._root = root
        self._common = dict(workflow_api_env)
        self._sandbox = sandbox or LocalSandbox("bubblewrap", uid_base=200_000, uid_count=100_000)
        self._storage = storage or NoConsumerStorage()
        self._host = host
        self._public_host = public_host or host
        self._start_timeout = start_timeout_seconds
        self._stop_timeout = stop_timeout_seconds
        self._python = shutil.which(python) or python
        self._children: dict[ProcessIdentity, tuple[str, subprocess.Popen[bytes]]] = {}
        self._exit_codes: dict[ProcessIdentity, int] = {}
        self._ports: dict[str, int] = {}  # slug -> port, from start or adoption until removal
        self._lock = threading.Lock()
        self._spare: subprocess.Popen[bytes] | None = None
        self._starting: set[str] = set()  # slugs started and not yet healthy
        self._probes: httpx.Client | None = None

    # --- a warm spare --------------------------------------------------------------------------

    def prepare(self) -> None:
        """Pre-start one workflow-api that has done its imports (most of its start-up time) and
        waits on stdin for its assignment; it exits on end of file, so it dies with us."""
        if self._spare is not None and self._spare.poll() is None:
            return
        private_dir(self._root)
        environment = {
            "PATH": os.pathsep.join([str(Path(self._python).parent), os.environ.get("PATH", "")]),
            "HOME": os.environ.get("HOME", str(self._root)),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
        }
        command = [self._python, "-m", "workflow_api", "serve", "--settings-from-stdin"]
        try:
            with open_private(self._root / SPARE_LOG_FILE) as log_file:
                self._spare = subprocess.Popen(
                    command,
                    cwd=self._root,
                    env=environment,
                    stdin=subprocess.PIPE,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        except OSError as error:
            log.warning("cannot pre-start a spare workflow-api: %s", error)
            self._spare = None

    def close(self) -> None:
        """Let the spare go (end of file on its stdin), waiting briefly."""
        if self._probes is not None:
            self._probes.close()
            self._probes = None
        spare, self._spare = self._spare, None
        if spare is None:
            return
        with contextlib.suppress(OSError):
            assert spare.stdin is not None
            spare.stdin.close()
        try:
            spare.wait(timeout=KILL_WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            spare.kill()
            spare.wait()

    def _assign_spare(
        self, environment: dict[str, str], port: int, data_dir: Path
    ) -> subprocess.Popen[bytes] | None:
        """Hand the spare to a consumer; None if there is no live spare."""
        spare, self._spare = self._spare, None
        if spare is None or spare.poll() is not None or spare.stdin is None:
            return None
        assignment = {
            "environment": environment,
            "host": self._host,
            "port": port,
            "directory": str(data_dir),
            "log_file": str(data_dir / LOG_FILE),
        }
        try:
            spare.stdin.write(json.dumps(assignment).encode() + b"\n")
            spare.stdin.close()
        except OSError:
            spare.kill()
            spare.wait()
            return None
        return spare

    # --- the Deployer protocol -----------------------------------------------------------------

    def deploy(self, spec: ConsumerSpec, detail: dict[str, Any]) -> DeploymentStatus:
        data_dir = self._data_dir(spec)
        self._reap()
        record = _Record.from_detail(detail)
        latest = _read_pid_file(data_dir)  # newer than `detail` if that was never persisted
        if latest.process and latest.process != record.process and latest.process.alive():
            if record.process is not None and record.process.alive():
                log.warning("consumer %s: stopping a duplicate (%s)", spec.consumer_id, record)
                self._kill(record.process)
            log.info("consumer %s: adopting %s from %s", spec.consumer_id, latest, PID_FILE)
            record = replace(latest, starts=max(latest.starts, record.starts))
        if record.process is not None and record.process.alive():
            return self._supervise(spec, data_dir, record)
        if record.process is not None:
            code = self._exit_codes.pop(record.process, None)
            self._reap_one(record.process)
            what = f"the workflow-api (pid {record.process.pid}) {_describe_exit(code)}"
            if record.waiting_since is not None:
                return self._failed(spec, data_dir, record, f"{what} while starting")
            log.warning("consumer %s: %s; starting it again", spec.consumer_id, what)
        return self._start(spec, data_dir, record)

    def remove(self, spec: ConsumerSpec, detail: dict[str, Any]) -> None:
        data_dir = self._data_dir(spec)
        self._reap()
        records = (_Record.from_detail(detail), _read_pid_file(data_dir))
        candidates = {record.process for record in records if record.process is not None}
        candidates.update(i for i, (slug, _) in self._children.items() if slug == spec.slug)
        for identity in candidates:
            self._stop(spec, identity)
        if data_dir.exists():
            shutil.rmtree(data_dir)
        self._storage.remove(spec)
        with self._lock:
            self._ports.pop(spec.slug, None)
        self._starting.discard(spec.slug)
        log.info("consumer %s: workflow-api, %s and storage removed", spec.consumer_id, data_dir)

    # --- steps ---------------------------------------------------------------------------------

    def _supervise(self, spec: ConsumerSpec, data_dir: Path, record: _Record) -> DeploymentStatus:
        assert record.process is not None and record.port is not None
        with self._lock:
            self._ports[spec.slug] = record.port
        if self._healthy(record.port):
            if record.waiting_since is not None:
                log.info("consumer %s: workflow-api ready (%s)", spec.consumer_id, record)
            ready = replace(record, waiting_since=None)
            self._starting.discard(spec.slug)
            if not self._starting:
                self.prepare()  # the next new consumer gets a warm one, without slowing this one
            return DeploymentStatus("ready", record.endpoint, ready.to_detail())
        now = time.time()
        since = record.waiting_since
        if since is None:
            since = now
            log.warning(
                "consumer %s: workflow-api stopped answering (%s)", spec.consumer_id, record
            )
        if now - since > self._start_timeout:
            self._kill(record.process)
            what = (
                f"the workflow-api (pid {record.process.pid}) did not answer {HEALTH_PATH} on"
                f" port {record.port} within {self._start_timeout:g} s and was stopped"
            )
            return self._failed(spec, data_dir, record, what)
        waiting = replace(record, waiting_since=since)
        message = "waiting for the workflow-api to answer"
        return DeploymentStatus("starting", record.endpoint, waiting.to_detail(), message)

    def _start(self, spec: ConsumerSpec, data_dir: Path, record: _Record) -> DeploymentStatus:
        port = self._choose_port(spec.slug, record.port)
        endpoint = f"http://{_url_host(self._public_host)}:{port}"
        command = [self._python, "-m", "workflow_api", "serve", "--host", self._host]
        command += ["--port", str(port)]
        try:
            storage = self._storage.ensure(spec)
        except ConsumerStorageError as error:
            message = f"cannot prepare the consumer's storage: {error}"
            log.error("consumer %s (slug %s): %s", spec.consumer_id, spec.slug, message)
            failed = replace(record, port=port, process=None, waiting_since=None)
            return DeploymentStatus("failed", record.endpoint, failed.to_detail(), message)
        environment = consumer_environment(
            self._common,
            spec,
            data_dir=data_dir,
            public_url=endpoint,
            python=self._python,
            inherited=os.environ,
            storage=storage,
        )
        moment = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        try:
            for directory in (self._root, data_dir):  # other consumers' workers: no way in
                private_dir(directory)
            environment |= self._sandbox.environment(self._root, spec.slug)
            with open_private(data_dir / LOG_FILE) as log_file:
                log_file.write(f"[deployer] {moment} starting on {self._host}:{port}\n".encode())
                log_file.flush()
                process = self._assign_spare(environment, port, data_dir) or subprocess.Popen(
                    command,
                    cwd=data_dir,
                    env=environment,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self._starting.add(spec.slug)
        except OSError as error:
            message = f"cannot start the workflow-api: {error}"
            log.error("consumer %s (slug %s): %s", spec.consumer_id, spec.slug, message)
            failed = replace(record, port=port, process=None, waiting_since=None)
            return DeploymentStatus("failed", record.endpoint, failed.to_detail(), message)
        stat = process_stat(process.pid)  # not reaped yet, so it is there
        identity = ProcessIdentity(process.pid, stat.start_ticks if stat else 0)
        self._children[identity] = (spec.slug, process)
        started = _Record(port, endpoint, identity, time.time(), record.starts + 1)
        _write_pid_file(data_dir, started)
        log.info("consumer %s (slug %s): started %s", spec.consumer_id, spec.slug, started)
        message = "starting the workflow-api"
        return DeploymentStatus("starting", endpoint, started.to_detail(), message)

    def _failed(
        self, spec: ConsumerSpec, data: Path, record: _Record, what: str
    ) -> DeploymentStatus:
        self._starting.discard(spec.slug)
        message = f"{what}; last lines of {data / LOG_FILE}:\n{_log_tail(data / LOG_FILE)}"
        log.error("consumer %s (slug %s): %s", spec.consumer_id, spec.slug, message)
        failed = replace(record, process=None, waiting_since=None)
        return DeploymentStatus("failed", record.endpoint, failed.to_detail(), message)

    def _stop(self, spec: ConsumerSpec, identity: ProcessIdentity) -> None:
        """SIGTERM its group (it stops its jobs), SIGKILL after the stop timeout; reap it."""
        if identity.alive():
            jobs = child_groups(identity.pid)
            log.info("consumer %s: stopping workflow-api pid %s", spec.consumer_id, identity.pid)
            signal_group(identity, signal.SIGTERM)
            if not self._wait_for_exit(identity, self._stop_timeout):
                log.warning("consumer %s: pid %s ignored SIGTERM", spec.consumer_id, identity.pid)
                self._kill(identity, jobs)
            for job in jobs:
                signal_group(job, signal.SIGKILL)
        self._reap_one(identity)

    def _kill(self, identity: ProcessIdentity, jobs: list[ProcessIdentity] | None = None) -> None:
        """SIGKILL its group and its jobs' groups; wait briefly for it; reap it."""
        jobs = child_groups(identity.pid) if jobs is None else jobs
        signal_group(identity, signal.SIGKILL)
        if not self._wait_for_exit(identity, KILL_WAIT_SECONDS):
            raise LocalDeploymentError(f"workflow-api pid {identity.pid} survives SIGKILL")
        for job in jobs:
            signal_group(job, signal.SIGKILL)
        self._reap_one(identity)

    # --- processes and ports -------------------------------------------------------------------

    def _reap(self) -> None:
        for identity, (_, process) in list(self._children.items()):
            code = process.poll()
            if code is not None:
                del self._children[identity]
                self._exit_codes[identity] = code

    def _reap_one(self, identity: ProcessIdentity) -> None:
        """Collect it: our Popen if we started it, else waitpid if it is our zombie after all."""
        signal_group(identity, signal.SIGKILL)  # whatever of its group is left
        self._exit_codes.pop(identity, None)
        child = self._children.pop(identity, None)
        if child is not None:
            try:
                child[1].wait(timeout=KILL_WAIT_SECONDS)
            except subprocess.TimeoutExpired:
                self._children[identity] = child
            return
        stat = process_stat(identity.pid)
        if stat and stat.start_ticks == identity.start_ticks and stat.parent == os.getpid():
            # a zombie leader is waitable only once its other threads are gone, too
            deadline = time.monotonic() + KILL_WAIT_SECONDS
            with contextlib.suppress(ChildProcessError):
                while os.waitpid(identity.pid, os.WNOHANG) == (0, 0):
                    if time.monotonic() > deadline:
                        log.warning("pid %s could not be reaped", identity.pid)
                        return
                    time.sleep(POLL_SECONDS)

    def _wait_for_exit(self, identity: ProcessIdentity, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while identity.alive():
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_SECONDS)
        return True

    def _probe_client(self) -> httpx.Client:
        """One client for every health probe: building one costs ~40 ms of CPU (TLS context)."""
        if self._probes is None:
            self._probes = httpx.Client(timeout=HEALTH_TIMEOUT_SECONDS, trust_env=False)
        return self._probes

    def _healthy(self, port: int) -> bool:
        url = f"http://{_url_host(_probe_host(self._host))}:{port}{HEALTH_PATH}"
        try:
            response = self._probe_client().get(url)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def _choose_port(self, slug: str, preferred: int | None) -> int:
        """`preferred` if it is free; otherwise one the system and this deployer have not given."""
        with self._lock:
            taken = {port for owner, port in self._ports.items() if owner != slug}
            if preferred is not None and preferred not in taken and self._bindable(preferred):
                port = preferred
            else:
                port = self._ephemeral_port()
                while port in taken:
                    port = self._ephemeral_port()
                if preferred is not None:
                    log.info("slug %s: port %s is taken; moving to %s", slug, preferred, port)
            self._ports[slug] = port
            return port

    def _bindable(self, port: int) -> bool:
        with self._socket() as probe:
            try:
                probe.bind((self._host, port))
            except OSError:
                return False
        return True

    def _ephemeral_port(self) -> int:
        with self._socket() as probe:
            probe.bind((self._host, 0))
            port: int = probe.getsockname()[1]
        return port

    def _socket(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        probe = socket.socket(family, socket.SOCK_STREAM)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        return probe

    def _data_dir(self, spec: ConsumerSpec) -> Path:
        if not SLUG_PATTERN.fullmatch(spec.slug):
            raise ValueError(f"slug {spec.slug!r} of {spec.consumer_id} is not a DNS label")
        return self._root / spec.slug


def _read_pid_file(data_dir: Path) -> _Record:
    try:
        detail = json.loads((data_dir / PID_FILE).read_text())
    except (OSError, ValueError):
        return _Record()
    return _Record.from_detail(detail) if isinstance(detail, dict) else _Record()


def _write_pid_file(data_dir: Path, record: _Record) -> None:
    path = data_dir / PID_FILE
    temporary = path.with_suffix(".tmp")
    try:
        write_private(temporary, json.dumps(record.to_detail()).encode())
        temporary.replace(path)
    except OSError as error:
        log.warning("cannot write %s: %s", path, error)


def _log_tail(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - LOG_TAIL_BYTES))
            text = handle.read().decode("utf-8", "replace")
    except OSError as error:
        return f"(no log: {error})"
    return "\n".join(text.splitlines()[-LOG_TAIL_LINES:])


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "exited"
    if code < 0:
        return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _probe_host(host: str) -> str:
    """Where to reach a server bound to `host` from this machine."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)  # noqa: S104
