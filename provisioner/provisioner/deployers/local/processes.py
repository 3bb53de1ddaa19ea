"""The local deployer's processes: the workflow-apis it started (to reap them and know their exit
codes) and how one is stopped. A process is known by its pid and start time
(`ProcessIdentity`), so a recycled pid is never taken for it; stopping signals its process
group and its jobs' groups (each job runs in a session of its own)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time

from workflow_common.proc_identity import ProcessIdentity, child_groups, process_stat, signal_group
from workflow_common.retry import TemporaryError

log = logging.getLogger(__name__)

KILL_WAIT_SECONDS = 5.0
POLL_SECONDS = 0.05


class LocalDeploymentError(TemporaryError):
    """A workflow-api process that does not go away even after SIGKILL; the caller retries."""


class ProcessTable:
    """The workflow-api processes this deployer started, by identity (with their slugs)."""

    def __init__(self) -> None:
        self._children: dict[ProcessIdentity, tuple[str, subprocess.Popen[bytes]]] = {}
        self._exit_codes: dict[ProcessIdentity, int] = {}

    def add(self, slug: str, process: subprocess.Popen[bytes]) -> ProcessIdentity:
        stat = process_stat(process.pid)  # not reaped yet, so it is there
        identity = ProcessIdentity(process.pid, stat.start_ticks if stat else 0)
        self._children[identity] = (slug, process)
        return identity

    def of(self, slug: str) -> set[ProcessIdentity]:
        return {identity for identity, (owner, _) in self._children.items() if owner == slug}

    def reap(self) -> None:
        """Collect every child that ended, keeping its exit code for `exit_code`."""
        for identity, (_, process) in list(self._children.items()):
            code = process.poll()
            if code is not None:
                del self._children[identity]
                self._exit_codes[identity] = code

    def exit_code(self, identity: ProcessIdentity) -> int | None:
        return self._exit_codes.pop(identity, None)

    def reap_one(self, identity: ProcessIdentity) -> None:
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

    def stop(self, consumer_id: str, identity: ProcessIdentity, timeout: float) -> None:
        """SIGTERM its group (it stops its jobs), SIGKILL after `timeout`; reap it."""
        if identity.alive():
            jobs = child_groups(identity.pid)
            log.info("consumer %s: stopping workflow-api pid %s", consumer_id, identity.pid)
            signal_group(identity, signal.SIGTERM)
            if not wait_for_exit(identity, timeout):
                log.warning("consumer %s: pid %s ignored SIGTERM", consumer_id, identity.pid)
                self.kill(identity, jobs)
            for job in jobs:
                signal_group(job, signal.SIGKILL)
        self.reap_one(identity)

    def kill(self, identity: ProcessIdentity, jobs: list[ProcessIdentity] | None = None) -> None:
        """SIGKILL its group and its jobs' groups; wait briefly for it; reap it."""
        jobs = child_groups(identity.pid) if jobs is None else jobs
        signal_group(identity, signal.SIGKILL)
        if not wait_for_exit(identity, KILL_WAIT_SECONDS):
            raise LocalDeploymentError(f"workflow-api pid {identity.pid} survives SIGKILL")
        for job in jobs:
            signal_group(job, signal.SIGKILL)
        self.reap_one(identity)


def wait_for_exit(identity: ProcessIdentity, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while identity.alive():
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)
    return True


def describe_exit(code: int | None) -> str:
    if code is None:
        return "exited"
    if code < 0:
        return f"was killed by signal {-code}"
    return f"exited with code {code}"
