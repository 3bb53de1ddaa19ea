"""Landing page and conformance: the only routes without a token (besides the API document)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from workflow_api.deps import ServicesDep
from workflow_api.ogc import CONFORMANCE_CLASSES, landing_page

router = APIRouter(tags=["capabilities"])


@router.get("/")
def get_landing_page(services: ServicesDep) -> dict[str, Any]:
    return landing_page(services.settings.base_url)


@router.get("/conformance")
def get_conformance() -> dict[str, Any]:
    return {"conformsTo": CONFORMANCE_CLASSES}
