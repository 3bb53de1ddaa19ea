"""OGC `subscriber` callbacks and the `/jobs` list with its filters and paging."""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from data_sidecar.egress import Address
from workflow_testkit.ports import bound_socket
from workflow_testkit.workflow_api import (
    ALLOW_LOOPBACK,
    RunningApi,
    ThreadedServer,
    execute,
    wait_for_job,
)


class Inbox:
    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.failures_left = 0

    def wait_for(self, count: int, timeout: float = 20) -> list[tuple[str, dict[str, Any]]]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            assert time.monotonic() < deadline, self.received
            time.sleep(0.05)
        return self.received


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, str]]:
    box = Inbox()

    async def receive(request: Request) -> Response:
        if box.failures_left > 0:
            box.failures_left -= 1
            return Response(status_code=503)
        box.received.append((request.path_params["kind"], await request.json()))
        return Response(status_code=204)

    sock = bound_socket()
    server = ThreadedServer(Starlette(routes=[Route("/{kind}", receive, methods=["POST"])]), sock)
    server.start()
    yield box, f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.stop()


@pytest.fixture
def loopback_api(api_factory: Callable[..., RunningApi]) -> RunningApi:
    """An API whose egress policy allows the loopback subscribers these tests run."""
    return api_factory(**ALLOW_LOOPBACK)


def test_subscriber_gets_in_progress_then_results(
    loopback_api: RunningApi, inbox: tuple[Inbox, str]
) -> None:
    api = loopback_api
    box, url = inbox
    box.failures_left = 1  # the first delivery is retried
    job_id = execute(
        api.consumer,
        "echo",
        {"message": "notify me"},
        subscriber={
            "inProgressUri": f"{url}/progress",
            "successUri": f"{url}/success",
            "failedUri": f"{url}/failed",
        },
    )
    wait_for_job(api.consumer, job_id)
    received = dict(box.wait_for(2))
    assert received["progress"]["jobID"] == job_id
    assert received["progress"]["status"] == "running"
    assert received["success"]["echo"]["href"].endswith(f"/jobs/{job_id}/results/echo")
    assert "failed" not in received


def test_failed_job_notifies_failed_uri(loopback_api: RunningApi, inbox: tuple[Inbox, str]) -> None:
    api = loopback_api
    box, url = inbox
    job_id = execute(
        api.consumer,
        "dummy",
        {"duration": 0, "fail": True},
        subscriber={"successUri": f"{url}/success", "failedUri": f"{url}/failed"},
    )
    wait_for_job(api.consumer, job_id)
    kind, body = box.wait_for(1)[0]
    assert kind == "failed"
    assert body["status"] == "failed"


def test_unreachable_subscriber_never_affects_the_job(loopback_api: RunningApi) -> None:
    api = loopback_api
    job_id = execute(
        api.consumer,
        "echo",
        {"message": "x"},
        subscriber={
            "successUri": "http://127.0.0.1:9/nowhere",
            "inProgressUri": "http://127.0.0.1:9/",
        },
    )
    assert wait_for_job(api.consumer, job_id)["status"] == "successful"


def test_subscriber_uri_must_be_http(api: RunningApi) -> None:
    response = api.consumer.post(
        "/processes/echo/execution",
        json={"inputs": {"message": "x"}, "subscriber": {"successUri": "file:///etc/passwd"}},
    )
    assert response.status_code == 400
    assert "subscriber" in response.json()["detail"]


def test_a_loopback_subscriber_is_refused_by_default(
    api: RunningApi, inbox: tuple[Inbox, str]
) -> None:
    box, url = inbox
    response = api.consumer.post(
        "/processes/echo/execution",
        json={"inputs": {"message": "x"}, "subscriber": {"successUri": f"{url}/success"}},
    )
    assert response.status_code == 400
    assert "127.0.0.1 is not a public address" in response.json()["detail"]
    assert box.received == []


