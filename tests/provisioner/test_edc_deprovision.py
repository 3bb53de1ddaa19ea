"""EDC's deprovision after our own expiry timer, and callbacks EDC refuses for their credentials
(found with the real connectors: EDC 0.18.0's policy monitor sends the data-plane deprovision up to
`edc.policy.monitor.period` after the contract ended, when our timer has revoked the grant
already; EDC 0.15.1's legacy callback lives on the management context and needs `x-api-key`)."""

from __future__ import annotations

from typing import Any

import httpx

from provisioner.edc.callbacks import CallbackClient
from workflow_testkit.edc_standin.fixture import EdcStandIn
from workflow_testkit.edc_standin.policy import valid_for
from workflow_testkit.polling import poll


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
    grant = provisioner.admin_api.wait_for_grant(process.id, {"revoked"}, timeout=30)
    assert grant["revokeReason"] == "the contract expired"

    driver.terminate(process.id)  # EDC's policy monitor ends the transfer, then deprovisions
    world.fail_next_callbacks(2, status=503)  # EDC is busy: the callback must be retried
    assert driver.send_dataplane_deprovision(process.id).status == 200
    driver.wait_for_callback(process.id, "deprovision", timeout=30)
    statuses = [c.status for c in world.callbacks(process.id, "deprovision")]
    assert statuses.count(503) == 2 and statuses[-1] == 204
    world.wait_until(
        lambda: all(r.state == "DEPROVISIONED" for r in flow.resources.values()), timeout=5
    )
    assert (provisioner.admin_api.grant_for(process.id) or {})["state"] == "revoked"


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
    driver.terminate(process.id)
    assert driver.send_dataplane_deprovision(process.id).status == 200
    driver.wait_for_callback(process.id, "deprovision", timeout=30)
    provisioner.admin_api.wait_for_grant(process.id, {"revoked"}, timeout=30)
    resource = next(iter(flow.resources.values()))
    with world.lock:
        resource.state = "PROVISIONED"  # as if EDC never saw the first callback's answer
    assert driver.send_dataplane_deprovision(process.id).status == 200
    poll(
        lambda: (
            len([c for c in world.callbacks(process.id, "deprovision") if c.status == 204]) == 2
        ),
        30,
        "a second deprovision callback",
    )


MANAGEMENT_KEY = "edc-management-key-for-tests"


def test_legacy_callbacks_carry_the_management_api_key_when_they_go_to_that_api(
    provisioner_factory: Any, edc_standin: EdcStandIn
) -> None:
    world, driver = edc_standin.world, edc_standin.driver
    world.management_api_key = MANAGEMENT_KEY  # EDC 0.15.1: the callback is on this context
    provisioner = provisioner_factory(edc_management_api_key=MANAGEMENT_KEY)
    process = world.new_transfer(asset_id="echo", consumer_id="quinn")
    driver.send_legacy_provision(process.id, endpoint=provisioner.legacy_endpoint)
    callback = driver.wait_for_callback(process.id, "provision", timeout=30)
    assert callback.headers["x-api-key"] == MANAGEMENT_KEY
    assert world.wait_for_state(process.id, "PROVISIONED").state == "PROVISIONED"


def test_data_plane_callbacks_never_get_the_management_api_key(
    provisioner_factory: Any, edc_standin: EdcStandIn
) -> None:
    world, driver = edc_standin.world, edc_standin.driver
    world.management_api_key = MANAGEMENT_KEY
    provisioner = provisioner_factory(edc_management_api_key=MANAGEMENT_KEY)
    address = {"type": "ProvisionHttp", "baseUrl": provisioner.dataplane_endpoint("echo")}
    process = world.new_transfer(asset_id="echo", consumer_id="ruth", data_address=address)
    world.add_data_flow(process.id)
    driver.send_dataplane_provision(process.id)
    callback = driver.wait_for_callback(process.id, "provision", timeout=30)
    assert "x-api-key" not in callback.headers, "the provision context is another service"


def test_a_callback_refused_for_its_credentials_fails_at_once_visibly_and_ends_the_transfer(
    provisioner_factory: Any, edc_standin: EdcStandIn
) -> None:
    world, driver = edc_standin.world, edc_standin.driver
    world.management_api_key = MANAGEMENT_KEY
    provisioner = provisioner_factory(
        edc_management_api_key=MANAGEMENT_KEY,
        edc_callback_api_key="a-key-that-edc-does-not-know",
        callback_deadline_seconds=600,  # a 401 must not wait for the deadline
    )
    process = world.new_transfer(asset_id="echo", consumer_id="sven")
    driver.send_legacy_provision(process.id, endpoint=provisioner.legacy_endpoint)
    grant = provisioner.admin_api.wait_for_grant(process.id, {"failed"}, timeout=30)
    assert "401" in grant["lastError"] and "PROVISIONER_EDC_CALLBACK_API_KEY" in grant["lastError"]
    attempts = world.callbacks(process.id, "provision")
    assert [c.status for c in attempts] == [401], "a 401 is permanent: not retried"
    assert world.transfer_processes[process.id].state == "TERMINATING", "EDC is not left waiting"
    assert "gave up" in world.transfer_processes[process.id].terminations[0]
    metrics = httpx.get(f"{provisioner.base_url}/metrics").text
    assert (
        'provisioner_callback_unauthorized_total{flavour="legacy",kind="provision"} 1.0' in metrics
    )
    provisioner.admin_api.assert_nothing_left("sven")


def test_the_management_api_key_goes_only_to_urls_under_the_management_api() -> None:
    client = CallbackClient(
        api_key=None,
        timeout_seconds=1,
        management_url="http://127.0.0.1:19193/management",
        management_api_key="k",
    )
    try:
        assert client.key_for("http://127.0.0.1:19193/management/callback/tp/provision") == "k"
        assert client.key_for("http://127.0.0.1:19193/management-evil/callback") is None
        assert client.key_for("http://127.0.0.1:19195/provisioning/f/r/provision") is None
        assert client.key_for("http://127.0.0.2:19193/management/callback") is None
    finally:
        client.close()
    explicit = CallbackClient(api_key="c", timeout_seconds=1, management_api_key="k")
    assert explicit.key_for("http://127.0.0.1:1/anything") == "c"
    explicit.close()
