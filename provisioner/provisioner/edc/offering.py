"""The provider's offering in EDC: what the asset catalog should look like there, and the plan.

Pure functions, no I/O (`publisher.py` reads EDC and carries the plan out). Per catalog asset:

    asset                <id>                   data address for the flavour (below)
    policy definition    <id>-access-policy     who may see the offer: everyone (an empty Set)
    policy definition    <id>-contract-policy   `use`, ending `contract.validity` after signing
    contract definition  <id>-offer             the two policies, selecting asset <id>

Data plane (`data-plane-provision-http`, EDC 0.14-0.18): `ProvisionHttp` with the mandatory
`baseUrl` = our `/edc/dataplane/provision?asset=<id>`. Legacy (`provision-http`, EDC <= 0.15):
the type the provider's `provisioner.http.entries.<n>.data.address.type` names.

Everything we write carries two private properties: `managedBy` (so we touch only our own
entities and delete only those) and `contentHash` (so an unchanged entity is not written again,
like the Kubernetes deployer's applied-hash annotation).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

from provisioner.edc.wire import EDC_NAMESPACE
from workflow_contracts.asset import WorkflowAsset

ODRL_NAMESPACE = "http://www.w3.org/ns/odrl/2/"
OUR_NAMESPACE = "https://w3id.org/workflow-middle-layer/"
MANAGED_BY = OUR_NAMESPACE + "managedBy"
CONTENT_HASH = OUR_NAMESPACE + "contentHash"
MANAGER = "workflow-provisioner"
CONTEXT = {"@vocab": EDC_NAMESPACE, "edc": EDC_NAMESPACE, "odrl": ODRL_NAMESPACE}

Kind = Literal["asset", "policy", "contract"]
Flavour = Literal["dataplane", "legacy"]
#: Management API v3 collection of each kind.
COLLECTIONS: dict[Kind, str] = {
    "asset": "assets",
    "policy": "policydefinitions",
    "contract": "contractdefinitions",
}
#: Creation order: a contract definition names its policies and asset; deletion goes backwards.
ORDER: tuple[Kind, ...] = ("asset", "policy", "contract")
Action = Literal["create", "update", "delete", "keep", "foreign"]


@dataclass(frozen=True)
class Entity:
    kind: Kind
    id: str
    body: dict[str, Any]  # the JSON-LD document to send, markers included
    digest: str


@dataclass(frozen=True)
class Change:
    action: Action
    kind: Kind
    id: str
    entity: Entity | None = None  # what to write (create, update)

    def describe(self) -> str:
        words = {"policy": "policy definition", "contract": "contract definition"}
        return f"{self.action} {words.get(self.kind, self.kind)} {self.id}"


@dataclass(frozen=True)
class OfferTarget:
    """Where EDC reaches us, and how: from the settings."""

    flavour: Flavour
    public_url: str  # the provisioner's public URL, no trailing slash
    legacy_address_type: str = "WorkflowApi"
    endpoint_secret: str | None = None  # PROVISIONER_EDC_ENDPOINT_SECRET, if set


def access_policy_id(asset_id: str) -> str:
    return f"{asset_id}-access-policy"


def contract_policy_id(asset_id: str) -> str:
    return f"{asset_id}-contract-policy"


def contract_definition_id(asset_id: str) -> str:
    return f"{asset_id}-offer"


def provision_url(target: OfferTarget, asset_id: str) -> str:
    url = f"{target.public_url}/edc/dataplane/provision?asset={quote(asset_id, safe='')}"
    if target.endpoint_secret:
        url += f"&secret={quote(target.endpoint_secret, safe='')}"
    return url


def data_address(target: OfferTarget, asset_id: str) -> dict[str, Any]:
    if target.flavour == "legacy":
        return {"@type": "DataAddress", "type": target.legacy_address_type}
    return {
        "@type": "DataAddress",
        "type": "ProvisionHttp",
        "baseUrl": provision_url(target, asset_id),
    }


def contract_permission(validity: str | None) -> dict[str, Any]:
    """`use`, limited by `inForceDate lteq contractAgreement+<validity>` (EDC's relative form,
    counted from the agreement's signing; `edc/expiry.py` reads it back the same way)."""
    permission: dict[str, Any] = {"odrl:action": {"@id": "odrl:use"}}
    if validity is not None:
        permission["odrl:constraint"] = [
            {
                "@type": "odrl:Constraint",
                "odrl:leftOperand": {"@id": "edc:inForceDate"},
                "odrl:operator": {"@id": "odrl:lteq"},
                "odrl:rightOperand": f"contractAgreement+{validity}",
            }
        ]
    return permission


def _entity(kind: Kind, entity_id: str, body: dict[str, Any]) -> Entity:
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    markers = {MANAGED_BY: MANAGER, CONTENT_HASH: digest}
    document = {"@context": CONTEXT, "@id": entity_id, **body, "privateProperties": markers}
    return Entity(kind, entity_id, document, digest)


def asset_entities(asset: WorkflowAsset, target: OfferTarget) -> list[Entity]:
    properties = {
        "name": asset.title,
        "description": asset.description,
        "version": asset.version,
        "contenttype": "application/json",
    }
    asset_body = {
        "@type": "Asset",
        "properties": properties,
        "dataAddress": data_address(target, asset.id),
    }
    access = {"@type": "PolicyDefinition", "policy": {"@type": "odrl:Set"}}
    contract = {
        "@type": "PolicyDefinition",
        "policy": {
            "@type": "odrl:Set",
            "odrl:permission": [contract_permission(asset.contract.validity)],
        },
    }
    offer = {
        "@type": "ContractDefinition",
        "accessPolicyId": access_policy_id(asset.id),
        "contractPolicyId": contract_policy_id(asset.id),
        "assetsSelector": [
            {
                "@type": "Criterion",
                "operandLeft": EDC_NAMESPACE + "id",
                "operator": "=",
                "operandRight": asset.id,
            }
        ],
    }
    return [
        _entity("asset", asset.id, asset_body),
        _entity("policy", access_policy_id(asset.id), access),
        _entity("policy", contract_policy_id(asset.id), contract),
        _entity("contract", contract_definition_id(asset.id), offer),
    ]


def desired_offering(catalog: dict[str, WorkflowAsset], target: OfferTarget) -> list[Entity]:
    return [
        entity
        for asset_id in sorted(catalog)
        for entity in asset_entities(catalog[asset_id], target)
    ]


# -- reading what EDC answered (compacted JSON-LD: short, `edc:` or full keys) -----------------


def _term(document: dict[str, Any], name: str) -> Any:
    for key in (name, f"edc:{name}", EDC_NAMESPACE + name):
        if key in document:
            return document[key]
    return None


def _text(value: Any) -> str | None:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, dict):
        value = value.get("@value")
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class Existing:
    kind: Kind
    id: str
    ours: bool
    digest: str | None


