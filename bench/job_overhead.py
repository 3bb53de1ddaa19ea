"""Per-job overhead and throughput of the workflow-api with the `noop` asset.

    (a) direct      `dummy-job noop` run with subprocess.run, N times: what the job itself costs
    (b) api         N jobs one after the other: POST /processes/noop/execution, then GET
                    /jobs/{id} every --poll-ms until `successful`; overhead = (b) - (a) medians
    (c) throughput  M jobs submitted at once (by --submitters threads) to a server with
                    max_running_jobs = each of --max-running; jobs/s until all are successful

Targets: overhead < 150 ms, throughput >= 20 jobs/s (2-core machine).

`--worker true` swaps the noop asset's local command for `true` (in a temporary copy of the asset
directory), taking the ~100 ms of CPU that starting Python costs out of every job: what is left is
the middle layer's own cost.

    .venv/bin/python bench/job_overhead.py [--jobs 50] [--throughput-jobs 200] [--max-running 4 8]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import yaml
from harness import (
    DUMMY_ASSETS,
    SpawnedApi,
    load_note,
    print_table,
    server_cpu,
    spawn_api,
    summary_ms,
    write_results,
)

OVERHEAD_TARGET_MS = 150.0
THROUGHPUT_TARGET = 20.0
PROCESS = "noop"
WORKERS = {"dummy-job": ["dummy-job", "noop"], "true": ["true"]}


def local_command(worker: str) -> list[str]:
    """The asset's local command as the local runner finds it (the venv's bin first on PATH)."""
    command = list(WORKERS[worker])
    executable = Path(sys.executable).parent / command[0]
    return [str(executable), *command[1:]] if executable.exists() else command


def assets_dir(worker: str, work_dir: Path) -> Path:
    """The dummy assets, with the noop asset's local command replaced when the worker is not
    `dummy-job`."""
    if worker == "dummy-job":
        return Path(DUMMY_ASSETS)
    directory = work_dir / "assets"
    shutil.copytree(DUMMY_ASSETS, directory)
    asset_file = directory / f"{PROCESS}.yaml"
    asset = yaml.safe_load(asset_file.read_text())
    asset["local"]["command"] = WORKERS[worker]
    asset_file.write_text(yaml.safe_dump(asset))
    return directory


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def direct_runs(
    command: list[str], count: int, warmup: int, work_dir: Path
) -> tuple[list[float], float]:
    """Wall times of the asset's local command started like the local runner does, and its CPU
    seconds per run."""
    workspace = work_dir / "direct-workspace"
    workspace.mkdir(parents=True, exist_ok=True)
    environment = {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "HOME": os.environ.get("HOME", "/tmp"),
        "WORKFLOW_WORKSPACE": str(workspace),
    }
    timings = []
    cpu_before = 0.0
    for number in range(warmup + count):
        if number == warmup:
            cpu_before = _children_cpu()
        started = time.perf_counter()
        subprocess.run(
            command,
            cwd=workspace,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            check=True,
            start_new_session=True,
        )
        if number >= warmup:
            timings.append(time.perf_counter() - started)
    return timings, (_children_cpu() - cpu_before) / count


def submit(client: httpx.Client) -> str:
    response = client.post(f"/processes/{PROCESS}/execution", json={"inputs": {}})
    if response.status_code != 201:
        raise RuntimeError(f"execution refused: {response.status_code} {response.text}")
    job_id: str = response.json()["jobID"]
    return job_id


def wait_successful(
    client: httpx.Client, job_id: str, poll: float, timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        info: dict[str, Any] = client.get(f"/jobs/{job_id}").raise_for_status().json()
        if info["status"] == "successful":
            return info
        if info["status"] in {"failed", "dismissed"}:
            raise RuntimeError(f"job {job_id} ended {info['status']}: {info.get('message')}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id} still {info['status']} after {timeout} s")
        time.sleep(poll)


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def api_latency(api: SpawnedApi, count: int, warmup: int, poll: float) -> dict[str, Any]:
    """Sequential jobs: client latency submit → seen successful, and the server's own timestamps."""
    client = api.client()
    latencies, submits, queued, running = [], [], [], []
    with server_cpu(api.pid) as cpu:
        for number in range(warmup + count):
            started = time.perf_counter()
            job_id = submit(client)
            submitted = time.perf_counter()
            info = wait_successful(client, job_id, poll)
            if number < warmup:
                continue
            latencies.append(time.perf_counter() - started)
            submits.append(submitted - started)
            created, begun = _moment(info["created"]), _moment(info["started"])
            queued.append((begun - created).total_seconds())
            running.append((_moment(info["finished"]) - begun).total_seconds())
    return {
        "latency": summary_ms(latencies),
        "submit_request": summary_ms(submits),
        "server_created_to_started": summary_ms(queued),
        "server_started_to_finished": summary_ms(running),
        "server_cpu_ms_per_job": round(cpu["seconds"] * 1000 / (warmup + count), 1),
    }


