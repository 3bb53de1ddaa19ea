"""A tiny object store over real HTTP on 127.0.0.1: GET serves objects, PUT stores bodies.

Answers can be scripted per path (a status, a dropped connection, a truncated body, a delay) so the
sidecar's retries and timeouts meet real sockets.
"""

from __future__ import annotations

import ssl
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

SIGNATURE = "X-Signature=s3cr3t-signature&X-Expires=600"


@dataclass(frozen=True)
class Answer:
    """One scripted answer; with no field set, the request is served normally."""

    status: int | None = None
    drop: bool = False
    truncate: bool = False
    delay: float = 0.0
    location: str | None = None  # with a 3xx `status`: where it redirects to


@dataclass
class Seen:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    local_address: str = ""  # the address this server was reached at


@dataclass
class FakeStorage:
    base_url: str = ""
    objects: dict[str, bytes] = field(default_factory=dict)
    chunked: set[str] = field(default_factory=set)
    scripts: dict[str, list[Answer]] = field(default_factory=dict)
    always: dict[str, Answer] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}?{SIGNATURE}"

    def put_object(self, path: str, data: bytes, *, chunked: bool = False) -> str:
        self.objects[path] = data
        if chunked:
            self.chunked.add(path)
        return self.url(path)

    def script(self, path: str, *answers: Answer) -> None:
        self.scripts.setdefault(path, []).extend(answers)

    def next_answer(self, path: str) -> Answer:
        with self.lock:
            queued = self.scripts.get(path)
            if queued:
                return queued.pop(0)
            return self.always.get(path, Answer())

    def count(self, method: str, path: str) -> int:
        return sum(1 for seen in self.requests if seen.method == method and seen.path == path)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""

    def _begin(self) -> tuple[str, Answer]:
        parts = urlsplit(self.path)
        storage = self.server.storage
        with storage.lock:
            storage.requests.append(
                Seen(
                    self.command,
                    parts.path,
                    parts.query,
                    dict(self.headers.items()),
                    str(self.connection.getsockname()[0]),
                )
            )
        answer = storage.next_answer(parts.path)
        if answer.delay:
            time.sleep(answer.delay)
        return parts.path, answer

    def _empty(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        path, answer = self._begin()
        try:
            self._serve_get(path, answer)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _serve_get(self, path: str, answer: Answer) -> None:
        storage = self.server.storage
        if answer.drop:
            self.close_connection = True
            return
        if answer.status is not None:
            self.send_response(answer.status)
            if answer.location is not None:
                self.send_header("Location", answer.location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if path not in storage.objects:
            self._empty(404)
            return
        body = storage.objects[path]
        self.send_response(200)
        if path in storage.chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, len(body), 65536):
                piece = body[start : start + 65536]
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if answer.truncate:
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        self.wfile.write(body)

    def do_PUT(self) -> None:
        path, answer = self._begin()
        length = self.headers.get("Content-Length")
        if length is None:
            self._empty(411)
            self.close_connection = True
            return
        body = self.rfile.read(int(length))
        if answer.drop:
            self.close_connection = True
            return
        if answer.status is not None:
            self._empty(answer.status)
            return
        self.server.storage.objects[path] = body
        self._empty(200)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    storage: FakeStorage

    def handle_error(self, request: object, client_address: object) -> None:
        """A client hanging up mid-body (the sidecar aborting a download) is expected."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class StorageServer:
    def __init__(self, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> None:
        self._server = _Server((host, 0), _Handler)
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        host, port = self._server.server_address[:2]
        scheme = "https" if tls is not None else "http"
        self.storage = FakeStorage(base_url=f"{scheme}://{host!s}:{port}")
        self._server.storage = self.storage
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> FakeStorage:
        self._thread.start()
        return self.storage

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
