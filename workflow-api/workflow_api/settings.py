"""Settings of one workflow-api instance (one consumer), read from `WORKFLOW_API_*` variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    model_validator,
)
from pydantic_settings import SettingsConfigDict

from data_sidecar.egress import EgressPolicy, origin_of
from workflow_common.server_limits import ServerLimits
from workflow_common.settings import require_s3_settings

MiB = 1024**2
GiB = 1024**3


class Toleration(BaseModel):
    """One pod toleration, spelled as in a Kubernetes manifest (JSON in the environment)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    key: str | None = None
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = Field(default=None, alias="tolerationSeconds")


class Settings(ServerLimits):
    model_config = SettingsConfigDict(env_prefix="WORKFLOW_API_", extra="forbid")

    consumer_id: str = Field(min_length=1, description="the only `sub` this instance serves")
    data_dir: Path = Field(description="database, workspaces and (filesystem) storage live here")
    assets_dir: Path = Field(description="directory of workflow asset files")
    public_url: AnyHttpUrl = Field(description="base URL clients and jobs reach this API at")

    # tokens
    token_issuer: str = "workflow-provisioner"  # noqa: S105 - a name, not a secret
    token_audience: str = Field(min_length=1, description="the `aud` this instance accepts")
    jwks_file: Path | None = None
    jwks_url: AnyHttpUrl | None = None
    jwks_cache_seconds: int = Field(default=300, ge=0)

    database_url: str | None = Field(default=None, description="default: SQLite in data_dir")

    # storage
    storage: Literal["filesystem", "s3"] = "filesystem"
    storage_signing_key: SecretStr | None = Field(
        default=None, description="filesystem signed URLs; generated in data_dir when unset"
    )
    s3_endpoint: str | None = None
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    s3_bucket: str | None = None
    s3_prefix: str = ""
    s3_secure: bool = True
    s3_region: str = "us-east-1"
    signed_url_ttl_seconds: int = Field(default=3600, gt=0, le=7 * 24 * 3600)  # S3 maximum

    # limits
    max_upload_size: int = Field(default=5 * GiB, gt=0)
    storage_quota: int = Field(default=50 * GiB, gt=0)
    max_running_jobs: int = Field(default=2, gt=0)
    max_inline_env_file_size: int = Field(default=64 * 1024, gt=0)
    archive_max_total_size: int = Field(default=10 * GiB, gt=0)
    archive_max_files: int = Field(default=100_000, gt=0)
    max_job_log_size: int = Field(
        default=16 * MiB, gt=0, description="a local job's log keeps its last this many bytes"
    )

    # execution
    runner: Literal["local", "kubernetes"] = "local"
    progress_poll_seconds: float = Field(default=0.5, gt=0)
    dismiss_grace_seconds: float = Field(default=5.0, ge=0)

    # the local runner's sandbox (workflow_common/sandbox.py)
    sandbox: Literal["bubblewrap", "none"] = Field(
        default="bubblewrap", description="none runs the provider's workers unconfined"
    )
    sandbox_uid: int | None = Field(
        default=None,
        ge=1,
        description="uid and gid of the workers when the API runs as root (one per consumer)",
    )
    sandbox_read_only_paths: list[Path] = Field(
        default_factory=list, description="more host paths workers see, read-only"
    )
    sandbox_max_processes: int = Field(default=256, gt=0)

    # kubernetes runner (one batch/v1 Job per job, in this consumer's namespace)
    kubernetes_namespace: str | None = Field(
        default=None, description="default: the namespace of this pod's service account"
    )
    kubernetes_kubeconfig: Path | None = Field(
        default=None, description="default: the in-cluster service account configuration"
    )
    kubernetes_sidecar_image: str | None = Field(
        default=None, description="image with the data-sidecar; required by this runner"
    )
    kubernetes_job_service_account: str = "workflow-job"
    kubernetes_ttl_seconds_after_finished: int = Field(default=3600, ge=0)
    kubernetes_node_selector: dict[str, str] = Field(default_factory=dict)
    kubernetes_tolerations: list[Toleration] = Field(default_factory=list)
    kubernetes_image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    kubernetes_poll_seconds: float = Field(default=2.0, gt=0)
    kubernetes_request_timeout_seconds: float = Field(default=15.0, gt=0)
    kubernetes_push_out_grace_seconds: int = Field(
        default=300, ge=10, description="terminationGracePeriodSeconds: time left for push-out"
    )
    kubernetes_job_user_id: int = Field(default=10001, ge=1)
    kubernetes_sidecar_cpu: str = "250m"
    kubernetes_sidecar_memory: str = "256Mi"
    subscriber_timeout_seconds: float = Field(default=10.0, gt=0)
    subscriber_attempts: int = Field(default=5, gt=0)

    # egress on a consumer's behalf (http(s) inputs, env-file hrefs, subscriber callbacks): only
    # global unicast addresses, unless the provider allow-lists a host name or a network here
    egress_allow_hosts: list[str] = Field(default_factory=list)
    egress_allow_cidrs: list[str] = Field(default_factory=list)
    egress_max_redirects: int = Field(default=5, ge=0, le=20)
    egress_input_deadline_seconds: float = Field(
        default=3600.0, gt=0, description="total time for fetching one http(s) input"
    )
    egress_env_file_deadline_seconds: float = Field(
        default=30.0, gt=0, description="total time for fetching one env-file href at launch"
    )

    @model_validator(mode="after")
    def _check_sources(self) -> Settings:
        if (self.jwks_file is None) == (self.jwks_url is None):
            raise ValueError("set exactly one of WORKFLOW_API_JWKS_FILE and WORKFLOW_API_JWKS_URL")
        key = self.storage_signing_key
        if key is not None and len(key.get_secret_value()) < 32:
            raise ValueError("WORKFLOW_API_STORAGE_SIGNING_KEY must be at least 32 characters")
        if self.storage == "s3":
            require_s3_settings(self, "WORKFLOW_API_S3_", field_prefix="s3_")
        if self.runner == "kubernetes" and not self.kubernetes_sidecar_image:
            raise ValueError("runner 'kubernetes' needs WORKFLOW_API_KUBERNETES_SIDECAR_IMAGE")
        try:
            self.egress_policy()
        except ValueError as error:
            raise ValueError(f"WORKFLOW_API_EGRESS_ALLOW_CIDRS: {error}") from error
        return self

    def egress_policy(self) -> EgressPolicy:
        """The one egress policy; this API's public origin is never a destination."""
        host, port = origin_of(self.base_url) or ("", 0)
        return EgressPolicy.build(
            allow_hosts=self.egress_allow_hosts,
            allow_cidrs=self.egress_allow_cidrs,
            own_origins=[f"[{host}]:{port}" if ":" in host else f"{host}:{port}"],
            max_redirects=self.egress_max_redirects,
        )

    @property
    def base_url(self) -> str:
        return str(self.public_url).rstrip("/")

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'workflow-api.db'}"
