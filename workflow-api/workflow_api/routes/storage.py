"""Signed-URL access to the filesystem store: `GET` (with Range) and `PUT` on `/storage/{key}`.

These routes take no bearer token: the `method`, `expires` and `signature` query parameters made
by `FilesystemStore.signed_url` are the authorisation (see `workflow_api.storage.signing`). They
answer 404 when the app's store is not a `FilesystemStore` (S3 serves its own presigned URLs).

A PUT holds room in the consumer's quota ledger while it receives (all of Content-Length at
once, else in steps), and the object counts as stored once it is in place; a PUT for a job that
no longer exists is refused, so a late push-out cannot leave uncounted objects behind.

Refusals, as `application/problem+json`: invalid key 400; unsigned, tampered or signed for
another method 403 (`invalid-signature`); expired 403 (`expired-signature`); no such object or job
404; over the storage quota 413 (`quota-exceeded`, the detail says how short it is);
unsatisfiable range 416.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import stat
import tempfile
from collections.abc import AsyncIterator
from io import FileIO
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import anyio
import anyio.to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from sqlmodel import Session
from starlette.requests import ClientDisconnect

from workflow_api.db import Job
from workflow_api.errors import problem
from workflow_api.quota import QuotaExceededError, QuotaLedger
from workflow_api.storage.base import InvalidKeyError, check_key, describe_key, job_of_key
from workflow_api.storage.filesystem import FilesystemStore
from workflow_api.storage.signing import ExpiredSignedUrlError, InvalidSignedUrlError
from workflow_common.server_limits import STREAMED

log = logging.getLogger(__name__)

router = APIRouter(tags=["storage"])

CHUNK_SIZE = 1024**2
WRITE_BATCH_SIZE = 4 * 1024**2
HOLD_STEP = 64 * 1024**2  # quota held at a time for a body without Content-Length
_BYTE_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)")

SignedQuery = Annotated[str | None, Query()]


class RangeNotSatisfiableError(ValueError):
    """The Range header asks only for bytes past the end of the object."""


class _Refusal(Exception):
    def __init__(
        self, status: int, slug: str, title: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.response = problem(status, slug, title, detail, headers)


def parse_byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The `(start, end)` (end exclusive) of a single-range `Range` header, or None for all.

    Multiple ranges, other units and malformed headers are ignored (the whole object is sent),
    as RFC 9110 §14.2 allows. Raises `RangeNotSatisfiableError` for a well-formed range that
    selects no byte.
    """
    match = _BYTE_RANGE.fullmatch(header.strip()) if header else None
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # suffix: the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            raise RangeNotSatisfiableError(header)
        return max(0, size - length), size
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        raise RangeNotSatisfiableError(header)
    end = min(int(last) + 1, size) if last else size
    return start, end


@router.get("/storage/{key:path}", summary="Download an object with a signed URL")
async def get_object(
    request: Request,
    key: str,
    method: SignedQuery = None,
    expires: SignedQuery = None,
    signature: SignedQuery = None,
) -> Response:
    try:
        store = _authorise(request, key, "GET", method=method, expires=expires, signature=signature)
        file, status = await anyio.to_thread.run_sync(_open_object, store, key)
    except _Refusal as refusal:
        return refusal.response
    size = status.st_size
    etag = f'"{status.st_ino:x}-{status.st_mtime_ns:x}-{size:x}"'
    headers = {"accept-ranges": "bytes", "etag": etag}
    range_header = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range != etag:
        range_header = None
    try:
        byte_range = parse_byte_range(range_header, size)
    except RangeNotSatisfiableError:
        file.close()
        return problem(
            416,
            "range-not-satisfiable",
            "Range not satisfiable",
            f"the object has {size} bytes; the range {range_header!r} selects none of them",
            headers={"content-range": f"bytes */{size}"},
        )
    start, end = byte_range or (0, size)
    headers["content-length"] = str(end - start)
    if byte_range is not None:
        headers["content-range"] = f"bytes {start}-{end - 1}/{size}"
    return StreamingResponse(
        _read_chunks(file, start, end),
        status_code=206 if byte_range is not None else 200,
        headers=headers,
        media_type="application/octet-stream",
    )


@router.put(
    "/storage/{key:path}",
    summary="Upload an object with a signed URL",
    max_body_size=STREAMED,  # streamed to the store
)
async def put_object(
    request: Request,
    key: str,
    method: SignedQuery = None,
    expires: SignedQuery = None,
    signature: SignedQuery = None,
) -> Response:
    try:
        store = _authorise(request, key, "PUT", method=method, expires=expires, signature=signature)
    except _Refusal as refusal:
        return refusal.response
    services = request.app.state.services
    job_id = job_of_key(key)
    if job_id is not None and not await anyio.to_thread.run_sync(_job_exists, services, job_id):
        return problem(404, "not-found", "No such job", f"the job {job_id!r} no longer exists")
    room = _Room(services.ledger, key, job_id, _content_length(request))
    try:
        await room.cover(0)
    except QuotaExceededError as error:
        return problem(413, "quota-exceeded", "Storage quota exceeded", error.detail)
    try:
        return await _receive(request, store, key, room)
    except QuotaExceededError as error:
        return problem(413, "quota-exceeded", "Storage quota exceeded", error.detail)
    finally:
        if not room.recorded:
            await anyio.to_thread.run_sync(services.ledger.release_key, key)


