"""The job runner's Kubernetes objects: builders as plain dicts, every manifest against the schemas
of the oldest and newest supported Kubernetes (strict), plus what schemas do not check."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import kubernetes_validate
import pytest
from kubernetes import client

from provisioner.deployers.kubernetes import objects as provisioner_objects
from workflow_api.execution.kubernetes import objects
from workflow_api.execution.kubernetes.objects import JobSpec, JobTemplate, Toleration
from workflow_contracts import kubernetes_names
from workflow_contracts.asset import AssetInput, ExecutionUnit, Resources
from workflow_contracts.environment import UndeclaredVariableError
from workflow_contracts.manifest import JobManifest, OutputTarget
from workflow_testkit.kubernetes.manifests import (
    ENV_NAME,
    SECRET_KEY,
    VERSIONS,
    as_dict,
    check_dns_label,
    check_labels,
    check_quantity,
    validate,
)

JOB_ID = "0b5e3f7a-4a43-4c0e-9d0c-8f1e2b3c4d5e"
INPUTS = (
    AssetInput.model_validate({"id": "duration", "kind": "literal", "type": "number"}),
    AssetInput.model_validate(
        {"id": "settings", "kind": "env-file", "variables": {"names": ["GREETING"]}}
    ),
)
TEMPLATE = JobTemplate(
    sidecar_image="registry.example.org/data-sidecar:1.0.0",
    node_selector={"workload": "jobs"},
    tolerations=(Toleration(key="gpu", operator="Exists", effect="NoSchedule"),),
)


def make_spec(**changes: Any) -> JobSpec:
    spec = JobSpec(
        job_id=JOB_ID,
        namespace="wf-alice-1a2b3c4d",
        execution=ExecutionUnit(
            image="registry.example.org/dummy-job:0.1.0",
            command=["dummy-job"],
            args=["dummy"],
            env={"MODE": "fast", "HOME": "/root"},
            resources=Resources(cpu="500m", memory="256Mi", gpu=1),
            timeout_seconds=900,
        ),
        manifest=JobManifest(
            job_id=JOB_ID,
            outputs=[OutputTarget(id="result", kind="file", url="https://s3.example.org/o?sig")],
            log_url="https://s3.example.org/log?sig",
        ),
        template=TEMPLATE,
        inputs=INPUTS,
        worker_env={"INPUT_DURATION": "2.75", "GREETING": "Hello from an env-file"},
    )
    return replace(spec, **changes)


VARIANTS = {
    "gpu-selector-tolerations": make_spec(),
    "plain": make_spec(
        execution=ExecutionUnit(image="busybox", command=[], args=[]),
        template=JobTemplate(sidecar_image="sidecar:1"),
        worker_env={},
    ),
}


def job(spec: JobSpec) -> dict[str, Any]:
    return as_dict(objects.make_job(spec))


def created(spec: JobSpec) -> client.V1Job:
    """The Job as the API answers its creation: with a uid."""
    made = objects.make_job(spec)
    made.metadata.uid = "6f1c1c5e-2f7d-4a51-9d4e-2b1f1f0a9c11"
    return made


def secret(spec: JobSpec) -> dict[str, Any]:
    return as_dict(objects.make_manifest_secret(spec, created(spec)))


def pod(spec: JobSpec) -> dict[str, Any]:
    template: dict[str, Any] = job(spec)["spec"]["template"]
    return template


def containers(spec: JobSpec) -> dict[str, dict[str, Any]]:
    pod_spec = pod(spec)["spec"]
    return {c["name"]: c for c in pod_spec["initContainers"] + pod_spec["containers"]}


# --- offline schema validation --------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_job_and_secret_are_valid_for_the_oldest_and_newest_kubernetes(
    variant: str, version: str
) -> None:
    for document in (job(VARIANTS[variant]), secret(VARIANTS[variant])):
        validate(document, version)


def test_native_sidecar_needs_kubernetes_1_28() -> None:
    with pytest.raises(kubernetes_validate.ValidationError, match="restartPolicy"):
        validate(job(make_spec()), "1.27.0")


# --- what the schemas do not check ---------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_names_labels_and_selector(variant: str) -> None:
    spec = VARIANTS[variant]
    documents = (job(spec), secret(spec))
    for document in documents:
        metadata = document["metadata"]
        check_dns_label(metadata["name"])
        assert metadata["namespace"] == spec.namespace
        check_labels(metadata["labels"])
    check_labels(pod(spec)["metadata"]["labels"])
    key, _, value = objects.job_selector(JOB_ID).partition("=")
    for labels in (pod(spec)["metadata"]["labels"], documents[0]["metadata"]["labels"]):
        assert labels[key] == value
        assert labels[kubernetes_names.JOB_LABEL_KEY] == kubernetes_names.JOB_LABEL_VALUE


def test_job_names_are_deterministic_and_always_dns_labels() -> None:
    assert objects.job_name(JOB_ID) == f"wfjob-{JOB_ID}"
    assert objects.manifest_secret_name(JOB_ID) == f"wfjob-{JOB_ID}-manifest"
    for odd in ("UPPER", "x" * 80, "a_b", "-"):
        name = objects.job_name(odd)
        check_dns_label(name)
        assert name == objects.job_name(odd)
        check_labels({kubernetes_names.JOB_ID_LABEL_KEY: objects.job_id_label(odd)})
    assert objects.job_name("x" * 80) != objects.job_name("x" * 81)


def test_the_network_policies_select_job_pods_by_the_shared_constants() -> None:
    """The provisioner's NetworkPolicies and job ServiceAccount use the same names."""
    assert provisioner_objects.JOB_LABEL_KEY == kubernetes_names.JOB_LABEL_KEY
    assert provisioner_objects.JOB_LABEL_VALUE == kubernetes_names.JOB_LABEL_VALUE
    assert provisioner_objects.JOB_SERVICE_ACCOUNT_NAME == kubernetes_names.JOB_SERVICE_ACCOUNT_NAME


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_container_has_parsable_requests_equal_to_limits(variant: str) -> None:
    for container in containers(VARIANTS[variant]).values():
        resources = container["resources"]
        assert resources["requests"] == resources["limits"]
        assert {"cpu", "memory"} <= set(resources["limits"])
        for value in resources["limits"].values():
            check_quantity(value)
    for volume in pod(VARIANTS[variant])["spec"]["volumes"]:
        if volume.get("emptyDir", {}).get("sizeLimit"):
            check_quantity(volume["emptyDir"]["sizeLimit"])


