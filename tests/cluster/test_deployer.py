"""The Kubernetes deployer against a real control plane (KWOK: real API server, controllers,
scheduler, RBAC, quota, namespace deletion; fake nodes that mark pods Running and Ready without
running any container, so "available" here means the Deployment controller and scheduler did
their part, not that the workflow-api answered).

The deployer runs with the token of a ServiceAccount bound only to the provisioner's ClusterRole
(`make_provisioner_cluster_role`), never as cluster admin; the admin client only sets the stage
and looks.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from provisioner.deployers.base import ConsumerSpec, DeploymentStatus
from provisioner.deployers.kubernetes import config
from provisioner.deployers.kubernetes.api import APPLIED_HASH_ANNOTATION, KubernetesApi
from provisioner.deployers.kubernetes.deployer import KubernetesDeployer
from provisioner.deployers.kubernetes.objects import make_consumer_objects
from provisioner.deployers.kubernetes.settings import KubernetesSettings
from provisioner.deployers.kubernetes.spec import CONFIG_HASH_ANNOTATION, GRANTS_ANNOTATION
from provisioner.slugs import consumer_slug
from workflow_testkit.kubernetes.cluster import ClusterHandle
from workflow_testkit.kubernetes.stage import (
    install_provisioner_rbac,
    kubeconfig_for_token,
    namespace_gone,
    secret_data,
    service_account_token,
    static_volumes,
    wait_for,
)

pytestmark = pytest.mark.slow

IMAGE = "registry.invalid/workflow/workflow-api:test"  # never pulled: KWOK runs no containers
PROVISIONER_NAMESPACE = "workflow-system"
PROVISIONER_ACCOUNT = "test-deployer-provisioner"
PROVISIONER_ROLE = "test-deployer-provisioner"
RUNNER_ROLE = "test-deployer-runner"
STORAGE_CLASS = "test-deployer-static"
VOLUMES = 16  # one static PersistentVolume per consumer namespace the tests create
COMMON_ENV = {
    "WORKFLOW_API_ASSETS_DIR": "/assets",
    "WORKFLOW_API_TOKEN_ISSUER": "workflow-provisioner",
    "WORKFLOW_API_JWKS_URL": "http://provisioner.workflow-system.svc/.well-known/jwks.json",
    "WORKFLOW_API_STORAGE": "filesystem",
    "WORKFLOW_API_MAX_RUNNING_JOBS": "2",
}


# --- the stage: RBAC as the chart installs it, static volumes, the provisioner's token -----------


@pytest.fixture(scope="module")
def admin(kubernetes_cluster: ClusterHandle) -> Iterator[client.ApiClient]:
    with kubernetes_cluster.api_client() as api:
        yield api


@pytest.fixture(scope="module")
def provisioner_token(admin: client.ApiClient) -> str:
    install_provisioner_rbac(
        admin,
        namespace=PROVISIONER_NAMESPACE,
        account=PROVISIONER_ACCOUNT,
        role=PROVISIONER_ROLE,
        runner_role=RUNNER_ROLE,
    )
    return service_account_token(admin, PROVISIONER_ACCOUNT, PROVISIONER_NAMESPACE)


@pytest.fixture(scope="module")
def volumes(admin: client.ApiClient) -> Iterator[None]:
    """KWOK has no volume provisioner: PersistentVolumes for the claims to bind to."""
    with static_volumes(admin, VOLUMES, STORAGE_CLASS):
        yield


@pytest.fixture(scope="module")
def provisioner_api(
    kubernetes_cluster: ClusterHandle, provisioner_token: str, volumes: None
) -> Iterator[client.ApiClient]:
    with kubernetes_cluster.api_client(token=provisioner_token) as api:
        yield api


def make_settings(**changes: Any) -> KubernetesSettings:
    values: dict[str, Any] = {
        "workflow_api_image": IMAGE,
        "ingress_domain": "workflows.test",
        "namespace_prefix": "dep-",
        "provisioner_namespace": PROVISIONER_NAMESPACE,
        "runner_cluster_role": RUNNER_ROLE,
        "ingress_class": "nginx",
        "data_volume_size": "1Gi",
        "data_storage_class": STORAGE_CLASS,
        "storage_egress_cidrs": ("10.96.0.0/12",),
        "storage_port": 9000,
        "readiness_timeout_seconds": 60.0,
        "removal_timeout_seconds": 90.0,
        "resync_seconds": 0.0,  # every call checks every object
    }
    return KubernetesSettings(**(values | changes))


@pytest.fixture
def make_deployer(
    provisioner_api: client.ApiClient, admin: client.ApiClient
) -> Iterator[Callable[..., KubernetesDeployer]]:
    """A deployer with the provisioner's token; its consumers' namespaces go at the end."""
    made: list[KubernetesDeployer] = []

    def make(env: dict[str, str] | None = None, storage: Any = None, **changes: Any) -> Any:
        deployer = KubernetesDeployer(
            api=KubernetesApi(provisioner_api, timeout_seconds=10),
            settings=make_settings(**changes),
            workflow_api_env=COMMON_ENV if env is None else env,
            storage=storage,
        )
        made.append(deployer)
        return deployer

    yield make
    core = client.CoreV1Api(admin)
    for namespace in core.list_namespace(
        label_selector="app.kubernetes.io/name=workflow-api"
    ).items:
        if namespace.metadata.name.startswith("dep-"):
            try:
                core.delete_namespace(namespace.metadata.name)
            except ApiException as error:
                if error.status != 404:
                    raise


def consumer(name: str, grants: tuple[str, ...] = ("echo",)) -> ConsumerSpec:
    consumer_id = f"did:web:{name}.example:{uuid.uuid4().hex[:6]}"
    slug = consumer_slug(consumer_id)
    return ConsumerSpec(consumer_id, slug, f"workflow-api/{slug}", grants)


def deploy_until(
    deployer: KubernetesDeployer,
    spec: ConsumerSpec,
    detail: dict[str, Any],
    wanted: str = "ready",
    timeout: float = 60,
) -> DeploymentStatus:
    """Call `deploy` as the reconciler does (every 50 ms here: 0.1 s), until `wanted`."""
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        status = deployer.deploy(spec, detail)
        detail = status.detail
        seen.append(status.state)
        if status.state == wanted:
            return status
        assert time.monotonic() < deadline, f"not {wanted} after {timeout}s: {status}"
        time.sleep(0.1)


def object_versions(
    admin: client.ApiClient, deployer: KubernetesDeployer, spec: ConsumerSpec, env: dict[str, str]
) -> dict[tuple[str, str], str]:
    """(kind, name) -> resourceVersion of every object the consumer should have."""
    reader = KubernetesApi(admin)
    desired: list[Any] = make_consumer_objects(
        config.deployment_spec(deployer._kubernetes, spec, env)
    )
    versions = {}
    for obj in desired:
        live = reader.read(obj.kind, obj.metadata.name, obj.metadata.namespace)
        assert live is not None, f"{obj.kind} {obj.metadata.name} is missing"
        versions[(obj.kind, obj.metadata.name)] = live.metadata.resource_version
    return versions


# --- deploy, supervise, update -------------------------------------------------------------------


def test_first_deploy_creates_every_object_and_becomes_ready(
    make_deployer: Callable[..., KubernetesDeployer], admin: client.ApiClient
) -> None:
    deployer, spec = make_deployer(), consumer("alice", grants=("echo", "sleep"))
    namespace = f"dep-{spec.slug}"

    first = deployer.deploy(spec, {})
    assert first.state == "starting"
    object_versions(admin, deployer, spec, COMMON_ENV)  # all there after the first call

    ready = deploy_until(deployer, spec, first.detail)
    assert ready.endpoint == f"https://workflows.test/consumers/{spec.slug}"
    assert ready.detail["admin_endpoint"] == f"http://workflow-api.{namespace}.svc"

    core, apps = client.CoreV1Api(admin), client.AppsV1Api(admin)
    live_namespace = core.read_namespace(namespace)
    assert (
        live_namespace.metadata.annotations["workflow.middle-layer/consumer-id"] == spec.consumer_id
    )
    assert json.loads(live_namespace.metadata.annotations[GRANTS_ANNOTATION]) == ["echo", "sleep"]
    assert live_namespace.metadata.labels["pod-security.kubernetes.io/enforce"] == "baseline"
    config = secret_data(admin, namespace)
    assert config["WORKFLOW_API_CONSUMER_ID"] == spec.consumer_id
    assert config["WORKFLOW_API_PUBLIC_URL"] == ready.endpoint
    assert config["WORKFLOW_API_TOKEN_ISSUER"] == "workflow-provisioner"
    claim = core.read_namespaced_persistent_volume_claim("workflow-api-data", namespace)
    assert claim.status.phase == "Bound"
    ingress = client.NetworkingV1Api(admin).read_namespaced_ingress("workflow-api", namespace)
    assert ingress.spec.rules[0].http.paths[0].path == f"/consumers/{spec.slug}"
    # The Deployment is really available: controller, scheduler and (fake) kubelet did their part
    deployment = apps.read_namespaced_deployment("workflow-api", namespace)
    assert deployment.status.available_replicas == 1
    (pod,) = core.list_namespaced_pod(namespace).items
    assert pod.status.phase == "Running"
    assert pod.spec.node_name  # scheduled onto KWOK's fake node
    assert pod.spec.containers[0].image == IMAGE


def test_deploying_again_changes_nothing(
    make_deployer: Callable[..., KubernetesDeployer], admin: client.ApiClient
) -> None:
    deployer, spec = make_deployer(), consumer("bob")
    ready = deploy_until(deployer, spec, {})
    before = object_versions(admin, deployer, spec, COMMON_ENV)

    for _ in range(3):  # resync_seconds = 0: each call is a full pass over every object
        again = deployer.deploy(spec, ready.detail)
        assert again.state == "ready"
        assert again.endpoint == ready.endpoint

    assert object_versions(admin, deployer, spec, COMMON_ENV) == before


def test_changed_settings_update_the_secret_and_roll_the_deployment(
    make_deployer: Callable[..., KubernetesDeployer], admin: client.ApiClient
) -> None:
    spec = consumer("carol")
    namespace = f"dep-{spec.slug}"
    ready = deploy_until(make_deployer(), spec, {})
    apps = client.AppsV1Api(admin)
    old = apps.read_namespaced_deployment("workflow-api", namespace)
    old_hash = old.spec.template.metadata.annotations[CONFIG_HASH_ANNOTATION]

    changed_env = {**COMMON_ENV, "WORKFLOW_API_MAX_RUNNING_JOBS": "5"}
    changed = make_deployer(env=changed_env)
    status = changed.deploy(spec, ready.detail)
    assert status.state in {"starting", "ready"}

    assert secret_data(admin, namespace)["WORKFLOW_API_MAX_RUNNING_JOBS"] == "5"
    new = apps.read_namespaced_deployment("workflow-api", namespace)
    assert new.spec.template.metadata.annotations[CONFIG_HASH_ANNOTATION] != old_hash
    assert new.metadata.generation > old.metadata.generation
    rolled = deploy_until(changed, spec, status.detail)
    assert rolled.state == "ready"
    replica_sets = client.AppsV1Api(admin).list_namespaced_replica_set(namespace).items
    assert len(replica_sets) == 2  # the old one scaled to 0, the new one running


def test_changed_grants_update_the_namespace_only(
    make_deployer: Callable[..., KubernetesDeployer], admin: client.ApiClient
) -> None:
    deployer, spec = make_deployer(), consumer("dave", grants=("echo",))
    ready = deploy_until(deployer, spec, {})
    before = object_versions(admin, deployer, spec, COMMON_ENV)

    more = ConsumerSpec(spec.consumer_id, spec.slug, spec.token_audience, ("echo", "sleep"))
    assert deployer.deploy(more, ready.detail).state == "ready"

    after = object_versions(admin, deployer, more, COMMON_ENV)
    assert {key for key in before if before[key] != after[key]} == {
        ("Namespace", f"dep-{spec.slug}")
    }
    annotations = client.CoreV1Api(admin).read_namespace(f"dep-{spec.slug}").metadata.annotations
    assert json.loads(annotations[GRANTS_ANNOTATION]) == ["echo", "sleep"]


def test_objects_deleted_behind_its_back_are_created_again(
    make_deployer: Callable[..., KubernetesDeployer], admin: client.ApiClient
) -> None:
    deployer, spec = make_deployer(), consumer("erin")
    namespace = f"dep-{spec.slug}"
    ready = deploy_until(deployer, spec, {})
    core, apps = client.CoreV1Api(admin), client.AppsV1Api(admin)
    networking, rbac = client.NetworkingV1Api(admin), client.RbacAuthorizationV1Api(admin)
    core.delete_namespaced_service("workflow-api", namespace)
    core.delete_namespaced_secret("workflow-api-config", namespace)
    networking.delete_namespaced_network_policy("default-deny-ingress", namespace)
    rbac.delete_namespaced_role_binding("workflow-api", namespace)
    apps.delete_namespaced_deployment("workflow-api", namespace)

    status = deployer.deploy(spec, ready.detail)

    assert status.state == "starting"  # the new Deployment is not available yet
    object_versions(admin, deployer, spec, COMMON_ENV)  # every object is back
    assert deploy_until(deployer, spec, status.detail).state == "ready"


def test_a_deployment_whose_selector_differs_is_replaced(
    make_deployer: Callable[..., KubernetesDeployer], admin: client.ApiClient
) -> None:
    deployer, spec = make_deployer(), consumer("fay")
    namespace = f"dep-{spec.slug}"
    ready = deploy_until(deployer, spec, {})
    apps = client.AppsV1Api(admin)
    apps.delete_namespaced_deployment("workflow-api", namespace)
    wait_for(lambda: not apps.list_namespaced_deployment(namespace).items, "the Deployment to go")
    labels = {"app": "someone-elses"}  # a selector is immutable: an update cannot fix it
    foreign = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="workflow-api"),
        spec=client.V1DeploymentSpec(
            replicas=1,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[client.V1Container(name="x", image=IMAGE)]),
            ),
        ),
    )
    apps.create_namespaced_deployment(namespace, foreign)

    status = deploy_until(deployer, spec, ready.detail)

    deployment = apps.read_namespaced_deployment("workflow-api", namespace)
    assert deployment.spec.selector.match_labels["app.kubernetes.io/instance"] == spec.slug
    assert APPLIED_HASH_ANNOTATION in deployment.metadata.annotations
    assert status.state == "ready"


# --- failures -----------------------------------------------------------------------------------


def test_an_unschedulable_first_deploy_fails_with_the_reason_and_leaves_nothing(
    make_deployer: Callable[..., KubernetesDeployer], admin: client.ApiClient
) -> None:
    # KWOK's node offers 32 CPUs: a pod asking for 64 fits the quota but no node.
    deployer = make_deployer(
        api_cpu_request="64",
        api_memory_request="1Gi",
        api_cpu_limit="64",
        api_memory_limit="1Gi",
        quota_cpu="100",
        readiness_timeout_seconds=3.0,
    )
    spec = consumer("gail")

    failed = deploy_until(deployer, spec, {}, wanted="failed", timeout=30)

    assert "cannot be scheduled" in failed.message
    assert "Insufficient cpu" in failed.message
    assert f"dep-{spec.slug}" in failed.message
    wait_for(lambda: namespace_gone(admin, f"dep-{spec.slug}"), "the namespace to go", 90)
    assert failed.detail["was_ready"] is False


def test_a_pod_that_cannot_pull_its_image_fails_with_the_image_and_reason(
    make_deployer: Callable[..., KubernetesDeployer], admin: client.ApiClient
) -> None:
    """KWOK cannot fail a pull: the test writes the pod status a kubelet would report. (Phase
    Running, not Pending, or KWOK's pod-ready stage would mark it ready again.)"""
    deployer, spec = make_deployer(readiness_timeout_seconds=2.0), consumer("hank")
    namespace = f"dep-{spec.slug}"
    ready = deploy_until(deployer, spec, {})
    core = client.CoreV1Api(admin)
    (pod,) = core.list_namespaced_pod(namespace).items
    pull_failed = {
        "status": {
            "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [
                {
                    "name": "workflow-api",
                    "image": IMAGE,
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "state": {
                        "waiting": {
                            "reason": "ImagePullBackOff",
                            "message": f'Back-off pulling image "{IMAGE}"',
                        }
                    },
                }
            ],
        }
    }
    core.patch_namespaced_pod_status(pod.metadata.name, namespace, pull_failed)

    starting = deploy_until(deployer, spec, ready.detail, wanted="starting", timeout=30)
    failed = deploy_until(deployer, spec, starting.detail, wanted="failed", timeout=30)

    assert f"image {IMAGE} cannot be pulled (ImagePullBackOff)" in failed.message
    assert not namespace_gone(admin, namespace)  # it was ready once: objects and data stay
    assert failed.detail["was_ready"] is True


