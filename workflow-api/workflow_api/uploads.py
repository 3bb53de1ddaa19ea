"""Uploads: a request body streamed to storage with a size limit, the consumer's quota and a digest.

The body goes to a file in `incoming/` in batches written by a worker thread (never held in memory,
never a blocking write on the event loop), then into the store under `uploads/<id>`.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, BinaryIO

import httpx
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from workflow_api.db import Upload
from workflow_api.errors import BadRequestError, NoSuchUploadError, PayloadTooLargeError
from workflow_api.quota import QuotaLedger
from workflow_api.storage import base as keys
from workflow_api.storage.base import ObjectStore
from workflow_common.clock import utcnow
from workflow_common.private_files import open_private, private_dir

WRITE_BATCH_BYTES = 4 * 1024 * 1024


class UploadService:
    def __init__(
        self,
        *,
        engine: Engine,
        store: ObjectStore,
        incoming_dir: Path,
        max_size: int,
        ledger: QuotaLedger,
    ) -> None:
        self._engine = engine
        self._store = store
        self._incoming = incoming_dir
        self._max_size = max_size
        self._ledger = ledger

    async def receive(
        self,
        body: AsyncIterator[bytes],
        *,
        filename: str,
        media_type: str,
        declared_size: int | None,
    ) -> Upload:
        if declared_size is not None and declared_size > self._max_size:
            raise PayloadTooLargeError(
                f"the file is {declared_size} bytes; uploads are limited to {self._max_size} bytes"
            )
        upload_id = str(uuid.uuid4())
        private_dir(self._incoming)
        partial = self._incoming / upload_id
        digest = hashlib.sha256()
        reservation = _Reservation(self._ledger, declared_size)
        size = 0
        try:
            with open_private(partial, append=False) as handle:
                # Receive the next batch while the previous one is hashed and written.
                writing: asyncio.Future[None] | None = None
                batch: list[bytes] = []
                batch_size = 0
                async for chunk in body:
                    size += len(chunk)
                    if size > self._max_size:
                        raise PayloadTooLargeError(
                            f"the file exceeds the upload limit of {self._max_size} bytes"
                        )
                    batch.append(chunk)
                    batch_size += len(chunk)
                    if batch_size >= WRITE_BATCH_BYTES:
                        await reservation.cover(size)
                        if writing is not None:
                            await writing
                        writing = asyncio.ensure_future(
                            asyncio.to_thread(_write, handle, digest, batch)
                        )
                        batch, batch_size = [], 0
                await reservation.cover(size)
                if writing is not None:
                    await writing
                await asyncio.to_thread(_write, handle, digest, batch)
            if size == 0:
                raise BadRequestError("the upload is empty")
            if declared_size is not None and size != declared_size:
                raise BadRequestError(f"received {size} bytes, Content-Length said {declared_size}")
            upload = Upload(
                id=upload_id,
                filename=filename,
                media_type=media_type,
                size=size,
                sha256=digest.hexdigest(),
                created=utcnow(),
            )
            await asyncio.to_thread(self._commit, upload, partial)
            return upload
        finally:
            partial.unlink(missing_ok=True)
            reservation.release()

    def _commit(self, upload: Upload, partial: Path) -> None:
        self._store.put_file(keys.upload_key(upload.id), partial)
        with Session(self._engine) as session:
            session.add(upload)
            session.commit()
            session.refresh(upload)

    def find(self, upload_id: str) -> Upload | None:
        with Session(self._engine) as session:
            return session.get(Upload, upload_id)

    def get(self, upload_id: str) -> Upload:
        upload = self.find(upload_id)
        if upload is None:
            raise NoSuchUploadError(f"no upload {upload_id!r}")
        return upload

    def list(self, limit: int, offset: int) -> list[Upload]:
        with Session(self._engine) as session:
            query = (
                select(Upload)
                .order_by(col(Upload.created).desc(), col(Upload.id))
                .offset(offset)
                .limit(limit)
            )
            return list(session.exec(query))

    def remove_all(self) -> int:
        with Session(self._engine) as session:
            upload_ids = list(session.exec(select(Upload.id)))
        for upload_id in upload_ids:
            self.delete(upload_id)
        return len(upload_ids)

    def delete(self, upload_id: str) -> None:
        upload = self.get(upload_id)
        self._store.delete_prefix(keys.upload_key(upload.id))
        with Session(self._engine) as session:
            stored = session.get(Upload, upload_id)
            if stored is not None:
                session.delete(stored)
                session.commit()


def _write(handle: BinaryIO, digest: Any, batch: list[bytes]) -> None:
    for chunk in batch:
        digest.update(chunk)
    handle.writelines(batch)


class _Reservation:
    """Quota held for one upload: all of Content-Length at once, else in steps as bytes arrive."""

    STEP = 64 * 1024 * 1024

    def __init__(self, ledger: QuotaLedger, declared_size: int | None) -> None:
        self._ledger = ledger
        self._declared = declared_size
        self.held = 0

    async def cover(self, size: int) -> None:
        if self._declared is not None and size > self._declared:
            raise BadRequestError(f"the body is longer than its Content-Length ({self._declared})")
        if size <= self.held:
            return
        wanted = self._declared if self._declared is not None else max(size, self.held + self.STEP)
        try:
            await asyncio.to_thread(self._ledger.reserve, wanted - self.held)
            self.held = wanted
        except PayloadTooLargeError:
            if wanted == size:
                raise
            await asyncio.to_thread(self._ledger.reserve, size - self.held)  # just what arrived
            self.held = size

    def release(self) -> None:
        self._ledger.release(self.held)
        self.held = 0


def fetch_text(url: str, limit: int) -> str:
    """GET a small text document (an env-file) with a size limit and a timeout."""
    received = bytearray()
    try:
        with httpx.stream("GET", url, timeout=30.0, follow_redirects=True) as response:
            response.raise_for_status()
            for chunk in response.iter_bytes():
                received.extend(chunk)
                if len(received) > limit:
                    raise BadRequestError(f"the document is larger than {limit} bytes")
    except httpx.HTTPError as error:
        raise BadRequestError(f"could not read the document: {type(error).__name__}") from error
    return received.decode("utf-8", errors="replace")
