"""The Kubernetes objects of one consumer's workflow-api: pure builders, no I/O, no cluster.

Each consumer has a namespace of its own, named from its slug; inside it the object names are
fixed (`workflow-api`, `workflow-api-config`, ...), so every name is deterministic and deleting
the namespace collects everything. `make_consumer_objects` lists the objects in apply order: the
namespace, then what admission needs before the first pod (quota, limit range, network policies),
then the accounts and their binding, configuration, storage, the workload and its route.

The spec, `ConsumerDeploymentSpec`, is the consumer's part next to the deployer's nested settings
model itself (`KubernetesSettings`): the builders read the settings' fields directly, or through
the spec's small views (`quota`, `api_resources`, `api_egress`), so no setting is copied here.

Longer than our ~300 lines on purpose: the spec and the builders of one consumer's dozen objects
are read together (names, labels and ports refer to each other across them), and all of it is
pure data with no I/O.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.utils import parse_quantity

from provisioner.deployers.kubernetes.settings import KubernetesSettings
from provisioner.slugs import DNS_LABEL, prefixed_label
from workflow_contracts.kubernetes_names import (
    JOB_LABEL_KEY,
    JOB_LABEL_VALUE,
    JOB_SERVICE_ACCOUNT_NAME,
)

# What the job runner puts on its job pods and runs them as: one definition for both sides.
from workflow_contracts.workflow_api_env import (
    EGRESS_ALLOW_CIDRS,
    PER_CONSUMER_NAMES,
    PREFIX,
    ConsumerIdentity,
)

API_NAME = "workflow-api"  # Deployment, Service, ServiceAccount, RoleBinding, Ingress
CONFIG_SECRET_NAME = "workflow-api-config"  # noqa: S105 - a name, not a secret
DATA_CLAIM_NAME = "workflow-api-data"
QUOTA_NAME = "consumer-quota"
LIMIT_RANGE_NAME = "container-defaults"
API_PORT = 8080
SERVICE_PORT = 80
USER_ID = 10001
DATA_DIR = "/data"
HEALTH_PATH = "/conformance"
CONSUMER_ID_ANNOTATION = "workflow.middle-layer/consumer-id"
GRANTS_ANNOTATION = "workflow.middle-layer/grants"
CONFIG_HASH_ANNOTATION = "workflow.middle-layer/config-hash"  # a changed Secret rolls the pod
SELECTOR_KEYS = ("name", "instance", "component")  # of the app.kubernetes.io/* labels
DEFAULT_STORAGE_PORT = 443  # when neither the setting nor the S3 endpoint names one

# Least privilege for the workflow-api's job runner, in its own namespace only: the rules of the
# ClusterRole `RUNNER_CLUSTER_ROLE` (installed with the provisioner, see kubernetes_rbac), which
# each consumer's RoleBinding grants in that consumer's namespace alone.
RUNNER_CLUSTER_ROLE = "workflow-api-runner"
ROLE_RULES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    # One Job per OGC job: started, followed to its end, deleted on dismissal and cleanup.
    ("batch", "jobs", ("create", "get", "list", "watch", "delete")),
    # A Job's pods say why it is pending or how its worker ended; a stuck pod is deleted.
    ("", "pods", ("get", "list", "watch", "delete")),
    # The worker's log, shown to the consumer and stored with the results.
    ("", "pods/log", ("get",)),
    # Each job's manifest of signed URLs reaches its data-sidecar in a Secret of its own.
    ("", "secrets", ("create", "get", "delete")),
    # Scheduling and image-pull failures are only visible as events.
    ("", "events", ("get", "list", "watch")),
)
# Not granted: persistentvolumeclaims (job workspaces are emptyDirs, data moves by signed URLs),
# pods/exec and pods/attach (not needed to run or observe a job), update/patch of anything.


@dataclass(frozen=True)
class Resources:
    """Requests and limits of one container (Kubernetes quantities)."""

    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str


# What the LimitRange gives containers that declare no resources.
CONTAINER_DEFAULTS = Resources(
    cpu_request="100m", memory_request="256Mi", cpu_limit="500m", memory_limit="512Mi"
)


@dataclass(frozen=True)
class QuotaSpec:
    """The namespace's ResourceQuota (`PROVISIONER_KUBERNETES_QUOTA_*`)."""

    cpu: str  # caps both the sum of requests and the sum of limits
    memory: str
    gpu: int  # requests.nvidia.com/gpu; 0 forbids GPUs
    max_jobs: int  # count/jobs.batch: finished Jobs count until they are deleted
    max_pods: int  # the workflow-api's pod included


