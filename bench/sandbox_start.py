"""What the bubblewrap sandbox adds to starting a local worker (not a test: figures only).

For each worker (`true`, the `noop` dummy job) and each way of starting it (`none`: a plain
process group; `bubblewrap`: the sandbox with its limits, and a uid of its own when run as
root), N starts interleaved in one run: the time from the runner's `start` call until the
worker has exited and everything of it is cleaned up (cgroups removed), as the local runner
does per job. Medians and 90th percentiles in ms.

    .venv/bin/python bench/sandbox_start.py [--starts 40]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from workflow_api.execution.local.limits import JobCgroups
from workflow_api.execution.local.workers import WorkerLauncher
from workflow_common.sandbox import BubblewrapPolicy
from workflow_contracts.asset import WorkflowAsset

WORKER_UID = 61000  # as root: a uid no account uses
WORKERS = {
    "true": ["true"],
    "noop": [str(Path(sys.executable).parent / "dummy-job"), "noop"],
}


def asset(command: list[str]) -> WorkflowAsset:
    return WorkflowAsset.model_validate(
        {
            "id": "bench",
            "title": "bench",
            "execution": {"image": "x", "resources": {"cpu": "1", "memory": "256Mi"}},
            "local": {"command": command},
        }
    )


async def one_start(launcher: WorkerLauncher, job: WorkflowAsset, root: Path, index: int) -> float:
    workspace = root / f"job-{index}"
    workspace.mkdir()
    (workspace / "outputs").mkdir()
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "WORKFLOW_WORKSPACE": str(workspace),
        "WORKFLOW_OUTPUTS_DIR": str(workspace / "outputs"),
        "WORKFLOW_INPUTS_DIR": str(workspace / "inputs"),
        "WORKFLOW_PROGRESS_FILE": str(workspace / ".progress"),
    }
    started = time.perf_counter()
    with (root / f"job-{index}.log").open("ab") as log_file:
        worker = await launcher.start(
            f"bench-{os.getpid()}-{index}", job, workspace=workspace, env=env, log_file=log_file
        )
    code = await worker.process.wait()
    worker.kill()
    worker.release()
    elapsed = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"the worker failed ({code}): {(root / f'job-{index}.log').read_text()}")
    shutil.rmtree(workspace)
    return elapsed * 1000


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--starts", type=int, default=40)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sandbox-bench-") as directory:
        root = Path(directory) / "data"
        root.mkdir()
        policy = BubblewrapPolicy.prepare(
            data_dir=root,
            assets_dir=Path(directory) / "assets",
            extra_read_only=(),
            worker_uid=WORKER_UID if os.geteuid() == 0 else None,
        )
        launchers = {
            "none": WorkerLauncher(None, max_processes=256),
            "bubblewrap": WorkerLauncher(policy, max_processes=256),
        }
        times: dict[tuple[str, str], list[float]] = {}
        index = 0
        for _ in range(arguments.starts):
            for worker, command in WORKERS.items():
                for kind, launcher in launchers.items():
                    index += 1
                    elapsed = await one_start(launcher, asset(command), root, index)
                    times.setdefault((worker, kind), []).append(elapsed)
        confined = "cgroup limits" if JobCgroups.existing("bench") else "rlimits"
        print(f"{arguments.starts} starts each, interleaved; as uid {os.geteuid()}; {confined}")
        print(f"{'worker':8} {'sandbox':11} {'median ms':>10} {'p90 ms':>8}")
        for (worker, kind), values in sorted(times.items()):
            p90 = statistics.quantiles(values, n=10)[-1]
            print(f"{worker:8} {kind:11} {statistics.median(values):10.1f} {p90:8.1f}")
        for worker in WORKERS:
            added = statistics.median(times[(worker, "bubblewrap")]) - statistics.median(
                times[(worker, "none")]
            )
            print(f"{worker}: the sandbox adds {added:.1f} ms (median)")


if __name__ == "__main__":
    asyncio.run(main())
