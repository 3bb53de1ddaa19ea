"""Errors the workflow-api answers with, as RFC 7807 / OGC problem JSON.

    ApiError                      (status, OGC or project `type` URI, title)
    ├── BadRequestError           400  invalid-parameter-value
    │   └── InvalidInputError     400  an execute input, named in `detail`
    ├── UnauthorizedError         401
    ├── ForbiddenError            403
    ├── NotFoundError             404  not-found
    │   ├── NoSuchProcessError    404  .../no-such-process
    │   ├── NoSuchJobError        404  .../no-such-job
    │   ├── NoSuchUploadError     404  not-found
    │   └── NoSuchOutputError     404  .../no-such-output
    ├── ResultNotReadyError       404  .../result-not-ready
    ├── ConflictError             409
    ├── PayloadTooLargeError      413
    └── JobFailedError            500  the job ended `failed`; its message is the detail

Only `ApiError`s reach clients with their detail; anything else is a 500 without a stack trace.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

OGC_EXCEPTIONS = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0"
PROJECT_EXCEPTIONS = "https://workflow-middle-layer.example/problems"
PROBLEM_MEDIA_TYPE = "application/problem+json"


class ApiError(Exception):
    status = 500
    type = f"{PROJECT_EXCEPTIONS}/internal-error"
    title = "Internal server error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body


class BadRequestError(ApiError):
    status = 400
    type = f"{PROJECT_EXCEPTIONS}/invalid-parameter-value"
    title = "Invalid request"


class InvalidInputError(BadRequestError):
    type = f"{PROJECT_EXCEPTIONS}/invalid-input"
    title = "Invalid input"

    def __init__(self, input_id: str, reason: str) -> None:
        super().__init__(f"input {input_id!r}: {reason}", input=input_id)


class UnauthorizedError(ApiError):
    status = 401
    type = f"{PROJECT_EXCEPTIONS}/unauthorized"
    title = "Unauthorized"


class ForbiddenError(ApiError):
    status = 403
    type = f"{PROJECT_EXCEPTIONS}/forbidden"
    title = "Forbidden"


class NotFoundError(ApiError):
    status = 404
    type = f"{PROJECT_EXCEPTIONS}/not-found"
    title = "Not found"


class NoSuchProcessError(NotFoundError):
    type = f"{OGC_EXCEPTIONS}/no-such-process"
    title = "No such process"


class NoSuchJobError(NotFoundError):
    type = f"{OGC_EXCEPTIONS}/no-such-job"
    title = "No such job"


class NoSuchUploadError(NotFoundError):
    title = "No such upload"


class NoSuchOutputError(NotFoundError):
    type = f"{OGC_EXCEPTIONS}/no-such-output"
    title = "No such output"


class ResultNotReadyError(ApiError):
    status = 404
    type = f"{OGC_EXCEPTIONS}/result-not-ready"
    title = "Result not ready"


class ConflictError(ApiError):
    status = 409
    type = f"{PROJECT_EXCEPTIONS}/conflict"
    title = "Conflict"


class PayloadTooLargeError(ApiError):
    status = 413
    type = f"{PROJECT_EXCEPTIONS}/payload-too-large"
    title = "Payload too large"


class JobFailedError(ApiError):
    status = 500
    type = f"{PROJECT_EXCEPTIONS}/job-failed"
    title = "Job failed"


class ProblemResponse(JSONResponse):
    """Problem JSON as ASCII: a detail quoting what a client sent (a lone surrogate, say) always
    encodes, so an error about bad input can never become a failure of its own."""

    media_type = PROBLEM_MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def problem_response(error: ApiError, request: Request | None = None) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    instance = request.url.path if request is not None else None
    return ProblemResponse(error.body(instance), status_code=error.status, headers=headers)


def problem(
    status: int, slug: str, title: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A problem response outside the ApiError tree (the signed-URL routes), `type` by slug."""
    body = {
        "type": f"{PROJECT_EXCEPTIONS}/{slug}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    return ProblemResponse(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    async def on_api_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ApiError)
        return problem_response(error, request)

    async def on_validation_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}"
            for item in error.errors()
        )
        return problem_response(BadRequestError(problems), request)

    async def on_http_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        generic = ApiError(str(error.detail))
        generic.status = error.status_code
        generic.title = "Method not allowed" if error.status_code == 405 else "HTTP error"
        generic.type = f"{PROJECT_EXCEPTIONS}/http-{error.status_code}"
        return problem_response(generic, request)

    async def on_unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(ApiError("an unexpected error occurred"), request)

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
