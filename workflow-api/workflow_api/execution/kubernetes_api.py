"""The few Kubernetes API calls the job runner makes, each with a timeout and bounded retries.

    KubernetesApiError          an answer (or no answer) the runner cannot work with
    └── ApiRefusedError         a 4xx other than 404/409/429: asking again will not help

Only what may pass is retried (no answer, 429, 5xx), with exponential backoff and at most
`ATTEMPTS` attempts. "Already exists" on create and "not found" on read or delete are answers,
not errors: create-or-adopt and delete-if-there make every call idempotent. All calls are
blocking (the official client is synchronous); the runner makes them from worker threads.

Verbs used, all within the Role the provisioner grants (`ROLE_RULES`): jobs create/get/delete,
secrets create, pods list/delete, pods/log get, events list.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

log = logging.getLogger(__name__)

Result = TypeVar("Result")
ATTEMPTS = 4
CONNECT_TIMEOUT = 5.0
NOT_FOUND, CONFLICT, TOO_MANY_REQUESTS = 404, 409, 429
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class KubernetesApiError(RuntimeError):
    """A call failed for good; `status` is None when no answer came."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ApiRefusedError(KubernetesApiError):
    """The API server refused the request (invalid object, forbidden, ...)."""


def retryable(error: BaseException) -> bool:
    """No answer, 429 or 5xx: asking again may help (shared with the provisioner)."""
    if isinstance(error, ApiException):
        code = int(error.status or 0)
        return code in {0, TOO_MANY_REQUESTS} or code >= 500
    return isinstance(error, urllib3.exceptions.HTTPError | OSError)


def _describe(error: ApiException) -> str:
    """The API's own message from a Status body, else the HTTP reason."""
    try:
        message = json.loads(error.body or "{}").get("message")
    except ValueError:
        message = None
    return str(message or error.reason or "no reason given")


def connect(kubeconfig: Path | str | None, context: str | None = None) -> Any:
    """An `ApiClient` from a kubeconfig file (and context), or from the pod's service account.
    Retries are the caller's (tenacity, retryable errors only), so urllib3's are off."""
    configuration = client.Configuration()
    if kubeconfig is not None:
        config.load_kube_config(
            config_file=str(kubeconfig), context=context, client_configuration=configuration
        )
    else:
        config.load_incluster_config(client_configuration=configuration)
    configuration.retries = 0
    return client.ApiClient(configuration)


def default_namespace() -> str:
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise ValueError(
            "WORKFLOW_API_KUBERNETES_NAMESPACE is not set and this is no pod with a service "
            f"account ({SERVICE_ACCOUNT_NAMESPACE}: {error.strerror})"
        ) from error


class ClusterApi:
    """Jobs, Secrets, pods, logs and events of one namespace."""

    def __init__(self, api_client: Any, namespace: str, timeout_seconds: float) -> None:
        self._client = api_client
        self.namespace = namespace
        self._timeout = (CONNECT_TIMEOUT, timeout_seconds)
        self._batch = client.BatchV1Api(api_client)
        self._core = client.CoreV1Api(api_client)

    def close(self) -> None:
        self._client.close()

    def _call(self, what: str, operation: Callable[[], Result]) -> Result:
        retrying = Retrying(
            stop=stop_after_attempt(ATTEMPTS),
            wait=wait_exponential(multiplier=0.5, max=5),
            retry=retry_if_exception(retryable),
            reraise=True,
        )
        try:
            return retrying(operation)
        except ApiException as error:
            message = f"{what}: HTTP {error.status}: {_describe(error)}"
            if 400 <= error.status < 500 and error.status != TOO_MANY_REQUESTS:
                raise ApiRefusedError(message, error.status) from error
            raise KubernetesApiError(message, error.status) from error
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise KubernetesApiError(f"{what}: {type(error).__name__}: {error}") from error

    def _absent_if_missing(self, what: str, operation: Callable[[], Result]) -> Result | None:
        try:
            return self._call(what, operation)
        except ApiRefusedError as error:
            if error.status == NOT_FOUND:
                return None
            raise

    def create_job(self, job: Any) -> Any:
        """Create the Job, or return the one of that name that exists already (adopt)."""
        name = job.metadata.name
        try:
            return self._call(
                f"create Job {name}",
                lambda: self._batch.create_namespaced_job(
                    self.namespace, job, _request_timeout=self._timeout
                ),
            )
        except ApiRefusedError as error:
            if error.status != CONFLICT:
                raise
        existing = self.read_job(name)
        if existing is None:
            raise KubernetesApiError(f"Job {name} exists and does not: it is being deleted")
        log.info("adopted the existing Job %s", name)
        return existing

    def read_job(self, name: str) -> Any | None:
        return self._absent_if_missing(
            f"read Job {name}",
            lambda: self._batch.read_namespaced_job(
                name, self.namespace, _request_timeout=self._timeout
            ),
        )

    def delete_job(self, name: str, propagation: str) -> None:
        options = client.V1DeleteOptions(propagation_policy=propagation)
        self._absent_if_missing(
            f"delete Job {name}",
            lambda: self._batch.delete_namespaced_job(
                name, self.namespace, body=options, _request_timeout=self._timeout
            ),
        )

    def create_secret(self, secret: Any) -> None:
        """Create the Secret; one of that name that exists already is taken as this one."""
        name = secret.metadata.name
        try:
            self._call(
                f"create Secret {name}",
                lambda: self._core.create_namespaced_secret(
                    self.namespace, secret, _request_timeout=self._timeout
                ),
            )
        except ApiRefusedError as error:
            if error.status != CONFLICT:
                raise

    def list_pods(self, selector: str) -> list[Any]:
        answer = self._call(
            f"list pods {selector}",
            lambda: self._core.list_namespaced_pod(
                self.namespace, label_selector=selector, _request_timeout=self._timeout
            ),
        )
        return list(answer.items)

    def delete_pod(self, name: str, grace_seconds: int) -> None:
        options = client.V1DeleteOptions(grace_period_seconds=grace_seconds)
        self._absent_if_missing(
            f"delete pod {name}",
            lambda: self._core.delete_namespaced_pod(
                name, self.namespace, body=options, _request_timeout=self._timeout
            ),
        )

    def read_log(self, pod: str, container: str, limit_bytes: int) -> bytes | None:
        """Up to `limit_bytes` of a container's log; None when the pod or log is not there."""

        def read() -> bytes:
            response = self._core.read_namespaced_pod_log(
                pod,
                self.namespace,
                container=container,
                limit_bytes=limit_bytes,
                _preload_content=False,
                _request_timeout=self._timeout,
            )
            try:
                data: bytes = response.read()
            finally:
                response.release_conn()
            return data

        try:
            return self._absent_if_missing(f"read the log of {pod}/{container}", read)
        except ApiRefusedError as error:
            if error.status == 400:  # the container has not started (or is unknown)
                return None
            raise

    def list_events(self, uid: str) -> list[Any]:
        answer = self._call(
            f"list events of {uid}",
            lambda: self._core.list_namespaced_event(
                self.namespace,
                field_selector=f"involvedObject.uid={uid}",
                _request_timeout=self._timeout,
            ),
        )
        return list(answer.items)
