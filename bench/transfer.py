"""Upload and download throughput of the workflow-api against a plain file copy on the same disk.

    (a) copy      the file copied with shutil.copyfile (the reference of the ratios) and with a
                  read/write loop of 1 MiB chunks
    (b) upload    POST /uploads, the body streamed from disk by httpx in 1 MiB chunks
    (c) download  the stored upload fetched through a signed GET URL of the filesystem store
                  (`/storage/uploads/<id>?...`, made with the server's own signing key), streamed
                  to a file; its sha256 is checked afterwards
    (d) memory    the server process's RSS (VmRSS, sampled every 50 ms) during (b) and (c):
                  peak - baseline
    ceiling       the file read and hashed with sha256, nothing written: an upload must at least
                  do this (it answers the digest), so upload/copy can never exceed sha256/copy
    reference     (b) and (c) again with curl (a C client, `-T` streams the file) when it is
                  installed: shows how much of (b) and (c) is the Python client's own cost

The server runs as its own process (`python -m workflow_api serve`). Everything stays in the page
cache on a machine with enough memory: this compares the software paths, not the disk. Dirty
pages are flushed (os.sync) before each timed transfer, and a warm-up round runs first, because
on a VM the first touch of guest memory and the writeback of earlier writes are slow and noisy.
Targets: upload/copy and download/copy >= 0.7, RSS growth < 100 MB.

    .venv/bin/python bench/transfer.py [--size-mib 1024] [--repeat 3] [--work-dir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from harness import (
    RssSampler,
    SpawnedApi,
    load_note,
    print_table,
    rss_bytes,
    server_cpu,
    spawn_api,
    write_results,
)

from workflow_api.storage import base as keys
from workflow_api.storage.factory import make_store

MiB = 1024**2
CHUNK = MiB  # the client's upload chunks and the copy loop's
RATIO_TARGET = 0.7
RSS_TARGET = 100 * 10**6


def make_source(path: Path, size: int) -> str:
    """A file of random bytes (incompressible); returns its sha256."""
    digest = hashlib.sha256()
    with path.open("wb") as file:
        remaining = size
        while remaining:
            block = os.urandom(min(CHUNK * 8, remaining))
            digest.update(block)
            file.write(block)
            remaining -= len(block)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(CHUNK * 8):
            digest.update(block)
    return digest.hexdigest()


def file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            yield chunk


def loop_copy(source: Path, destination: Path) -> None:
    with source.open("rb") as reader, destination.open("wb") as writer:
        while chunk := reader.read(CHUNK):
            writer.write(chunk)


def upload(client: httpx.Client, source: Path, size: int) -> dict[str, Any]:
    response = client.post(
        "/uploads",
        params={"filename": source.name},
        content=file_chunks(source),
        headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
    )
    if response.status_code != 201:
        raise RuntimeError(f"upload refused: {response.status_code} {response.text}")
    document: dict[str, Any] = response.json()
    return document


def download(client: httpx.Client, url: str, destination: Path) -> int:
    """Stream to a file as the network delivers it (`iter_raw()` is httpx's cheapest path)."""
    received = 0
    with client.stream("GET", url) as response, destination.open("wb") as file:
        response.raise_for_status()
        for chunk in response.iter_raw():
            file.write(chunk)
            received += len(chunk)
    return received


def curl_upload(api: SpawnedApi, source: Path) -> dict[str, Any]:
    """The same POST /uploads by curl, streamed from the file (`-T`), without `Expect:`."""
    token = api.token()
    completed = subprocess.run(
        [
            "curl", "--silent", "--show-error", "--fail", "-X", "POST", "-T", str(source),
            "-H", f"Authorization: Bearer {token}", "-H", "Expect:",
            "-H", "Content-Type: application/octet-stream",
            f"{api.base_url}/uploads?filename={source.name}",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    document: dict[str, Any] = json.loads(completed.stdout)
    return document


def curl_download(url: str, destination: Path) -> None:
    subprocess.run(
        ["curl", "--silent", "--show-error", "--fail", "-o", str(destination), url], check=True
    )


@dataclass
class Phase:
    """One timed transfer: wall seconds, CPU seconds of this process, its children and the
    server, and the server's RSS growth while it ran."""

    seconds: float = 0.0
    client_cpu: float = 0.0
    server_cpu: float = 0.0
    rss_growth: int = 0
    rss_peak: int = 0


def prime_page_cache(directory: Path, size: int) -> None:
    """Write and delete a file a bit larger than `size`, so that the next transfer gets page-cache
    pages that are backed by the host right now.

    On a VM with free page reporting (virtio-balloon), memory freed a few seconds earlier is handed
    back to the host, and touching it again costs a host page fault per page: file writes then
    run at ~200 MB/s instead of ~2.5 GB/s. Without priming, whichever phase comes after a pause
    pays for that, and the ratios measure the VM rather than the code.
    """
    block = b"\x5a" * (4 * MiB)
    path = directory / "prime.bin"
    with path.open("wb") as file:
        for _ in range(size // len(block) + 16):
            file.write(block)
    path.unlink()


def measure(
    api: SpawnedApi, operation: Callable[[], Any], prime: tuple[Path, int] | None
) -> tuple[Phase, Any]:
    """Run `operation` after flushing dirty pages (so that no phase pays for the previous one's
    writeback) and priming the page cache, sampling the server's RSS and CPU."""
    os.sync()
    if prime is not None:
        prime_page_cache(*prime)
    phase = Phase()
    client_before = _own_cpu()
    with RssSampler(api.pid) as rss, server_cpu(api.pid) as cpu:
        started = time.perf_counter()
        result = operation()
        phase.seconds = time.perf_counter() - started
    phase.client_cpu = _own_cpu() - client_before
    phase.server_cpu = cpu["seconds"]
    phase.rss_growth, phase.rss_peak = rss.growth, rss.peak
    return phase, result


def _own_cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def one_round(
    api: SpawnedApi,
    source: Path,
    size: int,
    sha256: str,
    work_dir: Path,
    *,
    curl: bool,
    prime: bool,
) -> dict[str, Phase]:
    phases: dict[str, Phase] = {}
    primer = (work_dir, size) if prime else None

    def measure_phase(operation: Callable[[], Any]) -> tuple[Phase, Any]:
        return measure(api, operation, primer)

    target = work_dir / "target.bin"
    client = api.client()
    store = make_store(api.settings())

    def check_upload(document: dict[str, Any]) -> str:
        if document["size"] != size or document["sha256"] != sha256:
            raise RuntimeError(f"the upload was stored wrongly: {document}")
        upload_id: str = document["id"]
        return upload_id

    def check_download(upload_id: str) -> None:
        if sha256_of(target) != sha256:
            raise RuntimeError("the downloaded file differs from the uploaded one")
        target.unlink()
        client.delete(f"/uploads/{upload_id}").raise_for_status()

    def signed(upload_id: str) -> str:
        return store.signed_url("GET", keys.upload_key(upload_id), timedelta(minutes=10))

    phases["copyfile"], _ = measure_phase(lambda: shutil.copyfile(source, target))
    target.unlink()
    phases["loop_copy"], _ = measure_phase(lambda: loop_copy(source, target))
    target.unlink()
    phases["sha256"], _ = measure_phase(lambda: sha256_of(source))

    phases["upload"], document = measure_phase(lambda: upload(client, source, size))
    upload_id = check_upload(document)
    with httpx.Client(timeout=120) as plain:  # a signed URL needs no token
        phases["download"], _ = measure_phase(lambda: download(plain, signed(upload_id), target))
    check_download(upload_id)

    if curl:
        phases["curl_upload"], document = measure_phase(lambda: curl_upload(api, source))
        upload_id = check_upload(document)
        phases["curl_download"], _ = measure_phase(lambda: curl_download(signed(upload_id), target))
        check_download(upload_id)
    return phases


LABELS = {
    "copyfile": "copy (shutil.copyfile)",
    "loop_copy": "copy (1 MiB read/write loop)",
    "sha256": "read + sha256 only (the floor of any upload that answers its sha256)",
    "upload": "upload (httpx, POST /uploads)",
    "download": "download (httpx, signed GET URL)",
    "curl_upload": "upload (curl, POST /uploads)",
    "curl_download": "download (curl, signed GET URL)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="file size (default 1 GiB)")
    parser.add_argument("--repeat", type=int, default=3, help="measured rounds (medians)")
    parser.add_argument(
        "--warmup-rounds", type=int, default=1, help="rounds run first and not counted"
    )
    parser.add_argument("--no-curl", action="store_true", help="skip the curl reference transfers")
    parser.add_argument(
        "--no-prime",
        action="store_true",
        help="do not write and delete a file of the transfer's size before each transfer "
        "(see prime_page_cache)",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="where the file, the copies and the server's data_dir go (one disk); "
        "default: the system temporary directory",
    )
    parser.add_argument(
        "--profile-server",
        type=Path,
        default=None,
        metavar="FILE",
        help="profile the server (see profiled_serve.py) into FILE",
    )
    parser.add_argument("--name", default="transfer", help="results/<name>.json")
    arguments = parser.parse_args()
    load_before = load_note()
    size = arguments.size_mib * MiB
    curl = not arguments.no_curl and shutil.which("curl") is not None

    with tempfile.TemporaryDirectory(prefix="bench-transfer-", dir=arguments.work_dir) as temporary:
        work_dir = Path(temporary)
        source = work_dir / "source.bin"
        sha256 = make_source(source, size)
        api = spawn_api(
            work_dir / "api",
            profile=arguments.profile_server,
            max_upload_size=size + MiB,
            storage_quota=4 * size,
        )
        try:
            api.client().get("/uploads").raise_for_status()  # warm up auth and the database
            rss_start = rss_bytes(api.pid)
            all_rounds = [
                one_round(
                    api, source, size, sha256, work_dir, curl=curl, prime=not arguments.no_prime
                )
                for _ in range(arguments.warmup_rounds + arguments.repeat)
            ]
            rss_end = rss_bytes(api.pid)
        finally:
            api.stop()

    rounds = all_rounds[arguments.warmup_rounds :]

    def median(name: str, field: str) -> float:
        return float(statistics.median(getattr(r[name], field) for r in rounds))

    def rate(name: str) -> float:
        return float(size / median(name, "seconds") / 10**6)

    names = [name for name in LABELS if name in rounds[0]]
    copy_rate, loop_rate = rate("copyfile"), rate("loop_copy")
    ratios = {
        name: {"over_copyfile": rate(name) / copy_rate, "over_loop_copy": rate(name) / loop_rate}
        for name in names
    }
    print(
        f"file: {arguments.size_mib} MiB; {arguments.repeat} rounds after "
        f"{arguments.warmup_rounds} warm-up (medians); os.sync() "
        f"{'' if arguments.no_prime else 'and page-cache priming '}before each transfer"
    )
    print_table(
        "Throughput (MB/s = 10^6 bytes/s; CPU in seconds)",
        ["what", "s", "MB/s", "/copyfile", "/loop", "client CPU", "server CPU"],
        [
            [
                LABELS[name],
                round(median(name, "seconds"), 3),
                rate(name),
                round(ratios[name]["over_copyfile"], 2),
                round(ratios[name]["over_loop_copy"], 2),
                round(median(name, "client_cpu"), 2),
                round(median(name, "server_cpu"), 2)
                if name not in {"copyfile", "loop_copy"}
                else "",
            ]
            for name in names
        ],
    )
    upload_ratio = ratios["upload"]["over_copyfile"]
    download_ratio = ratios["download"]["over_copyfile"]
    print(
        f"  upload/copy = {upload_ratio:.2f}, download/copy = {download_ratio:.2f} "
        f"(httpx client, against shutil.copyfile; target >= {RATIO_TARGET})"
    )
    # memory: every round, the warm-up included (that is where a server grows first)
    transfers = [name for name in names if name not in {"copyfile", "loop_copy"}]
    growth = {name: max(r[name].rss_growth for r in all_rounds) for name in transfers}
    peaks = {name: max(r[name].rss_peak for r in all_rounds) for name in transfers}
    overall = max(peaks.values()) - rss_start
    print_table(
        "Server RSS during each transfer (MB, worst of all rounds, warm-up included)",
        ["transfer", "growth in the transfer", "peak", "peak - RSS before round 1"],
        [
            [LABELS[name], growth[name] / 1e6, peaks[name] / 1e6, (peaks[name] - rss_start) / 1e6]
            for name in transfers
        ],
    )
    print(
        f"  RSS before the first round {rss_start / 1e6:.1f} MB, after the last "
        f"{rss_end / 1e6:.1f} MB; growth {overall / 1e6:.1f} MB "
        f"(target < {RSS_TARGET / 1e6:.0f} MB)"
    )
    path = write_results(
        arguments.name,
        {
            "load_before": load_before,
            "size_bytes": size,
            "repeat": arguments.repeat,
            "warmup_rounds": arguments.warmup_rounds,
            "page_cache_primed": not arguments.no_prime,
            "throughput_mb_per_s": {name: round(rate(name), 1) for name in names},
            "ratios": {
                name: {key: round(value, 3) for key, value in ratio.items()}
                for name, ratio in ratios.items()
            },
            "upload_over_copy": round(upload_ratio, 3),
            "download_over_copy": round(download_ratio, 3),
            "ratio_target": RATIO_TARGET,
            "ratios_met": upload_ratio >= RATIO_TARGET and download_ratio >= RATIO_TARGET,
            "rss_start_bytes": rss_start,
            "rss_end_bytes": rss_end,
            "rss_growth_in_transfer_bytes": growth,
            "rss_peak_bytes": peaks,
            "rss_growth_bytes": overall,
            "rss_target_bytes": RSS_TARGET,
            "rss_met": overall < RSS_TARGET,
            "rounds": [{name: asdict(phase) for name, phase in r.items()} for r in all_rounds],
        },
    )
    print(f"\nbefore the run: {load_before}; results: {path}")


if __name__ == "__main__":
    main()
