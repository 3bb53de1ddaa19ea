"""The composition root: `create_app(settings)`; everything is built in the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from provisioner.errors import install_error_handlers
from provisioner.routes import admin, consumers, edc, health
from provisioner.services import Parts, build_services
from provisioner.settings import Settings
from workflow_common.server_limits import RequestBodyGuard


def create_app(settings: Settings, parts: Parts | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = build_services(settings, parts)
        app.state.services = services
        services.reconciler.start()
        if services.publisher is not None:
            services.publisher.start()
        try:
            yield
        finally:
            services.reconciler.stop()
            services.close()

    app = FastAPI(
        title="Workflow provisioner",
        summary="EDC HTTP provisioning of per-consumer workflow-apis",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.add_middleware(
        RequestBodyGuard,
        max_bytes=settings.max_request_body_bytes,
        timeout=settings.request_body_timeout_seconds,
    )
    install_error_handlers(app)
    for module in (edc, consumers, admin, health):
        app.include_router(module.router)
    return app
