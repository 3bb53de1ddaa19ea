"""OGC `subscriber` callbacks: POST the status or results to the URIs the client gave.

Every delivery goes through the egress policy (`data_sidecar.egress`): refused at once when the
URI's host is not an allowed destination, connected to the address that was checked, no
redirects followed, each attempt bounded by the timeout as a whole. Delivery is retried with
backoff on no answer, 5xx and 429; a failure is logged and never touches the job. Deliveries run
as tasks owned by the notifier and are cancelled when it closes.

One attempt (`_post`) translates what the egress client and the subscriber answered into the
retry taxonomy: `TemporaryError` (no answer, 5xx, 429) is tried again, `PermanentError` (the
policy refused the URI, the deadline passed) ends the delivery.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from data_sidecar.egress import EgressPolicy, EgressRefusedError, Resolver, system_resolver
from data_sidecar.egress_http import EgressFailedError, guarded_async_client, post_guarded
from data_sidecar.transport import safe_url
from workflow_common.retry import PermanentError, TemporaryError

log = logging.getLogger(__name__)
TOO_MANY_REQUESTS = 429


class _RefusedError(PermanentError):
    """The egress policy refuses the subscriber's URI: nothing was sent."""


class Notifier:
    def __init__(
        self,
        *,
        timeout_seconds: float,
        attempts: int,
        policy: EgressPolicy,
        max_wait_seconds: float = 30,
        resolver: Resolver = system_resolver,
    ):
        self._policy = policy
        self._timeout = timeout_seconds
        self._client = guarded_async_client(policy, httpx.Timeout(timeout_seconds), resolver)
        self._attempts = attempts
        self._max_wait = max_wait_seconds
        self._deliveries: set[asyncio.Task[None]] = set()

    def send(self, job_id: str, uri: str | None, body: dict[str, Any]) -> None:
        """Schedule one delivery; must be called on the event loop."""
        if not uri:
            return
        task = asyncio.create_task(self._deliver(job_id, uri, body))
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def _deliver(self, job_id: str, uri: str, body: dict[str, Any]) -> None:
        where = safe_url(uri)
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(TemporaryError),
                stop=stop_after_attempt(self._attempts),
                wait=wait_exponential(multiplier=0.5, max=self._max_wait),
                reraise=True,
            ):
                with attempt:
                    status = await self._post(uri, body)
                    if not 200 <= status < 300:
                        log.warning(
                            "subscriber %s for job %s answered HTTP %d", where, job_id, status
                        )
        except _RefusedError as error:
            log.warning("subscriber %s for job %s refused: %s", where, job_id, error)
        except (TemporaryError, PermanentError) as error:
            log.warning("subscriber notification to %s for job %s failed: %s", where, job_id, error)

    async def _post(self, uri: str, body: dict[str, Any]) -> int:
        """One attempt: the answer's status if it is final (2xx or a 4xx other than 429)."""
        try:
            status = await post_guarded(self._client, self._policy, uri, body, self._timeout)
        except EgressRefusedError as error:
            raise _RefusedError(str(error)) from error
        except EgressFailedError as error:
            kind = TemporaryError if error.retryable else PermanentError
            raise kind(str(error)) from error
        if status >= 500 or status == TOO_MANY_REQUESTS:
            raise TemporaryError(f"HTTP {status}")
        return status

    async def drain(self, timeout: float) -> None:
        """Wait a little for pending deliveries (tests, shutdown)."""
        if self._deliveries:
            await asyncio.wait(set(self._deliveries), timeout=timeout)

    async def close(self) -> None:
        for task in list(self._deliveries):
            task.cancel()
        await asyncio.gather(*self._deliveries, return_exceptions=True)
        await self._client.aclose()
