"""The Kubernetes deployer's access to the API: timeouts, retries, errors, and how each kind of
object is written. The only module that calls the `kubernetes` client.

    KubernetesApiError      any failed call; `status` is the HTTP status, 0 when nothing answered
        .retryable          429, 5xx, no answer: already retried here (bounded), then raised
        .immutable          422 because a field cannot change

Writing (`ensure`) is idempotent and cheap when nothing changed. Each desired object carries a
hash of itself in an annotation; the live object is read and written only when it is missing
(create) or its hash differs (update, or a merge patch for kinds that others also write to or
that are mostly immutable). A create answering 409 means someone created it meanwhile: read it
and compare again. An update refused for an immutable field deletes and re-creates the object
where that loses nothing (a Deployment's selector, a RoleBinding's roleRef); a claim is never
deleted for it (its data would go), the change is logged and left.

Secrets are never read: the provisioner holds no `get` on Secrets, so it cannot read other
namespaces' Secrets either. They are written with an unconditional update, which the API server
stores only if the content changed (same resourceVersion otherwise), and created on 404.

`KINDS` is plain data: the provisioner's ClusterRole is derived from it (`kubernetes_rbac`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from workflow_api.execution.kubernetes_api import retryable

log = logging.getLogger(__name__)

T = TypeVar("T")
APPLIED_HASH_ANNOTATION = "workflow.middle-layer/applied-hash"
CONNECT_TIMEOUT_SECONDS = 3.0
ATTEMPTS = 3  # per call, for retryable errors only
WRITE_ATTEMPTS = 3  # per object: a conflict or a re-creation reads it again
Outcome = Literal["created", "updated", "unchanged", "kept"]


@dataclass(frozen=True)
class Kind:
    """How the deployer writes one kind of object, and so which verbs it needs."""

    name: str  # "Deployment"
    group: str  # API group, "" for the core group
    resource: str  # plural, as RBAC names it
    api: str  # the kubernetes.client class
    namespaced: bool = True
    write: Literal["update", "patch", "blind-update"] = "update"
    recreate: bool = False  # delete and create again when an update meets an immutable field

    @property
    def verbs(self) -> frozenset[str]:
        read = set() if self.write == "blind-update" else {"get"}
        change = "update" if self.write == "blind-update" else self.write
        return frozenset({"create", change, *read, *(("delete",) if self.recreate else ())})

    def method(self, action: str) -> str:
        """`replace_namespaced_role_binding`, `patch_namespace`, ..."""
        snake = re.sub(r"(?<!^)(?=[A-Z])", "_", self.name).lower()
        return f"{action}_namespaced_{snake}" if self.namespaced else f"{action}_{snake}"


_CORE, _APPS, _NET, _RBAC = "CoreV1Api", "AppsV1Api", "NetworkingV1Api", "RbacAuthorizationV1Api"
KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        # Others label namespaces too (Pod Security, monitoring): merge, never replace.
        Kind("Namespace", "", "namespaces", _CORE, namespaced=False, write="patch"),
        Kind("ResourceQuota", "", "resourcequotas", _CORE),
        Kind("LimitRange", "", "limitranges", _CORE),
        Kind("NetworkPolicy", "networking.k8s.io", "networkpolicies", _NET),
        Kind("ServiceAccount", "", "serviceaccounts", _CORE),
        Kind("RoleBinding", "rbac.authorization.k8s.io", "rolebindings", _RBAC, recreate=True),
        Kind("Secret", "", "secrets", _CORE, write="blind-update"),
        # Only the requested size may change; everything else is immutable once bound.
        Kind("PersistentVolumeClaim", "", "persistentvolumeclaims", _CORE, write="patch"),
        Kind("Service", "", "services", _CORE),
        Kind("Deployment", "apps", "deployments", _APPS, recreate=True),
        Kind("Ingress", "networking.k8s.io", "ingresses", _NET),
    )
}


class KubernetesApiError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}" if status else message)
        self.status, self.reason, self.message = status, reason, message

    @property
    def retryable(self) -> bool:
        return self.status in {0, 429} or self.status >= 500

    @property
    def immutable(self) -> bool:
        return self.status == 422 and "immutable" in self.message

    @classmethod
    def from_exception(cls, error: ApiException) -> KubernetesApiError:
        message = str(error.reason or "")
        try:
            body = json.loads(error.body or "")
            message = body.get("message") or message
        except (TypeError, ValueError, AttributeError):
            pass
        return cls(int(error.status or 0), str(error.reason or ""), message)


def applied_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


class KubernetesApi:
    """Typed calls with a timeout each and bounded retries; `ensure` writes any builder object."""

    def __init__(self, api_client: client.ApiClient, *, timeout_seconds: float = 10.0) -> None:
        self._client = api_client
        self._timeout = (CONNECT_TIMEOUT_SECONDS, timeout_seconds)
        self._apis: dict[str, Any] = {}

    def close(self) -> None:
        self._client.close()

    def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`function(*args, **kwargs)` with the timeout, retried while the error is retryable."""
        retrying = Retrying(
            stop=stop_after_attempt(ATTEMPTS),
            wait=wait_exponential(multiplier=0.2, max=2.0),
            retry=retry_if_exception(retryable),
            reraise=True,
        )
        try:
            return retrying(function, *args, _request_timeout=self._timeout, **kwargs)
        except ApiException as error:
            raise KubernetesApiError.from_exception(error) from error
        except (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError) as error:
            raise KubernetesApiError(0, "", f"Kubernetes API unreachable: {error}") from error

    def _do(self, kind: Kind, action: str, *args: Any, **kwargs: Any) -> Any:
        api = self._apis.get(kind.api)
        if api is None:
            api = self._apis[kind.api] = getattr(client, kind.api)(self._client)
        return self.call(getattr(api, kind.method(action)), *args, **kwargs)

    @staticmethod
    def _where(kind: Kind, name: str, namespace: str | None) -> tuple[str, ...]:
        return (name, namespace) if kind.namespaced and namespace else (name,)

    def read(self, kind_name: str, name: str, namespace: str | None = None) -> Any | None:
        """The live object, None when there is none."""
        kind = KINDS[kind_name]
        try:
            return self._do(kind, "read", *self._where(kind, name, namespace))
        except KubernetesApiError as error:
            if error.status == 404:
                return None
            raise

    def delete(self, kind_name: str, name: str, namespace: str | None = None) -> None:
        """Delete it (dependents in the background); done if it is already gone."""
        kind = KINDS[kind_name]
        try:
            where = self._where(kind, name, namespace)
            self._do(kind, "delete", *where, propagation_policy="Background")
        except KubernetesApiError as error:
            if error.status != 404:
                raise

    def list_pods(self, namespace: str, selector: dict[str, str]) -> list[Any]:
        core = self._apis.setdefault(_CORE, client.CoreV1Api(self._client))
        labels = ",".join(f"{key}={value}" for key, value in sorted(selector.items()))
        items: list[Any] = self.call(
            core.list_namespaced_pod, namespace, label_selector=labels
        ).items
        return items

    def ensure(self, desired: Any) -> Outcome:
        """Create or bring up to date one object from the builders; see the module docstring."""
        body: dict[str, Any] = self._client.sanitize_for_serialization(desired)
        kind = KINDS[body["kind"]]
        metadata = body["metadata"]
        annotations = metadata.setdefault("annotations", {})
        annotations[APPLIED_HASH_ANNOTATION] = applied_hash(body)
        where = self._where(kind, metadata["name"], metadata.get("namespace"))
        if kind.write == "blind-update":
            return self._write_blind(kind, where, body)
        for _ in range(WRITE_ATTEMPTS):
            live = self.read(kind.name, *where)
            if live is None:
                if self._create(kind, where, body):
                    return "created"
                continue  # created by someone else meanwhile: compare with theirs
            if live.metadata.deletion_timestamp is not None:
                raise KubernetesApiError(
                    409, "Terminating", f"{kind.name} {where} is being deleted"
                )
            current = (live.metadata.annotations or {}).get(APPLIED_HASH_ANNOTATION)
            if current == annotations[APPLIED_HASH_ANNOTATION]:
                return "unchanged"
            try:
                if kind.write == "patch":
                    merge = "application/merge-patch+json"
                    self._do(kind, "patch", *where, body, _content_type=merge)
                else:
                    versioned = {**body, "metadata": {**metadata}}
                    versioned["metadata"]["resourceVersion"] = live.metadata.resource_version
                    self._do(kind, "replace", *where, versioned)
                return "updated"
            except KubernetesApiError as error:
                if error.status == 409:
                    continue  # changed since we read it
                if not error.immutable:
                    raise
                if not kind.recreate:
                    log.warning("%s %s keeps its old form: %s", kind.name, where, error.message)
                    return "kept"
                log.info("re-creating %s %s: %s", kind.name, where, error.message)
                self.delete(kind.name, *where)
        raise KubernetesApiError(409, "Conflict", f"{kind.name} {where} keeps changing; retry")

    def _create(self, kind: Kind, where: tuple[str, ...], body: dict[str, Any]) -> bool:
        """True when created; False on 409 (it exists after all)."""
        try:
            self._do(kind, "create", *where[1:], body)
        except KubernetesApiError as error:
            if error.status == 409:
                return False
            raise
        return True

    def _write_blind(self, kind: Kind, where: tuple[str, ...], body: dict[str, Any]) -> Outcome:
        for _ in range(WRITE_ATTEMPTS):
            try:
                self._do(kind, "replace", *where, body)
                return "updated"  # or unchanged: the server skips a write that changes nothing
            except KubernetesApiError as error:
                if error.status != 404:
                    raise
            if self._create(kind, where, body):
                return "created"
        raise KubernetesApiError(409, "Conflict", f"{kind.name} {where} keeps changing; retry")
