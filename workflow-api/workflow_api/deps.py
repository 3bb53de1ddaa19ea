"""Dependency aliases: routes get the app's services and the caller's claims through these."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from workflow_api.auth import bearer_token
from workflow_api.services import Services
from workflow_api.storage.base import ObjectStore
from workflow_contracts.tokens import TokenClaims


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def get_store(request: Request) -> ObjectStore:
    return get_services(request).store


ServicesDep = Annotated[Services, Depends(get_services)]
StoreDep = Annotated[ObjectStore, Depends(get_store)]


def consumer_claims(
    services: ServicesDep, authorization: Annotated[str | None, Header()] = None
) -> TokenClaims:
    verifier = services.verifier
    return verifier.require_consumer(verifier.verify(bearer_token(authorization)))


def admin_claims(
    services: ServicesDep, authorization: Annotated[str | None, Header()] = None
) -> TokenClaims:
    verifier = services.verifier
    return verifier.require_admin(verifier.verify(bearer_token(authorization)))


ConsumerDep = Annotated[TokenClaims, Depends(consumer_claims)]
AdminDep = Annotated[TokenClaims, Depends(admin_claims)]
