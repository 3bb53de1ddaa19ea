"""The JobRunner protocol: how one job's stage-in → worker → push-out is carried out.

The JobManager owns queueing, state and notifications; a runner only runs one job when asked and
reports back. Cancelling the `run` coroutine must stop the job for real before it returns, unless
`close` came first: then the API is stopping and the job is left for recovery.

After a restart the manager asks `recover` about each job left running: a runner whose jobs
outlive the API (Kubernetes) answers True and is then asked to `run` it again with
`resumed=True`, which follows the job without starting anything new; the local runner stops
what is left of it and answers False, and the manager fails the job.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from data_sidecar.push_out import Admit
from workflow_common.proc_identity import ProcessIdentity
from workflow_contracts.asset import WorkflowAsset
from workflow_contracts.manifest import JobManifest, PushOutReport


@dataclass(frozen=True)
class JobRun:
    job_id: str
    asset: WorkflowAsset
    manifest: JobManifest
    env: dict[str, str]
    on_progress: Callable[[int, str], Awaitable[None]]
    on_started: Callable[[ProcessIdentity], Awaitable[None]]
    resumed: bool = False  # after a restart: follow what runs already, start nothing new
    admit: Admit | None = None  # asks the quota ledger before push-out (where it runs in-process)


@dataclass(frozen=True)
class Outcome:
    """`error` is set when the job could not run or finish normally (stage-in, timeout);
    `note` says how the worker was confined (local sandbox), for the job's message."""

    exit_code: int | None
    error: str | None
    report: PushOutReport | None
    note: str | None = None


class JobRunner(Protocol):
    def refusal(self, asset: WorkflowAsset) -> str | None:
        """Why this runner cannot run `asset` (e.g. no local command), or None."""

    async def run(self, job: JobRun) -> Outcome:
        """Run the job to its end; on cancellation stop everything of it, then re-raise."""

    def live_log(self, job_id: str) -> Path | None:
        """The log of a job that is running now, if this runner can show one (called from a
        request thread, so it may block briefly)."""

    def recover(self, job_id: str, identity: ProcessIdentity | None) -> bool:
        """After a restart, for a job left running: True if `run(resumed=True)` can follow it to
        its end; otherwise stop whatever of it may still run and return False. Idempotent."""

    def close(self) -> None:
        """The API is stopping: cancelled jobs are left to recovery, nothing is pushed."""
