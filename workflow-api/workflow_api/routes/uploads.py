"""`/uploads` (extension): stream a file into the consumer's storage; use its href as an input."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request

from workflow_api.db import Upload
from workflow_api.deps import ConsumerDep, ServicesDep
from workflow_api.ogc import iso_time
from workflow_api.routes.paging import Limit, Offset, page_links
from workflow_common.server_limits import STREAMED

router = APIRouter(tags=["uploads"])

_FILENAME = re.compile(r"[^A-Za-z0-9._ -]")


def upload_document(upload: Upload, base_url: str) -> dict[str, Any]:
    return {
        "id": upload.id,
        "href": f"{base_url}/uploads/{upload.id}",
        "filename": upload.filename,
        "type": upload.media_type,
        "size": upload.size,
        "sha256": upload.sha256,
        "created": iso_time(upload.created),
    }


@router.post("/uploads", status_code=201, max_body_size=STREAMED)  # its own limit and quota
async def create_upload(
    request: Request,
    services: ServicesDep,
    _: ConsumerDep,
    filename: Annotated[str, Query(max_length=255)] = "upload",
    content_type: Annotated[str, Header()] = "application/octet-stream",
    content_length: Annotated[int | None, Header()] = None,
) -> dict[str, Any]:
    """The request body is the file (any size, streamed); `filename` is informational."""
    upload = await services.uploads.receive(
        request.stream(),
        filename=_FILENAME.sub("_", filename) or "upload",
        media_type=content_type.split(";")[0].strip() or "application/octet-stream",
        declared_size=content_length,
    )
    return upload_document(upload, services.settings.base_url)


@router.get("/uploads")
def list_uploads(
    request: Request, services: ServicesDep, _: ConsumerDep, limit: Limit = 10, offset: Offset = 0
) -> dict[str, Any]:
    base_url = services.settings.base_url
    uploads = services.uploads.list(limit + 1, offset)
    return {
        "uploads": [upload_document(u, base_url) for u in uploads[:limit]],
        "links": page_links(
            request, base_url, limit=limit, offset=offset, has_more=len(uploads) > limit
        ),
    }


@router.get("/uploads/{upload_id}")
def get_upload(upload_id: str, services: ServicesDep, _: ConsumerDep) -> dict[str, Any]:
    return upload_document(services.uploads.get(upload_id), services.settings.base_url)


@router.delete("/uploads/{upload_id}", status_code=204)
def delete_upload(upload_id: str, services: ServicesDep, _: ConsumerDep) -> None:
    services.uploads.delete(upload_id)
