"""Shared helpers of the benchmarks: a workflow-api in its own process, statistics, results.

The server runs as `python -m workflow_api serve` with `WORKFLOW_API_*` variables, exactly as in
production, so that the benchmark client's CPU and memory never mix with the server's.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from provisioner.tokens.signing_key import SigningKey
from workflow_api.settings import Settings
from workflow_contracts.tokens import ADMIN_SCOPE
from workflow_testkit.ports import free_port

REPOSITORY = Path(__file__).resolve().parents[1]
DUMMY_ASSETS = REPOSITORY / "dummy-job" / "assets"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
ISSUER = "bench-provisioner"
BENCH_WORKER_UID = 61000  # as root the sandbox needs the workers' uid; one no account uses
CONSUMER = "bench-consumer"
AUDIENCE = f"workflow-api/{CONSUMER}"
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class SpawnedApi:
    """A `workflow-api serve` process on a loopback port, with tokens for it."""

    process: subprocess.Popen[bytes]
    environment: dict[str, str]
    data_dir: Path
    base_url: str
    key: SigningKey
    log_path: Path
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    def token(self, scope: str | None = None, subject: str = CONSUMER) -> str:
        extra = {"scope": scope} if scope else {}
        return self.key.mint(
            issuer=ISSUER, subject=subject, audience=AUDIENCE, lifetime_seconds=4 * 3600, **extra
        )

    def client(self, *, admin: bool = False, **options: Any) -> httpx.Client:
        token = self.token(ADMIN_SCOPE, "provisioner") if admin else self.token()
        options.setdefault("timeout", 120)
        client = httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {token}"}, **options
        )
        self.clients.append(client)
        return client

    def grant(self, *asset_ids: str) -> None:
        admin = self.client(admin=True)
        for asset_id in asset_ids:
            admin.put(f"/admin/grants/{asset_id}", json={}).raise_for_status()

    def settings(self) -> Settings:
        """The server's settings, read from the same variables it was started with."""
        names = {
            name.removeprefix("WORKFLOW_API_").lower(): value
            for name, value in self.environment.items()
            if name.startswith("WORKFLOW_API_")
        }
        return Settings.model_validate(names)

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def spawn_api(data_dir: Path, *, profile: Path | None = None, **settings: object) -> SpawnedApi:
    """Start `python -m workflow_api serve` with the given settings (Settings field names).

    With `profile`, the server runs under `profiled_serve.py` and writes its cProfile stats
    there when it is stopped. The server inherits this process's environment (PYTHONPATH too: a
    patched copy of the packages put first on PYTHONPATH is what the server then runs).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    key = SigningKey.generate()
    jwks = key.write_jwks(data_dir.parent / f"{data_dir.name}-jwks.json")
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    variables = {
        "consumer_id": CONSUMER,
        "data_dir": str(data_dir),
        "assets_dir": str(DUMMY_ASSETS),
        "public_url": base_url,
        "token_issuer": ISSUER,
        "token_audience": AUDIENCE,
        "jwks_file": str(jwks),
        **({"sandbox_uid": str(BENCH_WORKER_UID)} if os.geteuid() == 0 else {}),
        **{name: str(value) for name, value in settings.items()},
    }
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("WORKFLOW_API_")
    }
    server_environment = {
        f"WORKFLOW_API_{name.upper()}": value for name, value in variables.items()
    }
    environment.update(server_environment)
    launcher = ["-m", "workflow_api"]
    if profile is not None:
        launcher = [str(Path(__file__).resolve().parent / "profiled_serve.py")]
        environment["PROFILE_OUT"] = str(profile.resolve())
    log_path = data_dir.parent / f"{data_dir.name}-server.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, *launcher, "serve", "--port", str(port)],
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base_url}/conformance", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
            raise RuntimeError(f"the workflow-api did not start; the end of its log:\n{tail}")
        time.sleep(0.05)
    return SpawnedApi(process, server_environment, data_dir, base_url, key, log_path)


# --- measurements of a process --------------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    """VmRSS of a process, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """User plus system CPU time of a process (fields 14 and 15 of /proc/<pid>/stat), or of its
    children that it has waited for (fields 16 and 17): the jobs' processes."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    first = 13 if children else 11
    return (int(fields[first]) + int(fields[first + 1])) / CLOCK_TICKS


class RssSampler:
    """Samples a process's RSS in a thread; `peak` is the highest value seen since `start`."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self._pid = pid
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.baseline = rss_bytes(pid)
        self.peak = self.baseline
        self.samples = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes(self._pid))
            self.samples += 1
            self._stop.wait(self._interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes(self._pid))

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


@contextmanager
def server_cpu(pid: int) -> Iterator[dict[str, float]]:
    """CPU seconds spent inside the block by the server (`result["seconds"]`) and by the
    processes it started and reaped (`result["children_seconds"]`)."""
    result: dict[str, float] = {}
    before, children_before = cpu_seconds(pid), cpu_seconds(pid, children=True)
    yield result
    result["seconds"] = cpu_seconds(pid) - before
    result["children_seconds"] = cpu_seconds(pid, children=True) - children_before


# --- statistics and output ------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * fraction
    lower = int(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    milliseconds = [value * 1000 for value in seconds]
    return {
        "count": len(milliseconds),
        "median_ms": round(statistics.median(milliseconds), 2),
        "p90_ms": round(percentile(milliseconds, 0.9), 2),
        "min_ms": round(min(milliseconds), 2),
        "max_ms": round(max(milliseconds), 2),
    }


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(value) for value in header], *[[_cell(value) for value in r] for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n{title}")
    for number, row in enumerate(cells):
        print(
            "  " + "  ".join(value.rjust(width) for value, width in zip(row, widths, strict=True))
        )
        if number == 0:
            print("  " + "  ".join("-" * width for width in widths))


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return str(value)


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_1_5_15": [round(value, 2) for value in os.getloadavg()],
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def load_note() -> str:
    """The 1-minute load average, to spot runs disturbed by other work on the machine."""
    return f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"


def write_results(name: str, results: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **results}, indent=2) + "\n")
    return path