def test_a_quota_that_refuses_the_pod_is_named(
    make_deployer: Callable[..., KubernetesDeployer], admin: client.ApiClient
) -> None:
    deployer, spec = make_deployer(readiness_timeout_seconds=2.0), consumer("ida")
    namespace = f"dep-{spec.slug}"
    ready = deploy_until(deployer, spec, {})
    core = client.CoreV1Api(admin)
    core.patch_namespaced_resource_quota(
        "consumer-quota", namespace, {"spec": {"hard": {"pods": "0"}}}
    )
    wait_for(
        lambda: (
            core.read_namespaced_resource_quota("consumer-quota", namespace).status.hard["pods"]
            == "0"
        ),
        "the quota controller to take the change",
    )
    (pod,) = core.list_namespaced_pod(namespace).items
    core.delete_namespaced_pod(pod.metadata.name, namespace, grace_period_seconds=0)

    failed = deploy_until(deployer, spec, ready.detail, wanted="failed", timeout=60)

    assert "exceeded quota: consumer-quota" in failed.message
    assert "no pod could be created" in failed.message


def test_a_namespace_that_is_not_the_consumers_is_neither_used_nor_deleted(
    make_deployer: Callable[..., KubernetesDeployer], admin: client.ApiClient
) -> None:
    deployer, spec = make_deployer(), consumer("jack")
    namespace = f"dep-{spec.slug}"
    core = client.CoreV1Api(admin)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))

    failed = deployer.deploy(spec, {})
    assert failed.state == "failed"
    assert "is not this consumer's" in failed.message
    deployer.remove(spec, failed.detail)

    assert core.read_namespace(namespace).metadata.deletion_timestamp is None
    assert client.AppsV1Api(admin).list_namespaced_deployment(namespace).items == []
    core.delete_namespace(namespace)


