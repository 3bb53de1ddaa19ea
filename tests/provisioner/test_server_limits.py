"""`provisioner serve` as a real process on loopback against oversized bodies, slow clients and
too many connections (workflow_common/server_limits.py; the workflow-api shares it)."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from workflow_testkit.polling import poll
from workflow_testkit.ports import bound_socket
from workflow_testkit.provisioner import ENDPOINT_SECRET
from workflow_testkit.workflow_api import DUMMY_ASSETS

HUNDRED_MB = 100 * 1024 * 1024
CHUNK = b"x" * 65536


class Served:
    def __init__(self, port: int, process: subprocess.Popen[bytes]) -> None:
        self.port, self.process = port, process

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[type[Served] | object]:
    started: list[subprocess.Popen[bytes]] = []

    def start(**settings: str) -> Served:
        sock = bound_socket()
        port = sock.getsockname()[1]
        sock.close()
        environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith("PROVISIONER_")},
            "PROVISIONER_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "PROVISIONER_DATA_DIR": str(tmp_path / f"p{port}"),
            "PROVISIONER_ASSETS_DIR": str(DUMMY_ASSETS),
            "PROVISIONER_ADMIN_TOKEN": "an-admin-token-of-at-least-32-characters",
            "PROVISIONER_EDC_ENDPOINT_SECRET": ENDPOINT_SECRET,
            **{f"PROVISIONER_{name.upper()}": value for name, value in settings.items()},
        }
        log = (tmp_path / f"provisioner-{port}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "provisioner", "serve", "--port", str(port)],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        started.append(process)

        def healthy() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        poll(healthy, 30, "provisioner serve")
        return Served(port, process)

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=30)


def _headers(path: str, extra: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{extra}\r\n"
    ).encode()


def _push_until_answered(sock: socket.socket, chunks: Iterator[bytes]) -> tuple[bytes, int]:
    """Send chunks until the server answers (or the body ends); the answer and bytes sent."""
    sent = 0
    for chunk in chunks:
        readable, _, _ = select.select([sock], [], [], 0)
        if readable:
            break
        try:
            sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            break
        sent += len(chunk)
    sock.settimeout(10)
    answer = b""
    try:
        while chunk := sock.recv(65536):
            answer += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return answer, sent


def _body(size: int, *, chunked: bool) -> Iterator[bytes]:
    for _ in range(size // len(CHUNK)):
        yield b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK) if chunked else CHUNK
    if chunked:
        yield b"0\r\n\r\n"


def test_a_100_mb_body_is_refused_early_without_the_server_growing(serve: object) -> None:
    server = serve()  # type: ignore[operator]
    path = f"/edc/provision?secret={ENDPOINT_SECRET}"
    before = server.rss_bytes()
    for extra, chunked in (
        (f"Content-Length: {HUNDRED_MB}\r\n", False),
        ("Transfer-Encoding: chunked\r\n", True),
    ):
        with server.connect() as sock:
            sock.sendall(_headers(path, extra))
            answer, sent = _push_until_answered(sock, _body(HUNDRED_MB, chunked=chunked))
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert b"application/problem+json" in answer
        assert sent < HUNDRED_MB // 2, f"the server read {sent} bytes before refusing"
    growth = server.rss_bytes() - before
    assert growth < 30 * 1024 * 1024, f"RSS grew by {growth} bytes"
    small = httpx.post(f"http://127.0.0.1:{server.port}{path}", json={"type": "provision"})
    assert small.status_code == 400, "a small body is still read and validated"


def test_a_client_sending_headers_one_byte_at_a_time_is_disconnected(serve: object) -> None:
    server = serve(request_header_timeout_seconds="1")  # type: ignore[operator]
    started = time.monotonic()
    with server.connect() as sock:
        closed = False
        for byte in b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 50:
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            readable, _, _ = select.select([sock], [], [], 0.25)
            if readable and sock.recv(1024) == b"":
                closed = True
                break
        assert closed, "the connection stayed open"
    assert time.monotonic() - started < 4


def test_a_client_sending_its_body_one_byte_at_a_time_gets_408(serve: object) -> None:
    server = serve(request_body_timeout_seconds="1")  # type: ignore[operator]
    started = time.monotonic()
    with server.connect() as sock:
        sock.sendall(
            _headers(f"/edc/provision?secret={ENDPOINT_SECRET}", "Content-Length: 200\r\n")
        )
        answer = b""
        for _ in range(40):
            sock.sendall(b" ")
            readable, _, _ = select.select([sock], [], [], 0.25)
            if readable:
                answer = sock.recv(65536)
                break
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"connection: close" in answer.lower()
    assert time.monotonic() - started < 4


def test_connections_beyond_the_bound_are_answered_503(serve: object) -> None:
    server = serve(max_concurrent_connections="3")  # type: ignore[operator]
    url = f"http://127.0.0.1:{server.port}/healthz"
    idle = [server.connect() for _ in range(3)]
    try:
        time.sleep(0.2)
        assert httpx.get(url, timeout=5).status_code == 503
    finally:
        for sock in idle:
            sock.close()
    poll(lambda: httpx.get(url, timeout=5).status_code == 200, 10, "served again")