async def _receive(request: Request, store: FilesystemStore, key: str, room: _Room) -> Response:
    incoming = await anyio.to_thread.run_sync(store.incoming_dir)
    file, temporary = await anyio.to_thread.run_sync(_create_temporary, incoming)
    size = 0
    try:
        try:
            batch = bytearray()
            async for chunk in request.stream():
                size += len(chunk)
                await room.cover(size)
                batch += chunk
                if len(batch) >= WRITE_BATCH_SIZE:
                    await anyio.to_thread.run_sync(file.write, batch)
                    batch = bytearray()
            await anyio.to_thread.run_sync(file.write, batch)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(file.close)
        await anyio.to_thread.run_sync(store.put_file, key, temporary)
        await anyio.to_thread.run_sync(room.record, size)
    except ClientDisconnect:
        log.info("upload of object %s was interrupted by the client", key)
        return problem(400, "upload-interrupted", "Upload interrupted", "the body was cut short")
    except InvalidKeyError as error:
        return problem(400, "invalid-parameter-value", "Invalid object key", str(error))
    except (IsADirectoryError, NotADirectoryError, FileExistsError):
        detail = f"the key {key!r} clashes with the path of another object"
        return problem(409, "conflict", "Conflict", detail)
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(functools.partial(temporary.unlink, missing_ok=True))
    return Response(status_code=200)


class _Room:
    """The quota held for one PUT: all of Content-Length at once, else `HOLD_STEP` at a time."""

    def __init__(
        self, ledger: QuotaLedger, key: str, job_id: str | None, declared: int | None
    ) -> None:
        self._ledger = ledger
        self._key = key
        self._job_id = job_id
        self._declared = declared
        self._held = 0
        self.recorded = False

    async def cover(self, size: int) -> None:
        if self._held and size <= self._held:
            return
        if self._declared is not None:
            await self._hold(max(self._declared, size))
            return
        try:
            await self._hold(max(size, self._held + HOLD_STEP))
        except QuotaExceededError:
            if size == 0:
                return
            await self._hold(size)  # no step's worth left: just what arrived

    async def _hold(self, size: int) -> None:
        what = describe_key(self._key)
        await anyio.to_thread.run_sync(self._ledger.hold, {self._key: size}, self._job_id, what)
        self._held = size

    def record(self, size: int) -> None:
        self._ledger.record(self._key, size, self._job_id)
        self.recorded = True


def _job_exists(services: Any, job_id: str) -> bool:
    with Session(services.engine) as session:
        return session.get(Job, job_id) is not None


def _content_length(request: Request) -> int | None:
    value = request.headers.get("content-length", "")
    return int(value) if value.isdigit() else None


def _authorise(
    request: Request,
    key: str,
    http_method: str,
    *,
    method: str | None,
    expires: str | None,
    signature: str | None,
) -> FilesystemStore:
    store = getattr(getattr(request.app.state, "services", None), "store", None)
    if not isinstance(store, FilesystemStore):
        raise _Refusal(404, "not-found", "Not found", "this API does not serve storage URLs")
    try:
        check_key(key)
    except InvalidKeyError as error:
        raise _Refusal(400, "invalid-parameter-value", "Invalid object key", str(error)) from None
    if method is None or expires is None or signature is None:
        detail = "the URL is not signed: method, expires and signature are required"
        raise _Refusal(403, "invalid-signature", "Invalid signature", detail)
    if method != http_method:
        detail = f"the URL is signed for {method}, not {http_method}"
        raise _Refusal(403, "invalid-signature", "Invalid signature", detail)
    try:
        store.verify(method, key, expires, signature)
    except InvalidSignedUrlError as error:
        raise _Refusal(403, "invalid-signature", "Invalid signature", str(error)) from None
    except ExpiredSignedUrlError as error:
        raise _Refusal(403, "expired-signature", "Expired signature", str(error)) from None
    return store


def _open_object(store: FilesystemStore, key: str) -> tuple[FileIO, os.stat_result]:
    """The object's file, open, and its status: a later replacement does not change what is sent.

    A file object rather than a bare descriptor, so that it is closed even if the response is
    dropped before its body is read.
    """
    missing = _Refusal(404, "not-found", "No such object", f"there is no object {key!r}")
    try:
        file = FileIO(store.object_path(key), "r")
    except InvalidKeyError as error:
        raise _Refusal(400, "invalid-parameter-value", "Invalid object key", str(error)) from None
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        raise missing from None
    status = os.fstat(file.fileno())
    if not stat.S_ISREG(status.st_mode):
        file.close()
        raise missing
    return file, status


async def _read_chunks(file: FileIO, start: int, end: int) -> AsyncIterator[bytes]:
    try:
        position = start
        while position < end:
            chunk = await anyio.to_thread.run_sync(
                os.pread, file.fileno(), min(CHUNK_SIZE, end - position), position
            )
            if not chunk:
                break
            position += len(chunk)
            yield chunk
    finally:
        file.close()


def _create_temporary(directory: Path) -> tuple[BinaryIO, Path]:
    descriptor, name = tempfile.mkstemp(dir=directory, prefix="put-")
    return os.fdopen(descriptor, "wb"), Path(name)
