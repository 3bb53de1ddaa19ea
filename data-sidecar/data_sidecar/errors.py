"""Errors of the data-sidecar.

    SidecarError                    base of everything the sidecar raises on purpose
    ├── ManifestError               the manifest file is missing, unreadable or invalid
    ├── TransferError               an HTTP exchange failed for good (4xx, or retries used up)
    │   └── RetryableStatusError    a 5xx or 429 answer: worth another attempt
    ├── StageInError                one input could not be staged (`input_id`, `reason`)
    │   ├── InputTooLargeError      more bytes than the input's `max_size`
    │   ├── ChecksumMismatchError   size or SHA-256 differs from the manifest
    │   └── UnsafeArchiveError      an archive that is unsafe, over its limits, corrupt or unknown
    ├── PushOutError                an output, the log or the report could not be uploaded
    │   └── StorageRefusedError     the consumer's storage quota has no room for it (HTTP 413)
    ├── EgressRefusedError          (egress.py) the egress policy refuses a consumer's URL
    └── EgressFailedError           (egress_http.py) an allowed exchange got no answer in time

Network errors and timeouts are httpx's own exceptions; they and `RetryableStatusError` are the only
ones retried (see `transport.is_retryable`).
"""

from __future__ import annotations


class SidecarError(Exception):
    """Base of the sidecar's errors; the message is one line and never holds a URL's query."""


class ManifestError(SidecarError):
    """The manifest file is missing, unreadable or does not match `JobManifest`."""


class TransferError(SidecarError):
    """An HTTP exchange failed for good; `status` is None when no answer came."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RetryableStatusError(TransferError):
    """The server answered 5xx or 429: a later attempt may succeed."""


class StageInError(SidecarError):
    """One input could not be staged."""

    def __init__(self, input_id: str, reason: str) -> None:
        super().__init__(f"input {input_id!r}: {reason}")
        self.input_id = input_id
        self.reason = reason


class InputTooLargeError(StageInError):
    """The input has more bytes than its `max_size` allows."""


class ChecksumMismatchError(StageInError):
    """The input's size or SHA-256 differs from what the manifest expects."""


class UnsafeArchiveError(StageInError):
    """An archive with a member that escapes, a link or device, too much data; or no archive."""


class PushOutError(SidecarError):
    """An output, the log or the report could not be uploaded."""


class StorageRefusedError(PushOutError):
    """The storage refused an upload for the consumer's quota; the message says how short it is."""
