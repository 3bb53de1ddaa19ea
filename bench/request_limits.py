"""What an oversized request body costs `provisioner serve`: server RSS growth and time to the
answer for a chunked 100 MiB body to a JSON route, with the default 1 MiB limit and, as the
baseline (what the server did before it had a limit), a limit above the body's size.

    .venv/bin/python bench/request_limits.py [--size-mib 100]

Prints a table and writes bench/results/request_limits.json.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from workflow_testkit.ports import free_port

REPOSITORY = Path(__file__).resolve().parents[1]
CHUNK = b"x" * 65536
SECRET = "endpoint-secret-of-the-benchmark"


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def measure(limit: int, size: int, work: Path) -> dict[str, float]:
    port = free_port()
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PROVISIONER_")},
        "PROVISIONER_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "PROVISIONER_DATA_DIR": str(work / f"p{port}"),
        "PROVISIONER_ASSETS_DIR": str(REPOSITORY / "dummy-job" / "assets"),
        "PROVISIONER_ADMIN_TOKEN": "an-admin-token-of-at-least-32-characters",
        "PROVISIONER_EDC_ENDPOINT_SECRET": SECRET,
        "PROVISIONER_MAX_REQUEST_BODY_BYTES": str(limit),
        "PROVISIONER_REQUEST_BODY_TIMEOUT_SECONDS": "300",
    }
    log = (work / f"server-{port}.log").open("ab")
    server = subprocess.Popen(
        [sys.executable, "-m", "provisioner", "serve", "--port", str(port)],
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        before = rss(server.pid)
        peak, sent, started = before, 0, time.monotonic()
        with socket.create_connection(("127.0.0.1", port), timeout=300) as sock:
            sock.sendall(
                f"POST /edc/provision?secret={SECRET} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
            )
            while sent < size and not select.select([sock], [], [], 0)[0]:
                try:
                    sock.sendall(b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK))
                except OSError:
                    break
                sent += len(CHUNK)
                if sent % (8 * len(CHUNK)) == 0:
                    peak = max(peak, rss(server.pid))
            if sent >= size:
                sock.sendall(b"0\r\n\r\n")
            status = sock.recv(64).split(b" ")[1].decode()
        elapsed = time.monotonic() - started
        peak = max(peak, rss(server.pid))
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {
        "limit_bytes": limit,
        "status": float(status),
        "sent_mib": sent / 2**20,
        "seconds_to_answer": elapsed,
        "rss_before_mib": before / 2**20,
        "rss_growth_mib": (peak - before) / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=100)
    arguments = parser.parse_args()
    size = arguments.size_mib * 2**20
    with tempfile.TemporaryDirectory() as work:
        rows = [
            measure(2**20, size, Path(work)),  # the default
            measure(size * 2, size, Path(work)),  # baseline: no effective limit
        ]
    print(f"{'limit':>12} {'status':>6} {'sent MiB':>9} {'s to answer':>11} {'RSS growth MiB':>15}")
    for row in rows:
        print(
            f"{int(row['limit_bytes']):>12} {int(row['status']):>6} {row['sent_mib']:>9.1f}"
            f" {row['seconds_to_answer']:>11.2f} {row['rss_growth_mib']:>15.1f}"
        )
    results = REPOSITORY / "bench" / "results"
    results.mkdir(exist_ok=True)
    document = {"load_average": os.getloadavg(), "size_mib": arguments.size_mib, "rows": rows}
    (results / "request_limits.json").write_text(json.dumps(document, indent=2))


if __name__ == "__main__":
    main()
