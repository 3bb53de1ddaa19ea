"""What the egress policy costs a fetch: a plain httpx client vs. the guarded one, same server.

    (a) small   N GETs of 1 KiB, each on a new client (so every one pays the connection and the
                policy's check: the worst case for the pinned backend)
    (b) large   R GETs of S MiB streamed in 1 MiB chunks through `open_guarded` (redirect
                handling, deadline checks per chunk) vs. a plain `client.stream`

The server is a threaded `http.server` on 127.0.0.1 in this process, serving from memory; the
guarded client allow-lists 127.0.0.1/32 (loopback is refused by default). Baseline and guarded
runs alternate, so load on the machine hits both alike.

    .venv/bin/python bench/egress.py [--requests 300] [--size-mib 64] [--repeat 3]
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
from harness import load_note, print_table, summary_ms, write_results

from data_sidecar.egress import EgressPolicy
from data_sidecar.egress_http import Deadline, guarded_client, open_guarded

CHUNK = 1024 * 1024
TIMEOUT = httpx.Timeout(30.0)


def serve(bodies: dict[str, bytes]) -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            body = bodies[self.path]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def timed(operation: Callable[[], int]) -> tuple[float, int]:
    started = time.perf_counter()
    size = operation()
    return time.perf_counter() - started, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--name", default="egress")
    arguments = parser.parse_args()
    policy = EgressPolicy.build(allow_cidrs=["127.0.0.1/32"])
    server, base = serve({"/small": b"x" * 1024, "/large": b"y" * (arguments.size_mib * CHUNK)})
    print(load_note())

    def small_plain() -> int:
        with httpx.Client(timeout=TIMEOUT, trust_env=False) as client:
            return len(client.get(f"{base}/small").content)

    def small_guarded() -> int:
        deadline = Deadline(30, TIMEOUT)
        with (
            guarded_client(policy, TIMEOUT) as client,
            open_guarded(client, policy, f"{base}/small", deadline) as answer,
        ):
            return len(answer.read())

    def large_plain() -> int:
        with (
            httpx.Client(timeout=TIMEOUT, trust_env=False) as client,
            client.stream("GET", f"{base}/large") as answer,
        ):
            return sum(len(chunk) for chunk in answer.iter_raw(CHUNK))

    def large_guarded() -> int:
        with guarded_client(policy, TIMEOUT) as client:
            deadline = Deadline(300, TIMEOUT)
            with open_guarded(client, policy, f"{base}/large", deadline) as answer:
                total = 0
                for chunk in answer.iter_raw(CHUNK):
                    deadline.check()
                    total += len(chunk)
                return total

    small: dict[str, list[float]] = {"plain": [], "guarded": []}
    for _ in range(20):  # warm-up
        small_plain(), small_guarded()
    for _ in range(arguments.requests):
        small["plain"].append(timed(small_plain)[0])
        small["guarded"].append(timed(small_guarded)[0])
    large: dict[str, list[float]] = {"plain": [], "guarded": []}
    large_plain(), large_guarded()
    for _ in range(arguments.repeat):
        large["plain"].append(timed(large_plain)[0])
        large["guarded"].append(timed(large_guarded)[0])
    server.shutdown()

    small_summary = {name: summary_ms(values) for name, values in small.items()}
    mib_per_s = {name: round(arguments.size_mib / min(values), 1) for name, values in large.items()}
    print_table(
        f"(a) {arguments.requests} GETs of 1 KiB, a new client each",
        ["client", "median ms", "p90 ms"],
        [(n, s["median_ms"], s["p90_ms"]) for n, s in small_summary.items()],
    )
    print_table(
        f"(b) {arguments.size_mib} MiB streamed, best of {arguments.repeat}",
        ["client", "MiB/s"],
        list(mib_per_s.items()),
    )
    path = write_results(
        arguments.name,
        {
            "settings": vars(arguments),
            "small": small_summary,
            "large_mib_per_s": mib_per_s,
            "large_seconds": large,
        },
    )
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main()
