"""The Kubernetes objects of one job: pure builders returning typed `kubernetes.client` objects.

One `batch/v1` Job per workflow job, named `wfjob-<job id>`, whose single pod runs

    init  stage-in   `data-sidecar stage-in`: inputs into the `workspace` emptyDir
    init  sidecar    `data-sidecar follow`, a native sidecar (`restartPolicy: Always`, on by
                     default from Kubernetes 1.29): relays progress while the worker runs, pushes
                     out when the kubelet stops it, which it does once the worker has ended
    main  worker     the asset's execution unit, in `/workspace`

and one Secret `wfjob-<job id>-manifest`, owned by the Job (so deleting the Job collects it), that
holds the manifest of signed URLs (mounted into the two sidecar containers only) and the values of
the job's own environment (literal inputs, env-file variables), which the worker takes from it by
`secretKeyRef` so that they do not stand in the Job's spec.

Why a native sidecar for push-out rather than a worker wrapper or `shareProcessNamespace`: the
kubelet terminates sidecars after the main container has ended for any reason (exit, crash,
OOM kill), so push-out needs no cooperation from the worker image and cannot be skipped by a
killed worker; `terminationGracePeriodSeconds` is the time push-out has, also when the Job's
deadline passes or the pod is deleted. Waiting for the worker's process to vanish in a shared
process namespace would need the worker's pid, a polling loop, and more privileges.

Every container runs as a non-root user with a read-only root filesystem, no privilege
escalation and no capabilities; writable places are emptyDirs. No service account token is
mounted and no storage credential enters the pod: only the manifest's signed URLs.

A little over 300 lines, on purpose: the builders of one pod (names and labels, containers,
volumes, the Secret) are small and are read together, as the pod they make.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from kubernetes import client

from workflow_contracts.asset import AssetInput, ExecutionUnit
from workflow_contracts.environment import check_job_variables, worker_environment
from workflow_contracts.kubernetes_names import (
    JOB_ID_LABEL_KEY,
    JOB_LABEL_KEY,
    JOB_LABEL_VALUE,
    JOB_SERVICE_ACCOUNT_NAME,
)
from workflow_contracts.manifest import JobManifest
from workflow_contracts.workspace import (
    CONTAINER_WORKSPACE,
    INPUTS_DIR,
    INPUTS_DIR_ENV,
    OUTPUTS_DIR,
    OUTPUTS_DIR_ENV,
    PROGRESS_FILE_ENV,
    WORKSPACE_ENV,
)

DNS_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")
JOB_NAME_PREFIX = "wfjob-"
STAGE_IN_CONTAINER = "stage-in"
SIDECAR_CONTAINER = "sidecar"
WORKER_CONTAINER = "worker"
MANIFEST_KEY = "manifest.json"
ENV_KEY_PREFIX = "env."  # Secret keys of the worker's own variables: `env.INPUT_DURATION`, ...
MANIFEST_DIR = "/etc/workflow-job"
SIDECAR_TMP_DIR = "/tmp"  # noqa: S108 - an emptyDir of the sidecars
WORKER_TMP_DIR = "/tmp"  # noqa: S108 - an emptyDir of the worker
PROGRESS_FILE = f"{CONTAINER_WORKSPACE}/.progress"
READY_FILE = f"{SIDECAR_TMP_DIR}/sidecar-ready"
GPU_RESOURCE = "nvidia.com/gpu"
# The sidecar image has Python; the probe is the cheapest check that `follow` heeds SIGTERM.
READY_PROBE_COMMAND = (
    "python3",
    "-c",
    "import os, sys; sys.exit(not os.path.exists(os.environ['DATA_SIDECAR_READY_FILE']))",
)


@dataclass(frozen=True)
class Toleration:
    key: str | None = None
    operator: str = "Equal"
    value: str | None = None
    effect: str | None = None
    toleration_seconds: int | None = None


@dataclass(frozen=True)
class JobTemplate:
    """What every job of this workflow-api shares (from its settings)."""

    sidecar_image: str
    service_account: str = JOB_SERVICE_ACCOUNT_NAME
    ttl_seconds_after_finished: int = 3600
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Toleration, ...] = ()
    image_pull_policy: str = "IfNotPresent"
    push_out_grace_seconds: int = 300
    user_id: int = 10001
    sidecar_cpu: str = "250m"
    sidecar_memory: str = "256Mi"


@dataclass(frozen=True)
class JobSpec:
    """One job: its id, what to run, its own environment and its manifest."""

    job_id: str
    namespace: str
    execution: ExecutionUnit
    manifest: JobManifest
    template: JobTemplate
    inputs: Sequence[AssetInput] = ()  # the asset's inputs: which job variables it declares
    worker_env: Mapping[str, str] = field(default_factory=dict)  # values go into the Secret


def job_name(job_id: str) -> str:
    """`wfjob-<job id>`; an id that is no DNS label (job ids are UUIDs) by its hash instead."""
    name = f"{JOB_NAME_PREFIX}{job_id}"
    if len(name) <= 63 and DNS_LABEL.fullmatch(name):
        return name
    return f"{JOB_NAME_PREFIX}{hashlib.sha256(job_id.encode()).hexdigest()[:40]}"


def job_id_label(job_id: str) -> str:
    """The job-id label's value: the Job's name without its prefix (a valid label value)."""
    return job_name(job_id).removeprefix(JOB_NAME_PREFIX)


def manifest_secret_name(job_id: str) -> str:
    return f"{job_name(job_id)}-manifest"


def job_selector(job_id: str) -> str:
    """The label selector of a job's pods (and its Job and Secret)."""
    return f"{JOB_ID_LABEL_KEY}={job_id_label(job_id)}"


