"""The stand-in's data-plane callbacks (reference §2.6), failure injection and records."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from workflow_testkit.edc_standin.model import World
from workflow_testkit.edc_standin.samples import NS, callback_body, errors, provisioning_requested

# -- data-plane callbacks -----------------------------------------------------------------------


def data_flow(world: World) -> tuple[str, str]:
    world.new_transfer(
        transfer_process_id="flow-1",
        data_address={
            "type": "ProvisionHttp",
            "baseUrl": "http://provisioner/provision?asset=wf-1",
        },
    )
    flow = world.add_data_flow("flow-1", resource_ids=["res-1"])
    flow.resources["res-1"].state = "PROVISION_REQUESTED"
    return "flow-1", "res-1"


DATAPLANE_ADDRESS = {
    "properties": {
        NS + "type": "https://w3id.org/idsa/v4.1/HTTP",
        NS + "endpoint": "https://wf.example.org/workflowapi/7f3c/",
        NS + "authorization": "token",
    }
}


def test_dataplane_provision_callback_stores_the_address(
    world: World, client: httpx.Client
) -> None:
    flow_id, resource_id = data_flow(world)
    response = client.post(
        f"/provisioning/{flow_id}/{resource_id}/provision", json={"dataAddress": DATAPLANE_ADDRESS}
    )
    assert response.status_code == 204
    flow = world.data_flows[flow_id]
    assert flow.resources[resource_id].state == "PROVISIONED"
    assert flow.state == "PROVISION_NOTIFYING"
    assert flow.provisioned_data_address() == DATAPLANE_ADDRESS["properties"]
    assert world.callbacks(flow_id, "provision", "dataplane")[0].resource_id == resource_id


@pytest.mark.parametrize(
    ("body", "status", "stored"),
    [
        ({}, 204, None),
        ({"dataAddress": None}, 204, None),
        (
            {"dataAddress": {"type": "HttpData", "baseUrl": "http://p"}},
            204,
            {NS + "type": "HttpData"},
        ),
        ({"dataAddress": {"properties": {NS + "baseUrl": "http://p"}}}, 400, None),
        ({"dataAddress": {"properties": {"type": "HttpData"}, "keyName": None}}, 400, None),
    ],
    ids=[
        "empty-object",
        "null-address",
        "flat-keeps-type",
        "properties-without-type",
        "keyName-null",
    ],
)
def test_dataplane_provision_body_rules(
    world: World, client: httpx.Client, body: Any, status: int, stored: Any
) -> None:
    flow_id, resource_id = data_flow(world)
    response = client.post(f"/provisioning/{flow_id}/{resource_id}/provision", json=body)
    assert response.status_code == status
    resource = world.data_flows[flow_id].resources[resource_id]
    assert resource.state == ("PROVISIONED" if status == 204 else "PROVISION_REQUESTED")
    assert resource.data_address == stored


def test_dataplane_unknown_flow_is_404_and_unknown_resource_is_ignored(
    world: World, client: httpx.Client
) -> None:
    flow_id, _ = data_flow(world)
    response = client.post("/provisioning/nope/res-1/provision", json={})
    assert response.status_code == 404
    assert errors(response) == [
        ("ObjectNotFound", "Object of type DataFlow with ID=nope was not found")
    ]
    assert client.post(f"/provisioning/{flow_id}/other/provision", json={}).status_code == 204
    assert world.data_flows[flow_id].state == "PROVISIONING"


def test_dataplane_deprovision_ignores_the_body(world: World, client: httpx.Client) -> None:
    flow_id, resource_id = data_flow(world)
    world.data_flows[flow_id].resources[resource_id].state = "DEPROVISION_REQUESTED"
    response = client.post(
        f"/provisioning/{flow_id}/{resource_id}/deprovision", content=b"whatever"
    )
    assert response.status_code == 204
    assert world.data_flows[flow_id].state == "DEPROVISIONED"


def test_dataplane_callback_during_the_lease_is_409(world: World, client: httpx.Client) -> None:
    flow_id, resource_id = data_flow(world)
    world.data_flows[flow_id].lease.held = True
    assert (
        client.post(f"/provisioning/{flow_id}/{resource_id}/provision", json={}).status_code == 409
    )
    world.data_flows[flow_id].lease.held = False
    assert (
        client.post(f"/provisioning/{flow_id}/{resource_id}/provision", json={}).status_code == 204
    )


def test_provisioning_context_has_its_own_api_key(world: World, client: httpx.Client) -> None:
    flow_id, resource_id = data_flow(world)
    world.management_api_key = "management-only"
    assert (
        client.post(f"/provisioning/{flow_id}/{resource_id}/provision", json={}).status_code == 204
    )
    world.provisioning_api_key = "p"
    url = f"/provisioning/{flow_id}/{resource_id}/deprovision"
    assert client.post(url).status_code == 401
    assert client.post(url, headers={"x-api-key": "p"}).status_code == 204


# -- failure injection and records --------------------------------------------------------------


def test_injected_statuses_are_answered_without_processing(
    world: World, client: httpx.Client
) -> None:
    process = provisioning_requested(world)
    world.fail_next_callbacks(2, status=503)
    statuses = [
        client.post("/management/callback/tp-1/provision", json=callback_body()).status_code
        for _ in range(2)
    ]
    assert statuses == [503, 503]
    assert process.state == "PROVISIONING_REQUESTED"
    assert (
        client.post("/management/callback/tp-1/provision", json=callback_body()).status_code == 204
    )
    world.delay_next_callbacks(seconds=0.05)
    assert (
        client.post("/management/callback/tp-1/provision", json=callback_body()).status_code == 204
    )
    assert [e.fault for e in world.callbacks("tp-1")] == ["status", "status", None, "delay"]


@pytest.mark.parametrize("after_processing", [False, True])
def test_dropped_connections(world: World, client: httpx.Client, after_processing: bool) -> None:
    process = provisioning_requested(world)
    world.drop_next_callbacks(after_processing=after_processing)
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/management/callback/tp-1/provision", json=callback_body())
    assert process.state == ("PROVISIONED" if after_processing else "PROVISIONING_REQUESTED")
    exchange = world.callbacks("tp-1")[0]
    assert exchange.status is None
    assert exchange.fault == ("drop-after-processing" if after_processing else "drop")


def test_everything_received_is_recorded_in_order(world: World, client: httpx.Client) -> None:
    provisioning_requested(world)
    client.get("/management/v3/transferprocesses/tp-1", headers={"x-api-key": "k"})
    client.post("/management/callback/tp-1/provision?x=1", json=callback_body())
    client.get("/elsewhere")
    first, second, third = world.exchanges
    assert (first.method, first.path, first.status, first.channel) == (
        "GET",
        "/management/v3/transferprocesses/tp-1",
        200,
        "management",
    )
    assert first.headers["x-api-key"] == "k"
    assert (second.body, second.query, second.status) == (callback_body(), "x=1", 204)
    assert (second.flavour, second.kind, second.entity_id) == ("legacy", "provision", "tp-1")
    assert (third.channel, third.status) == ("other", 404)