@dataclass(frozen=True)
class IngressSpec:
    """Host routing when `host` is set, else path routing under `path_prefix`."""

    path_prefix: str  # e.g. f"/consumers/{slug}"
    host: str | None = None
    class_name: str | None = None
    tls_secret: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)  # e.g. the class's prefix rewrite


# Not reachable through `ApiEgressSpec.internet`: what is not public unicast. The workflow-api's own
# egress policy (data_sidecar.egress) is the allow-list; these `except` blocks repeat it in the
# network so a bug there still reaches no internal service.
NON_PUBLIC_V4 = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
)
NON_PUBLIC_V6 = (
    "::/8",  # loopback, unspecified, IPv4-mapped and -compatible, NAT64
    "100::/64",
    "2001:db8::/32",
    "2002::/16",  # 6to4: may embed any IPv4 address
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
)


@dataclass(frozen=True)
class ApiEgressSpec:
    """Where the workflow-api pod may connect besides DNS and the storage endpoints: the
    provisioner (JWKS), the Kubernetes API server (job runner), the networks the provider
    allow-listed for egress, and with `internet` any public address on `internet_ports` (env-file
    hrefs, subscriber callbacks, and http(s) inputs of the local runner)."""

    provisioner_port: int  # the provisioner pod's port (NetworkPolicy sees pod ports)
    api_server_cidrs: tuple[str, ...]
    api_server_port: int
    allow_cidrs: tuple[str, ...]  # WORKFLOW_API_EGRESS_ALLOW_CIDRS, any port
    internet: bool
    internet_ports: tuple[int, ...]

    def check(self) -> None:
        for cidr in (*self.api_server_cidrs, *self.allow_cidrs):
            ipaddress.ip_network(cidr)  # ValueError when malformed
        ports = (self.provisioner_port, self.api_server_port, *self.internet_ports)
        if not all(0 < port < 65536 for port in ports):
            raise ValueError("api_egress: every port must be in 1..65535")


