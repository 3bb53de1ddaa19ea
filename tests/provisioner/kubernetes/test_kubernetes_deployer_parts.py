"""The Kubernetes deployer's pure parts, without a cluster: rollout and failure reading, the
provisioner's ClusterRole, the kind table, routing, and the start-up checks of its settings.
The deployer against a real API server: tests/cluster/test_deployer.py."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from provisioner.deployers.base import ConsumerSpec
from provisioner.deployers.kubernetes import config
from provisioner.deployers.kubernetes.api import KINDS, KubernetesApi
from provisioner.deployers.kubernetes.rbac import (
    cluster_roles,
    make_provisioner_cluster_role,
    provisioner_rules,
)
from provisioner.deployers.kubernetes.settings import KubernetesSettings
from provisioner.deployers.kubernetes.setup import kubernetes_workflow_api_env, resolved_settings
from provisioner.deployers.kubernetes.status import describe_failure, rollout_complete
from provisioner.services import workflow_api_environment
from provisioner.settings import Settings
from workflow_api.settings import Settings as WorkflowApiSettings
from workflow_common.kubernetes import CONNECT_TIMEOUT_SECONDS, KubernetesApiError
from workflow_testkit.workflow_api import DUMMY_ASSETS

SPEC = ConsumerSpec("alice", "alice-1a2b3c4d", "workflow-api/alice-1a2b3c4d")


# --- reading a Deployment and its pods ------------------------------------------------------


def condition(kind: str, status: str, reason: str = "", message: str = "") -> Any:
    return client.V1DeploymentCondition(type=kind, status=status, reason=reason, message=message)


def deployment(
    *, generation: int = 2, observed: int = 2, available: int = 1, updated: int = 1, **more: Any
) -> client.V1Deployment:
    conditions = more.pop("conditions", [condition("Available", "True" if available else "False")])
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name="workflow-api", generation=generation),
        spec=client.V1DeploymentSpec(
            replicas=1, selector=client.V1LabelSelector(), template=client.V1PodTemplateSpec()
        ),
        status=client.V1DeploymentStatus(
            observed_generation=observed,
            replicas=more.pop("replicas", 1),
            updated_replicas=updated,
            available_replicas=available,
            conditions=conditions,
        ),
    )


def pod(
    phase: str = "Pending",
    *,
    scheduled: tuple[str, str] | None = None,
    waiting: tuple[str, str] | None = None,
    last_exit: int | None = None,
) -> client.V1Pod:
    conditions = []
    if scheduled:
        conditions.append(
            client.V1PodCondition(
                type="PodScheduled", status="False", reason=scheduled[0], message=scheduled[1]
            )
        )
    statuses = None
    if waiting:
        last = None
        if last_exit is not None:
            terminated = client.V1ContainerStateTerminated(exit_code=last_exit, reason="Error")
            last = client.V1ContainerState(terminated=terminated)
        statuses = [
            client.V1ContainerStatus(
                name="workflow-api",
                image="registry.example.org/workflow-api:bad",
                image_id="",
                ready=False,
                restart_count=7,
                state=client.V1ContainerState(
                    waiting=client.V1ContainerStateWaiting(reason=waiting[0], message=waiting[1])
                ),
                last_state=last,
            )
        ]
    return client.V1Pod(
        metadata=client.V1ObjectMeta(
            name="workflow-api-5d9c-x2x", creation_timestamp=datetime(2026, 1, 1, tzinfo=UTC)
        ),
        status=client.V1PodStatus(phase=phase, conditions=conditions, container_statuses=statuses),
    )


def test_rollout_is_complete_only_when_the_latest_spec_runs_and_is_available() -> None:
    assert rollout_complete(deployment())
    assert not rollout_complete(deployment(observed=1))  # controller has not seen the change
    assert not rollout_complete(deployment(updated=0))  # old pod only
    assert not rollout_complete(deployment(available=0))
    assert not rollout_complete(deployment(replicas=2))  # an old pod is still there
    assert not rollout_complete(deployment(conditions=[]))


@pytest.mark.parametrize(
    ("pods", "expected"),
    [
        (
            [pod(waiting=("ImagePullBackOff", 'Back-off pulling image "x"'))],
            "image registry.example.org/workflow-api:bad cannot be pulled (ImagePullBackOff)",
        ),
        (
            [pod("Running", waiting=("CrashLoopBackOff", "back-off 5m"), last_exit=3)],
            "keeps crashing (7 restarts); last exit code 3 (Error)",
        ),
        (
            [pod(scheduled=("Unschedulable", "0/3 nodes are available: 3 Insufficient cpu."))],
            "cannot be scheduled: 0/3 nodes are available: 3 Insufficient cpu.",
        ),
        (
            [pod(waiting=("CreateContainerConfigError", 'secret "x" not found'))],
            'cannot start: secret "x" not found',
        ),
        ([pod("Running")], "runs but is not ready"),
        ([], "no pod exists for it yet"),
    ],
)
def test_failure_names_the_pods_cause(pods: list[client.V1Pod], expected: str) -> None:
    assert expected in describe_failure(deployment(available=0), pods)


def test_failure_names_the_quota_that_refused_the_pod() -> None:
    refused = condition(
        "ReplicaFailure",
        "True",
        "FailedCreate",
        'pods "workflow-api-5d9c-x2x" is forbidden: exceeded quota: consumer-quota',
    )
    message = describe_failure(deployment(available=0, conditions=[refused]), [])
    assert message == (
        'no pod could be created: pods "workflow-api-5d9c-x2x" is forbidden:'
        " exceeded quota: consumer-quota"
    )


# --- API errors and the kind table ------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "retryable"), [(0, True), (429, True), (500, True), (503, True), (403, False)]
)
def test_only_throttling_server_errors_and_silence_are_retried(
    status: int, retryable: bool
) -> None:
    assert KubernetesApiError(status, "", "").retryable is retryable


def test_calls_are_retried_on_retryable_errors_only_and_bounded() -> None:
    api = KubernetesApi(client.ApiClient(), timeout_seconds=1)
    calls: list[Any] = []

    def flaky(*, _request_timeout: Any) -> str:
        calls.append(_request_timeout)
        if len(calls) < 3:
            raise ApiException(status=503, reason="Service Unavailable")
        return "answer"

    assert api.call(flaky) == "answer"
    assert calls == [(CONNECT_TIMEOUT_SECONDS, 1)] * 3  # every attempt with its timeout

    def forbidden(*, _request_timeout: Any) -> str:
        calls.append("forbidden")
        raise ApiException(status=403, reason="Forbidden")

    calls.clear()
    with pytest.raises(KubernetesApiError) as refused:
        api.call(forbidden)
    assert (refused.value.status, calls) == (403, ["forbidden"])


def test_an_unreachable_api_server_is_a_retryable_error_after_the_attempts() -> None:
    configuration = client.Configuration()
    configuration.host = "https://127.0.0.1:1"
    configuration.retries = 0
    api = KubernetesApi(client.ApiClient(configuration), timeout_seconds=1)
    with pytest.raises(KubernetesApiError) as unreachable:
        api.read("Namespace", "anything")
    assert unreachable.value.status == 0
    assert unreachable.value.retryable
    assert "unreachable" in str(unreachable.value)


def test_an_immutable_field_is_recognised_from_the_status_body() -> None:
    body = '{"kind":"Status","message":"spec.selector: Invalid value: ...: field is immutable"}'
    error = KubernetesApiError.from_exception(ApiException(status=422, reason="Unprocessable"))
    assert not error.immutable
    exception = ApiException(status=422, reason="Unprocessable Entity")
    exception.body = body
    assert KubernetesApiError.from_exception(exception).immutable


def test_every_method_the_kind_table_implies_exists_in_the_client() -> None:
    for kind in KINDS.values():
        api_class = getattr(client, kind.api)
        for action in ("create", "read", "replace", "patch", "delete"):
            assert callable(getattr(api_class, kind.method(action))), (kind.name, action)


# --- the provisioner's ClusterRole --------------------------------------------------------------


def test_the_provisioner_holds_exactly_the_verbs_the_deployer_uses() -> None:
    granted = {(rule.group, rule.resource): set(rule.verbs) for rule in provisioner_rules()}
    write = {"get", "create", "update"}
    assert granted == {
        ("", "namespaces"): {"get", "create", "patch", "delete"},
        ("", "resourcequotas"): write,
        ("", "limitranges"): write,
        ("", "serviceaccounts"): write,
        ("", "services"): write,
        ("", "secrets"): {"create", "update"},  # written, never read
        ("", "persistentvolumeclaims"): {"get", "create", "patch"},  # never deleted by hand
        ("", "pods"): {"list"},
        ("networking.k8s.io", "networkpolicies"): write,
        ("networking.k8s.io", "ingresses"): write,
        ("apps", "deployments"): write | {"delete"},  # re-created when the selector changes
        ("rbac.authorization.k8s.io", "rolebindings"): write | {"delete"},  # roleRef is immutable
        ("rbac.authorization.k8s.io", "clusterroles"): {"bind"},
    }
    rules = provisioner_rules()
    (bind,) = [rule for rule in rules if rule.resource == "clusterroles"]
    assert bind.resource_names == ("workflow-api-runner",)
    assert all(not rule.resource_names for rule in rules if rule is not bind)
    all_verbs = {verb for verbs in granted.values() for verb in verbs}
    assert not all_verbs & {"*", "escalate", "impersonate", "watch"}


def test_the_cluster_roles_are_valid_documents_for_the_chart() -> None:
    documents = cluster_roles()
    assert [document["metadata"]["name"] for document in documents] == [
        "workflow-provisioner",
        "workflow-api-runner",
    ]
    for document in documents:
        kubernetes_validate.validate(document, "1.28.0", strict=True)
    role = make_provisioner_cluster_role("release-provisioner", "release-runner")
    assert role.rules[-1].resource_names == ["release-runner"]


# --- routing -------------------------------------------------------------------------------------


def test_path_routing_puts_every_consumer_under_one_host() -> None:
    settings = KubernetesSettings(workflow_api_image="i", ingress_domain="workflows.example.org")
    assert config.public_url(settings, SPEC) == (
        "https://workflows.example.org/consumers/alice-1a2b3c4d"
    )
    route = config.ingress(settings, SPEC)
    assert (route.host, route.path_prefix) == (None, "/consumers/alice-1a2b3c4d")
    assert config.namespace(settings, SPEC) == "wf-alice-1a2b3c4d"


def test_host_routing_gives_every_consumer_a_host() -> None:
    settings = KubernetesSettings(
        workflow_api_image="i",
        ingress_domain="wf.example.org",
        ingress_routing="host",
        ingress_tls_secret="wildcard-tls",
    )
    assert config.public_url(settings, SPEC) == "https://alice-1a2b3c4d.wf.example.org"
    route = config.ingress(settings, SPEC)
    assert (route.host, route.path_prefix, route.tls_secret) == (
        "alice-1a2b3c4d.wf.example.org",
        "/",
        "wildcard-tls",
    )


def test_a_public_port_goes_into_the_public_url_but_not_the_route() -> None:
    path = KubernetesSettings(
        workflow_api_image="i", ingress_domain="localhost", public_scheme="http", public_port=30080
    )
    assert config.public_url(path, SPEC) == "http://localhost:30080/consumers/alice-1a2b3c4d"
    assert config.ingress(path, SPEC).path_prefix == "/consumers/alice-1a2b3c4d"
    host = KubernetesSettings(
        workflow_api_image="i",
        ingress_domain="wf.example.org",
        ingress_routing="host",
        public_port=8443,
    )
    assert config.public_url(host, SPEC) == "https://alice-1a2b3c4d.wf.example.org:8443"
    assert config.ingress(host, SPEC).host == "alice-1a2b3c4d.wf.example.org"


# --- settings, checked at start-up ----------------------------------------------------------------


def kubernetes_settings(tmp_path: Path, **overrides: Any) -> Settings:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    values: dict[str, Any] = {
        "public_url": "http://provisioner.example:8000",
        "data_dir": tmp_path,
        "assets_dir": DUMMY_ASSETS,
        "admin_token": secrets.token_urlsafe(32),
        "edc_endpoint_secret": secrets.token_urlsafe(24),
        "deployer": "kubernetes",
        "kubernetes_kubeconfig": kubeconfig,
        "kubernetes_workflow_api_image": "registry.example.org/workflow-api:1",
        "kubernetes_ingress_domain": "workflows.example.org",
    }
    return Settings(**(values | overrides))


def test_complete_kubernetes_settings_are_accepted(tmp_path: Path) -> None:
    settings = kubernetes_settings(tmp_path, kubernetes_storage_egress_cidrs=["10.0.0.0/8"])
    assert settings.deployer == "kubernetes"


def test_the_public_port_setting_reaches_the_public_url(tmp_path: Path) -> None:
    settings = kubernetes_settings(tmp_path, kubernetes_public_port=30443)
    assert config.public_url(resolved_settings(settings), SPEC) == (
        "https://workflows.example.org:30443/consumers/alice-1a2b3c4d"
    )


def test_pods_get_the_in_cluster_view_of_the_shared_settings(tmp_path: Path) -> None:
    settings = kubernetes_settings(
        tmp_path,
        kubernetes_provisioner_url="http://provisioner.workflow-system.svc",
        kubernetes_sidecar_image="registry.example.org/data-sidecar:1",
        kubernetes_workflow_api_env={"WORKFLOW_API_KUBERNETES_POLL_SECONDS": "1"},
    )
    env = kubernetes_workflow_api_env(settings, workflow_api_environment(settings))
    assert env["WORKFLOW_API_ASSETS_DIR"] == "/assets"  # inside the image, not the host's path
    assert env["WORKFLOW_API_JWKS_URL"] == (
        "http://provisioner.workflow-system.svc/.well-known/jwks.json"
    )
    assert env["WORKFLOW_API_RUNNER"] == "kubernetes"
    assert env["WORKFLOW_API_KUBERNETES_SIDECAR_IMAGE"] == "registry.example.org/data-sidecar:1"
    assert env["WORKFLOW_API_KUBERNETES_POLL_SECONDS"] == "1"
    assert env["WORKFLOW_API_TOKEN_ISSUER"] == settings.token_issuer


def test_the_egress_allow_list_reaches_every_workflow_api_and_its_network_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = kubernetes_settings(
        tmp_path,
        egress_allow_hosts=["data.internal"],
        egress_allow_cidrs=["10.30.0.0/16"],
        kubernetes_api_server_cidrs=["10.0.0.1/32"],
        kubernetes_api_internet_egress=True,
    )
    env = kubernetes_workflow_api_env(settings, workflow_api_environment(settings))
    identity = {
        "WORKFLOW_API_CONSUMER_ID": "c",
        "WORKFLOW_API_DATA_DIR": str(tmp_path),
        "WORKFLOW_API_PUBLIC_URL": "https://w.example.org",
        "WORKFLOW_API_TOKEN_AUDIENCE": "a",
    }
    for name, value in (env | identity).items():  # the workflow-api reads them as the pod would
        monkeypatch.setenv(name, value)
    policy = WorkflowApiSettings().egress_policy()  # type: ignore[call-arg]
    assert policy.allow_hosts == {"data.internal"}
    assert [str(network) for network in policy.allow_cidrs] == ["10.30.0.0/16"]
    spec = config.deployment_spec(resolved_settings(settings), SPEC, env)
    assert spec.api_egress.allow_cidrs == ("10.30.0.0/16",)
    assert spec.api_egress.api_server_cidrs == ("10.0.0.1/32",)
    assert spec.api_egress.internet
    with pytest.raises(ValidationError, match="does not appear to be"):
        kubernetes_settings(tmp_path, egress_allow_cidrs=["10.0.0.0/33"])


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"kubernetes_workflow_api_image": None}, "PROVISIONER_KUBERNETES_WORKFLOW_API_IMAGE"),
        ({"kubernetes_ingress_domain": None}, "PROVISIONER_KUBERNETES_INGRESS_DOMAIN"),
        ({"kubernetes_ingress_domain": "Not A Host"}, "PROVISIONER_KUBERNETES_INGRESS_DOMAIN"),
        ({"kubernetes_kubeconfig": Path("/nonexistent/kubeconfig")}, "is not a file"),
        ({"kubernetes_namespace_prefix": "WF_"}, "is not a DNS label"),
        ({"kubernetes_api_cpu_limit": "8"}, "the workflow-api's limits the quota"),
        ({"kubernetes_quota_memory": "lots"}, "PROVISIONER_KUBERNETES_*"),
        ({"kubernetes_storage_egress_cidrs": ["10.0.0.300/8"]}, "PROVISIONER_KUBERNETES_*"),
        ({"kubernetes_workflow_api_env": {"PATH": "/x"}}, "settings may not contain"),
        ({"kubernetes_ingress_path_prefix": "consumers"}, "must start with '/'"),
    ],
)
def test_wrong_kubernetes_settings_are_refused_at_start_up(
    tmp_path: Path, overrides: dict[str, Any], named: str
) -> None:
    with pytest.raises(ValidationError, match=named.replace("*", r"\*").replace("(", r"\(")):
        kubernetes_settings(tmp_path, **overrides)


def test_minio_isolation_needs_a_bucket_stem_that_makes_bucket_names(tmp_path: Path) -> None:
    s3 = {
        "storage": "s3",
        "s3_endpoint": "http://minio:9000",
        "s3_access_key": "root",
        "s3_secret_key": "root-secret",
        "s3_isolation": "minio",
    }
    with pytest.raises(ValidationError, match="stem of each consumer's bucket"):
        kubernetes_settings(tmp_path, s3_bucket="Workflows_", **s3)
    assert kubernetes_settings(tmp_path, s3_bucket="wf", **s3).s3.isolation == "minio"
