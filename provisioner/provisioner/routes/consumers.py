"""What consumers reach: their credentials (with the per-grant secret only) and the JWKS."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header

from provisioner.deps import ServicesDep, bearer
from provisioner.errors import NotFoundError

router = APIRouter(tags=["consumers"])


@router.get("/credentials")
def get_credentials(
    services: ServicesDep, authorization: Annotated[str | None, Header()] = None
) -> dict[str, Any]:
    """`{endpoint, token, expiresAt, assets}`; 404 for anything but a live grant's secret."""
    secret = bearer(authorization)
    if secret is None:
        raise NotFoundError("no credentials here")
    return services.handover.credentials(secret)


@router.get("/.well-known/jwks.json")
def get_jwks(services: ServicesDep) -> dict[str, Any]:
    return services.tokens.jwks()
