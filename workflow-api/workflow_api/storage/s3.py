"""The S3 object store (MinIO or any S3-compatible server) through the `minio` client.

One bucket, optionally one prefix inside it, per consumer. Signed URLs are the server's own
presigned URLs, so no storage credentials ever leave this process.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from minio import Minio
from minio.datatypes import PostPolicy
from minio.deleteobjects import DeleteObject
from minio.error import S3Error

from workflow_api.storage.base import InvalidKeyError, SignedMethod, SignedUpload, check_key

log = logging.getLogger(__name__)

PART_SIZE = 16 * 1024**2
_MISSING_OBJECT_CODES = frozenset({"NoSuchKey", "NoSuchObject"})


class S3StoreError(RuntimeError):
    """The S3 server refused an operation (other than "not found", which is not an error)."""


class S3Store:
    def __init__(self, client: Minio, bucket: str, prefix: str = "") -> None:
        if prefix:
            check_key(prefix.rstrip("/"))
            prefix = prefix.rstrip("/") + "/"
        self._client = client
        self._bucket = bucket
        self._prefix = prefix

    def prepare(self) -> None:
        if self._client.bucket_exists(self._bucket):
            return
        try:
            self._client.make_bucket(self._bucket)
        except S3Error as error:
            if error.code != "BucketAlreadyOwnedByYou":
                raise
        log.info("created bucket %s", self._bucket)

    def put_file(self, key: str, source: Path) -> None:
        self._client.fput_object(
            self._bucket,
            self._object_name(key),
            str(source),
            part_size=PART_SIZE,
        )
        source.unlink(missing_ok=True)
        log.debug("stored object %s in bucket %s", key, self._bucket)

    def signed_url(self, method: SignedMethod, key: str, ttl: timedelta) -> str:
        name = self._object_name(key)
        if method == "GET":
            url: str = self._client.presigned_get_object(self._bucket, name, expires=ttl)
        else:
            url = self._client.presigned_put_object(self._bucket, name, expires=ttl)
        return url

    def signed_upload(self, key: str, ttl: timedelta, max_size: int) -> SignedUpload:
        """A presigned POST whose policy allows exactly this key and at most `max_size` bytes:
        S3 refuses a larger body (`EntityTooLarge`), which a presigned PUT could not."""
        name = self._object_name(key)
        policy = PostPolicy(self._bucket, datetime.now(UTC) + ttl)
        policy.add_equals_condition("key", name)
        policy.add_content_length_range_condition(0, max_size)
        form = {"key": name, **self._client.presigned_post_policy(policy)}
        # The bucket's URL: the object's presigned URL without the object's name and query.
        parts = urlsplit(self._client.presigned_put_object(self._bucket, name, expires=ttl))
        path = parts.path.removesuffix("/" + quote(name, safe="/~")) or "/"
        return SignedUpload(urlunsplit((parts.scheme, parts.netloc, path, "", "")), form)

    def size(self, key: str) -> int | None:
        try:
            status = self._client.stat_object(self._bucket, self._object_name(key))
        except S3Error as error:
            if error.code in _MISSING_OBJECT_CODES:
                return None
            raise
        return status.size

    def delete_prefix(self, prefix: str) -> None:
        """Delete every object under `prefix`, in batches of 1,000; an empty prefix is refused."""
        if not prefix.rstrip("/"):
            raise InvalidKeyError("refusing to delete with an empty prefix")
        check_key(prefix.rstrip("/"))
        listing = self._client.list_objects(
            self._bucket, prefix=self._prefix + prefix, recursive=True
        )
        names = [entry.object_name for entry in listing if entry.object_name is not None]
        errors = self._client.remove_objects(self._bucket, (DeleteObject(n) for n in names))
        failures = [error for error in errors if error.code not in _MISSING_OBJECT_CODES]
        if failures:
            first = failures[0]
            raise S3StoreError(
                f"could not delete {len(failures)} of {len(names)} objects under {prefix!r}: "
                f"{first.name}: {first.code} {first.message}"
            )
        log.debug(
            "deleted %d objects under prefix %s in bucket %s", len(names), prefix, self._bucket
        )

    def _object_name(self, key: str) -> str:
        return self._prefix + check_key(key)
