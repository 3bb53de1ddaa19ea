"""The local deployer: one supervised `workflow_api serve` process per consumer on this machine.

Each consumer gets a data directory `root/<slug>` (the workflow-api's database and storage, its
`workflow-api.log` and `workflow-api.pid`), a port of its own (`ports`), and a process in a
session of its own, so that it outlives a provisioner crash and can be stopped as a group
(`processes`). What `detail` holds, and the pid file that lets a restarted provisioner adopt a
process it never recorded, are in `record`; the warm spare that makes new consumers start fast
in `spare`; the sandbox its workers run in in `sandbox`.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from provisioner.deployers.base import ConsumerSpec, DeploymentStatus
from provisioner.deployers.local.logs import LOG_FILE, log_tail
from provisioner.deployers.local.ports import PortBook, probe_host, url_host
from provisioner.deployers.local.processes import POLL_SECONDS, ProcessTable, describe_exit
from provisioner.deployers.local.record import PID_FILE, LocalRecord, read_pid_file, write_pid_file
from provisioner.deployers.local.sandbox import LocalSandbox
from provisioner.deployers.local.spare import Spare
from provisioner.storage.consumer import ConsumerStorage, ConsumerStorageError, NoConsumerStorage
from workflow_common.private_files import open_private, private_dir
from workflow_common.proc_identity import ProcessIdentity
from workflow_contracts.workflow_api_env import PER_CONSUMER_NAMES, ConsumerIdentity, WorkerSandbox

log = logging.getLogger(__name__)

__all__ = ["LOG_FILE", "PID_FILE", "POLL_SECONDS", "LocalDeployer", "ProcessIdentity"]

HEALTH_PATH = "/conformance"
HEALTH_TIMEOUT_SECONDS = 0.5
SLUG_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# Set here for each consumer (identity, sandbox), so never in the settings all consumers share.
PER_CONSUMER_VARIABLES = PER_CONSUMER_NAMES | WorkerSandbox.names()


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
        **ConsumerIdentity(
            consumer_id=spec.consumer_id,
            data_dir=str(data_dir),
            public_url=public_url,
            token_audience=spec.token_audience,
        ).to_env(),
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
        self._processes = ProcessTable()
        self._ports = PortBook(host)
        self._spares = Spare(root=root, python=self._python, host=host)
        self._starting: set[str] = set()  # slugs started and not yet healthy
        self._probes: httpx.Client | None = None

    # --- the warm spare (see spare.py) -------------------------------------------------------

    @property
    def _spare(self) -> subprocess.Popen[bytes] | None:
        """The spare workflow-api waiting for its consumer, if any."""
        return self._spares.process

    def prepare(self) -> None:
        """Pre-start a spare workflow-api (see spare.py)."""
        self._spares.prepare()

    def close(self) -> None:
        """Let the spare go, and the health probes' client."""
        if self._probes is not None:
            self._probes.close()
            self._probes = None
        self._spares.close()

    def _assign_spare(
        self, environment: dict[str, str], port: int, data_dir: Path
    ) -> subprocess.Popen[bytes] | None:
        return self._spares.assign(environment, port, data_dir)

    # --- the Deployer protocol -----------------------------------------------------------------

    def deploy(self, spec: ConsumerSpec, detail: dict[str, Any]) -> DeploymentStatus:
        data_dir = self._data_dir(spec)
        self._processes.reap()
        record = LocalRecord.from_detail(detail)
        latest = read_pid_file(data_dir)  # newer than `detail` if that was never persisted
        if latest.process and latest.process != record.process and latest.process.alive():
            if record.process is not None and record.process.alive():
                log.warning("consumer %s: stopping a duplicate (%s)", spec.consumer_id, record)
                self._processes.kill(record.process)
            log.info("consumer %s: adopting %s from %s", spec.consumer_id, latest, PID_FILE)
            record = replace(latest, starts=max(latest.starts, record.starts))
        if record.process is not None and record.process.alive():
            return self._supervise(spec, data_dir, record)
        if record.process is not None:
            code = self._processes.exit_code(record.process)
            self._processes.reap_one(record.process)
            what = f"the workflow-api (pid {record.process.pid}) {describe_exit(code)}"
            if record.waiting_since is not None:
                return self._failed(spec, data_dir, record, f"{what} while starting")
            log.warning("consumer %s: %s; starting it again", spec.consumer_id, what)
        return self._start(spec, data_dir, record)

    def remove(self, spec: ConsumerSpec, detail: dict[str, Any]) -> None:
        data_dir = self._data_dir(spec)
        self._processes.reap()
        records = (LocalRecord.from_detail(detail), read_pid_file(data_dir))
        candidates = {record.process for record in records if record.process is not None}
        candidates.update(self._processes.of(spec.slug))
        for identity in candidates:
            self._processes.stop(spec.consumer_id, identity, self._stop_timeout)
        if data_dir.exists():
            shutil.rmtree(data_dir)
        self._storage.remove(spec)
        self._ports.release(spec.slug)
        self._starting.discard(spec.slug)
        log.info("consumer %s: workflow-api, %s and storage removed", spec.consumer_id, data_dir)

    # --- steps ---------------------------------------------------------------------------------

    def _supervise(
        self, spec: ConsumerSpec, data_dir: Path, record: LocalRecord
    ) -> DeploymentStatus:
        assert record.process is not None and record.port is not None
        self._ports.hold(spec.slug, record.port)
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
            self._processes.kill(record.process)
            what = (
                f"the workflow-api (pid {record.process.pid}) did not answer {HEALTH_PATH} on"
                f" port {record.port} within {self._start_timeout:g} s and was stopped"
            )
            return self._failed(spec, data_dir, record, what)
        waiting = replace(record, waiting_since=since)
        message = "waiting for the workflow-api to answer"
        return DeploymentStatus("starting", record.endpoint, waiting.to_detail(), message)

    def _start(self, spec: ConsumerSpec, data_dir: Path, record: LocalRecord) -> DeploymentStatus:
        port = self._ports.choose(spec.slug, record.port)
        endpoint = f"http://{url_host(self._public_host)}:{port}"
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
        identity = self._processes.add(spec.slug, process)
        started = LocalRecord(port, endpoint, identity, time.time(), record.starts + 1)
        write_pid_file(data_dir, started)
        log.info("consumer %s (slug %s): started %s", spec.consumer_id, spec.slug, started)
        message = "starting the workflow-api"
        return DeploymentStatus("starting", endpoint, started.to_detail(), message)

    def _failed(
        self, spec: ConsumerSpec, data: Path, record: LocalRecord, what: str
    ) -> DeploymentStatus:
        self._starting.discard(spec.slug)
        message = f"{what}; last lines of {data / LOG_FILE}:\n{log_tail(data / LOG_FILE)}"
        log.error("consumer %s (slug %s): %s", spec.consumer_id, spec.slug, message)
        failed = replace(record, process=None, waiting_since=None)
        return DeploymentStatus("failed", record.endpoint, failed.to_detail(), message)

    # --- health ---------------------------------------------------------------------------------

    def _probe_client(self) -> httpx.Client:
        """One client for every health probe: building one costs ~40 ms of CPU (TLS context)."""
        if self._probes is None:
            self._probes = httpx.Client(timeout=HEALTH_TIMEOUT_SECONDS, trust_env=False)
        return self._probes

    def _healthy(self, port: int) -> bool:
        url = f"http://{url_host(probe_host(self._host))}:{port}{HEALTH_PATH}"
        try:
            response = self._probe_client().get(url)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def _data_dir(self, spec: ConsumerSpec) -> Path:
        if not SLUG_PATTERN.fullmatch(spec.slug):
            raise ValueError(f"slug {spec.slug!r} of {spec.consumer_id} is not a DNS label")
        return self._root / spec.slug
