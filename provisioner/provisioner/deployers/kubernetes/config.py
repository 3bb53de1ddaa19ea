"""From the nested Kubernetes settings (`KubernetesSettings`) to what one consumer's objects are
built from: its namespace, its route and public URL, and the pure builders' spec
(`ConsumerDeploymentSpec`), whose quota, resources and egress parts are made here from the
settings' fields. No copy of the settings in between: the deployer holds the settings model
itself and asks these functions per consumer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from provisioner.deployers.base import ConsumerSpec
from provisioner.deployers.kubernetes.objects import (
    ApiEgressSpec,
    ConsumerDeploymentSpec,
    IngressSpec,
    QuotaSpec,
    Resources,
    consumer_namespace,
)
from provisioner.deployers.kubernetes.settings import KubernetesSettings
from workflow_contracts.workflow_api_env import EGRESS_ALLOW_CIDRS

DEFAULT_STORAGE_PORT = 443  # when neither the setting nor the S3 endpoint names one


def namespace(settings: KubernetesSettings, spec: ConsumerSpec) -> str:
    return consumer_namespace(spec.slug, settings.namespace_prefix)


def _ingress_domain(settings: KubernetesSettings) -> str:
    if not settings.ingress_domain:
        raise ValueError("the Kubernetes deployer needs an ingress domain")
    return settings.ingress_domain


def ingress(settings: KubernetesSettings, spec: ConsumerSpec) -> IngressSpec:
    """Host routing: `<slug>.<ingress_domain>` at `/`; path routing: `<prefix>/<slug>`."""
    domain = _ingress_domain(settings)
    host = f"{spec.slug}.{domain}" if settings.ingress_routing == "host" else None
    prefix = "/" if host else f"{settings.ingress_path_prefix.rstrip('/')}/{spec.slug}"
    return IngressSpec(
        path_prefix=prefix,
        host=host,
        class_name=settings.ingress_class,
        tls_secret=settings.ingress_tls_secret,
        annotations=dict(settings.ingress_annotations),
    )


def public_url(settings: KubernetesSettings, spec: ConsumerSpec) -> str:
    route = ingress(settings, spec)
    port = f":{settings.public_port}" if settings.public_port else ""
    if route.host:
        return f"{settings.public_scheme}://{route.host}{port}"
    return f"{settings.public_scheme}://{_ingress_domain(settings)}{port}{route.path_prefix}"


def deployment_spec(
    settings: KubernetesSettings, spec: ConsumerSpec, env: Mapping[str, str]
) -> ConsumerDeploymentSpec:
    """The builders' spec of one consumer, its workflow-api getting `env` (`WORKFLOW_API_*`)."""
    if not settings.workflow_api_image:
        raise ValueError("the Kubernetes deployer needs a workflow-api image")
    return ConsumerDeploymentSpec(
        consumer_id=spec.consumer_id,
        slug=spec.slug,
        namespace=namespace(settings, spec),
        image=settings.workflow_api_image,
        token_audience=spec.token_audience,
        public_url=public_url(settings, spec),
        ingress=ingress(settings, spec),
        provisioner_namespace=settings.provisioner_namespace,
        ingress_namespace=settings.ingress_namespace,
        settings=dict(env),
        grants=spec.grants,
        storage_egress_cidrs=tuple(settings.storage_egress_cidrs),
        storage_port=settings.storage_port or DEFAULT_STORAGE_PORT,
        api_egress=ApiEgressSpec(
            provisioner_port=settings.provisioner_port,
            api_server_cidrs=tuple(settings.api_server_cidrs),
            api_server_port=settings.api_server_port,
            allow_cidrs=egress_allow_cidrs(env),
            internet=settings.api_internet_egress,
        ),
        quota=QuotaSpec(
            cpu=settings.quota_cpu,
            memory=settings.quota_memory,
            gpu=settings.quota_gpu,
            max_jobs=settings.quota_max_jobs,
            max_pods=settings.quota_max_pods,
        ),
        api_resources=Resources(
            cpu_request=settings.api_cpu_request,
            memory_request=settings.api_memory_request,
            cpu_limit=settings.api_cpu_limit,
            memory_limit=settings.api_memory_limit,
        ),
        data_volume_size=settings.data_volume_size,
        data_storage_class=settings.data_storage_class,
        runner_cluster_role=settings.runner_cluster_role,
    )


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