def throughput(
    api: SpawnedApi, count: int, submitters: int, done_poll: float, warmup: int
) -> dict[str, Any]:
    """M jobs submitted as fast as possible; time until the last one is successful."""
    client = api.client(limits=httpx.Limits(max_connections=submitters + 2))
    for _ in range(warmup):
        wait_successful(client, submit(client), 0.01)
    with server_cpu(api.pid) as cpu:
        started = time.perf_counter()
        with ThreadPoolExecutor(submitters) as pool:
            job_ids = list(pool.map(lambda _: submit(client), range(count)))
        submitted = time.perf_counter()
        while True:
            unfinished = client.get(
                "/jobs", params={"status": "accepted,running", "limit": 1}
            ).raise_for_status()
            if not unfinished.json()["jobs"]:
                break
            time.sleep(done_poll)
        ended = time.perf_counter()
    infos = [client.get(f"/jobs/{job_id}").raise_for_status().json() for job_id in job_ids]
    statuses = {info["status"] for info in infos}
    if statuses != {"successful"}:
        raise RuntimeError(f"not all jobs were successful: {statuses}")
    first_created = min(_moment(info["created"]) for info in infos)
    last_finished = max(_moment(info["finished"]) for info in infos)
    server_span = (last_finished - first_created).total_seconds()
    elapsed = ended - started
    return {
        "jobs": count,
        "submitters": submitters,
        "submit_seconds": round(submitted - started, 3),
        "elapsed_seconds": round(elapsed, 3),
        "jobs_per_second": round(count / elapsed, 2),
        "server_span_seconds": round(server_span, 3),
        "server_jobs_per_second": round(count / server_span, 2),
        "server_cpu_seconds": round(cpu["seconds"], 2),
        "server_cpu_ms_per_job": round(cpu["seconds"] * 1000 / count, 1),
        "worker_cpu_ms_per_job": round(cpu["children_seconds"] * 1000 / count, 1),
        "cpu_bound_jobs_per_second": round(
            (os.cpu_count() or 1) * count / (cpu["seconds"] + cpu["children_seconds"]), 1
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=50, help="N for (a) and (b)")
    parser.add_argument("--warmup", type=int, default=3, help="runs not measured, before each")
    parser.add_argument("--poll-ms", type=float, default=5.0, help="GET /jobs/{id} interval")
    parser.add_argument("--throughput-jobs", type=int, default=200, help="M for (c)")
    parser.add_argument("--max-running", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--submitters", type=int, default=4, help="threads submitting in (c)")
    parser.add_argument(
        "--progress-poll-seconds", type=float, default=None, help="server setting (default 0.5)"
    )
    parser.add_argument(
        "--worker",
        choices=sorted(WORKERS),
        default="dummy-job",
        help="the noop asset's local command: as shipped, or `true` (see above)",
    )
    parser.add_argument(
        "--sandbox",
        choices=["bubblewrap", "none"],
        default="bubblewrap",
        help="the local runner's sandbox (server setting); compare both in bench/sandbox_start.py",
    )
    parser.add_argument("--work-dir", type=Path, default=None, help="default: a temporary dir")
    parser.add_argument(
        "--profile-server",
        type=Path,
        default=None,
        metavar="PREFIX",
        help="profile each server (see profiled_serve.py): PREFIX-latency.prof, "
        "PREFIX-throughput-<max_running>.prof",
    )
    parser.add_argument("--name", default="job_overhead", help="results/<name>.json")
    arguments = parser.parse_args()
    load_before = load_note()

    command = local_command(arguments.worker)
    server_settings: dict[str, object] = {"sandbox": arguments.sandbox}
    if arguments.progress_poll_seconds is not None:
        server_settings["progress_poll_seconds"] = arguments.progress_poll_seconds
    with tempfile.TemporaryDirectory(prefix="bench-jobs-", dir=arguments.work_dir) as temporary:
        work_dir = Path(temporary)
        server_settings["assets_dir"] = assets_dir(arguments.worker, work_dir)
        timings, job_cpu = direct_runs(command, arguments.jobs, arguments.warmup, work_dir)
        direct = {**summary_ms(timings), "cpu_ms": round(job_cpu * 1000, 1)}

        profile = arguments.profile_server

        def profile_path(name: str) -> Path | None:
            return None if profile is None else profile.with_name(f"{profile.name}-{name}.prof")

        api = spawn_api(work_dir / "latency", profile=profile_path("latency"), **server_settings)
        try:
            api.grant(PROCESS)
            settings = api.settings()
            latency = api_latency(api, arguments.jobs, arguments.warmup, arguments.poll_ms / 1000)
        finally:
            api.stop()

        rates = []
        for max_running in arguments.max_running:
            api = spawn_api(
                work_dir / f"throughput-{max_running}",
                profile=profile_path(f"throughput-{max_running}"),
                max_running_jobs=max_running,
                **server_settings,
            )
            try:
                api.grant(PROCESS)
                rate = throughput(
                    api, arguments.throughput_jobs, arguments.submitters, 0.05, arguments.warmup
                )
            finally:
                api.stop()
            rates.append({"max_running_jobs": max_running, **rate})

    overhead = latency["latency"]["median_ms"] - direct["median_ms"]
    print(
        f"settings: progress_poll_seconds={settings.progress_poll_seconds} "
        f"max_running_jobs={settings.max_running_jobs} (latency run), storage={settings.storage}, "
        f"database=sqlite, runner={settings.runner}, client poll {arguments.poll_ms} ms, "
        f"worker {' '.join(WORKERS[arguments.worker])!r}, {arguments.submitters} submitters"
    )
    print_table(
        f"Per-job latency, {arguments.jobs} jobs each (ms)",
        ["what", "median", "p90", "min", "max"],
        [
            [name, row["median_ms"], row["p90_ms"], row["min_ms"], row["max_ms"]]
            for name, row in (
                (f"(a) direct {' '.join(WORKERS[arguments.worker])}", direct),
                ("(b) API submit → successful", latency["latency"]),
                ("    POST /execution alone", latency["submit_request"]),
                ("    server created→started", latency["server_created_to_started"]),
                ("    server started→finished", latency["server_started_to_finished"]),
            )
        ],
    )
    verdict = "OK" if overhead < OVERHEAD_TARGET_MS else "MISSED"
    print(f"  overhead = {overhead:.1f} ms (target < {OVERHEAD_TARGET_MS:.0f} ms): {verdict}")
    print(
        f"  CPU per job: the worker {direct['cpu_ms']} ms; server (with the client's "
        f"polling) {latency['server_cpu_ms_per_job']} ms"
    )
    print_table(
        f"(c) Throughput, {arguments.throughput_jobs} jobs (target >= {THROUGHPUT_TARGET} jobs/s)",
        [
            "max_running",
            "submit s",
            "total s",
            "jobs/s",
            "server jobs/s",
            "server CPU ms/job",
            "worker CPU ms/job",
            "CPU-bound jobs/s",
        ],
        [
            [
                rate["max_running_jobs"],
                rate["submit_seconds"],
                rate["elapsed_seconds"],
                rate["jobs_per_second"],
                rate["server_jobs_per_second"],
                rate["server_cpu_ms_per_job"],
                rate["worker_cpu_ms_per_job"],
                rate["cpu_bound_jobs_per_second"],
            ]
            for rate in rates
        ],
    )
    path = write_results(
        arguments.name,
        {
            "load_before": load_before,
            "settings": {
                "progress_poll_seconds": settings.progress_poll_seconds,
                "latency_max_running_jobs": settings.max_running_jobs,
                "storage": settings.storage,
                "runner": settings.runner,
                "database": "sqlite",
                "client_poll_ms": arguments.poll_ms,
                "worker": WORKERS[arguments.worker],
                "submitters": arguments.submitters,
                "warmup": arguments.warmup,
            },
            "direct": direct,
            "api": latency,
            "overhead_ms": round(overhead, 2),
            "overhead_target_ms": OVERHEAD_TARGET_MS,
            "overhead_met": overhead < OVERHEAD_TARGET_MS,
            "throughput": rates,
            "throughput_target_jobs_per_second": THROUGHPUT_TARGET,
            "throughput_met": {
                str(rate["max_running_jobs"]): rate["jobs_per_second"] >= THROUGHPUT_TARGET
                for rate in rates
            },
        },
    )
    print(f"\nbefore the run: {load_before}; results: {path}")


if __name__ == "__main__":
    main()
