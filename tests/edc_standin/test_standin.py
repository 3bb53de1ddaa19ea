"""The stand-in's Management API and legacy callbacks answer like EDC (reference §1.6-§1.8,
§2.9)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from workflow_testkit.edc_standin.model import World
from workflow_testkit.edc_standin.samples import NS, callback_body, errors, provisioning_requested

# -- Management API -----------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["0.15.1", "0.18.0"])
def test_transfer_process_lookup_has_the_compacted_shape(
    world: World, client: httpx.Client, version: str
) -> None:
    world.edc_version = version
    process = world.new_transfer(transfer_process_id="tp-1")
    body = client.get("/management/v3/transferprocesses/tp-1").json()
    context = {"@vocab": NS, "edc": NS, "odrl": "http://www.w3.org/ns/odrl/2/"}
    if version == "0.15.1":
        assert body["@context"] == context
        assert body["@type"] == "TransferProcess"
    else:  # recorded/0.18.0/transferprocess_get.json
        assert body["@context"][-1] == context and len(body["@context"]) == 3
        assert body["@type"] == "edc:TransferProcess"
        assert body["dataplaneMetadata"] == {"@type": "DataplaneMetadata"}
    assert body["@id"] == "tp-1"
    assert body["type"] == "PROVIDER"
    assert body["contractId"] == process.contract_id
    assert body["correlationId"] == process.correlation_id
    assert body["transferType"] == "HttpData-PULL"
    assert isinstance(body["stateTimestamp"], int)


def test_agreement_lookup_has_epoch_seconds_and_plain_participant_ids(
    world: World, client: httpx.Client
) -> None:
    process = world.new_transfer(consumer_id="c1", signing_date=1750000000)
    body = client.get(f"/management/v3/contractagreements/{process.contract_id}").json()
    assert body["contractSigningDate"] == 1750000000
    assert (body["consumerId"], body["providerId"], body["assetId"]) == (
        "c1",
        "provider",
        "workflow-asset",
    )
    assert body["policy"]["odrl:assignee"] == "c1"
    assert body["policy"]["odrl:permission"]["odrl:constraint"]["odrl:and"][1] == {
        "odrl:leftOperand": {"@id": "edc:inForceDate"},
        "odrl:operator": {"@id": "odrl:lteq"},
        "odrl:rightOperand": "contractAgreement+30d",
    }
    world.permission_as_array = True
    body = client.get(f"/management/v3/contractagreements/{process.contract_id}").json()
    assert isinstance(body["policy"]["odrl:permission"], list)


@pytest.mark.parametrize(
    ("path", "entity"),
    [
        ("transferprocesses/nope", "TransferProcess"),
        ("contractagreements/nope", "ContractAgreement"),
    ],
)
def test_unknown_ids_are_404_with_edcs_error_list(
    client: httpx.Client, path: str, entity: str
) -> None:
    response = client.get(f"/management/v3/{path}")
    assert response.status_code == 404
    assert response.json() == [
        {
            "message": f"Object of type {entity} with ID=nope was not found",
            "type": "ObjectNotFound",
            "path": None,
            "invalidValue": None,
        }
    ]


def test_api_key_is_enforced_on_the_whole_management_context(
    world: World, client: httpx.Client
) -> None:
    world.management_api_key = "Secret"
    provisioning_requested(world)
    url = "/management/v3/transferprocesses/tp-1"
    missing = client.get(url)
    assert missing.status_code == 401
    assert errors(missing) == [("AuthenticationFailed", "x-api-key not found")]
    wrong = client.get(url, headers={"X-Api-Key": "other"})
    assert errors(wrong) == [("AuthenticationFailed", "Request could not be authenticated")]
    assert client.get(url, headers={"X-API-KEY": "secret"}).status_code == 200  # case-insensitive
    callback = client.post("/management/callback/tp-1/provision", json=callback_body())
    assert callback.status_code == 401
    assert world.transfer_processes["tp-1"].state == "PROVISIONING_REQUESTED"
    headers = {"x-api-key": "Secret"}
    assert (
        client.post(
            "/management/callback/tp-1/provision", json=callback_body(), headers=headers
        ).status_code
        == 204
    )


def test_management_outage_and_transient_lookup_failures(
    world: World, client: httpx.Client
) -> None:
    world.new_transfer(transfer_process_id="tp-1")
    url = "/management/v3/transferprocesses/tp-1"
    world.fail_next_lookups(2, status=503)
    assert [client.get(url).status_code for _ in range(3)] == [503, 503, 200]
    world.management_outage = 503
    assert client.get(url).status_code == 503
    assert (
        client.post(
            "/management/callback/tp-1/deprovision", json={"provisionedResourceId": "x"}
        ).status_code
        != 503
    )
    world.management_outage = None
    assert client.get(url).status_code == 200


def test_terminate_records_the_reason_and_refuses_finished_processes(
    world: World, client: httpx.Client
) -> None:
    process = world.new_transfer(transfer_process_id="tp-1")
    body = {"@context": {"@vocab": NS}, "@type": "TerminateTransfer", "reason": "expired"}
    url = "/management/v3/transferprocesses/tp-1/terminate"
    assert client.post(url, json=body).status_code == 204
    assert (process.state, process.terminations) == ("TERMINATING", ["expired"])
    no_context = client.post(url, json={"reason": "x"})  # JSON-LD expansion drops the key
    assert no_context.status_code == 400
    assert errors(no_context)[0][0] == "ValidationFailure"
    process.transition("DEPROVISIONED")
    conflict = client.post(url, json=body)
    assert conflict.status_code == 409
    assert errors(conflict)[0][0] == "ObjectConflict"
    assert (
        client.post("/management/v3/transferprocesses/nope/terminate", json=body).status_code == 404
    )


# -- legacy provision callback ------------------------------------------------------------------


def test_valid_provision_callback_provisions_and_stores_the_address(
    world: World, client: httpx.Client
) -> None:
    process = provisioning_requested(world)
    response = client.post("/management/callback/tp-1/provision", json=callback_body())
    assert (response.status_code, response.content) == (204, b"")
    assert process.state == "PROVISIONED"
    assert process.content_property("baseUrl") == "http://p/details?c=1"
    assert process.content_property("keyName") == "wf-api-tp-1"  # EDC sets it to resourceName
    assert world.rejected_callbacks() == []


@pytest.mark.parametrize("edctype", [..., None, "dataspaceconnector:provisioner-callback"])
def test_callback_without_the_edctype_is_400(
    world: World, client: httpx.Client, edctype: Any
) -> None:
    process = provisioning_requested(world)
    response = client.post(
        "/management/callback/tp-1/provision", json=callback_body(edctype=edctype)
    )
    assert response.status_code == 400
    assert process.state == "PROVISIONING_REQUESTED"
    assert world.rejected_callbacks()[0].status == 400


@pytest.mark.parametrize(
    "field", ["resourceDefinitionId", "assetId", "resourceName", "contentDataAddress", "apiKeyJwt"]
)
def test_null_required_field_is_a_validation_failure(
    world: World, client: httpx.Client, field: str
) -> None:
    provisioning_requested(world)
    response = client.post(
        "/management/callback/tp-1/provision", json=callback_body(**{field: None})
    )
    assert response.status_code == 400
    assert response.json() == [
        {
            "message": f"{field} cannot be null",
            "type": "ValidationFailure",
            "path": field,
            "invalidValue": None,
        }
    ]


def test_flat_content_address_is_accepted_but_keeps_only_the_type(
    world: World, client: httpx.Client
) -> None:
    process = provisioning_requested(world)
    flat = {"type": "HttpData", "baseUrl": "http://p/details"}
    response = client.post(
        "/management/callback/tp-1/provision", json=callback_body(contentDataAddress=flat)
    )
    assert response.status_code == 204
    assert process.state == "PROVISIONED"
    assert process.content_property("type") == "HttpData"
    assert process.content_property("baseUrl") is None
    assert process.content_data_address == {NS + "type": "HttpData", NS + "keyName": "wf-api-tp-1"}


@pytest.mark.parametrize(
    "address",
    [
        {"properties": {NS + "type": "HttpData"}, "keyName": None},
        {"properties": {NS + "baseUrl": "http://p"}},
        {"baseUrl": "http://p"},
        {"properties": "HttpData"},
        "HttpData",
    ],
    ids=[
        "keyName-null",
        "properties-without-type",
        "flat-without-type",
        "properties-not-object",
        "string",
    ],
)
def test_unreadable_content_address_is_400(
    world: World, client: httpx.Client, address: Any
) -> None:
    process = provisioning_requested(world)
    response = client.post(
        "/management/callback/tp-1/provision", json=callback_body(contentDataAddress=address)
    )
    assert response.status_code == 400
    assert process.state == "PROVISIONING_REQUESTED"


def test_short_type_key_inside_properties_is_stored_under_the_edc_iri(
    world: World, client: httpx.Client
) -> None:
    process = provisioning_requested(world)
    address = {"properties": {"type": "HttpData", "baseUrl": "http://p"}}
    assert (
        client.post(
            "/management/callback/tp-1/provision", json=callback_body(contentDataAddress=address)
        ).status_code
        == 204
    )
    assert process.content_data_address == {
        NS + "type": "HttpData",
        "baseUrl": "http://p",
        NS + "keyName": "wf-api-tp-1",
    }
    assert process.content_property("baseUrl") == "http://p"


def test_wrong_resource_definition_id_is_204_but_never_provisions(
    world: World, client: httpx.Client
) -> None:
    process = provisioning_requested(world)
    body = callback_body(resourceDefinitionId="rd-other")
    assert client.post("/management/callback/tp-1/provision", json=body).status_code == 204
    assert process.state == "PROVISIONING_REQUESTED"
    assert "rd-other" in world.protocol_violations[0]


def test_unknown_process_is_404(client: httpx.Client) -> None:
    response = client.post("/management/callback/nope/provision", json=callback_body())
    assert response.status_code == 404
    assert errors(response) == [
        ("ObjectNotFound", "Object of type TransferProcess with ID=nope was not found")
    ]


@pytest.mark.parametrize("state", ["STARTED", "TERMINATING", "DEPROVISIONED"])
def test_callback_past_provisioned_is_409(world: World, client: httpx.Client, state: str) -> None:
    provisioning_requested(world).transition(state)
    response = client.post("/management/callback/tp-1/provision", json=callback_body())
    assert response.status_code == 409
    assert errors(response)[0][0] == "ObjectConflict"


def test_callback_during_the_lease_is_409_then_204_after_it(
    world: World, client: httpx.Client
) -> None:
    process = provisioning_requested(world)
    world.lease_seconds = 0.2
    process.lease.until = time.monotonic() + world.lease_seconds
    assert (
        client.post("/management/callback/tp-1/provision", json=callback_body()).status_code == 409
    )
    assert process.state == "PROVISIONING_REQUESTED"
    time.sleep(0.25)
    assert (
        client.post("/management/callback/tp-1/provision", json=callback_body()).status_code == 204
    )
    assert [e.status for e in world.callbacks("tp-1", "provision")] == [409, 204]
    assert world.rejected_callbacks() == []


def test_wrong_content_type_is_415_and_an_empty_body_is_500(
    world: World, client: httpx.Client
) -> None:
    provisioning_requested(world)
    url = "/management/callback/tp-1/provision"
    assert (
        client.post(url, content=b"{}", headers={"content-type": "text/plain"}).status_code == 415
    )
    assert (
        client.post(url, content=b"", headers={"content-type": "application/json"}).status_code
        == 500
    )
    assert (
        client.post(
            url, content=b"{not json", headers={"content-type": "application/json"}
        ).status_code
        == 400
    )


# -- legacy deprovision callback ----------------------------------------------------------------


def test_deprovision_callback_needs_a_provisioned_resource_id(
    world: World, client: httpx.Client
) -> None:
    process = provisioning_requested(world)
    provision = client.post("/management/callback/tp-1/provision", json=callback_body())
    assert provision.status_code == 204
    url = "/management/callback/tp-1/deprovision"
    missing = client.post(url, json={"inProcess": False})
    assert missing.status_code == 400
    assert errors(missing)[0][0] == "InvalidRequest"
    unknown = {
        "provisionedResourceId": "pr-unknown",
        "inProcess": False,
        "errorMessage": None,
        "error": False,
    }
    assert client.post(url, json=unknown).status_code == 204  # logged and skipped
    assert process.state == "PROVISIONED"
    process.transition("DEPROVISIONING")
    known = {"provisionedResourceId": process.provisioned_resources[0].id}
    assert client.post(url, json=known).status_code == 204
    assert process.state == "DEPROVISIONED"
