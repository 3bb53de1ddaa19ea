"""A worker that tries to break out of its sandbox (standard library only; run by the tests).

`ATTACK` (a literal input, so an environment variable) says what it tries; it writes what
happened to the output `report` as JSON and exits 0, so the test sees every attempt's result:

- `read`: open each path of `TARGETS` (JSON list) and list the directories among them;
- `connect`: a TCP connection to 127.0.0.1:`PORT`;
- `linger`: leave a process behind (setsid, double fork, sleep) tagged with `TAG`;
- `memory`: touch `MEGABYTES` MiB of memory;
- `progress-link`: make the progress file a symbolic link to `TARGETS[0]`, then wait.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any


def _try_read(path: str) -> str:
    try:
        if os.path.isdir(path):
            return "listed " + " ".join(sorted(os.listdir(path)))
        with open(path, "rb") as handle:
            return f"read {len(handle.read())} bytes"
    except OSError as error:
        return type(error).__name__


def _connect(port: int) -> str:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3):
            return "connected"
    except OSError as error:
        return type(error).__name__


def _linger(tag: str, workspace: Path) -> dict[str, Any]:
    marker = workspace / "lingerer.pid"
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            marker.write_text(str(os.getpid()))
            os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(300)", tag])
        os._exit(0)
    deadline = time.monotonic() + 10
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)  # the exec has happened
    pid = int(marker.read_text())
    return {"lingerer": pid, "running": Path(f"/proc/{pid}").exists()}


def _memory(megabytes: int) -> str:
    chunks = [b"x" * (1 << 20) for _ in range(megabytes)]
    return f"touched {len(chunks)} MiB"


def main() -> None:
    workspace = Path(os.environ["WORKFLOW_WORKSPACE"])
    attack = os.environ["ATTACK"]
    targets: list[str] = json.loads(os.environ.get("TARGETS", "[]"))
    report: dict[str, Any] = {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups()}
    if attack == "read":
        report["results"] = {path: _try_read(path) for path in targets}
    elif attack == "connect":
        report["result"] = _connect(int(os.environ["PORT"]))
    elif attack == "linger":
        report.update(_linger(os.environ["TAG"], workspace))
    elif attack == "memory":
        report["result"] = _memory(int(os.environ["MEGABYTES"]))
    elif attack == "progress-link":
        progress = Path(os.environ["WORKFLOW_PROGRESS_FILE"])
        progress.unlink()
        progress.symlink_to(targets[0])
        time.sleep(2)
        report["result"] = "linked"
    outputs = Path(os.environ["WORKFLOW_OUTPUTS_DIR"])
    outputs.mkdir(parents=True, exist_ok=True)
    (outputs / "report").write_text(json.dumps(report))


if __name__ == "__main__":
    main()
