"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlmodel import Session

from provisioner.deps import ServicesDep
from provisioner.errors import RetryLaterError

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> dict[str, Any]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(services: ServicesDep) -> dict[str, Any]:
    try:
        with Session(services.engine) as session:
            session.exec(text("SELECT 1"))  # type: ignore[call-overload]
    except Exception as error:
        raise RetryLaterError(f"database unavailable: {type(error).__name__}") from error
    if not services.reconciler.alive():
        raise RetryLaterError("the reconciler is not running")
    return {"status": "ready"}


@router.get("/metrics")
def metrics(services: ServicesDep) -> Response:
    return Response(services.metrics.render(), media_type=CONTENT_TYPE_LATEST)
