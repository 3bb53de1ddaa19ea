"""Publishing against the stand-in EDC: on start-up, then a transfer of the published asset."""

from __future__ import annotations

from typing import Any

from provisioner.edc.offering import MANAGED_BY
from tests.edc_standin.fixture import EdcStandIn
from tests.provisioner.harness import eventually


def test_published_on_startup_and_the_published_asset_provisions(
    provisioner_factory: Any, edc_standin: EdcStandIn
) -> None:
    world, driver = edc_standin.world, edc_standin.driver
    world.fail_next_lookups(2, status=503)  # EDC still starting: the publisher retries
    provisioner = provisioner_factory(edc_publish_on_startup=True)
    echo = eventually(lambda: world.assets.get("echo"), 30, "echo published")
    assert echo.data_address == {
        "type": "ProvisionHttp",
        "baseUrl": provisioner.dataplane_endpoint("echo"),
    }
    assert echo.private_properties[MANAGED_BY] == "workflow-provisioner"
    eventually(lambda: "echo-offer" in world.contract_definitions, 30, "the offer")
    offer = world.contract_definitions["echo-offer"]
    assert (offer.access_policy_id, offer.contract_policy_id) == (
        "echo-access-policy",
        "echo-contract-policy",
    )
    publisher = provisioner.services.publisher
    assert publisher is not None
    eventually(lambda: publisher.report is not None, 30, "the report")
    assert publisher.error is None

    agreement = world.add_agreement("echo", consumer_id="tom")
    process = world.add_transfer_process(agreement.id)
    world.add_data_flow(process.id)  # EDC POSTs to the published asset's baseUrl
    assert driver.send_dataplane_provision(process.id).status == 200
    driver.wait_for_callback(process.id, "provision", timeout=30)