@dataclass(frozen=True)
class ConsumerDeploymentSpec:
    """One consumer's part (ids, route, its workflow-api's settings) and the deployer's nested
    settings themselves (`kubernetes`), read by the builders directly or through the small views
    below (`quota`, `api_resources`, `api_egress`), never copied."""

    consumer_id: str
    slug: str  # provisioner.slugs.consumer_slug(consumer_id)
    namespace: str  # consumer_namespace(slug)
    token_audience: str
    public_url: str
    ingress: IngressSpec
    kubernetes: KubernetesSettings  # image, namespaces, quota, resources, egress, volume, role
    settings: Mapping[str, str] = field(default_factory=dict)  # WORKFLOW_API_*, all in the Secret
    grants: tuple[str, ...] = ()  # asset ids, for the namespace annotation
    container_defaults: Resources = CONTAINER_DEFAULTS  # the LimitRange's
    internet_ports: tuple[int, ...] = (80, 443)  # with api_internet_egress

    def __post_init__(self) -> None:
        if not self.kubernetes.workflow_api_image:
            raise ValueError("the Kubernetes deployer needs a workflow-api image")
        k = self.kubernetes
        for name in (self.slug, self.namespace, k.provisioner_namespace, k.ingress_namespace):
            if not DNS_LABEL.fullmatch(name):
                raise ValueError(f"{name!r} is not a DNS label")
        refused = [
            key for key in self.settings if key in PER_CONSUMER_NAMES or not key.startswith(PREFIX)
        ]
        if refused:
            raise ValueError(f"settings may not contain {sorted(refused)}")
        if not self.ingress.path_prefix.startswith("/") or not 0 < self.storage_port < 65536:
            raise ValueError("ingress.path_prefix must start with '/', storage_port be a port")
        for cidr in k.storage_egress_cidrs:
            ipaddress.ip_network(cidr)  # ValueError when malformed
        self.api_egress.check()
        api, quota, defaults = self.api_resources, self.quota, self.container_defaults
        pairs = [(api.cpu_limit, quota.cpu), (api.memory_limit, quota.memory)]
        for resources in (api, defaults):
            pairs += [(resources.cpu_request, resources.cpu_limit)]
            pairs += [(resources.memory_request, resources.memory_limit)]
        if any(parse_quantity(small) > parse_quantity(large) for small, large in pairs):
            raise ValueError("requests must fit the limits, the workflow-api's limits the quota")
        parse_quantity(k.data_volume_size)
        if quota.gpu < 0 or quota.max_jobs < 1 or quota.max_pods < 2:
            raise ValueError("quota: gpu >= 0, max_jobs >= 1, max_pods >= 2 (API + a job)")

    @property
    def image(self) -> str:
        """The workflow-api image (`__post_init__` made sure there is one)."""
        return self.kubernetes.workflow_api_image or ""

    @property
    def storage_port(self) -> int:
        """What job pods reach the storage endpoints on: the setting, else 443."""
        port = self.kubernetes.storage_port
        return DEFAULT_STORAGE_PORT if port is None else port

    @property
    def quota(self) -> QuotaSpec:
        k = self.kubernetes
        return QuotaSpec(
            cpu=k.quota_cpu,
            memory=k.quota_memory,
            gpu=k.quota_gpu,
            max_jobs=k.quota_max_jobs,
            max_pods=k.quota_max_pods,
        )

    @property
    def api_resources(self) -> Resources:
        k = self.kubernetes
        return Resources(
            cpu_request=k.api_cpu_request,
            memory_request=k.api_memory_request,
            cpu_limit=k.api_cpu_limit,
            memory_limit=k.api_memory_limit,
        )

    @property
    def api_egress(self) -> ApiEgressSpec:
        k = self.kubernetes
        return ApiEgressSpec(
            provisioner_port=k.provisioner_port,
            api_server_cidrs=tuple(k.api_server_cidrs),
            api_server_port=k.api_server_port,
            allow_cidrs=egress_allow_cidrs(self.settings),
            internet=k.api_internet_egress,
            internet_ports=self.internet_ports,
        )

    def labels(self, component: str = "api") -> dict[str, str]:
        return {
            "app.kubernetes.io/name": API_NAME,
            "app.kubernetes.io/instance": self.slug,
            "app.kubernetes.io/component": component,
            "app.kubernetes.io/part-of": "workflow-middle-layer",
            "app.kubernetes.io/managed-by": "workflow-provisioner",
        }

    def selector_labels(self) -> dict[str, str]:
        """The stable part of the API pod's labels (a Deployment's selector is immutable)."""
        labels = self.labels("api")
        return {key: labels[key] for key in labels if key.split("/")[1] in SELECTOR_KEYS}

    def config(self) -> dict[str, str]:
        """The workflow-api's whole environment, as its Secret holds it."""
        identity = ConsumerIdentity(
            consumer_id=self.consumer_id,
            data_dir=DATA_DIR,
            public_url=self.public_url,
            token_audience=self.token_audience,
        )
        return dict(sorted({**self.settings, **identity.to_env()}.items()))

    def internal_url(self) -> str:
        return internal_url(self.namespace)


def egress_allow_cidrs(env: Mapping[str, str]) -> tuple[str, ...]:
    """The networks the workflow-api's egress policy allows (`WORKFLOW_API_EGRESS_ALLOW_CIDRS`,
    JSON as pydantic-settings reads it), so its NetworkPolicy opens exactly those."""
    text = env.get(EGRESS_ALLOW_CIDRS)
    if not text:
        return ()
    try:
        cidrs = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{EGRESS_ALLOW_CIDRS} is not a JSON list: {error}") from error
    if not isinstance(cidrs, list) or not all(isinstance(cidr, str) for cidr in cidrs):
        raise ValueError(f"{EGRESS_ALLOW_CIDRS} must be a JSON list of strings")
    return tuple(cidrs)


