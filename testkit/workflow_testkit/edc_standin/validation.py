"""How EDC reads what the provisioner sends: Jersey + Jackson, modelled as pure functions.

Each parser returns the parsed body or raises `Rejected` with the status and body EDC answers:

- wrong `Content-Type` → 415 (`@Consumes(APPLICATION_JSON)` / no Jackson reader);
- malformed JSON, wrong shapes, failing builders → 400, text body (Jersey's Jackson mappers);
- missing required values → 400 with EDC's `ApiErrorDetail` list (`ValidationFailure`,
  `InvalidRequest`);
- an empty body where the controller dereferences it → 500 (`NullPointerException`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workflow_testkit.edc_standin.policy import EDC_NAMESPACE
from workflow_testkit.edc_standin.wire import error_body

if TYPE_CHECKING:
    from starlette.datastructures import Headers

PROVISIONER_CALLBACK_TYPE = "dataspaceconnector:provisioner-callback-request"
EDC_TYPE = EDC_NAMESPACE + "type"
EDC_KEY_NAME = EDC_NAMESPACE + "keyName"


class Rejected(Exception):
    """EDC's answer to a request it refuses (raised by the parsers, answered by the server)."""

    def __init__(self, status: int, body: Any = None, *, text: bool = False) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body
        self.text = text  # body is a text/plain message (Jersey's Jackson exception mappers)


def _mapping_error(message: str) -> Rejected:
    return Rejected(400, message, text=True)


@dataclass(frozen=True)
class ProvisionerCallback:
    """`ProvisionerWebhookRequest` (fields may be None; the controller checks them)."""

    resource_definition_id: str | None
    asset_id: str | None
    resource_name: str | None
    content_data_address: dict[str, Any] | None  # DataAddress properties
    api_key_jwt: str | None
    has_token: bool


@dataclass(frozen=True)
class DeprovisionedResourceBody:
    provisioned_resource_id: str
    in_process: bool
    error: bool
    error_message: str | None


def check_content_type(content_type: str | None) -> None:
    """A missing Content-Type is read as JSON; any other media type is refused."""
    if content_type is None:
        return
    if content_type.split(";", 1)[0].strip().lower() != "application/json":
        raise Rejected(415)


def read_json(raw: bytes) -> Any:
    """The parsed body; `...` (Ellipsis) for an empty body, which Jersey hands over as null."""
    if not raw.strip():
        return ...
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _mapping_error(f"Unexpected character: {exc}") from exc


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _mapping_error(
            f"Cannot deserialize value of type `{what}` from {type(value).__name__}"
        )
    return value


def _string(value: Any, name: str) -> str | None:
    """Jackson's String coercion: scalars become text, objects and arrays fail."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    raise _mapping_error(f"Cannot deserialize value of type `java.lang.String` for {name!r}")


def _boolean(value: Any, name: str) -> bool:
    """A primitive boolean: null is false, "true"/"false" and 0/1 are coerced."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value in ("true", "false"):
        return value == "true"
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise _mapping_error(f"Cannot deserialize value of type `boolean` for {name!r}")


def parse_data_address(value: Any) -> dict[str, Any]:
    """`DataAddress.Builder` via Jackson; returns the properties map EDC would store.

    Only `properties`, `type` and `keyName` are builder properties: every other top-level key is
    ignored, so a flat `{"type": ..., "baseUrl": ...}` keeps only the type. Short `type` and
    `keyName` keys are stored under their EDC IRIs.
    """
    address = _object(value, "DataAddress")
    properties: dict[str, Any] = {}

    def put(key: str, item: Any) -> None:
        if key == "type":
            properties[EDC_TYPE] = item
        elif key == "keyName":
            properties[EDC_KEY_NAME] = item
        elif key == EDC_NAMESPACE + "responseChannel" and not isinstance(item, dict):
            raise _mapping_error("Response channel must be a DataAddress or a Map.")
        else:
            properties[key] = item

    for key, item in address.items():
        if key == "properties":
            for property_key, property_value in _object(item, "java.util.Map").items():
                put(property_key, property_value)
        elif key in ("type", "keyName"):
            if item is None:  # the builder's Objects.requireNonNull
                raise _mapping_error(f"DataAddress: '{key}' must not be null")
            put(key, _string(item, key))
    type_value = properties.get(EDC_NAMESPACE + EDC_TYPE)  # DataAddress.getProperty
    if type_value is None:
        type_value = properties.get(EDC_TYPE)
    if type_value is None:
        raise _mapping_error("DataAddress builder missing Type property.")
    if not isinstance(type_value, str):
        raise _mapping_error("class cannot be cast to class java.lang.String")
    return properties


