"""The JobManager: submission, each job's run from start to end, dismissal, removal, recovery.

Routes (threads) call `submit`, `dismiss`, `remove`; the scheduler and the jobs run as tasks on the
event loop owned by the app's lifespan. The parts it composes, each in its own module:

    dispatch      the queue's scheduler and the jobs' tasks on the loop
    job_store     the jobs table; every status change a conditional update
    job_inputs    the job's own copies of its inline and fetched env-files
    manifests     the data-sidecar's manifest (signed URLs only)
    outcomes      how a job ends, judged from its runner's Outcome
    notifications the subscriber callbacks
    job_storage   the job's side of the quota

What fails a job before its runner starts comes as a `PermanentError` (an env-file that cannot
be read or is invalid); what the runner met is in its `Outcome`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Engine

from workflow_api.db import Job, JobStatus
from workflow_api.execution.dispatch import Dispatcher
from workflow_api.execution.job_inputs import JobInputs
from workflow_api.execution.job_storage import JobStorage, Settlement
from workflow_api.execution.job_store import JobStore, Verdict, process_identity
from workflow_api.execution.manifests import ManifestBuilder
from workflow_api.execution.notifications import Notifier
from workflow_api.execution.outcomes import judge_outcome
from workflow_api.execution.runner import JobRun, JobRunner, Outcome
from workflow_api.inputs import Launch, Subscriber
from workflow_api.ogc import results_document, status_info
from workflow_api.storage import base as keys
from workflow_api.storage.base import ObjectStore
from workflow_common.clock import utcnow
from workflow_common.retry import PermanentError
from workflow_contracts.asset import WorkflowAsset
from workflow_contracts.environment import literal_variables

log = logging.getLogger(__name__)

RESTARTED_MESSAGE = "the workflow-api restarted while this job was running; the job was stopped"
DISMISSED = Verdict(JobStatus.DISMISSED, "dismissed")
Catalog = Callable[[str], WorkflowAsset | None]


class JobManager:
    def __init__(
        self,
        *,
        engine: Engine,
        catalog: Catalog,
        store: ObjectStore,
        runner: JobRunner,
        storage: JobStorage,
        notifier: Notifier,
        base_url: str,
        max_running: int,
        manifests: ManifestBuilder,
        inputs: JobInputs,
    ) -> None:
        self._jobs = JobStore(engine)
        self._catalog = catalog
        self._store = store
        self._runner = runner
        self._storage = storage
        self._notifier = notifier
        self._base_url = base_url
        self._inputs = inputs
        self._manifests = manifests
        self._dispatch = Dispatcher(
            next_queued=self._jobs.next_queued, execute=self._execute, max_running=max_running
        )

    # --- lifecycle (event loop) ---------------------------------------------------------------

    async def start(self) -> None:
        self._dispatch.attach()
        resumed = await asyncio.to_thread(self._recover)
        self._dispatch.start(resumed)

    async def stop(self) -> None:
        """Stop scheduling and running; jobs left `running` are recovered at the next start."""
        self._runner.close()
        await self._dispatch.stop()
        self._inputs.close()

    # --- called from request threads -----------------------------------------------------------

    def submit(self, asset: WorkflowAsset, launch: Launch, subscriber: Subscriber | None) -> Job:
        job_id = str(uuid.uuid4())
        self._inputs.store_inline(job_id, launch)
        now = utcnow()
        job = Job(
            id=job_id,
            process_id=asset.id,
            status=JobStatus.ACCEPTED,
            message="queued",
            created=now,
            updated=now,
            launch=launch.model_dump(mode="json"),
            subscriber=subscriber.model_dump(mode="json", exclude_none=True)
            if subscriber
            else None,
        )
        job = self._jobs.add(job)
        log.info("job %s accepted for process %s", job_id, asset.id)
        self._dispatch.wake()
        return job

    def get(self, job_id: str) -> Job:
        return self._jobs.get(job_id)

    def dismiss(self, job_id: str) -> Job:
        """accepted → dismissed at once; running → stopped for real, then dismissed."""
        if self._jobs.transition(job_id, {JobStatus.ACCEPTED}, JobStatus.DISMISSED, "dismissed"):
            self._notify_finished(self.get(job_id))
            return self.get(job_id)
        if self.get(job_id).status is JobStatus.RUNNING:
            self._dispatch.call(self._dispatch.cancel(job_id))
        return self.get(job_id)

    def remove(self, job_id: str) -> None:
        """Delete a finished job and everything it stored; its quota is free again."""
        job = self.get(job_id)
        self._store.delete_prefix(keys.job_prefix(job.id))
        self._jobs.delete(job_id)
        self._storage.forget(job_id)
        log.info("job %s removed", job_id)

    def dismiss_process(self, process_id: str) -> int:
        """Dismiss every unfinished job of a process (its grant was revoked)."""
        return self._dismiss_each(self._jobs.ids(Job.process_id == process_id, unfinished=True))

    def dismiss_all(self) -> int:
        return self._dismiss_each(self._jobs.ids(unfinished=True))

    def _dismiss_each(self, job_ids: list[str]) -> int:
        for job_id in job_ids:
            self.dismiss(job_id)
        return len(job_ids)

    def remove_all(self) -> int:
        """Delete every finished job and what it stored (dismiss the others first)."""
        job_ids = self._jobs.ids()
        for job_id in job_ids:
            self.remove(job_id)
        return len(job_ids)

    def live_log(self, job_id: str) -> Any:
        return self._runner.live_log(job_id)

    # --- one job (event loop) ------------------------------------------------------------------

    async def _execute(self, job_id: str, resumed: bool = False) -> None:
        """Run a queued job, or (`resumed`) follow one the runner re-attached to after a restart."""
        if not resumed:
            started = await asyncio.to_thread(
                self._jobs.transition, job_id, {JobStatus.ACCEPTED}, JobStatus.RUNNING, "running"
            )
            if not started:
                return
        job = await asyncio.to_thread(self.get, job_id)
        asset = self._catalog(job.process_id)
        refusal = "the process is no longer available" if asset is None else None
        if asset is not None:
            refusal = self._runner.refusal(asset)
        if asset is None or refusal is not None:
            await self._finish(job_id, Verdict(JobStatus.FAILED, refusal or ""))
            return
        if not resumed:
            self._notify(job, "inProgressUri", status_info(job, self._base_url))
        launch = Launch.model_validate(job.launch)
        if not resumed and any(source.fetched_at_launch for source in launch.files):
            try:
                launch = await asyncio.to_thread(self._read_env_files, job_id, asset, launch)
            except asyncio.CancelledError:
                await self._finish_if_dismissed(job_id)
                raise
            except PermanentError as error:
                await self._finish(job_id, Verdict(JobStatus.FAILED, error.reason))
                return
        run = self._job_run(job_id, asset, launch, resumed)
        try:
            outcome = await self._runner.run(run)
        except asyncio.CancelledError:
            await self._finish_if_dismissed(job_id)
            raise
        except Exception as error:
            log.exception("job %s: the runner failed", job_id)
            outcome = Outcome(exit_code=None, error=f"internal error: {error}", report=None)
        refused = outcome.report.refused if outcome.report is not None else None
        await self._finish(job_id, judge_outcome(asset, outcome), refused=refused)

    def _job_run(self, job_id: str, asset: WorkflowAsset, launch: Launch, resumed: bool) -> JobRun:
        """What the runner is given: the manifest, the worker's variables, the callbacks."""
        return JobRun(
            job_id=job_id,
            asset=asset,
            manifest=self._manifests.build(job_id, asset, launch),
            env={**launch.env, **literal_variables(launch.literals)},
            on_progress=lambda percent, message: asyncio.to_thread(
                self._jobs.record_progress, job_id, percent, message
            ),
            on_started=lambda identity: asyncio.to_thread(
                self._jobs.record_process, job_id, identity
            ),
            resumed=resumed,
            admit=self._storage.admission(job_id),
        )

    def _read_env_files(self, job_id: str, asset: WorkflowAsset, launch: Launch) -> Launch:
        """The env-files behind hrefs, read now and kept; the updated launch is persisted."""
        updated = self._inputs.read_env_files(job_id, asset, launch)
        self._jobs.save_launch(job_id, updated)
        return updated

    async def _finish_if_dismissed(self, job_id: str) -> None:
        """On cancellation: a dismissal ends the job as dismissed; a shutdown leaves it running
        for recovery."""
        if self._dispatch.dismissing(job_id):
            await self._finish(job_id, DISMISSED)

    async def _finish(self, job_id: str, verdict: Verdict, *, refused: str | None = None) -> None:
        """Settle the job's storage and record its end (unless it has ended already), then
        tell the subscriber."""

        def settle(current: Job) -> Settlement:
            asset = self._catalog(current.process_id)
            return self._storage.settle(job_id, asset, refused=refused)

        job = await asyncio.to_thread(self._jobs.finish, job_id, verdict, settle)
        if job is not None:
            log.info("job %s is %s: %s", job_id, job.status.value, job.message)
            self._notify_finished(job)

    def _recover(self) -> list[str]:
        """Jobs that were running when the API stopped: the ones the runner can follow again are
        returned (to be resumed), the others stopped and failed. Queued ones stay queued."""
        resumed = []
        for job in self._jobs.running():
            if self._runner.recover(job.id, process_identity(job)):
                log.info("job %s: following it again after the restart", job.id)
                resumed.append(job.id)
            else:
                self._jobs.transition(
                    job.id, {JobStatus.RUNNING}, JobStatus.FAILED, RESTARTED_MESSAGE
                )
                self._storage.settle(job.id, self._catalog(job.process_id), refused=None)
        return resumed

    # --- notifications -------------------------------------------------------------------------

    def _notify(self, job: Job, uri_name: str, body: dict[str, Any]) -> None:
        uri = (job.subscriber or {}).get(uri_name)
        loop = self._dispatch.loop
        if uri and loop is not None:
            loop.call_soon_threadsafe(self._notifier.send, job.id, uri, body)

    def _notify_finished(self, job: Job) -> None:
        if job.status is JobStatus.SUCCESSFUL:
            self._notify(job, "successUri", results_document(job, self._base_url))
        else:
            self._notify(job, "failedUri", status_info(job, self._base_url))
