"""The one Kubernetes client without a cluster: which failures are retried, how they surface."""

from __future__ import annotations

from typing import Any

import pytest
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from workflow_common.kubernetes import (
    ATTEMPTS,
    ApiRefusedError,
    ApiUnavailableError,
    KubernetesApiError,
    KubernetesClient,
    api_error,
    retryable,
)
from workflow_common.retry import PermanentError, TemporaryError


@pytest.mark.parametrize("status", [0, 429, 500, 503])
def test_silence_throttling_and_server_errors_are_temporary(status: int) -> None:
    error = api_error(status, "", "")
    assert isinstance(error, ApiUnavailableError) and isinstance(error, TemporaryError)
    assert error.retryable


@pytest.mark.parametrize("status", [400, 403, 404, 409, 422])
def test_other_answers_are_permanent_refusals(status: int) -> None:
    error = api_error(status, "", "")
    assert isinstance(error, ApiRefusedError) and isinstance(error, PermanentError)
    assert not error.retryable


def test_what_the_client_raises_is_retryable_exactly_when_asking_again_may_help() -> None:
    assert retryable(ApiException(status=503))
    assert retryable(ApiException(status=429))
    assert not retryable(ApiException(status=403))
    assert retryable(urllib3.exceptions.ProtocolError("reset"))
    assert retryable(ConnectionResetError("reset"))
    assert not retryable(ValueError("a bug"))


def test_an_os_error_is_retried_and_then_surfaces_as_unavailable() -> None:
    kube = KubernetesClient(client.ApiClient(), timeout_seconds=1)
    calls: list[int] = []

    def flaky(name: str, *, _request_timeout: Any) -> str:
        calls.append(1)
        if len(calls) < 2:
            raise ConnectionResetError("connection reset by peer")
        return name

    assert kube.call(flaky, "thing") == "thing"
    assert len(calls) == 2

    def broken(name: str, *, _request_timeout: Any) -> str:
        calls.append(1)
        raise ConnectionResetError("connection reset by peer")

    calls.clear()
    with pytest.raises(ApiUnavailableError) as unavailable:
        kube.call(broken, "thing")
    assert len(calls) == ATTEMPTS
    assert unavailable.value.status == 0
    assert str(unavailable.value).startswith("broken thing: Kubernetes API unreachable")


def test_a_refusal_names_the_call_and_carries_the_api_message() -> None:
    kube = KubernetesClient(client.ApiClient(), timeout_seconds=1)

    def create_thing(name: str, *, _request_timeout: Any) -> None:
        error = ApiException(status=422, reason="Unprocessable Entity")
        error.body = '{"kind": "Status", "message": "spec.x: Invalid value"}'
        raise error

    with pytest.raises(KubernetesApiError) as refused:
        kube.call(create_thing, "job-1")
    assert isinstance(refused.value, ApiRefusedError)
    assert (refused.value.status, refused.value.message) == (422, "spec.x: Invalid value")
    expected = "create_thing job-1: 422 Unprocessable Entity: spec.x: Invalid value"
    assert str(refused.value) == expected
    assert refused.value.reason == str(refused.value)


def test_not_found_is_an_answer_for_absent_if_missing() -> None:
    kube = KubernetesClient(client.ApiClient(), timeout_seconds=1)

    def read_thing(name: str, *, _request_timeout: Any) -> str:
        raise ApiException(status=404, reason="Not Found")

    assert kube.absent_if_missing(read_thing, "gone") is None
