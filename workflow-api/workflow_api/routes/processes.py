"""`/processes`: the assets granted to this consumer, and their execution."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from workflow_api.deps import ConsumerDep, ServicesDep
from workflow_api.inputs import ExecuteRequest
from workflow_api.ogc import process_description, process_summary, status_info
from workflow_api.routes.paging import Limit, Offset, page_of

router = APIRouter(tags=["processes"])


@router.get("/processes")
def list_processes(
    request: Request, services: ServicesDep, _: ConsumerDep, limit: Limit = 10, offset: Offset = 0
) -> dict[str, Any]:
    base_url = services.settings.base_url
    page, links = page_of(services.assets.visible(), request, base_url, limit=limit, offset=offset)
    return {"processes": [process_summary(asset, base_url) for asset in page], "links": links}


@router.get("/processes/{process_id}")
def describe_process(process_id: str, services: ServicesDep, _: ConsumerDep) -> dict[str, Any]:
    return process_description(services.assets.get(process_id), services.settings.base_url)


@router.post("/processes/{process_id}/execution", status_code=201)
def execute_process(
    process_id: str, body: ExecuteRequest, services: ServicesDep, _: ConsumerDep
) -> JSONResponse:
    """Always asynchronous: 201, `Location` of the job and its status."""
    asset = services.assets.get(process_id)
    launch = services.inputs.resolve(asset, body.inputs)
    services.inputs.check_subscriber(body.subscriber)
    job = services.jobs.submit(asset, launch, body.subscriber)
    info = status_info(job, services.settings.base_url)
    return JSONResponse(
        info,
        status_code=201,
        headers={"Location": info["links"][0]["href"], "Preference-Applied": "respond-async"},
    )
