"""Provisioner settings from `PROVISIONER_*` variables, validated at start-up.

Two groups are nested models, each handed on to the one part that uses it:
`settings.kubernetes` (`KubernetesSettings`, `deployers/kubernetes/settings.py`) to the
Kubernetes deployer, `settings.s3` (`S3Settings`, `storage/settings.py`) to the consumer
storage. Their variables keep their flat names, `PROVISIONER_KUBERNETES_<FIELD>` and
`PROVISIONER_S3_<FIELD>`: the environment source splits a variable once after the group's name
(`env_nested_delimiter="_"`, `env_nested_max_split=1`; only nested models split), and flat
keyword arguments (`Settings(kubernetes_workflow_api_image=..., s3_bucket=...)`) are nested the
same way before validation, so every place that names a setting (chart, compose, docs) names it
as before.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Literal

from pydantic import AnyHttpUrl, BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from provisioner.deployers.kubernetes.settings import KubernetesSettings
from provisioner.storage.settings import S3Settings
from workflow_common.server_limits import ServerLimits

PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "password", "admin"}


def _check_secret(name: str, value: SecretStr | None, *, minimum: int) -> None:
    if value is None:
        return
    text = value.get_secret_value()
    if len(text) < minimum or text.lower() in PLACEHOLDER_SECRETS:
        raise ValueError(f"{name} must be a real secret of at least {minimum} characters")


def _check_kubernetes_settings(settings: Settings) -> None:
    try:  # the kubernetes package is an optional dependency: imported only when chosen
        from provisioner.deployers.kubernetes.setup import check_settings  # noqa: PLC0415
    except ImportError as error:
        raise ValueError(
            f"deployer 'kubernetes' needs the kubernetes package ({error});"
            " install provisioner[kubernetes]"
        ) from None
    check_settings(settings)


def _nest(data: dict[str, Any], group: str, model: type[BaseModel]) -> dict[str, Any]:
    """`<group>_<field>` keys that name a field of `model` → `data[group][<field>]`; a flat key
    wins over the same field given nested."""
    start = f"{group}_"
    flat = {
        key: data[key]
        for key in data
        if key.startswith(start) and key.removeprefix(start) in model.model_fields
    }
    if not flat:
        return data
    nested = data.get(group) or {}
    if isinstance(nested, model):
        nested = nested.model_dump(exclude_unset=True)
    rest = {key: value for key, value in data.items() if key not in flat}
    names = {key.removeprefix(start): value for key, value in flat.items()}
    return rest | {group: {**nested, **names}}


NESTED: dict[str, type[BaseModel]] = {"kubernetes": KubernetesSettings, "s3": S3Settings}


class Settings(ServerLimits):
    model_config = SettingsConfigDict(
        env_prefix="PROVISIONER_",
        extra="forbid",
        env_nested_delimiter="_",  # only nested models split: PROVISIONER_KUBERNETES_<field>
        env_nested_max_split=1,
    )

    public_url: AnyHttpUrl = Field(description="where EDC and consumers reach this provisioner")
    data_dir: Path = Field(description="database, keys and local deployments live here")
    assets_dir: Path = Field(description="the workflow asset catalog (asset files)")
    database_url: str | None = Field(default=None, description="default: SQLite in data_dir")

    # EDC
    edc_management_url: AnyHttpUrl | None = Field(
        default=None, description="provider Management API base, e.g. http://edc:19193/management"
    )
    edc_management_api_key: SecretStr | None = None
    edc_callback_api_key: SecretStr | None = Field(
        default=None, description="x-api-key sent on callbacks when EDC's context requires it"
    )
    edc_endpoint_secret: SecretStr | None = Field(
        default=None,
        description="required: EDC sends no auth header, so the provisioning URLs configured in"
        " EDC carry it as a query parameter: /edc/...?secret=<this>",
    )
    edc_endpoint_unauthenticated: bool = Field(
        default=False,
        description="run /edc/... without a secret: anyone who reaches it and knows a transfer"
        " id can ask for (de)provisioning, which EDC's Management API then has to refuse",
    )
    edc_timeout_seconds: float = Field(default=10.0, gt=0)
    edc_flavour: Literal["dataplane", "legacy"] = Field(
        default="dataplane",
        description="how the provider's EDC calls us for the assets we publish: data-plane"
        " provisioning (EDC 0.14-0.18, asset type ProvisionHttp) or legacy provision-http"
        " (EDC <= 0.15, asset type edc_legacy_address_type)",
    )
    edc_legacy_address_type: str = Field(
        default="WorkflowApi",
        pattern=r"^[A-Za-z][A-Za-z0-9_.:-]{0,99}$",
        description="the provider's provisioner.http.entries.<n>.data.address.type",
    )
    edc_publish_on_startup: bool = Field(
        default=False,
        description="publish the asset catalog into the provider's EDC when the service starts",
    )
    dataplane_address: Literal["endpoint", "credentials"] = Field(
        default="endpoint",
        description="data-plane callbacks: the workflow-api URL and token themselves (EDC >= 0.16)"
        " or an HttpData address of the credentials endpoint (EDC <= 0.15)",
    )
    callback_deadline_seconds: float = Field(default=600.0, gt=0)
    callback_delay_seconds: float = Field(
        default=0.03, ge=0, description="EDC leases the transfer while it handles our answer"
    )

    # consumers and tokens
    deployer: Literal["local", "kubernetes"] = "local"
    admin_token: SecretStr = Field(description="bearer token of the /admin API")
    signing_key_file: Path | None = Field(default=None, description="PEM; generated when unset")
    token_issuer: str = "workflow-provisioner"  # noqa: S105 - a name, not a secret
    token_max_lifetime_seconds: int = Field(default=7 * 24 * 3600, gt=0)
    expiry_grace_seconds: float = Field(default=0.0, ge=0)
    reconcile_interval_seconds: float = Field(default=1.0, gt=0)
    supervise_interval_seconds: float = Field(default=5.0, gt=0)

    # what each consumer's workflow-api gets
    local_host: str = "127.0.0.1"
    local_public_host: str | None = None
    local_sandbox: Literal["bubblewrap", "none"] = Field(
        default="bubblewrap",
        description="how the local deployer's workflow-apis run workers: in the bubblewrap"
        " sandbox, or (none) unconfined, with the workflow-api's rights",
    )
    local_worker_uid_base: int = Field(default=200_000, ge=1000, lt=2**31)
    local_worker_uid_count: int = Field(default=100_000, gt=0)
    storage: Literal["filesystem", "s3"] = "filesystem"
    # the provisioner's S3 server (storage = "s3"), PROVISIONER_S3_*
    s3: S3Settings = Field(default_factory=S3Settings)
    max_running_jobs: int = Field(default=2, gt=0)
    storage_quota: int | None = Field(default=None, gt=0)
    # What every workflow-api's egress policy allows besides public addresses (host names and
    # networks its consumers' URLs may reach: inputs, env-files, callbacks); empty by default.
    egress_allow_hosts: list[str] = Field(default_factory=list)
    egress_allow_cidrs: list[str] = Field(default_factory=list)

    # the Kubernetes deployer (deployer = "kubernetes"), PROVISIONER_KUBERNETES_*
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)

    @model_validator(mode="before")
    @classmethod
    def _nest_flat_names(cls, data: Any) -> Any:
        """`kubernetes_<field>=...` → `kubernetes={<field>: ...}`, `s3_<field>=...` →
        `s3={<field>: ...}` (see the module docstring)."""
        if not isinstance(data, dict):
            return data
        for group, model in NESTED.items():
            data = _nest(data, group, model)
        return data

    @field_validator("admin_token")
    @classmethod
    def _admin_token(cls, value: SecretStr) -> SecretStr:
        _check_secret("PROVISIONER_ADMIN_TOKEN", value, minimum=32)
        return value

    @field_validator("egress_allow_cidrs")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for cidr in value:
            ipaddress.ip_network(cidr)  # ValueError names the malformed one
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        _check_secret("PROVISIONER_EDC_ENDPOINT_SECRET", self.edc_endpoint_secret, minimum=16)
        if (self.edc_endpoint_secret is None) != self.edc_endpoint_unauthenticated:
            raise ValueError(
                "set PROVISIONER_EDC_ENDPOINT_SECRET (at least 16 characters; EDC calls"
                " /edc/...?secret=<it>), or PROVISIONER_EDC_ENDPOINT_UNAUTHENTICATED=true to"
                " run the EDC endpoints without one, not both"
                if self.edc_endpoint_secret is not None
                else "PROVISIONER_EDC_ENDPOINT_SECRET is required (at least 16 characters; EDC"
                " sends no auth header, so its provisioning URLs carry it: /edc/...?secret=<it>);"
                " PROVISIONER_EDC_ENDPOINT_UNAUTHENTICATED=true runs without one (not for"
                " production)"
            )
        if self.storage == "s3":
            self.s3.check_complete()
        if self.edc_publish_on_startup and self.edc_management_url is None:
            raise ValueError(
                "PROVISIONER_EDC_PUBLISH_ON_STARTUP needs PROVISIONER_EDC_MANAGEMENT_URL"
            )
        if not self.assets_dir.is_dir():
            raise ValueError(f"PROVISIONER_ASSETS_DIR {self.assets_dir} is not a directory")
        if self.storage == "s3":
            self.s3.check_bucket_stem()
        if self.deployer == "kubernetes":
            _check_kubernetes_settings(self)
        return self

    @classmethod
    def variable_names(cls) -> set[str]:
        """Every `PROVISIONER_*` variable these settings read, the nested groups' fields under
        their flat names (`PROVISIONER_S3_BUCKET`)."""
        names = {f"PROVISIONER_{name.upper()}" for name in cls.model_fields if name not in NESTED}
        for group, model in NESTED.items():
            names |= {f"PROVISIONER_{group.upper()}_{name.upper()}" for name in model.model_fields}
        return names

    @property
    def base_url(self) -> str:
        return str(self.public_url).rstrip("/")

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'provisioner.db'}"
