"""A local worker's start cut short (the API stopping while bwrap is being started or
unblocked) leaves nothing behind: no bwrap blocked on its `--block-fd`, no worker let loose
outside its limits, no descriptor of the start's pipes open in the API. Real bwrap, real
processes, found by their command line in /proc."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import pytest

from workflow_api.execution.local.workers import Worker, WorkerLauncher
from workflow_common.sandbox import BubblewrapPolicy
from workflow_contracts.asset import WorkflowAsset
from workflow_testkit.polling import poll
from workflow_testkit.sandbox import require_sandbox, worker_uid
from workflow_testkit.workflow_api import DUMMY_ASSETS


@pytest.fixture(autouse=True)
def _sandbox_required() -> None:
    require_sandbox()


def _launcher(tmp_path: Path) -> WorkerLauncher:
    policy = BubblewrapPolicy.prepare(
        data_dir=tmp_path / "data",
        assets_dir=DUMMY_ASSETS,
        extra_read_only=(),
        worker_uid=worker_uid(),
    )
    return WorkerLauncher(policy, max_processes=64)


def _asset(tag: str) -> WorkflowAsset:
    return WorkflowAsset.model_validate(
        {
            "id": "sleeper",
            "title": "Sleeper",
            "execution": {"image": "x", "resources": {"memory": "256Mi", "cpu": "1"}},
            "local": {"command": ["sleep", tag]},
        }
    )


def _processes_with(text: str) -> list[int]:
    """Processes whose command line holds `text` (bwrap's holds the worker's command)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(os.getpid()):
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _open_descriptors() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


async def _start_and_cancel(
    launcher: WorkerLauncher, workspace: Path, tag: str, delay: float
) -> None:
    """Start a worker, cancel the start after `delay` s; stop the worker if it was done first."""
    with (workspace.parent / f"{workspace.name}.log").open("wb") as log_file:
        start = asyncio.ensure_future(
            launcher.start(
                f"job-{tag}", _asset(tag), workspace=workspace, env={}, log_file=log_file
            )
        )
        await asyncio.sleep(delay)
        start.cancel()
        try:
            worker: Worker = await start
        except asyncio.CancelledError:
            return
    worker.kill()
    await asyncio.wait_for(worker.process.wait(), 10)
    worker.release()


@pytest.mark.parametrize("delay", [0.0, 0.002, 0.01, 0.05])
def test_a_start_cancelled_midway_leaves_no_process_and_no_descriptor(
    tmp_path: Path, delay: float
) -> None:
    launcher = _launcher(tmp_path)
    tag = f"{3000 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 10**6}"  # unique sleep length
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    before = _open_descriptors()
    asyncio.run(_start_and_cancel(launcher, workspace, tag, delay))
    poll(lambda: _processes_with(tag) == [], 10, f"no process of the job ({tag}) left")
    assert _open_descriptors() - before == set()
