"""Test data for the stand-in's own tests: processes in a given state, callback bodies."""

from __future__ import annotations

from typing import Any

import httpx

from workflow_testkit.edc_standin.model import TransferProcess, World
from workflow_testkit.edc_standin.policy import EDC_NAMESPACE

NS = EDC_NAMESPACE
CALLBACK_TYPE = "dataspaceconnector:provisioner-callback-request"


def provisioning_requested(world: World, tp_id: str = "tp-1") -> TransferProcess:
    """A process whose provision request (resourceDefinitionId rd-1) was answered 2xx."""
    process = world.new_transfer(transfer_process_id=tp_id)
    process.resource_definition_id = "rd-1"
    process.transition("PROVISIONING_REQUESTED")
    return process


def callback_body(**overrides: Any) -> dict[str, Any]:
    body = {
        "edctype": CALLBACK_TYPE,
        "resourceDefinitionId": "rd-1",
        "assetId": "workflow-asset",
        "resourceName": "wf-api-tp-1",
        "contentDataAddress": {
            "properties": {NS + "type": "HttpData", NS + "baseUrl": "http://p/details?c=1"}
        },
        "apiKeyJwt": "unused",
        "hasToken": False,
    }
    body.update(overrides)
    return {key: value for key, value in body.items() if value is not ...}


def errors(response: httpx.Response) -> list[tuple[str, str]]:
    body = response.json()
    assert all(set(item) == {"message", "type", "path", "invalidValue"} for item in body)
    return [(item["type"], item["message"]) for item in body]
