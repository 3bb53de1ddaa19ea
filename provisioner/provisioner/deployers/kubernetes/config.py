"""What every consumer's Kubernetes objects share: the deployer's configuration, pure data.

Built from the provisioner's settings by `kubernetes_settings.config_from_settings`; it turns a
consumer (`ConsumerSpec`) and its workflow-api settings into the builders' spec, and knows the
consumer's namespace, route and public URL.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from provisioner.deployers.base import ConsumerSpec
from provisioner.deployers.kubernetes.objects import (
    RUNNER_CLUSTER_ROLE,
    ApiEgressSpec,
    ConsumerDeploymentSpec,
    IngressSpec,
    QuotaSpec,
    Resources,
    consumer_namespace,
)
from workflow_contracts.workflow_api_env import EGRESS_ALLOW_CIDRS


@dataclass(frozen=True)
class KubernetesDeployerConfig:
    """See the module docstring; the defaults are the settings' defaults."""

    image: str
    ingress_domain: str  # path routing: the public host; host routing: consumers are <slug>.<it>
    namespace_prefix: str = "wf-"
    provisioner_namespace: str = "workflow-system"
    runner_cluster_role: str = RUNNER_CLUSTER_ROLE
    routing: Literal["path", "host"] = "path"
    path_prefix: str = "/consumers"
    ingress_namespace: str = "ingress-nginx"
    ingress_class: str | None = None
    tls_secret: str | None = None
    ingress_annotations: Mapping[str, str] = field(default_factory=dict)
    scheme: Literal["https", "http"] = "https"
    public_port: int | None = None  # None: the scheme's default port
    reach: Literal["service", "public-url"] = "service"
    quota: QuotaSpec = field(default_factory=QuotaSpec)
    api_resources: Resources = field(default_factory=Resources)
    data_volume_size: str = "10Gi"
    data_storage_class: str | None = None
    storage_egress_cidrs: tuple[str, ...] = ()
    storage_port: int = 443
    api_egress: ApiEgressSpec = field(default_factory=ApiEgressSpec)
    readiness_timeout_seconds: float = 300.0
    removal_timeout_seconds: float = 120.0
    resync_seconds: float = 60.0

    def namespace(self, spec: ConsumerSpec) -> str:
        return consumer_namespace(spec.slug, self.namespace_prefix)

    def ingress(self, spec: ConsumerSpec) -> IngressSpec:
        host = f"{spec.slug}.{self.ingress_domain}" if self.routing == "host" else None
        prefix = "/" if host else f"{self.path_prefix.rstrip('/')}/{spec.slug}"
        return IngressSpec(
            path_prefix=prefix,
            host=host,
            class_name=self.ingress_class,
            tls_secret=self.tls_secret,
            annotations=self.ingress_annotations,
        )

    def public_url(self, spec: ConsumerSpec) -> str:
        route = self.ingress(spec)
        port = f":{self.public_port}" if self.public_port else ""
        if route.host:
            return f"{self.scheme}://{route.host}{port}"
        return f"{self.scheme}://{self.ingress_domain}{port}{route.path_prefix}"

    def deployment_spec(
        self, spec: ConsumerSpec, settings: Mapping[str, str]
    ) -> ConsumerDeploymentSpec:
        return ConsumerDeploymentSpec(
            consumer_id=spec.consumer_id,
            slug=spec.slug,
            namespace=self.namespace(spec),
            image=self.image,
            token_audience=spec.token_audience,
            public_url=self.public_url(spec),
            ingress=self.ingress(spec),
            provisioner_namespace=self.provisioner_namespace,
            ingress_namespace=self.ingress_namespace,
            settings=dict(settings),
            grants=spec.grants,
            storage_egress_cidrs=self.storage_egress_cidrs,
            storage_port=self.storage_port,
            api_egress=replace(self.api_egress, allow_cidrs=egress_allow_cidrs(settings)),
            quota=self.quota,
            api_resources=self.api_resources,
            data_volume_size=self.data_volume_size,
            data_storage_class=self.data_storage_class,
            runner_cluster_role=self.runner_cluster_role,
        )


def egress_allow_cidrs(settings: Mapping[str, str]) -> tuple[str, ...]:
    """The networks the workflow-api's egress policy allows (`WORKFLOW_API_EGRESS_ALLOW_CIDRS`,
    JSON as pydantic-settings reads it), so its NetworkPolicy opens exactly those."""
    text = settings.get(EGRESS_ALLOW_CIDRS)
    if not text:
        return ()
    try:
        cidrs = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{EGRESS_ALLOW_CIDRS} is not a JSON list: {error}") from error
    if not isinstance(cidrs, list) or not all(isinstance(cidr, str) for cidr in cidrs):
        raise ValueError(f"{EGRESS_ALLOW_CIDRS} must be a JSON list of strings")
    return tuple(cidrs)
