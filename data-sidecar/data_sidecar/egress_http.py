"""httpx clients that go only where an `EgressPolicy` allows, to the address it checked.

The pin sits in httpcore's network backend: every new connection resolves its host once, checks
every address, and opens the socket to a checked IP literal, so no second lookup can answer
differently. TLS still verifies the certificate for the host name (httpcore takes SNI and the
hostname check from the URL, not from the socket). Proxies from the environment are ignored (a
proxy would resolve the name itself).

Redirects are followed here, not by httpx: each hop is checked (`open_guarded`), at most
`policy.max_redirects` of them. `Deadline` bounds a whole exchange, not just each read.

Errors: `EgressRefusedError` for what the policy refuses (before connecting), `EgressFailedError`
for the rest (no connection, no answer in time, broken answer) with a message that is the same
whatever happened on the wire, so it does not tell an open port from a closed one.
"""

from __future__ import annotations

import math
import ssl
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, NoReturn

import anyio.to_thread
import httpcore
import httpx

from data_sidecar.egress import EgressPolicy, EgressRefusedError, Resolver, system_resolver
from data_sidecar.errors import SidecarError

NO_ANSWER = "no answer (no connection, a timeout or a broken response)"
SocketOptions = Iterable[Any] | None
ConnectFailure = httpcore.ConnectError | httpcore.ConnectTimeout
CONNECT_ERRORS = (httpcore.ConnectError, httpcore.ConnectTimeout)
# No proxy from the environment (it would resolve the name itself), redirects hop by hop here.
_CLIENT_OPTIONS: dict[str, Any] = {"trust_env": False, "follow_redirects": False}


class EgressFailedError(SidecarError):
    """An allowed exchange failed without an HTTP answer (`retryable`), or took longer than its
    deadline (not retryable)."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


def too_slow(seconds: float) -> EgressFailedError:
    """An exchange outlasted its deadline: not retried (the next attempt would be as slow)."""
    return EgressFailedError(f"took longer than {seconds:g} s", retryable=False)


class Deadline:
    """A total time budget: `timeout()` gives httpx timeouts that never outlast it."""

    def __init__(self, seconds: float, base: httpx.Timeout) -> None:
        self._end = time.monotonic() + seconds
        self._base = base
        self.seconds = seconds

    def remaining(self) -> float:
        return self._end - time.monotonic()

    def check(self) -> None:
        if self.remaining() <= 0:
            raise too_slow(self.seconds)

    def timeout(self) -> httpx.Timeout:
        self.check()
        left = self.remaining()

        def capped(value: float | None) -> float:
            return left if value is None else min(value, left)

        base = self._base
        return httpx.Timeout(
            connect=capped(base.connect),
            read=capped(base.read),
            write=capped(base.write),
            pool=capped(base.pool),
        )


class _Pinning:
    """What both backends decide alike: which addresses a host may be reached at (the policy's
    checked ones, in its order), that the last connect failure is the one reported when none
    answers, and that a unix socket is never a destination. They differ only in the I/O."""

    def __init__(self, policy: EgressPolicy, resolver: Resolver) -> None:
        self._policy = policy
        self._resolver = resolver

    def _addresses(self, host: str, port: int) -> list[str]:
        return [
            str(address) for address in self._policy.checked_addresses(host, port, self._resolver)
        ]

    @staticmethod
    def _refuse_unix_socket() -> NoReturn:
        raise EgressRefusedError("unix sockets are not an egress destination")


class PinnedBackend(_Pinning, httpcore.NetworkBackend):
    """Opens each TCP connection to an address `policy` checked for that host."""

    def __init__(self, policy: EgressPolicy, resolver: Resolver) -> None:
        super().__init__(policy, resolver)
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: SocketOptions = None,
    ) -> httpcore.NetworkStream:
        failure: ConnectFailure | None = None
        for address in self._addresses(host, port):
            try:
                return self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except CONNECT_ERRORS as error:
                failure = error
        assert failure is not None
        raise failure

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: SocketOptions = None
    ) -> httpcore.NetworkStream:
        self._refuse_unix_socket()

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class AsyncPinnedBackend(_Pinning, httpcore.AsyncNetworkBackend):
    """`PinnedBackend` for asyncio; the lookup runs in a worker thread."""

    def __init__(self, policy: EgressPolicy, resolver: Resolver) -> None:
        super().__init__(policy, resolver)
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: SocketOptions = None,
    ) -> httpcore.AsyncNetworkStream:
        failure: ConnectFailure | None = None
        for address in await anyio.to_thread.run_sync(self._addresses, host, port):
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except CONNECT_ERRORS as error:
                failure = error
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: SocketOptions = None
    ) -> httpcore.AsyncNetworkStream:
        self._refuse_unix_socket()

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def guarded_client(
    policy: EgressPolicy,
    timeout: httpx.Timeout,
    resolver: Resolver = system_resolver,
    ssl_context: ssl.SSLContext | None = None,
) -> httpx.Client:
    """A client whose every connection passes `policy`; redirects are left to `open_guarded`.
    `ssl_context`: the default verifies against certifi's CAs."""
    context = ssl_context or _default_ssl_context()
    transport = httpx.HTTPTransport(verify=context, trust_env=False)
    # httpx has no public knob for the network backend: the pool is rebuilt with the pinned one.
    transport._pool = httpcore.ConnectionPool(
        ssl_context=context, network_backend=PinnedBackend(policy, resolver)
    )
    return httpx.Client(transport=transport, timeout=timeout, **_CLIENT_OPTIONS)