# --- removal --------------------------------------------------------------------------------------


def test_remove_returns_once_the_namespace_is_really_gone(
    make_deployer: Callable[..., KubernetesDeployer], admin: client.ApiClient
) -> None:
    deployer, spec = make_deployer(), consumer("kim")
    ready = deploy_until(deployer, spec, {})

    started = time.monotonic()
    deployer.remove(spec, ready.detail)
    took = time.monotonic() - started

    assert namespace_gone(admin, f"dep-{spec.slug}")  # finalised by the namespace controller
    deployer.remove(spec, ready.detail)  # again: nothing to do
    print(f"namespace deletion took {took:.1f} s")


# --- RBAC -----------------------------------------------------------------------------------------


def test_the_provisioner_token_reaches_nothing_else(provisioner_api: client.ApiClient) -> None:
    """No Secret can be read, no Job run, no Role written (its one cluster-wide read is `list
    pods`, for failure messages)."""
    core, batch = client.CoreV1Api(provisioner_api), client.BatchV1Api(provisioner_api)
    job = client.V1Job(
        metadata=client.V1ObjectMeta(name="escape"),
        spec=client.V1JobSpec(
            template=client.V1PodTemplateSpec(
                spec=client.V1PodSpec(
                    restart_policy="Never", containers=[client.V1Container(name="x", image=IMAGE)]
                )
            )
        ),
    )
    for forbidden in (
        lambda: core.list_namespaced_secret("kube-system"),
        lambda: core.read_namespaced_secret("anything", "kube-system"),
        lambda: batch.create_namespaced_job("default", job),
        lambda: client.RbacAuthorizationV1Api(provisioner_api).create_namespaced_role(
            "default",
            client.V1Role(
                metadata=client.V1ObjectMeta(name="x"),
                rules=[client.V1PolicyRule(api_groups=[""], resources=["secrets"], verbs=["get"])],
            ),
        ),
    ):
        with pytest.raises(ApiException) as refused:
            forbidden()
        assert refused.value.status == 403


