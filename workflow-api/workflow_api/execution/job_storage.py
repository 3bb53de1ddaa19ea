"""A job's side of the storage quota: its budget, the admission of its outputs, the final count.

budget     the manifest's `storage`: quota and what is free when the job starts (stage-in
           bounds extraction by it; a job container's push-out refuses outputs beyond it)
admission  the local runner's push-out asks the ledger itself, just before uploading, and
           holds the room under the objects' keys (the signed-PUT route reuses the hold)
settle     when the job ends: every object of the job is counted as the store has it; if
           the quota was refused, or the job's objects turn out to exceed the quota (only
           possible where nothing could check while it stored: S3 written from a job
           container), its outputs are deleted and the job fails with the shortfall
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from data_sidecar.push_out import LOG_TARGET, Admit
from workflow_api.quota import QuotaExceededError, QuotaLedger
from workflow_api.storage import base as keys
from workflow_api.storage.base import ObjectStore
from workflow_contracts.asset import WorkflowAsset
from workflow_contracts.manifest import StorageBudget, quota_shortfall

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settlement:
    stored_bytes: int
    refusal: str | None  # set when the outputs were deleted for the quota


class JobStorage:
    def __init__(self, ledger: QuotaLedger, store: ObjectStore) -> None:
        self._ledger = ledger
        self._store = store

    def budget(self) -> StorageBudget:
        usage = self._ledger.usage()
        return StorageBudget(free_bytes=usage.free, quota_bytes=usage.quota)

    def admission(self, job_id: str) -> Admit:
        def admit(sizes: Mapping[str, int]) -> str | None:
            held = {_key(job_id, name): size for name, size in sizes.items()}
            what = "the log" if set(sizes) == {LOG_TARGET} else "outputs"
            try:
                self._ledger.hold(held, job_id, what)
            except QuotaExceededError as error:
                return error.detail
            return None

        return admit

    def store_inline(self, job_id: str, key: str, size: int) -> None:
        """Hold room for an inline input before it is stored (raises `QuotaExceededError`)."""
        self._ledger.hold({key: size}, job_id, "the inline input")

    def record(self, job_id: str, key: str, size: int) -> None:
        self._ledger.record(key, size, job_id)

    def settle(
        self, job_id: str, asset: WorkflowAsset | None, *, refused: str | None
    ) -> Settlement:
        """Count what the job stored; delete its outputs if the quota refused them or if they
        do not fit after all."""
        if refused is not None:
            self._store.delete_prefix(keys.outputs_prefix(job_id))
        sizes = self._sizes(job_id, asset)
        overshoot = self._ledger.settle_job(job_id, sizes)
        outputs = keys.outputs_prefix(job_id)
        output_bytes = sum(size or 0 for key, size in sizes.items() if key.startswith(outputs))
        if overshoot and output_bytes:
            usage = self._ledger.usage()
            free = usage.quota - usage.stored - usage.reserved + output_bytes
            refused = quota_shortfall("outputs", output_bytes, free, usage.quota)
            log.warning("job %s: %s; its outputs are deleted", job_id, refused)
            self._store.delete_prefix(outputs)
            sizes = {key: None if key.startswith(outputs) else size for key, size in sizes.items()}
            self._ledger.settle_job(job_id, sizes)
        return Settlement(sum(size or 0 for size in sizes.values()), refused)

    def forget(self, job_id: str) -> None:
        self._ledger.forget_job(job_id)

    def _sizes(self, job_id: str, asset: WorkflowAsset | None) -> dict[str, int | None]:
        candidates = set(self._ledger.job_stored(job_id))
        candidates |= {keys.log_key(job_id), keys.report_key(job_id), keys.progress_key(job_id)}
        if asset is not None:
            candidates |= {keys.output_key(job_id, output.id) for output in asset.outputs}
        return {key: self._store.size(key) for key in sorted(candidates)}


def _key(job_id: str, name: str) -> str:
    return keys.log_key(job_id) if name == LOG_TARGET else keys.output_key(job_id, name)
