"""Dependency aliases of the provisioner's routes."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, Query, Request

from provisioner.errors import ForbiddenError, UnauthorizedError
from provisioner.services import Services


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def bearer(authorization: str | None) -> str | None:
    scheme, _, value = (authorization or "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def require_admin(
    services: ServicesDep, authorization: Annotated[str | None, Header()] = None
) -> None:
    token = bearer(authorization)
    expected = services.settings.admin_token.get_secret_value()
    if token is None or not hmac.compare_digest(token.encode(), expected.encode()):
        raise UnauthorizedError("the admin API needs 'Authorization: Bearer <admin token>'")


def require_endpoint_secret(
    services: ServicesDep, secret: Annotated[str | None, Query()] = None
) -> None:
    """EDC sends no auth header; a secret in the configured endpoint URL stands in for one.
    Without a secret the settings demand PROVISIONER_EDC_ENDPOINT_UNAUTHENTICATED."""
    expected = services.settings.edc_endpoint_secret
    if expected is None:
        return
    if secret is None or not hmac.compare_digest(
        secret.encode(), expected.get_secret_value().encode()
    ):
        raise ForbiddenError("the provisioning endpoint needs its secret")


AdminDep = Annotated[None, Depends(require_admin)]
EndpointSecretDep = Annotated[None, Depends(require_endpoint_secret)]
