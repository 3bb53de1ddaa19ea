"""Runs inside a private network namespace (`unshare -rn`): a server, probes, health checks.

Standard library only. Reads one JSON job on stdin, prints one JSON result on stdout:

    job:    {"server": {"argv", "env", "cwd"}, "ready_url", "ready_timeout",
             "probes": [{"url", "method", "headers", "body"}],
             "commands": [{"argv", "env", "cwd"}],        # while the server runs
             "commands_after_stop": [{"argv", "env", "cwd"}]}
    result: {"ready", "seconds_to_ready", "probes": [{"status", "body"}],
             "commands": [{"returncode", "output"}], "commands_after_stop": [...],
             "server_returncode", "server_output"}

The namespace has only a loopback interface, so the server binds the very address and port its
image says (0.0.0.0:8000 ...) without meeting anything else on this machine, and nothing outside
can reach it. The whole process group of the server is stopped at the end.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
OUTPUT_LIMIT = 20_000


def loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))


def fetch(
    url: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: str | None = None,
    timeout: float = 5,
) -> tuple[int, str]:
    data = body.encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read(OUTPUT_LIMIT).decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read(OUTPUT_LIMIT).decode(errors="replace")


def run(command: dict[str, Any]) -> dict[str, Any]:
    try:
        done = subprocess.run(
            command["argv"],
            env=command["env"],
            cwd=command["cwd"],
            capture_output=True,
            text=True,
            timeout=command.get("timeout", 30),
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return {"returncode": None, "output": f"{type(error).__name__}: {error}"}
    return {"returncode": done.returncode, "output": (done.stdout + done.stderr)[-OUTPUT_LIMIT:]}


def main() -> None:
    job = json.load(sys.stdin)
    loopback_up()
    result: dict[str, Any] = {
        "ready": False,
        "probes": [],
        "commands": [],
        "commands_after_stop": [],
    }
    server = job["server"]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            server["argv"],
            env=server["env"],
            cwd=server["cwd"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            started = time.monotonic()
            deadline = started + job.get("ready_timeout", 60)
            while process.poll() is None and time.monotonic() < deadline:
                with contextlib.suppress(OSError):
                    if fetch(job["ready_url"], timeout=2)[0] == 200:
                        result["ready"] = True
                        result["seconds_to_ready"] = round(time.monotonic() - started, 2)
                        break
                time.sleep(0.2)
            if result["ready"]:
                for probe in job.get("probes", []):
                    try:
                        status, body = fetch(
                            probe["url"],
                            probe.get("method", "GET"),
                            probe.get("headers"),
                            probe.get("body"),
                        )
                    except OSError as error:
                        status, body = None, f"{type(error).__name__}: {error}"
                    result["probes"].append({"status": status, "body": body})
                result["commands"] = [run(c) for c in job.get("commands", [])]
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # what the server left in its group
        result["server_returncode"] = process.returncode
        result["commands_after_stop"] = [run(c) for c in job.get("commands_after_stop", [])]
        log.seek(0)
        result["server_output"] = log.read().decode(errors="replace")[-OUTPUT_LIMIT:]
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
