"""The stand-in's pure parts against the reference's verified samples (§1.4, §2.4, §2.9, §3.1)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from workflow_testkit.edc_standin import wire
from workflow_testkit.edc_standin.entities import (
    ContractAgreement,
    ProvisionedResource,
    TransferProcess,
)
from workflow_testkit.edc_standin.policy import (
    contract_agreement_offset,
    in_force_date,
    instant,
    open_policy,
    use_permission,
    valid_for,
    valid_until,
)

# Reference §1.4, verified Jackson output (policy scope transfer.process).
REFERENCE_LEGACY_REQUEST = """
{"assetId":"workflow-asset","transferProcessId":"tp-1",
 "policy":{"permissions":[{"edctype":"dataspaceconnector:permission",
     "action":{"type":"http://www.w3.org/ns/odrl/2/use","includedIn":null,"constraint":null},
     "constraints":[{"edctype":"AndConstraint","constraints":[
        {"edctype":"AtomicConstraint",
         "leftExpression":{"edctype":"dataspaceconnector:literalexpression","value":"https://w3id.org/edc/v0.0.1/ns/inForceDate"},
         "rightExpression":{"edctype":"dataspaceconnector:literalexpression","value":"contractAgreement+0s"},"operator":"GEQ"},
        {"edctype":"AtomicConstraint",
         "leftExpression":{"edctype":"dataspaceconnector:literalexpression","value":"https://w3id.org/edc/v0.0.1/ns/inForceDate"},
         "rightExpression":{"edctype":"dataspaceconnector:literalexpression","value":"contractAgreement+30d"},"operator":"LEQ"}]}],
     "duties":[]}],
   "prohibitions":[],"obligations":[],"profiles":[],"extensibleProperties":{},"inheritsFrom":null,
   "assigner":"provider","assignee":"consumer","target":"workflow-asset","@type":{"@policytype":"contract"}},
 "callbackAddress":"http://localhost:8181/api/management/callback","type":"provision","resourceDefinitionId":"rd-1"}
"""
# Reference §1.4, verified shape with the default scope http.provisioner.
REFERENCE_FILTERED_POLICY = """
{"permissions":[],"prohibitions":[],"obligations":[],"profiles":[],"extensibleProperties":{},
 "inheritsFrom":null,"assigner":"provider","assignee":"consumer","target":"workflow-asset",
 "@type":{"@policytype":"contract"}}
"""
# Reference §2.9 (policy @id is random per response; agreementId shortened). The reference sample
# omits the @context that compaction adds to every response (its transfer-process sample has it).
REFERENCE_AGREEMENT = """
{"@id":"ca-1","@type":"ContractAgreement","assetId":"workflow-asset","agreementId":"3c0","contractSigningDate":1750000000,
 "consumerId":"consumer","providerId":"provider",
 "policy":{"@id":"…","@type":"odrl:Agreement",
   "odrl:permission":{"odrl:action":{"@id":"odrl:use"},
      "odrl:constraint":{"odrl:and":[{"odrl:leftOperand":{"@id":"edc:inForceDate"},"odrl:operator":{"@id":"odrl:gteq"},"odrl:rightOperand":"contractAgreement+0s"},
                                     {"odrl:leftOperand":{"@id":"edc:inForceDate"},"odrl:operator":{"@id":"odrl:lteq"},"odrl:rightOperand":"contractAgreement+30d"}]}},
   "odrl:prohibition":[],"odrl:obligation":[],"odrl:assignee":"consumer","odrl:assigner":"provider","odrl:target":{"@id":"workflow-asset"}},
 "@context":{"@vocab":"https://w3id.org/edc/v0.0.1/ns/","edc":"https://w3id.org/edc/v0.0.1/ns/","odrl":"http://www.w3.org/ns/odrl/2/"}}
