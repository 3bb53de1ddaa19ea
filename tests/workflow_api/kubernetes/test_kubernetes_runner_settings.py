"""The Kubernetes runner's settings, and how the runner is chosen and built (no cluster needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from workflow_api.execution.kubernetes.runner import KubernetesJobRunner
from workflow_api.services import _make_runner
from workflow_api.settings import Settings
from workflow_api.storage.filesystem import FilesystemStore

REQUIRED = {
    "WORKFLOW_API_CONSUMER_ID": "consumer-a",
    "WORKFLOW_API_PUBLIC_URL": "http://127.0.0.1:8080",
    "WORKFLOW_API_TOKEN_AUDIENCE": "workflow-api/consumer-a",
    "WORKFLOW_API_JWKS_URL": "http://provisioner/.well-known/jwks.json",
}


def _settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str) -> Settings:
    for name, value in {**REQUIRED, **env}.items():
        monkeypatch.setenv(name, value)
    return Settings(data_dir=tmp_path, assets_dir=tmp_path)


def test_placement_settings_are_json_in_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = _settings(
        monkeypatch,
        tmp_path,
        WORKFLOW_API_RUNNER="kubernetes",
        WORKFLOW_API_KUBERNETES_SIDECAR_IMAGE="registry.example.org/data-sidecar:1",
        WORKFLOW_API_KUBERNETES_NODE_SELECTOR='{"workload": "jobs"}',
        WORKFLOW_API_KUBERNETES_TOLERATIONS=(
            '[{"key": "gpu", "operator": "Exists", "effect": "NoSchedule",'
            ' "tolerationSeconds": 60}]'
        ),
    )
    assert settings.kubernetes_node_selector == {"workload": "jobs"}
    (toleration,) = settings.kubernetes_tolerations
    assert (toleration.key, toleration.operator, toleration.toleration_seconds) == (
        "gpu",
        "Exists",
        60,
    )


def test_the_kubernetes_runner_needs_a_sidecar_image(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(ValidationError, match="KUBERNETES_SIDECAR_IMAGE"):
        _settings(monkeypatch, tmp_path, WORKFLOW_API_RUNNER="kubernetes")
    with pytest.raises(ValidationError, match="operator"):
        _settings(
            monkeypatch,
            tmp_path,
            WORKFLOW_API_RUNNER="kubernetes",
            WORKFLOW_API_KUBERNETES_SIDECAR_IMAGE="sidecar:1",
            WORKFLOW_API_KUBERNETES_TOLERATIONS='[{"key": "a", "operator": "Sometimes"}]',
        )


def test_the_runner_is_built_from_a_kubeconfig_without_touching_the_cluster(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    kubeconfig = tmp_path / "kubeconfig.yaml"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "not-a-real-token"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    settings = _settings(
        monkeypatch,
        tmp_path,
        WORKFLOW_API_RUNNER="kubernetes",
        WORKFLOW_API_KUBERNETES_SIDECAR_IMAGE="sidecar:1",
        WORKFLOW_API_KUBERNETES_KUBECONFIG=str(kubeconfig),
        WORKFLOW_API_KUBERNETES_NAMESPACE="wf-consumer-a",
    )
    store = FilesystemStore(tmp_path / "objects", b"k" * 32, settings.base_url)
    runner = _make_runner(settings, store)
    try:
        assert isinstance(runner, KubernetesJobRunner)
        assert runner.recover("some-job", None) is True
    finally:
        runner.close()


def test_without_a_namespace_outside_a_pod_the_runner_says_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from workflow_common.kubernetes import default_namespace  # noqa: PLC0415

    monkeypatch.setattr(
        "workflow_common.kubernetes.SERVICE_ACCOUNT_NAMESPACE", tmp_path / "nothing"
    )
    with pytest.raises(ValueError, match="WORKFLOW_API_KUBERNETES_NAMESPACE is not set"):
        default_namespace("WORKFLOW_API_KUBERNETES_NAMESPACE")


def test_the_kubernetes_client_is_imported_only_by_the_kubernetes_runner() -> None:
    code = (
        "import sys, workflow_api.app, workflow_api.services;"
        "assert 'kubernetes' not in sys.modules, 'imported at start-up'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
