"""One provider + consumer per EDC version and a provisioner configured for its flavour, started
once per test session (fresh in-memory connectors, a fresh provisioner database), the offering
published by `provisioner publish`: the dummy catalog and `echo-short`, an echo whose agreements
last a few seconds."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from workflow_testkit.edc.dataspace import Dataspace, open_dataspace
from workflow_testkit.edc.runtimes import require_edc_runtime
from workflow_testkit.workflow_api import DUMMY_ASSETS

VERSIONS = ["0.18.0", "0.15.1"]
SHORT_ASSET = "echo-short"
# Long enough for signing → transfer → provisioning → the consumer's access → a job on the
# session's first flow (cold JVMs) on two loaded cores: up to ~12 s seen on 0.15.1 (4.5 s from
# the transfer request to the provision request, 1.4 s to the callback, then the consumer's
# STARTED, its EDR and the proxy). The contract tests wait for the end.
SHORT_VALIDITY_SECONDS = 20


def e2e_catalog(directory: Path) -> Path:
    """The dummy assets, plus `echo-short`: echo with a contract of SHORT_VALIDITY_SECONDS."""
    shutil.copytree(DUMMY_ASSETS, directory)
    echo = (directory / "echo.yaml").read_text()
    short = echo.replace("id: echo\n", f"id: {SHORT_ASSET}\n", 1).replace(
        "validity: 30d", f"validity: {SHORT_VALIDITY_SECONDS}s"
    )
    assert short != echo and f"validity: {SHORT_VALIDITY_SECONDS}s" in short
    (directory / f"{SHORT_ASSET}.yaml").write_text(short)
    return directory


@pytest.fixture(scope="session", params=VERSIONS)
def dataspace(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Dataspace]:
    version: str = request.param
    require_edc_runtime(version)
    root = tmp_path_factory.mktemp(f"edc-{version}")
    try:
        with open_dataspace(version, root, assets_dir=e2e_catalog(root / "assets")) as space:
            yield space
    finally:
        print(f"\nEDC {version}: logs in {root}")  # kept by pytest's tmp_path retention