def test_the_workflow_api_account_gets_the_runner_rules_in_its_namespace_only(
    make_deployer: Callable[..., KubernetesDeployer], admin: client.ApiClient
) -> None:
    deployer, spec = make_deployer(), consumer("lee")
    namespace = f"dep-{spec.slug}"
    deploy_until(deployer, spec, {})
    user = f"system:serviceaccount:{namespace}:workflow-api"
    authorization = client.AuthorizationV1Api(admin)

    def allowed(verb: str, resource: str, where: str, group: str = "") -> bool:
        review = client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(
                user=user,
                groups=["system:serviceaccounts", f"system:serviceaccounts:{namespace}"],
                resource_attributes=client.V1ResourceAttributes(
                    namespace=where, verb=verb, resource=resource, group=group
                ),
            )
        )
        return bool(authorization.create_subject_access_review(review).status.allowed)

    assert allowed("create", "jobs", namespace, "batch")
    assert allowed("get", "pods", namespace)
    assert not allowed("create", "jobs", "default", "batch")
    assert not allowed("update", "deployments", namespace, "apps")
    assert not allowed("get", "secrets", PROVISIONER_NAMESPACE)


# --- storage: a MinIO bucket and user per consumer, their keys in the consumer's Secret -----------


@pytest.mark.minio
def test_the_consumers_own_storage_credentials_are_in_its_secret(
    make_deployer: Callable[..., KubernetesDeployer],
    admin: client.ApiClient,
    minio_server: Any,
    tmp_path: Path,
) -> None:
    from provisioner.storage.credentials import CredentialSecrets  # noqa: PLC0415
    from provisioner.storage.s3 import MinioUserStorage  # noqa: PLC0415

    keys = CredentialSecrets.load_or_create(tmp_path / "credentials.key")
    storage = MinioUserStorage(
        endpoint=f"http://{minio_server.endpoint}",
        access_key=minio_server.root_user,
        secret_key=minio_server.root_password,
        bucket_stem="wf",
        secret_for=lambda slug: keys.derive(f"storage-user:{slug}"),
    )
    deployer = make_deployer(env={**COMMON_ENV, "WORKFLOW_API_STORAGE": "s3"}, storage=storage)
    spec = consumer("mia")
    ready = deploy_until(deployer, spec, {})
    config = secret_data(admin, f"dep-{spec.slug}")
    bucket = config["WORKFLOW_API_S3_BUCKET"]
    assert config["WORKFLOW_API_S3_ACCESS_KEY"] == bucket != minio_server.root_user
    own = minio_server.client(
        config["WORKFLOW_API_S3_ACCESS_KEY"], config["WORKFLOW_API_S3_SECRET_KEY"]
    )
    assert own.bucket_exists(bucket)

    deployer.remove(spec, ready.detail)

    assert not minio_server.client().bucket_exists(bucket)


