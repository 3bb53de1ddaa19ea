"""A real EDC 0.18.0 provider and consumer with the real provisioner: the published `ProvisionHttp`
asset is bought over DSP, the provider's data plane POSTs to the published `baseUrl`, the
provisioner verifies the transfer through the real Management API (0.18.0 shapes), deploys the
consumer's workflow-api and calls back; EDC 0.18.0 hands the provisioned address to the consumer as
its EDR, with which the consumer runs a job."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from provisioner.edc.publisher import OfferingClient, publish
from provisioner.services import offer_target
from tests.edc.flows import buy, provider_transfer, wait_for
from tests.provisioner.conftest import remove_leftover_deployments
from tests.provisioner.harness import RunningProvisioner, start_provisioner
from tests.workflow_api.apis import execute, wait_for_job
from workflow_testkit.edc.runtimes import API_KEY, EdcConnector, require_edc_runtime

VERSION = "0.18.0"
EDC = "https://w3id.org/edc/v0.0.1/ns/"


@pytest.fixture
def dataplane_world(
    tmp_path: Path,
) -> Iterator[tuple[EdcConnector, EdcConnector, RunningProvisioner]]:
    require_edc_runtime(VERSION)
    provider = EdcConnector(VERSION, "provider", tmp_path / "provider")
    consumer = EdcConnector(VERSION, "consumer", tmp_path / "consumer")
    provider.choose_ports()
    provisioner = start_provisioner(
        tmp_path / "provisioner", provider.management_url, edc_management_api_key=API_KEY
    )
    try:
        provider.start()
        consumer.start()
        yield provider, consumer, provisioner
    finally:
        provisioner.stop()
        remove_leftover_deployments(
            provisioner.settings.data_dir, provisioner.settings.resolved_database_url
        )
        consumer.stop()
        provider.stop()


def _edr(consumer: EdcConnector, transfer_id: str) -> dict[str, Any] | None:
    answer = httpx.get(
        f"{consumer.management_url}/v3/edrs/{transfer_id}/dataaddress",
        headers={"x-api-key": API_KEY},
        timeout=10,
    )
    return answer.json() if answer.status_code == 200 else None


def _property(address: dict[str, Any], name: str) -> Any:
    return address.get(name, address.get(f"edc:{name}", address.get(EDC + name)))


def test_published_asset_is_provisioned_and_the_consumer_runs_a_job_with_its_edr(
    dataplane_world: tuple[EdcConnector, EdcConnector, RunningProvisioner],
) -> None:
    provider, consumer, provisioner = dataplane_world
    client = OfferingClient(provider.management_url, api_key=API_KEY, timeout_seconds=10)
    try:
        report = publish(client, provisioner.services.catalog, offer_target(provisioner.settings))
    finally:
        client.close()
    assert report.ok, report.problems

    purchase = buy(consumer, provider, "echo")
    transfer = wait_for(lambda: provider_transfer(provider, purchase.transfer_id), "transfer")
    grant = provisioner.wait_for_grant(transfer["@id"], {"active", "failed"}, 90)
    assert grant["state"] == "active", grant
    assert (grant["consumerId"], grant["assetId"]) == ("consumer", "echo")
    started = wait_for(
        lambda: (
            (t := provider_transfer(provider, purchase.transfer_id))
            and t["state"] == "STARTED"
            and t
        ),
        "the provider's transfer STARTED",
    )
    assert started["state"] == "STARTED"

    edr = wait_for(lambda: _edr(consumer, purchase.transfer_id), "the consumer's EDR")
    endpoint, token = _property(edr, "endpoint"), _property(edr, "authorization")
    assert endpoint and token, edr
    with httpx.Client(
        base_url=endpoint, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as api:
        job_id = execute(api, "echo", {"message": "bought over DSP"})
        assert wait_for_job(api, job_id)["status"] == "successful"
        result = api.get(f"/jobs/{job_id}/results/echo", follow_redirects=True)
        assert result.text == "bought over DSP"
