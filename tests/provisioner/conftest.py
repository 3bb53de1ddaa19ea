from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from provisioner.services import Parts
from workflow_testkit.edc_standin.fixture import EdcStandIn
from workflow_testkit.provisioner import (
    RunningProvisioner,
    remove_leftover_deployments,
    start_provisioner,
)


@pytest.fixture
def provisioner_factory(
    tmp_path: Path, edc_standin: EdcStandIn
) -> Iterator[Callable[..., RunningProvisioner]]:
    started: list[RunningProvisioner] = []

    def start(
        name: str = "provisioner", parts: Parts | None = None, **overrides: Any
    ) -> RunningProvisioner:
        running = start_provisioner(tmp_path / name, edc_standin.management_url, parts, **overrides)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()
    for running in started:
        remove_leftover_deployments(
            running.settings.data_dir, running.settings.resolved_database_url
        )


@pytest.fixture
def provisioner(provisioner_factory: Callable[..., RunningProvisioner]) -> RunningProvisioner:
    return provisioner_factory()
