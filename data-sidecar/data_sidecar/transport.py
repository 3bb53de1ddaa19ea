"""HTTP plumbing shared by stage-in and push-out: timeouts, bounded retries, safe URLs for logs.

Only network errors, timeouts and 5xx/429 answers are retried, with exponential backoff and a
bounded number of attempts; every other answer outside 2xx is final.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from data_sidecar.egress_http import EgressFailedError
from data_sidecar.errors import RetryableStatusError, TransferError

log = logging.getLogger(__name__)

CHUNK_SIZE = 1024 * 1024
TOO_MANY_REQUESTS = 429
ENVIRONMENT_PREFIX = "DATA_SIDECAR_"

Result = TypeVar("Result")


@dataclass(frozen=True)
class TransferPolicy:
    """Attempts, backoff (seconds) and timeouts (seconds) for every request."""

    attempts: int = 5
    initial_wait: float = 1.0
    max_wait: float = 30.0
    connect_timeout: float = 10.0
    read_timeout: float = 60.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        for name in ("initial_wait", "max_wait", "connect_timeout", "read_timeout"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0")

    @property
    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(
            self.read_timeout,
            connect=self.connect_timeout,
            pool=self.connect_timeout,
        )

    @classmethod
    def from_environment(cls, environment: Mapping[str, str]) -> TransferPolicy:
        """Override the defaults with `DATA_SIDECAR_ATTEMPTS`, `DATA_SIDECAR_READ_TIMEOUT`, …"""
        defaults = cls()

        def number(field: str, default: float) -> float:
            name = ENVIRONMENT_PREFIX + field.upper()
            try:
                return float(environment.get(name, default))
            except ValueError as error:
                raise ValueError(f"{name}: {error}") from error

        attempts = number("attempts", defaults.attempts)
        if not attempts.is_integer():
            raise ValueError(f"{ENVIRONMENT_PREFIX}ATTEMPTS must be a whole number")
        return cls(
            attempts=int(attempts),
            initial_wait=number("initial_wait", defaults.initial_wait),
            max_wait=number("max_wait", defaults.max_wait),
            connect_timeout=number("connect_timeout", defaults.connect_timeout),
            read_timeout=number("read_timeout", defaults.read_timeout),
        )


def safe_url(url: str) -> str:
    """`scheme://host[:port]/path`: no user info, query or fragment (they carry signatures)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return "<invalid URL>"
    return f"{parts.scheme}://{host}{port}{parts.path}"


def is_retryable(error: BaseException) -> bool:
    if isinstance(error, EgressFailedError):
        return error.retryable
    retryable = (
        httpx.TimeoutException,
        httpx.NetworkError,
        httpx.RemoteProtocolError,
        RetryableStatusError,
    )
    return isinstance(error, retryable)


def check_status(response: httpx.Response, method: str, url: str) -> None:
    """Raise `RetryableStatusError` for 5xx/429, `TransferError` for any other non-2xx."""
    if response.is_success:
        return
    message = f"{method} {safe_url(url)} answered HTTP {response.status_code}"
    if response.status_code >= 500 or response.status_code == TOO_MANY_REQUESTS:
        raise RetryableStatusError(message, response.status_code)
    raise TransferError(message, response.status_code)


def describe(error: BaseException, url: str) -> str:
    """One line about `error` that never repeats the signed part of `url`."""
    text = str(error) or type(error).__name__
    if isinstance(error, httpx.HTTPError):
        text = f"{type(error).__name__}: {text}"
    text = text.replace(url, safe_url(url))
    return " ".join(text.split())


def with_retries(
    policy: TransferPolicy, method: str, url: str, operation: Callable[[], Result]
) -> Result:
    """Run `operation` until it succeeds, fails for good, or `policy.attempts` are used up.

    Each attempt starts over: a download rewrites its file, an upload re-sends its body.
    """
    description = f"{method} {safe_url(url)}"

    def before_sleep(state: RetryCallState) -> None:
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning(
            "%s failed (attempt %d of %d): %s; retrying in %.2f s",
            description,
            state.attempt_number,
            policy.attempts,
            describe(error, url) if error is not None else "no result",
            wait,
        )

    retrying = Retrying(
        stop=stop_after_attempt(policy.attempts),
        wait=wait_exponential(multiplier=policy.initial_wait, max=policy.max_wait)
        + wait_random(0, policy.initial_wait),
        retry=retry_if_exception(is_retryable),
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(operation)


@contextmanager
def client_for(client: httpx.Client | None, policy: TransferPolicy) -> Iterator[httpx.Client]:
    """The caller's client, or a new one with the policy's timeouts that is closed afterwards."""
    if client is not None:
        yield client
        return
    with httpx.Client(timeout=policy.timeout) as own_client:
        yield own_client