def test_a_subscriber_name_resolving_to_loopback_is_called_only_when_allow_listed(
    api_factory: Callable[..., RunningApi],
    inbox: tuple[Inbox, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    box, url = inbox
    port = url.rsplit(":", 1)[1]

    def hosts(host: str, _port: int) -> list[Address]:
        return [ipaddress.ip_address("127.0.0.1")] if host == "hooks.test" else []

    subscriber = {"successUri": f"http://hooks.test:{port}/success"}
    refusing = api_factory("refusing", resolver=hosts)
    with caplog.at_level(logging.WARNING, logger="workflow_api.execution.notifications"):
        job_id = execute(refusing.consumer, "echo", {"message": "x"}, subscriber=subscriber)
        assert wait_for_job(refusing.consumer, job_id)["status"] == "successful"
        deadline = time.monotonic() + 10
        while "refused" not in caplog.text:
            assert time.monotonic() < deadline, caplog.text
            time.sleep(0.05)
    assert "hooks.test resolves to an address that is not public" in caplog.text
    assert box.received == []

    allowing = api_factory("allowing", resolver=hosts, egress_allow_hosts=["hooks.test"])
    job_id = execute(allowing.consumer, "echo", {"message": "y"}, subscriber=subscriber)
    wait_for_job(allowing.consumer, job_id)
    kind, body = box.wait_for(1)[0]
    assert kind == "success"
    assert body["echo"]["href"].endswith(f"/jobs/{job_id}/results/echo")


def test_the_datetime_filter_takes_offsets_as_instants(api: RunningApi) -> None:
    client = api.consumer
    job_id = execute(client, "echo", {"message": "when"})
    wait_for_job(client, job_id)
    created = datetime.fromisoformat(client.get(f"/jobs/{job_id}").json()["created"])

    def ids(interval: str) -> list[str]:
        return [
            job["jobID"]
            for job in client.get("/jobs", params={"datetime": interval}).json()["jobs"]
        ]

    for offset in (timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))):
        before = (created - timedelta(seconds=30)).astimezone(offset).isoformat()
        after = (created + timedelta(seconds=30)).astimezone(offset).isoformat()
        assert ids(f"{before}/{after}") == [job_id], offset
        assert ids(f"{after}/..") == [], offset
        assert ids(f"../{before}") == [], offset


def test_job_list_filters_and_pages(api: RunningApi) -> None:
    client = api.consumer
    echo_jobs = [execute(client, "echo", {"message": str(i)}) for i in range(3)]
    failed = execute(client, "dummy", {"duration": 0, "fail": True})
    for job_id in [*echo_jobs, failed]:
        wait_for_job(client, job_id)

    def ids(**params: Any) -> list[str]:
        return [job["jobID"] for job in client.get("/jobs", params=params).json()["jobs"]]

    assert set(ids(processID="echo", limit=100)) == set(echo_jobs)
    assert ids(status="failed") == [failed]
    assert set(ids(status=["failed", "successful"], limit=100)) == {*echo_jobs, failed}
    assert ids(processID="echo,dummy", limit=100)[0] == failed  # newest first
    assert ids(maxDuration=0, minDuration=3600) == []
    assert len(ids(minDuration=0, limit=100)) == 4
    assert set(ids(datetime="../2100-01-01T00:00:00Z", limit=100)) == {*echo_jobs, failed}
    assert ids(datetime="2100-01-01T00:00:00Z/..") == []
    assert ids(type="unknown") == []

    page = client.get("/jobs", params={"limit": 3}).json()
    assert len(page["jobs"]) == 3
    rels = {link["rel"] for link in page["links"]}
    assert {"self", "next"} <= rels
    rest = client.get(next(x["href"] for x in page["links"] if x["rel"] == "next")).json()
    assert len(rest["jobs"]) == 1
    assert "prev" in {link["rel"] for link in rest["links"]}


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"status": "weird"}, "not one of"),
        ({"datetime": "yesterday"}, "RFC 3339"),
        ({"limit": 0}, "limit"),
        ({"limit": 10001}, "limit"),
        ({"minDuration": -1}, "minDuration"),
    ],
)
def test_bad_job_list_parameters_are_400(
    api: RunningApi, params: dict[str, Any], detail: str
) -> None:
    response = api.consumer.get("/jobs", params=params)
    assert response.status_code == 400
    assert detail in response.json()["detail"]
