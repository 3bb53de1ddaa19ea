"""The workflow-api's request limits (workflow_common/server_limits.py) over real HTTP: JSON bodies
are bounded, streamed uploads keep their own limit, a stalled upload is cut off."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from workflow_testkit.workflow_api import RunningApi, upload


def test_a_json_body_over_the_limit_is_refused_with_problem_json(
    api_factory: Callable[..., RunningApi],
) -> None:
    api = api_factory(max_request_body_bytes=64 * 1024)
    with api.consumer as client:
        big = {"inputs": {"message": "x" * 100_000}}
        refused = client.post("/processes/echo/execution", json=big)
        assert refused.status_code == 413, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert "65536 bytes" in refused.json()["detail"]
        assert refused.headers["connection"] == "close"
        # Uploads stream with their own limit: far beyond the JSON limit is fine.
        document = upload(client, b"y" * (2 * 1024 * 1024))
        assert document["size"] == 2 * 1024 * 1024


def test_an_upload_that_stalls_is_cut_off_with_408(api_factory: Callable[..., RunningApi]) -> None:
    api = api_factory(request_body_timeout_seconds=1)
    address = urlsplit(api.base_url)
    started = time.monotonic()
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(
            (
                "POST /uploads HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {api.token()}\r\n"
                "Content-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n"
            ).encode()
            + b"z" * 1000
        )
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
    body = answer.split(b"\r\n\r\n", 1)[1]
    assert "did not arrive within 1 s" in json.loads(body)["detail"]
    assert time.monotonic() - started < 5
