"""Each consumer's object storage, whichever deployer runs its workflow-api.

`ensure(spec)` creates what the consumer's storage needs and answers the `WORKFLOW_API_*`
storage settings of its workflow-api; `remove(spec)` deletes its data and whatever identity was
made for it. Both are idempotent: the deployers call `ensure` on every (re)start or resync.

    NoConsumerStorage     filesystem storage: the workflow-api keeps objects in its own data
                          directory or volume, which the deployer deletes with it
    SharedBucketStorage   plain S3: one bucket, a prefix per consumer, the shared credentials in
                          every workflow-api (isolation by convention only: see docs)
    MinioUserStorage      MinIO: a bucket per consumer and a MinIO user whose policy reaches only
                          that bucket (made through MinIO's admin API)

The two S3 ones live in `storage.s3` (the minio client costs start-up time, so it is imported
only when storage is S3). Errors: `ConsumerStorageError` for anything the storage server refused
or did not answer, a `TemporaryError` of the retry taxonomy (`workflow_common.retry`).
"""

from __future__ import annotations

from typing import Protocol

from provisioner.deployers.base import ConsumerSpec
from workflow_common.retry import TemporaryError


class ConsumerStorageError(TemporaryError):
    """The storage server refused or did not answer; the caller retries."""


class ConsumerStorage(Protocol):
    def ensure(self, spec: ConsumerSpec) -> dict[str, str]:
        """Create the consumer's storage if needed; its workflow-api's storage settings."""

    def remove(self, spec: ConsumerSpec) -> None:
        """Delete the consumer's stored data and storage identity; done if already gone."""


class NoConsumerStorage:
    """Filesystem storage: nothing outside the workflow-api's own data directory."""

    def ensure(self, spec: ConsumerSpec) -> dict[str, str]:
        return {}

    def remove(self, spec: ConsumerSpec) -> None:
        return None
