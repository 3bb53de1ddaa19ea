"""What every HTTP server of the project bounds: body size, header and body read time, keep-alive,
connections. Shared by `workflow-api serve` and `provisioner serve`/`dev`.

- **Body size** (`RequestBodyGuard`): a Content-Length above `max_request_body_bytes` is refused
  before anything is read, a body without one is counted as it streams in; either way 413
  problem JSON (from the service's own error handler) and the connection is closed. Routes that
  stream a body and enforce a limit of their own (uploads) declare FastAPI's per-route
  `max_body_size=STREAMED`, which the guard reads. (FastAPI's app-wide `max_body_size` is not
  used: a route-level limit answers it in plain text, not problem JSON.)
- **Slow bodies** (`RequestBodyGuard`): a bounded body must arrive within
  `request_body_timeout_seconds`, a streamed one may not stall that long; else 408.
- **Slow headers**: uvicorn has no header timeout (its keep-alive timer starts only after a
  response), so `GuardedH11Protocol` closes a connection whose request line and headers have
  not arrived within `request_header_timeout_seconds`; h11 bounds their size.
- **Connections**: uvicorn's `limit_concurrency` answers 503 beyond `max_concurrent_connections`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

MiB = 1024**2
STREAMED = 2**62  # a route's max_body_size: it streams the body and enforces its own limit
MAX_HEADER_BYTES = 64 * 1024  # request line and headers (h11's incomplete-event limit)
CLOSE_AFTER = {408, 413}  # the rest of such a body is never read: the connection cannot go on


class ServerLimits(BaseSettings):
    """Settings of every server (mixed into each service's Settings, with its prefix)."""

    max_request_body_bytes: int = Field(
        default=MiB, gt=0, description="JSON request bodies; uploads stream with their own limit"
    )
    request_header_timeout_seconds: float = Field(
        default=10.0, gt=0, description="request line and headers must arrive within this"
    )
    request_body_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="a JSON body must arrive within this; an upload may not stall longer",
    )
    keep_alive_timeout_seconds: float = Field(default=5.0, gt=0)
    max_concurrent_connections: int = Field(
        default=100, gt=0, description="beyond this, requests are answered 503"
    )


def uvicorn_options(limits: ServerLimits) -> dict[str, Any]:
    """The `uvicorn.run`/`uvicorn.Config` arguments that enforce `limits`."""
    return {
        "http": guarded_protocol(limits.request_header_timeout_seconds),
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
        "timeout_keep_alive": limits.keep_alive_timeout_seconds,
        "limit_concurrency": limits.max_concurrent_connections,
    }


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, plus a deadline for each request's line and headers: from the
    connection's start, and from the first byte of each further request on it."""

    header_timeout = 10.0
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        if self._between_requests():
            self._arm_header_timer()
        super().data_received(data)
        if not self._between_requests():
            self._disarm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def _between_requests(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self._between_requests() and not self.transport.is_closing():
            log.info("closing a connection whose request headers did not arrive in time")
            self.transport.close()


def guarded_protocol(header_timeout: float) -> type[GuardedH11Protocol]:
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"header_timeout": header_timeout})


class RequestBodyGuard:
    """Bounds the size of a request body and the time to receive it (see the module docstring).
    Waiting for a disconnect after the body (what streaming responses do) is never timed."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, timeout: float) -> None:
        self._app = app
        self._max_bytes = max_bytes
        self._timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        declared = _content_length(scope)
        body_done = False
        started = False
        received = 0

        async def guarded_receive() -> Message:
            nonlocal body_done, received
            if body_done:
                return await receive()
            limit: int = scope.get(ROUTE_LIMIT_KEY) or self._max_bytes  # the route's, if declared
            if declared is not None and declared > limit:
                raise BodyTooLargeError(limit)
            streamed = limit >= STREAMED
            wait = self._timeout if streamed else deadline - loop.time()
            try:
                message = await asyncio.wait_for(receive(), max(wait, 0.0))
            except TimeoutError:
                raise BodyTooSlowError(self._timeout) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError(limit)
            return message

        async def closing_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if message["status"] in CLOSE_AFTER:
                    headers = [(k, v) for k, v in message.get("headers", []) if k != b"connection"]
                    message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        try:
            await self._app(scope, guarded_receive, closing_send)
        except (BodyTooSlowError, BodyTooLargeError) as error:  # the app did not answer it
            if started:
                raise
            await _problem(send, error.status_code, str(error))


ROUTE_LIMIT_KEY = "starlette.max_body_size"  # where FastAPI puts a route's max_body_size


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BodyTooLargeError(HTTPException):
    """An HTTP 413, answered like BodyTooSlowError."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            status_code=413,
            detail=f"the request body exceeds the limit of {limit} bytes for this route",
            headers={"connection": "close"},
        )

    def __str__(self) -> str:
        return str(self.detail)


class BodyTooSlowError(HTTPException):
    """An HTTP 408: FastAPI re-raises HTTP exceptions met while reading a body, so each service's
    own handler answers it as problem JSON."""

    def __init__(self, timeout: float) -> None:
        super().__init__(
            status_code=408,
            detail=f"the request body did not arrive within {timeout:g} s",
            headers={"connection": "close"},
        )

    def __str__(self) -> str:
        return str(self.detail)


async def _problem(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"title": "Request refused", "status": status, "detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
