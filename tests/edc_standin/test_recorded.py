"""The stand-in against what real connectors sent and answered (`recorded/<version>/`, written by
`python -m tests.edc.record_exchanges`): the same requests get answers of the same status and
shape (keys, value types, nesting; ids and timestamps differ), so the stand-in cannot drift."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from provisioner.edc.offering import OfferTarget
from provisioner.edc.publisher import OfferingClient, publish
from provisioner.edc.wire import endpoint_address
from workflow_contracts.asset import load_catalog
from workflow_testkit.edc_standin import RECORDED, wire
from workflow_testkit.edc_standin.fixture import EdcStandIn
from workflow_testkit.edc_standin.policy import in_force_date, use_permission
from workflow_testkit.workflow_api import DUMMY_ASSETS

VERSIONS = ["0.15.1", "0.18.0"]
KEY = "password"
#: In the order they were recorded (later ones depend on earlier ones).
OFFERING_EXCHANGES = [
    "asset_get",
    "asset_query",
    "asset_get_unknown",
    "asset_get_wrong_key",
    "policydefinition_get",
    "policydefinition_get_open",
    "policydefinition_query",
    "contractdefinition_get",
    "contractdefinition_query",
    "asset_create_duplicate",
    "asset_create",
    "asset_update",
    "asset_delete",
    "policydefinition_delete_referenced",
]


def recorded(version: str, name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((RECORDED / version / f"{name}.json").read_text())
    return document


def shape(value: Any) -> Any:
    """Keys and nesting kept; every scalar replaced by its type; `@context` kept as is."""
    if isinstance(value, dict):
        return {k: v if k == "@context" else shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value]
    return type(value).__name__


def test_shape_keeps_structure_and_types_only() -> None:
    assert shape({"a": [1, {"b": "x"}], "@context": {"k": "v"}}) == {
        "a": ["int", {"b": "str"}],
        "@context": {"k": "v"},
    }
    assert shape({"a": 1}) != shape({"a": "1"})
    assert shape({"a": [1]}) != shape({"a": 1})


def _replay(standin: EdcStandIn, name: str, version: str) -> None:
    record = recorded(version, name)
    request = record["request"]
    key = "wrong" if name.endswith("_wrong_key") else KEY
    answer = httpx.request(
        request["method"],
        f"{standin.base_url}/management{request['path']}",
        json=request["body"],
        headers={"x-api-key": key},
        timeout=10,
    )
    assert answer.status_code == record["status"], (name, answer.text)
    body = answer.json() if answer.content else None
    if name.endswith("_query"):  # EDC's in-memory stores answer in hash order, not ours
        assert _sorted_shapes(body) == _sorted_shapes(record["body"]), name
    else:
        assert shape(body) == shape(record["body"]), name


def _sorted_shapes(items: list[Any]) -> list[str]:
    return sorted(json.dumps(shape(item), sort_keys=True) for item in items)


@pytest.mark.parametrize("version", VERSIONS)
def test_offering_answers_have_the_recorded_shapes(edc_standin: EdcStandIn, version: str) -> None:
    world = edc_standin.world
    world.edc_version, world.management_api_key = version, KEY
    flavour = "legacy" if version == "0.15.1" else "dataplane"
    client = OfferingClient(f"{edc_standin.base_url}/management", api_key=KEY, timeout_seconds=10)
    try:
        target = OfferTarget(flavour=flavour, public_url="http://127.0.0.1:9")
        report = publish(client, load_catalog(DUMMY_ASSETS), target)
        assert report.ok, report.problems
        again = publish(client, load_catalog(DUMMY_ASSETS), target)
        assert {change.action for change in again.changes} == {"keep"}
    finally:
        client.close()
    for name in OFFERING_EXCHANGES:
        _replay(edc_standin, name, version)


@pytest.mark.parametrize("version", VERSIONS)
def test_transfer_and_agreement_answers_have_the_recorded_shapes(
    edc_standin: EdcStandIn, version: str
) -> None:
    world = edc_standin.world
    world.edc_version = version
    policy = use_permission(in_force_date("lteq", "contractAgreement+30d"))
    process = world.new_transfer(asset_id="echo", policy=policy)
    base = f"{edc_standin.base_url}/management/v3"

    def get(path: str) -> httpx.Response:
        return httpx.get(f"{base}/{path}", timeout=10)

    agreement = get(f"contractagreements/{process.contract_id}")
    assert shape(agreement.json()) == shape(recorded(version, "contractagreement_get")["body"])
    for name, path in [
        ("transferprocess_get_unknown", "transferprocesses/no-such-process"),
        ("contractagreement_get_unknown", "contractagreements/no-such-agreement"),
    ]:
        answer = get(path)
        assert answer.status_code == 404
        assert shape(answer.json()) == shape(recorded(version, name)["body"])
    if version == "0.15.1":
        process.transition("PROVISIONING_REQUESTED")
        tp = get(f"transferprocesses/{process.id}").json()
        assert shape(tp) == shape(recorded(version, "transferprocess_get")["body"])
        return
    world.assets["echo"].data_address = {"type": "ProvisionHttp", "baseUrl": "http://127.0.0.1:9"}
    flow = world.add_data_flow(process.id)
    tp = get(f"transferprocesses/{process.id}").json()
    assert shape(tp) == shape(recorded(version, "transferprocess_get")["body"])
    resource = next(iter(flow.resources.values()))
    resource.data_address = endpoint_address("http://127.0.0.1:9/api/", "token")["properties"]
    process.transition("STARTED")
    tp = get(f"transferprocesses/{process.id}").json()
    after = recorded(version, "transferprocess_get_after_callback")["body"]
    assert shape(tp) == shape(after)


@pytest.mark.parametrize("version", VERSIONS)
def test_provision_requests_carry_the_recorded_headers_and_fields(version: str) -> None:
    sent = recorded(version, "provision_request")
    headers = {k: v for k, v in sent["headers"].items() if k != "content-length"}
    assert headers == wire.REQUEST_HEADERS
    body = sent["body"]
    if version == "0.18.0":
        ours = wire.dataplane_request(
            "provision", provision_resource_id="r", flow_id="f", callback_address="http://x"
        )
        assert list(ours) == list(body), "same fields in the same order"
        return
    assert set(body) == {
        "assetId",
        "transferProcessId",
        "policy",
        "callbackAddress",
        "type",
        "resourceDefinitionId",
    }
    assert body["policy"]["@type"] == {"@policytype": "contract"}
    constraint = body["policy"]["permissions"][0]["constraints"][0]
    assert constraint["operator"] == "LEQ"
    assert constraint["rightExpression"]["value"] == "contractAgreement+30d"
