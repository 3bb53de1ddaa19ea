"""How the Kubernetes deployer writes each kind of object, on the one client
(`workflow_common.kubernetes`: timeouts, bounded retries, `KubernetesApiError`).

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
from dataclasses import dataclass
from typing import Any, Literal

from workflow_common.kubernetes import KubernetesApiError, KubernetesClient, api_error

log = logging.getLogger(__name__)

APPLIED_HASH_ANNOTATION = "workflow.middle-layer/applied-hash"
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


def applied_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


class KubernetesApi(KubernetesClient):
    """The one client, plus reads, deletes and `ensure` by kind (`KINDS`)."""

    def _method(self, kind: Kind, action: str) -> Any:
        return getattr(self.api(kind.api), kind.method(action))

    def _do(self, kind: Kind, action: str, *args: Any, **kwargs: Any) -> Any:
        return self.call(self._method(kind, action), *args, **kwargs)

    @staticmethod
    def _where(kind: Kind, name: str, namespace: str | None) -> tuple[str, ...]:
        return (name, namespace) if kind.namespaced and namespace else (name,)

    def read(self, kind_name: str, name: str, namespace: str | None = None) -> Any | None:
        """The live object, None when there is none."""
        kind = KINDS[kind_name]
        return self.absent_if_missing(
            self._method(kind, "read"), *self._where(kind, name, namespace)
        )

    def delete(self, kind_name: str, name: str, namespace: str | None = None) -> None:
        """Delete it (dependents in the background); done if it is already gone."""
        kind = KINDS[kind_name]
        where = self._where(kind, name, namespace)
        self.absent_if_missing(
            self._method(kind, "delete"), *where, propagation_policy="Background"
        )

    def list_pods(self, namespace: str, selector: dict[str, str]) -> list[Any]:
        core = self.api(_CORE)
        labels = ",".join(f"{key}={value}" for key, value in sorted(selector.items()))
        items: list[Any] = self.call(
            core.list_namespaced_pod, namespace, label_selector=labels
        ).items
        return items

    def ensure(self, desired: Any) -> Outcome:
        """Create or bring up to date one object from the builders; see the module docstring."""
        body: dict[str, Any] = self.sanitize(desired)
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
                raise api_error(409, "Terminating", f"{kind.name} {where} is being deleted")
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
        raise api_error(409, "Conflict", f"{kind.name} {where} keeps changing; retry")

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
        raise api_error(409, "Conflict", f"{kind.name} {where} keeps changing; retry")
