"""From the provisioner's settings to the Kubernetes deployer: the one place that reads the
nested `settings.kubernetes` (`KubernetesSettings`), checks them at start-up (`check_settings`,
called by the Settings model) and builds the client and the deployer, which gets the nested
settings model itself (`resolved_settings`).

It takes the provisioner's settings as `DeployerSettings`, the few fields it reads (the nested
Kubernetes and S3 settings), so it never imports the settings module, which imports it (lazily)
for the check."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Protocol
from urllib.parse import urlsplit

from provisioner.deployers.base import ConsumerSpec
from provisioner.deployers.kubernetes.api import KubernetesApi
from provisioner.deployers.kubernetes.config import deployment_spec
from provisioner.deployers.kubernetes.deployer import KubernetesDeployer
from provisioner.deployers.kubernetes.settings import KubernetesSettings
from provisioner.storage.consumer import ConsumerStorage
from provisioner.storage.settings import S3Settings
from workflow_common.kubernetes import connect
from workflow_contracts.workflow_api_env import SharedSettings


class DeployerSettings(Protocol):
    """What this module reads of the provisioner's `Settings`."""

    @property
    def kubernetes(self) -> KubernetesSettings: ...
    @property
    def s3(self) -> S3Settings: ...


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
    """The S3 endpoint's port: the one it names, else 443 (80 for plain HTTP)."""
    endpoint = settings.s3.endpoint or ""
    parts = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
    if parts.port:
        return parts.port
    return 443 if settings.s3.secure and not endpoint.startswith("http://") else 80


def resolved_settings(settings: DeployerSettings) -> KubernetesSettings:
    """The nested Kubernetes settings as the deployer uses them: the storage port, when unset,
    taken from the S3 endpoint. Handed to the deployer as they are: no copy."""
    k = settings.kubernetes
    if k.storage_port is not None:
        return k
    return k.model_copy(update={"storage_port": _storage_port(settings)})


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
        deployment_spec(
            resolved_settings(settings), sample, kubernetes_workflow_api_env(settings, {})
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
        settings=resolved_settings(settings),
        workflow_api_env=kubernetes_workflow_api_env(settings, common_env),
        storage=storage,
    )