def internal_url(namespace: str) -> str:
    """Where the provisioner reaches a consumer's workflow-api inside the cluster."""
    return f"http://{API_NAME}.{namespace}.svc"


def consumer_namespace(slug: str, prefix: str = "wf-") -> str:
    """`prefix + slug`, or when that exceeds 63 characters a shortened slug plus a hash of it."""
    return prefixed_label(prefix, slug)


def _object(
    model: type[Any],
    api_version: str,
    consumer: ConsumerDeploymentSpec,
    name: str,
    /,
    *,
    component: str = "api",
    annotations: dict[str, str] | None = None,
    **fields: Any,
) -> Any:
    """`model(...)` with apiVersion, kind and metadata (namespace, standard labels) filled in."""
    metadata = client.V1ObjectMeta(
        name=name,
        namespace=consumer.namespace,
        labels=consumer.labels(component),
        annotations=annotations,
    )
    kind = model.__name__.removeprefix("V1")  # V1PersistentVolumeClaim -> PersistentVolumeClaim
    return model(api_version=api_version, kind=kind, metadata=metadata, **fields)


def make_namespace(spec: ConsumerDeploymentSpec) -> client.V1Namespace:
    # Pods come only from the workflow-api (provider-defined job images): baseline is enforced,
    # restricted only reported, so worker images that run as root keep working.
    pod_security = {"enforce": "baseline", "warn": "restricted", "audit": "restricted"}
    labels = spec.labels("consumer")
    labels |= {f"pod-security.kubernetes.io/{mode}": level for mode, level in pod_security.items()}
    annotations = {
        CONSUMER_ID_ANNOTATION: spec.consumer_id,
        GRANTS_ANNOTATION: json.dumps(sorted(set(spec.grants))),
    }
    metadata = client.V1ObjectMeta(name=spec.namespace, labels=labels, annotations=annotations)
    return client.V1Namespace(api_version="v1", kind="Namespace", metadata=metadata)


def make_service_account(spec: ConsumerDeploymentSpec) -> client.V1ServiceAccount:
    """The workflow-api's own: its token is how the job runner reaches the API server."""
    model = client.V1ServiceAccount
    return _object(model, "v1", spec, API_NAME, automount_service_account_token=True)


def make_job_service_account(spec: ConsumerDeploymentSpec) -> client.V1ServiceAccount:
    """For job pods: no token, no permissions."""
    return _object(
        client.V1ServiceAccount,
        "v1",
        spec,
        JOB_SERVICE_ACCOUNT_NAME,
        component="job",
        automount_service_account_token=False,
    )


def make_role_binding(spec: ConsumerDeploymentSpec) -> client.V1RoleBinding:
    """ROLE_RULES for the workflow-api's ServiceAccount, in this namespace only. A RoleBinding to
    a ClusterRole rather than a Role per namespace: creating that Role would need the provisioner
    to hold every rule itself, or `escalate` (see kubernetes_rbac)."""
    group = "rbac.authorization.k8s.io"
    subject = client.RbacV1Subject(kind="ServiceAccount", name=API_NAME, namespace=spec.namespace)
    role = client.V1RoleRef(
        api_group=group, kind="ClusterRole", name=spec.kubernetes.runner_cluster_role
    )
    return _object(
        client.V1RoleBinding, f"{group}/v1", spec, API_NAME, role_ref=role, subjects=[subject]
    )


def make_config_secret(spec: ConsumerDeploymentSpec) -> client.V1Secret:
    return _object(
        client.V1Secret, "v1", spec, CONFIG_SECRET_NAME, type="Opaque", string_data=spec.config()
    )


