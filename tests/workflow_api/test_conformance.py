"""Checks that mirror the OGC ETS for API - Processes 1.0 (ets-ogcapi-processes10), run offline.

Every document is validated against the vendored 1.0 schemas (tests/workflow_api/ogc/schemas).
"""

from __future__ import annotations

import uuid

import pytest
from openapi_spec_validator import validate as validate_openapi

from tests.workflow_api.ogc.validation import validate_ogc
from workflow_api.ogc import CONFORMANCE_CLASSES
from workflow_testkit.workflow_api import RunningApi, execute, wait_for_job

OGC_REL = "http://www.opengis.net/def/rel/ogc/1.0"
EXCEPTIONS = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0"


def test_landing_page_links_and_schema(api: RunningApi) -> None:
    response = api.client().get("/", headers={"Accept": "*/*"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    page = response.json()
    validate_ogc(page, "landingPage")
    rels = {link["rel"]: link for link in page["links"]}
    assert {"service-desc", f"{OGC_REL}/conformance", f"{OGC_REL}/processes"} <= set(rels)
    assert f"{OGC_REL}/job-list" in rels
    api_document = api.client().get(rels["service-desc"]["href"])
    assert api_document.status_code == 200
    validate_openapi(api_document.json())


def test_conformance_declares_the_classes_we_implement(api: RunningApi) -> None:
    document = api.client().get("/conformance").json()
    validate_ogc(document, "confClasses")
    assert set(document["conformsTo"]) == set(CONFORMANCE_CLASSES)
    assert not any(c.endswith(("/oas30", "/html")) for c in document["conformsTo"])


def test_process_list_schema_limit_and_links(api: RunningApi) -> None:
    client = api.consumer
    document = client.get("/processes").json()
    validate_ogc(document, "processList")
    assert {p["id"] for p in document["processes"]} == {"dummy", "input-dummy", "echo", "noop"}
    limited = client.get("/processes", params={"limit": 1}).json()
    validate_ogc(limited, "processList")
    assert len(limited["processes"]) == 1
    assert "next" in {link["rel"] for link in limited["links"]}
    for bad in (0, 10001, "x"):
        assert client.get("/processes", params={"limit": bad}).status_code == 400


@pytest.mark.parametrize("process_id", ["dummy", "input-dummy", "echo", "noop"])
def test_every_process_description_validates(api: RunningApi, process_id: str) -> None:
    description = api.consumer.get(f"/processes/{process_id}").json()
    validate_ogc(description, "process")
    assert description["jobControlOptions"] == ["async-execute", "dismiss"]
    assert description["outputTransmission"] == ["reference"]
    execute_links = [x for x in description["links"] if x["rel"] == f"{OGC_REL}/execute"]
    assert execute_links[0]["href"].endswith(f"/processes/{process_id}/execution")


def test_echo_has_a_plain_string_input_and_pause(api: RunningApi) -> None:
    inputs = api.consumer.get("/processes/echo").json()["inputs"]
    schema = inputs["message"]["schema"]
    assert schema["type"] == "string"
    assert not {"format", "contentMediaType", "contentEncoding"} & set(schema)
    assert inputs["pause"]["minOccurs"] == 0


def test_unknown_process_is_no_such_process(api: RunningApi) -> None:
    response = api.consumer.get(f"/processes/invalid-process-{uuid.uuid4()}")
    assert response.status_code == 404
    validate_ogc(response.json(), "exception")
    assert response.json()["type"] == f"{EXCEPTIONS}/no-such-process"


@pytest.mark.parametrize("prefer", [None, "respond-async", "respond-sync", "wait=5, respond-async"])
def test_execution_is_always_async_201_with_location(api: RunningApi, prefer: str | None) -> None:
    headers = {"Prefer": prefer} if prefer else {}
    response = api.consumer.post(
        "/processes/echo/execution", json={"inputs": {"message": "hi"}}, headers=headers
    )
    assert response.status_code == 201
    info = response.json()
    validate_ogc(info, "statusInfo")
    assert response.headers["Location"] == f"{api.base_url}/jobs/{info['jobID']}"
    assert info["status"] == "accepted"
    assert info["processID"] == "echo"
    final = wait_for_job(api.consumer, info["jobID"])
    validate_ogc(final, "statusInfo")
    results = api.consumer.get(f"/jobs/{info['jobID']}/results").json()
    validate_ogc(results, "results")


def test_execute_request_in_the_spec_shape_is_accepted(api: RunningApi) -> None:
    body = {
        "inputs": {"message": {"value": "qualified"}, "pause": 0},
        "outputs": {"echo": {"transmissionMode": "reference"}},
        "response": "document",
    }
    validate_ogc(body, "execute")
    response = api.consumer.post("/processes/echo/execution", json=body)
    assert response.status_code == 201
    assert wait_for_job(api.consumer, response.json()["jobID"])["status"] == "successful"


def test_a_status_document_can_be_followed_from_the_execute_answer(api: RunningApi) -> None:
    client = api.consumer
    response = client.post(
        "/processes/echo/execution", json={"inputs": {"message": "x", "pause": 5}}
    )
    links = {link["rel"]: link["href"] for link in response.json()["links"]}
    job_url = f"{api.base_url}/jobs/{response.json()['jobID']}"
    assert links["monitor"] == links["self"] == job_url
    assert links[f"{OGC_REL}/results"] == f"{job_url}/results"  # "not ready" until it ends
    client.delete(job_url)


def test_description_values_match_one_branch_of_the_standards_oneof(api: RunningApi) -> None:
    """The schema allows string | number | integer | array | object: an integer matches two."""
    parameters = api.consumer.get("/processes/echo").json()["additionalParameters"]["parameters"]
    assert {p["name"] for p in parameters} >= {"image", "cpu", "memory", "gpu", "timeoutSeconds"}
    for parameter in parameters:
        assert all(isinstance(value, str) for value in parameter["value"]), parameter


def test_unknown_job_is_no_such_job(api: RunningApi) -> None:
    for path in ("/jobs/{}", "/jobs/{}/results", "/jobs/{}/results/echo"):
        response = api.consumer.get(path.format(uuid.uuid4()))
        assert response.status_code == 404
        assert response.json()["type"] == f"{EXCEPTIONS}/no-such-job"
    assert api.consumer.delete(f"/jobs/{uuid.uuid4()}").json()["type"].endswith("no-such-job")


def test_results_of_a_running_job_are_not_ready(api: RunningApi) -> None:
    client = api.consumer
    job_id = execute(client, "echo", {"message": "slow", "pause": 5})
    response = client.get(f"/jobs/{job_id}/results")
    assert response.status_code == 404
    validate_ogc(response.json(), "exception")
    assert response.json()["type"] == f"{EXCEPTIONS}/result-not-ready"
    client.delete(f"/jobs/{job_id}")


def test_job_list_validates_and_carries_process_ids(api: RunningApi) -> None:
    client = api.consumer
    job_id = execute(client, "echo", {"message": "listed"})
    wait_for_job(client, job_id)
    document = client.get("/jobs").json()
    validate_ogc(document, "jobList")
    assert document["jobs"], "the ETS requires a non-empty list"
    assert all("processID" in job for job in document["jobs"])


def test_dismiss_answers_status_info_with_dismissed(api: RunningApi) -> None:
    client = api.consumer
    job_id = execute(client, "echo", {"message": "bye", "pause": 30})
    wait_for_job(client, job_id, {"running"})
    response = client.delete(f"/jobs/{job_id}")
    assert response.status_code == 200
    validate_ogc(response.json(), "statusInfo")
    assert response.json()["status"] == "dismissed"


def test_errors_are_problem_json_without_stack_traces(api: RunningApi) -> None:
    response = api.consumer.post(
        "/processes/echo/execution",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "Traceback" not in response.text
    wrong_method = api.consumer.put("/processes")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["content-type"].startswith("application/problem+json")
