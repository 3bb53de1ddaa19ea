"""The job manifest: what the data-sidecar of one job may fetch and where it may store.

Only signed URLs go in (no credential): a GET for each upload and inline input (an input given
by an external URL is passed as it is), a signed upload target for each declared output, capped
at what the quota has free when the job starts, and one for the log, capped at the log limit.
The URLs must outlive the job: they live at least its timeout plus `margin` (time to start and
to push out), never less than the configured `ttl`, and never more than S3 presigning allows.
"""

from __future__ import annotations

from datetime import timedelta

from workflow_api.execution.job_storage import JobStorage
from workflow_api.inputs import Launch
from workflow_api.storage import base as keys
from workflow_api.storage.base import ObjectStore
from workflow_contracts.asset import WorkflowAsset
from workflow_contracts.manifest import (
    ArchiveLimits,
    EgressRules,
    JobManifest,
    OutputTarget,
    StagedInput,
)

MAX_SIGNED_URL_TTL = timedelta(days=7)  # what S3 presigning allows


class ManifestBuilder:
    def __init__(
        self,
        *,
        store: ObjectStore,
        storage: JobStorage,
        ttl: timedelta,
        margin: timedelta,
        archive_limits: ArchiveLimits,
        max_log_size: int,
        egress_rules: EgressRules,
    ) -> None:
        self._store = store
        self._storage = storage
        self._ttl = ttl
        self._margin = margin
        self._archive_limits = archive_limits
        self._max_log_size = max_log_size
        self._egress_rules = egress_rules

    def build(self, job_id: str, asset: WorkflowAsset, launch: Launch) -> JobManifest:
        lifetime = timedelta(seconds=asset.execution.timeout_seconds) + self._margin
        ttl = min(max(self._ttl, lifetime), MAX_SIGNED_URL_TTL)
        inputs = self._inputs(job_id, launch, ttl)
        # Each output may take at most what is free now: S3 enforces that from the upload's
        # signed policy, the filesystem store's route from the ledger (see JobStorage).
        budget = self._storage.budget()
        outputs = []
        for output in asset.outputs:
            upload = self._store.signed_upload(
                keys.output_key(job_id, output.id), ttl, budget.free_bytes
            )
            outputs.append(
                OutputTarget(id=output.id, kind=output.kind, url=upload.url, form=upload.form)
            )
        log_upload = self._store.signed_upload(keys.log_key(job_id), ttl, self._max_log_size)
        return JobManifest(
            job_id=job_id,
            inputs=inputs,
            literals=launch.literals,
            outputs=outputs,
            log_url=log_upload.url,
            log_form=log_upload.form,
            archive_limits=self._archive_limits,
            storage=budget,
            egress=self._egress_rules,
        )

    def _inputs(self, job_id: str, launch: Launch, ttl: timedelta) -> list[StagedInput]:
        inputs = []
        for source in launch.files:
            if source.upload_id is not None:
                url = self._store.signed_url("GET", keys.upload_key(source.upload_id), ttl)
            elif source.inline_text is not None:
                url = self._store.signed_url("GET", keys.inline_input_key(job_id, source.id), ttl)
            else:
                assert source.url is not None
                url = source.url
            inputs.append(
                StagedInput(
                    id=source.id,
                    kind=source.kind,
                    url=url,
                    size=source.size,
                    sha256=source.sha256,
                    max_size=source.max_size,
                    external=source.upload_id is None and source.inline_text is None,
                )
            )
        return inputs
