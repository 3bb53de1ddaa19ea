from __future__ import annotations

import httpx
import pytest

from data_sidecar.errors import RetryableStatusError, TransferError
from data_sidecar.transport import (
    TransferPolicy,
    check_status,
    describe,
    is_retryable,
    safe_url,
    with_retries,
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://store.example/bucket/key?X-Amz-Signature=abc#frag",
            "https://store.example/bucket/key",
        ),
        ("http://user:pw@127.0.0.1:9000/a/b?sig=1", "http://127.0.0.1:9000/a/b"),
        ("http://[::1", "<invalid URL>"),
    ],
)
def test_safe_url_drops_query_credentials_and_fragment(url: str, expected: str) -> None:
    assert safe_url(url) == expected


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (httpx.ConnectError("refused"), True),
        (httpx.ReadTimeout("slow"), True),
        (httpx.RemoteProtocolError("gone"), True),
        (RetryableStatusError("503", 503), True),
        (TransferError("404", 404), False),
        (httpx.UnsupportedProtocol("ftp"), False),
        (ValueError("bug"), False),
    ],
)
def test_only_network_errors_timeouts_and_retryable_statuses_are_retried(
    error: BaseException, retryable: bool
) -> None:
    assert is_retryable(error) is retryable


@pytest.mark.parametrize(
    ("status", "expected"),
    [(200, None), (204, None), (429, RetryableStatusError), (503, RetryableStatusError)],
)
def test_check_status_marks_5xx_and_429_retryable(
    status: int, expected: type[Exception] | None
) -> None:
    response = httpx.Response(status)
    if expected is None:
        check_status(response, "GET", "http://h/p?sig=x")
    else:
        with pytest.raises(expected) as caught:
            check_status(response, "GET", "http://h/p?sig=x")
        assert "sig=x" not in str(caught.value)


def test_check_status_makes_4xx_final() -> None:
    with pytest.raises(TransferError) as caught:
        check_status(httpx.Response(403), "PUT", "http://h/p?sig=x")
    assert not isinstance(caught.value, RetryableStatusError)
    assert caught.value.status == 403
    assert str(caught.value) == "PUT http://h/p answered HTTP 403"


def test_describe_removes_the_signed_url_from_an_error_message() -> None:
    url = "http://h/p?sig=secret"
    text = describe(httpx.ConnectError(f"cannot reach {url}\nat all"), url)
    assert text == "ConnectError: cannot reach http://h/p at all"


def test_with_retries_stops_after_the_configured_attempts() -> None:
    calls: list[int] = []
    policy = TransferPolicy(attempts=4, initial_wait=0.0, max_wait=0.0)

    def failing() -> None:
        calls.append(1)
        raise httpx.ConnectError("refused")

    with pytest.raises(httpx.ConnectError):
        with_retries(policy, "GET", "http://h/p", failing)
    assert len(calls) == 4


def test_with_retries_does_not_retry_a_final_error() -> None:
    calls: list[int] = []

    def failing() -> None:
        calls.append(1)
        raise TransferError("404", 404)

    with pytest.raises(TransferError):
        with_retries(TransferPolicy(initial_wait=0.0), "GET", "http://h/p", failing)
    assert len(calls) == 1


def test_policy_from_environment_overrides_defaults() -> None:
    policy = TransferPolicy.from_environment(
        {"DATA_SIDECAR_ATTEMPTS": "2", "DATA_SIDECAR_READ_TIMEOUT": "1.5", "OTHER": "x"}
    )
    assert policy.attempts == 2
    assert policy.read_timeout == 1.5
    assert policy.connect_timeout == TransferPolicy().connect_timeout
    assert policy.timeout.read == 1.5
    assert policy.timeout.connect == 10.0


@pytest.mark.parametrize(
    "environment",
    [
        {"DATA_SIDECAR_ATTEMPTS": "0"},
        {"DATA_SIDECAR_ATTEMPTS": "2.5"},
        {"DATA_SIDECAR_READ_TIMEOUT": "soon"},
        {"DATA_SIDECAR_MAX_WAIT": "-1"},
        {"DATA_SIDECAR_CONNECT_TIMEOUT": "inf"},
    ],
)
def test_policy_from_environment_rejects_bad_values(environment: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"DATA_SIDECAR_|must be"):
        TransferPolicy.from_environment(environment)
