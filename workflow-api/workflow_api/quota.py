"""The consumer's storage quota ledger: everything stored, plus what is being received now.

    stored    uploads (their own table) + job objects (`stored_objects`: outputs, logs, reports,
              progress lines, inline inputs; one persisted row per key, replaced on overwrite)
    reserved  bytes on their way in (uploads, signed PUTs, the local runner's push-out), held in
              memory: a restart drops them together with the transfers they belonged to
    free      quota - stored - reserved

Every check and change happens under one lock, so parallel transfers cannot overshoot together.
A hold on a key is reused by whoever stores that key next (the local runner admits a job's outputs
up front; the signed-PUT route then finds their room already held), so nothing is counted twice.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import delete, func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from workflow_api.db import Job, StoredObject, Upload
from workflow_api.errors import PayloadTooLargeError
from workflow_contracts.manifest import quota_shortfall


class QuotaExceededError(PayloadTooLargeError):
    """The quota has no room for what is being stored; the detail says how short it is."""


@dataclass(frozen=True)
class QuotaUsage:
    quota: int
    stored: int
    reserved: int

    @property
    def free(self) -> int:
        return max(self.quota - self.stored - self.reserved, 0)


@dataclass
class _Hold:
    size: int
    job_id: str | None


class QuotaLedger:
    def __init__(self, engine: Engine, quota: int) -> None:
        self._engine = engine
        self.quota = quota
        self._anonymous = 0  # uploads in progress (they get their key only once complete)
        self._holds: dict[str, _Hold] = {}
        self._lock = threading.Lock()

    # --- reading ----------------------------------------------------------------------------

    def stored(self) -> int:
        with Session(self._engine) as session:
            uploads = session.exec(select(func.coalesce(func.sum(Upload.size), 0))).one()
            objects = session.exec(select(func.coalesce(func.sum(StoredObject.size), 0))).one()
        return int(uploads) + int(objects)

    def usage(self) -> QuotaUsage:
        with self._lock:
            return QuotaUsage(self.quota, self.stored(), self._reserved())

    def job_stored(self, job_id: str) -> dict[str, int]:
        with Session(self._engine) as session:
            rows = session.exec(select(StoredObject).where(StoredObject.job_id == job_id))
            return {row.key: row.size for row in rows}

    def _reserved(self) -> int:
        return self._anonymous + sum(hold.size for hold in self._holds.values())

    # --- anonymous reservations (uploads) ----------------------------------------------------

    def reserve(self, size: int, what: str = "the upload") -> None:
        with self._lock:
            free = self.quota - self.stored() - self._reserved()
            if size > free:
                raise QuotaExceededError(
                    quota_shortfall(what, size, free, self.quota)
                    + "; delete uploads or finished jobs to make room"
                )
            self._anonymous += size

    def release(self, size: int) -> None:
        with self._lock:
            self._anonymous -= size

    # --- holds on keys (job objects) ---------------------------------------------------------

    def hold(self, sizes: Mapping[str, int], job_id: str | None, what: str) -> None:
        """Hold room for each key (at least its size; a larger hold stays), all or nothing."""
        with self._lock:
            held = {key: self._holds[key].size for key in sizes if key in self._holds}
            extra = sum(max(size - held.get(key, 0), 0) for key, size in sizes.items())
            free = self.quota - self.stored() - self._reserved()
            if extra > free:
                need = sum(sizes.values())
                have = free + sum(min(held.get(key, 0), size) for key, size in sizes.items())
                raise QuotaExceededError(quota_shortfall(what, need, have, self.quota))
            for key, size in sizes.items():
                if size > held.get(key, 0):
                    self._holds[key] = _Hold(size, job_id)

    def release_key(self, key: str) -> None:
        with self._lock:
            self._holds.pop(key, None)

    def record(self, key: str, size: int, job_id: str | None) -> None:
        """`key` is stored with `size` bytes (replacing an earlier count); its hold is done."""
        with self._lock, Session(self._engine) as session:
            row = session.get(StoredObject, key)
            if row is None:
                row = StoredObject(key=key, job_id=job_id, size=size)
            row.size = size
            session.add(row)
            session.commit()
            self._holds.pop(key, None)

    def settle_job(self, job_id: str, sizes: Mapping[str, int | None]) -> int:
        """Count a job's objects as the store has them (None: absent), drop its holds, and return
        by how many bytes everything stored now exceeds the quota (0 when within)."""
        with self._lock, Session(self._engine) as session:
            session.exec(delete(StoredObject).where(col(StoredObject.job_id) == job_id))
            for key, size in sizes.items():
                if size is not None:
                    session.merge(StoredObject(key=key, job_id=job_id, size=size))
            session.commit()
            for key in [key for key, hold in self._holds.items() if hold.job_id == job_id]:
                del self._holds[key]
            return max(self.stored() + self._reserved() - self.quota, 0)

    def adopt_earlier_counts(self) -> int:
        """Jobs finished before job objects had rows were counted by `Job.stored_bytes` only:
        give each such job one row of that size (replaced when the job is settled or removed).
        Idempotent; returns how many jobs were adopted."""
        with self._lock, Session(self._engine) as session:
            counted = select(StoredObject.job_id).where(col(StoredObject.job_id).is_not(None))
            jobs = session.exec(
                select(Job).where(Job.stored_bytes > 0, col(Job.id).not_in(counted))
            ).all()
            for job in jobs:
                key = f"jobs/{job.id}/stored-before-the-ledger"
                session.add(StoredObject(key=key, job_id=job.id, size=job.stored_bytes))
            session.commit()
            return len(jobs)

    def forget_job(self, job_id: str) -> None:
        """The job and everything it stored are deleted."""
        self.settle_job(job_id, {})