def make_data_volume_claim(spec: ConsumerDeploymentSpec) -> client.V1PersistentVolumeClaim:
    """The workflow-api's data directory: its SQLite job database must survive pod restarts."""
    claim = client.V1PersistentVolumeClaimSpec(
        access_modes=["ReadWriteOnce"],
        resources=client.V1VolumeResourceRequirements(
            requests={"storage": spec.kubernetes.data_volume_size}
        ),
        storage_class_name=spec.kubernetes.data_storage_class,  # None: the cluster's default
    )
    return _object(client.V1PersistentVolumeClaim, "v1", spec, DATA_CLAIM_NAME, spec=claim)


def _requirements(resources: Resources) -> client.V1ResourceRequirements:
    return client.V1ResourceRequirements(
        requests={"cpu": resources.cpu_request, "memory": resources.memory_request},
        limits={"cpu": resources.cpu_limit, "memory": resources.memory_limit},
    )


def _probe(period_seconds: int, failure_threshold: int) -> client.V1Probe:
    return client.V1Probe(
        http_get=client.V1HTTPGetAction(path=HEALTH_PATH, port="http"),
        period_seconds=period_seconds,
        timeout_seconds=2,
        failure_threshold=failure_threshold,
    )


def make_deployment(spec: ConsumerDeploymentSpec) -> client.V1Deployment:
    config_hash = hashlib.sha256(json.dumps(spec.config()).encode()).hexdigest()
    secret = client.V1SecretEnvSource(name=CONFIG_SECRET_NAME)
    container = client.V1Container(
        name=API_NAME,
        image=spec.image,
        command=["workflow-api"],
        args=["serve", "--host", "0.0.0.0", "--port", str(API_PORT)],  # noqa: S104 - in a pod
        ports=[client.V1ContainerPort(name="http", container_port=API_PORT, protocol="TCP")],
        env_from=[client.V1EnvFromSource(secret_ref=secret)],
        resources=_requirements(spec.api_resources),
        startup_probe=_probe(period_seconds=2, failure_threshold=60),
        readiness_probe=_probe(period_seconds=5, failure_threshold=3),
        liveness_probe=_probe(period_seconds=10, failure_threshold=3),
        security_context=client.V1SecurityContext(
            run_as_non_root=True,
            allow_privilege_escalation=False,
            read_only_root_filesystem=True,
            capabilities=client.V1Capabilities(drop=["ALL"]),
        ),
        volume_mounts=[
            client.V1VolumeMount(name="data", mount_path=DATA_DIR),
            client.V1VolumeMount(name="tmp", mount_path="/tmp"),  # noqa: S108 - an emptyDir
        ],
    )
    claim = client.V1PersistentVolumeClaimVolumeSource(claim_name=DATA_CLAIM_NAME)
    pod = client.V1PodSpec(
        service_account_name=API_NAME,
        automount_service_account_token=True,
        enable_service_links=False,  # links to the `workflow-api` Service add WORKFLOW_API_* vars
        security_context=client.V1PodSecurityContext(
            run_as_non_root=True,
            run_as_user=USER_ID,
            run_as_group=USER_ID,
            fs_group=USER_ID,  # makes the claim writable for the workflow-api
            fs_group_change_policy="OnRootMismatch",
            seccomp_profile=client.V1SeccompProfile(type="RuntimeDefault"),
        ),
        containers=[container],
        volumes=[
            client.V1Volume(name="data", persistent_volume_claim=claim),
            client.V1Volume(name="tmp", empty_dir=client.V1EmptyDirVolumeSource(size_limit="1Gi")),
        ],
    )
    template_metadata = client.V1ObjectMeta(
        labels=spec.labels(), annotations={CONFIG_HASH_ANNOTATION: config_hash}
    )
    deployment = client.V1DeploymentSpec(
        replicas=1,  # SQLite on a ReadWriteOnce claim: one writer; the old pod goes first
        strategy=client.V1DeploymentStrategy(type="Recreate"),
        selector=client.V1LabelSelector(match_labels=spec.selector_labels()),
        template=client.V1PodTemplateSpec(metadata=template_metadata, spec=pod),
        revision_history_limit=3,
    )
    return _object(client.V1Deployment, "apps/v1", spec, API_NAME, spec=deployment)