def read_existing(kind: Kind, document: dict[str, Any]) -> Existing | None:
    entity_id = document.get("@id")
    if not isinstance(entity_id, str):
        return None
    private = _term(document, "privateProperties")
    private = private if isinstance(private, dict) else {}
    ours = _text(private.get(MANAGED_BY)) == MANAGER
    return Existing(kind, entity_id, ours, _text(private.get(CONTENT_HASH)))


def plan(desired: list[Entity], existing: list[Existing]) -> list[Change]:
    """Upserts in creation order, then deletions of our entities the catalog no longer has."""
    found = {(item.kind, item.id): item for item in existing}
    wanted = {(entity.kind, entity.id) for entity in desired}
    changes: list[Change] = []
    for kind in ORDER:
        for entity in (e for e in desired if e.kind == kind):
            there = found.get((kind, entity.id))
            if there is None:
                action: Action = "create"
            elif not there.ours:
                action = "foreign"
            elif there.digest == entity.digest:
                action = "keep"
            else:
                action = "update"
            changes.append(Change(action, kind, entity.id, entity))
    for kind in reversed(ORDER):
        for item in sorted((e for e in existing if e.kind == kind), key=lambda e: e.id):
            if item.ours and (kind, item.id) not in wanted:
                changes.append(Change("delete", kind, item.id))
    return changes
