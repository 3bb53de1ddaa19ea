"""Errors the provisioner answers with, as RFC 7807 problem JSON.

ProvisionerError
├── RefusedError        400  verification failed; EDC treats a 4xx as fatal
├── UnauthorizedError   401  admin token missing or wrong
├── ForbiddenError      403  EDC endpoint secret missing or wrong
├── NotFoundError       404  (also every credentials failure: nothing to learn from it)
├── ConflictError       409  a deprovision for a transfer EDC still reports as live
└── RetryLaterError     503  the Management API could not be asked; EDC retries 500-504
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

PROBLEMS = "https://workflow-middle-layer.example/problems"


class ProvisionerError(Exception):
    status = 500
    slug = "internal-error"
    title = "Internal server error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class RefusedError(ProvisionerError):
    status, slug, title = 400, "refused", "Request refused"


class UnauthorizedError(ProvisionerError):
    status, slug, title = 401, "unauthorized", "Unauthorized"


class ForbiddenError(ProvisionerError):
    status, slug, title = 403, "forbidden", "Forbidden"


class NotFoundError(ProvisionerError):
    status, slug, title = 404, "not-found", "Not found"


class ConflictError(ProvisionerError):
    status, slug, title = 409, "conflict", "Conflict"


class RetryLaterError(ProvisionerError):
    status, slug, title = 503, "retry-later", "Try again later"


def problem(status: int, slug: str, title: str, detail: str) -> JSONResponse:
    body = {"type": f"{PROBLEMS}/{slug}", "title": title, "status": status, "detail": detail}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status, media_type="application/problem+json", headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    async def on_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ProvisionerError)
        return problem(error.status, error.slug, error.title, error.detail)

    async def on_validation(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        detail = "; ".join(
            f"{'.'.join(str(p) for p in item['loc'])}: {item['msg']}" for item in error.errors()
        )
        return problem(400, "invalid-request", "Invalid request", detail)

    async def on_http(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        return problem(
            error.status_code, f"http-{error.status_code}", "HTTP error", str(error.detail)
        )

    async def on_unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(
            500, "internal-error", "Internal server error", "an unexpected error occurred"
        )

    app.add_exception_handler(ProvisionerError, on_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