def test_gpus_are_requested_as_nvidia_resources() -> None:
    worker = containers(make_spec())["worker"]
    assert worker["resources"]["limits"] == {
        "cpu": "500m",
        "memory": "256Mi",
        "nvidia.com/gpu": "1",
    }
    plain = containers(VARIANTS["plain"])["worker"]
    assert "nvidia.com/gpu" not in plain["resources"]["limits"]


# --- the job's shape ------------------------------------------------------------------------------


def test_job_runs_once_within_the_asset_timeout_and_cleans_up() -> None:
    spec = job(make_spec())["spec"]
    assert spec["backoffLimit"] == 0
    assert spec["activeDeadlineSeconds"] == 900
    assert spec["ttlSecondsAfterFinished"] == 3600
    pod_spec = spec["template"]["spec"]
    assert pod_spec["restartPolicy"] == "Never"
    assert pod_spec["terminationGracePeriodSeconds"] == 300


def test_stage_in_then_native_sidecar_then_worker() -> None:
    pod_spec = pod(make_spec())["spec"]
    stage_in, sidecar = pod_spec["initContainers"]
    (worker,) = pod_spec["containers"]
    assert (stage_in["name"], sidecar["name"], worker["name"]) == ("stage-in", "sidecar", "worker")
    assert stage_in["command"] == ["data-sidecar", "stage-in"]
    assert "restartPolicy" not in stage_in
    assert sidecar["command"] == ["data-sidecar", "follow"]
    assert sidecar["restartPolicy"] == "Always"
    probe = sidecar["startupProbe"]["exec"]["command"]
    assert probe[0] == "python3" and "DATA_SIDECAR_READY_FILE" in probe[-1]
    sidecar_env = {item["name"]: item["value"] for item in sidecar["env"]}
    assert sidecar_env["DATA_SIDECAR_READY_FILE"].startswith("/tmp/")
    assert sidecar_env["DATA_SIDECAR_MANIFEST"] == "/etc/workflow-job/manifest.json"
    assert sidecar_env["WORKFLOW_PROGRESS_FILE"] == "/workspace/.progress"
    assert worker["image"] == "registry.example.org/dummy-job:0.1.0"
    assert (worker["command"], worker["args"]) == (["dummy-job"], ["dummy"])
    assert worker["workingDir"] == "/workspace"
    assert {c["image"] for c in (stage_in, sidecar)} == {TEMPLATE.sidecar_image}


