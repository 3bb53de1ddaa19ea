"""Upload and download throughput of the workflow-api against a plain file copy on the same disk.

    (a) copy      the file copied with shutil.copyfile (the reference of the ratios) and with a
                  read/write loop of 1 MiB chunks
    (b) upload    POST /uploads, the body streamed from disk by httpx in 1 MiB chunks
    (c) download  the stored upload fetched through a signed GET URL of the filesystem store
                  (`/storage/uploads/<id>?...`, made with the server's own signing key), streamed
                  to a file; its sha256 is checked afterwards
    (d) memory    the server process's RSS (VmRSS, sampled every 50 ms) during (b) and (c):
                  peak - baseline

The server runs as its own process (`python -m workflow_api serve`). Everything stays in the page
cache on a machine with enough memory: this compares the software paths, not the disk.
Targets: upload/copy and download/copy >= 0.7, RSS growth < 100 MB.

    .venv/bin/python bench/transfer.py [--size-mib 1024] [--repeat 3] [--work-dir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from harness import (
    RssSampler,
    SpawnedApi,
    print_table,
    rss_bytes,
    server_cpu,
    spawn_api,
    write_results,
)
from workflow_api.storage import base as keys
from workflow_api.storage.factory import make_store

MiB = 1024**2
CHUNK = MiB
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


def timed(operation: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = operation()
    return time.perf_counter() - started, result


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
    received = 0
    with client.stream("GET", url) as response, destination.open("wb") as file:
        response.raise_for_status()
        for chunk in response.iter_raw(CHUNK):
            file.write(chunk)
            received += len(chunk)
    return received


def one_round(
    api: SpawnedApi, source: Path, size: int, sha256: str, work_dir: Path
) -> dict[str, Any]:
    copy_target = work_dir / "copy.bin"
    copy_seconds, _ = timed(lambda: shutil.copyfile(source, copy_target))
    copy_target.unlink()
    loop_seconds, _ = timed(lambda: loop_copy(source, copy_target))
    copy_target.unlink()

    client = api.client()
    with RssSampler(api.pid) as upload_rss, server_cpu(api.pid) as upload_cpu:
        upload_seconds, document = timed(lambda: upload(client, source, size))
    if document["size"] != size or document["sha256"] != sha256:
        raise RuntimeError(f"the upload was stored wrongly: {document}")

    store = make_store(api.settings())
    url = store.signed_url("GET", keys.upload_key(document["id"]), timedelta(minutes=10))
    downloaded = work_dir / "downloaded.bin"
    plain = httpx.Client(timeout=120)
    try:
        with RssSampler(api.pid) as download_rss, server_cpu(api.pid) as download_cpu:
            download_seconds, received = timed(lambda: download(plain, url, downloaded))
    finally:
        plain.close()
    if received != size or sha256_of(downloaded) != sha256:
        raise RuntimeError("the downloaded file differs from the uploaded one")
    downloaded.unlink()
    client.delete(f"/uploads/{document['id']}").raise_for_status()
    return {
        "copyfile_seconds": copy_seconds,
        "loop_copy_seconds": loop_seconds,
        "upload_seconds": upload_seconds,
        "download_seconds": download_seconds,
        "upload_server_cpu_seconds": upload_cpu["seconds"],
        "download_server_cpu_seconds": download_cpu["seconds"],
        "upload_rss_growth_bytes": upload_rss.growth,
        "download_rss_growth_bytes": download_rss.growth,
        "upload_rss_peak_bytes": upload_rss.peak,
        "download_rss_peak_bytes": download_rss.peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="file size (default 1 GiB)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; medians are reported")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="where the file, copies and the server's "
        "data_dir go (one disk); default: the system temporary directory",
    )
    parser.add_argument("--name", default="transfer", help="results/<name>.json")
    arguments = parser.parse_args()
    size = arguments.size_mib * MiB

    with tempfile.TemporaryDirectory(prefix="bench-transfer-", dir=arguments.work_dir) as temporary:
        work_dir = Path(temporary)
        source = work_dir / "source.bin"
        sha256 = make_source(source, size)
        api = spawn_api(work_dir / "api", max_upload_size=size + MiB, storage_quota=4 * size)
        try:
            api.client().get("/uploads").raise_for_status()  # warm up auth and the database
            rss_start = rss_bytes(api.pid)
            rounds = [
                one_round(api, source, size, sha256, work_dir) for _ in range(arguments.repeat)
            ]
            rss_end = rss_bytes(api.pid)
        finally:
            api.stop()

    def median(name: str) -> float:
        return statistics.median(r[name] for r in rounds)

    def rate(seconds: float) -> float:
        return size / seconds / 10**6

    copy_rate = rate(median("copyfile_seconds"))
    rows = {
        "copy (shutil.copyfile)": median("copyfile_seconds"),
        "copy (1 MiB read/write loop)": median("loop_copy_seconds"),
        "upload (POST /uploads)": median("upload_seconds"),
        "download (signed GET URL)": median("download_seconds"),
    }
    upload_ratio = rate(median("upload_seconds")) / copy_rate
    download_ratio = rate(median("download_seconds")) / copy_rate
    upload_growth = max(r["upload_rss_growth_bytes"] for r in rounds)
    download_growth = max(r["download_rss_growth_bytes"] for r in rounds)
    print(f"file: {arguments.size_mib} MiB, {arguments.repeat} rounds (medians), dir {work_dir}")
    print_table(
        "Throughput (MB/s = 10^6 bytes/s)",
        ["what", "seconds", "MB/s", "/ copyfile", "server CPU s"],
        [
            [
                name,
                round(seconds, 3),
                rate(seconds),
                round(rate(seconds) / copy_rate, 2),
                round(median(f"{name.split()[0]}_server_cpu_seconds"), 2)
                if name.split()[0] in {"upload", "download"}
                else "",
            ]
            for name, seconds in rows.items()
        ],
    )
    print(
        f"  upload/copy = {upload_ratio:.2f}, download/copy = {download_ratio:.2f} "
        f"(target >= {RATIO_TARGET})"
    )
    print_table(
        "Server RSS (MB, worst round)",
        ["phase", "growth (peak - baseline)", "peak"],
        [
            [
                "upload",
                upload_growth / 10**6,
                max(r["upload_rss_peak_bytes"] for r in rounds) / 1e6,
            ],
            [
                "download",
                download_growth / 10**6,
                max(r["download_rss_peak_bytes"] for r in rounds) / 1e6,
            ],
        ],
    )
    print(
        f"  RSS before the first round {rss_start / 1e6:.1f} MB, after the last "
        f"{rss_end / 1e6:.1f} MB (target: growth < {RSS_TARGET / 1e6:.0f} MB)"
    )
    path = write_results(
        arguments.name,
        {
            "size_bytes": size,
            "repeat": arguments.repeat,
            "throughput_mb_per_s": {name: round(rate(s), 1) for name, s in rows.items()},
            "upload_over_copy": round(upload_ratio, 3),
            "download_over_copy": round(download_ratio, 3),
            "ratio_target": RATIO_TARGET,
            "ratios_met": upload_ratio >= RATIO_TARGET and download_ratio >= RATIO_TARGET,
            "rss_start_bytes": rss_start,
            "rss_end_bytes": rss_end,
            "upload_rss_growth_bytes": upload_growth,
            "download_rss_growth_bytes": download_growth,
            "rss_target_bytes": RSS_TARGET,
            "rss_met": max(upload_growth, download_growth) < RSS_TARGET,
            "rounds": rounds,
        },
    )
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main()
