"""Errors that drive retried work: the reconciler's grant and consumer steps and the job runner.

RetriedWorkError
├── TemporaryError   try again after `delay` seconds (None: the caller's own backoff)
└── PermanentError   give up; `reason` is what the record (grant, consumer, job) keeps

A step raises one of the two; anything else that escapes a step is a bug, recorded as
permanent by the caller. Adapters (the Kubernetes client, the Management API client, the
workflow-api client, the S3 client) translate their own failures into these at the boundary,
so the loops that retry never inspect other libraries' exception classes.
"""

from __future__ import annotations


class RetriedWorkError(Exception):
    """A step of retried work could not finish."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TemporaryError(RetriedWorkError):
    """Worth another attempt: the other side was unreachable, busy or not ready yet."""

    def __init__(self, reason: str, *, delay: float | None = None) -> None:
        super().__init__(reason)
        self.delay = delay


class PermanentError(RetriedWorkError):
    """No attempt will succeed: refused, invalid, or gone for good."""
