"""EDC's deprovision after our own expiry timer, and callbacks EDC refuses for their credentials
(found with the real connectors: EDC 0.18.0's policy monitor sends the data-plane deprovision up to
`edc.policy.monitor.period` after the contract ended, when our timer has revoked the grant
already; EDC 0.15.1's legacy callback lives on the management context and needs `x-api-key`)."""

from __future__ import annotations

from typing import Any

from tests.edc_standin.fixture import EdcStandIn
from tests.edc_standin.policy import valid_for
from tests.provisioner.harness import eventually


def test_deprovision_after_our_expiry_still_gets_its_callback_retried_until_taken(
    provisioner_factory: Any, edc_standin: EdcStandIn
) -> None:
    provisioner = provisioner_factory()
    world, driver = edc_standin.world, edc_standin.driver
    address = {"type": "ProvisionHttp", "baseUrl": provisioner.dataplane_endpoint("echo")}
    process = world.new_transfer(
        asset_id="echo", consumer_id="olga", data_address=address, policy=valid_for("3s")
    )
    flow = world.add_data_flow(process.id)
    assert driver.send_dataplane_provision(process.id).status == 200
    driver.wait_for_callback(process.id, "provision", timeout=30)
    grant = provisioner.wait_for_grant(process.id, {"revoked"}, timeout=30)
    assert grant["revokeReason"] == "the contract expired"

    world.fail_next_callbacks(2, status=503)  # EDC is busy: the callback must be retried
    assert driver.send_dataplane_deprovision(process.id).status == 200
    driver.wait_for_callback(process.id, "deprovision", timeout=30)
    statuses = [c.status for c in world.callbacks(process.id, "deprovision")]
    assert statuses.count(503) == 2 and statuses[-1] == 204
    world.wait_until(
        lambda: all(r.state == "DEPROVISIONED" for r in flow.resources.values()), timeout=5
    )
    assert (provisioner.grant_for(process.id) or {})["state"] == "revoked"


def test_a_second_deprovision_for_the_same_flow_is_answered_with_another_callback(
    provisioner_factory: Any, edc_standin: EdcStandIn
) -> None:
    """EDC re-sends the deprovision when it missed our answer; it then waits for a callback."""
    provisioner = provisioner_factory()
    world, driver = edc_standin.world, edc_standin.driver
    address = {"type": "ProvisionHttp", "baseUrl": provisioner.dataplane_endpoint("echo")}
    process = world.new_transfer(asset_id="echo", consumer_id="pia", data_address=address)
    flow = world.add_data_flow(process.id)
    driver.send_dataplane_provision(process.id)
    driver.wait_for_callback(process.id, "provision", timeout=30)
    assert driver.send_dataplane_deprovision(process.id).status == 200
    driver.wait_for_callback(process.id, "deprovision", timeout=30)
    provisioner.wait_for_grant(process.id, {"revoked"}, timeout=30)
    resource = next(iter(flow.resources.values()))
    with world.lock:
        resource.state = "PROVISIONED"  # as if EDC never saw the first callback's answer
    assert driver.send_dataplane_deprovision(process.id).status == 200
    eventually(
        lambda: (
            len([c for c in world.callbacks(process.id, "deprovision") if c.status == 204]) == 2
        ),
        30,
        "a second deprovision callback",
    )
