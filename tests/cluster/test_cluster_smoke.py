"""Smoke tests of the KWOK cluster: what the Kubernetes deployer and job runner will rely on."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from workflow_testkit.kubernetes.cluster import ClusterHandle
from workflow_testkit.kubernetes.stage import wait_for

pytestmark = pytest.mark.slow

_IMAGE = "registry.invalid/workflow/dummy-job:0"  # never pulled: KWOK runs no containers


def _container() -> client.V1Container:
    return client.V1Container(name="main", image=_IMAGE, command=["run"])


@pytest.fixture
def admin(kubernetes_cluster: ClusterHandle) -> Iterator[client.ApiClient]:
    with kubernetes_cluster.api_client() as api:
        yield api


@pytest.fixture
def namespace(admin: client.ApiClient) -> Iterator[str]:
    name = f"wf-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(admin)
    created = core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    assert created.status.phase == "Active"
    yield name
    core.delete_namespace(name)


def test_deployment_becomes_available(admin: client.ApiClient, namespace: str) -> None:
    labels = {"app": "consumer"}
    deployment = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="consumer"),
        spec=client.V1DeploymentSpec(
            replicas=2,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[_container()]),
            ),
        ),
    )
    apps = client.AppsV1Api(admin)
    apps.create_namespaced_deployment(namespace, deployment)

    status = wait_for(
        lambda: (
            (s := apps.read_namespaced_deployment_status("consumer", namespace).status)
            and s.available_replicas == 2
            and s
        ),
        "deployment available",
    )
    assert status.ready_replicas == 2
    pods = client.CoreV1Api(admin).list_namespaced_pod(namespace, label_selector="app=consumer")
    assert {pod.status.phase for pod in pods.items} == {"Running"}
    assert all(pod.spec.node_name for pod in pods.items)  # scheduled onto the fake node


def test_job_succeeds(admin: client.ApiClient, namespace: str) -> None:
    job = client.V1Job(
        metadata=client.V1ObjectMeta(name="run-1"),
        spec=client.V1JobSpec(
            backoff_limit=0,
            template=client.V1PodTemplateSpec(
                spec=client.V1PodSpec(restart_policy="Never", containers=[_container()])
            ),
        ),
    )
    batch = client.BatchV1Api(admin)
    batch.create_namespaced_job(namespace, job)

    status = wait_for(
        lambda: (
            (s := batch.read_namespaced_job_status("run-1", namespace).status)
            and s.succeeded == 1
            and any(c.type == "Complete" and c.status == "True" for c in s.conditions or [])
            and s
        ),
        "job complete",
    )
    assert status.completion_time is not None


def test_service_account_is_confined_to_its_namespace(
    kubernetes_cluster: ClusterHandle, admin: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(admin)
    rbac = client.RbacAuthorizationV1Api(admin)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="runner"))
    )
    rbac.create_namespaced_role(
        namespace,
        client.V1Role(
            metadata=client.V1ObjectMeta(name="runner"),
            rules=[
                client.V1PolicyRule(
                    api_groups=[""], resources=["configmaps"], verbs=["get", "list", "create"]
                )
            ],
        ),
    )
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="runner"),
            role_ref=client.V1RoleRef(
                api_group="rbac.authorization.k8s.io", kind="Role", name="runner"
            ),
            subjects=[
                client.RbacV1Subject(kind="ServiceAccount", name="runner", namespace=namespace)
            ],
        ),
    )
    token = core.create_namespaced_service_account_token(
        "runner",
        namespace,
        client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
        ),
    ).status.token

    with kubernetes_cluster.api_client(token=token) as api:
        as_runner = client.CoreV1Api(api)
        config_map = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c"), data={"k": "v"})
        as_runner.create_namespaced_config_map(namespace, config_map)
        names = {c.metadata.name for c in as_runner.list_namespaced_config_map(namespace).items}
        assert names == {"c", "kube-root-ca.crt"}  # the latter: published by the controller-manager
        for forbidden in (
            lambda: as_runner.list_namespaced_config_map("default"),
            lambda: as_runner.list_namespaced_secret(namespace),
            lambda: as_runner.create_namespace(
                client.V1Namespace(metadata=client.V1ObjectMeta(name="escape"))
            ),
        ):
            with pytest.raises(ApiException) as refused:
                forbidden()
            assert refused.value.status == 403
