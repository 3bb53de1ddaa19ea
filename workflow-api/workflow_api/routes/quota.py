"""`/quota` (extension): the consumer's storage quota and how much of it is used."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from workflow_api.deps import ConsumerDep, ServicesDep

router = APIRouter(tags=["uploads"])


@router.get("/quota")
def get_quota(services: ServicesDep, _: ConsumerDep) -> dict[str, Any]:
    """Bytes: `stored` (uploads and everything jobs stored), `reserved` (being received now)."""
    usage = services.ledger.usage()
    return {
        "quota": usage.quota,
        "stored": usage.stored,
        "reserved": usage.reserved,
        "free": usage.free,
    }
