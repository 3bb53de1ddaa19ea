"""The composition root: `create_app(settings)`; everything is built in the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from data_sidecar.egress import Resolver, system_resolver
from workflow_api.errors import install_error_handlers
from workflow_api.routes import admin, jobs, landing, processes, quota, storage, uploads
from workflow_api.services import build_services
from workflow_api.settings import Settings
from workflow_common.server_limits import RequestBodyGuard


def create_app(settings: Settings, resolver: Resolver = system_resolver) -> FastAPI:
    """`resolver`: how the egress policy resolves names (tests inject a hosts table)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = build_services(settings, resolver)
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
    app.add_middleware(
        RequestBodyGuard,
        max_bytes=settings.max_request_body_bytes,
        timeout=settings.request_body_timeout_seconds,
    )
    app.add_middleware(PublicPath, path=urlsplit(settings.base_url).path)  # the outer one
    install_error_handlers(app)
    for module in (landing, processes, jobs, uploads, quota, admin, storage):
        app.include_router(module.router)
    return app


class PublicPath:
    """Serve the routes under the public URL's path too.

    Behind an ingress that routes `<host>/consumers/<slug>/...` here without rewriting the path,
    requests arrive under the public URL's path; as the ASGI root path, it is stripped before
    routing, so they match the same routes as requests to `/...` (the provisioner's, through the
    Service). Links are made from the public URL either way.
    """

    def __init__(self, app: ASGIApp, path: str) -> None:
        self._app = app
        self._path = path.rstrip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._path and scope["type"] in ("http", "websocket"):
            path: str = scope["path"]
            if path == self._path or path.startswith(f"{self._path}/"):
                scope = {**scope, "root_path": scope.get("root_path", "") + self._path}
        await self._app(scope, receive, send)
