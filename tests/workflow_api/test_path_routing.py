"""A workflow-api whose public URL has a path (`https://host/consumers/<slug>`), as the
Kubernetes deployer's path routing gives it: an ingress that forwards the path unchanged reaches
the same routes as a direct call to `/...`, and every link and signed URL it hands out works."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from provisioner.tokens.signing_key import SigningKey
from workflow_api.app import create_app
from workflow_testkit.ports import bound_socket
from workflow_testkit.workflow_api import (
    RunningApi,
    ThreadedServer,
    execute,
    make_settings,
    wait_for_job,
)

PREFIX = "/consumers/alice-1234"


@pytest.fixture
def prefixed_api(tmp_path: Path, signing_key: SigningKey) -> Iterator[RunningApi]:
    sock = bound_socket()
    port = sock.getsockname()[1]
    jwks = signing_key.write_jwks(tmp_path / "jwks.json")
    settings = make_settings(
        tmp_path / "api", jwks, sock, public_url=f"http://127.0.0.1:{port}{PREFIX}"
    )
    server = ThreadedServer(create_app(settings), sock)
    server.start()
    api = RunningApi(settings=settings, key=signing_key, server=server)
    api.grant("echo")
    yield api
    api.stop()


def test_routes_answer_under_the_public_path_and_at_the_root(prefixed_api: RunningApi) -> None:
    prefixed = prefixed_api.consumer
    assert str(prefixed.base_url).rstrip("/").endswith(PREFIX)
    listed = prefixed.get("/processes")
    assert listed.status_code == 200
    assert [p["id"] for p in listed.json()["processes"]] == ["echo"]
    assert all(link["href"].startswith(prefixed_api.base_url) for link in listed.json()["links"])
    root = str(prefixed.base_url).rstrip("/").removesuffix(PREFIX)
    direct = httpx.get(f"{root}/processes", headers=dict(prefixed.headers), timeout=10)
    assert direct.status_code == 200
    assert direct.json()["processes"] == listed.json()["processes"]
    other = httpx.get(f"{root}/consumers/bob/processes", headers=dict(prefixed.headers))
    assert other.status_code == 404


def test_a_job_runs_and_its_result_downloads_through_the_public_path(
    prefixed_api: RunningApi,
) -> None:
    client = prefixed_api.consumer
    job_id = execute(client, "echo", {"message": "through the prefix"})
    assert wait_for_job(client, job_id)["status"] == "successful"
    href = client.get(f"/jobs/{job_id}/results").json()["echo"]["href"]
    assert href.startswith(f"{prefixed_api.base_url}/jobs/{job_id}/results/")
    redirect = client.get(href)
    assert redirect.status_code == 307
    signed = redirect.headers["Location"]
    assert signed.startswith(f"{prefixed_api.base_url}/storage/")
    assert httpx.get(signed, timeout=10).text == "through the prefix"
