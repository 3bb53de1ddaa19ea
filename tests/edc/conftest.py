"""Real EDC providers (built by .ci/build-edc.sh), one per version and module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from workflow_testkit.edc.connectors import Connector
from workflow_testkit.edc.runtimes import require_edc_runtime


@pytest.fixture(scope="module", params=["0.18.0", "0.15.1"])
def edc_provider(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Connector]:
    version: str = request.param
    require_edc_runtime(version)
    directory: Path = tmp_path_factory.mktemp(f"edc-provider-{version}")
    connector = Connector(version, "provider", directory)
    connector.start()
    try:
        yield connector
    finally:
        connector.stop()
