"""One upload through a signed target: a PUT to a signed URL, or an S3 presigned POST.

A presigned POST (`form` given) sends the policy's fields and then the file as
multipart/form-data; its policy bounds the object's size, so S3 itself refuses a larger body with
400 `EntityTooLarge`. The workflow-api's signed-PUT route refuses beyond the quota with 413 and a
problem JSON `detail`. Both become `StorageRefusedError`, never retried. Bodies are streamed from
disk with a known length and re-sent from the start on a retry.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from data_sidecar.errors import PushOutError, StorageRefusedError, TransferError
from data_sidecar.transport import (
    CHUNK_SIZE,
    TransferPolicy,
    check_status,
    describe,
    safe_url,
    with_retries,
)
from workflow_contracts.manifest import PushedOutput, UploadForm

log = logging.getLogger(__name__)

PAYLOAD_TOO_LARGE = 413
BAD_REQUEST = 400
_DETAIL_LIMIT = 300
_S3_ERROR_CODE = re.compile(rb"<Code>([A-Za-z]+)</Code>")


def upload_file(
    http: httpx.Client, url: str, path: Path, policy: TransferPolicy, form: UploadForm | None
) -> PushedOutput:
    """Upload the file at `path`, streamed; returns the size and digest of what was sent."""
    try:
        summary = _digest(path)
    except OSError as error:
        raise PushOutError(f"cannot read {path.name}: {error}") from error

    def attempt() -> None:
        if form is None:
            response = http.put(
                url,
                content=_file_chunks(path),
                headers={"Content-Length": str(summary.size)},
                timeout=policy.timeout,
            )
        else:
            with path.open("rb") as body:
                files = {"file": (path.name, body, "application/octet-stream")}
                response = http.post(url, data=form, files=files, timeout=policy.timeout)
        _check(response, url, summary.size, "POST" if form else "PUT")

    _with_retries("POST" if form else "PUT", url, policy, attempt)
    return summary


def upload_bytes(
    http: httpx.Client, url: str, body: bytes, policy: TransferPolicy, form: UploadForm | None
) -> None:
    def attempt() -> None:
        if form is None:
            headers = {"Content-Type": "application/json"}
            response = http.put(url, content=body, headers=headers, timeout=policy.timeout)
        else:
            files = {"file": ("body", body, "application/octet-stream")}
            response = http.post(url, data=form, files=files, timeout=policy.timeout)
        _check(response, url, len(body), "POST" if form else "PUT")

    _with_retries("POST" if form else "PUT", url, policy, attempt)


def _check(response: httpx.Response, url: str, size: int, method: str) -> None:
    refusal = refusal_reason(response, size)
    if refusal is not None:
        raise StorageRefusedError(refusal)
    check_status(response, method, url)


def refusal_reason(response: httpx.Response, size: int) -> str | None:
    """Why the storage refused `size` bytes as too many, or None if it did not."""
    if response.status_code == PAYLOAD_TOO_LARGE:
        detail = None
        if "json" in response.headers.get("content-type", ""):
            try:
                body = response.json()
            except ValueError:
                body = None
            if isinstance(body, dict) and isinstance(body.get("detail"), str):
                detail = " ".join(body["detail"].split())[:_DETAIL_LIMIT]
        return detail or f"the storage refused {size} bytes as too large (HTTP 413)"
    if response.status_code == BAD_REQUEST:
        code = _S3_ERROR_CODE.search(response.content[:4096])
        if code is not None and code.group(1) == b"EntityTooLarge":
            return (
                f"the storage refused {size} bytes: more than the job's upload policy allows "
                "(the quota that was free when the job started)"
            )
    return None


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as source:
        while chunk := source.read(CHUNK_SIZE):
            yield chunk


def _digest(path: Path) -> PushedOutput:
    digest = hashlib.sha256()
    size = 0
    for chunk in _file_chunks(path):
        size += len(chunk)
        digest.update(chunk)
    return PushedOutput(size=size, sha256=digest.hexdigest())


def _with_retries(
    method: str, url: str, policy: TransferPolicy, attempt: Callable[[], None]
) -> None:
    try:
        with_retries(policy, method, url, attempt)
    except TransferError as error:
        raise PushOutError(str(error)) from error
    except (httpx.HTTPError, httpx.InvalidURL, OSError) as error:
        raise PushOutError(f"{method} {safe_url(url)} failed: {describe(error, url)}") from error
    log.info("uploaded %s", safe_url(url))
