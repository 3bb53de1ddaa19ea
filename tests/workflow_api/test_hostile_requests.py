"""What a client can send never becomes a 500: odd tokens, huge numbers, text no program takes."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from workflow_testkit.workflow_api import RunningApi

JSON = {"content-type": "application/json"}


def _segment(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def _assert_problem(response: httpx.Response, status: int, detail: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, object] = response.json()
    assert detail in str(problem["detail"]), problem
    return problem


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_a_token_whose_algorithm_does_not_fit_its_key_is_a_401(
    api: RunningApi, algorithm: str
) -> None:
    header = {"alg": algorithm, "kid": api.key.key_id, "typ": "JWT"}
    claims = {"sub": api.settings.consumer_id, "aud": api.settings.token_audience}
    token = f"{_segment(header)}.{_segment(claims)}.c2lnbmF0dXJl"
    _assert_problem(api.client(token).get("/processes"), 401, "")


def test_an_rs256_header_on_the_es256_key_is_refused_before_verification(api: RunningApi) -> None:
    header = {"alg": "RS256", "kid": api.key.key_id}
    token = f"{_segment(header)}.{_segment({'sub': 'x'})}.AAAA"
    _assert_problem(api.client(token).get("/jobs"), 401, "does not match its signing key")


@pytest.mark.parametrize("path", ["/uploads", "/jobs", "/processes"])
@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ("offset=1e20", "query.offset"),
        ("offset=99999999999999999999", "less than or equal to 1000000000"),
        ("offset=-1", "greater than or equal to 0"),
        ("limit=99999999999999999999", "query.limit"),
    ],
)
def test_paging_numbers_out_of_range_are_a_400(
    api: RunningApi, path: str, query: str, detail: str
) -> None:
    _assert_problem(api.consumer.get(f"{path}?{query}"), 400, detail)


@pytest.mark.parametrize("name", ["minDuration", "maxDuration"])
def test_huge_durations_in_the_job_list_are_a_400(api: RunningApi, name: str) -> None:
    response = api.consumer.get(f"/jobs?{name}=99999999999999999999999")
    _assert_problem(response, 400, f"query.{name}")


def test_the_largest_accepted_offset_still_answers(api: RunningApi) -> None:
    for path in ("/uploads", "/jobs"):
        response = api.consumer.get(f"{path}?offset=1000000000")
        assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("body", "input_id", "detail"),
    [
        (rb'{"inputs":{"message":"a\u0000b"}}', "message", "contains a NUL character"),
        (rb'{"inputs":{"message":"\ud800"}}', "message", "lone surrogate"),
        (rb'{"inputs":{"message":"ok \udfff"}}', "message", "lone surrogate"),
    ],
)
def test_literal_text_no_environment_can_carry_is_a_400_naming_the_input(
    api: RunningApi, body: bytes, input_id: str, detail: str
) -> None:
    response = api.consumer.post("/processes/echo/execution", content=body, headers=JSON)
    problem = _assert_problem(response, 400, detail)
    assert problem["input"] == input_id
    assert str(problem["detail"]).startswith(f"input '{input_id}':")
    assert api.consumer.get("/jobs").json()["jobs"] == []


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (rb'{"inputs":{"settings":"GREETING=a\u0000b"}}', "contains a NUL character"),
        (rb'{"inputs":{"settings":"# \ud800\nGREETING=a"}}', "lone surrogate"),
        (rb'{"inputs":{"settings":{"href":"/uploads/\ud800"}}}', "the href is not valid"),
        (rb'{"inputs":{"settings":{"href":"/uploads/a\u0000"}}}', "the href contains a NUL"),
    ],
)
def test_env_file_text_and_hrefs_no_program_can_take_are_a_400(
    api: RunningApi, body: bytes, detail: str
) -> None:
    response = api.consumer.post("/processes/input-dummy/execution", content=body, headers=JSON)
    problem = _assert_problem(response, 400, detail)
    assert problem["input"] == "settings"


def test_an_unknown_input_named_by_a_lone_surrogate_is_a_400(api: RunningApi) -> None:
    body = rb'{"inputs":{"\ud800":"x","message":"m"}}'
    response = api.consumer.post("/processes/echo/execution", content=body, headers=JSON)
    problem = _assert_problem(response, 400, "is not an input of 'echo'")
    assert problem["input"] == "\ud800"  # sent back escaped, as ASCII JSON


def test_a_subscriber_url_with_a_lone_surrogate_is_a_400(api: RunningApi) -> None:
    body = rb'{"inputs":{"message":"x"},"subscriber":{"successUri":"http://127.0.0.1/\ud800"}}'
    response = api.consumer.post("/processes/echo/execution", content=body, headers=JSON)
    _assert_problem(response, 400, "subscriber")
