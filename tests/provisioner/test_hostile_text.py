"""Ids with NUL characters or lone surrogates are a 400 at the provisioner, never a 500."""

from __future__ import annotations

import httpx
import pytest

from workflow_contracts.text import text_problem
from workflow_testkit.provisioner import RunningProvisioner

JSON = {"content-type": "application/json"}
LEGACY = (
    rb'{"assetId":"echo","transferProcessId":%s,"type":"provision",'
    rb'"callbackAddress":"http://127.0.0.1:9/cb","resourceDefinitionId":"r"}'
)
DATAPLANE = (
    rb'{"type":"provision","provisionResourceId":"p","flowId":%s,'
    rb'"callbackAddress":"http://127.0.0.1:9/cb"}'
)
BAD_IDS = [rb'"a\u0000b"', rb'"\ud800"']


@pytest.mark.parametrize("bad", BAD_IDS)
def test_a_legacy_provision_with_such_an_id_is_a_400(
    provisioner: RunningProvisioner, bad: bytes
) -> None:
    response = httpx.post(provisioner.legacy_endpoint, content=LEGACY % bad, headers=JSON)
    assert response.status_code == 400, response.text
    assert "transferProcessId" in response.json()["detail"]
    assert provisioner.admin_api.grants() == []


@pytest.mark.parametrize("bad", BAD_IDS)
def test_a_dataplane_provision_with_such_an_id_is_a_400(
    provisioner: RunningProvisioner, bad: bytes
) -> None:
    endpoint = (
        f"{provisioner.base_url}/edc/dataplane/provision?secret={provisioner.endpoint_secret}"
    )
    response = httpx.post(endpoint, content=DATAPLANE % bad, headers=JSON)
    assert response.status_code == 400, response.text
    assert "flowId" in response.json()["detail"]


def test_a_hand_grant_for_such_a_consumer_is_a_400(provisioner: RunningProvisioner) -> None:
    body = rb'{"consumer_id":"a\u0000","asset_id":"echo"}'
    response = provisioner.admin.post("/admin/grants", content=body, headers=JSON)
    assert response.status_code == 400, response.text
    assert "consumer_id" in response.json()["detail"]
    assert provisioner.admin_api.consumers() == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [("ok", None), ("a\x00", "contains a NUL character"), ("\udc80", "lone surrogate")],
)
def test_text_problem(text: str, problem: str | None) -> None:
    found = text_problem(text)
    assert found == problem if problem is None else problem in str(found)