def make_service(spec: ConsumerDeploymentSpec) -> client.V1Service:
    port = client.V1ServicePort(name="http", port=SERVICE_PORT, target_port="http", protocol="TCP")
    service = client.V1ServiceSpec(type="ClusterIP", selector=spec.selector_labels(), ports=[port])
    return _object(client.V1Service, "v1", spec, API_NAME, spec=service)


def make_ingress(spec: ConsumerDeploymentSpec) -> client.V1Ingress:
    route = spec.ingress
    port = client.V1ServiceBackendPort(name="http")
    backend = client.V1IngressBackend(
        service=client.V1IngressServiceBackend(name=API_NAME, port=port)
    )
    path = client.V1HTTPIngressPath(
        path="/" if route.host else route.path_prefix, path_type="Prefix", backend=backend
    )
    rule = client.V1IngressRule(host=route.host, http=client.V1HTTPIngressRuleValue(paths=[path]))
    tls = None
    if route.tls_secret:
        hosts = [route.host] if route.host else None
        tls = [client.V1IngressTLS(hosts=hosts, secret_name=route.tls_secret)]
    ingress = client.V1IngressSpec(ingress_class_name=route.class_name, rules=[rule], tls=tls)
    annotations = dict(route.annotations) or None
    return _object(
        client.V1Ingress,
        "networking.k8s.io/v1",
        spec,
        API_NAME,
        annotations=annotations,
        spec=ingress,
    )


def _namespace_peer(name: str) -> client.V1NetworkPolicyPeer:
    selector = client.V1LabelSelector(match_labels={"kubernetes.io/metadata.name": name})
    return client.V1NetworkPolicyPeer(namespace_selector=selector)


def _ip_peers(cidrs: tuple[str, ...]) -> list[client.V1NetworkPolicyPeer]:
    return [client.V1NetworkPolicyPeer(ip_block=client.V1IPBlock(cidr=cidr)) for cidr in cidrs]


def _tcp(*ports: int) -> list[client.V1NetworkPolicyPort]:
    return [client.V1NetworkPolicyPort(protocol="TCP", port=port) for port in ports]


def _api_egress(
    spec: ConsumerDeploymentSpec, base: list[client.V1NetworkPolicyEgressRule]
) -> client.V1NetworkPolicySpec:
    """DNS and storage (`base`, as for jobs), the provisioner, the API server, the allow-listed
    networks, and the public internet when `internet` is on."""
    egress = spec.api_egress
    rules = [
        *base,
        client.V1NetworkPolicyEgressRule(
            to=[_namespace_peer(spec.kubernetes.provisioner_namespace)],
            ports=_tcp(egress.provisioner_port),
        ),
    ]
    if egress.api_server_cidrs:
        rules.append(
            client.V1NetworkPolicyEgressRule(
                to=_ip_peers(egress.api_server_cidrs), ports=_tcp(egress.api_server_port)
            )
        )
    if egress.allow_cidrs:
        rules.append(client.V1NetworkPolicyEgressRule(to=_ip_peers(egress.allow_cidrs)))
    if egress.internet:
        public = [
            client.V1IPBlock(cidr="0.0.0.0/0", _except=list(NON_PUBLIC_V4)),
            client.V1IPBlock(cidr="::/0", _except=list(NON_PUBLIC_V6)),
        ]
        rules.append(
            client.V1NetworkPolicyEgressRule(
                to=[client.V1NetworkPolicyPeer(ip_block=block) for block in public],
                ports=_tcp(*egress.internet_ports),
            )
        )
    return client.V1NetworkPolicySpec(
        pod_selector=client.V1LabelSelector(match_labels=spec.selector_labels()),
        policy_types=["Egress"],
        egress=rules,
    )


