"""The offering's pure parts: what is written for an asset, and the plan against what EDC has."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from provisioner.edc.expiry import agreement_end
from provisioner.edc.offering import (
    CONTENT_HASH,
    MANAGED_BY,
    Existing,
    OfferTarget,
    asset_entities,
    desired_offering,
    plan,
    read_existing,
)
from workflow_contracts.asset import WorkflowAsset, load_catalog
from workflow_testkit.workflow_api import DUMMY_ASSETS

DATAPLANE = OfferTarget(flavour="dataplane", public_url="http://127.0.0.1:8000")
MINIMAL: dict[str, Any] = {"id": "wf", "title": "WF", "execution": {"image": "img:1"}}


def _asset(**changes: Any) -> WorkflowAsset:
    return WorkflowAsset.model_validate({**MINIMAL, **changes})


def test_data_plane_asset_points_edc_at_our_provision_endpoint_with_the_asset_named() -> None:
    asset = asset_entities(_asset(), DATAPLANE)[0]
    assert asset.body["dataAddress"] == {
        "@type": "DataAddress",
        "type": "ProvisionHttp",
        "baseUrl": "http://127.0.0.1:8000/edc/dataplane/provision?asset=wf",
    }
    secret = OfferTarget("dataplane", "http://127.0.0.1:8000", endpoint_secret="s/&t")
    url = asset_entities(_asset(), secret)[0].body["dataAddress"]["baseUrl"]
    assert url.endswith("?asset=wf&secret=s%2F%26t")


def test_legacy_asset_carries_the_configured_address_type_only() -> None:
    legacy = OfferTarget("legacy", "http://127.0.0.1:8000", legacy_address_type="Workflow2")
    assert asset_entities(_asset(), legacy)[0].body["dataAddress"] == {
        "@type": "DataAddress",
        "type": "Workflow2",
    }


@pytest.mark.parametrize(("validity", "days"), [("30d", 30), ("12h", 0.5), (None, None)])
def test_contract_policy_ends_agreements_as_the_asset_file_says(
    validity: str | None, days: float | None
) -> None:
    entities = asset_entities(_asset(contract={"validity": validity}), DATAPLANE)
    contract = next(e for e in entities if e.id == "wf-contract-policy")
    signed = datetime(2026, 1, 1, tzinfo=UTC)
    end = agreement_end(contract.body["policy"], signed)
    assert end == (None if days is None else signed + timedelta(days=days))


@pytest.mark.parametrize("validity", ["0d", "30", "1w", "-5m", "30 d"])
def test_contract_validity_edc_would_not_parse_is_refused_in_the_asset_file(validity: str) -> None:
    with pytest.raises(ValidationError):
        _asset(contract={"validity": validity})


def test_ids_derive_from_the_asset_id_and_the_offer_selects_that_asset() -> None:
    entities = asset_entities(_asset(), DATAPLANE)
    assert [(e.kind, e.id) for e in entities] == [
        ("asset", "wf"),
        ("policy", "wf-access-policy"),
        ("policy", "wf-contract-policy"),
        ("contract", "wf-offer"),
    ]
    offer = entities[3].body
    assert offer["assetsSelector"][0]["operandRight"] == "wf"
    assert all(e.body["privateProperties"][MANAGED_BY] == "workflow-provisioner" for e in entities)


def test_the_hash_changes_with_the_content_and_only_with_it() -> None:
    first = asset_entities(_asset(), DATAPLANE)
    assert [e.digest for e in first] == [e.digest for e in asset_entities(_asset(), DATAPLANE)]
    retitled = asset_entities(_asset(title="Other"), DATAPLANE)
    changed = [a.id for a, b in zip(first, retitled, strict=True) if a.digest != b.digest]
    assert changed == ["wf"]


def _existing(entities: Any, **overrides: Any) -> list[Existing]:
    return [Existing(e.kind, e.id, True, e.digest) for e in entities] + overrides.get("extra", [])


def test_plan_creates_keeps_updates_and_deletes_only_ours_in_dependency_order() -> None:
    desired = desired_offering(load_catalog(DUMMY_ASSETS), DATAPLANE)
    assert {c.action for c in plan(desired, [])} == {"create"}
    assert {c.action for c in plan(desired, _existing(desired))} == {"keep"}

    stale = [Existing(e.kind, e.id, True, "old") for e in desired if e.id.startswith("echo")]
    gone = Existing("asset", "retired", True, "x")
    gone_offer = Existing("contract", "retired-offer", True, "x")
    hand_made = Existing("asset", "hand-made", False, None)
    clash = Existing("policy", "noop-access-policy", False, None)
    changes = plan(desired, [*stale, gone, gone_offer, hand_made, clash])
    actions = {(c.action, c.id) for c in changes}
    assert ("update", "echo") in actions and ("update", "echo-offer") in actions
    assert ("foreign", "noop-access-policy") in actions
    assert not any(c.id == "hand-made" for c in changes), "not ours, not in the catalog: untouched"
    deletions = [c.id for c in changes if c.action == "delete"]
    assert deletions == ["retired-offer", "retired"], "the offer goes before its asset"
    kinds = [c.kind for c in changes if c.action in ("create", "update")]
    assert kinds == sorted(kinds, key=["asset", "policy", "contract"].index)


@pytest.mark.parametrize(
    "private",
    [
        {MANAGED_BY: "workflow-provisioner", CONTENT_HASH: "h"},
        {MANAGED_BY: {"@value": "workflow-provisioner"}, CONTENT_HASH: [{"@value": "h"}]},
    ],
)
def test_markers_are_read_back_in_any_compacted_form(private: dict[str, Any]) -> None:
    item = read_existing("asset", {"@id": "a", "edc:privateProperties": private})
    assert item == Existing("asset", "a", True, "h")


def test_an_entity_without_our_marker_is_not_ours() -> None:
    assert read_existing("asset", {"@id": "a", "properties": {}}) == Existing(
        "asset", "a", False, None
    )
    other = {"@id": "a", "privateProperties": {MANAGED_BY: "someone-else"}}
    assert read_existing("asset", other) == Existing("asset", "a", False, None)
    assert read_existing("asset", {"properties": {}}) is None
