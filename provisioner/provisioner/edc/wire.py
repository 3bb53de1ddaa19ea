"""EDC's HTTP provisioning wire formats (reference: shared/reference/edc-provisioning.md §1, §2).

Legacy control-plane `provision-http` (EDC <= 0.15) and data-plane `data-plane-provision-http`
(EDC 0.14 - 0.18). Data addresses always use the `{"properties": {...}}` wrapper with full EDC IRIs:
a flat object loses everything but `type`, and JSON-LD expansion drops keys that are not IRIs.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from workflow_contracts.text import CleanText

EDC_NAMESPACE = "https://w3id.org/edc/v0.0.1/ns/"
HTTP_ENDPOINT_TYPE = "https://w3id.org/idsa/v4.1/HTTP"
CALLBACK_TYPE_ID = "dataspaceconnector:provisioner-callback-request"
CREDENTIALS_AUTH_HEADER = "Authorization"


class LegacyProvisionRequest(BaseModel):
    """`HttpProvisionerRequest`, serialised by EDC's default ObjectMapper (nulls included)."""

    model_config = ConfigDict(extra="ignore")

    assetId: CleanText
    transferProcessId: CleanText
    callbackAddress: CleanText
    resourceDefinitionId: CleanText
    type: Literal["provision", "deprovision"]
    policy: dict[str, Any] | None = None


class DataPlaneProvisionRequest(BaseModel):
    """`ProvisionHttpRequest`: nothing but ids; the rest comes from the Management API."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["provision", "deprovision"]
    provisionResourceId: CleanText
    flowId: CleanText
    callbackAddress: CleanText


def _properties(values: dict[str, Any]) -> dict[str, Any]:
    return {"properties": {EDC_NAMESPACE + key: value for key, value in values.items()}}


def credentials_address(credentials_url: str, secret: str) -> dict[str, Any]:
    """An `HttpData` address of the credentials endpoint; EDC's data plane adds the secret."""
    return _properties(
        {
            "type": "HttpData",
            "baseUrl": credentials_url,
            "authKey": CREDENTIALS_AUTH_HEADER,
            "authCode": f"Bearer {secret}",
            "proxyPath": "false",
            "proxyQueryParams": "false",
        }
    )


def endpoint_address(endpoint: str, token: str) -> dict[str, Any]:
    """The workflow-api itself (EDC >= 0.16 hands this address to the consumer as its EDR)."""
    return _properties(
        {
            "type": HTTP_ENDPOINT_TYPE,
            "endpointType": HTTP_ENDPOINT_TYPE,
            "endpoint": endpoint,
            "authorization": token,
            "authType": "bearer",
        }
    )


def legacy_provision_callback(
    *, resource_definition_id: str, asset_id: str, resource_name: str, address: dict[str, Any]
) -> dict[str, Any]:
    """`ProvisionerWebhookRequest`; `apiKeyJwt` must be non-null but is never used for HttpData."""
    return {
        "edctype": CALLBACK_TYPE_ID,
        "resourceDefinitionId": resource_definition_id,
        "assetId": asset_id,
        "resourceName": resource_name,
        "contentDataAddress": address,
        "apiKeyJwt": "unused",
        "hasToken": False,
    }


def legacy_deprovision_callback(provisioned_resource_id: str) -> dict[str, Any]:
    """`DeprovisionedResource`; EDC never tells us its own resource id, so any id is accepted."""
    return {
        "provisionedResourceId": provisioned_resource_id,
        "inProcess": False,
        "error": False,
        "errorMessage": None,
    }


def dataplane_provision_callback(address: dict[str, Any]) -> dict[str, Any]:
    return {"dataAddress": address}


def legacy_callback_url(callback_address: str, transfer_process_id: str, kind: str) -> str:
    return f"{callback_address.rstrip('/')}/{transfer_process_id}/{kind}"


def dataplane_callback_url(
    callback_address: str, flow_id: str, provision_resource_id: str, kind: str
) -> str:
    return f"{callback_address.rstrip('/')}/{flow_id}/{provision_resource_id}/{kind}"