"""


def agreement(**overrides: object) -> ContractAgreement:
    values: dict[str, object] = {
        "id": "ca-1",
        "asset_id": "workflow-asset",
        "agreement_id": "3c0",
        "consumer_id": "consumer",
        "provider_id": "provider",
        "contract_signing_date": 1750000000,
        "policy": valid_for("30d"),
    }
    return ContractAgreement(**{**values, **overrides})  # type: ignore[arg-type]


def process() -> TransferProcess:
    return TransferProcess(
        id="tp-1",
        asset_id="workflow-asset",
        contract_id="ca-1",
        correlation_id="consumer-tp-9",
        resource_definition_id="rd-1",
    )


MANAGEMENT = "http://localhost:8181/api/management"


def test_legacy_provision_request_with_transfer_process_scope_is_the_verified_jackson_output() -> (
    None
):
    body = wire.legacy_provision_request(
        process(), agreement(), management_url=MANAGEMENT, policy_scope="transfer.process"
    )
    assert body == json.loads(REFERENCE_LEGACY_REQUEST)
    assert list(body) == list(json.loads(REFERENCE_LEGACY_REQUEST))


def test_legacy_provision_request_with_default_scope_has_no_permissions() -> None:
    body = wire.legacy_provision_request(process(), agreement(), management_url=MANAGEMENT)
    assert body["policy"] == json.loads(REFERENCE_FILTERED_POLICY)


@pytest.mark.parametrize(
    ("scope", "bound"),
    [
        ("transfer.process", True),
        ("transfer.process.workflow", True),
        ("policy.monitor", True),
        ("http.provisioner", False),
        ("transfer.processes", False),
        ("transfer", False),
    ],
)
def test_scope_binding_is_prefix_based(scope: str, bound: bool) -> None:
    assert wire.scope_is_bound(scope) is bound


def test_legacy_deprovision_request_sends_the_unfiltered_policy_and_the_callbacks_asset_id() -> (
    None
):
    resource = ProvisionedResource("pr-1", "rd-1", "asset-from-callback", "wf", False, {}, "x")
    body = wire.legacy_deprovision_request(
        process(), agreement(), resource, management_url=MANAGEMENT
    )
    expected = json.loads(REFERENCE_LEGACY_REQUEST)
    expected.update(type="deprovision", assetId="asset-from-callback")
    assert body == expected


def test_dataplane_request_is_exactly_the_verified_record() -> None:
    body = wire.dataplane_request(
        "provision",
        provision_resource_id="res-1",
        flow_id="flow-1",
        callback_address="http://localhost:8765/provisioning",
    )
    expected = (
        b'{"type":"provision","provisionResourceId":"res-1","flowId":"flow-1",'
        b'"callbackAddress":"http://localhost:8765/provisioning"}'
    )
    assert wire.encode(body) == expected


def test_transfer_process_json_matches_the_reference_example() -> None:
    tp = process()
    tp.state, tp.state_timestamp = "STARTUP_REQUESTED", 1750000000000
    assert wire.transfer_process_json(tp) == {
        "@id": "tp-1",
        "@type": "TransferProcess",
        "state": "STARTUP_REQUESTED",
        "stateTimestamp": 1750000000000,
        "type": "PROVIDER",
        "callbackAddresses": [],
        "correlationId": "consumer-tp-9",
        "assetId": "workflow-asset",
        "contractId": "ca-1",
        "transferType": "HttpData-PULL",
        "@context": {
            "@vocab": "https://w3id.org/edc/v0.0.1/ns/",
            "edc": "https://w3id.org/edc/v0.0.1/ns/",
            "odrl": "http://www.w3.org/ns/odrl/2/",
        },
    }


def test_contract_agreement_json_matches_the_reference_example() -> None:
    body = wire.contract_agreement_json(agreement(), policy_id="…")
    assert body == json.loads(REFERENCE_AGREEMENT)


def test_policy_id_is_random_per_response_like_edcs_transformer() -> None:
    first = wire.contract_agreement_json(agreement())["policy"]["@id"]
    assert first != wire.contract_agreement_json(agreement())["policy"]["@id"]


def test_permission_array_and_single_constraint_shapes() -> None:
    policy = valid_until(datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC), operator="lt")
    body = wire.contract_agreement_json(agreement(policy=policy), permission_as_array=True)
    assert body["policy"]["odrl:permission"] == [
        {
            "odrl:action": {"@id": "odrl:use"},
            "odrl:constraint": {
                "odrl:leftOperand": {"@id": "edc:inForceDate"},
                "odrl:operator": {"@id": "odrl:lt"},
                "odrl:rightOperand": "2026-12-31T23:59:59Z",
            },
        }
    ]


def test_constraints_side_by_side_compact_to_a_list_and_open_policy_to_an_empty_list() -> None:
    side_by_side = use_permission(
        in_force_date("gteq", "contractAgreement+0s"),
        in_force_date("eq", "contractAgreement+5s"),
        combine="list",
    )
    permission = wire.jsonld_policy(agreement(policy=side_by_side))["odrl:permission"]
    assert [c["odrl:operator"] for c in permission["odrl:constraint"]] == [
        {"@id": "odrl:gteq"},
        {"@id": "odrl:eq"},
    ]
    assert wire.jsonld_policy(agreement(policy=open_policy()))["odrl:permission"] == []


def test_policy_helpers_build_what_the_expiry_check_parses() -> None:
    assert contract_agreement_offset(5, "s") == "contractAgreement+5s"
    assert contract_agreement_offset(-5, "m") == "contractAgreement+-5m"
    assert instant(datetime(2026, 1, 1, 2, tzinfo=timezone(timedelta(hours=2)))) == (
        "2026-01-01T00:00:00Z"
    )
    constraints = valid_for("5s").permissions[0].constraints[0]
    assert [c.right_operand for c in constraints.constraints] == [  # type: ignore[union-attr]
        "contractAgreement+0s",
        "contractAgreement+5s",
    ]
    with pytest.raises(ValueError, match="isPartOf"):
        in_force_date("isPartOf", "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="5ms"):
        valid_for("5ms")