def job_labels(job_id: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "workflow-job",
        "app.kubernetes.io/component": "job",
        "app.kubernetes.io/part-of": "workflow-middle-layer",
        "app.kubernetes.io/managed-by": "workflow-api",
        JOB_LABEL_KEY: JOB_LABEL_VALUE,
        JOB_ID_LABEL_KEY: job_id_label(job_id),
    }


def _metadata(spec: JobSpec, name: str, **fields: object) -> client.V1ObjectMeta:
    return client.V1ObjectMeta(
        name=name, namespace=spec.namespace, labels=job_labels(spec.job_id), **fields
    )


def _quantities(cpu: str, memory: str, gpu: int = 0) -> client.V1ResourceRequirements:
    """Requests equal to limits: the job gets what it declared and the quota counts exactly it."""
    amounts = {"cpu": cpu, "memory": memory}
    if gpu:
        amounts[GPU_RESOURCE] = str(gpu)
    return client.V1ResourceRequirements(requests=dict(amounts), limits=dict(amounts))


def _locked_down() -> client.V1SecurityContext:
    return client.V1SecurityContext(
        run_as_non_root=True,
        allow_privilege_escalation=False,
        read_only_root_filesystem=True,
        capabilities=client.V1Capabilities(drop=["ALL"]),
    )


def _variables(values: Mapping[str, str]) -> list[client.V1EnvVar]:
    return [client.V1EnvVar(name=name, value=value) for name, value in values.items()]


def _workspace_mount() -> client.V1VolumeMount:
    return client.V1VolumeMount(name="workspace", mount_path=CONTAINER_WORKSPACE)


def _sidecar_container(spec: JobSpec, name: str, command: list[str]) -> client.V1Container:
    template = spec.template
    env = {
        "DATA_SIDECAR_MANIFEST": f"{MANIFEST_DIR}/{MANIFEST_KEY}",
        WORKSPACE_ENV: CONTAINER_WORKSPACE,
        PROGRESS_FILE_ENV: PROGRESS_FILE,
        "DATA_SIDECAR_READY_FILE": READY_FILE,
        "HOME": SIDECAR_TMP_DIR,
    }
    return client.V1Container(
        name=name,
        image=template.sidecar_image,
        image_pull_policy=template.image_pull_policy,
        command=command,
        env=_variables(env),
        resources=_quantities(template.sidecar_cpu, template.sidecar_memory),
        security_context=_locked_down(),
        volume_mounts=[
            _workspace_mount(),
            client.V1VolumeMount(name="manifest", mount_path=MANIFEST_DIR, read_only=True),
            client.V1VolumeMount(name="sidecar-tmp", mount_path=SIDECAR_TMP_DIR),
        ],
    )


def _worker_env(spec: JobSpec) -> list[client.V1EnvVar]:
    """`worker_environment`: the job's variables by reference to the Secret, the rest as values."""
    contract = {
        WORKSPACE_ENV: CONTAINER_WORKSPACE,
        INPUTS_DIR_ENV: f"{CONTAINER_WORKSPACE}/{INPUTS_DIR}",
        OUTPUTS_DIR_ENV: f"{CONTAINER_WORKSPACE}/{OUTPUTS_DIR}",
        PROGRESS_FILE_ENV: PROGRESS_FILE,
        "HOME": WORKER_TMP_DIR,
    }
    environment = worker_environment(
        spec.inputs, spec.worker_env, provider=spec.execution.env, workspace=contract
    )
    from_job = set(spec.worker_env) - set(spec.execution.env) - set(contract)
    secret = manifest_secret_name(spec.job_id)
    variables: list[client.V1EnvVar] = []
    for name, value in environment.items():
        if name in from_job:
            reference = client.V1SecretKeySelector(name=secret, key=f"{ENV_KEY_PREFIX}{name}")
            source = client.V1EnvVarSource(secret_key_ref=reference)
            variables.append(client.V1EnvVar(name=name, value_from=source))
        else:
            variables.append(client.V1EnvVar(name=name, value=value))
    return variables


