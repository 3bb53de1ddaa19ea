"""A forward proxy for the suite's JVM that reaches one named host, on loopback, and nothing else.

The JVM is told to use it for HTTP and HTTPS (`-Dhttp(s).proxyHost`). A `CONNECT host:443` for
an allowed host is tunnelled to the local TLS site, and a plain request with an absolute target to
the local HTTP site; every other host is refused with 403 and recorded, so a test can say which
remote addresses the suite tried. Bytes are only relayed: HTTP itself is the sites' business.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

HEAD_LIMIT = 64 * 1024
IDLE_SECONDS = 30


@dataclass(frozen=True)
class Site:
    """Where an allowed host is really served, on loopback."""

    http_port: int
    https_port: int


@dataclass
class Tunnel:
    """Serves on `sock` (bound by the caller) in a thread of its own until `stop()`."""

    sock: socket.socket
    sites: Mapping[str, Site]
    refused: list[str] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        port: int = self.sock.getsockname()[1]
        return port

    def start(self) -> None:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the tunnel did not start")

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self.sock.close()

    def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, sock=self.sock))
        ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            self._loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE_SECONDS)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            writer.close()
            return
        method, target = _request_line(head)
        host, port = _destination(method, target, self.sites)
        if port is None:
            self.refused.append(host)
            writer.write(
                b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            await writer.drain()
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        if method == "CONNECT":
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            up_writer.write(head)
        await asyncio.gather(_relay(reader, up_writer), _relay(up_reader, writer))


def _request_line(head: bytes) -> tuple[str, str]:
    parts = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
    return (parts[0], parts[1]) if len(parts) == 3 else ("", "")


def _destination(method: str, target: str, sites: Mapping[str, Site]) -> tuple[str, int | None]:
    """The named host, and the loopback port serving it (None: refused)."""
    if method == "CONNECT":
        host, _, port = target.rpartition(":")
        site = sites.get(host)
        return host, site.https_port if site is not None and port == "443" else None
    parts = urlsplit(target)
    site = sites.get(parts.hostname or "")
    allowed = site is not None and parts.scheme == "http" and parts.port in (None, 80)
    return parts.hostname or target, site.http_port if allowed and site is not None else None


async def _relay(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while chunk := await asyncio.wait_for(source.read(HEAD_LIMIT), IDLE_SECONDS):
            sink.write(chunk)
            await sink.drain()
    except (ConnectionError, TimeoutError):
        pass
    finally:
        sink.close()
