"""OGC `subscriber` callbacks: POST the status or results to the URIs the client gave.

Delivery is retried with backoff on network errors, 5xx and 429; a failure is logged and never
touches the job. Deliveries run as tasks owned by the notifier and are cancelled when it closes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

log = logging.getLogger(__name__)


def _retryable(error: BaseException) -> bool:
    if isinstance(error, httpx.HTTPStatusError):
        return error.response.status_code >= 500 or error.response.status_code == 429
    return isinstance(error, httpx.TransportError)


class Notifier:
    def __init__(self, *, timeout_seconds: float, attempts: int, max_wait_seconds: float = 30):
        self._client = httpx.AsyncClient(timeout=timeout_seconds, follow_redirects=False)
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
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(_retryable),
                stop=stop_after_attempt(self._attempts),
                wait=wait_exponential(multiplier=0.5, max=self._max_wait),
                reraise=True,
            ):
                with attempt:
                    response = await self._client.post(uri, json=body)
                    response.raise_for_status()
        except httpx.HTTPError as error:
            log.warning("subscriber notification for job %s failed: %s", job_id, error)

    async def drain(self, timeout: float) -> None:
        """Wait a little for pending deliveries (tests, shutdown)."""
        if self._deliveries:
            await asyncio.wait(set(self._deliveries), timeout=timeout)

    async def close(self) -> None:
        for task in list(self._deliveries):
            task.cancel()
        await asyncio.gather(*self._deliveries, return_exceptions=True)
        await self._client.aclose()
