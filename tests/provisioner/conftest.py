from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from provisioner.deployers.base import ConsumerSpec
from provisioner.deployers.local.deployer import LocalDeployer
from provisioner.grants.models import Consumer, ConsumerState, make_engine
from provisioner.services import Parts
from provisioner.tokens.issuing import workflow_api_audience
from tests.edc_standin.fixture import EdcStandIn
from tests.provisioner.harness import RunningProvisioner, start_provisioner


def remove_leftover_deployments(data_dir: Path, database_url: str) -> None:
    """Whatever a test left running (workflow-apis outlive their provisioner by design)."""
    engine = make_engine(database_url)
    with Session(engine) as session:
        consumers = list(
            session.exec(select(Consumer).where(Consumer.state != ConsumerState.REMOVED))
        )
    engine.dispose()
    deployer = LocalDeployer(root=data_dir / "consumers", workflow_api_env={})
    for consumer in consumers:
        spec = ConsumerSpec(consumer.id, consumer.slug, workflow_api_audience(consumer.slug))
        deployer.remove(spec, dict(consumer.detail))


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
