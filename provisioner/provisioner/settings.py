"""Provisioner settings from `PROVISIONER_*` variables, validated at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from workflow_api.settings import require_s3_settings

PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "password", "admin"}


def _check_secret(name: str, value: SecretStr | None, *, minimum: int) -> None:
    if value is None:
        return
    text = value.get_secret_value()
    if len(text) < minimum or text.lower() in PLACEHOLDER_SECRETS:
        raise ValueError(f"{name} must be a real secret of at least {minimum} characters")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PROVISIONER_", extra="forbid")

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
        default=None, description="if set, EDC must call /edc/... with ?secret=<this>"
    )
    edc_timeout_seconds: float = Field(default=10.0, gt=0)
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
    deployer: Literal["local"] = "local"
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
    storage: Literal["filesystem", "s3"] = "filesystem"
    s3_endpoint: str | None = None
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    s3_bucket: str | None = None
    s3_secure: bool = True
    max_running_jobs: int = Field(default=2, gt=0)
    storage_quota: int | None = Field(default=None, gt=0)

    @field_validator("admin_token")
    @classmethod
    def _admin_token(cls, value: SecretStr) -> SecretStr:
        _check_secret("PROVISIONER_ADMIN_TOKEN", value, minimum=32)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        _check_secret("PROVISIONER_EDC_ENDPOINT_SECRET", self.edc_endpoint_secret, minimum=16)
        require_s3_settings(self, "PROVISIONER_")
        if not self.assets_dir.is_dir():
            raise ValueError(f"PROVISIONER_ASSETS_DIR {self.assets_dir} is not a directory")
        return self

    @property
    def base_url(self) -> str:
        return str(self.public_url).rstrip("/")

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'provisioner.db'}"
