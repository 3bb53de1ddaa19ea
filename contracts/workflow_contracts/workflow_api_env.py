"""The environment a consumer's workflow-api is started with: the `WORKFLOW_API_*` variables its
`Settings` reads (env prefix `WORKFLOW_API_`), written by the provisioner's deployers.

One model per party that fills a part, each turning into the env dict with `to_env()` (the
variable name is `WORKFLOW_API_` + the field name in capitals; values as pydantic-settings reads
them: `true`/`false`, numbers in decimal, lists as JSON; a field left None is not set, so the
workflow-api's default applies):

    ConsumerIdentity   who the instance serves and where it lives; set by each deployer per
                       consumer, never shared (`PER_CONSUMER_NAMES`)
    SharedSettings     what every consumer's workflow-api of one provisioner shares; the
                       Kubernetes deployer overrides the in-cluster view (catalog inside the
                       image, JWKS at the provisioner's Service, jobs as Kubernetes Jobs)
    S3Storage          the consumer's storage (bucket, prefix, credentials), per consumer
    WorkerSandbox      how the local deployer's workflow-api confines its workers, per consumer

Why the deployers differ: the local deployer runs the workflow-api on the provider's host, so it
sets the sandbox (bubblewrap, a worker uid per consumer); in Kubernetes the job pod is the
sandbox, so it sets none, and it sets the runner and the sidecar image instead. Neither sets
`WORKFLOW_API_DATABASE_URL`: each consumer's database is SQLite in its own data directory, and a
database URL in the shared settings would put every consumer into one database, so both refuse
it there (it is in `PER_CONSUMER_NAMES`).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict

PREFIX = "WORKFLOW_API_"


def env_name(field: str) -> str:
    """`consumer_id` -> `WORKFLOW_API_CONSUMER_ID`."""
    return PREFIX + field.upper()


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


class _Variables(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_env(self) -> dict[str, str]:
        """The variables of the fields that are set, by name."""
        return {
            env_name(field): _text(value)
            for field, value in self
            if value is not None  # unset: the workflow-api's default
        }

    @classmethod
    def names(cls) -> frozenset[str]:
        return frozenset(env_name(field) for field in cls.model_fields)


class ConsumerIdentity(_Variables):
    consumer_id: str
    data_dir: str
    public_url: str
    token_audience: str


class SharedSettings(_Variables):
    assets_dir: str | None = None
    token_issuer: str | None = None
    jwks_url: str | None = None
    storage: str | None = None
    max_running_jobs: int | None = None
    storage_quota: int | None = None
    egress_allow_hosts: list[str] | None = None
    egress_allow_cidrs: list[str] | None = None
    runner: str | None = None
    kubernetes_sidecar_image: str | None = None


class S3Storage(_Variables):
    s3_endpoint: str
    s3_secure: bool
    s3_access_key: str
    s3_secret_key: str
    s3_bucket: str
    s3_prefix: str
    s3_region: str


class WorkerSandbox(_Variables):
    sandbox: str
    sandbox_uid: int | None = None


# Set by a deployer for each consumer, so never in the settings all consumers share.
PER_CONSUMER_NAMES = ConsumerIdentity.names() | {env_name("database_url")}
EGRESS_ALLOW_CIDRS = env_name("egress_allow_cidrs")
