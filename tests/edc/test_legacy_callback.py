"""A real EDC 0.15.1 provider and consumer with the real provisioner: the published asset is
bought over DSP, EDC's legacy provision-http calls the provisioner, whose callback to the
management context carries the Management API key (no PROVISIONER_EDC_CALLBACK_API_KEY set), and
EDC's deprovision ends the grant (the consumer terminates its transfer once it is provisioned)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioner.edc.publisher import OfferingClient, publish
from provisioner.services import offer_target
from tests.edc.flows import buy, provider_transfer, wait_for
from tests.provisioner.conftest import remove_leftover_deployments
from tests.provisioner.harness import RunningProvisioner, start_provisioner
from workflow_testkit.edc.runtimes import API_KEY, EdcConnector, require_edc_runtime

VERSION = "0.15.1"


@pytest.fixture
def legacy_world(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[EdcConnector, EdcConnector, RunningProvisioner]]:
    require_edc_runtime(VERSION)
    extra = getattr(request, "param", {})
    provider = EdcConnector(VERSION, "provider", tmp_path / "provider")
    consumer = EdcConnector(VERSION, "consumer", tmp_path / "consumer")
    provider.choose_ports()
    provisioner = start_provisioner(
        tmp_path / "provisioner",
        provider.management_url,
        edc_management_api_key=API_KEY,
        edc_flavour="legacy",
        **extra,
    )
    provider.overrides = {
        "provisioner.http.entries.workflow.endpoint": provisioner.legacy_endpoint,
        # the callback address EDC sends is <edc.management.endpoint>/callback: spelled like
        # PROVISIONER_EDC_MANAGEMENT_URL, so the provisioner sends it the Management API key
        "edc.management.endpoint": provider.management_url,
    }
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


def _publish(provider: EdcConnector, provisioner: RunningProvisioner) -> None:
    client = OfferingClient(provider.management_url, api_key=API_KEY, timeout_seconds=10)
    try:
        report = publish(client, provisioner.services.catalog, offer_target(provisioner.settings))
    finally:
        client.close()
    assert report.ok, report.problems


@pytest.mark.parametrize(
    "legacy_world", [{"edc_callback_api_key": "not-the-key-of-this-edc"}], indirect=True
)
def test_a_refused_callback_key_fails_the_grant_and_ends_the_transfer_in_edc(
    legacy_world: tuple[EdcConnector, EdcConnector, RunningProvisioner],
) -> None:
    provider, consumer, provisioner = legacy_world
    _publish(provider, provisioner)
    purchase = buy(consumer, provider, "echo")
    transfer = wait_for(lambda: provider_transfer(provider, purchase.transfer_id), "transfer")
    grant = provisioner.wait_for_grant(transfer["@id"], {"failed"}, 60)
    assert "EDC refused the callback's credentials (401" in grant["lastError"]
    ended = wait_for(
        lambda: (
            (t := provider_transfer(provider, purchase.transfer_id))
            and t["state"] in {"TERMINATED", "DEPROVISIONED"}
            and t
        ),
        "the transfer ended",
    )
    assert "the provisioner gave up" in ended.get("errorDetail", ""), ended
    provisioner.assert_nothing_left("consumer")
