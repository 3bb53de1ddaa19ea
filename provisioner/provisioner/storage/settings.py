"""The provisioner's own S3 settings, `PROVISIONER_S3_*`: a model nested in the provisioner's
`Settings` as `settings.s3` (the variable `PROVISIONER_S3_<FIELD>` lands in the field `<field>`),
handed to the consumer storage alone. The `check_*` methods are what
`storage = "s3"` requires of them.

workflow-api's `WORKFLOW_API_S3_*` settings stay flat fields of its own `Settings`: they differ
(a prefix and a region, no isolation), and each workflow-api gets them per consumer from
`ConsumerStorage.ensure` (`workflow_contracts.workflow_api_env.S3Storage`), not from this model.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from provisioner.slugs import prefixed_label
from workflow_common.settings import require_s3_settings


class S3Settings(BaseModel):
    """See the module docstring; used when `PROVISIONER_STORAGE=s3`."""

    # Unknown PROVISIONER_S3_* variables are ignored, as every settings source does.
    model_config = ConfigDict(extra="ignore", frozen=True)

    endpoint: str | None = None
    access_key: SecretStr | None = None
    secret_key: SecretStr | None = None
    bucket: str | None = None
    secure: bool = True
    isolation: Literal["prefix", "minio"] = Field(
        default="prefix",
        description="prefix: one shared bucket and credentials, a prefix per consumer (any"
        " workflow-api can reach every consumer's data); minio: a bucket and a MinIO user per"
        " consumer (the S3 keys must be MinIO admin credentials; s3_bucket is the name stem)",
    )

    def check_complete(self) -> None:
        """With S3 storage, endpoint, keys and bucket must all be set."""
        require_s3_settings(self, "PROVISIONER_S3_")

    def check_bucket_stem(self) -> None:
        """With MinIO isolation, the bucket is the stem of each consumer's bucket name."""
        if self.isolation != "minio" or not self.bucket:
            return
        try:
            prefixed_label(f"{self.bucket}-", "consumer-00000000")
        except ValueError:
            raise ValueError(
                "with PROVISIONER_S3_ISOLATION=minio, PROVISIONER_S3_BUCKET is the stem of"
                " each consumer's bucket: lowercase letters, digits and '-' only"
            ) from None
