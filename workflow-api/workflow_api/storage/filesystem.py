"""The embedded object store: one file per key under a root directory, served by signed URLs.

Objects are files at `root/<key>`. Uploads are first written to `root/.incoming` (the same
filesystem, and not a valid key) and then moved in with one atomic rename, so a reader never
sees a half-written object. Signed URLs point at this API's `/storage/{key}` route
(`workflow_api.routes.storage`), which checks them with `verify`.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

from workflow_api.storage import signing
from workflow_api.storage.base import InvalidKeyError, SignedMethod, SignedUpload, check_key
from workflow_common.private_files import private_dir

log = logging.getLogger(__name__)

INCOMING_DIRECTORY = ".incoming"
_COPY_BUFFER_SIZE = 4 * 1024**2
_MIN_SIGNING_KEY_SIZE = 16


class FilesystemStore:
    def __init__(self, root: Path, signing_key: bytes, base_url: str) -> None:
        if len(signing_key) < _MIN_SIGNING_KEY_SIZE:
            raise ValueError(f"the signing key needs at least {_MIN_SIGNING_KEY_SIZE} bytes")
        self._root = root
        self._signing_key = signing_key
        self._base_url = base_url.rstrip("/")

    # ObjectStore

    def prepare(self) -> None:
        """Also empties `.incoming`: partial PUTs of an earlier run were never counted."""
        shutil.rmtree(self._root / INCOMING_DIRECTORY, ignore_errors=True)
        self.incoming_dir()

    def put_file(self, key: str, source: Path) -> None:
        destination = self.object_path(key)
        private_dir(destination.parent)
        try:
            os.replace(source, destination)
        except OSError as error:
            if error.errno != errno.EXDEV:
                raise
            self._copy_in(source, destination)
            source.unlink(missing_ok=True)
        log.debug("stored object %s", key)

    def signed_url(self, method: SignedMethod, key: str, ttl: timedelta) -> str:
        check_key(key)
        expires = int(time.time() + ttl.total_seconds())
        query = urlencode(
            {
                "method": method,
                "expires": expires,
                "signature": signing.sign(self._signing_key, method, key, expires),
            }
        )
        return f"{self._base_url}/storage/{key}?{query}"

    def signed_upload(self, key: str, ttl: timedelta, max_size: int) -> SignedUpload:
        """A signed PUT: the route holds the quota while it receives, so no cap is signed."""
        return SignedUpload(self.signed_url("PUT", key, ttl))

    def size(self, key: str) -> int | None:
        try:
            status = self.object_path(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return status.st_size if _is_regular(status) else None

    def delete_prefix(self, prefix: str) -> None:
        """Delete every object whose key starts with `prefix` (`jobs/<id>/`, `uploads/<id>`).

        An empty prefix is refused: wiping the whole store is never what a caller means.
        """
        if not prefix.rstrip("/"):
            raise InvalidKeyError("refusing to delete with an empty prefix")
        directory_part, _, name_start = prefix.rpartition("/")
        if not name_start:  # `jobs/<id>/`: the whole directory (an object `jobs/<id>` stays)
            directory = self.object_path(directory_part)
            if directory.is_dir():
                _remove(directory)
            return
        check_key(prefix)
        directory = self.object_path(directory_part) if directory_part else self._root.resolve()
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            return
        for entry in entries:
            if entry.name.startswith(name_start) and entry.name != INCOMING_DIRECTORY:
                _remove(Path(entry.path))
        log.debug("deleted objects under prefix %s", prefix)

    # filesystem specifics

    def incoming_dir(self) -> Path:
        """A directory on the store's filesystem for partial uploads (then `put_file` them)."""
        incoming = self._root / INCOMING_DIRECTORY
        private_dir(incoming)
        return incoming

    def object_path(self, key: str) -> Path:
        """The file of `key`, checked to stay inside the root even through symbolic links."""
        check_key(key)
        root = self._root.resolve()
        path = (root / key).resolve()
        if not path.is_relative_to(root) or path == root:
            raise InvalidKeyError(f"object key {key!r} leaves the store")
        return path

    def verify(self, method: str, key: str, expires: str | None, signature: str | None) -> None:
        """Raise `InvalidSignedUrlError` or `ExpiredSignedUrlError` unless the URL is valid."""
        signing.verify(self._signing_key, method, key, expires, signature, now=time.time())

    def _copy_in(self, source: Path, destination: Path) -> None:
        descriptor, temporary_name = tempfile.mkstemp(dir=self.incoming_dir(), prefix="copy-")
        temporary = Path(temporary_name)
        try:
            with source.open("rb") as reader, os.fdopen(descriptor, "wb") as writer:
                shutil.copyfileobj(reader, writer, _COPY_BUFFER_SIZE)
                writer.flush()
                os.fsync(writer.fileno())
            os.replace(temporary, destination)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise


def _is_regular(status: os.stat_result) -> bool:
    return stat.S_ISREG(status.st_mode)


def _remove(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        pass