# --- the whole provisioner with deployer = kubernetes ---------------------------------------------


def test_the_provisioner_deploys_and_removes_a_consumer_on_kubernetes(
    kubernetes_cluster: ClusterHandle,
    provisioner_token: str,
    volumes: None,
    admin: client.ApiClient,
    tmp_path: Path,
) -> None:
    from workflow_testkit.polling import poll  # noqa: PLC0415
    from workflow_testkit.provisioner import start_provisioner  # noqa: PLC0415

    running = start_provisioner(
        tmp_path / "provisioner",
        None,
        deployer="kubernetes",
        kubernetes_kubeconfig=kubeconfig_for_token(
            kubernetes_cluster, provisioner_token, tmp_path / "kubeconfig"
        ),
        kubernetes_workflow_api_image=IMAGE,
        kubernetes_ingress_domain="workflows.test",
        kubernetes_namespace_prefix="flow-",
        kubernetes_provisioner_namespace=PROVISIONER_NAMESPACE,
        kubernetes_runner_cluster_role=RUNNER_ROLE,
        kubernetes_data_storage_class=STORAGE_CLASS,
        kubernetes_data_volume_size="1Gi",
        kubernetes_removal_timeout_seconds=90,
    )
    try:
        answer = running.admin.post(
            "/admin/grants", json={"consumer_id": "nora", "asset_id": "echo"}
        )
        assert answer.status_code == 201, answer.text
        consumer_row = poll(
            lambda: (c := running.admin_api.consumer("nora")) and c["state"] == "ready" and c,
            60,
            "consumer ready",
        )
        slug = consumer_row["slug"]
        assert consumer_row["endpoint"] == f"https://workflows.test/consumers/{slug}"
        namespace = f"flow-{slug}"
        deployment = client.AppsV1Api(admin).read_namespaced_deployment("workflow-api", namespace)
        assert deployment.status.available_replicas == 1
        annotations = client.CoreV1Api(admin).read_namespace(namespace).metadata.annotations
        assert json.loads(annotations[GRANTS_ANNOTATION]) == ["echo"]
        # No workflow-api answers at its Service (KWOK runs no container): the grant waits
        (grant,) = running.admin_api.grants()
        assert grant["state"] == "provisioning"
        poll(lambda: running.admin_api.grants()[0]["lastError"], 30, "the grant to be retried")
        assert f"workflow-api.{namespace}.svc" in running.admin_api.grants()[0]["lastError"]

        assert running.admin.delete("/admin/consumers/nora").status_code == 200
        poll(
            lambda: (c := running.admin_api.consumer("nora")) and c["state"] == "removed",
            120,
            "consumer removed",
        )
        assert namespace_gone(admin, namespace)
    finally:
        running.stop()
