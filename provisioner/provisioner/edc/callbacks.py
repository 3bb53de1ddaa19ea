"""Sending callbacks to EDC: one attempt per call; the reconciler owns timing and deadlines.

409 (the transfer is leased while EDC handles our answer), 5xx and network errors are worth
retrying; any other answer means EDC will never accept this callback.
"""

from __future__ import annotations

from typing import Any

import httpx


class CallbackError(Exception):
    """Base of the callback errors."""


class CallbackRetryableError(CallbackError):
    """Try again later."""


class CallbackConflictError(CallbackRetryableError):
    """409: EDC is busy with the transfer, or it is already past provisioning."""


class CallbackRejectedError(CallbackError):
    """EDC refused the callback for good."""


class CallbackClient:
    def __init__(self, *, api_key: str | None, timeout_seconds: float) -> None:
        headers = {"x-api-key": api_key} if api_key else {}
        self._client = httpx.Client(headers=headers, timeout=timeout_seconds)

    def close(self) -> None:
        self._client.close()

    def post(self, url: str, body: dict[str, Any]) -> None:
        try:
            response = self._client.post(url, json=body)
        except httpx.HTTPError as error:
            raise CallbackRetryableError(
                f"callback not delivered: {type(error).__name__}"
            ) from error
        status = response.status_code
        if 200 <= status < 300:
            return
        if status == 409:
            raise CallbackConflictError("EDC answered 409")
        if status >= 500:
            raise CallbackRetryableError(f"EDC answered {status}")
        raise CallbackRejectedError(f"EDC answered {status}: {response.text[:300]}")
