"""The exact JSON EDC sends and answers, as pure functions of the stand-in's entities.

- legacy `provision-http` request (Jackson, v0.15.1 `HttpProvisionerRequest`, reference §1.4);
- data-plane `ProvisionHttpRequest` (reference §2.4);
- Management API v3 responses, compacted JSON-LD with the default management context (§2.9);
- EDC's error bodies (`ApiErrorDetail` lists).

Longer than our ~300 lines on purpose: every shape EDC puts on the wire in one module, so it can
be compared line by line with the recorded real exchanges.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Literal

from workflow_testkit.edc_standin.entities import (
    ContractAgreement,
    ProvisionedResource,
    TransferProcess,
)
from workflow_testkit.edc_standin.policy import (
    EDC_NAMESPACE,
    IN_FORCE_DATE,
    JAVA_OPERATORS,
    ODRL_NAMESPACE,
    AndConstraint,
    AtomicConstraint,
    Constraint,
    Permission,
    Policy,
)

DEFAULT_POLICY_SCOPE = "http.provisioner"
#: Scopes with rule bindings in v0.15.1 (`odrl:use` and `inForceDate`), matched by prefix.
BOUND_SCOPES = ("transfer.process", "policy.monitor")
BOUND_ACTIONS = frozenset({"use"})
BOUND_LEFT_OPERANDS = frozenset({IN_FORCE_DATE})

MANAGEMENT_CONTEXT: dict[str, str] = {
    "@vocab": EDC_NAMESPACE,
    "edc": EDC_NAMESPACE,
    "odrl": ODRL_NAMESPACE,
}
#: 0.18.0 answers with the DSP contexts in front of the management context (recorded/0.18.0).
MANAGEMENT_CONTEXT_0_18: list[Any] = [
    "https://w3id.org/dspace/2025/1/context.jsonld",
    "https://w3id.org/edc/dspace/v0.0.1",
    MANAGEMENT_CONTEXT,
]
#: What OkHttp 5.3.2 sends with `RequestBody.create(String, MediaType.get("application/json"))`;
#: recorded from both the 0.15.1 (legacy) and the 0.18.0 (data-plane) provision requests.
REQUEST_HEADERS = {
    "content-type": "application/json; charset=utf-8",
    "accept-encoding": "gzip",
    "user-agent": "okhttp/5.3.2",
}


def management_context(version: str) -> Any:
    return MANAGEMENT_CONTEXT if version.startswith("0.15") else MANAGEMENT_CONTEXT_0_18


def typed(name: str, version: str) -> str:
    """0.18.0 writes some types prefixed (`edc:TransferProcess`, `edc:DataAddress`)."""
    return name if version.startswith("0.15") else f"edc:{name}"


def encode(body: Any) -> bytes:
    """Jackson's compact form: no spaces, UTF-8."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


# -- legacy provision-http (Jackson) -----------------------------------------------------------


def scope_is_bound(scope: str) -> bool:
    """`RuleBindingRegistryImpl`: `<scope>.` starts with `<bound scope>.`."""
    return any(f"{scope}.".startswith(f"{bound}.") for bound in BOUND_SCOPES)


def filter_policy(policy: Policy, scope: str) -> Policy:
    """`ScopeFilter`: drop rules whose action and atomic constraints whose left operand are not
    bound to `scope`. With the default `http.provisioner` nothing is bound: no permissions."""
    if not scope_is_bound(scope):
        return Policy()

    def keep(constraint: Constraint) -> Constraint | None:
        if isinstance(constraint, AndConstraint):
            kept = (c for c in constraint.constraints if c.left_operand in BOUND_LEFT_OPERANDS)
            return AndConstraint(tuple(kept))
        return constraint if constraint.left_operand in BOUND_LEFT_OPERANDS else None

    permissions = []
    for permission in policy.permissions:
        if permission.action in BOUND_ACTIONS:
            kept = tuple(c for c in map(keep, permission.constraints) if c is not None)
            permissions.append(Permission(permission.action, kept))
    return Policy(tuple(permissions))


