"""From the provisioner's settings to the Kubernetes deployer: the one place that reads the
`PROVISIONER_KUBERNETES_*` settings, checks them at start-up (`check_settings`, called by the
Settings model) and builds the client and the deployer."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from provisioner.deployers.base import ConsumerSpec
from provisioner.deployers.kubernetes.api import KubernetesApi
from provisioner.deployers.kubernetes.config import KubernetesDeployerConfig
from provisioner.deployers.kubernetes.deployer import KubernetesDeployer
from provisioner.deployers.kubernetes.objects import ApiEgressSpec, QuotaSpec, Resources
from provisioner.storage.consumer import ConsumerStorage
from workflow_api.execution.kubernetes_api import connect
from workflow_contracts.workflow_api_env import SharedSettings

if TYPE_CHECKING:
    from provisioner.settings import Settings

DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
REQUIRED = ("kubernetes_workflow_api_image", "kubernetes_ingress_domain")


def kubernetes_workflow_api_env(settings: Settings, common: Mapping[str, str]) -> dict[str, str]:
    """The shared workflow-api settings, as seen from a pod: the catalog inside the image, the
    JWKS at the provisioner's in-cluster address, jobs as Kubernetes Jobs in the consumer's
    namespace (with a sidecar image), then the operator's own additions."""
    provisioner_url = settings.kubernetes_provisioner_url
    sidecar_image = settings.kubernetes_sidecar_image or None
    in_cluster = SharedSettings(
        assets_dir=settings.kubernetes_assets_dir,
        jwks_url=f"{str(provisioner_url).rstrip('/')}/.well-known/jwks.json"
        if provisioner_url is not None
        else None,
        runner="kubernetes" if sidecar_image else None,
        kubernetes_sidecar_image=sidecar_image,
    )
    return {**common, **in_cluster.to_env()} | settings.kubernetes_workflow_api_env


def _storage_port(settings: Settings) -> int:
    if settings.kubernetes_storage_port is not None:
        return settings.kubernetes_storage_port
    endpoint = settings.s3_endpoint or ""
    parts = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
    if parts.port:
        return parts.port
    return 443 if settings.s3_secure and not endpoint.startswith("http://") else 80


def config_from_settings(settings: Settings) -> KubernetesDeployerConfig:
    assert settings.kubernetes_workflow_api_image and settings.kubernetes_ingress_domain
    return KubernetesDeployerConfig(
        image=settings.kubernetes_workflow_api_image,
        ingress_domain=settings.kubernetes_ingress_domain,
        namespace_prefix=settings.kubernetes_namespace_prefix,
        provisioner_namespace=settings.kubernetes_provisioner_namespace,
        runner_cluster_role=settings.kubernetes_runner_cluster_role,
        routing=settings.kubernetes_ingress_routing,
        path_prefix=settings.kubernetes_ingress_path_prefix,
        ingress_namespace=settings.kubernetes_ingress_namespace,
        ingress_class=settings.kubernetes_ingress_class,
        tls_secret=settings.kubernetes_ingress_tls_secret,
        ingress_annotations=dict(settings.kubernetes_ingress_annotations),
        scheme=settings.kubernetes_public_scheme,
        public_port=settings.kubernetes_public_port,
        reach=settings.kubernetes_reach_workflow_api,
        quota=QuotaSpec(
            cpu=settings.kubernetes_quota_cpu,
            memory=settings.kubernetes_quota_memory,
            gpu=settings.kubernetes_quota_gpu,
            max_jobs=settings.kubernetes_quota_max_jobs,
            max_pods=settings.kubernetes_quota_max_pods,
        ),
        api_resources=Resources(
            cpu_request=settings.kubernetes_api_cpu_request,
            memory_request=settings.kubernetes_api_memory_request,
            cpu_limit=settings.kubernetes_api_cpu_limit,
            memory_limit=settings.kubernetes_api_memory_limit,
        ),
        data_volume_size=settings.kubernetes_data_volume_size,
        data_storage_class=settings.kubernetes_data_storage_class,
        storage_egress_cidrs=tuple(settings.kubernetes_storage_egress_cidrs),
        storage_port=_storage_port(settings),
        api_egress=ApiEgressSpec(
            provisioner_port=settings.kubernetes_provisioner_port,
            api_server_cidrs=tuple(settings.kubernetes_api_server_cidrs),
            api_server_port=settings.kubernetes_api_server_port,
            internet=settings.kubernetes_api_internet_egress,
        ),
        readiness_timeout_seconds=settings.kubernetes_readiness_timeout_seconds,
        removal_timeout_seconds=settings.kubernetes_removal_timeout_seconds,
        resync_seconds=settings.kubernetes_resync_seconds,
    )


def check_settings(settings: Settings) -> None:
    """Everything a consumer's objects will need, checked once by building a sample consumer's
    objects; ValueError naming the settings otherwise."""
    missing = [f"PROVISIONER_{name.upper()}" for name in REQUIRED if not getattr(settings, name)]
    if missing:
        raise ValueError(f"deployer 'kubernetes' needs {', '.join(missing)}")
    kubeconfig = settings.kubernetes_kubeconfig
    if kubeconfig is not None and not kubeconfig.is_file():
        raise ValueError(f"PROVISIONER_KUBERNETES_KUBECONFIG {kubeconfig} is not a file")
    if kubeconfig is None and not os.environ.get("KUBERNETES_SERVICE_HOST"):
        raise ValueError(
            "PROVISIONER_KUBERNETES_KUBECONFIG is unset and this is not a pod"
            " (no KUBERNETES_SERVICE_HOST): name a kubeconfig file"
        )
    domain = settings.kubernetes_ingress_domain or ""
    if not DNS_SUBDOMAIN.fullmatch(domain) or len(domain) > 253:
        raise ValueError(f"PROVISIONER_KUBERNETES_INGRESS_DOMAIN {domain!r} is not a host name")
    if not settings.kubernetes_ingress_path_prefix.startswith("/"):
        raise ValueError("PROVISIONER_KUBERNETES_INGRESS_PATH_PREFIX must start with '/'")
    sample = ConsumerSpec("check", "check-00000000", "workflow-api/check-00000000")
    try:
        config_from_settings(settings).deployment_spec(
            sample, kubernetes_workflow_api_env(settings, {})
        )
    except ValueError as error:
        raise ValueError(f"PROVISIONER_KUBERNETES_* settings: {error}") from error


def make_kubernetes_deployer(
    settings: Settings, common_env: Mapping[str, str], storage: ConsumerStorage
) -> KubernetesDeployer:
    kubeconfig = settings.kubernetes_kubeconfig
    api_client = connect(str(kubeconfig) if kubeconfig else None, settings.kubernetes_context)
    return KubernetesDeployer(
        api=KubernetesApi(api_client, timeout_seconds=settings.kubernetes_request_timeout_seconds),
        config=config_from_settings(settings),
        workflow_api_env=kubernetes_workflow_api_env(settings, common_env),
        storage=storage,
    )
