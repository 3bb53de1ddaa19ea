"""`/jobs`: list with filters, status, results, logs, dismissal and removal."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
from sqlmodel import Session, col, select

from workflow_api.db import Job, JobStatus
from workflow_api.deps import ConsumerDep, ServicesDep
from workflow_api.errors import (
    BadRequestError,
    JobFailedError,
    NoSuchOutputError,
    ResultNotReadyError,
)
from workflow_api.ogc import results_document, status_info
from workflow_api.routes.paging import Limit, Offset, page_links, page_of
from workflow_api.storage import base as keys
from workflow_common.clock import as_utc, utcnow

router = APIRouter(tags=["jobs"])

ListParam = Annotated[list[str] | None, Query()]
MAX_DURATION_SECONDS = 10**10  # some 300 years: any real duration, and far from an overflow


@router.get("/jobs")
def list_jobs(
    request: Request,
    services: ServicesDep,
    _: ConsumerDep,
    processID: ListParam = None,
    status: ListParam = None,
    type: ListParam = None,
    datetime: str | None = None,
    minDuration: Annotated[int | None, Query(ge=0, le=MAX_DURATION_SECONDS)] = None,
    maxDuration: Annotated[int | None, Query(ge=0, le=MAX_DURATION_SECONDS)] = None,
    limit: Limit = 10,
    offset: Offset = 0,
) -> dict[str, Any]:
    process_ids = _split(processID)
    statuses = [_status(value) for value in _split(status)]
    if type is not None and set(_split(type)) - {"process"}:
        return {
            "jobs": [],
            "links": page_links(
                request, services.settings.base_url, limit=limit, offset=offset, has_more=False
            ),
        }
    query = select(Job).order_by(col(Job.created).desc(), col(Job.id))
    if process_ids:
        query = query.where(col(Job.process_id).in_(process_ids))
    if statuses:
        query = query.where(col(Job.status).in_(statuses))
    if datetime:
        start, end = _interval(datetime)
        if start is not None:
            query = query.where(col(Job.created) >= start)
        if end is not None:
            query = query.where(col(Job.created) <= end)
    with Session(services.engine) as session:
        jobs = list(session.exec(query))
    if minDuration is not None or maxDuration is not None:
        jobs = [job for job in jobs if _within(job, minDuration, maxDuration, bool(statuses))]
    base_url = services.settings.base_url
    page, links = page_of(jobs, request, base_url, limit=limit, offset=offset)
    return {"jobs": [status_info(job, base_url) for job in page], "links": links}


@router.get("/jobs/{job_id}")
def get_job(job_id: str, services: ServicesDep, _: ConsumerDep) -> dict[str, Any]:
    return status_info(services.jobs.get(job_id), services.settings.base_url)


@router.delete("/jobs/{job_id}")
def delete_job(job_id: str, services: ServicesDep, _: ConsumerDep) -> dict[str, Any]:
    """accepted/running → dismissed (really stopped); finished → removed with its artifacts."""
    job = services.jobs.get(job_id)
    if job.status.finished:
        services.jobs.remove(job_id)
        return {**status_info(job, services.settings.base_url), "message": "removed"}
    return status_info(services.jobs.dismiss(job_id), services.settings.base_url)


@router.get("/jobs/{job_id}/results")
def get_results(job_id: str, services: ServicesDep, _: ConsumerDep) -> dict[str, Any]:
    job = _finished_successfully(services, job_id)
    return results_document(job, services.settings.base_url)


@router.get("/jobs/{job_id}/results/{output_id}")
def get_result(job_id: str, output_id: str, services: ServicesDep, _: ConsumerDep) -> Response:
    """A redirect to a short-lived signed URL of the stored output (Range works there)."""
    job = _finished_successfully(services, job_id)
    if output_id not in (job.results or {}):
        raise NoSuchOutputError(f"job {job_id!r} has no output {output_id!r}")
    url = services.store.signed_url(
        "GET",
        keys.output_key(job_id, output_id),
        timedelta(seconds=services.settings.signed_url_ttl_seconds),
    )
    return RedirectResponse(url, status_code=307)


@router.get("/jobs/{job_id}/logs", response_model=None)
def get_logs(job_id: str, services: ServicesDep, _: ConsumerDep) -> Response:
    """The worker's log: live while it runs, from storage once the job has ended."""
    job = services.jobs.get(job_id)
    if job.status is JobStatus.RUNNING:
        live = services.jobs.live_log(job_id)
        if live is not None:
            return FileResponse(live, media_type="text/plain; charset=utf-8")
    key = keys.log_key(job_id)
    if job.status.finished and services.store.size(key) is not None:
        ttl = timedelta(seconds=services.settings.signed_url_ttl_seconds)
        return RedirectResponse(services.store.signed_url("GET", key, ttl), status_code=307)
    return PlainTextResponse("")


def _finished_successfully(services: Any, job_id: str) -> Job:
    job: Job = services.jobs.get(job_id)
    if job.status is JobStatus.SUCCESSFUL:
        return job
    if job.status is JobStatus.FAILED:
        raise JobFailedError(f"the job failed: {job.message}")
    if job.status is JobStatus.DISMISSED:
        raise ResultNotReadyError("the job was dismissed; it has no results")
    raise ResultNotReadyError(f"the job is {job.status.value}; results are not ready yet")


def _split(values: list[str] | None) -> list[str]:
    return [part for value in values or [] for part in value.split(",") if part]


def _status(value: str) -> JobStatus:
    try:
        return JobStatus(value)
    except ValueError:
        allowed = ", ".join(status.value for status in JobStatus)
        raise BadRequestError(f"status {value!r} is not one of {allowed}") from None


def _interval(text: str) -> tuple[datetime | None, datetime | None]:
    """An RFC 3339 instant, or an interval `start/end` with `..` for an open end."""
    parts = text.split("/")
    if len(parts) == 1:
        instant = _instant(parts[0])
        return instant, instant
    if len(parts) != 2:
        raise BadRequestError(f"datetime {text!r} is neither an instant nor an interval")
    start, end = (None if part in {"", ".."} else _instant(part) for part in parts)
    return start, end


def _instant(text: str) -> datetime:
    try:
        return as_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        raise BadRequestError(f"datetime {text!r} is not an RFC 3339 date-time") from None


def _within(job: Job, minimum: int | None, maximum: int | None, status_filtered: bool) -> bool:
    """Durations: running = now - started, finished = finished - started (accepted: no duration)."""
    if job.started is None:
        return False
    end = job.finished or utcnow()
    seconds = (end - job.started).total_seconds()
    return (minimum is None or seconds >= minimum) and (maximum is None or seconds <= maximum)