def _literal(value: str) -> dict[str, Any]:
    return {"edctype": "dataspaceconnector:literalexpression", "value": value}


def jackson_constraint(constraint: Constraint) -> dict[str, Any]:
    if isinstance(constraint, AndConstraint):
        return {
            "edctype": "AndConstraint",
            "constraints": [jackson_constraint(c) for c in constraint.constraints],
        }
    return {
        "edctype": "AtomicConstraint",
        "leftExpression": _literal(constraint.left_operand),
        "rightExpression": _literal(constraint.right_operand),
        "operator": JAVA_OPERATORS[constraint.operator],
    }


def jackson_policy(policy: Policy, agreement: ContractAgreement) -> dict[str, Any]:
    """`Policy` as EDC's default ObjectMapper writes an agreement policy (type CONTRACT)."""
    permissions = [
        {
            "edctype": "dataspaceconnector:permission",
            "action": {"type": ODRL_NAMESPACE + p.action, "includedIn": None, "constraint": None},
            "constraints": [jackson_constraint(c) for c in p.constraints],
            "duties": [],
        }
        for p in policy.permissions
    ]
    return {
        "permissions": permissions,
        "prohibitions": [],
        "obligations": [],
        "profiles": [],
        "extensibleProperties": {},
        "inheritsFrom": None,
        "assigner": agreement.provider_id,
        "assignee": agreement.consumer_id,
        "target": agreement.asset_id,
        "@type": {"@policytype": "contract"},
    }


def legacy_request(
    kind: Literal["provision", "deprovision"],
    *,
    asset_id: str,
    transfer_process_id: str,
    policy: dict[str, Any],
    callback_address: str,
    resource_definition_id: str,
) -> dict[str, Any]:
    return {
        "assetId": asset_id,
        "transferProcessId": transfer_process_id,
        "policy": policy,
        "callbackAddress": callback_address,
        "type": kind,
        "resourceDefinitionId": resource_definition_id,
    }


def legacy_provision_request(
    process: TransferProcess,
    agreement: ContractAgreement,
    *,
    management_url: str,
    policy_scope: str = DEFAULT_POLICY_SCOPE,
) -> dict[str, Any]:
    """What `HttpProviderProvisioner.provision` POSTs: the scope-filtered agreement policy."""
    assert process.resource_definition_id is not None
    return legacy_request(
        "provision",
        asset_id=process.asset_id,
        transfer_process_id=process.id,
        policy=jackson_policy(filter_policy(agreement.policy, policy_scope), agreement),
        callback_address=management_url + "/callback",
        resource_definition_id=process.resource_definition_id,
    )


def legacy_deprovision_request(
    process: TransferProcess,
    agreement: ContractAgreement,
    resource: ProvisionedResource,
    *,
    management_url: str,
) -> dict[str, Any]:
    """`HttpProviderProvisioner.deprovision`: unfiltered policy, the callback's `assetId`."""
    return legacy_request(
        "deprovision",
        asset_id=resource.asset_id,
        transfer_process_id=process.id,
        policy=jackson_policy(agreement.policy, agreement),
        callback_address=management_url + "/callback",
        resource_definition_id=resource.resource_definition_id,
    )


# -- data-plane-provision-http ------------------------------------------------------------------


def dataplane_request(
    kind: Literal["provision", "deprovision"],
    *,
    provision_resource_id: str,
    flow_id: str,
    callback_address: str,
) -> dict[str, Any]:
    return {
        "type": kind,
        "provisionResourceId": provision_resource_id,
        "flowId": flow_id,
        "callbackAddress": callback_address,
    }


# -- Management API v3 (compacted JSON-LD) ------------------------------------------------------


def compact_iri(iri: str) -> str:
    for prefix, namespace in (("edc", EDC_NAMESPACE), ("odrl", ODRL_NAMESPACE)):
        if iri.startswith(namespace) and len(iri) > len(namespace):
            return f"{prefix}:{iri[len(namespace) :]}"
    return iri


def _compact_set(values: list[Any]) -> Any:
    """JSON-LD compaction turns a one-element set into the element itself."""
    return values[0] if len(values) == 1 else values


