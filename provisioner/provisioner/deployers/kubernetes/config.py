"""From the nested Kubernetes settings (`KubernetesSettings`) to what one consumer's objects are
built from: its namespace, its route and public URL, and the pure builders' spec
(`ConsumerDeploymentSpec`: the consumer's part next to the settings model itself). No copy of
the settings anywhere: the deployer holds the model and asks these functions per consumer.
"""

from __future__ import annotations

from collections.abc import Mapping

from provisioner.deployers.base import ConsumerSpec
from provisioner.deployers.kubernetes.settings import KubernetesSettings
from provisioner.deployers.kubernetes.spec import (
    ConsumerDeploymentSpec,
    IngressSpec,
    consumer_namespace,
)


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
    return ConsumerDeploymentSpec(
        consumer_id=spec.consumer_id,
        slug=spec.slug,
        namespace=namespace(settings, spec),
        token_audience=spec.token_audience,
        public_url=public_url(settings, spec),
        ingress=ingress(settings, spec),
        kubernetes=settings,
        settings=dict(env),
        grants=spec.grants,
    )
