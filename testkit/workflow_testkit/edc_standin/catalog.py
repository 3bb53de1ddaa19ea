"""The stand-in's Management API v3 for the provider's offering: assets, policy definitions and
contract definitions (create, get, update, delete, query), in the shapes real connectors answer
(`recorded/<version>/asset_*.json`, `policydefinition_*`, `contractdefinition_*`).

Input is JSON-LD; the stand-in reads it the way EDC's expansion would for the contexts clients
use (`@vocab` = the EDC namespace, `edc:`/`odrl:` prefixes, full IRIs), which is a subset of
JSON-LD, not a processor: a short key without an `@vocab` is dropped, as expansion drops it.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from workflow_testkit.edc_standin import validation, wire
from workflow_testkit.edc_standin.entities import Asset, ContractDefinition, PolicyDefinition
from workflow_testkit.edc_standin.model import World
from workflow_testkit.edc_standin.policy import (
    EDC_NAMESPACE,
    ODRL_NAMESPACE,
    AtomicConstraint,
    Permission,
    Policy,
)
from workflow_testkit.edc_standin.validation import Rejected, authenticate

#: Java simple names in EDC's messages, per collection.
_NAMES = {"assets": "Asset", "policydefinitions": "PolicyDefinition",
          "contractdefinitions": "ContractDefinition"}  # fmt: skip
_DUPLICATE = {"assets": "Asset", "policydefinitions": "Policy",
              "contractdefinitions": "ContractDefinition"}  # fmt: skip


# -- reading JSON-LD input ----------------------------------------------------------------------


def _prefixes(context: Any) -> tuple[str | None, dict[str, str]]:
    contexts = context if isinstance(context, list) else [context]
    vocab, prefixes = None, {}
    for item in contexts:
        if isinstance(item, dict):
            vocab = item.get("@vocab", vocab)
            prefixes.update({k: v for k, v in item.items() if not k.startswith("@")})
    return vocab, prefixes


def _expand_iri(term: str, vocab: str | None, prefixes: dict[str, str]) -> str | None:
    if term.startswith("@") or "://" in term:
        return term
    prefix, colon, rest = term.partition(":")
    if colon and prefix in prefixes:
        return prefixes[prefix] + rest
    return vocab + term if vocab else None


def _value(value: Any) -> Any:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, dict) and "@value" in value:
        return value["@value"]
    return value


def _short(iri: str) -> str:
    return iri.removeprefix(EDC_NAMESPACE)


def _node(document: Any, vocab: str | None, prefixes: dict[str, str]) -> dict[str, Any]:
    """One level of a node: keys expanded to IRIs (unknown dropped), values as given."""
    if not isinstance(document, dict):
        return {}
    expanded = {}
    for key, value in document.items():
        iri = _expand_iri(key, vocab, prefixes)
        if iri is not None and key != "@context":
            expanded[iri] = value
    return expanded


def _properties(value: Any, vocab: str | None, prefixes: dict[str, str]) -> dict[str, Any]:
    node = _node(_value(value), vocab, prefixes)
    return {_short(k): _value(v) for k, v in node.items() if not k.startswith("@")}


def _iri_value(value: Any, vocab: str | None, prefixes: dict[str, str]) -> str:
    value = _value(value)
    if isinstance(value, dict):
        value = value.get("@id", "")
    return _expand_iri(str(value), vocab, prefixes) or str(value)


def _policy(value: Any, vocab: str | None, prefixes: dict[str, str]) -> Policy:
    node = _node(_value(value), vocab, prefixes)
    permissions = node.get(ODRL_NAMESPACE + "permission") or []
    parsed = []
    for item in permissions if isinstance(permissions, list) else [permissions]:
        rule = _node(item, vocab, prefixes)
        action = _iri_value(rule.get(ODRL_NAMESPACE + "action"), vocab, prefixes)
        constraints = rule.get(ODRL_NAMESPACE + "constraint") or []
        atoms = []
        for raw in constraints if isinstance(constraints, list) else [constraints]:
            constraint = _node(raw, vocab, prefixes)
            operator = _iri_value(constraint.get(ODRL_NAMESPACE + "operator"), vocab, prefixes)
            atoms.append(
                AtomicConstraint(
                    _iri_value(constraint.get(ODRL_NAMESPACE + "leftOperand"), vocab, prefixes),
                    operator.removeprefix(ODRL_NAMESPACE),  # type: ignore[arg-type]
                    str(_value(constraint.get(ODRL_NAMESPACE + "rightOperand"))),
                )
            )
        parsed.append(Permission(action.removeprefix(ODRL_NAMESPACE), tuple(atoms)))
    return Policy(tuple(parsed))


def _read(collection: str, body: Any) -> Asset | PolicyDefinition | ContractDefinition:
    if not isinstance(body, dict):
        raise Rejected(400, wire.error_body("Request body must be a JSON object", "InvalidRequest"))
    vocab, prefixes = _prefixes(body.get("@context"))
    node = _node(body, vocab, prefixes)
    entity_id = str(node.get("@id") or uuid.uuid4())
    private = _properties(node.get(EDC_NAMESPACE + "privateProperties"), vocab, prefixes)
    if collection == "assets":
        address = _properties(node.get(EDC_NAMESPACE + "dataAddress"), vocab, prefixes)
        if "type" not in address:
            path = EDC_NAMESPACE + "dataAddress"
            message = f"mandatory object '{path}' is missing or it is blank"
            raise Rejected(400, wire.error_body(message, "ValidationFailure", path=path))
        properties = _properties(node.get(EDC_NAMESPACE + "properties"), vocab, prefixes)
        return Asset(entity_id, address, {**properties, "id": entity_id}, private)
    if collection == "policydefinitions":
        policy = _policy(node.get(EDC_NAMESPACE + "policy"), vocab, prefixes)
        return PolicyDefinition(entity_id, policy, private)
    selectors = node.get(EDC_NAMESPACE + "assetsSelector") or []
    criteria = [
        _properties(item, vocab, prefixes)
        for item in (selectors if isinstance(selectors, list) else [selectors])
    ]
    return ContractDefinition(
        entity_id,
        str(_value(node.get(EDC_NAMESPACE + "accessPolicyId"))),
        str(_value(node.get(EDC_NAMESPACE + "contractPolicyId"))),
        criteria,
        private,
    )


# -- answering in EDC's compacted shapes --------------------------------------------------------


def _with_private(body: dict[str, Any], private: dict[str, Any]) -> dict[str, Any]:
    if private:
        body["privateProperties"] = dict(private)
    return body


def render(entity: Asset | PolicyDefinition | ContractDefinition, version: str) -> dict[str, Any]:
    if isinstance(entity, Asset):
        body: dict[str, Any] = {"@id": entity.id, "@type": "Asset", "properties": entity.properties}
        _with_private(body, entity.private_properties)
        body["dataAddress"] = {"@type": wire.typed("DataAddress", version), **entity.data_address}
    elif isinstance(entity, PolicyDefinition):
        permissions = [wire.jsonld_permission(p) for p in entity.policy.permissions]
        policy = {
            "@id": str(uuid.uuid4()),
            "@type": "odrl:Set",
            "odrl:permission": permissions[0] if len(permissions) == 1 else permissions,
            "odrl:prohibition": [],
            "odrl:obligation": [],
        }
        body = {"@id": entity.id, "@type": "PolicyDefinition", "createdAt": entity.created_at}
        body["policy"] = policy
        _with_private(body, entity.private_properties)
    else:
        criteria = [{"@type": "Criterion", **c} for c in entity.assets_selector]
        body = {
            "@id": entity.id,
            "@type": "ContractDefinition",
            "accessPolicyId": entity.access_policy_id,
            "contractPolicyId": entity.contract_policy_id,
            "assetsSelector": criteria[0] if len(criteria) == 1 else criteria,
        }
        _with_private(body, entity.private_properties)
    body["@context"] = wire.management_context(version)
    return body


def _store(world: World, collection: str) -> dict[str, Any]:
    stores: dict[str, dict[str, Any]] = {
        "assets": world.assets,
        "policydefinitions": world.policy_definitions,
        "contractdefinitions": world.contract_definitions,
    }
    return stores[collection]


def _not_found(collection: str, entity_id: str) -> Response:
    return JSONResponse(wire.not_found_body(_NAMES[collection], entity_id), 404)


def _conflict(message: str) -> Response:
    return JSONResponse(wire.error_body(message, "ObjectConflict"), 409)


def _still_used(world: World, collection: str, entity_id: str) -> str | None:
    if collection == "policydefinitions" and any(
        entity_id in (d.access_policy_id, d.contract_policy_id)
        for d in world.contract_definitions.values()
    ):
        return (
            f"PolicyDefinition {entity_id} cannot be deleted as it is referenced by at least"
            " one contract definition"
        )
    if collection == "assets" and any(a.asset_id == entity_id for a in world.agreements.values()):
        return (
            f"Asset {entity_id} cannot be deleted as it is referenced by at least one"
            " contract agreement"
        )
    return None


async def _handle(request: Request) -> Response:
    world: World = request.state.world
    authenticate(request.headers, world.management_api_key)
    collection = request.url.path.split("/")[3]  # /management/v3/<collection>[/<id>]
    entity_id = request.path_params.get("id")
    store = _store(world, collection)
    method = request.method
    with world.lock:
        if method == "GET":
            entity = store.get(str(entity_id))  # GET has the {id} route only
            if entity is None:
                return _not_found(collection, str(entity_id))
            return JSONResponse(render(entity, world.edc_version))
        if method == "DELETE":
            if entity_id not in store:
                return _not_found(collection, str(entity_id))
            if reason := _still_used(world, collection, str(entity_id)):
                return _conflict(reason)
            del store[entity_id]
            return Response(status_code=204)
        validation.check_content_type(request.headers.get("content-type"))
        body = validation.read_json(await request.body())
        if entity_id == "request":
            query = body if isinstance(body, dict) else {}
            offset, limit = int(_value(query.get("offset", 0))), int(_value(query.get("limit", 50)))
            page = list(store.values())[offset : offset + limit]
            return JSONResponse([render(entity, world.edc_version) for entity in page])
        entity = _read(collection, body)
        if method == "POST":
            if entity.id in store:
                return _conflict(f"{_DUPLICATE[collection]} with ID {entity.id} already exists")
            store[entity.id] = entity
            answer = {"@type": "IdResponse", "@id": entity.id, "createdAt": entity.created_at}
            return JSONResponse({**answer, "@context": wire.management_context(world.edc_version)})
        if entity_id is not None and entity_id != entity.id:  # PUT policydefinitions/{id}
            entity.id = entity_id
        if entity.id not in store:
            return _not_found(collection, entity.id)
        entity.created_at = store[entity.id].created_at
        store[entity.id] = entity
        return Response(status_code=204)


ROUTES = [
    route
    for collection in _NAMES
    for route in (
        Route(f"/management/v3/{collection}", _handle, methods=["POST", "PUT"]),
        Route(
            f"/management/v3/{collection}/{{id}}", _handle, methods=["GET", "DELETE", "PUT", "POST"]
        ),
    )
]
