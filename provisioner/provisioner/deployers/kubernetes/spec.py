"""The spec of one consumer's Kubernetes objects and the names they share: pure data, no I/O.

`ConsumerDeploymentSpec` is the consumer's part (ids, route, environment, grants) next to the
deployer's nested settings model itself (`KubernetesSettings`): the builders in `objects.py` read
the settings' fields directly, or through the spec's small views (`quota`, `api_resources`,
`api_egress`), so no setting is copied here. The constants are the fixed names and ports inside
every consumer's namespace, also read by the chart's and the images' tests.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from kubernetes.utils import parse_quantity

from provisioner.deployers.kubernetes.settings import KubernetesSettings
from provisioner.slugs import DNS_LABEL, prefixed_label

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
