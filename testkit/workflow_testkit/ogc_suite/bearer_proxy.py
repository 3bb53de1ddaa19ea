"""A loopback reverse proxy that adds the consumer's bearer token to every request.

The suite sends no credentials and cannot be told to; a consumer's tools would send the token,
so the proxy does what they do, and nothing else: the workflow-api behind it is the product with its
authentication on. Its `public_url` is the proxy's, so the links it writes lead back here.
"""

from __future__ import annotations

from typing import Any

import httpx

# httpx hands over the decoded body, so its length and encoding are the proxy's to state.
DROPPED_RESPONSE_HEADERS = {b"content-length", b"content-encoding"}
HOP_BY_HOP = {
    b"host",
    b"connection",
    b"keep-alive",
    b"transfer-encoding",
    b"te",
    b"upgrade",
    b"authorization",
}


class BearerProxy:
    """An ASGI app forwarding to `upstream` with `Authorization: Bearer <token>`."""

    def __init__(self, upstream: str, token: str) -> None:
        self._client = httpx.AsyncClient(base_url=upstream, timeout=60)
        self._token = token

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send, self._client)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in HOP_BY_HOP]
        headers.append((b"authorization", f"Bearer {self._token}".encode()))
        path = scope["raw_path"].decode("latin-1")
        if scope["query_string"]:
            path += "?" + scope["query_string"].decode("latin-1")
        response = await self._client.request(scope["method"], path, headers=headers, content=body)
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": [
                    (k, v)
                    for k, v in response.headers.raw
                    if k.lower() not in HOP_BY_HOP | DROPPED_RESPONSE_HEADERS
                ]
                + [(b"content-length", str(len(response.content)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": response.content})


async def _lifespan(receive: Any, send: Any, client: httpx.AsyncClient) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await client.aclose()
            await send({"type": "lifespan.shutdown.complete"})
            return
