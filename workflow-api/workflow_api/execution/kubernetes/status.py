"""What a Job, its pod and its events say about a workflow job: pure functions, no I/O.

The job runner polls the objects and asks these functions three questions: is the job stuck for
good (an image that cannot be pulled, a pod the quota or admission refuses), is it finished, and
how did it end (exit code, or a message a consumer can act on: out of memory, timed out, evicted,
stage-in failed). They read the `kubernetes.client` models the API returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workflow_api.execution.kubernetes.objects import (
    SIDECAR_CONTAINER,
    STAGE_IN_CONTAINER,
    WORKER_CONTAINER,
)

# Waiting reasons that do not resolve by waiting: the pod is stopped and the job failed.
STUCK_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
    }
)
_ROLES = {
    STAGE_IN_CONTAINER: "the stage-in container",
    SIDECAR_CONTAINER: "the sidecar container",
    WORKER_CONTAINER: "the worker container",
}
OOM_KILLED = "OOMKilled"


@dataclass(frozen=True)
class Ending:
    """How a job ended: the worker's exit code when it ran, an error when it did not end well."""

    exit_code: int | None
    error: str | None


def finished_condition(job: Any) -> Any | None:
    """The Job's `Complete` or `Failed` condition once it is true, else None."""
    for condition in (job.status and job.status.conditions) or []:
        if condition.type in {"Complete", "Failed"} and condition.status == "True":
            return condition
    return None


def container_status(pod: Any, name: str) -> Any | None:
    status = pod.status
    if status is None:
        return None
    statuses = [*(status.init_container_statuses or []), *(status.container_statuses or [])]
    return next((item for item in statuses if item.name == name), None)


def terminated(pod: Any, name: str) -> Any | None:
    """The `terminated` state of a container, if it has ended."""
    status = container_status(pod, name)
    return status.state.terminated if status is not None and status.state else None


def has_started(pod: Any, name: str) -> bool:
    """Whether the container ran at all (so it may have a log)."""
    status = container_status(pod, name)
    state = status.state if status is not None else None
    return state is not None and (state.running is not None or state.terminated is not None)


def is_terminal(pod: Any) -> bool:
    return pod.status is not None and pod.status.phase in {"Succeeded", "Failed"}


def stuck_reason(pod: Any, images: dict[str, str] | None = None) -> str | None:
    """A message when a container of the pod waits for something that will not come."""
    if pod.status is None:
        return None
    for name in (STAGE_IN_CONTAINER, SIDECAR_CONTAINER, WORKER_CONTAINER):
        status = container_status(pod, name)
        waiting = status.state.waiting if status is not None and status.state else None
        if waiting is None or waiting.reason not in STUCK_REASONS:
            continue
        image = (images or {}).get(name) or (status.image if status is not None else None)
        detail = f": {waiting.message}" if waiting.message else ""
        what = f"{_ROLES[name]} (image {image})" if image else _ROLES[name]
        return f"{what} cannot start: {waiting.reason}{detail}"
    return None


def refusal(events: list[Any]) -> str | None:
    """A message when the Job controller could not create the pod (quota, admission)."""
    failures = [event for event in events if event.reason == "FailedCreate"]
    if not failures:
        return None
    latest = max(failures, key=_event_time)
    message = (latest.message or "").strip()
    if "exceeded quota" in message:
        return f"the consumer's resource quota does not allow this job: {message}"
    return f"Kubernetes refused to create the job's pod: {message}"


def newest(pods: list[Any]) -> Any | None:
    """The Job's latest pod (with `backoffLimit: 0` there is one, a replacement at most)."""
    if not pods:
        return None
    return max(pods, key=lambda pod: pod.metadata.creation_timestamp.timestamp())


def worker_done(pod: Any) -> bool:
    """The worker has ended, or will never start because stage-in failed."""
    stage_in = terminated(pod, STAGE_IN_CONTAINER)
    failed_stage_in = stage_in is not None and stage_in.exit_code != 0
    return failed_stage_in or terminated(pod, WORKER_CONTAINER) is not None


def _event_time(event: Any) -> Any:
    moment = event.last_timestamp or event.event_time or event.first_timestamp
    return (moment is not None, moment.timestamp() if moment is not None else 0.0)


def waiting_message(pod: Any | None) -> str | None:
    """What the job waits for before its worker runs, as its status message; None once it runs."""
    if pod is None:
        return "waiting for the job's pod to be created"
    if has_started(pod, WORKER_CONTAINER):
        return None
    for condition in (pod.status and pod.status.conditions) or []:
        if condition.type == "PodScheduled" and condition.status == "False":
            detail = f": {condition.message}" if condition.message else ""
            return f"waiting for a node{detail}"
    if has_started(pod, STAGE_IN_CONTAINER) and not terminated(pod, STAGE_IN_CONTAINER):
        return "staging inputs"
    if terminated(pod, STAGE_IN_CONTAINER):
        return "starting the worker"
    return "starting the job's pod"


def ending(
    job: Any, pod: Any | None, *, timeout_seconds: int, stage_in_tail: str | None = None
) -> Ending:
    """How the job ended, from the finished Job and its pod (None when the pod is gone)."""
    condition = finished_condition(job)
    worker = terminated(pod, WORKER_CONTAINER) if pod is not None else None
    exit_code = worker.exit_code if worker is not None else None
    if condition is not None and condition.reason == "DeadlineExceeded":
        return Ending(exit_code, f"the job timed out after {timeout_seconds} s")
    problem = _pod_problem(pod, worker, stage_in_tail) if pod is not None else None
    if problem is not None:
        return Ending(exit_code, problem)
    if worker is not None:
        return Ending(exit_code, None)
    if condition is not None and condition.type == "Complete":
        return Ending(0, None)  # the pod succeeded, so did its worker; the pod is gone since
    reason = f"{condition.reason}: {condition.message}" if condition is not None else "unknown"
    return Ending(None, f"the job's pod ended before its worker did ({reason})")


def _pod_problem(pod: Any, worker: Any | None, stage_in_tail: str | None) -> str | None:
    stage_in = terminated(pod, STAGE_IN_CONTAINER)
    if stage_in is not None and stage_in.exit_code != 0:
        detail = f": {stage_in_tail}" if stage_in_tail else f" (exit code {stage_in.exit_code})"
        return f"stage-in failed{detail}"
    if worker is not None and worker.reason == OOM_KILLED:
        return "the worker ran out of memory and was killed (OOMKilled)"
    return _disruption(pod)


def _disruption(pod: Any) -> str | None:
    """Evicted, preempted or deleted by the cluster: the pod says so in its status."""
    status = pod.status
    if status is None:
        return None
    if status.reason == "Evicted":
        return f"the job's pod was evicted: {status.message or 'no reason given'}"
    for condition in status.conditions or []:
        if condition.type == "DisruptionTarget" and condition.status == "True":
            return f"the job's pod was stopped by the cluster ({condition.reason}): " + (
                condition.message or "no reason given"
            )
    return None