def make_network_policies(spec: ConsumerDeploymentSpec) -> list[client.V1NetworkPolicy]:
    """No pod is reachable, except the API from the ingress controller's and the provisioner's
    namespaces; job pods reach only DNS and the storage endpoints; the API pod reaches what
    `_api_egress` lists."""
    deny_ingress = client.V1NetworkPolicySpec(
        pod_selector=client.V1LabelSelector(), policy_types=["Ingress"]
    )
    callers = [
        _namespace_peer(spec.kubernetes.ingress_namespace),
        _namespace_peer(spec.kubernetes.provisioner_namespace),
    ]
    api_port = client.V1NetworkPolicyPort(protocol="TCP", port=API_PORT)
    api_ingress = client.V1NetworkPolicySpec(
        pod_selector=client.V1LabelSelector(match_labels=spec.selector_labels()),
        policy_types=["Ingress"],
        ingress=[client.V1NetworkPolicyIngressRule(_from=callers, ports=[api_port])],
    )
    dns_ports = [client.V1NetworkPolicyPort(protocol=p, port=53) for p in ("UDP", "TCP")]
    egress = [
        client.V1NetworkPolicyEgressRule(to=[_namespace_peer("kube-system")], ports=dns_ports)
    ]
    if spec.kubernetes.storage_egress_cidrs:
        blocks = [client.V1IPBlock(cidr=cidr) for cidr in spec.kubernetes.storage_egress_cidrs]
        storage_port = client.V1NetworkPolicyPort(protocol="TCP", port=spec.storage_port)
        egress.append(
            client.V1NetworkPolicyEgressRule(
                to=[client.V1NetworkPolicyPeer(ip_block=block) for block in blocks],
                ports=[storage_port],
            )
        )
    job_egress = client.V1NetworkPolicySpec(
        pod_selector=client.V1LabelSelector(match_labels={JOB_LABEL_KEY: JOB_LABEL_VALUE}),
        policy_types=["Egress"],
        egress=egress,
    )
    policies = (
        ("default-deny-ingress", deny_ingress),
        ("allow-api-ingress", api_ingress),
        ("job-egress", job_egress),
        ("api-egress", _api_egress(spec, egress)),
    )
    return [
        _object(
            client.V1NetworkPolicy,
            "networking.k8s.io/v1",
            spec,
            name,
            component="consumer",
            spec=body,
        )
        for name, body in policies
    ]


def make_resource_quota(spec: ConsumerDeploymentSpec) -> client.V1ResourceQuota:
    quota = spec.quota
    hard = {
        "requests.cpu": quota.cpu,
        "limits.cpu": quota.cpu,
        "requests.memory": quota.memory,
        "limits.memory": quota.memory,
        "requests.nvidia.com/gpu": str(quota.gpu),  # always there: absent means unlimited
        "count/jobs.batch": str(quota.max_jobs),
        "pods": str(quota.max_pods),
    }
    body = client.V1ResourceQuotaSpec(hard=hard)
    return _object(client.V1ResourceQuota, "v1", spec, QUOTA_NAME, component="consumer", spec=body)


def make_limit_range(spec: ConsumerDeploymentSpec) -> client.V1LimitRange:
    """Defaults for containers that declare no resources, so the quota admits and counts them."""
    defaults = _requirements(spec.container_defaults)
    item = client.V1LimitRangeItem(
        type="Container", default=defaults.limits, default_request=defaults.requests
    )
    body = client.V1LimitRangeSpec(limits=[item])
    return _object(
        client.V1LimitRange, "v1", spec, LIMIT_RANGE_NAME, component="consumer", spec=body
    )


def make_consumer_objects(spec: ConsumerDeploymentSpec) -> list[object]:
    """Everything of one consumer, in apply order (the namespace first)."""
    return [
        make_namespace(spec),
        make_resource_quota(spec),
        make_limit_range(spec),
        *make_network_policies(spec),
        make_service_account(spec),
        make_job_service_account(spec),
        make_role_binding(spec),
        make_config_secret(spec),
        make_data_volume_claim(spec),
        make_service(spec),
        make_deployment(spec),
        make_ingress(spec),
    ]