def parse_provisioner_callback(raw: bytes) -> ProvisionerCallback:
    """Legacy `POST {callbackAddress}/{id}/provision` body, then the controller's null checks."""
    body = read_json(raw)
    if body is ...:
        raise Rejected(500)  # the controller validates a null request: NullPointerException
    body = _object(body, "ProvisionerWebhookRequest")
    edctype = body.get("edctype")
    if edctype is None:
        raise _mapping_error(
            "Could not resolve subtype of [simple type, class ProvisionerWebhookRequest]: "
            "missing type id property 'edctype'"
        )
    if edctype != PROVISIONER_CALLBACK_TYPE:
        raise _mapping_error(f"Could not resolve type id '{edctype}' as a subtype")
    address = body.get("contentDataAddress")
    callback = ProvisionerCallback(
        resource_definition_id=_string(body.get("resourceDefinitionId"), "resourceDefinitionId"),
        asset_id=_string(body.get("assetId"), "assetId"),
        resource_name=_string(body.get("resourceName"), "resourceName"),
        content_data_address=None if address is None else parse_data_address(address),
        api_key_jwt=_string(body.get("apiKeyJwt"), "apiKeyJwt"),
        has_token=_boolean(body.get("hasToken"), "hasToken"),
    )
    violations = [
        error_body(f"{name} cannot be null", "ValidationFailure", path=name)[0]
        for name, value in (
            ("resourceDefinitionId", callback.resource_definition_id),
            ("assetId", callback.asset_id),
            ("resourceName", callback.resource_name),
            ("contentDataAddress", callback.content_data_address),
            ("apiKeyJwt", callback.api_key_jwt),
        )
        if value is None
    ]
    if violations:
        raise Rejected(400, violations)
    return callback


def parse_deprovisioned_resource(raw: bytes) -> DeprovisionedResourceBody:
    """Legacy `POST {callbackAddress}/{id}/deprovision` body (`DeprovisionedResource`)."""
    body = read_json(raw)
    body = None if body is ... else _object(body, "DeprovisionedResource")
    resource_id = None if body is None else _string(body.get("provisionedResourceId"), "id")
    if body is None or resource_id is None:
        message = (
            "Request body cannot be null and it should provide a valid provisionedResourceId value"
        )
        raise Rejected(400, error_body(message, "InvalidRequest"))
    error_message = _string(body.get("errorMessage"), "errorMessage")
    return DeprovisionedResourceBody(
        provisioned_resource_id=resource_id,
        in_process=_boolean(body.get("inProcess"), "inProcess"),
        error=_boolean(body.get("error"), "error") or error_message is not None,
        error_message=error_message,
    )


def parse_dataplane_provision(raw: bytes) -> dict[str, Any] | None:
    """Data-plane `ProvisionHttpResponse` `{"dataAddress": ...}`; `{}` gives no address."""
    body = read_json(raw)
    if body is ...:
        raise Rejected(500)  # provisionHttpResponse.dataAddress() on null
    address = _object(body, "ProvisionHttpResponse").get("dataAddress")
    return None if address is None else parse_data_address(address)


def authenticate(headers: Headers, api_key: str | None) -> None:
    """`TokenBasedAuthenticationService`: one `x-api-key`, compared ignoring case."""
    if api_key is None:
        return
    values = headers.getlist("x-api-key")
    if not values:
        raise Rejected(401, error_body("x-api-key not found", "AuthenticationFailed"))
    if len(values) != 1 or values[0].lower() != api_key.lower():
        message = "Request could not be authenticated"
        raise Rejected(401, error_body(message, "AuthenticationFailed"))
