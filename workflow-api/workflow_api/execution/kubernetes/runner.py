"""The Kubernetes job runner: each job as one `batch/v1` Job in the consumer's namespace.

    start     create the Job `wfjob-<job id>` (a 409 means an earlier attempt made it: adopt it),
              then the Secret with the manifest, owned by the Job (see `objects`)
    follow    every `poll_seconds`: the Job, its pod (by the job-id label) and the progress line
              the sidecar uploads into storage; a pod that cannot start (image, configuration) or
              that the Job controller cannot create (quota, admission) ends the job at once
    end       the worker's log is read (`pods/log`) and stored as soon as the worker has ended,
              while push-out still runs in the sidecar and before the pod can go (see
              `artifacts`); a running worker's log is also copied every
              `LOG_SNAPSHOT_SECONDS`, kept when the pod goes first (deadline, eviction); once
              the Job is finished, push-out's report is read from
              storage, the ending judged from the pod's container states
              (`status`), and the Job deleted: its Secret and pod go with it, and
              finished Jobs count against the namespace's quota (`ttlSecondsAfterFinished` is
              only the safety net for when this API is down)
    dismiss   cancelling `run`: the log is kept, the Job deleted with foreground propagation, its
              pod with the short dismissal grace, and `run` returns once the Job is gone (bounded);
              what the sidecar still pushes out in that grace stays under the job's prefix until
              the job is removed
    restart   `recover` answers True: the manager calls `run(resumed=True)`, which re-attaches to
              the Job by its deterministic name and follows it; it starts nothing new, so a Job
              that is gone fails the job with `LOST_MESSAGE`

`close` (the API is stopping) makes cancellation leave the Job running, for the next start.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from workflow_api.execution.kubernetes import status
from workflow_api.execution.kubernetes.artifacts import JobArtifacts
from workflow_api.execution.kubernetes.objects import (
    WORKER_CONTAINER,
    JobSpec,
    JobTemplate,
    job_name,
    job_selector,
    make_job,
    make_manifest_secret,
)
from workflow_api.execution.runner import JobRun, Outcome
from workflow_api.storage import base as keys
from workflow_api.storage.base import ObjectStore
from workflow_common.kubernetes import ClusterApi, KubernetesApiError
from workflow_common.proc_identity import ProcessIdentity
from workflow_contracts.asset import WorkflowAsset
from workflow_contracts.environment import UndeclaredVariableError
from workflow_contracts.workspace import parse_progress_line

log = logging.getLogger(__name__)

Result = TypeVar("Result")
DISMISS_WAIT_SECONDS = 60.0
API_PATIENCE_SECONDS = 300.0  # how long the API may be unreachable before a job is given up
URL_MARGIN = timedelta(minutes=15)
LOST_MESSAGE = (
    "the workflow-api restarted while this job was running and its Kubernetes Job is gone"
)
GONE_MESSAGE = "the job's Kubernetes Job was deleted while it ran"
LOG_SNAPSHOT_SECONDS = 5.0  # how often a running worker's log is copied (see snapshot_log)


@dataclass
class _Watch:
    """What one `run` has seen so far."""

    pod: Any = None
    log_saved: bool = False
    stage_in_tail: str | None = None
    progress_line: str | None = None
    message: str | None = None
    failing_since: float | None = None
    log_snapshot_at: float = float("-inf")


class KubernetesJobRunner:
    def __init__(
        self,
        api: ClusterApi,
        store: ObjectStore,
        template: JobTemplate,
        *,
        log_dir: Path,
        poll_seconds: float,
        dismiss_grace_seconds: float,
    ) -> None:
        self._api = api
        self._artifacts = JobArtifacts(api, store, log_dir)
        self._template = template
        self._poll = poll_seconds
        self._dismiss_grace = dismiss_grace_seconds
        self._closing = False

    # --- JobRunner ----------------------------------------------------------------------------

    def refusal(self, asset: WorkflowAsset) -> str | None:
        if not asset.execution.image.strip():
            return f"the process {asset.id!r} has no container image; it cannot run here"
        return None

    def recover(self, job_id: str, identity: ProcessIdentity | None) -> bool:
        return True  # the Job runs on without us; `run(resumed=True)` finds it by name

    def close(self) -> None:
        self._closing = True
        self._artifacts.close()
        self._api.close()

    def live_log(self, job_id: str) -> Path | None:
        """The worker's log so far, fetched now (called from a request thread)."""
        try:
            pod = status.newest(self._api.list_pods(job_selector(job_id)))
        except KubernetesApiError as error:
            log.info("job %s: no live log: %s", job_id, error)
            return None
        return self._artifacts.live_log(job_id, pod)

    async def run(self, job: JobRun) -> Outcome:
        try:
            return await self._run(job)
        except asyncio.CancelledError:
            if not self._closing:
                await asyncio.shield(self._dismiss(job.job_id))
            raise
        finally:
            self._artifacts.discard_live_log(job.job_id)

    # --- one job -------------------------------------------------------------------------------

    async def _run(self, job: JobRun) -> Outcome:
        name = job_name(job.job_id)
        start = asyncio.ensure_future(self._start(job))
        try:
            started = await asyncio.shield(start)
        except asyncio.CancelledError:
            # A create already sent lands anyway (threads cannot be stopped): let it, so that
            # the dismissal that follows finds and deletes the Job instead of missing it.
            await asyncio.wait([start], timeout=DISMISS_WAIT_SECONDS)
            raise
        except KubernetesApiError as error:
            await self._delete(name, "Background")
            return Outcome(None, f"the job could not be started on Kubernetes: {error}", None)
        except UndeclaredVariableError as error:
            await self._delete(name, "Background")
            message = f"the job's environment is not what the asset declares: {error}"
            return Outcome(None, message, None)
        if not started:
            return Outcome(None, LOST_MESSAGE, None)
        watch = _Watch()
        while True:
            try:
                outcome = await self._look(job, watch)
                watch.failing_since = None
            except KubernetesApiError as error:
                outcome = self._tolerate(job, watch, error)
            if outcome is not None:
                return outcome
            await asyncio.sleep(self._poll)

    async def _start(self, job: JobRun) -> bool:
        """Create (or adopt) the Job and its Secret; False when resuming finds no Job."""
        lifetime = timedelta(seconds=job.asset.execution.timeout_seconds) + URL_MARGIN
        ttl = lifetime + timedelta(seconds=self._template.push_out_grace_seconds)
        report = self._artifacts.signed_upload(keys.report_key(job.job_id), ttl)
        progress = self._artifacts.signed_upload(keys.progress_key(job.job_id), ttl)
        manifest = job.manifest.model_copy(
            update={
                "report_url": report.url,
                "report_form": report.form,
                "progress_url": progress.url,
                "progress_form": progress.form,
            }
        )
        spec = JobSpec(
            job_id=job.job_id,
            namespace=self._api.namespace,
            execution=job.asset.execution,
            inputs=tuple(job.asset.inputs),
            manifest=manifest,
            template=self._template,
            worker_env=job.env,
        )
        if job.resumed:
            created = await _in_thread(self._api.read_job, job_name(job.job_id))
        else:
            created = await _in_thread(self._api.create_job, make_job(spec))
        if created is None:
            return False
        await _in_thread(self._api.create_secret, make_manifest_secret(spec, created))
        log.info("job %s: following Kubernetes Job %s", job.job_id, created.metadata.name)
        return True

    async def _look(self, job: JobRun, watch: _Watch) -> Outcome | None:
        """One look at the Job and its pod: an Outcome once it has ended, else None."""
        name = job_name(job.job_id)
        found = await _in_thread(self._api.read_job, name)
        if found is None:
            await self._save_log(job.job_id, watch, GONE_MESSAGE)
            return Outcome(None, GONE_MESSAGE, await self._artifacts.report(job.job_id))
        pod = status.newest(await _in_thread(self._api.list_pods, job_selector(job.job_id)))
        watch.pod = pod or watch.pod
        await self._relay_progress(job, watch)
        if status.finished_condition(found) is not None:
            return await self._conclude(job, found, watch)
        problem = await self._problem(found, pod)
        if problem is not None:
            await self._save_log(job.job_id, watch, problem)
            await self._delete(name, "Foreground", wait=True)
            return Outcome(None, problem, None)
        if pod is not None and not watch.log_saved and status.worker_done(pod):
            await self._save_log(job.job_id, watch)
        elif pod is not None and status.has_started(pod, WORKER_CONTAINER):
            await self._snapshot_log(job.job_id, watch, pod)
        message = status.waiting_message(pod)
        if message is not None and message != watch.message and watch.progress_line is None:
            watch.message = message
            await job.on_progress(0, message)
        return None

    async def _problem(self, found: Any, pod: Any) -> str | None:
        """Why the job cannot go on: a stuck container, or a pod the cluster will not create."""
        if pod is not None:
            return status.stuck_reason(pod)
        return status.refusal(await _in_thread(self._api.list_events, found.metadata.uid))

    async def _conclude(self, job: JobRun, found: Any, watch: _Watch) -> Outcome:
        """The Job is finished: wait for its pod to stop, keep the log, judge, delete the Job."""
        deadline = asyncio.get_running_loop().time() + self._template.push_out_grace_seconds
        pods = await _in_thread(self._api.list_pods, job_selector(job.job_id))
        while any(not status.is_terminal(pod) for pod in pods):
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(self._poll)
            pods = await _in_thread(self._api.list_pods, job_selector(job.job_id))
        watch.pod = status.newest(pods) or watch.pod
        if not watch.log_saved:
            await self._save_log(job.job_id, watch)
        ending = status.ending(
            found,
            watch.pod,
            timeout_seconds=job.asset.execution.timeout_seconds,
            stage_in_tail=watch.stage_in_tail,
        )
        report = await self._artifacts.report(job.job_id)
        await self._delete(job_name(job.job_id), "Background")
        return Outcome(ending.exit_code, ending.error, report)

    def _tolerate(self, job: JobRun, watch: _Watch, error: KubernetesApiError) -> Outcome | None:
        """Keep following through API trouble for a while; then give the job up."""
        now = asyncio.get_running_loop().time()
        watch.failing_since = watch.failing_since or now
        if now - watch.failing_since < API_PATIENCE_SECONDS:
            log.warning("job %s: %s; trying again", job.job_id, error)
            return None
        return Outcome(None, f"lost touch with the Kubernetes API: {error}", None)

    async def _dismiss(self, job_id: str) -> None:
        """Keep the log, delete the Job (foreground) and its pod (short grace), until gone."""
        name = job_name(job_id)

        async def stop() -> None:
            pods = await _in_thread(self._api.list_pods, job_selector(job_id))
            await self._artifacts.save_log(job_id, status.newest(pods), "the job was dismissed")
            await _in_thread(self._api.delete_job, name, "Foreground")
            for pod in pods:
                await _in_thread(self._api.delete_pod, pod.metadata.name, int(self._dismiss_grace))
            await self._wait_gone(name)

        try:
            await asyncio.wait_for(stop(), self._dismiss_grace + DISMISS_WAIT_SECONDS)
        except (TimeoutError, KubernetesApiError) as error:
            log.warning("job %s: Job %s not confirmed gone: %s", job_id, name, error)

    async def _delete(self, name: str, propagation: str, *, wait: bool = False) -> None:
        try:
            await _in_thread(self._api.delete_job, name, propagation)
            if wait:
                await asyncio.wait_for(self._wait_gone(name), DISMISS_WAIT_SECONDS)
        except (TimeoutError, KubernetesApiError) as error:
            log.warning("Job %s not deleted: %s", name, error)

    async def _wait_gone(self, name: str) -> None:
        while await _in_thread(self._api.read_job, name) is not None:
            await asyncio.sleep(min(self._poll, 0.5))

    async def _snapshot_log(self, job_id: str, watch: _Watch, pod: Any) -> None:
        now = asyncio.get_running_loop().time()
        if now - watch.log_snapshot_at >= LOG_SNAPSHOT_SECONDS:
            watch.log_snapshot_at = now
            await self._artifacts.snapshot_log(job_id, pod)

    async def _save_log(self, job_id: str, watch: _Watch, note: str | None = None) -> None:
        watch.stage_in_tail = await self._artifacts.save_log(job_id, watch.pod, note)
        watch.log_saved = True

    async def _relay_progress(self, job: JobRun, watch: _Watch) -> None:
        line = await self._artifacts.progress_line(job.job_id)
        parsed = parse_progress_line(line) if line else None
        if parsed is not None and line != watch.progress_line:
            watch.progress_line = line
            await job.on_progress(*parsed)


async def _in_thread(function: Callable[..., Result], *arguments: Any) -> Result:
    """A blocking `ClusterApi` call (the official client is synchronous), off the event loop."""
    return await asyncio.to_thread(function, *arguments)