def jsonld_constraint(constraint: Constraint) -> dict[str, Any]:
    if isinstance(constraint, AndConstraint):
        return {"odrl:and": _compact_set([jsonld_constraint(c) for c in constraint.constraints])}
    assert isinstance(constraint, AtomicConstraint)
    return {
        "odrl:leftOperand": {"@id": compact_iri(constraint.left_operand)},
        "odrl:operator": {"@id": f"odrl:{constraint.operator}"},
        "odrl:rightOperand": constraint.right_operand,
    }


def jsonld_permission(permission: Permission) -> dict[str, Any]:
    body: dict[str, Any] = {"odrl:action": {"@id": compact_iri(ODRL_NAMESPACE + permission.action)}}
    if permission.constraints:
        body["odrl:constraint"] = _compact_set(
            [jsonld_constraint(c) for c in permission.constraints]
        )
    return body


def jsonld_policy(
    agreement: ContractAgreement, *, permission_as_array: bool = False, policy_id: str | None = None
) -> dict[str, Any]:
    """`JsonObjectFromPolicyTransformer` (random `@id` per call) after compaction."""
    permissions = [jsonld_permission(p) for p in agreement.policy.permissions]
    return {
        "@id": policy_id or str(uuid.uuid4()),
        "@type": "odrl:Agreement",
        "odrl:permission": permissions if permission_as_array else _compact_set(permissions),
        "odrl:prohibition": [],
        "odrl:obligation": [],
        "odrl:assignee": agreement.consumer_id,
        "odrl:assigner": agreement.provider_id,
        "odrl:target": {"@id": agreement.asset_id},
    }


def transfer_process_json(
    process: TransferProcess,
    *,
    version: str = "0.15.1",
    data_destination: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """0.18.0 adds `dataplaneMetadata` and, once provisioned, the provisioned address as
    `dataDestination` (recorded/0.18.0/transferprocess_get_after_callback.json)."""
    body: dict[str, Any] = {
        "@id": process.id,
        "@type": typed("TransferProcess", version),
        "state": process.state,
        "stateTimestamp": process.state_timestamp,
        "type": "PROVIDER",
        "callbackAddresses": [],
        "correlationId": process.correlation_id,
        "assetId": process.asset_id,
        "contractId": process.contract_id,
        "transferType": process.transfer_type,
    }
    if process.error_detail is not None:
        body["errorDetail"] = process.error_detail
    if not version.startswith("0.15"):
        if data_destination is not None:
            body["dataDestination"] = {"@type": "edc:DataAddress", **data_destination}
        body["dataplaneMetadata"] = {"@type": "DataplaneMetadata"}
    body["@context"] = management_context(version)
    return body


def contract_agreement_json(
    agreement: ContractAgreement,
    *,
    permission_as_array: bool = False,
    policy_id: str | None = None,
    version: str = "0.15.1",
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "@id": agreement.id,
        "@type": "ContractAgreement",
        "assetId": agreement.asset_id,
        "agreementId": agreement.agreement_id,
        "contractSigningDate": agreement.contract_signing_date,
        "consumerId": agreement.consumer_id,
        "providerId": agreement.provider_id,
        "policy": jsonld_policy(
            agreement, permission_as_array=permission_as_array, policy_id=policy_id
        ),
    }
    if not version.startswith("0.15"):
        body["claims"] = {}
    body["@context"] = management_context(version)
    return body


# -- errors -------------------------------------------------------------------------------------


def error_body(
    message: str, error_type: str, *, path: str | None = None, invalid_value: Any = None
) -> list[dict[str, Any]]:
    """`EdcApiExceptionMapper`: a list of `ApiErrorDetail`."""
    return [{"message": message, "type": error_type, "path": path, "invalidValue": invalid_value}]


def not_found_body(entity_type: str, entity_id: str) -> list[dict[str, Any]]:
    """`ObjectNotFoundException`; `entity_type` is the Java simple name."""
    message = f"Object of type {entity_type} with ID={entity_id} was not found"
    return error_body(message, "ObjectNotFound")
