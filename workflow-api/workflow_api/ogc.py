"""OGC API - Processes 1.0 documents built from our models: pure functions, no I/O."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from workflow_api.db import Job, JobStatus
from workflow_common.clock import as_utc
from workflow_contracts.asset import WorkflowAsset

CONFORMANCE_CLASSES = [
    f"http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/{name}"
    for name in ("core", "ogc-process-description", "json", "job-list", "dismiss", "callback")
]
OGC_REL = "http://www.opengis.net/def/rel/ogc/1.0"
JSON = "application/json"
OPENAPI_JSON = "application/vnd.oai.openapi+json;version=3.1"


def link(href: str, rel: str, media_type: str = JSON, title: str | None = None) -> dict[str, str]:
    result = {"href": href, "rel": rel, "type": media_type}
    if title:
        result["title"] = title
    return result


def landing_page(base_url: str) -> dict[str, Any]:
    return {
        "title": "Workflow API",
        "description": "Containerised workflows of a dataspace, as OGC API - Processes",
        "links": [
            link(f"{base_url}/", "self", title="this document"),
            link(f"{base_url}/api", "service-desc", OPENAPI_JSON, "the API definition"),
            link(f"{base_url}/docs", "service-doc", "text/html", "the API documentation"),
            link(f"{base_url}/conformance", f"{OGC_REL}/conformance", title="conformance"),
            link(f"{base_url}/processes", f"{OGC_REL}/processes", title="processes"),
            link(f"{base_url}/jobs", f"{OGC_REL}/job-list", title="jobs"),
        ],
    }


def process_summary(asset: WorkflowAsset, base_url: str) -> dict[str, Any]:
    href = f"{base_url}/processes/{asset.id}"
    return {
        "id": asset.id,
        "title": asset.title,
        "description": asset.description,
        "version": asset.version,
        "jobControlOptions": ["async-execute", "dismiss"],
        "outputTransmission": ["reference"],
        "links": [
            link(href, "self", title="process description"),
            link(f"{href}/execution", f"{OGC_REL}/execute", title="execute"),
        ],
    }


def process_description(asset: WorkflowAsset, base_url: str) -> dict[str, Any]:
    resources = asset.execution.resources
    return {
        **process_summary(asset, base_url),
        "inputs": {
            item.id: {
                "title": item.title or item.id,
                "description": item.description,
                "minOccurs": 1 if item.required and item.default is None else 0,
                "maxOccurs": 1,
                "schema": item.value_schema(),
                "keywords": [item.kind.value],
            }
            for item in asset.inputs
        },
        "outputs": {
            item.id: {
                "title": item.title or item.id,
                "description": item.description,
                "schema": item.value_schema(),
                "keywords": [item.kind.value],
            }
            for item in asset.outputs
        },
        "additionalParameters": {
            "title": "execution",
            "parameters": [
                # As text: an integer matches both the `number` and the `integer` branch of
                # the standard's `oneOf` for these values, and so is valid under none.
                {"name": name, "value": [str(value)]}
                for name, value in (
                    ("image", asset.execution.image),
                    ("cpu", resources.cpu),
                    ("memory", resources.memory),
                    ("gpu", resources.gpu),
                    ("timeoutSeconds", asset.execution.timeout_seconds),
                )
            ],
        },
    }


def iso_time(moment: datetime | None) -> str | None:
    return as_utc(moment).isoformat().replace("+00:00", "Z") if moment else None


def status_info(job: Job, base_url: str) -> dict[str, Any]:
    href = f"{base_url}/jobs/{job.id}"
    links = [
        link(href, "self", title="job status"),
        # From the start, so that a client can follow the job from the execute's answer.
        link(href, "monitor", title="job status"),
        link(f"{base_url}/jobs", "up", title="job list"),
        link(f"{href}/logs", f"{OGC_REL}/log", "text/plain", "job log"),
    ]
    if job.status is JobStatus.FAILED:
        links.append(link(f"{href}/results", f"{OGC_REL}/exceptions", title="job failure"))
    elif job.status is not JobStatus.DISMISSED:
        # While the job runs its results answer "not ready" (404), as the standard says.
        links.append(link(f"{href}/results", f"{OGC_REL}/results", title="job results"))
    info: dict[str, Any] = {
        "jobID": job.id,
        "id": job.id,
        "processID": job.process_id,
        "type": "process",
        "status": job.status.value,
        "message": job.message,
        "progress": job.progress,
        "created": iso_time(job.created),
        "started": iso_time(job.started),
        "finished": iso_time(job.finished),
        "updated": iso_time(job.updated),
        "links": links,
    }
    return {key: value for key, value in info.items() if value is not None}


def results_document(job: Job, base_url: str) -> dict[str, Any]:
    """Output id -> `{href, type}`; `job.results` holds what push-out stored for each output."""
    return {
        output_id: {
            "href": f"{base_url}/jobs/{job.id}/results/{output_id}",
            "type": stored["media_type"],
        }
        for output_id, stored in sorted((job.results or {}).items())
    }