def _worker_container(spec: JobSpec) -> client.V1Container:
    execution = spec.execution
    resources = execution.resources
    return client.V1Container(
        name=WORKER_CONTAINER,
        image=execution.image,
        image_pull_policy=spec.template.image_pull_policy,
        command=list(execution.command) or None,
        args=list(execution.args) or None,
        working_dir=CONTAINER_WORKSPACE,
        env=_worker_env(spec),
        resources=_quantities(resources.cpu, resources.memory, resources.gpu),
        security_context=_locked_down(),
        volume_mounts=[
            _workspace_mount(),
            client.V1VolumeMount(name="tmp", mount_path=WORKER_TMP_DIR),
        ],
    )


def _volumes(spec: JobSpec) -> list[client.V1Volume]:
    manifest = client.V1SecretVolumeSource(
        secret_name=manifest_secret_name(spec.job_id),
        items=[client.V1KeyToPath(key=MANIFEST_KEY, path=MANIFEST_KEY)],
        default_mode=0o440,
    )
    empty = client.V1EmptyDirVolumeSource
    return [
        client.V1Volume(name="workspace", empty_dir=empty()),
        client.V1Volume(name="tmp", empty_dir=empty(size_limit="1Gi")),
        client.V1Volume(name="sidecar-tmp", empty_dir=empty(size_limit="64Mi")),
        client.V1Volume(name="manifest", secret=manifest),
    ]


def make_pod_spec(spec: JobSpec) -> client.V1PodSpec:
    template = spec.template
    stage_in = _sidecar_container(spec, STAGE_IN_CONTAINER, ["data-sidecar", "stage-in"])
    sidecar = _sidecar_container(spec, SIDECAR_CONTAINER, ["data-sidecar", "follow"])
    sidecar.restart_policy = "Always"  # a native sidecar
    sidecar.startup_probe = client.V1Probe(
        _exec=client.V1ExecAction(command=list(READY_PROBE_COMMAND)),
        period_seconds=1,
        failure_threshold=120,
        timeout_seconds=5,
    )
    tolerations = [
        client.V1Toleration(
            key=item.key,
            operator=item.operator,
            value=item.value,
            effect=item.effect,
            toleration_seconds=item.toleration_seconds,
        )
        for item in template.tolerations
    ]
    return client.V1PodSpec(
        restart_policy="Never",
        service_account_name=template.service_account,
        automount_service_account_token=False,
        enable_service_links=False,
        termination_grace_period_seconds=template.push_out_grace_seconds,
        node_selector=dict(template.node_selector) or None,
        tolerations=tolerations or None,
        security_context=client.V1PodSecurityContext(
            run_as_non_root=True,
            run_as_user=template.user_id,
            run_as_group=template.user_id,
            fs_group=template.user_id,  # the worker writes where the sidecars wrote
            seccomp_profile=client.V1SeccompProfile(type="RuntimeDefault"),
        ),
        init_containers=[stage_in, sidecar],
        containers=[_worker_container(spec)],
        volumes=_volumes(spec),
    )


def make_job(spec: JobSpec) -> client.V1Job:
    name = job_name(spec.job_id)
    pod = client.V1PodTemplateSpec(
        metadata=client.V1ObjectMeta(labels=job_labels(spec.job_id)), spec=make_pod_spec(spec)
    )
    body = client.V1JobSpec(
        backoff_limit=0,  # a failed worker is the job's answer, never retried behind its back
        active_deadline_seconds=spec.execution.timeout_seconds,
        ttl_seconds_after_finished=spec.template.ttl_seconds_after_finished,
        template=pod,
    )
    return client.V1Job(
        api_version="batch/v1", kind="Job", metadata=_metadata(spec, name), spec=body
    )


def make_manifest_secret(spec: JobSpec, owner: client.V1Job) -> client.V1Secret:
    """The manifest and the job's variables, owned by the created Job `owner` (it has a uid)."""
    reference = client.V1OwnerReference(
        api_version="batch/v1", kind="Job", name=owner.metadata.name, uid=owner.metadata.uid
    )
    check_job_variables(spec.inputs, spec.worker_env)
    data = {MANIFEST_KEY: spec.manifest.model_dump_json()}
    data |= {f"{ENV_KEY_PREFIX}{name}": value for name, value in spec.worker_env.items()}
    metadata = _metadata(spec, manifest_secret_name(spec.job_id), owner_references=[reference])
    return client.V1Secret(
        api_version="v1", kind="Secret", metadata=metadata, type="Opaque", string_data=data
    )
