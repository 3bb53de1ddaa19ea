"""The composition root: `create_app(settings)`; everything is built in the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from workflow_api.errors import install_error_handlers
from workflow_api.routes import admin, jobs, landing, processes, storage, uploads
from workflow_api.services import build_services
from workflow_api.settings import Settings


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = build_services(settings)
        app.state.services = services
        await services.jobs.start()
        try:
            yield
        finally:
            await services.jobs.stop()
            await services.notifier.close()
            services.engine.dispose()

    app = FastAPI(
        title="Workflow API",
        summary="OGC API - Processes for the workflow assets granted to one consumer",
        version="0.1.0",
        openapi_url="/api",
        docs_url="/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    for module in (landing, processes, jobs, uploads, admin, storage):
        app.include_router(module.router)
    return app
