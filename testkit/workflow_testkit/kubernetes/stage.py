"""What the Kubernetes tests set up the same way: the provisioner's RBAC as the chart installs it,
ServiceAccount tokens (TokenRequest) and kubeconfigs holding nothing but such a token, static
PersistentVolumes (KWOK has no volume provisioner), and small waits and reads.

The admin client (`ClusterHandle.api_client()`) only sets the stage and looks; the code under test
gets a token kubeconfig.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from provisioner.deployers.kubernetes.rbac import (
    make_provisioner_cluster_role,
    make_runner_cluster_role,
)
from provisioner.deployers.kubernetes.spec import CONFIG_SECRET_NAME
from workflow_testkit.kubernetes.cluster import ClusterHandle


def wait_for(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def ignore_conflict(call: Callable[[], Any]) -> None:
    """Create, and count "already exists" (409) as done."""
    try:
        call()
    except ApiException as error:
        if error.status != 409:
            raise


def namespace_gone(admin: client.ApiClient, namespace: str) -> bool:
    try:
        client.CoreV1Api(admin).read_namespace(namespace)
    except ApiException as error:
        if error.status == 404:
            return True
        raise
    return False


def secret_data(
    admin: client.ApiClient, namespace: str, name: str = CONFIG_SECRET_NAME
) -> dict[str, str]:
    secret = client.CoreV1Api(admin).read_namespaced_secret(name, namespace)
    return {key: base64.b64decode(value).decode() for key, value in secret.data.items()}


def install_provisioner_rbac(
    admin: client.ApiClient, *, namespace: str, account: str, role: str, runner_role: str
) -> None:
    """What the chart installs: the provisioner's namespace and ServiceAccount, its ClusterRole
    bound to that account, and the runner's ClusterRole the consumers' RoleBindings point at.
    Repeating it changes nothing."""
    core, rbac = client.CoreV1Api(admin), client.RbacAuthorizationV1Api(admin)
    ignore_conflict(
        lambda: core.create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace))
        )
    )
    for cluster_role in (
        make_provisioner_cluster_role(role, runner_role),
        make_runner_cluster_role(runner_role),
    ):
        ignore_conflict(functools.partial(rbac.create_cluster_role, cluster_role))
    service_account = client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=account))
    ignore_conflict(lambda: core.create_namespaced_service_account(namespace, service_account))
    binding = client.V1ClusterRoleBinding(
        metadata=client.V1ObjectMeta(name=role),
        role_ref=client.V1RoleRef(
            api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=role
        ),
        subjects=[client.RbacV1Subject(kind="ServiceAccount", name=account, namespace=namespace)],
    )
    ignore_conflict(lambda: rbac.create_cluster_role_binding(binding))


def service_account_token(
    admin: client.ApiClient, account: str, namespace: str, seconds: int = 3600
) -> str:
    """A token of the ServiceAccount, minted by the TokenRequest API (as a kubelet gets one)."""
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=seconds)
    )
    response = client.CoreV1Api(admin).create_namespaced_service_account_token(
        account, namespace, request
    )
    token: str = response.status.token
    return token


def kubeconfig_for_token(cluster: ClusterHandle, token: str, path: Path) -> Path:
    """A kubeconfig with the cluster's address and CA and this bearer token as its only user."""
    admin = yaml.safe_load(cluster.kubeconfig_path.read_text())
    current = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])
    entry = next(c for c in admin["clusters"] if c["name"] == current["context"]["cluster"])
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [entry],
        "users": [{"name": "token", "user": {"token": token}}],
        "contexts": [{"name": "token", "context": {"cluster": entry["name"], "user": "token"}}],
        "current-context": "token",
    }
    path.write_text(yaml.safe_dump(document))
    return path


@contextlib.contextmanager
def static_volumes(
    admin: client.ApiClient, count: int, storage_class: str, size: str = "1Gi"
) -> Iterator[list[str]]:
    """`count` PersistentVolumes of `storage_class` for claims to bind to; deleted at the end."""
    core = client.CoreV1Api(admin)
    names = [f"{storage_class}-{index}-{uuid.uuid4().hex[:6]}" for index in range(count)]
    for name in names:
        volume = client.V1PersistentVolume(
            metadata=client.V1ObjectMeta(name=name),
            spec=client.V1PersistentVolumeSpec(
                capacity={"storage": size},
                access_modes=["ReadWriteOnce"],
                storage_class_name=storage_class,
                persistent_volume_reclaim_policy="Retain",
                host_path=client.V1HostPathVolumeSource(path=f"/tmp/{name}"),
            ),
        )
        core.create_persistent_volume(volume)
    try:
        yield names
    finally:
        for name in names:
            with contextlib.suppress(ApiException):
                core.delete_persistent_volume(name)
