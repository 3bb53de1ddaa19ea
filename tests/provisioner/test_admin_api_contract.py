"""The workflow-api admin API contract (`workflow_contracts.admin_api`): the route serves exactly
its paths, and the body the provisioner's client sends is the one the route reads."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi.routing import APIRoute

from provisioner.workflow_apis import WorkflowApiClient
from workflow_api.routes.admin import router
from workflow_contracts import admin_api
from workflow_contracts.admin_api import GrantRequest


class _Tokens:
    def admin_token(self, audience: str) -> str:
        return f"admin-token-for-{audience}"


def test_the_route_serves_the_contracts_paths() -> None:
    served = {
        (method, route.path)
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods
    }
    prefix = admin_api.PREFIX
    assert served == {
        ("GET", prefix + admin_api.GRANTS),
        ("PUT", prefix + admin_api.GRANT),
        ("DELETE", prefix + admin_api.GRANT),
        ("DELETE", prefix + admin_api.DATA),
    }


def test_the_client_sends_what_the_route_reads() -> None:
    seen: list[tuple[str, str, Any]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        body = request.read()
        seen.append(
            (request.method, request.url.path, body and GrantRequest.model_validate_json(body))
        )
        return httpx.Response(200, json={})

    client = WorkflowApiClient(_Tokens())  # type: ignore[arg-type]  # only admin_token is used
    client._client = httpx.Client(transport=httpx.MockTransport(answer))
    ends = datetime(2026, 3, 1, 12, tzinfo=UTC)
    try:
        client.grant("http://127.0.0.1:9", "aud", "echo", agreement_id="agr-1", expires_at=ends)
        client.grant("http://127.0.0.1:9", "aud", "echo", agreement_id=None, expires_at=None)
        client.revoke("http://127.0.0.1:9", "aud", "echo")
        client.purge("http://127.0.0.1:9", "aud")
    finally:
        client.close()

    assert seen == [
        ("PUT", "/admin/grants/echo", GrantRequest(agreement_id="agr-1", expires_at=ends)),
        ("PUT", "/admin/grants/echo", GrantRequest()),
        ("DELETE", "/admin/grants/echo", b""),
        ("DELETE", "/admin/data", b""),
    ]


def test_the_grant_body_keeps_its_wire_form() -> None:
    ends = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert GrantRequest(agreement_id="agr-1", expires_at=ends).model_dump(mode="json") == {
        "agreement_id": "agr-1",
        "expires_at": "2026-03-01T12:00:00+00:00",
    }
