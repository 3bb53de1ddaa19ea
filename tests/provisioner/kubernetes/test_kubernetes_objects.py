"""A consumer's Kubernetes objects: builders as plain dicts, every manifest against the official
schemas of the oldest and newest supported Kubernetes (strict), plus what schemas do not check."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import replace
from typing import Any

import kubernetes_validate
import pytest
from kubernetes.utils import parse_quantity

from provisioner.deployers.base import ConsumerSpec
from provisioner.deployers.kubernetes import config, objects
from provisioner.deployers.kubernetes import spec as spec_names
from provisioner.deployers.kubernetes.rbac import make_runner_cluster_role
from provisioner.deployers.kubernetes.settings import KubernetesSettings
from provisioner.deployers.kubernetes.spec import (
    ConsumerDeploymentSpec,
    IngressSpec,
    Resources,
    consumer_namespace,
)
from provisioner.slugs import consumer_slug
from workflow_testkit.kubernetes.manifests import (
    DNS_1035_LABEL,
    DNS_LABEL,
    DNS_SUBDOMAIN,
    LABEL_VALUE,
    NEWEST_VERSION,
    OLDEST_VERSION,
    as_dict,
)

STANDARD_LABELS = {f"app.kubernetes.io/{key}" for key in ("name", "instance", "component")} | {
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
}
ODD_ID = "did:web:Example.org:Alice"


SETTINGS = {
    "WORKFLOW_API_ASSETS_DIR": "/assets",
    "WORKFLOW_API_JWKS_URL": "http://provisioner.workflow-provisioner.svc/.well-known/jwks.json",
    "WORKFLOW_API_STORAGE": "s3",
    "WORKFLOW_API_S3_SECRET_KEY": "not-a-real-secret-but-long-enough",
}


def make_spec(consumer_id: str = ODD_ID, **changes: Any) -> ConsumerDeploymentSpec:
    """A spec; `changes` naming a `KubernetesSettings` field change the nested settings
    (unvalidated, so the spec's own checks see them), the others the spec."""
    slug = consumer_slug(consumer_id)
    kubernetes = KubernetesSettings(
        workflow_api_image="registry.example.org/workflow-api:1.0.0",
        provisioner_namespace="workflow-provisioner",
        ingress_namespace="ingress-nginx",
        storage_egress_cidrs=["10.20.0.0/16", "192.0.2.10/32"],
        storage_port=9000,
        quota_gpu=2,
    )
    nested = {
        key: changes.pop(key) for key in list(changes) if key in KubernetesSettings.model_fields
    }
    spec = ConsumerDeploymentSpec(
        consumer_id=consumer_id,
        slug=slug,
        namespace=consumer_namespace(slug),
        token_audience=f"workflow-api/{slug}",
        public_url=f"https://workflows.example.org/consumers/{slug}",
        ingress=IngressSpec(path_prefix=f"/consumers/{slug}", class_name="nginx"),
        kubernetes=kubernetes.model_copy(update=nested),
        settings=SETTINGS,
        grants=("asset-b", "asset-a"),
    )
    return replace(spec, **changes)


HOST_INGRESS = IngressSpec(
    path_prefix="/", host="alice.workflows.example.org", tls_secret="alice-tls", class_name=None
)
VARIANTS = {
    "path-routing-gpu": make_spec(),
    "host-routing-tls": make_spec(ingress=HOST_INGRESS),
    "no-gpu-no-storage-egress": make_spec(quota_gpu=0, storage_egress_cidrs=[]),
    "plain-id": make_spec("consumer-a", grants=()),
    "api-egress-to-the-internet": make_spec(
        api_server_cidrs=["10.0.0.1/32", "fd00::1/128"],
        settings={**SETTINGS, "WORKFLOW_API_EGRESS_ALLOW_CIDRS": '["10.30.0.0/16"]'},
        api_internet_egress=True,
    ),
}


def documents(spec: ConsumerDeploymentSpec) -> list[dict[str, Any]]:
    return [as_dict(obj) for obj in objects.make_consumer_objects(spec)]


def one(spec: ConsumerDeploymentSpec, kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        doc
        for doc in documents(spec)
        if doc["kind"] == kind and name in (None, doc["metadata"]["name"])
    ]
    assert len(found) == 1, (kind, name, len(found))
    return found[0]


def pod_template(spec: ConsumerDeploymentSpec) -> dict[str, Any]:
    template: dict[str, Any] = one(spec, "Deployment")["spec"]["template"]
    return template


def container(spec: ConsumerDeploymentSpec) -> dict[str, Any]:
    (only,) = pod_template(spec)["spec"]["containers"]
    return dict(only)


# --- offline schema validation --------------------------------------------------------------------


@pytest.mark.parametrize("version", [OLDEST_VERSION, NEWEST_VERSION])
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_manifest_is_valid_for_the_oldest_and_newest_kubernetes(
    variant: str, version: str
) -> None:
    for document in documents(VARIANTS[variant]):
        kubernetes_validate.validate(document, version, strict=True)


def test_validation_is_strict_and_catches_a_wrong_field() -> None:
    deployment = one(make_spec(), "Deployment")
    deployment["spec"]["replica"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, OLDEST_VERSION, strict=True)


# --- what the schemas do not check ---------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_names_namespaces_and_labels_are_valid(variant: str) -> None:
    spec = VARIANTS[variant]
    for document in documents(spec):
        metadata = document["metadata"]
        assert DNS_LABEL.fullmatch(metadata["name"]), metadata["name"]
        assert len(metadata["name"]) <= 63
        if document["kind"] == "Namespace":
            assert metadata["name"] == spec.namespace
            assert "namespace" not in metadata
        else:
            assert metadata["namespace"] == spec.namespace
        assert set(metadata["labels"]) >= STANDARD_LABELS
        assert metadata["labels"]["app.kubernetes.io/instance"] == spec.slug
        for value in metadata["labels"].values():
            assert len(value) <= 63
            assert LABEL_VALUE.fullmatch(value), value
    assert DNS_1035_LABEL.fullmatch(one(spec, "Service")["metadata"]["name"])


@pytest.mark.parametrize(
    "consumer_id",
    [ODD_ID, "UPPER lower", "---", "ümlaut@例え.jp", "x" * 300, "1234", "did:web:" + "a." * 80],
)
def test_any_consumer_id_yields_valid_names(consumer_id: str) -> None:
    spec = make_spec(consumer_id)
    assert DNS_LABEL.fullmatch(spec.namespace)
    assert len(spec.namespace) <= 63
    for document in documents(spec):
        assert DNS_LABEL.fullmatch(document["metadata"]["name"])
        kubernetes_validate.validate(document, OLDEST_VERSION, strict=True)
    annotations = one(spec, "Namespace")["metadata"]["annotations"]
    assert annotations[spec_names.CONSUMER_ID_ANNOTATION] == consumer_id


def test_consumer_namespace_keeps_within_63_characters_and_stays_unique() -> None:
    long_slug = "a" * 60 + "-1a2b"
    other_slug = "a" * 60 + "-3c4d"
    assert consumer_namespace("alice-1a2b3c4d") == "wf-alice-1a2b3c4d"
    assert consumer_namespace("alice-1a2b3c4d", prefix="") == "alice-1a2b3c4d"
    for slug in (long_slug, other_slug):
        assert len(consumer_namespace(slug, prefix="workflows-")) <= 63
        assert DNS_LABEL.fullmatch(consumer_namespace(slug, prefix="workflows-"))
    assert consumer_namespace(long_slug) != consumer_namespace(other_slug)
    with pytest.raises(ValueError, match="DNS label"):
        consumer_namespace("alice", prefix="WF_")


@pytest.mark.parametrize("variant", VARIANTS)
def test_selectors_match_the_api_pod_labels(variant: str) -> None:
    spec = VARIANTS[variant]
    labels = pod_template(spec)["metadata"]["labels"]
    selectors = [
        one(spec, "Deployment")["spec"]["selector"]["matchLabels"],
        one(spec, "Service")["spec"]["selector"],
        one(spec, "NetworkPolicy", "allow-api-ingress")["spec"]["podSelector"]["matchLabels"],
    ]
    for selector in selectors:
        assert selector
        assert selector.items() <= labels.items()
    job_selector = one(spec, "NetworkPolicy", "job-egress")["spec"]["podSelector"]["matchLabels"]
    assert not job_selector.items() <= labels.items()  # the API pod is no job


def quantities(document: dict[str, Any]) -> list[str]:
    found: list[str] = []
    spec = document.get("spec", {})
    for pod_container in spec.get("template", {}).get("spec", {}).get("containers", []):
        for group in ("requests", "limits"):
            found += pod_container["resources"][group].values()
    for volume in spec.get("template", {}).get("spec", {}).get("volumes", []):
        found += [volume["emptyDir"]["sizeLimit"]] if "emptyDir" in volume else []
    found += spec.get("hard", {}).values()
    for item in spec.get("limits", []):
        found += [*item["default"].values(), *item["defaultRequest"].values()]
    found += spec.get("resources", {}).get("requests", {}).values()
    return found


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_quantity_parses(variant: str) -> None:
    found = [value for doc in documents(VARIANTS[variant]) for value in quantities(doc)]
    assert len(found) >= 4 + 1 + 7 + 4 + 1
    for value in found:
        assert isinstance(value, str)
        parse_quantity(value)


@pytest.mark.parametrize("variant", VARIANTS)
def test_ports_are_in_range_and_named_ports_resolve(variant: str) -> None:
    spec = VARIANTS[variant]
    api = container(spec)
    ports = {port["name"]: port["containerPort"] for port in api["ports"]}
    assert ports == {"http": 8080}
    (service_port,) = one(spec, "Service")["spec"]["ports"]
    assert service_port["port"] == 80
    assert ports[service_port["targetPort"]] == 8080
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert api[probe]["httpGet"] == {"path": "/conformance", "port": "http"}
    for policy in (doc for doc in documents(spec) if doc["kind"] == "NetworkPolicy"):
        rules = policy["spec"].get("ingress", []) + policy["spec"].get("egress", [])
        for rule in rules:
            for port in rule.get("ports", []):  # none: every port (allow-listed networks)
                assert 0 < port["port"] < 65536
                assert port["protocol"] in {"TCP", "UDP"}


# --- RBAC, security, network ----------------------------------------------------------------------


def test_the_workflow_api_gets_the_runner_rules_in_its_namespace_only() -> None:
    spec = make_spec()
    runner = as_dict(make_runner_cluster_role())
    allowed = {
        ("batch", "jobs"): {"create", "get", "list", "watch", "delete"},
        ("", "pods"): {"get", "list", "watch", "delete"},
        ("", "pods/log"): {"get"},
        ("", "secrets"): {"create", "get", "delete"},
        ("", "events"): {"get", "list", "watch"},
    }
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in runner["rules"]:
        assert "nonResourceURLs" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                assert "*" not in (group, resource, *rule["verbs"])
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    assert granted == allowed
    # No cluster-wide grant among the consumer's objects: a RoleBinding, in its namespace
    assert all(
        document["kind"] not in {"Role", "ClusterRole", "ClusterRoleBinding"}
        for document in documents(spec)
    )
    binding = one(spec, "RoleBinding")
    assert binding["metadata"]["namespace"] == spec.namespace
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": runner["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "workflow-api", "namespace": spec.namespace}
    ]


