"""Self-tests of the OGC API - Processes 1.0 schema helper (``validation.py`` next to them)."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.workflow_api.ogc.validation import (
    HERE,
    SCHEMA_NAMES,
    SCHEMAS_DIR,
    load_example,
    ogc_validator,
    validate_ogc,
)

# Spec example (core/examples/json/ @7a6bad0) -> schema it illustrates.
EXAMPLES = {
    "ConfClasses.json": "confClasses",
    "LandingPage.json": "landingPage",
    "ProcessList.json": "processList",
    "ProcessDescription.json": "process",
    "Execute.json": "execute",
    "Result.json": "results",
}
# These 1.0 examples predate commit 304b0e4, which made ``type`` required in
# statusInfo.yaml: they are valid once ``"type": "process"`` is added, and only then.
STATUS_EXAMPLES = {
    "StatusInfo.json": "statusInfo",
    "StatusInfo-dismissed.json": "statusInfo",
    "JobList.json": "jobList",
}


def _with_type(doc: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    for job in doc.get("jobs", [doc]):
        job["type"] = "process"
    return doc


JOB_ID = "81574318-1eb1-4d7c-af61-4b3fbcf33c4f"
STATUS: dict[str, Any] = {
    "jobID": JOB_ID,
    "processID": "segment-unet",
    "type": "process",
    "status": "running",
    "message": "step 1/2",
    "progress": 50,
    "created": "2026-08-22T10:13:00Z",
    "started": "2026-08-22T10:13:05Z",
    "updated": "2026-08-22T10:14:00Z",
    "links": [{"href": f"https://api/jobs/{JOB_ID}", "rel": "self", "type": "application/json"}],
}
PROCESS: dict[str, Any] = {
    "id": "segment-unet",
    "title": "U-Net segmentation",
    "version": "1.2.0",
    "keywords": ["gpu"],
    "jobControlOptions": ["async-execute", "dismiss"],
    "outputTransmission": ["reference"],
    "additionalParameters": {
        "title": "runtime",
        "parameters": [
            {"name": "image", "value": ["registry/unet:1.2.0"]},
            {"name": "gpu", "value": [1]},
        ],
    },
    "inputs": {
        "images": {
            "title": "input archive",
            "minOccurs": 1,
            "maxOccurs": 1,
            "schema": {
                "type": "string",
                "contentEncoding": "binary",
                "contentMediaType": "application/zip",
            },
        },
        "epochs": {"schema": {"type": "integer", "minimum": 1, "default": 10}},
        "tags": {"maxOccurs": "unbounded", "schema": {"type": "string", "nullable": True}},
    },
    "outputs": {
        "model": {
            "schema": {
                "type": "string",
                "contentEncoding": "binary",
                "contentMediaType": "application/octet-stream",
            }
        }
    },
    "links": [
        {
            "href": "https://api/processes/segment-unet/execution",
            "rel": "http://www.opengis.net/def/rel/ogc/1.0/execute",
        }
    ],
}


def _fails(instance: object, schema_name: str, *fragments: str) -> str:
    with pytest.raises(jsonschema.ValidationError) as excinfo:
        validate_ogc(instance, schema_name)
    message: str = excinfo.value.message
    for fragment in fragments:
        assert fragment in message, message
    return message


# --- vendored files -------------------------------------------------------------------


def test_vendored_files_are_byte_identical_to_upstream() -> None:
    """``upstream-blobs.txt`` holds the git blob ids from ``git ls-tree 7a6bad0``."""
    lines = (HERE / "upstream-blobs.txt").read_text(encoding="utf-8").splitlines()
    entries = [line.split() for line in lines if line and not line.startswith("#")]
    assert len(entries) == 1 + len(SCHEMA_NAMES) + len(EXAMPLES) + len(STATUS_EXAMPLES)
    for blob_id, local, _upstream in entries:
        data = (HERE / local).read_bytes()
        actual = hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False)
        assert actual.hexdigest() == blob_id, f"{local} differs from upstream"


def test_schema_names() -> None:
    assert set(SCHEMA_NAMES) >= {
        "landingPage",
        "confClasses",
        "processList",
        "processSummary",
        "process",
        "descriptionType",
        "inputDescription",
        "outputDescription",
        "schema",
        "link",
        "jobList",
        "statusInfo",
        "results",
        "inlineOrRefData",
        "exception",
        "execute",
    }
    assert len(SCHEMA_NAMES) == 30


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [v for k, v in node.items() if k == "$ref" and isinstance(v, str)]
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_every_ref_points_to_a_vendored_file(name: str) -> None:
    schema = yaml.safe_load((SCHEMAS_DIR / f"{name}.yaml").read_text(encoding="utf-8"))
    for ref in _refs(schema):
        assert (SCHEMAS_DIR / ref).is_file(), f"{name}.yaml refers to missing {ref}"
    # Building the validator and running it resolves the refs for real.
    list(ogc_validator(name).iter_errors({}))


def test_unknown_schema_name() -> None:
    with pytest.raises(ValueError, match=r"unknown OGC schema 'nope'.*statusInfo"):
        validate_ogc({}, "nope")


def test_name_with_suffix_and_cache() -> None:
    validate_ogc(STATUS, "statusInfo.yaml")
    assert ogc_validator("statusInfo") is ogc_validator("statusInfo")


# --- the spec's own examples -----------------------------------------------------------


@pytest.mark.parametrize(("file_name", "schema_name"), EXAMPLES.items())
def test_spec_examples_validate(file_name: str, schema_name: str) -> None:
    validate_ogc(load_example(file_name), schema_name)


@pytest.mark.parametrize(("file_name", "schema_name"), STATUS_EXAMPLES.items())
def test_spec_status_examples_only_lack_type(file_name: str, schema_name: str) -> None:
    example = load_example(file_name)
    _fails(example, schema_name, "'type' is a required property")
    validate_ogc(_with_type(example), schema_name)


@pytest.mark.parametrize(
    ("file_name", "schema_name", "path"),
    [
        ("Result.json", "results", "$.stringOutput"),
        ("Execute.json", "execute", "$.inputs.stringInput"),
        ("ProcessDescription.json", "process", ".allOf[1]"),
    ],
)
def test_strict_one_of_rejects_spec_examples(file_name: str, schema_name: str, path: str) -> None:
    """Why ``oneOf`` is ``anyOf`` by default: the 1.0 branches overlap (see validation.py)."""
    with pytest.raises(jsonschema.ValidationError, match="is valid under each of") as excinfo:
        validate_ogc(load_example(file_name), schema_name, strict_one_of=True)
    assert path in excinfo.value.message


def test_strict_one_of_accepts_documents_without_overlap() -> None:
    validate_ogc(STATUS, "statusInfo", strict_one_of=True)
    validate_ogc({"bbox": [0, 0, 1, 1]}, "bbox", strict_one_of=True)
    with pytest.raises(jsonschema.ValidationError):
        validate_ogc({"bbox": [0, 0, 1]}, "bbox", strict_one_of=True)


# --- documents shaped like ours ------------------------------------------------------------


def test_our_shapes_validate() -> None:
    validate_ogc(STATUS, "statusInfo")
    validate_ogc(
        {"jobs": [STATUS], "links": [{"href": "https://api/jobs", "rel": "self"}]}, "jobList"
    )
    validate_ogc({"jobs": [], "links": []}, "jobList")
    validate_ogc(PROCESS, "process")
    summary = {k: v for k, v in PROCESS.items() if k not in {"inputs", "outputs"}}
    validate_ogc(summary, "processSummary")
    validate_ogc({"processes": [summary], "links": []}, "processList")
    validate_ogc(
        {
            "model": {"href": "https://s3/bucket/model.pt", "type": "application/octet-stream"},
            "score": 0.93,
            "epochs": 20,
            "label": "cat",
            "meta": {"value": {"a": 1}, "mediaType": "application/json"},
        },
        "results",
    )
    validate_ogc(
        {
            "inputs": {
                "images": {"href": "s3://bucket/u123/in.zip", "type": "application/zip"},
                "epochs": 20,
                "tags": ["a", "b"],
            },
            "outputs": {"model": {"transmissionMode": "reference"}},
            "response": "document",
            "subscriber": {
                "successUrl": "https://client/cb/ok",  # 1.0 erratum: required key is "successUrl"
                "successUri": "https://client/cb/ok",
            },
        },
        "execute",
    )
    validate_ogc(
        {
            "type": "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/no-such-job",
            "title": "No such job",
            "status": 404,
            "detail": f"job {JOB_ID} not found",
            "instance": f"/jobs/{JOB_ID}",
        },
        "exception",
    )


# --- broken documents ----------------------------------------------------------------------


def test_status_info_without_job_id() -> None:
    broken = {k: v for k, v in STATUS.items() if k != "jobID"}
    _fails(broken, "statusInfo", "'statusInfo'", "at $:", "'jobID' is a required property")


def test_status_info_with_unknown_status() -> None:
    _fails({**STATUS, "status": "weird"}, "statusInfo", "at $.status", "'weird' is not one of")


@pytest.mark.parametrize("status", [None, "Running", "completed"])
def test_status_info_other_bad_statuses(status: object) -> None:
    _fails({**STATUS, "status": status}, "statusInfo", "at $.status")


@pytest.mark.parametrize(("progress", "fragment"), [(101, "maximum"), (-1, "minimum")])
def test_status_info_progress_out_of_range(progress: int, fragment: str) -> None:
    _fails({**STATUS, "progress": progress}, "statusInfo", "at $.progress", fragment)


def test_status_info_progress_must_be_integer() -> None:
    _fails({**STATUS, "progress": 50.5}, "statusInfo", "at $.progress", "'integer'")


def test_status_info_type_must_be_process() -> None:
    _fails({**STATUS, "type": "job"}, "statusInfo", "at $.type", "'job' is not one of")


def test_status_info_link_needs_href() -> None:
    _fails({**STATUS, "links": [{"rel": "self"}]}, "statusInfo", "at $.links[0]", "'href'")


def test_job_list_without_links() -> None:
    _fails({"jobs": [STATUS]}, "jobList", "'jobList'", "'links' is a required property")


def test_job_list_with_a_bad_job_names_the_path() -> None:
    bad = {**STATUS, "status": "weird"}
    _fails({"jobs": [STATUS, bad], "links": []}, "jobList", "at $.jobs[1].status")


def test_process_with_bogus_job_control_option() -> None:
    _fails(
        {**PROCESS, "jobControlOptions": ["bogus"]},
        "process",
        "at $.jobControlOptions[0]",
        "'bogus' is not one of",
    )


def test_process_with_bogus_output_transmission() -> None:
    _fails({**PROCESS, "outputTransmission": ["inline"]}, "process", "$.outputTransmission[0]")


def test_process_without_version() -> None:
    broken = {k: v for k, v in PROCESS.items() if k != "version"}
    _fails(broken, "process", "'version' is a required property")


def test_process_input_without_schema() -> None:
    broken = copy.deepcopy(PROCESS)
    del broken["inputs"]["epochs"]["schema"]
    _fails(broken, "process", "at $.inputs.epochs", "'schema' is a required property")


def test_process_input_with_invalid_json_schema() -> None:
    broken = copy.deepcopy(PROCESS)
    broken["inputs"]["epochs"]["schema"] = {"type": "int"}
    _fails(broken, "process", "$.inputs.epochs.schema")
    broken["inputs"]["epochs"]["schema"] = {"type": "integer", "const": 3}  # not in OAS 3.0
    _fails(broken, "process", "$.inputs.epochs.schema")


def test_process_input_max_occurs() -> None:
    broken = copy.deepcopy(PROCESS)
    broken["inputs"]["tags"]["maxOccurs"] = "many"
    _fails(broken, "process", "$.inputs.tags.maxOccurs")


def test_process_list_summary_without_id() -> None:
    summary = {"version": "1.0.0"}
    _fails({"processes": [summary], "links": []}, "processList", "at $.processes[0]", "'id'")


def test_landing_page_and_conformance() -> None:
    _fails({"title": "x"}, "landingPage", "'links' is a required property")
    _fails({"conformsTo": "core"}, "confClasses", "at $.conformsTo", "'array'")
    _fails({}, "confClasses", "'conformsTo' is a required property")


def test_exception_needs_type() -> None:
    _fails({"title": "Not found", "status": 404}, "exception", "'type' is a required property")
    _fails({"type": "x", "status": "404"}, "exception", "at $.status")


def test_results_reject_objects_that_are_not_wrapped() -> None:
    """Objects must be wrapped as ``{"value": ...}`` (or be a link with ``href``)."""
    _fails({"meta": {"a": 1}}, "results", "at $.meta")


def test_execute_rejects_bad_response_and_transmission_mode() -> None:
    _fails({"response": "json"}, "execute", "at $.response")
    _fails({"outputs": {"o": {"transmissionMode": "inline"}}}, "execute", "transmissionMode")


def test_error_message_lists_other_errors() -> None:
    broken = {k: v for k, v in STATUS.items() if k not in {"jobID", "type"}}
    broken["progress"] = 101
    message = _fails(broken, "statusInfo", "other error(s)")
    assert message.count("at $") == 3


def test_nullable() -> None:
    """OpenAPI 3.0 ``nullable``: ``statusCode.yaml`` says false; true lets null through."""
    _fails(None, "statusCode", "None is not of type 'string'")
    cls = type(ogc_validator("statusInfo"))
    assert cls({"type": "string", "nullable": True}).is_valid(None)
    assert not cls({"type": "string", "nullable": False}).is_valid(None)
    assert not cls({"type": "string"}).is_valid(None)


def test_format_is_not_asserted() -> None:
    validate_ogc({**STATUS, "created": "yesterday"}, "statusInfo")


def test_readme_mentions_commit() -> None:
    readme = (Path(__file__).parent / "README.md").read_text(encoding="utf-8")
    assert "7a6bad04eaf6accaebc7c03712547fca28f96d89" in readme


def test_subscriber_erratum_requires_success_url() -> None:
    """1.0 ``subscriber.yaml`` requires ``successUrl`` but defines ``successUri``."""
    _fails({"subscriber": {"successUri": "https://c/ok"}}, "execute", "'successUrl'")
    validate_ogc({"subscriber": {"successUrl": "https://c/ok"}}, "execute")
