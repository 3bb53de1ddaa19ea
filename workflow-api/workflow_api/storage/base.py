"""The ObjectStore protocol and the object names every backend shares.

Keys are relative, `/`-separated names derived from stable ids (`uploads/<id>`,
`jobs/<job id>/outputs/<output id>`, `jobs/<job id>/log.txt`); a backend confines them to the
consumer's root directory, bucket or prefix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Literal, Protocol

SignedMethod = Literal["GET", "PUT"]

_KEY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")


class InvalidKeyError(ValueError):
    """A key that could escape the store's root (empty, absolute, `..`, odd characters)."""


def check_key(key: str) -> str:
    if not _KEY_PATTERN.fullmatch(key) or any(part in {".", ".."} for part in key.split("/")):
        raise InvalidKeyError(f"invalid object key {key!r}")
    return key


def upload_key(upload_id: str) -> str:
    return check_key(f"uploads/{upload_id}")


def job_prefix(job_id: str) -> str:
    return check_key(f"jobs/{job_id}") + "/"


def output_key(job_id: str, output_id: str) -> str:
    return check_key(f"jobs/{job_id}/outputs/{output_id}")


def log_key(job_id: str) -> str:
    return check_key(f"jobs/{job_id}/log.txt")


def inline_input_key(job_id: str, input_id: str) -> str:
    return check_key(f"jobs/{job_id}/inputs/{input_id}")


def outputs_prefix(job_id: str) -> str:
    return check_key(f"jobs/{job_id}/outputs") + "/"


def job_of_key(key: str) -> str | None:
    """The job whose prefix holds `key`, or None for a key outside `jobs/`."""
    parts = key.split("/")
    return parts[1] if len(parts) >= 3 and parts[0] == "jobs" else None


def describe_key(key: str) -> str:
    """What `key` holds, for people: `output 'result'`, `the log`, ..."""
    parts = key.split("/")
    if len(parts) == 4 and parts[0] == "jobs" and parts[2] == "outputs":
        return f"output {parts[3]!r}"
    names = {
        "log.txt": "the log",
        "push-out-report.json": "the push-out report",
        "progress.txt": "the progress line",
    }
    if len(parts) == 3 and parts[0] == "jobs":
        return names.get(parts[2], "the object")
    return "the object"


def report_key(job_id: str) -> str:
    return check_key(f"jobs/{job_id}/push-out-report.json")


def progress_key(job_id: str) -> str:
    """The worker's latest progress line, where a job container's sidecar PUTs it."""
    return check_key(f"jobs/{job_id}/progress.txt")


@dataclass(frozen=True)
class SignedUpload:
    """Where a job uploads one object: a signed PUT URL (`form` None), or an S3 presigned POST
    whose policy (`form`, sent as multipart fields before the file) bounds the object's size."""

    url: str
    form: dict[str, str] | None = None


class ObjectStore(Protocol):
    def prepare(self) -> None:
        """Create what the store needs (directory, bucket); idempotent."""

    def put_file(self, key: str, source: Path) -> None:
        """Store a local file under `key`; `source` is consumed (moved or deleted)."""

    def signed_url(self, method: SignedMethod, key: str, ttl: timedelta) -> str:
        """A URL that allows exactly `method` on `key` until `ttl` has passed."""

    def signed_upload(self, key: str, ttl: timedelta, max_size: int) -> SignedUpload:
        """Allow one upload to `key` until `ttl` has passed, of at most `max_size` bytes where
        the store itself can enforce that (S3); the filesystem store's PUT route enforces the
        quota ledger instead."""

    def size(self, key: str) -> int | None:
        """The object's size in bytes, or None if it does not exist."""

    def delete_prefix(self, prefix: str) -> None:
        """Delete every object whose key starts with `prefix`; nothing there is fine."""
