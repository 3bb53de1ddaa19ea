"""Sending callbacks to EDC: one attempt per call; the reconciler owns timing and deadlines.

409 (the transfer is leased while EDC handles our answer), 5xx and network errors are worth
retrying; any other answer means EDC will never accept this callback. 401/403 say which:
the context the callback goes to wants an `x-api-key` we do not have.

The key sent: `PROVISIONER_EDC_CALLBACK_API_KEY` when set; otherwise the Management API key, but
only to URLs under `PROVISIONER_EDC_MANAGEMENT_URL` (EDC <= 0.15 puts the legacy callback there,
`<edc.management.endpoint>/callback`, behind the management context's auth), so the key never
goes to an address a request named elsewhere.

The errors are the retry taxonomy's (`workflow_common.retry`), so the reconciler retries or gives
up without knowing this module:

    CallbackError (RetriedWorkError)
    ├── CallbackRetryableError (TemporaryError)      network, 5xx
    │   └── CallbackConflictError                    409
    └── CallbackRejectedError (PermanentError)       any other answer
        └── CallbackUnauthorizedError                401/403
"""

from __future__ import annotations

from typing import Any

import httpx

from workflow_common.retry import PermanentError, RetriedWorkError, TemporaryError


class CallbackError(RetriedWorkError):
    """Base of the callback errors."""


class CallbackRetryableError(CallbackError, TemporaryError):
    """Try again later."""


class CallbackConflictError(CallbackRetryableError):
    """409: EDC is busy with the transfer, or it is already past provisioning."""


class CallbackRejectedError(CallbackError, PermanentError):
    """EDC refused the callback for good."""


class CallbackUnauthorizedError(CallbackRejectedError):
    """401/403: the callback's context wants an `x-api-key` we do not have (or another one)."""


class CallbackClient:
    def __init__(
        self,
        *,
        api_key: str | None,
        timeout_seconds: float,
        management_url: str | None = None,
        management_api_key: str | None = None,
    ) -> None:
        self._api_key = api_key
        self._management_prefix = f"{management_url.rstrip('/')}/" if management_url else None
        self._management_key = management_api_key
        self._client = httpx.Client(timeout=timeout_seconds)

    def key_for(self, url: str) -> str | None:
        if self._api_key:
            return self._api_key
        if (
            self._management_key
            and self._management_prefix
            and url.startswith(self._management_prefix)
        ):
            return self._management_key
        return None

    def close(self) -> None:
        self._client.close()

    def post(self, url: str, body: dict[str, Any]) -> None:
        key = self.key_for(url)
        headers = {"x-api-key": key} if key else {}
        try:
            response = self._client.post(url, json=body, headers=headers)
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
        if status in (401, 403):
            sent = "with an x-api-key" if key else "without an x-api-key"
            raise CallbackUnauthorizedError(
                f"EDC refused the callback's credentials ({status}; sent {sent}): set"
                " PROVISIONER_EDC_CALLBACK_API_KEY to the key of the context it goes to (EDC <="
                " 0.15: web.http.management.auth.key), or make PROVISIONER_EDC_MANAGEMENT_URL the"
                " connector's edc.management.endpoint"
            )
        raise CallbackRejectedError(f"EDC answered {status}: {response.text[:300]}")
