"""The real Helm for tests (built by .ci/build-tools.sh) and the chart in helm/workflow-provisioner,
rendered as release `wf` in `workflow-system` with helm/workflow-provisioner/ci/test-values.yaml."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "workflow-provisioner"
CI_VALUES = CHART / "ci" / "test-values.yaml"
ASSETS = REPO / "dummy-job" / "assets"
NAMESPACE = "workflow-system"
KUBE_VERSION = "1.34.0"  # what the capabilities say; the chart needs >= 1.29
Document = dict[str, Any]


def helm_binary() -> Path:
    root = os.environ.get("WORKFLOW_TOOLS_CACHE") or str(
        Path.home() / ".cache" / "workflow-middle-layer" / "tools"
    )
    return Path(root) / "bin" / "helm"


def require_helm() -> Path:
    """The binary; skips the test without it, or fails when WORKFLOW_TESTS_REQUIRE_HELM=1."""
    binary = helm_binary()
    if not os.access(binary, os.X_OK):
        message = f"helm not found at {binary}; build it with .ci/build-tools.sh"
        if os.environ.get("WORKFLOW_TESTS_REQUIRE_HELM") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return binary


def run_helm(helm: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        # Helm writes nothing outside the test: no repositories, no cache, no registry config.
        "HELM_CACHE_HOME": "/nonexistent/cache",
        "HELM_CONFIG_HOME": "/nonexistent/config",
        "HELM_DATA_HOME": "/nonexistent/data",
    }
    return subprocess.run(
        [str(helm), *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=environment,
    )


def asset_files() -> list[str]:
    escaped = {path: path.name.replace(".", "\\.") for path in sorted(ASSETS.glob("*.yaml"))}
    return [f"--set-file=assets.files.{name}={path}" for path, name in escaped.items()]


def template(helm: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """`helm template` of the chart as release `wf`, with the dummy assets as the catalog."""
    return run_helm(
        helm,
        *("template", "wf", str(CHART), "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION),
        *asset_files(),
        *arguments,
    )


def render(helm: Path, *arguments: str) -> list[Document]:
    result = template(helm, "--values", str(CI_VALUES), *arguments)
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]


def render_error(helm: Path, *arguments: str) -> str:
    result = template(helm, *arguments)
    assert result.returncode != 0, "expected helm to refuse these values"
    return result.stderr
