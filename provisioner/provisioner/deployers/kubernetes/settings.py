"""The Kubernetes deployer's settings, `PROVISIONER_KUBERNETES_*`: a model nested in the
provisioner's `Settings` as `settings.kubernetes` (the variable `PROVISIONER_KUBERNETES_<FIELD>`
lands in the field `<field>`). Plain pydantic, no Kubernetes client: the settings load without
the optional `kubernetes` package; `setup.py` checks them and builds the deployer from them."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field


class KubernetesSettings(BaseModel):
    """See the module docstring; used when `PROVISIONER_DEPLOYER=kubernetes`."""

    # Unknown PROVISIONER_KUBERNETES_* variables are ignored, as every settings source does.
    model_config = ConfigDict(extra="ignore", frozen=True)

    kubeconfig: Path | None = Field(default=None, description="unset: in-cluster")
    context: str | None = None
    workflow_api_image: str | None = None
    namespace_prefix: str = "wf-"
    provisioner_namespace: str = "workflow-system"
    runner_cluster_role: str = "workflow-api-runner"
    provisioner_url: AnyHttpUrl | None = Field(
        default=None, description="where pods reach the provisioner (JWKS); default public_url"
    )
    assets_dir: str = Field(
        default="/assets", description="the asset catalog inside the workflow-api image"
    )
    sidecar_image: str | None = Field(
        default=None,
        description="the data-sidecar image; when set, workflow-apis run jobs as Kubernetes Jobs",
    )
    workflow_api_env: dict[str, str] = Field(
        default_factory=dict, description="more WORKFLOW_API_* settings for every pod (JSON)"
    )
    ingress_domain: str | None = Field(
        default=None, description="path routing: the public host; host routing: <slug>.<this>"
    )
    ingress_routing: Literal["path", "host"] = "path"
    ingress_path_prefix: str = "/consumers"
    ingress_namespace: str = "ingress-nginx"
    ingress_class: str | None = None
    ingress_tls_secret: str | None = None
    ingress_annotations: dict[str, str] = Field(default_factory=dict)
    public_scheme: Literal["https", "http"] = "https"
    public_port: int | None = Field(
        default=None,
        gt=0,
        lt=65536,
        description="the port in the consumers' public URLs, when the ingress controller does not"
        " listen on the scheme's default port (e.g. a NodePort)",
    )
    reach_workflow_api: Literal["service", "public-url"] = Field(
        default="service",
        description="how the provisioner calls a workflow-api's admin API: its Service (the"
        " provisioner runs in the cluster) or its public URL",
    )
    quota_cpu: str = "4"
    quota_memory: str = "8Gi"
    quota_gpu: int = Field(default=0, ge=0)
    quota_max_jobs: int = Field(default=20, ge=1)
    quota_max_pods: int = Field(default=20, ge=2)
    api_cpu_request: str = "100m"
    api_memory_request: str = "256Mi"
    api_cpu_limit: str = "1"
    api_memory_limit: str = "1Gi"
    data_volume_size: str = "10Gi"
    data_storage_class: str | None = None
    storage_egress_cidrs: list[str] = Field(default_factory=list)
    storage_port: int | None = Field(
        default=None, gt=0, lt=65536, description="default: the port of s3_endpoint, else 443"
    )
    # the workflow-api pod's egress NetworkPolicy (besides DNS, storage and the provisioner)
    provisioner_port: int = Field(
        default=8000, gt=0, lt=65536, description="the provisioner pod's port (JWKS)"
    )
    api_server_cidrs: list[str] = Field(
        default_factory=list, description="the Kubernetes API server's endpoint addresses"
    )
    api_server_port: int = Field(default=6443, gt=0, lt=65536)
    api_internet_egress: bool = Field(
        default=False, description="let the workflow-api reach public addresses on 80 and 443"
    )
    readiness_timeout_seconds: float = Field(default=300.0, gt=0)
    removal_timeout_seconds: float = Field(default=120.0, gt=0)
    resync_seconds: float = Field(
        default=60.0, ge=0, description="how often every object of a consumer is checked"
    )
    request_timeout_seconds: float = Field(default=10.0, gt=0)
