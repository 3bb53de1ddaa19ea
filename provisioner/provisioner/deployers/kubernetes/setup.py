"""From the provisioner's settings to the Kubernetes deployer: the one place that reads the
nested `settings.kubernetes` (`KubernetesSettings`), checks them at start-up (`check_settings`,
called by the Settings model) and builds the client and the deployer.

It takes the provisioner's settings as `DeployerSettings`, the few fields it reads (the nested
Kubernetes settings and where storage is), so it never imports the settings module, which
imports it (lazily) for the check."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Protocol
from urllib.parse import urlsplit

from provisioner.deployers.base import ConsumerSpec
from provisioner.deployers.kubernetes.api import KubernetesApi
from provisioner.deployers.kubernetes.config import KubernetesDeployerConfig
from provisioner.deployers.kubernetes.deployer import KubernetesDeployer
from provisioner.deployers.kubernetes.objects import ApiEgressSpec, QuotaSpec, Resources
from provisioner.deployers.kubernetes.settings import KubernetesSettings
from provisioner.storage.consumer import ConsumerStorage
from workflow_common.kubernetes import connect
from workflow_contracts.workflow_api_env import SharedSettings


class DeployerSettings(Protocol):
    """What this module reads of the provisioner's `Settings`."""

    @property
    def kubernetes(self) -> KubernetesSettings: ...
    @property
    def s3_endpoint(self) -> str | None: ...
    @property
    def s3_secure(self) -> bool: ...


DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
REQUIRED = ("workflow_api_image", "ingress_domain")


def kubernetes_workflow_api_env(
    settings: DeployerSettings, common: Mapping[str, str]
) -> dict[str, str]:
    """The shared workflow-api settings, as seen from a pod: the catalog inside the image, the
    JWKS at the provisioner's in-cluster address, jobs as Kubernetes Jobs in the consumer's
    namespace (with a sidecar image), then the operator's own additions."""
    provisioner_url = settings.kubernetes.provisioner_url
    sidecar_image = settings.kubernetes.sidecar_image or None
    in_cluster = SharedSettings(
        assets_dir=settings.kubernetes.assets_dir,
        jwks_url=f"{str(provisioner_url).rstrip('/')}/.well-known/jwks.json"
        if provisioner_url is not None
        else None,
        runner="kubernetes" if sidecar_image else None,
        kubernetes_sidecar_image=sidecar_image,
    )
    return {**common, **in_cluster.to_env()} | settings.kubernetes.workflow_api_env


def _storage_port(settings: DeployerSettings) -> int:
    if settings.kubernetes.storage_port is not None:
        return settings.kubernetes.storage_port
    endpoint = settings.s3_endpoint or ""
    parts = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
    if parts.port:
        return parts.port
    return 443 if settings.s3_secure and not endpoint.startswith("http://") else 80


def config_from_settings(settings: DeployerSettings) -> KubernetesDeployerConfig:
    k = settings.kubernetes
    assert k.workflow_api_image and k.ingress_domain
    return KubernetesDeployerConfig(
        image=k.workflow_api_image,
        ingress_domain=k.ingress_domain,
        namespace_prefix=k.namespace_prefix,
        provisioner_namespace=k.provisioner_namespace,
        runner_cluster_role=k.runner_cluster_role,
        routing=k.ingress_routing,
        path_prefix=k.ingress_path_prefix,
        ingress_namespace=k.ingress_namespace,
        ingress_class=k.ingress_class,
        tls_secret=k.ingress_tls_secret,
        ingress_annotations=dict(k.ingress_annotations),
        scheme=k.public_scheme,
        public_port=k.public_port,
        reach=k.reach_workflow_api,
        quota=QuotaSpec(
            cpu=k.quota_cpu,
            memory=k.quota_memory,
            gpu=k.quota_gpu,
            max_jobs=k.quota_max_jobs,
            max_pods=k.quota_max_pods,
        ),
        api_resources=Resources(
            cpu_request=k.api_cpu_request,
            memory_request=k.api_memory_request,
            cpu_limit=k.api_cpu_limit,
            memory_limit=k.api_memory_limit,
        ),
        data_volume_size=k.data_volume_size,
        data_storage_class=k.data_storage_class,
        storage_egress_cidrs=tuple(k.storage_egress_cidrs),
        storage_port=_storage_port(settings),
        api_egress=ApiEgressSpec(
            provisioner_port=k.provisioner_port,
            api_server_cidrs=tuple(k.api_server_cidrs),
            api_server_port=k.api_server_port,
            internet=k.api_internet_egress,
        ),
        readiness_timeout_seconds=k.readiness_timeout_seconds,
        removal_timeout_seconds=k.removal_timeout_seconds,
        resync_seconds=k.resync_seconds,
    )


def check_settings(settings: DeployerSettings) -> None:
    """Everything a consumer's objects will need, checked once by building a sample consumer's
    objects; ValueError naming the settings otherwise."""
    k = settings.kubernetes
    missing = [
        f"PROVISIONER_KUBERNETES_{name.upper()}" for name in REQUIRED if not getattr(k, name)
    ]
    if missing:
        raise ValueError(f"deployer 'kubernetes' needs {', '.join(missing)}")
    kubeconfig = k.kubeconfig
    if kubeconfig is not None and not kubeconfig.is_file():
        raise ValueError(f"PROVISIONER_KUBERNETES_KUBECONFIG {kubeconfig} is not a file")
    if kubeconfig is None and not os.environ.get("KUBERNETES_SERVICE_HOST"):
        raise ValueError(
            "PROVISIONER_KUBERNETES_KUBECONFIG is unset and this is not a pod"
            " (no KUBERNETES_SERVICE_HOST): name a kubeconfig file"
        )
    domain = k.ingress_domain or ""
    if not DNS_SUBDOMAIN.fullmatch(domain) or len(domain) > 253:
        raise ValueError(f"PROVISIONER_KUBERNETES_INGRESS_DOMAIN {domain!r} is not a host name")
    if not k.ingress_path_prefix.startswith("/"):
        raise ValueError("PROVISIONER_KUBERNETES_INGRESS_PATH_PREFIX must start with '/'")
    sample = ConsumerSpec("check", "check-00000000", "workflow-api/check-00000000")
    try:
        config_from_settings(settings).deployment_spec(
            sample, kubernetes_workflow_api_env(settings, {})
        )
    except ValueError as error:
        raise ValueError(f"PROVISIONER_KUBERNETES_* settings: {error}") from error


def make_kubernetes_deployer(
    settings: DeployerSettings, common_env: Mapping[str, str], storage: ConsumerStorage
) -> KubernetesDeployer:
    kubeconfig = settings.kubernetes.kubeconfig
    api_client = connect(str(kubeconfig) if kubeconfig else None, settings.kubernetes.context)
    return KubernetesDeployer(
        api=KubernetesApi(api_client, timeout_seconds=settings.kubernetes.request_timeout_seconds),
        config=config_from_settings(settings),
        workflow_api_env=kubernetes_workflow_api_env(settings, common_env),
        storage=storage,
    )