def test_only_the_sidecars_see_the_manifest_and_everyone_the_workspace() -> None:
    spec = make_spec()
    mounts = {
        name: {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        for name, c in containers(spec).items()
    }
    assert mounts["worker"] == {"workspace": "/workspace", "tmp": "/tmp"}
    for name in ("stage-in", "sidecar"):
        assert mounts[name]["manifest"] == "/etc/workflow-job"
        assert mounts[name]["workspace"] == "/workspace"
    volumes = {v["name"]: v for v in pod(spec)["spec"]["volumes"]}
    manifest_volume = volumes["manifest"]["secret"]
    assert manifest_volume["secretName"] == objects.manifest_secret_name(JOB_ID)
    assert manifest_volume["items"] == [{"key": "manifest.json", "path": "manifest.json"}]
    for name in ("workspace", "tmp", "sidecar-tmp"):
        assert "emptyDir" in volumes[name]


def test_the_jobs_own_values_stay_in_the_secret() -> None:
    spec = make_spec()
    worker = containers(spec)["worker"]
    env = {item["name"]: item for item in worker["env"]}
    assert all(ENV_NAME.fullmatch(name) for name in env)
    assert env["MODE"] == {"name": "MODE", "value": "fast"}
    assert env["HOME"] == {"name": "HOME", "value": "/tmp"}  # the workspace contract wins
    assert env["WORKFLOW_WORKSPACE"]["value"] == "/workspace"
    assert env["WORKFLOW_OUTPUTS_DIR"]["value"] == "/workspace/outputs"
    for name, value in spec.worker_env.items():
        reference = env[name]["valueFrom"]["secretKeyRef"]
        assert reference == {"name": objects.manifest_secret_name(JOB_ID), "key": f"env.{name}"}
        assert value not in json.dumps(job(spec))
    data = secret(spec)["stringData"]
    assert {key: value for key, value in data.items() if key != "manifest.json"} == {
        "env.INPUT_DURATION": "2.75",
        "env.GREETING": "Hello from an env-file",
    }
    assert all(SECRET_KEY.fullmatch(key) for key in data)
    assert JobManifest.model_validate_json(data["manifest.json"]) == spec.manifest


def test_the_worker_gets_exactly_the_names_the_asset_and_the_contract_declare() -> None:
    worker = containers(make_spec())["worker"]
    assert sorted(item["name"] for item in worker["env"]) == [
        "GREETING",
        "HOME",
        "INPUT_DURATION",
        "MODE",
        "WORKFLOW_INPUTS_DIR",
        "WORKFLOW_OUTPUTS_DIR",
        "WORKFLOW_PROGRESS_FILE",
        "WORKFLOW_WORKSPACE",
    ]


@pytest.mark.parametrize(
    "name", ["PYTHONPYCACHEPREFIX", "BASH_ENV", "HTTP_PROXY", "LD_PRELOAD", "FOO", "MODE"]
)
def test_a_variable_the_asset_does_not_declare_never_reaches_the_job(name: str) -> None:
    spec = make_spec(worker_env={"GREETING": "hi", name: "/workspace/inputs/x"})
    with pytest.raises(UndeclaredVariableError, match=f"variable {name} is not one"):
        objects.make_job(spec)
    with pytest.raises(UndeclaredVariableError, match=name):
        objects.make_manifest_secret(spec, created(make_spec()))


def test_the_secret_belongs_to_the_job() -> None:
    spec = make_spec()
    (owner,) = secret(spec)["metadata"]["ownerReferences"]
    assert owner == {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": objects.job_name(JOB_ID),
        "uid": "6f1c1c5e-2f7d-4a51-9d4e-2b1f1f0a9c11",
    }
    assert secret(spec)["type"] == "Opaque"


def test_pods_run_locked_down_without_credentials() -> None:
    spec = make_spec()
    pod_spec = pod(spec)["spec"]
    assert pod_spec["serviceAccountName"] == kubernetes_names.JOB_SERVICE_ACCOUNT_NAME
    assert pod_spec["automountServiceAccountToken"] is False
    assert pod_spec["enableServiceLinks"] is False
    assert pod_spec["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    for container in containers(spec).values():
        assert container["securityContext"] == {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }
        assert container["imagePullPolicy"] == "IfNotPresent"
    assert not any(key.startswith("host") for key in pod_spec)
    text = json.dumps(job(spec))
    assert "sig" not in text  # no signed URL in the Job: they are in the Secret only


def test_placement_comes_from_the_template() -> None:
    pod_spec = pod(make_spec())["spec"]
    assert pod_spec["nodeSelector"] == {"workload": "jobs"}
    assert pod_spec["tolerations"] == [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]
    plain = pod(VARIANTS["plain"])["spec"]
    assert "nodeSelector" not in plain and "tolerations" not in plain
    worker = containers(VARIANTS["plain"])["worker"]
    assert "command" not in worker and "args" not in worker  # the image's entrypoint
