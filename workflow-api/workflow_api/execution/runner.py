"""The JobRunner protocol: how one job's stage-in → worker → push-out is carried out.

The JobManager owns queueing, state and notifications; a runner only runs one job when asked and
reports back. Cancelling the `run` coroutine must stop the job for real before it returns.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from workflow_api.processes import ProcessIdentity
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


@dataclass(frozen=True)
class Outcome:
    """`error` is set when the job could not run or finish normally (stage-in, timeout)."""

    exit_code: int | None
    error: str | None
    report: PushOutReport | None


class JobRunner(Protocol):
    async def run(self, job: JobRun) -> Outcome:
        """Run the job to its end; on cancellation stop everything of it, then re-raise."""

    def live_log(self, job_id: str) -> Path | None:
        """The log of a job that is running now, if this runner keeps one on disk."""

    def abandon(self, job_id: str, identity: ProcessIdentity | None) -> None:
        """After a restart: stop whatever of the job may still be running; idempotent."""

    def close(self) -> None:
        """The API is stopping: cancelled jobs are left to recovery, nothing is pushed."""
