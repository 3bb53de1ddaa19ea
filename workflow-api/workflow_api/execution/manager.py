"""The JobManager: persisted job state, a FIFO queue with a running-jobs limit, dismissal, recovery.

Routes (threads) call `submit`, `dismiss`, `remove`; the scheduler and the jobs run as tasks on the
event loop owned by the app's lifespan. Every status change is a conditional update in the
database (`accepted → running` only if still accepted, ...), so a dismissal racing a start is safe.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import tempfile
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from workflow_api.db import Job, JobStatus
from workflow_api.errors import InvalidInputError, NoSuchJobError
from workflow_api.execution.env_files import RemoteEnvFileError, RemoteEnvFiles
from workflow_api.execution.job_storage import JobStorage
from workflow_api.execution.notifications import Notifier
from workflow_api.execution.runner import JobRun, JobRunner, Outcome
from workflow_api.inputs import Launch, Subscriber, env_file_variables
from workflow_api.ogc import results_document, status_info
from workflow_api.storage import base as keys
from workflow_api.storage.base import ObjectStore
from workflow_common.clock import utcnow
from workflow_common.proc_identity import ProcessIdentity
from workflow_contracts.asset import WorkflowAsset
from workflow_contracts.environment import literal_variables
from workflow_contracts.manifest import (
    ArchiveLimits,
    EgressRules,
    JobManifest,
    OutputTarget,
    StagedInput,
)

log = logging.getLogger(__name__)

RESTARTED_MESSAGE = "the workflow-api restarted while this job was running; the job was stopped"
MAX_SIGNED_URL_TTL = timedelta(days=7)  # what S3 presigning allows
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
        signed_url_ttl: timedelta,
        archive_limits: ArchiveLimits,
        max_log_size: int,
        env_files: RemoteEnvFiles,
        egress_rules: EgressRules,
        signed_url_margin: timedelta = timedelta(minutes=15),
    ) -> None:
        self._engine = engine
        self._catalog = catalog
        self._store = store
        self._runner = runner
        self._storage = storage
        self._notifier = notifier
        self._base_url = base_url
        self._max_running = max_running
        self._ttl = signed_url_ttl
        self._url_margin = signed_url_margin
        self._archive_limits = archive_limits
        self._max_log_size = max_log_size
        self._env_files = env_files
        self._egress_rules = egress_rules
        self._running: dict[str, asyncio.Task[None]] = {}
        self._dismissing: set[str] = set()
        self._wakeup = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduler: asyncio.Task[None] | None = None

    # --- lifecycle (event loop) ---------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        resumed = await asyncio.to_thread(self._recover)
        for job_id in resumed:
            self._start_task(job_id, resumed=True)
        self._scheduler = asyncio.create_task(self._schedule(), name="job-scheduler")
        self._wakeup.set()

    async def stop(self) -> None:
        """Stop scheduling and running; jobs left `running` are recovered at the next start."""
        self._runner.close()
        if self._scheduler is not None:
            self._scheduler.cancel()
            await asyncio.gather(self._scheduler, return_exceptions=True)
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._env_files.close()

    # --- called from request threads -----------------------------------------------------------

    def submit(self, asset: WorkflowAsset, launch: Launch, subscriber: Subscriber | None) -> Job:
        job_id = str(uuid.uuid4())
        for source in launch.files:
            if source.inline_text is not None:
                self._store_inline(job_id, source.id, source.inline_text)
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
        with Session(self._engine) as session:
            session.add(job)
            session.commit()
            session.refresh(job)
        log.info("job %s accepted for process %s", job_id, asset.id)
        self._wake()
        return job

    def get(self, job_id: str) -> Job:
        with Session(self._engine) as session:
            job = session.get(Job, job_id)
        if job is None:
            raise NoSuchJobError(f"no job {job_id!r}")
        return job

    def dismiss(self, job_id: str) -> Job:
        """accepted → dismissed at once; running → stopped for real, then dismissed."""
        if self._transition(job_id, {JobStatus.ACCEPTED}, JobStatus.DISMISSED, "dismissed"):
            self._notify_finished(self.get(job_id))
            return self.get(job_id)
        if self.get(job_id).status is JobStatus.RUNNING:
            self._call_on_loop(self._cancel_running(job_id))
        return self.get(job_id)

    def remove(self, job_id: str) -> None:
        """Delete a finished job and everything it stored; its quota is free again."""
        job = self.get(job_id)
        self._store.delete_prefix(keys.job_prefix(job.id))
        with Session(self._engine) as session:
            stored = session.get(Job, job_id)
            if stored is not None:
                session.delete(stored)
                session.commit()
        self._storage.forget(job_id)
        log.info("job %s removed", job_id)

    def dismiss_process(self, process_id: str) -> int:
        """Dismiss every unfinished job of a process (its grant was revoked)."""
        return self._dismiss_where(Job.process_id == process_id)

    def dismiss_all(self) -> int:
        return self._dismiss_where()

    def _dismiss_where(self, *conditions: Any) -> int:
        unfinished = col(Job.status).in_([JobStatus.ACCEPTED, JobStatus.RUNNING])
        with Session(self._engine) as session:
            job_ids = list(session.exec(select(Job.id).where(unfinished, *conditions)))
        for job_id in job_ids:
            self.dismiss(job_id)
        return len(job_ids)

    def remove_all(self) -> int:
        """Delete every finished job and what it stored (dismiss the others first)."""
        with Session(self._engine) as session:
            job_ids = list(session.exec(select(Job.id)))
        for job_id in job_ids:
            self.remove(job_id)
        return len(job_ids)

    def live_log(self, job_id: str) -> Any:
        return self._runner.live_log(job_id)

    # --- scheduling (event loop) ---------------------------------------------------------------

    def _wake(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wakeup.set)

    def _call_on_loop(self, coroutine: Any) -> None:
        assert self._loop is not None, "the job manager is not started"
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=120)

    async def _schedule(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while len(self._running) < self._max_running:
                job_id = await asyncio.to_thread(self._next_queued, set(self._running))
                if job_id is None:
                    break
                self._start_task(job_id, resumed=False)

    def _start_task(self, job_id: str, *, resumed: bool) -> None:
        task = asyncio.create_task(self._execute(job_id, resumed), name=f"job-{job_id}")
        self._running[job_id] = task
        task.add_done_callback(functools.partial(self._finished_task, job_id))

    def _finished_task(self, job_id: str, _task: asyncio.Task[None]) -> None:
        self._running.pop(job_id, None)
        self._dismissing.discard(job_id)
        self._wakeup.set()

    def _next_queued(self, exclude: set[str]) -> str | None:
        with Session(self._engine) as session:
            query = (
                select(Job.id)
                .where(Job.status == JobStatus.ACCEPTED, col(Job.id).not_in(exclude))
                .order_by(col(Job.created), col(Job.id))
                .limit(1)
            )
            return session.exec(query).first()

    async def _cancel_running(self, job_id: str) -> None:
        task = self._running.get(job_id)
        if task is None:
            return
        self._dismissing.add(job_id)
        task.cancel()
        await asyncio.wait([task])

    async def _execute(self, job_id: str, resumed: bool = False) -> None:
        """Run a queued job, or (`resumed`) follow one the runner re-attached to after a restart."""
        if not resumed:
            started = await asyncio.to_thread(
                self._transition, job_id, {JobStatus.ACCEPTED}, JobStatus.RUNNING, "running"
            )
            if not started:
                return
        job = await asyncio.to_thread(self.get, job_id)
        asset = self._catalog(job.process_id)
        refusal = "the process is no longer available" if asset is None else None
        if asset is not None:
            refusal = self._runner.refusal(asset)
        if asset is None or refusal is not None:
            await self._finish(job_id, JobStatus.FAILED, refusal or "", None)
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
            except (RemoteEnvFileError, InvalidInputError) as error:
                await self._finish(job_id, JobStatus.FAILED, str(error), None)
                return
        run = JobRun(
            job_id=job_id,
            asset=asset,
            manifest=self._manifest(job_id, asset, launch),
            env={**launch.env, **literal_variables(launch.literals)},
            on_progress=lambda percent, message: asyncio.to_thread(
                self._record_progress, job_id, percent, message
            ),
            on_started=lambda identity: asyncio.to_thread(self._record_process, job_id, identity),
            resumed=resumed,
            admit=self._storage.admission(job_id),
        )
        try:
            outcome = await self._runner.run(run)
        except asyncio.CancelledError:
            await self._finish_if_dismissed(job_id)
            raise
        except Exception as error:
            log.exception("job %s: the runner failed", job_id)
            outcome = Outcome(exit_code=None, error=f"internal error: {error}", report=None)
        status, message, results = _judge(asset, outcome)
        refused = outcome.report.refused if outcome.report is not None else None
        await self._finish(job_id, status, message, results, refused=refused)

    async def _finish_if_dismissed(self, job_id: str) -> None:
        """On cancellation: a dismissal ends the job as dismissed; a shutdown leaves it running
        for recovery."""
        if job_id in self._dismissing:
            await self._finish(job_id, JobStatus.DISMISSED, "dismissed", None)

    # --- persistence helpers (threads) ---------------------------------------------------------

    def _transition(
        self, job_id: str, allowed: set[JobStatus], target: JobStatus, message: str
    ) -> bool:
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

    async def _finish(
        self,
        job_id: str,
        status: JobStatus,
        message: str,
        results: dict[str, Any] | None,
        *,
        refused: str | None = None,
    ) -> None:
        def persist() -> Job | None:
            with Session(self._engine) as session:
                current = session.get(Job, job_id)
                if current is None or current.status.finished:
                    return None
                asset = self._catalog(current.process_id)
            settled = self._storage.settle(job_id, asset, refused=refused)
            now = utcnow()
            with Session(self._engine) as session:
                job = session.get(Job, job_id)
                if job is None or job.status.finished:
                    return None
                if settled.refusal is not None:
                    status_now, message_now, results_now = JobStatus.FAILED, settled.refusal, None
                else:
                    status_now, message_now, results_now = status, message, results
                job.status, job.message, job.updated, job.finished = (
                    status_now,
                    message_now,
                    now,
                    now,
                )
                if status_now is JobStatus.SUCCESSFUL:
                    job.progress = 100
                job.results = results_now
                job.stored_bytes = settled.stored_bytes
                session.add(job)
                session.commit()
                session.refresh(job)
                return job

        job = await asyncio.to_thread(persist)
        if job is not None:
            log.info("job %s is %s: %s", job_id, job.status.value, job.message)
            self._notify_finished(job)

    def _record_progress(self, job_id: str, percent: int, message: str) -> None:
        with Session(self._engine) as session:
            session.exec(
                update(Job)
                .where(col(Job.id) == job_id, col(Job.status) == JobStatus.RUNNING)
                .values(progress=percent, message=message or "running", updated=utcnow())
            )
            session.commit()

    def _record_process(self, job_id: str, identity: ProcessIdentity) -> None:
        with Session(self._engine) as session:
            session.exec(
                update(Job)
                .where(col(Job.id) == job_id)
                .values(
                    process_group=identity.pid,
                    process_start_ticks=identity.start_ticks,
                )
            )
            session.commit()

    def _recover(self) -> list[str]:
        """Jobs that were running when the API stopped: the ones the runner can follow again are
        returned (to be resumed), the others stopped and failed. Queued ones stay queued."""
        with Session(self._engine) as session:
            running = list(session.exec(select(Job).where(Job.status == JobStatus.RUNNING)))
        resumed = []
        for job in running:
            identity = None
            if job.process_group is not None and job.process_start_ticks is not None:
                identity = ProcessIdentity(job.process_group, job.process_start_ticks)
            if self._runner.recover(job.id, identity):
                log.info("job %s: following it again after the restart", job.id)
                resumed.append(job.id)
            else:
                self._transition(job.id, {JobStatus.RUNNING}, JobStatus.FAILED, RESTARTED_MESSAGE)
                self._storage.settle(job.id, self._catalog(job.process_id), refused=None)
        return resumed

    def _read_env_files(self, job_id: str, asset: WorkflowAsset, launch: Launch) -> Launch:
        """Fetch the env-files given as http(s) hrefs, check them as the request checks inline
        ones, and keep what was read as the job's own copy (the worker sees those bytes, not a
        second download). The updated launch is persisted."""
        files, env = [], dict(launch.env)
        for source in launch.files:
            if not source.fetched_at_launch:
                files.append(source)
                continue
            item = asset.input(source.id)
            assert item is not None and source.url is not None
            try:
                text = self._env_files.read(source.url, source.max_size)
            except RemoteEnvFileError as error:
                raise RemoteEnvFileError(f"input {source.id!r}: {error}") from error
            env.update(env_file_variables(item, text))
            self._store_inline(job_id, source.id, text)
            files.append(source.model_copy(update={"url": None, "inline_text": text}))
        updated = launch.model_copy(update={"files": files, "env": env})
        with Session(self._engine) as session:
            session.exec(
                update(Job)
                .where(col(Job.id) == job_id)
                .values(launch=updated.model_dump(mode="json"))
            )
            session.commit()
        return updated

    def _store_inline(self, job_id: str, input_id: str, text: str) -> None:
        key = keys.inline_input_key(job_id, input_id)
        data = text.encode("utf-8")
        self._storage.store_inline(job_id, key, len(data))
        with tempfile.NamedTemporaryFile("wb", delete=False) as handle:
            handle.write(data)
        self._store.put_file(key, Path(handle.name))
        self._storage.record(job_id, key, len(data))

    # --- documents -------------------------------------------------------------------------------

    def _manifest(self, job_id: str, asset: WorkflowAsset, launch: Launch) -> JobManifest:
        # The URLs must outlive the job: its timeout, plus time to start and to push out.
        lifetime = timedelta(seconds=asset.execution.timeout_seconds) + self._url_margin
        ttl = min(max(self._ttl, lifetime), MAX_SIGNED_URL_TTL)

        def signed(method: keys.SignedMethod, key: str) -> str:
            return self._store.signed_url(method, key, ttl)

        inputs = []
        for source in launch.files:
            if source.upload_id is not None:
                url = signed("GET", keys.upload_key(source.upload_id))
            elif source.inline_text is not None:
                url = signed("GET", keys.inline_input_key(job_id, source.id))
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

    def _notify(self, job: Job, uri_name: str, body: dict[str, Any]) -> None:
        uri = (job.subscriber or {}).get(uri_name)
        if uri and self._loop is not None:
            self._loop.call_soon_threadsafe(self._notifier.send, job.id, uri, body)

    def _notify_finished(self, job: Job) -> None:
        if job.status is JobStatus.SUCCESSFUL:
            self._notify(job, "successUri", results_document(job, self._base_url))
        else:
            self._notify(job, "failedUri", status_info(job, self._base_url))


def _judge(asset: WorkflowAsset, outcome: Outcome) -> tuple[JobStatus, str, dict[str, Any] | None]:
    status, message, results = _verdict(asset, outcome)
    return status, f"{message} ({outcome.note})" if outcome.note else message, results


def _verdict(
    asset: WorkflowAsset, outcome: Outcome
) -> tuple[JobStatus, str, dict[str, Any] | None]:
    report = outcome.report
    results = None
    if report is not None:
        results = {
            output_id: {
                "size": pushed.size,
                "sha256": pushed.sha256,
                "media_type": output.delivered_media_type,
            }
            for output_id, pushed in report.pushed.items()
            if (output := asset.output(output_id)) is not None
        }
    refused = report.refused if report is not None else None  # outputs deleted: see JobStorage
    failure = refused or outcome.error
    if failure is not None:
        return JobStatus.FAILED, failure, None if refused else results
    if outcome.exit_code != 0:
        return JobStatus.FAILED, f"the worker exited with code {outcome.exit_code}", results
    if report is None:
        return JobStatus.FAILED, "the outputs were not stored", results
    if report.failed:
        failed = ", ".join(f"{i!r} ({reason})" for i, reason in sorted(report.failed.items()))
        return JobStatus.FAILED, f"outputs could not be stored: {failed}", results
    if report.missing:
        missing = ", ".join(repr(i) for i in report.missing)
        return JobStatus.FAILED, f"declared outputs were not produced: {missing}", results
    return JobStatus.SUCCESSFUL, "finished", results
