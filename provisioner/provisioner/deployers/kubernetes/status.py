"""Reading a consumer's Deployment and pods: is the rollout done, and if not, why not.

Pure functions over the client's `V1Deployment` / `V1Pod` objects (or anything shaped like
them), so they are tested without a cluster. The message is for the provider's operator: it names
the pod and the cause Kubernetes gives (an image that cannot be pulled, a crash loop, no node that
fits, the namespace's quota), not a stack of conditions.
"""

from __future__ import annotations

from typing import Any

IMAGE_PULL_REASONS = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName"})
CONFIG_REASONS = frozenset({"CreateContainerConfigError", "CreateContainerError"})


def _conditions(status: Any) -> dict[str, Any]:
    return {condition.type: condition for condition in (getattr(status, "conditions", None) or [])}


def rollout_complete(deployment: Any) -> bool:
    """As `kubectl rollout status`: the controller saw the latest spec, and every replica runs
    it and is available (so a changed configuration is ready only once the new pod is)."""
    status, wanted = deployment.status, deployment.spec.replicas or 0
    if status is None or (status.observed_generation or 0) < (deployment.metadata.generation or 0):
        return False
    available = _conditions(status).get("Available")
    return (
        wanted > 0
        and available is not None
        and available.status == "True"
        and (status.updated_replicas or 0) >= wanted
        and (status.available_replicas or 0) >= wanted
        and (status.replicas or 0) <= wanted  # no old pod left
    )


def _container_problem(pod_name: str, container: Any) -> str | None:
    waiting: Any = container.state.waiting if container.state else None
    if waiting is None:
        return None
    reason, message = waiting.reason, waiting.message
    if reason in IMAGE_PULL_REASONS:
        detail = f": {message}" if message else ""
        return f"image {container.image} cannot be pulled ({reason}){detail}"
    if reason == "CrashLoopBackOff":
        ended = container.last_state.terminated if container.last_state else None
        how = f"; last exit code {ended.exit_code} ({ended.reason or 'no reason'})" if ended else ""
        return (
            f"container {container.name} of pod {pod_name} keeps crashing"
            f" ({container.restart_count} restarts){how}"
        )
    if reason in CONFIG_REASONS:
        return f"container {container.name} of pod {pod_name} cannot start: {message}"
    return None


def _pod_problem(pod: Any) -> str | None:
    """What keeps this pod from being ready, in one sentence; None if nothing is known."""
    name = pod.metadata.name
    scheduled = _conditions(pod.status).get("PodScheduled")
    if scheduled is not None and scheduled.status == "False":
        return f"pod {name} cannot be scheduled: {scheduled.message or scheduled.reason}"
    containers = pod.status.container_statuses or []
    problem = next(filter(None, (_container_problem(name, c) for c in containers)), None)
    if problem is None and pod.status.phase == "Running":
        problem = f"pod {name} runs but is not ready (its readiness probe fails)"
    elif problem is None and pod.status.phase in {"Failed", "Succeeded"}:
        problem = f"pod {name} ended ({pod.status.phase}: {pod.status.reason or 'no reason'})"
    return problem


def describe_failure(deployment: Any | None, pods: list[Any]) -> str:
    """Why the Deployment is not available, from its conditions and its pods' states."""
    if deployment is None:
        return "the Deployment is missing"
    reasons = []
    conditions = _conditions(deployment.status)
    failure = conditions.get("ReplicaFailure")
    if failure is not None and failure.status == "True":
        reasons.append(f"no pod could be created: {failure.message}")  # e.g. exceeded quota
    newest_first = sorted(pods, key=lambda pod: str(pod.metadata.creation_timestamp or ""))[::-1]
    reasons += [problem for pod in newest_first if (problem := _pod_problem(pod))]
    if not reasons:
        progressing = conditions.get("Progressing")
        if progressing is not None and progressing.status == "False":
            reasons.append(f"{progressing.reason}: {progressing.message}")
        elif not pods:
            reasons.append("no pod exists for it yet")
        else:
            reasons.append("its pod is not ready yet")
    return "; ".join(dict.fromkeys(reasons))  # without repeats, in order
