"""Tokens, scopes, consumer isolation and path safety, through the HTTP API."""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta

import httpx
import pytest

from provisioner.tokens.signing_key import SigningKey
from workflow_contracts.tokens import ADMIN_SCOPE
from workflow_testkit.workflow_api import RunningApi, execute, upload, wait_for_job

PROTECTED = [
    ("GET", "/processes"),
    ("GET", "/processes/echo"),
    ("POST", "/processes/echo/execution"),
    ("GET", "/jobs"),
    ("GET", "/jobs/any"),
    ("POST", "/uploads"),
    ("GET", "/uploads"),
]


def _unsigned(claims: dict[str, object]) -> str:
    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def _assert_problem(response: httpx.Response, status: int, detail: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert detail in response.json()["detail"]


def test_open_routes_need_no_token(api: RunningApi) -> None:
    anonymous = api.client()
    for path in ("/", "/conformance", "/api"):
        assert anonymous.get(path).status_code == 200, path


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_every_other_route_requires_a_bearer_token(api: RunningApi, method: str, path: str) -> None:
    _assert_problem(api.client().request(method, path), 401, "bearer token is required")


def test_token_for_another_audience_is_refused(api: RunningApi) -> None:
    client = api.client(api.token(audience="workflow-api/someone-else"))
    _assert_problem(client.get("/processes"), 401, "claims rejected")


def test_expired_token_is_refused(api: RunningApi) -> None:
    client = api.client(api.token(lifetime_seconds=-10))
    _assert_problem(client.get("/processes"), 401, "expired")


def test_unsigned_token_is_refused(api: RunningApi) -> None:
    now = int(time.time())
    token = _unsigned(
        {
            "iss": "test-provisioner",
            "sub": api.settings.consumer_id,
            "aud": api.settings.token_audience,
            "exp": now + 60,
            "scope": "workflow:use",
        }
    )
    _assert_problem(api.client(token).get("/processes"), 401, "algorithm")


def test_token_signed_by_another_key_is_refused(api: RunningApi) -> None:
    stranger = SigningKey.generate()
    token = stranger.mint(
        issuer="test-provisioner",
        subject=api.settings.consumer_id,
        audience=api.settings.token_audience,
    )
    response = api.client(token).get("/processes")
    assert response.status_code == 401


def test_token_of_another_issuer_is_refused(api: RunningApi) -> None:
    _assert_problem(api.client(api.token(issuer="mallory")).get("/processes"), 401, "claims")


def test_consumer_token_cannot_use_admin_routes(api: RunningApi) -> None:
    _assert_problem(api.consumer.get("/admin/grants"), 403, ADMIN_SCOPE)
    _assert_problem(api.consumer.delete("/admin/grants/echo"), 403, ADMIN_SCOPE)


def test_admin_token_cannot_act_as_the_consumer(api: RunningApi) -> None:
    _assert_problem(api.admin.get("/processes"), 403, "another consumer")


def test_token_for_another_consumer_with_this_audience_is_refused(api: RunningApi) -> None:
    client = api.client(api.token(subject="consumer-b"))
    _assert_problem(client.get("/jobs"), 403, "another consumer")


def test_two_consumers_never_see_each_others_jobs_or_files(api_factory) -> None:  # type: ignore[no-untyped-def]
    first = api_factory("first", consumer_id="consumer-a")
    second = api_factory("second", consumer_id="consumer-b")
    job_id = execute(first.consumer, "echo", {"message": "private"})
    wait_for_job(first.consumer, job_id)
    document = upload(first.consumer, b"secret", "s.txt")

    # the second consumer's token is not accepted by the first consumer's API
    intruder = first.client(second.token())
    assert intruder.get(f"/jobs/{job_id}").status_code == 401
    # and the second API knows nothing of the first one's job and upload
    assert second.consumer.get(f"/jobs/{job_id}").status_code == 404
    assert second.consumer.get("/jobs").json()["jobs"] == []
    refused = second.consumer.post(
        "/processes/echo/execution", json={"inputs": {"message": {"href": document["href"]}}}
    )
    assert refused.status_code == 400


def test_revoked_asset_is_refused_at_once_even_with_a_valid_token(api: RunningApi) -> None:
    client = api.consumer
    assert client.get("/processes/echo").status_code == 200
    api.admin.delete("/admin/grants/echo").raise_for_status()

    response = client.post("/processes/echo/execution", json={"inputs": {"message": "x"}})
    assert response.status_code == 404
    assert response.json()["type"].endswith("/no-such-process")
    ids = [p["id"] for p in client.get("/processes", params={"limit": 100}).json()["processes"]]
    assert "echo" not in ids


@pytest.mark.parametrize(
    "key",
    ["../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%2e%2e/secret", "uploads/../../x", "/abs"],
)
def test_signed_storage_route_refuses_traversal(api: RunningApi, key: str) -> None:
    response = httpx.get(
        f"{api.base_url}/storage/{key}",
        params={"method": "GET", "expires": str(int(time.time()) + 60), "signature": "0" * 64},
    )
    assert response.status_code in {400, 403, 404}
    assert "root:" not in response.text


def test_tampered_and_expired_signed_urls_are_refused(api: RunningApi) -> None:
    client = api.consumer
    job_id = execute(client, "echo", {"message": "signed"})
    wait_for_job(client, job_id)
    url = client.get(f"/jobs/{job_id}/results/echo").headers["location"]
    assert httpx.get(url).text == "signed"

    tampered = url.replace(f"jobs/{job_id}/outputs/echo", f"jobs/{job_id}/log.txt")
    assert httpx.get(tampered).status_code == 403
    put_instead = httpx.put(url.replace("method=GET", "method=PUT"), content=b"overwrite")
    assert put_instead.status_code == 403
    key = f"jobs/{job_id}/outputs/echo"
    expired = api.services.store.signed_url("GET", key, timedelta(seconds=-1))
    response = httpx.get(expired)
    assert response.status_code == 403
    assert "expired" in response.json()["detail"]


def test_input_href_into_the_api_itself_is_refused(api: RunningApi) -> None:
    response = api.consumer.post(
        "/processes/input-dummy/execution",
        json={
            "inputs": {
                "document": {"href": f"{api.base_url}/admin/grants"},
                "dataset": {"href": f"{api.base_url}/storage/x"},
                "settings": "GREETING=hi",
            }
        },
    )
    _assert_problem(response, 400, "points into this API")
