"""One provider + consumer per EDC version and a provisioner configured for its flavour, started
once per test session (fresh in-memory connectors, a fresh provisioner database)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from workflow_testkit.edc.connectors import Connector
from workflow_testkit.edc.dataspace import Dataspace
from workflow_testkit.edc.provisioner_process import ProvisionerProcess
from workflow_testkit.edc.runtimes import require_edc_runtime

VERSIONS = ["0.18.0", "0.15.1"]
# How often EDC's policy monitor checks running transfers: long enough that the provisioner's
# own timer (every 0.2 s) ends an expired contract first, unless it is told to wait.
MONITOR_SECONDS = 4


def provisioner_environment(provider: Connector) -> dict[str, str]:
    environment = {
        "PROVISIONER_EDC_MANAGEMENT_URL": provider.management_url,
        "PROVISIONER_EDC_MANAGEMENT_API_KEY": provider.api_key,
        "PROVISIONER_DATAPLANE_ADDRESS": "endpoint",
    }
    if provider.version == "0.15.1":  # the legacy callback goes to the Management API context
        environment["PROVISIONER_EDC_CALLBACK_API_KEY"] = provider.api_key
    return environment


def provider_extra(version: str, provisioner: ProvisionerProcess) -> dict[str, str]:
    if version == "0.15.1":
        return {
            "provisioner.http.entries.workflow.endpoint": provisioner.legacy_endpoint,
            "edc.policy.monitor.state-machine.iteration-wait-millis": str(MONITOR_SECONDS * 1000),
        }
    return {"edc.policy.monitor.period": f"PT{MONITOR_SECONDS}S"}


@pytest.fixture(scope="session", params=VERSIONS)
def dataspace(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Dataspace]:
    version: str = request.param
    require_edc_runtime(version)
    root = tmp_path_factory.mktemp(f"edc-{version}")
    provisioner = ProvisionerProcess(root / "provisioner", {})
    provider = Connector(version, "provider", root / "provider")
    provider.extra = provider_extra(version, provisioner)
    provisioner.environment = provisioner_environment(provider)
    consumer = Connector(version, "consumer", root / "consumer")
    started = []
    try:
        for part in (provider, consumer, provisioner):
            part.start()
            started.append(part)
        space = Dataspace(version, provider, consumer, provisioner)
        space.offer("input-dummy", "input-dummy-open")
        space.offer("echo", "echo-open")
        yield space
    finally:
        for part in reversed(started):
            part.stop()
        print(f"\nEDC {version}: logs in {root}")  # kept by pytest's tmp_path retention
