"""How the job runner reads Jobs, pods and events: pure functions over the client models."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kubernetes import client

from workflow_api.execution.kubernetes import status

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def state(kind: str, **fields: Any) -> client.V1ContainerState:
    models = {
        "waiting": client.V1ContainerStateWaiting,
        "running": client.V1ContainerStateRunning,
        "terminated": client.V1ContainerStateTerminated,
    }
    return client.V1ContainerState(**{kind: models[kind](**fields)})


def container(name: str, kind: str, **fields: Any) -> client.V1ContainerStatus:
    return client.V1ContainerStatus(
        name=name,
        image=f"{name}:1",
        image_id="",
        ready=kind == "running",
        restart_count=0,
        state=state(kind, **fields),
    )


def pod(
    *,
    phase: str = "Running",
    init: list[client.V1ContainerStatus] | None = None,
    main: list[client.V1ContainerStatus] | None = None,
    conditions: list[client.V1PodCondition] | None = None,
    reason: str | None = None,
    message: str | None = None,
) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name="wfjob-1-abcde", creation_timestamp=NOW),
        status=client.V1PodStatus(
            phase=phase,
            init_container_statuses=init,
            container_statuses=main,
            conditions=conditions,
            reason=reason,
            message=message,
        ),
    )


def staged() -> list[client.V1ContainerStatus]:
    return [
        container("stage-in", "terminated", exit_code=0, reason="Completed"),
        container("sidecar", "running"),
    ]


def job(condition: str | None = None, reason: str | None = None) -> client.V1Job:
    conditions = None
    if condition is not None:
        conditions = [
            client.V1JobCondition(type=condition, status="True", reason=reason, message="m")
        ]
    return client.V1Job(status=client.V1JobStatus(conditions=conditions))


def test_a_job_is_finished_only_with_a_true_terminal_condition() -> None:
    assert status.finished_condition(job()) is None
    assert status.finished_condition(job("FailureTarget", "DeadlineExceeded")) is None
    assert status.finished_condition(job("Complete")).type == "Complete"
    assert status.finished_condition(job("Failed", "BackoffLimitExceeded")).type == "Failed"


def test_image_and_configuration_errors_are_stuck_with_a_clear_message() -> None:
    pull = container("worker", "waiting", reason="ImagePullBackOff", message="Back-off pulling")
    message = status.stuck_reason(pod(phase="Pending", init=staged(), main=[pull]))
    assert message == "the worker container (image worker:1) cannot start: ImagePullBackOff: " + (
        "Back-off pulling"
    )
    for reason in ("ErrImagePull", "InvalidImageName", "CreateContainerConfigError"):
        waiting = [container("stage-in", "waiting", reason=reason)]
        assert reason in (status.stuck_reason(pod(phase="Pending", init=waiting)) or "")
    creating = [container("stage-in", "waiting", reason="ContainerCreating")]
    assert status.stuck_reason(pod(phase="Pending", init=creating)) is None


def test_a_refused_pod_is_reported_from_the_job_controllers_events() -> None:
    def event(reason: str, message: str, minute: int) -> client.CoreV1Event:
        return client.CoreV1Event(
            metadata=client.V1ObjectMeta(name=f"e{minute}"),
            involved_object=client.V1ObjectReference(kind="Job"),
            reason=reason,
            message=message,
            last_timestamp=NOW.replace(minute=minute),
        )

    assert status.refusal([event("SuccessfulCreate", "Created pod", 1)]) is None
    quota = 'Error creating: pods "x" is forbidden: exceeded quota: consumer-quota, requested: ...'
    refused = status.refusal([event("FailedCreate", "older", 1), event("FailedCreate", quota, 2)])
    assert refused == f"the consumer's resource quota does not allow this job: {quota}"
    other = status.refusal([event("FailedCreate", "violates PodSecurity", 3)])
    assert other == "Kubernetes refused to create the job's pod: violates PodSecurity"


def test_waiting_messages_say_what_the_job_waits_for() -> None:
    assert status.waiting_message(None) == "waiting for the job's pod to be created"
    unscheduled = client.V1PodCondition(
        type="PodScheduled", status="False", message="0/1 nodes are available"
    )
    pending = pod(phase="Pending", conditions=[unscheduled])
    assert status.waiting_message(pending) == "waiting for a node: 0/1 nodes are available"
    staging = pod(phase="Pending", init=[container("stage-in", "running")])
    assert status.waiting_message(staging) == "staging inputs"
    starting = pod(init=staged(), main=[container("worker", "waiting", reason="PodInitializing")])
    assert status.waiting_message(starting) == "starting the worker"
    assert status.waiting_message(pod(init=staged(), main=[container("worker", "running")])) is None


def test_the_worker_exit_code_comes_from_its_container_status() -> None:
    done = container("worker", "terminated", exit_code=3, reason="Error")
    ending = status.ending(job("Failed"), pod(init=staged(), main=[done]), timeout_seconds=60)
    assert ending == status.Ending(3, None)
    ok = container("worker", "terminated", exit_code=0, reason="Completed")
    assert status.ending(job("Complete"), pod(main=[ok]), timeout_seconds=60) == (
        status.Ending(0, None)
    )


def test_endings_with_clear_messages() -> None:
    oom = container("worker", "terminated", exit_code=137, reason="OOMKilled")
    assert status.ending(job("Failed"), pod(main=[oom]), timeout_seconds=60) == status.Ending(
        137, "the worker ran out of memory and was killed (OOMKilled)"
    )
    late = status.ending(job("Failed", "DeadlineExceeded"), None, timeout_seconds=60)
    assert late == status.Ending(None, "the job timed out after 60 s")
    failed_stage_in = [container("stage-in", "terminated", exit_code=1, reason="Error")]
    assert status.ending(
        job("Failed"),
        pod(phase="Failed", init=failed_stage_in),
        timeout_seconds=60,
        stage_in_tail="input 'a': GET http://x/a answered HTTP 404",
    ) == status.Ending(None, "stage-in failed: input 'a': GET http://x/a answered HTTP 404")
    evicted = pod(phase="Failed", reason="Evicted", message="The node was low on memory.")
    assert status.ending(job("Failed"), evicted, timeout_seconds=60) == status.Ending(
        None, "the job's pod was evicted: The node was low on memory."
    )
    disrupted = pod(
        phase="Failed",
        main=[container("worker", "terminated", exit_code=143, reason="Error")],
        conditions=[
            client.V1PodCondition(
                type="DisruptionTarget",
                status="True",
                reason="PreemptionByScheduler",
                message="preempted",
            )
        ],
    )
    assert status.ending(job("Failed"), disrupted, timeout_seconds=60) == status.Ending(
        143, "the job's pod was stopped by the cluster (PreemptionByScheduler): preempted"
    )
    assert status.ending(job("Complete"), None, timeout_seconds=60) == status.Ending(0, None)
    gone = status.ending(job("Failed", "BackoffLimitExceeded"), None, timeout_seconds=60)
    assert gone.error == "the job's pod ended before its worker did (BackoffLimitExceeded: m)"