def test_only_the_api_service_account_gets_a_token() -> None:
    spec = make_spec()
    api_account = one(spec, "ServiceAccount", spec_names.API_NAME)
    job_account = one(spec, "ServiceAccount", objects.JOB_SERVICE_ACCOUNT_NAME)
    assert api_account["automountServiceAccountToken"] is True
    assert job_account["automountServiceAccountToken"] is False
    assert pod_template(spec)["spec"]["serviceAccountName"] == api_account["metadata"]["name"]


def test_api_pod_runs_locked_down() -> None:
    spec = make_spec()
    pod = pod_template(spec)["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container(spec)["securityContext"] == {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert pod["enableServiceLinks"] is False
    assert not any(key.startswith("host") for key in pod)


def test_deployment_runs_one_api_on_its_claim_with_its_secret() -> None:
    spec = make_spec()
    deployment = one(spec, "Deployment")["spec"]
    assert deployment["replicas"] == 1
    assert deployment["strategy"] == {"type": "Recreate"}
    api = container(spec)
    assert api["image"] == spec.image
    assert [*api["command"], *api["args"]] == [
        "workflow-api", "serve", "--host", "0.0.0.0", "--port", "8080"
    ]  # fmt: skip
    assert api["envFrom"] == [{"secretRef": {"name": one(spec, "Secret")["metadata"]["name"]}}]
    assert api["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}
    volumes = {volume["name"]: volume for volume in pod_template(spec)["spec"]["volumes"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in api["volumeMounts"]}
    assert mounts == {"/data": "data", "/tmp": "tmp"}
    claim = one(spec, "PersistentVolumeClaim")
    assert volumes["data"]["persistentVolumeClaim"] == {"claimName": claim["metadata"]["name"]}
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert "emptyDir" in volumes["tmp"]


def test_secret_holds_settings_and_the_consumer_identity() -> None:
    spec = make_spec()
    secret = one(spec, "Secret")
    assert secret["type"] == "Opaque"
    assert secret["stringData"] == {
        **spec.settings,
        "WORKFLOW_API_CONSUMER_ID": ODD_ID,
        "WORKFLOW_API_DATA_DIR": "/data",
        "WORKFLOW_API_PUBLIC_URL": spec.public_url,
        "WORKFLOW_API_TOKEN_AUDIENCE": spec.token_audience,
    }
    others = [document for document in documents(spec) if document["kind"] != "Secret"]
    assert "not-a-real-secret" not in json.dumps(others)  # only the Secret holds it


def test_changed_settings_roll_the_pod_but_grants_do_not() -> None:
    spec = make_spec()
    annotation = objects.CONFIG_HASH_ANNOTATION

    def config_hash(changed: ConsumerDeploymentSpec) -> str:
        return str(pod_template(changed)["metadata"]["annotations"][annotation])

    assert config_hash(replace(spec, grants=("asset-c",))) == config_hash(spec)
    changed_settings = {**spec.settings, "WORKFLOW_API_MAX_RUNNING_JOBS": "4"}
    assert config_hash(replace(spec, settings=changed_settings)) != config_hash(spec)


def test_namespace_carries_the_consumer_id_and_grants() -> None:
    namespace = one(make_spec(), "Namespace")["metadata"]
    assert namespace["annotations"] == {
        "workflow.middle-layer/consumer-id": ODD_ID,
        "workflow.middle-layer/grants": '["asset-a", "asset-b"]',
    }
    assert namespace["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"


def test_network_policies_let_only_the_ingress_and_provisioner_reach_the_api() -> None:
    spec = make_spec()
    deny = one(spec, "NetworkPolicy", "default-deny-ingress")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress"]}
    allow = one(spec, "NetworkPolicy", "allow-api-ingress")["spec"]
    (rule,) = allow["ingress"]
    sources = [peer["namespaceSelector"]["matchLabels"] for peer in rule["from"]]
    assert sources == [
        {"kubernetes.io/metadata.name": "ingress-nginx"},
        {"kubernetes.io/metadata.name": "workflow-provisioner"},
    ]
    assert all(set(peer) == {"namespaceSelector"} for peer in rule["from"])
    assert rule["ports"] == [{"port": 8080, "protocol": "TCP"}]


def test_job_pods_reach_only_dns_and_storage() -> None:
    spec = make_spec()
    policy = one(spec, "NetworkPolicy", "job-egress")["spec"]
    assert policy["podSelector"]["matchLabels"] == {"workflow.middle-layer/role": "job"}
    assert policy["policyTypes"] == ["Egress"]
    dns, storage = policy["egress"]
    assert dns["to"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}
    ]
    assert {(port["protocol"], port["port"]) for port in dns["ports"]} == {("UDP", 53), ("TCP", 53)}
    assert [peer["ipBlock"]["cidr"] for peer in storage["to"]] == list(
        spec.kubernetes.storage_egress_cidrs
    )
    for peer in storage["to"]:
        ipaddress.ip_network(peer["ipBlock"]["cidr"])
    assert storage["ports"] == [{"port": 9000, "protocol": "TCP"}]
    without_storage = make_spec(storage_egress_cidrs=[])
    (only_dns,) = one(without_storage, "NetworkPolicy", "job-egress")["spec"]["egress"]
    assert only_dns == dns


def test_the_api_pod_reaches_dns_storage_and_the_provisioner_by_default() -> None:
    spec = make_spec()
    policy = one(spec, "NetworkPolicy", "api-egress")["spec"]
    assert policy["podSelector"]["matchLabels"] == spec.selector_labels()
    assert policy["policyTypes"] == ["Egress"]
    dns, storage, provisioner = policy["egress"]
    assert dns == one(spec, "NetworkPolicy", "job-egress")["spec"]["egress"][0]
    assert [peer["ipBlock"]["cidr"] for peer in storage["to"]] == list(
        spec.kubernetes.storage_egress_cidrs
    )
    assert storage["ports"] == [{"port": 9000, "protocol": "TCP"}]
    assert provisioner["to"] == [
        {
            "namespaceSelector": {
                "matchLabels": {"kubernetes.io/metadata.name": "workflow-provisioner"}
            }
        }
    ]
    assert provisioner["ports"] == [{"port": 8000, "protocol": "TCP"}]
    every_peer = [peer for rule in policy["egress"] for peer in rule["to"]]
    assert not any(
        peer.get("ipBlock", {}).get("cidr") in ("0.0.0.0/0", "::/0") for peer in every_peer
    )


def test_the_api_pod_reaches_the_api_server_allow_listed_networks_and_public_addresses() -> None:
    spec = VARIANTS["api-egress-to-the-internet"]
    rules = one(spec, "NetworkPolicy", "api-egress")["spec"]["egress"]
    api_server, allowed, internet = rules[3:]
    assert [peer["ipBlock"]["cidr"] for peer in api_server["to"]] == ["10.0.0.1/32", "fd00::1/128"]
    assert api_server["ports"] == [{"port": 6443, "protocol": "TCP"}]
    assert allowed == {"to": [{"ipBlock": {"cidr": "10.30.0.0/16"}}]}  # any port
    assert {(port["protocol"], port["port"]) for port in internet["ports"]} == {
        ("TCP", 80),
        ("TCP", 443),
    }
    v4, v6 = (peer["ipBlock"] for peer in internet["to"])
    assert (v4["cidr"], v6["cidr"]) == ("0.0.0.0/0", "::/0")
    refused_v4 = [ipaddress.ip_network(cidr) for cidr in v4["except"]]
    refused_v6 = [ipaddress.ip_network(cidr) for cidr in v6["except"]]
    for address in (
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "127.0.0.1",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
    ):
        assert any(ipaddress.ip_address(address) in block for block in refused_v4), address
    for address in ("::1", "fd00::1", "fe80::1", "::ffff:10.0.0.1", "ff02::1", "2002:a00:1::"):
        assert any(ipaddress.ip_address(address) in block for block in refused_v6), address
    assert not any(ipaddress.ip_address("8.8.8.8") in block for block in refused_v4)
    assert not any(ipaddress.ip_address("2606:4700::1111") in block for block in refused_v6)


def test_the_egress_allow_list_of_the_workflow_api_opens_its_network_policy() -> None:
    kubernetes = KubernetesSettings(
        workflow_api_image="api:1", ingress_domain="workflows.example.org"
    )
    consumer = ConsumerSpec("consumer-a", "consumer-a-00000000", "workflow-api/consumer-a")
    settings = {"WORKFLOW_API_EGRESS_ALLOW_CIDRS": '["10.30.0.0/16"]'}
    spec = config.deployment_spec(kubernetes, consumer, settings)
    assert spec.api_egress.allow_cidrs == ("10.30.0.0/16",)
    with pytest.raises(ValueError, match="JSON list"):
        config.deployment_spec(
            kubernetes, consumer, {"WORKFLOW_API_EGRESS_ALLOW_CIDRS": "10.30.0.0/16"}
        )
    with pytest.raises(ValueError, match="does not appear to be"):
        config.deployment_spec(
            kubernetes, consumer, {"WORKFLOW_API_EGRESS_ALLOW_CIDRS": '["10.0.0.0/33"]'}
        )


# --- ingress, quota ------------------------------------------------------------------------------


def test_path_routing_under_the_prefix() -> None:
    spec = make_spec()
    ingress = one(spec, "Ingress")["spec"]
    assert ingress["ingressClassName"] == "nginx"
    assert "tls" not in ingress
    (rule,) = ingress["rules"]
    assert "host" not in rule
    (path,) = rule["http"]["paths"]
    assert path["path"] == f"/consumers/{spec.slug}"
    assert path["pathType"] == "Prefix"
    assert path["backend"] == {"service": {"name": "workflow-api", "port": {"name": "http"}}}


def test_host_routing_with_tls() -> None:
    spec = make_spec(ingress=HOST_INGRESS)
    ingress = one(spec, "Ingress")["spec"]
    assert "ingressClassName" not in ingress
    (rule,) = ingress["rules"]
    assert rule["host"] == "alice.workflows.example.org"
    assert DNS_SUBDOMAIN.fullmatch(rule["host"])
    assert rule["http"]["paths"][0]["path"] == "/"
    assert ingress["tls"] == [{"hosts": ["alice.workflows.example.org"], "secretName": "alice-tls"}]


def test_ingress_annotations_are_passed_through() -> None:
    rewrite = {"nginx.ingress.kubernetes.io/rewrite-target": "/$2"}
    spec = make_spec(ingress=replace(make_spec().ingress, annotations=rewrite))
    assert one(spec, "Ingress")["metadata"]["annotations"] == rewrite


@pytest.mark.parametrize(("gpu", "expected"), [(0, "0"), (2, "2")])
def test_quota_always_bounds_gpus(gpu: int, expected: str) -> None:
    hard = one(make_spec(quota_gpu=gpu), "ResourceQuota")["spec"]["hard"]
    assert hard == {
        "requests.cpu": "4",
        "limits.cpu": "4",
        "requests.memory": "8Gi",
        "limits.memory": "8Gi",
        "requests.nvidia.com/gpu": expected,  # absent would mean unlimited
        "count/jobs.batch": "20",
        "pods": "20",
    }


def test_limit_range_gives_containers_defaults_within_the_quota() -> None:
    defaults = Resources(
        cpu_request="50m", memory_request="64Mi", cpu_limit="250m", memory_limit="256Mi"
    )
    spec = make_spec(container_defaults=defaults)
    (item,) = one(spec, "LimitRange")["spec"]["limits"]
    assert item == {
        "type": "Container",
        "default": {"cpu": "250m", "memory": "256Mi"},
        "defaultRequest": {"cpu": "50m", "memory": "64Mi"},
    }


# --- order, determinism, refusals ----------------------------------------------------------------


def test_apply_order_puts_what_admission_needs_before_the_pod() -> None:
    kinds = [document["kind"] for document in documents(make_spec())]
    assert kinds[0] == "Namespace"
    before_deployment = set(kinds[: kinds.index("Deployment")])
    assert {
        "ResourceQuota",
        "LimitRange",
        "NetworkPolicy",
        "ServiceAccount",
        "RoleBinding",
    } <= before_deployment
    assert {"Secret", "PersistentVolumeClaim"} <= before_deployment
    assert kinds.index("ServiceAccount") < kinds.index("RoleBinding")
    names = [
        (document["kind"], document["metadata"]["name"]) for document in documents(make_spec())
    ]
    assert len(names) == len(set(names)) == 15


def test_same_spec_gives_identical_output() -> None:
    first = json.dumps(documents(make_spec()), sort_keys=False)
    assert json.dumps(documents(make_spec()), sort_keys=False) == first
    reordered = make_spec(settings=dict(reversed(list(make_spec().settings.items()))))
    reordered = replace(reordered, grants=tuple(reversed(reordered.grants)))
    assert json.dumps(documents(reordered), sort_keys=False) == first


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"settings": {"WORKFLOW_API_CONSUMER_ID": "someone-else"}}, "may not contain"),
        ({"settings": {"PATH": "/bin"}}, "may not contain"),
        ({"namespace": "Not_A_Label"}, "DNS label"),
        ({"storage_egress_cidrs": ("10.0.0.0/33",)}, "does not appear to be"),
        ({"storage_port": 0}, "storage_port"),
        ({"api_server_cidrs": ["nope"]}, "does not appear to be"),
        ({"internet_ports": (0,)}, "1..65535"),
        ({"api_cpu_limit": "8"}, "quota"),
        ({"api_memory_request": "2Gi"}, "fit the limits"),
        ({"quota_max_pods": 1}, "max_pods"),
        ({"data_volume_size": "12XB"}, "Invalid number"),
    ],
)
def test_spec_refuses_what_would_fail_in_the_cluster(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_spec(**changes)
