"""The egress policy at the workflow-api: http(s) inputs, env-file hrefs read at launch, and the
parsed "into this API" check. Every server is a loopback one the test runs; names are resolved by
a hosts table the test hands to the API, never by DNS."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from data_sidecar.egress import Address, EgressPolicy
from tests.workflow_api.test_job_cycle import _follow, _zip
from workflow_api.db import Upload
from workflow_api.errors import InvalidInputError
from workflow_api.inputs import InputResolver
from workflow_contracts.asset import WorkflowAsset, load_catalog
from workflow_testkit.ports import bound_socket
from workflow_testkit.workflow_api import (
    ALLOW_LOOPBACK,
    DUMMY_ASSETS,
    RunningApi,
    ThreadedServer,
    execute,
    upload,
    wait_for_job,
)


@dataclass
class FileServer:
    """Serves `files` on loopback; `delay` seconds before each answer; counts the requests."""

    files: dict[str, bytes] = field(default_factory=dict)
    delay: float = 0.0
    requests: list[str] = field(default_factory=list)
    port: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    state = FileServer()

    async def serve(request: Request) -> Response:
        state.requests.append(request.url.path)
        await asyncio.sleep(state.delay)
        body = state.files.get(request.url.path)
        return Response(body, 200) if body is not None else Response(status_code=404)

    sock = bound_socket()
    state.port = sock.getsockname()[1]
    server = ThreadedServer(Starlette(routes=[Route("/{name}", serve)]), sock)
    server.start()
    yield state
    server.stop()


def hosts(host: str, _port: int) -> list[Address]:
    """`files.test` is this machine; nothing else exists."""
    return [ipaddress.ip_address("127.0.0.1")] if host == "files.test" else []


def required_uploads(api: RunningApi) -> dict[str, dict[str, str]]:
    client = api.consumer
    return {
        "document": {"href": upload(client, b"doc\n")["href"]},
        "dataset": {"href": upload(client, _zip({"a.txt": b"a"}), "d.zip")["href"]},
    }


def listing(api: RunningApi, job_id: str) -> str:
    results = api.consumer.get(f"/jobs/{job_id}/results").json()
    return _follow(api.consumer, results["listing"]["href"]).text


def test_a_loopback_input_is_refused_in_the_request_by_default(
    api: RunningApi, file_server: FileServer
) -> None:
    file_server.files["/doc.txt"] = b"x"
    response = api.consumer.post(
        "/processes/input-dummy/execution",
        json={
            "inputs": {**required_uploads(api), "document": {"href": f"{file_server.base}/doc.txt"}}
        },
    )
    assert response.status_code == 400
    assert response.json()["input"] == "document"
    assert "127.0.0.1 is not a public address" in response.json()["detail"]
    assert file_server.requests == []


def test_a_name_resolving_to_loopback_fails_the_stage_in_unless_allow_listed(
    api_factory: Callable[..., RunningApi], file_server: FileServer
) -> None:
    file_server.files["/doc.txt"] = b"fetched by name\n"
    href = f"http://files.test:{file_server.port}/doc.txt"
    refusing = api_factory("refusing", resolver=hosts)
    inputs = {**required_uploads(refusing), "document": {"href": href}}
    job_id = execute(refusing.consumer, "input-dummy", inputs)  # no lookup in the request
    info = wait_for_job(refusing.consumer, job_id)
    assert info["status"] == "failed"
    assert "files.test resolves to an address that is not public" in info["message"]
    assert file_server.requests == []

    allowing = api_factory("allowing", resolver=hosts, egress_allow_hosts=["files.test"])
    inputs = {**required_uploads(allowing), "document": {"href": href}}
    job_id = execute(allowing.consumer, "input-dummy", inputs)
    assert wait_for_job(allowing.consumer, job_id)["status"] == "successful"
    assert file_server.requests == ["/doc.txt"]


def test_an_env_file_href_is_read_at_launch_not_in_the_request(
    api_factory: Callable[..., RunningApi], file_server: FileServer
) -> None:
    api = api_factory(**ALLOW_LOOPBACK)
    file_server.files["/settings.env"] = b"GREETING=slowly\n"
    file_server.delay = 2.0
    inputs = {**required_uploads(api), "settings": {"href": f"{file_server.base}/settings.env"}}
    started = time.monotonic()
    job_id = execute(api.consumer, "input-dummy", inputs)
    assert time.monotonic() - started < 1.5  # the slow server did not hold the request
    info = wait_for_job(api.consumer, job_id)
    assert info["status"] == "successful", info
    assert "GREETING='slowly'" in listing(api, job_id)
    assert file_server.requests == ["/settings.env"]  # read once: the worker got that copy


def test_a_job_waiting_for_its_env_file_can_be_dismissed(
    api_factory: Callable[..., RunningApi], file_server: FileServer
) -> None:
    api = api_factory(**ALLOW_LOOPBACK)
    file_server.files["/settings.env"] = b"GREETING=late\n"
    file_server.delay = 5.0
    inputs = {**required_uploads(api), "settings": {"href": f"{file_server.base}/settings.env"}}
    job_id = execute(api.consumer, "input-dummy", inputs)
    wait_for_job(api.consumer, job_id, statuses={"running"})
    deadline = time.monotonic() + 5
    while not file_server.requests:  # the fetch is under way
        assert time.monotonic() < deadline
        time.sleep(0.02)
    started = time.monotonic()
    assert api.consumer.delete(f"/jobs/{job_id}").status_code == 200
    info = wait_for_job(api.consumer, job_id, timeout=10)
    assert info["status"] == "dismissed"
    assert time.monotonic() - started < 3  # not after the slow server answered


def test_an_invalid_env_file_href_fails_the_job_with_the_same_check(
    api_factory: Callable[..., RunningApi], file_server: FileServer
) -> None:
    api = api_factory(**ALLOW_LOOPBACK)
    file_server.files["/settings.env"] = b"GREETING=1\nPATH=/evil\n"
    inputs = {**required_uploads(api), "settings": {"href": f"{file_server.base}/settings.env"}}
    job_id = execute(api.consumer, "input-dummy", inputs)
    info = wait_for_job(api.consumer, job_id)
    assert info["status"] == "failed"
    assert "input 'settings'" in info["message"]
    assert "variable PATH is not one the asset declares" in info["message"]


def test_an_env_file_href_refused_or_missing_fails_the_job_clearly(
    api_factory: Callable[..., RunningApi], file_server: FileServer
) -> None:
    # The literal host is allow-listed by name; files.test, the same address by another name, not.
    api = api_factory(resolver=hosts, egress_allow_hosts=["127.0.0.1"])
    refused = f"http://files.test:{file_server.port}/settings.env"
    missing = f"{file_server.base}/absent.env"
    messages = []
    for href in (refused, missing):
        inputs = {**required_uploads(api), "settings": {"href": href}}
        job_id = execute(api.consumer, "input-dummy", inputs)
        info = wait_for_job(api.consumer, job_id)
        assert info["status"] == "failed"
        messages.append(info["message"])
    assert "input 'settings'" in messages[0]
    assert "is refused: files.test resolves to an address that is not public" in messages[0]
    assert "could not be read: HTTP 404" in messages[1]
    assert file_server.requests == ["/absent.env"]


def test_an_env_file_larger_than_its_limit_fails_the_job(
    api_factory: Callable[..., RunningApi], file_server: FileServer
) -> None:
    api = api_factory(max_inline_env_file_size=64, **ALLOW_LOOPBACK)
    file_server.files["/settings.env"] = b"GREETING=" + b"x" * 100 + b"\n"
    inputs = {**required_uploads(api), "settings": {"href": f"{file_server.base}/settings.env"}}
    info = wait_for_job(api.consumer, execute(api.consumer, "input-dummy", inputs))
    assert info["status"] == "failed"
    assert "more than 64 bytes" in info["message"]


def test_an_env_file_the_quota_has_no_room_for_fails_the_job_naming_the_quota(
    api_factory: Callable[..., RunningApi], file_server: FileServer
) -> None:
    api = api_factory(storage_quota=2048, **ALLOW_LOOPBACK)
    file_server.files["/settings.env"] = b"GREETING=" + b"x" * 4096 + b"\n"
    inputs = {**required_uploads(api), "settings": {"href": f"{file_server.base}/settings.env"}}
    info = wait_for_job(api.consumer, execute(api.consumer, "input-dummy", inputs))
    assert info["status"] == "failed", info
    assert "of the 2 KiB quota is free" in info["message"]
    assert file_server.requests == ["/settings.env"]
    assert api.consumer.get("/quota").json()["reserved"] == 0


def test_hrefs_into_this_api_are_recognised_parsed(api: RunningApi) -> None:
    client = api.consumer
    document = upload(client, b"doc\n")
    upload_id = document["href"].rsplit("/", 1)[1]
    port = api.base_url.rsplit(":", 1)[1]
    inputs = required_uploads(api)
    inputs["document"] = {"href": f"HTTP://127.0.0.1:{port}/uploads/{upload_id}"}
    assert wait_for_job(client, execute(client, "input-dummy", inputs))["status"] == "successful"
    for href in (f"HTTP://127.0.0.1:{port}/jobs", f"http://127.0.0.1:{port}/storage/x"):
        inputs["document"] = {"href": href}
        response = client.post("/processes/input-dummy/execution", json={"inputs": inputs})
        assert response.status_code == 400
        assert "points into this API" in response.json()["detail"]


def _resolver_for(base_url: str, uploads: dict[str, Upload]) -> InputResolver:
    return InputResolver(
        base_url=base_url,
        max_upload_size=1024,
        max_env_file_size=1024,
        find_upload=uploads.get,
        read_text=lambda source, limit: "",
        egress=EgressPolicy(),
    )


@pytest.fixture(scope="module")
def input_dummy() -> WorkflowAsset:
    return load_catalog(DUMMY_ASSETS)["input-dummy"]


def test_the_apis_own_urls_match_in_any_spelling(input_dummy: WorkflowAsset) -> None:
    """Pure: no request is made; default ports, case and path prefix are compared parsed."""
    found = Upload(id="u1", filename="f", size=3, sha256="0" * 64)
    resolver = _resolver_for("https://api.example.test/consumers/a", {"u1": found})
    dataset = {"href": "/uploads/u1"}
    for href in (
        "https://api.example.test/consumers/a/uploads/u1",
        "HTTPS://API.EXAMPLE.TEST:443/consumers/a/uploads/u1",
        "/uploads/u1",
    ):
        launch = resolver.resolve(input_dummy, {"document": {"href": href}, "dataset": dataset})
        assert launch.files[0].upload_id == "u1"
    for href in (
        "https://api.example.test:443/consumers/a/jobs",
        "https://Api.Example.Test/consumers/b/uploads/u1",
        "https://api.example.test./consumers/a/storage/x",
    ):
        with pytest.raises(InvalidInputError, match="points into this API"):
            resolver.resolve(input_dummy, {"document": {"href": href}, "dataset": dataset})
