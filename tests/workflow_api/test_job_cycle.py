"""The consumer cycle over HTTP: upload → execute → progress → results → logs → delete."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Callable

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from workflow_testkit.ports import bound_socket
from workflow_testkit.workflow_api import (
    ALLOW_LOOPBACK,
    RunningApi,
    ThreadedServer,
    execute,
    upload,
    wait_for_job,
)


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _follow(client: httpx.Client, url: str, **kwargs: object) -> httpx.Response:
    response = client.get(url, follow_redirects=True, **kwargs)  # type: ignore[arg-type]
    response.raise_for_status()
    return response


def test_dummy_job_reports_progress_then_delivers_its_result(api: RunningApi) -> None:
    client = api.consumer
    job_id = execute(client, "dummy", {"duration": 1.5})

    progressed = wait_for_job(client, job_id, {"running", "successful"})
    seen_progress = set()
    while progressed["status"] == "running":
        seen_progress.add(progressed["progress"])
        progressed = client.get(f"/jobs/{job_id}").json()
    info = wait_for_job(client, job_id)

    assert info["status"] == "successful", info
    assert info["progress"] == 100
    assert any(0 < value < 100 for value in seen_progress), seen_progress
    assert info["started"] and info["finished"] and info["created"]
    results = client.get(f"/jobs/{job_id}/results").json()
    assert set(results) == {"result"}
    assert results["result"]["type"] == "text/plain"
    content = _follow(client, results["result"]["href"]).text
    assert "dummy" in content.lower()
    log = _follow(client, f"/jobs/{job_id}/logs").text
    assert log.strip(), "the worker's log is kept after the job ended"


def test_input_dummy_stages_every_input_kind_and_returns_a_directory(api: RunningApi) -> None:
    client = api.consumer
    document = upload(client, b"hello workflow\n", "document.txt")
    dataset = upload(client, _zip({"a.txt": b"alpha", "nested/b.txt": b"beta"}), "dataset.zip")
    settings = upload(client, b"GREETING=hi\nREPEAT=3\n", "settings.env")
    assert document["sha256"] == hashlib.sha256(b"hello workflow\n").hexdigest()
    assert document["size"] == len(b"hello workflow\n")

    job_id = execute(
        client,
        "input-dummy",
        {
            "document": {"href": document["href"]},
            "dataset": {"href": dataset["href"]},
            "settings": {"href": settings["href"]},
        },
    )
    info = wait_for_job(client, job_id)

    assert info["status"] == "successful", (info, _follow(client, f"/jobs/{job_id}/logs").text)
    results = client.get(f"/jobs/{job_id}/results").json()
    assert set(results) == {"listing", "transformed"}
    assert results["transformed"]["type"] == "application/zip"
    listing = _follow(client, results["listing"]["href"]).text
    assert "a.txt" in listing and "b.txt" in listing and "document" in listing
    archive = zipfile.ZipFile(io.BytesIO(_follow(client, results["transformed"]["href"]).content))
    names = set(archive.namelist())
    assert any(name.endswith("document.upper.txt") for name in names), names
    upper = next(n for n in names if n.endswith("document.upper.txt"))
    assert archive.read(upper) == b"HELLO WORKFLOW\n"
    greeting = next(n for n in names if n.endswith("greeting.txt"))
    assert archive.read(greeting).decode().count("hi") == 3


def test_inline_env_file_is_parsed_and_staged(api: RunningApi) -> None:
    client = api.consumer
    document = upload(client, b"x", "d.txt")
    dataset = upload(client, _zip({"only.txt": b"1"}), "d.zip")
    job_id = execute(
        client,
        "input-dummy",
        {
            "document": {"href": document["href"]},
            "dataset": {"href": dataset["href"]},
            "settings": {"value": "GREETING=yo\nREPEAT=2\n"},
        },
    )
    info = wait_for_job(client, job_id)
    assert info["status"] == "successful", info
    results = client.get(f"/jobs/{job_id}/results").json()
    archive = zipfile.ZipFile(io.BytesIO(_follow(client, results["transformed"]["href"]).content))
    greeting = next(n for n in archive.namelist() if n.endswith("greeting.txt"))
    assert archive.read(greeting).decode().count("yo") == 2


def test_result_download_supports_range_requests(api: RunningApi) -> None:
    client = api.consumer
    job_id = execute(client, "echo", {"message": "0123456789"})
    assert wait_for_job(client, job_id)["status"] == "successful"
    href = client.get(f"/jobs/{job_id}/results").json()["echo"]["href"]

    ranged = _follow(client, href, headers={"Range": "bytes=2-5"})

    assert ranged.status_code == 206
    assert ranged.content == b"2345"


def test_deleting_a_finished_job_removes_it_and_its_artifacts(api: RunningApi) -> None:
    client = api.consumer
    job_id = execute(client, "echo", {"message": "bye"})
    assert wait_for_job(client, job_id)["status"] == "successful"
    result_url = client.get(f"/jobs/{job_id}/results/echo").headers["location"]
    stored = api.settings.data_dir / "storage" / "jobs" / job_id
    assert stored.exists()

    response = client.delete(f"/jobs/{job_id}")

    assert response.status_code == 200
    assert client.get(f"/jobs/{job_id}").status_code == 404
    assert not stored.exists()
    assert httpx.get(result_url).status_code == 404


def test_failing_worker_fails_the_job_and_keeps_its_log(api: RunningApi) -> None:
    client = api.consumer
    job_id = execute(client, "dummy", {"duration": 0, "fail": True})
    info = wait_for_job(client, job_id)

    assert info["status"] == "failed"
    assert "exited with code 3" in info["message"]
    problem = client.get(f"/jobs/{job_id}/results")
    assert problem.status_code == 500
    assert problem.headers["content-type"].startswith("application/problem+json")
    assert "exited with code 3" in problem.json()["detail"]
    assert _follow(client, f"/jobs/{job_id}/logs").text.strip()


def test_inputs_can_be_plain_http_urls_the_job_fetches(
    api_factory: Callable[..., RunningApi],
) -> None:
    api = api_factory(**ALLOW_LOOPBACK)
    files = {
        "/doc.txt": b"fetched over http\n",
        "/data.zip": _zip({"remote.txt": b"r"}),
        "/settings.env": b"GREETING=remote\n",
    }

    async def serve(request: Request) -> Response:
        body = files.get(request.url.path)
        return Response(body, 200) if body is not None else Response(status_code=404)

    sock = bound_socket()
    server = ThreadedServer(Starlette(routes=[Route("/{name}", serve)]), sock)
    server.start()
    try:
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        client = api.consumer
        job_id = execute(
            client,
            "input-dummy",
            {
                "document": {"href": f"{base}/doc.txt"},
                "dataset": {"href": f"{base}/data.zip", "type": "application/zip"},
                "settings": {"href": f"{base}/settings.env"},
            },
        )
        info = wait_for_job(client, job_id)
    finally:
        server.stop()
    assert info["status"] == "successful", info
    results = client.get(f"/jobs/{job_id}/results").json()
    listing = _follow(client, results["listing"]["href"]).text
    assert "remote.txt" in listing
    assert "GREETING='remote'" in listing
