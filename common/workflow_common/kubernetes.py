"""The one Kubernetes client of both services: a timeout on every call, bounded retries of what
may pass, and one error type.

    KubernetesApiError      a call failed (RetriedWorkError); `status` is the HTTP status, 0 when
    │                       nothing answered; `.retryable`, `.immutable`
    ├── ApiUnavailableError no answer, 429, 5xx (TemporaryError): already retried here, bounded
    └── ApiRefusedError     any other answer, 404 and 409 included (PermanentError)

Only what may pass is retried (`retryable`), `ATTEMPTS` times with exponential backoff, each
attempt with a connect timeout and the caller's read timeout; urllib3's own retries are off
(`connect`). "Already exists" on create and "not found" on read or delete are answers for the
callers to take (`absent_if_missing`), so that create-or-adopt and delete-if-there make every
call idempotent. All calls block (the official client is synchronous): callers make them from
worker threads.

`KubernetesClient` is the client itself; the provisioner's deployer writes objects through it
(`provisioner.deployers.kubernetes_api`), and `ClusterApi` is the job runner's view of one
namespace: jobs create/get/delete, secrets create, pods list/delete, pods/log get, events list,
all within the Role the provisioner grants.
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
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from workflow_common.retry import PermanentError, RetriedWorkError, TemporaryError

log = logging.getLogger(__name__)

Result = TypeVar("Result")
ATTEMPTS = 4  # per call, for retryable errors only
CONNECT_TIMEOUT_SECONDS = 5.0
NOT_FOUND, CONFLICT, TOO_MANY_REQUESTS = 404, 409, 429
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def _retryable_status(status: int) -> bool:
    return status in {0, TOO_MANY_REQUESTS} or status >= 500


class KubernetesApiError(RetriedWorkError):
    """A failed call: `status` (0: no answer), the HTTP `status_reason` and the API's `message`;
    `what` names the call."""

    def __init__(self, status: int, reason: str, message: str, *, what: str = "") -> None:
        text = f"{status} {reason}: {message}" if status else message
        super().__init__(f"{what}: {text}" if what else text)
        self.status, self.status_reason, self.message = status, reason, message

    @property
    def retryable(self) -> bool:
        return _retryable_status(self.status)

    @property
    def immutable(self) -> bool:
        """422 because a field cannot change."""
        return self.status == 422 and "immutable" in self.message

    @classmethod
    def from_exception(cls, error: ApiException, *, what: str = "") -> KubernetesApiError:
        """The error for an answer the client raised, with the API's own message when the body
        is a Status object."""
        message = str(error.reason or "")
        try:
            body = json.loads(error.body or "")
            message = body.get("message") or message
        except (TypeError, ValueError, AttributeError):
            pass
        return api_error(int(error.status or 0), str(error.reason or ""), message, what=what)


class ApiUnavailableError(KubernetesApiError, TemporaryError):
    """No answer, throttled or a server error: asking later may help."""


class ApiRefusedError(KubernetesApiError, PermanentError):
    """The API server refused the request (invalid, forbidden, not found, conflict, ...)."""


def api_error(status: int, reason: str, message: str, *, what: str = "") -> KubernetesApiError:
    """The error of that status: unavailable when asking again may help, refused otherwise."""
    kind = ApiUnavailableError if _retryable_status(status) else ApiRefusedError
    return kind(status, reason, message, what=what)


def retryable(error: BaseException) -> bool:
    """What the client raised, worth another attempt: no answer, 429 or 5xx."""
    if isinstance(error, ApiException):
        return _retryable_status(int(error.status or 0))
    return isinstance(error, urllib3.exceptions.HTTPError | OSError)


def connect(kubeconfig: Path | str | None, context: str | None = None) -> client.ApiClient:
    """An `ApiClient` from a kubeconfig file (and context), or from the pod's service account.
    Retries are `KubernetesClient.call`'s (retryable errors only), so urllib3's are off."""
    configuration = client.Configuration()
    if kubeconfig is not None:
        config.load_kube_config(
            config_file=str(kubeconfig), context=context, client_configuration=configuration
        )
    else:
        config.load_incluster_config(client_configuration=configuration)
    configuration.retries = 0
    return client.ApiClient(configuration)


def default_namespace(setting: str) -> str:
    """The namespace of the pod this runs in, for when the namespace `setting` is not set."""
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise ValueError(
            f"{setting} is not set and this is no pod with a service "
            f"account ({SERVICE_ACCOUNT_NAMESPACE}: {error.strerror})"
        ) from error


class KubernetesClient:
    """An `ApiClient` whose every call goes through `call`: timeout, retries, one error type."""

    def __init__(self, api_client: client.ApiClient, *, timeout_seconds: float = 10.0) -> None:
        self._client = api_client
        self._timeout = (CONNECT_TIMEOUT_SECONDS, timeout_seconds)
        self._apis: dict[str, Any] = {}

    def close(self) -> None:
        self._client.close()

    def api(self, name: str) -> Any:
        """The typed API object of that `kubernetes.client` class (`"CoreV1Api"`), made once."""
        api = self._apis.get(name)
        if api is None:
            api = self._apis[name] = getattr(client, name)(self._client)
        return api

    def sanitize(self, desired: Any) -> Any:
        """A `V1…` object as the plain JSON data the API server receives."""
        return self._client.sanitize_for_serialization(desired)

    def call(self, function: Callable[..., Result], *args: Any, **kwargs: Any) -> Result:
        """`function(*args, **kwargs)` with the timeout, retried while the error is retryable;
        a failure raised as `KubernetesApiError` naming the call."""
        name = getattr(function, "__name__", "call")
        what = f"{name} {args[0]}" if args and isinstance(args[0], str) else name
        retrying = Retrying(
            stop=stop_after_attempt(ATTEMPTS),
            wait=wait_exponential(multiplier=0.25, max=2.0),
            retry=retry_if_exception(retryable),
            reraise=True,
        )
        try:
            return retrying(function, *args, _request_timeout=self._timeout, **kwargs)
        except ApiException as error:
            raise KubernetesApiError.from_exception(error, what=what) from error
        except (urllib3.exceptions.HTTPError, OSError) as error:
            message = f"Kubernetes API unreachable: {type(error).__name__}: {error}"
            raise ApiUnavailableError(0, "", message, what=what) from error

    def absent_if_missing(
        self, function: Callable[..., Result], *args: Any, **kwargs: Any
    ) -> Result | None:
        """`call`, with "not found" as None."""
        try:
            return self.call(function, *args, **kwargs)
        except ApiRefusedError as error:
            if error.status == NOT_FOUND:
                return None
            raise


class ClusterApi:
    """Jobs, Secrets, pods, logs and events of one namespace (the job runner's)."""

    def __init__(
        self, api_client: client.ApiClient, namespace: str, timeout_seconds: float
    ) -> None:
        self._kube = KubernetesClient(api_client, timeout_seconds=timeout_seconds)
        self.namespace = namespace
        self._batch = self._kube.api("BatchV1Api")
        self._core = self._kube.api("CoreV1Api")

    def close(self) -> None:
        self._kube.close()

    def create_job(self, job: Any) -> Any:
        """Create the Job, or return the one of that name that exists already (adopt)."""
        name = job.metadata.name
        try:
            return self._kube.call(self._batch.create_namespaced_job, self.namespace, job)
        except ApiRefusedError as error:
            if error.status != CONFLICT:
                raise
        existing = self.read_job(name)
        if existing is None:
            raise ApiRefusedError(
                CONFLICT, "Conflict", f"Job {name} exists and does not: it is being deleted"
            )
        log.info("adopted the existing Job %s", name)
        return existing

    def read_job(self, name: str) -> Any | None:
        return self._kube.absent_if_missing(self._batch.read_namespaced_job, name, self.namespace)

    def delete_job(self, name: str, propagation: str) -> None:
        options = client.V1DeleteOptions(propagation_policy=propagation)
        delete = self._batch.delete_namespaced_job
        self._kube.absent_if_missing(delete, name, self.namespace, body=options)

    def create_secret(self, secret: Any) -> None:
        """Create the Secret; one of that name that exists already is taken as this one."""
        try:
            self._kube.call(self._core.create_namespaced_secret, self.namespace, secret)
        except ApiRefusedError as error:
            if error.status != CONFLICT:
                raise

    def list_pods(self, selector: str) -> list[Any]:
        list_pods = self._core.list_namespaced_pod
        return list(self._kube.call(list_pods, self.namespace, label_selector=selector).items)

    def delete_pod(self, name: str, grace_seconds: int) -> None:
        options = client.V1DeleteOptions(grace_period_seconds=grace_seconds)
        delete = self._core.delete_namespaced_pod
        self._kube.absent_if_missing(delete, name, self.namespace, body=options)

    def read_log(self, pod: str, container: str, limit_bytes: int) -> bytes | None:
        """Up to `limit_bytes` of a container's log; None when the pod or log is not there."""

        def read_log(pod_name: str, *, _request_timeout: Any) -> bytes:
            response = self._core.read_namespaced_pod_log(
                pod_name,
                self.namespace,
                container=container,
                limit_bytes=limit_bytes,
                _preload_content=False,
                _request_timeout=_request_timeout,
            )
            try:
                data: bytes = response.read()
            finally:
                response.release_conn()
            return data

        try:
            return self._kube.absent_if_missing(read_log, pod)
        except ApiRefusedError as error:
            if error.status == 400:  # the container has not started (or is unknown)
                return None
            raise

    def list_events(self, uid: str) -> list[Any]:
        selector = f"involvedObject.uid={uid}"
        answer = self._kube.call(
            self._core.list_namespaced_event, self.namespace, field_selector=selector
        )
        return list(answer.items)