def guarded_async_client(
    policy: EgressPolicy, timeout: httpx.Timeout, resolver: Resolver = system_resolver
) -> httpx.AsyncClient:
    """`guarded_client` for asyncio (the subscriber callbacks)."""
    context = _default_ssl_context()
    transport = httpx.AsyncHTTPTransport(verify=context, trust_env=False)
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=context, network_backend=AsyncPinnedBackend(policy, resolver)
    )
    return httpx.AsyncClient(transport=transport, timeout=timeout, **_CLIENT_OPTIONS)


def _default_ssl_context() -> ssl.SSLContext:
    return httpx.create_ssl_context(trust_env=False)


@contextmanager
def open_guarded(
    client: httpx.Client,
    policy: EgressPolicy,
    url: str,
    deadline: Deadline,
    headers: dict[str, str] | None = None,
) -> Iterator[httpx.Response]:
    """GET `url` as a streamed response, following redirects hop by hop through `policy`.

    Raises `EgressRefusedError` or `EgressFailedError`; any HTTP answer (also an error status) is
    the caller's to judge."""
    request = client.build_request("GET", url, headers=headers)
    for _hop in range(policy.max_redirects + 1):
        policy.check_url(str(request.url))
        request.extensions["timeout"] = deadline.timeout().as_dict()
        try:
            response = client.send(request, stream=True, follow_redirects=False, auth=None)
        except httpx.TransportError as error:
            raise EgressFailedError(NO_ANSWER) from error
        if response.next_request is None:
            try:
                yield response
            finally:
                response.close()
            return
        response.close()
        request = response.next_request
    raise EgressRefusedError(f"more than {policy.max_redirects} redirects")


def read_limited(
    client: httpx.Client, policy: EgressPolicy, url: str, limit: int, deadline: Deadline
) -> tuple[int, bytes]:
    """GET a small document: (status, body); `EgressFailedError` past `limit` bytes or the
    deadline. The body of a non-2xx answer is not read."""
    try:
        with open_guarded(client, policy, url, deadline) as response:
            if not response.is_success:
                return response.status_code, b""
            received = bytearray()
            for chunk in response.iter_bytes():
                deadline.check()
                received.extend(chunk)
                if len(received) > limit:
                    raise EgressFailedError(f"more than {limit} bytes", retryable=False)
            return response.status_code, bytes(received)
    except httpx.HTTPError as error:
        raise EgressFailedError(NO_ANSWER) from error


async def post_guarded(
    client: httpx.AsyncClient, policy: EgressPolicy, url: str, body: Any, deadline_seconds: float
) -> int:
    """POST `body` as JSON to `url` (no redirects: a callback has one target); the answer's
    status. The whole exchange is bounded by `deadline_seconds`; the answer's body is not read."""
    policy.check_url(url)
    if not math.isfinite(deadline_seconds) or deadline_seconds <= 0:
        raise ValueError("deadline_seconds must be a finite number > 0")
    try:
        with anyio.fail_after(deadline_seconds):
            async with _astream(client, url, body) as response:
                return response.status_code
    except TimeoutError as error:
        raise too_slow(deadline_seconds) from error
    except httpx.TransportError as error:
        raise EgressFailedError(NO_ANSWER) from error


@asynccontextmanager
async def _astream(client: httpx.AsyncClient, url: str, body: Any) -> AsyncIterator[httpx.Response]:
    async with client.stream("POST", url, json=body, follow_redirects=False) as response:
        yield response
