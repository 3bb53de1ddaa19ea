"""The jobs table: every read and write of a job's row, status changes as conditional updates.

A status changes only by `UPDATE … WHERE status IN (allowed)` (`transition`) or, at the end, by
`finish`, which re-reads the row and leaves a job that is finished already as it is: so a
dismissal racing the scheduler's start, or two endings of one job, never overwrite each other.
All methods block (database I/O); the manager calls them from worker threads on the loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from workflow_api.db import Job, JobStatus
from workflow_api.errors import NoSuchJobError
from workflow_api.execution.job_storage import Settlement
from workflow_api.inputs import Launch
from workflow_common.clock import utcnow
from workflow_common.proc_identity import ProcessIdentity

log = logging.getLogger(__name__)

UNFINISHED = (JobStatus.ACCEPTED, JobStatus.RUNNING)


@dataclass(frozen=True)
class Verdict:
    """How a job ends (see `outcomes`): its final status, message and results document."""

    status: JobStatus
    message: str
    results: dict[str, Any] | None = None


class JobStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, job: Job) -> Job:
        with Session(self._engine) as session:
            session.add(job)
            session.commit()
            session.refresh(job)
        return job

    def get(self, job_id: str) -> Job:
        with Session(self._engine) as session:
            job = session.get(Job, job_id)
        if job is None:
            raise NoSuchJobError(f"no job {job_id!r}")
        return job

    def delete(self, job_id: str) -> None:
        with Session(self._engine) as session:
            stored = session.get(Job, job_id)
            if stored is not None:
                session.delete(stored)
                session.commit()

    def ids(self, *conditions: Any, unfinished: bool = False) -> list[str]:
        """The ids of the jobs that meet `conditions` (and are not finished, if asked)."""
        if unfinished:
            conditions = (col(Job.status).in_(UNFINISHED), *conditions)
        with Session(self._engine) as session:
            return list(session.exec(select(Job.id).where(*conditions)))

    def running(self) -> list[Job]:
        with Session(self._engine) as session:
            return list(session.exec(select(Job).where(Job.status == JobStatus.RUNNING)))

    def next_queued(self, exclude: set[str]) -> str | None:
        """The oldest accepted job not in `exclude` (FIFO by creation, then id)."""
        with Session(self._engine) as session:
            query = (
                select(Job.id)
                .where(Job.status == JobStatus.ACCEPTED, col(Job.id).not_in(exclude))
                .order_by(col(Job.created), col(Job.id))
                .limit(1)
            )
            return session.exec(query).first()

    def transition(
        self, job_id: str, allowed: set[JobStatus], target: JobStatus, message: str
    ) -> bool:
        """Move the job to `target` if its status is one of `allowed`; False if it was not."""
        now = utcnow()
        values: dict[str, Any] = {"status": target, "message": message, "updated": now}
        if target is JobStatus.RUNNING:
            values["started"] = now
        if target.finished:
            values["finished"] = now
        with Session(self._engine) as session:
            result = session.exec(
                update(Job)
                .where(col(Job.id) == job_id, col(Job.status).in_(allowed))
                .values(**values)
            )
            session.commit()
            changed: bool = result.rowcount == 1
        if changed:
            log.info("job %s is %s: %s", job_id, target.value, message)
        return changed

    def finish(
        self, job_id: str, verdict: Verdict, settle: Callable[[Job], Settlement]
    ) -> Job | None:
        """End an unfinished job: `settle` counts its storage (and may refuse its outputs, which
        fails the job with the shortfall). None when the job is gone or finished already."""
        with Session(self._engine) as session:
            current = session.get(Job, job_id)
        if current is None or current.status.finished:
            return None
        settled = settle(current)
        if settled.refusal is not None:
            verdict = Verdict(JobStatus.FAILED, settled.refusal)
        now = utcnow()
        with Session(self._engine) as session:
            job = session.get(Job, job_id)
            if job is None or job.status.finished:
                return None
            job.status, job.message, job.updated, job.finished = (
                verdict.status,
                verdict.message,
                now,
                now,
            )
            if verdict.status is JobStatus.SUCCESSFUL:
                job.progress = 100
            job.results = verdict.results
            job.stored_bytes = settled.stored_bytes
            session.add(job)
            session.commit()
            session.refresh(job)
            return job

    def record_progress(self, job_id: str, percent: int, message: str) -> None:
        with Session(self._engine) as session:
            session.exec(
                update(Job)
                .where(col(Job.id) == job_id, col(Job.status) == JobStatus.RUNNING)
                .values(progress=percent, message=message or "running", updated=utcnow())
            )
            session.commit()

    def record_process(self, job_id: str, identity: ProcessIdentity) -> None:
        """The worker's process group, so that a restart can stop what is left of it."""
        with Session(self._engine) as session:
            session.exec(
                update(Job)
                .where(col(Job.id) == job_id)
                .values(process_group=identity.pid, process_start_ticks=identity.start_ticks)
            )
            session.commit()

    def save_launch(self, job_id: str, launch: Launch) -> None:
        with Session(self._engine) as session:
            session.exec(
                update(Job)
                .where(col(Job.id) == job_id)
                .values(launch=launch.model_dump(mode="json"))
            )
            session.commit()


def process_identity(job: Job) -> ProcessIdentity | None:
    """The worker's process group as recorded, if it was."""
    if job.process_group is None or job.process_start_ticks is None:
        return None
    return ProcessIdentity(job.process_group, job.process_start_ticks)
