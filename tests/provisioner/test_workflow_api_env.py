"""The per-consumer `WORKFLOW_API_*` environment (`workflow_contracts.workflow_api_env`): every
name it produces is a setting the workflow-api reads, the workflow-api reads the values as meant,
both deployers set what they must, and the values are the ones the provisioner always wrote."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest

from provisioner.deployers.base import ConsumerSpec
from provisioner.deployers.kubernetes import config
from provisioner.deployers.kubernetes.settings import KubernetesSettings
from provisioner.deployers.local.deployer import LocalDeployer, consumer_environment
from provisioner.deployers.local.sandbox import LocalSandbox
from provisioner.services import workflow_api_environment
from provisioner.settings import Settings
from provisioner.storage.s3 import _settings as s3_settings
from workflow_api.settings import Settings as WorkflowApiSettings
from workflow_contracts import workflow_api_env
from workflow_contracts.workflow_api_env import (
    PER_CONSUMER_NAMES,
    ConsumerIdentity,
    S3Storage,
    SharedSettings,
    WorkerSandbox,
)

DUMMY_ASSETS = Path(__file__).resolve().parents[2] / "dummy-job" / "assets"
SPEC = ConsumerSpec("did:web:alice", "alice-1234", "workflow-api/alice-1234")
MODELS = (ConsumerIdentity, SharedSettings, S3Storage, WorkerSandbox)


def _provisioner_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "public_url": "http://127.0.0.1:8000",
        "data_dir": tmp_path,
        "assets_dir": DUMMY_ASSETS,
        "admin_token": secrets.token_urlsafe(32),
        "edc_endpoint_secret": secrets.token_urlsafe(24),
    }
    return Settings(**(values | overrides))


def test_every_name_the_contract_produces_is_a_workflow_api_setting() -> None:
    assert WorkflowApiSettings.model_config.get("env_prefix") == workflow_api_env.PREFIX
    names = frozenset().union(*(model.names() for model in MODELS)) | PER_CONSUMER_NAMES
    fields = {workflow_api_env.env_name(field) for field in WorkflowApiSettings.model_fields}
    assert names <= fields, sorted(names - fields)


def test_the_workflow_api_reads_back_what_the_contract_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = {
        **ConsumerIdentity(
            consumer_id="did:web:alice",
            data_dir=str(tmp_path),
            public_url="http://127.0.0.1:9000",
            token_audience="workflow-api/alice",
        ).to_env(),
        **SharedSettings(
            assets_dir=str(DUMMY_ASSETS),
            token_issuer="issuer",
            jwks_url="http://127.0.0.1:8000/.well-known/jwks.json",
            storage="s3",
            max_running_jobs=3,
            storage_quota=1024,
            egress_allow_hosts=["files.example.org"],
            egress_allow_cidrs=["10.1.0.0/16"],
        ).to_env(),
        **S3Storage(
            s3_endpoint="127.0.0.1:9100",
            s3_secure=False,
            s3_access_key="access",
            s3_secret_key="secret-secret",
            s3_bucket="bucket",
            s3_prefix="alice/",
            s3_region="us-east-1",
        ).to_env(),
        **WorkerSandbox(sandbox="none").to_env(),
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    settings = WorkflowApiSettings()  # type: ignore[call-arg]  # from the environment

    assert settings.consumer_id == "did:web:alice" and settings.data_dir == tmp_path
    assert settings.max_running_jobs == 3 and settings.storage_quota == 1024
    assert settings.egress_allow_hosts == ["files.example.org"]
    assert settings.egress_allow_cidrs == ["10.1.0.0/16"]
    assert settings.s3_secure is False and settings.s3_prefix == "alice/"
    assert settings.sandbox == "none" and settings.sandbox_uid is None


def test_the_shared_settings_are_the_ones_the_provisioner_always_wrote(tmp_path: Path) -> None:
    plain = _provisioner_settings(tmp_path)
    assert workflow_api_environment(plain) == {
        "WORKFLOW_API_ASSETS_DIR": str(DUMMY_ASSETS.resolve()),
        "WORKFLOW_API_TOKEN_ISSUER": "workflow-provisioner",
        "WORKFLOW_API_JWKS_URL": "http://127.0.0.1:8000/.well-known/jwks.json",
        "WORKFLOW_API_STORAGE": "filesystem",
        "WORKFLOW_API_MAX_RUNNING_JOBS": "2",
    }
    full = _provisioner_settings(
        tmp_path,
        storage_quota=5000,
        egress_allow_hosts=["a.example.org", "b.example.org"],
        egress_allow_cidrs=["10.0.0.0/8"],
    )
    env = workflow_api_environment(full)
    assert env["WORKFLOW_API_STORAGE_QUOTA"] == "5000"
    assert env["WORKFLOW_API_EGRESS_ALLOW_HOSTS"] == json.dumps(["a.example.org", "b.example.org"])
    assert env["WORKFLOW_API_EGRESS_ALLOW_CIDRS"] == '["10.0.0.0/8"]'


def test_the_storage_settings_are_the_ones_the_provisioner_always_wrote() -> None:
    assert s3_settings("127.0.0.1:9100", True, "key", "secret", "bucket", "alice/") == {
        "WORKFLOW_API_S3_ENDPOINT": "127.0.0.1:9100",
        "WORKFLOW_API_S3_SECURE": "true",
        "WORKFLOW_API_S3_ACCESS_KEY": "key",
        "WORKFLOW_API_S3_SECRET_KEY": "secret",
        "WORKFLOW_API_S3_BUCKET": "bucket",
        "WORKFLOW_API_S3_PREFIX": "alice/",
        "WORKFLOW_API_S3_REGION": "us-east-1",
    }
    assert s3_settings("h", False, "k", "s", "b", "")["WORKFLOW_API_S3_SECURE"] == "false"


def test_both_deployers_set_the_consumers_identity(tmp_path: Path) -> None:
    local = consumer_environment(
        {},
        SPEC,
        data_dir=tmp_path / SPEC.slug,
        public_url="http://127.0.0.1:9000",
        python="/usr/bin/python3",
        inherited={},
    )
    kubernetes = KubernetesSettings(
        workflow_api_image="api:1", ingress_domain="workflows.example.org"
    )
    pod = config.deployment_spec(kubernetes, SPEC, {}).config()

    for environment in (local, pod):
        assert ConsumerIdentity.names() <= set(environment)
        assert environment["WORKFLOW_API_CONSUMER_ID"] == SPEC.consumer_id
        assert environment["WORKFLOW_API_TOKEN_AUDIENCE"] == SPEC.token_audience
    assert local["WORKFLOW_API_DATA_DIR"] == str(tmp_path / SPEC.slug)
    assert pod["WORKFLOW_API_DATA_DIR"] == "/data"


def test_only_the_local_deployer_sets_the_sandbox(tmp_path: Path) -> None:
    """On the provider's host the workflow-api confines its workers itself; in Kubernetes the
    job pod is the confinement, so its workflow-api gets no sandbox settings."""
    (tmp_path / SPEC.slug).mkdir()
    local = LocalSandbox("bubblewrap", uid_base=200_000, uid_count=100_000)
    assert local.environment(tmp_path, SPEC.slug)["WORKFLOW_API_SANDBOX"] == "bubblewrap"
    kubernetes = KubernetesSettings(
        workflow_api_image="api:1", ingress_domain="workflows.example.org"
    )
    pod = config.deployment_spec(kubernetes, SPEC, {}).config()
    assert not WorkerSandbox.names() & set(pod)


@pytest.mark.parametrize("name", sorted(PER_CONSUMER_NAMES))
def test_both_deployers_refuse_per_consumer_names_in_the_shared_settings(
    tmp_path: Path, name: str
) -> None:
    """A database URL shared by every consumer would put them all into one database."""
    with pytest.raises(ValueError, match=name):
        LocalDeployer(root=tmp_path, workflow_api_env={name: "x"})
    kubernetes = KubernetesSettings(
        workflow_api_image="api:1", ingress_domain="workflows.example.org"
    )
    with pytest.raises(ValueError, match=name):
        config.deployment_spec(kubernetes, SPEC, {name: "x"})
