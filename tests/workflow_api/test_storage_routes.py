"""The signed-URL storage route over real HTTP: uvicorn on 127.0.0.1, httpx as the client."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlmodel import Session

from workflow_api.db import Job, JobStatus, make_engine
from workflow_api.quota import QuotaLedger
from workflow_api.routes.storage import router
from workflow_api.storage import signing
from workflow_api.storage.filesystem import FilesystemStore
from workflow_common.clock import utcnow

SIGNING_KEY = b"s" * 32
MiB = 1024**2
TTL = timedelta(minutes=5)
QUOTA = 64 * MiB


@dataclass
class Served:
    app: FastAPI
    store: FilesystemStore
    base_url: str
    client: httpx.Client

    def put(self, key: str, content: bytes) -> None:
        path = self.store.incoming_dir() / f"source-{time.monotonic_ns()}"
        path.write_bytes(content)
        self.store.put_file(key, path)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    base_url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    store = FilesystemStore(tmp_path / "storage", SIGNING_KEY, base_url)
    store.prepare()
    engine = make_engine(f"sqlite:///{tmp_path / 'api.db'}")
    with Session(engine) as session:  # the job whose keys the tests write
        now = utcnow()
        session.add(
            Job(
                id="j",
                process_id="p",
                status=JobStatus.RUNNING,
                created=now,
                updated=now,
                launch={},
            )
        )
        session.commit()
    ledger = QuotaLedger(engine, QUOTA)
    app = FastAPI()
    app.state.services = types.SimpleNamespace(store=store, engine=engine, ledger=ledger)
    app.include_router(router)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        with httpx.Client(timeout=30) as client:
            yield Served(app, store, base_url, client)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()


def _assert_problem(response: httpx.Response, status: int, type_end: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert str(body["type"]).endswith(f"/{type_end}")
    assert body["title"]
    assert body["detail"]
    return body


# GET


def test_get_streams_the_whole_object(served: Served) -> None:
    content = os.urandom(3 * MiB + 123)
    served.put("jobs/j/outputs/o", content)
    response = served.client.get(served.store.signed_url("GET", "jobs/j/outputs/o", TTL))
    assert response.status_code == 200
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["content-length"] == str(len(content))
    assert response.content == content


@pytest.mark.parametrize(
    ("range_header", "start", "end"),
    [
        ("bytes=100-199", 100, 200),
        ("bytes=1048000-2097500", 1048000, 2097501),  # across 1 MiB chunks
        ("bytes=-10", 3 * MiB - 10, 3 * MiB),
        ("bytes=3145700-", 3145700, 3 * MiB),
        ("bytes=3145700-99999999", 3145700, 3 * MiB),
    ],
)
def test_get_with_a_range_answers_206_with_those_bytes(
    served: Served, range_header: str, start: int, end: int
) -> None:
    content = os.urandom(3 * MiB)
    served.put("uploads/u1", content)
    url = served.store.signed_url("GET", "uploads/u1", TTL)
    response = served.client.get(url, headers={"Range": range_header})
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes {start}-{end - 1}/{len(content)}"
    assert response.headers["content-length"] == str(end - start)
    assert response.content == content[start:end]


@pytest.mark.parametrize("range_header", ["bytes=1000-", "bytes=5000-6000", "bytes=-0"])
def test_get_with_an_unsatisfiable_range_answers_416(served: Served, range_header: str) -> None:
    served.put("uploads/u1", b"x" * 1000)
    url = served.store.signed_url("GET", "uploads/u1", TTL)
    response = served.client.get(url, headers={"Range": range_header})
    _assert_problem(response, 416, "range-not-satisfiable")
    assert response.headers["content-range"] == "bytes */1000"


@pytest.mark.parametrize("range_header", ["bytes=0-1,5-6", "items=0-1", "bytes=9-2", "bytes=x-"])
def test_get_ignores_ranges_it_does_not_serve_and_sends_everything(
    served: Served, range_header: str
) -> None:
    served.put("uploads/u1", b"0123456789")
    url = served.store.signed_url("GET", "uploads/u1", TTL)
    response = served.client.get(url, headers={"Range": range_header})
    assert response.status_code == 200
    assert response.content == b"0123456789"


def test_get_honours_if_range_only_for_the_current_version(served: Served) -> None:
    served.put("uploads/u1", b"0123456789")
    url = served.store.signed_url("GET", "uploads/u1", TTL)
    etag = served.client.get(url).headers["etag"]
    same = served.client.get(url, headers={"Range": "bytes=2-3", "If-Range": etag})
    assert (same.status_code, same.content) == (206, b"23")
    served.put("uploads/u1", b"abcdefghij")
    changed = served.client.get(url, headers={"Range": "bytes=2-3", "If-Range": etag})
    assert (changed.status_code, changed.content) == (200, b"abcdefghij")


def test_get_of_a_missing_object_answers_404(served: Served) -> None:
    response = served.client.get(served.store.signed_url("GET", "uploads/none", TTL))
    _assert_problem(response, 404, "not-found")


def test_get_of_a_directory_answers_404(served: Served) -> None:
    served.put("jobs/j/log.txt", b"log")
    response = served.client.get(served.store.signed_url("GET", "jobs/j", TTL))
    _assert_problem(response, 404, "not-found")


# PUT


def test_put_streams_a_multi_mebibyte_body_into_the_store(served: Served) -> None:
    block = os.urandom(MiB)
    total = 13  # MiB, sent in 256 KiB pieces with chunked transfer encoding

    def body() -> Iterator[bytes]:
        for _ in range(total):
            for offset in range(0, MiB, 256 * 1024):
                yield block[offset : offset + 256 * 1024]

    url = served.store.signed_url("PUT", "jobs/j/outputs/model", TTL)
    response = served.client.put(url, content=body())
    assert response.status_code == 200, response.text
    assert served.store.size("jobs/j/outputs/model") == total * MiB
    stored = served.store.object_path("jobs/j/outputs/model").read_bytes()
    assert hashlib.sha256(stored).digest() == hashlib.sha256(block * total).digest()
    assert os.listdir(served.store.incoming_dir()) == []
    download = served.client.get(served.store.signed_url("GET", "jobs/j/outputs/model", TTL))
    assert download.content == stored


def test_put_of_an_empty_body_stores_an_empty_object(served: Served) -> None:
    response = served.client.put(served.store.signed_url("PUT", "jobs/j/log.txt", TTL))
    assert response.status_code == 200
    assert served.store.size("jobs/j/log.txt") == 0


def test_put_replaces_an_existing_object(served: Served) -> None:
    served.put("jobs/j/log.txt", b"old")
    url = served.store.signed_url("PUT", "jobs/j/log.txt", TTL)
    assert served.client.put(url, content=b"new content").status_code == 200
    assert served.store.object_path("jobs/j/log.txt").read_bytes() == b"new content"


def test_an_interrupted_put_stores_nothing_and_leaves_no_temporary_file(served: Served) -> None:
    url = httpx.URL(served.store.signed_url("PUT", "uploads/cut", TTL))
    target = url.raw_path.decode()
    with socket.create_connection((url.host, url.port or 80), timeout=10) as connection:
        head = f"PUT {target} HTTP/1.1\r\nHost: {url.host}\r\nContent-Length: {10 * MiB}\r\n\r\n"
        connection.sendall(head.encode() + b"x" * MiB)
        time.sleep(0.2)
    deadline = time.monotonic() + 10
    while os.listdir(served.store.incoming_dir()):
        assert time.monotonic() < deadline, "the partial upload was not removed"
        time.sleep(0.05)
    assert served.store.size("uploads/cut") is None


def test_put_onto_the_path_of_a_directory_answers_409(served: Served) -> None:
    served.put("jobs/j/log.txt", b"log")
    response = served.client.put(served.store.signed_url("PUT", "jobs/j", TTL), content=b"x")
    _assert_problem(response, 409, "conflict")
    assert os.listdir(served.store.incoming_dir()) == []


# refusals


def test_a_tampered_signature_answers_403(served: Served) -> None:
    served.put("uploads/u1", b"data")
    url = served.store.signed_url("GET", "uploads/u1", TTL)
    tampered = url[:-1] + ("0" if url[-1] != "0" else "1")
    body = _assert_problem(served.client.get(tampered), 403, "invalid-signature")
    assert "does not match" in str(body["detail"])


def test_a_url_signed_for_another_key_answers_403(served: Served) -> None:
    served.put("uploads/u1", b"data")
    served.put("uploads/u2", b"other consumer data")
    url = served.store.signed_url("GET", "uploads/u1", TTL).replace("/uploads/u1?", "/uploads/u2?")
    _assert_problem(served.client.get(url), 403, "invalid-signature")


def test_an_expired_url_answers_403_with_its_own_type(served: Served) -> None:
    served.put("uploads/u1", b"data")
    expires = int(time.time()) - 1
    query = urlencode(
        {
            "method": "GET",
            "expires": expires,
            "signature": signing.sign(SIGNING_KEY, "GET", "uploads/u1", expires),
        }
    )
    response = served.client.get(f"{served.base_url}/storage/uploads/u1?{query}")
    body = _assert_problem(response, 403, "expired-signature")
    assert "expired" in str(body["detail"])


def test_a_get_url_used_for_put_answers_403_and_changes_nothing(served: Served) -> None:
    served.put("uploads/u1", b"data")
    url = served.store.signed_url("GET", "uploads/u1", TTL)
    _assert_problem(served.client.put(url, content=b"overwrite"), 403, "invalid-signature")
    assert served.store.object_path("uploads/u1").read_bytes() == b"data"


def test_a_put_url_used_for_get_answers_403(served: Served) -> None:
    served.put("uploads/u1", b"data")
    url = served.store.signed_url("PUT", "uploads/u1", TTL)
    _assert_problem(served.client.get(url), 403, "invalid-signature")


def test_a_url_whose_method_parameter_was_changed_answers_403(served: Served) -> None:
    served.put("uploads/u1", b"data")
    url = served.store.signed_url("GET", "uploads/u1", TTL).replace("method=GET", "method=PUT")
    _assert_problem(served.client.put(url, content=b"overwrite"), 403, "invalid-signature")
    assert served.store.object_path("uploads/u1").read_bytes() == b"data"


def test_an_unsigned_url_answers_403(served: Served) -> None:
    served.put("uploads/u1", b"data")
    response = served.client.get(f"{served.base_url}/storage/uploads/u1")
    _assert_problem(response, 403, "invalid-signature")


@pytest.mark.parametrize("path", ["a//b", ".incoming/x", "%2E%2E/etc/passwd", "a/%2e%2e/b"])
def test_an_invalid_key_answers_400(served: Served, path: str) -> None:
    response = served.client.get(f"{served.base_url}/storage/{path}?method=GET")
    _assert_problem(response, 400, "invalid-parameter-value")


def test_the_routes_answer_404_when_the_store_is_not_the_filesystem(served: Served) -> None:
    served.put("uploads/u1", b"data")
    url = served.store.signed_url("GET", "uploads/u1", TTL)
    served.app.state.services = types.SimpleNamespace(store=object())
    _assert_problem(served.client.get(url), 404, "not-found")
