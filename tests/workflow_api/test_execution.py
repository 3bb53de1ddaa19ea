"""Dismissal that really stops, the FIFO queue, timeouts, revocation, input validation."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from workflow_testkit.workflow_api import ALLOW_LOOPBACK, RunningApi, execute, upload, wait_for_job


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rpartition(")")[2].split()[0] != "Z"


def _group_members(group: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[2]) == group and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def _tree(group: int) -> list[int]:
    """The live processes of the group and all their descendants (a sandboxed worker runs in
    a session of its own below the group's leader, bwrap)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    members = set(_group_members(group))
    while True:
        more = {pid for pid, parent in parents.items() if parent in members} - members
        if not more:
            return sorted(members)
        members |= more


def _running_process_group(api: RunningApi, job_id: str, worker_processes: int = 2) -> int:
    """The job's group once its worker and the worker's child run (plus bwrap's two)."""
    sandboxed = api.settings.sandbox == "bubblewrap"
    expected = worker_processes + (2 if sandboxed else 0)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        group = api.services.jobs.get(job_id).process_group
        if group is not None and len(_tree(group)) >= expected:
            return group
        time.sleep(0.05)
    raise AssertionError("the worker never started its child process")


def test_dismissing_a_running_job_kills_its_whole_process_tree(api: RunningApi) -> None:
    client = api.consumer
    job_id = execute(client, "dummy", {"duration": 120, "spawn_child": True})
    wait_for_job(client, job_id, {"running"})
    group = _running_process_group(api, job_id)
    members = _tree(group)

    response = client.delete(f"/jobs/{job_id}")

    assert response.status_code == 200
    assert response.json()["status"] == "dismissed"
    assert all(not _alive(pid) for pid in members), members
    assert _tree(group) == []
    assert client.get(f"/jobs/{job_id}").json()["status"] == "dismissed"
    assert client.get(f"/jobs/{job_id}/results").json()["type"].endswith("result-not-ready")


def test_excess_jobs_wait_in_fifo_order(api_factory) -> None:  # type: ignore[no-untyped-def]
    api = api_factory(max_running_jobs=1)
    client = api.consumer
    first = execute(client, "echo", {"message": "1", "pause": 1.0})
    second = execute(client, "echo", {"message": "2"})
    third = execute(client, "echo", {"message": "3"})

    wait_for_job(client, first, {"running"})
    assert client.get(f"/jobs/{second}").json()["status"] == "accepted"
    assert client.get(f"/jobs/{third}").json()["status"] == "accepted"
    infos = [wait_for_job(client, job) for job in (first, second, third)]

    assert [info["status"] for info in infos] == ["successful"] * 3
    starts = [info["started"] for info in infos]
    assert starts == sorted(starts)
    assert infos[0]["finished"] <= infos[1]["started"]


def test_dismissing_a_queued_job_never_runs_it(api_factory) -> None:  # type: ignore[no-untyped-def]
    api = api_factory(max_running_jobs=1)
    client = api.consumer
    blocker = execute(client, "echo", {"message": "1", "pause": 1.0})
    queued = execute(client, "echo", {"message": "2"})
    assert client.delete(f"/jobs/{queued}").json()["status"] == "dismissed"
    wait_for_job(client, blocker)
    time.sleep(0.3)
    info = client.get(f"/jobs/{queued}").json()
    assert info["status"] == "dismissed"
    assert "started" not in info


def test_timeout_stops_the_worker_and_fails_the_job(api_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / "slow.yaml").write_text(
        "id: slow\ntitle: Slow\nexecution: {image: x, timeout_seconds: 1}\n"
        "local: {command: [dummy-job, dummy]}\n"
        "inputs: [{id: duration, kind: literal, type: number, default: 60}]\n"
        "outputs: [{id: result}]\n"
    )
    api = api_factory(assets_dir=assets, grants=("slow",))
    started = time.monotonic()
    job_id = execute(api.consumer, "slow", {})
    info = wait_for_job(api.consumer, job_id, timeout=30)
    assert info["status"] == "failed"
    assert "timed out after 1 s" in info["message"]
    assert time.monotonic() - started < 15


def test_revoking_an_asset_dismisses_its_running_jobs(api: RunningApi) -> None:
    client = api.consumer
    job_id = execute(client, "dummy", {"duration": 120})
    wait_for_job(client, job_id, {"running"})

    revoked = api.admin.delete("/admin/grants/dummy").json()

    assert revoked == {"assetId": "dummy", "revoked": True, "dismissedJobs": 1}
    assert client.get(f"/jobs/{job_id}").json()["status"] == "dismissed"
    assert client.get("/processes/dummy").status_code == 404


def test_missing_declared_output_fails_the_job_naming_it(api_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / "forgetful.yaml").write_text(
        "id: forgetful\ntitle: Forgetful\nexecution: {image: x}\n"
        "local: {command: [dummy-job, noop]}\n"
        "outputs: [{id: report}]\n"
    )
    api = api_factory(assets_dir=assets, grants=("forgetful",))
    info = wait_for_job(api.consumer, execute(api.consumer, "forgetful", {}))
    assert info["status"] == "failed"
    assert "'report'" in info["message"]


@pytest.mark.parametrize(
    ("inputs", "input_id", "detail"),
    [
        ({}, "message", "is required"),
        ({"message": "x", "colour": "red"}, "colour", "is not an input"),
        ({"message": 42}, "message", "is not of type 'string'"),
        ({"message": {"href": "https://example.org/x"}}, "message", "not a reference"),
        ({"message": ["a", "b"]}, "message", "exactly one value"),
        ({"message": "x", "pause": "soon"}, "pause", "is not of type 'number'"),
    ],
)
def test_invalid_inputs_are_refused_naming_the_input(
    api: RunningApi, inputs: dict[str, object], input_id: str, detail: str
) -> None:
    response = api.consumer.post("/processes/echo/execution", json={"inputs": inputs})
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["input"] == input_id
    assert detail in problem["detail"]
    assert api.consumer.get("/jobs").json()["jobs"] == []


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        ({"value": "x"}, "expects a reference"),
        ({"href": "ftp://example.org/x"}, "http(s) URL"),
        ({"href": "/uploads/00000000-0000-0000-0000-000000000000"}, "no upload"),
    ],
)
def test_file_inputs_need_a_valid_reference(
    api: RunningApi, value: dict[str, str], detail: str
) -> None:
    response = api.consumer.post(
        "/processes/input-dummy/execution",
        json={"inputs": {"document": value, "dataset": value, "settings": "GREETING=hi"}},
    )
    assert response.status_code == 400
    assert detail in response.json()["detail"]


def test_invalid_env_file_is_refused_naming_the_line(api: RunningApi) -> None:
    response = api.consumer.post(
        "/processes/input-dummy/execution",
        json={"inputs": {"settings": "GREETING=1\nnot a line\n"}},
    )
    assert response.status_code == 400
    assert "line 2" in response.json()["detail"]
    assert response.json()["input"] == "settings"


def test_stage_in_failure_fails_the_job_with_a_message(
    api_factory: Callable[..., RunningApi],
) -> None:
    client = api_factory(**ALLOW_LOOPBACK).consumer
    document = upload(client, b"d")
    job_id = execute(
        client,
        "input-dummy",
        {
            "document": {"href": document["href"]},
            "dataset": {"href": "http://127.0.0.1:9/unreachable.zip"},
            "settings": "GREETING=hi",
        },
    )
    info = wait_for_job(client, job_id, timeout=120)
    assert info["status"] == "failed"
    assert "stage-in failed" in info["message"]
    assert "dataset" in info["message"]
