"""Publishing against the stand-in EDC: on start-up, then a transfer of the published asset."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from provisioner.edc.offering import MANAGED_BY, OfferTarget
from provisioner.edc.publisher import (
    ManagementRefusedError,
    ManagementUnavailableError,
    OfferingClient,
    publish,
)
from provisioner.settings import Settings
from workflow_contracts.asset import load_catalog
from workflow_testkit.edc_standin.fixture import EdcStandIn
from workflow_testkit.polling import poll
from workflow_testkit.workflow_api import DUMMY_ASSETS


def test_published_on_startup_and_the_published_asset_provisions(
    provisioner_factory: Any, edc_standin: EdcStandIn
) -> None:
    world, driver = edc_standin.world, edc_standin.driver
    world.fail_next_lookups(2, status=503)  # EDC still starting: the publisher retries
    provisioner = provisioner_factory(edc_publish_on_startup=True)
    echo = poll(lambda: world.assets.get("echo"), 30, "echo published")
    assert echo.data_address == {
        "type": "ProvisionHttp",
        "baseUrl": provisioner.dataplane_endpoint("echo"),
    }
    assert echo.private_properties[MANAGED_BY] == "workflow-provisioner"
    poll(lambda: "echo-offer" in world.contract_definitions, 30, "the offer")
    offer = world.contract_definitions["echo-offer"]
    assert (offer.access_policy_id, offer.contract_policy_id) == (
        "echo-access-policy",
        "echo-contract-policy",
    )
    publisher = provisioner.services.publisher
    assert publisher is not None
    poll(lambda: publisher.report is not None, 30, "the report")
    assert publisher.error is None
    status = provisioner.admin.get("/admin/offering").json()
    assert status["publishOnStartup"] and status["published"] and status["error"] is None
    assert "create asset echo" in status["changes"]

    agreement = world.add_agreement("echo", consumer_id="tom")
    process = world.add_transfer_process(agreement.id)
    world.add_data_flow(process.id)  # EDC POSTs to the published asset's baseUrl
    assert driver.send_dataplane_provision(process.id).status == 200
    driver.wait_for_callback(process.id, "provision", timeout=30)


def test_an_asset_an_agreement_names_is_kept_but_its_offer_withdrawn(
    edc_standin: EdcStandIn,
) -> None:
    world = edc_standin.world
    target = OfferTarget(flavour="dataplane", public_url="http://127.0.0.1:9")
    catalog = load_catalog(DUMMY_ASSETS)
    client = OfferingClient(edc_standin.management_url, api_key=None, timeout_seconds=5)
    try:
        assert publish(client, catalog, target).ok
        world.add_agreement("noop")  # a consumer bought it
        without_noop = {k: v for k, v in catalog.items() if k != "noop"}
        report = publish(client, without_noop, target)
        assert report.ok
        assert "noop-offer" not in world.contract_definitions
        assert "noop-contract-policy" not in world.policy_definitions
        assert "noop" in world.assets
        assert any("EDC keeps it" in line and "asset noop" in line for line in report.lines())
        world.agreements.clear()
        again = publish(client, without_noop, target)
        assert [c.id for c in again.changes if c.action == "delete"] == ["noop"]
        assert "noop" not in world.assets
    finally:
        client.close()


def test_publishing_with_a_wrong_management_key_says_which_setting(
    edc_standin: EdcStandIn,
) -> None:
    edc_standin.world.management_api_key = "the-right-key"
    client = OfferingClient(edc_standin.management_url, api_key="wrong", timeout_seconds=5)
    target = OfferTarget(flavour="dataplane", public_url="http://127.0.0.1:9")
    try:
        with pytest.raises(ManagementRefusedError, match="PROVISIONER_EDC_MANAGEMENT_API_KEY"):
            publish(client, load_catalog(DUMMY_ASSETS), target)
    finally:
        client.close()
    assert edc_standin.world.assets == {}


def test_an_unreachable_management_api_is_a_clear_error_after_bounded_retries() -> None:
    client = OfferingClient("http://127.0.0.1:9/management", api_key=None, timeout_seconds=1)
    target = OfferTarget(flavour="dataplane", public_url="http://127.0.0.1:9")
    try:
        with pytest.raises(ManagementUnavailableError, match="unreachable"):
            publish(client, load_catalog(DUMMY_ASSETS), target)
    finally:
        client.close()


def test_settings_refuse_publishing_on_startup_without_a_management_api(tmp_path: Any) -> None:
    base = {
        "public_url": "http://127.0.0.1:8000",
        "data_dir": tmp_path,
        "assets_dir": DUMMY_ASSETS,
        "admin_token": "a" * 40,
        "edc_endpoint_secret": "s" * 32,
    }
    with pytest.raises(ValidationError, match="PROVISIONER_EDC_MANAGEMENT_URL"):
        Settings(**base, edc_publish_on_startup=True)
    with pytest.raises(ValidationError, match="edc_legacy_address_type"):
        Settings(**base, edc_legacy_address_type="not a type")
    assert Settings(**base, edc_flavour="legacy").edc_legacy_address_type == "WorkflowApi"


def test_a_failed_startup_publish_is_shown_in_the_admin_api(
    provisioner_factory: Any, edc_standin: EdcStandIn
) -> None:
    edc_standin.world.management_api_key = "the-key-edc-wants"
    provisioner = provisioner_factory(
        edc_publish_on_startup=True, edc_management_api_key="not-the-key-edc-wants"
    )
    status = poll(
        lambda: (s := provisioner.admin.get("/admin/offering").json())["error"] and s,
        30,
        "the publisher's error",
    )
    assert "refused our key (401)" in status["error"] and not status["published"]
    assert edc_standin.world.assets == {}
