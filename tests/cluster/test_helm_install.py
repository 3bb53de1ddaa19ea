"""The Helm chart's manifests applied to a real API server (KWOK): what `helm install` would do.

Schema validation (tests/shipping/test_helm_chart.py) cannot show that the API server admits the
objects (defaulting, cross-field validation, admission) nor what the installed RBAC really
allows. Here the rendered chart is created object by object as cluster
admin, the provisioner's Deployment becomes available (KWOK fakes the pod's readiness; the
container does not run), and the chart's ServiceAccount is asked, through SubjectAccessReviews
answered by the real RBAC authorizer, what it may do: everything the deployer needs, nothing of
what only the job runner may do, and no Secret reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.utils import create_from_dict

from workflow_testkit.helm import NAMESPACE, Document, render, require_helm
from workflow_testkit.kubernetes.cluster import ClusterHandle
from workflow_testkit.kubernetes.stage import ignore_conflict, wait_for

pytestmark = pytest.mark.slow

RELEASE_NAME = "wf-workflow-provisioner"
ACCOUNT = f"system:serviceaccount:{NAMESPACE}:{RELEASE_NAME}"


@pytest.fixture(scope="module")
def installed(
    kubernetes_cluster: ClusterHandle,
) -> Iterator[tuple[client.ApiClient, list[Document]]]:
    documents = render(
        require_helm(),
        # KWOK has no volume provisioner: the variant with an external database and no claim.
        "--set=persistence.enabled=false",
        "--set=secrets.databaseUrl=postgresql+psycopg://provisioner@postgres/provisioner",
    )
    with kubernetes_cluster.api_client() as admin:
        ignore_conflict(
            lambda: client.CoreV1Api(admin).create_namespace(
                client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE))
            )
        )
        for document in documents:
            ignore_conflict(
                lambda document=document: create_from_dict(admin, document, namespace=NAMESPACE)
            )
        yield admin, documents
        rbac = client.RbacAuthorizationV1Api(admin)
        for document in documents:
            name = document["metadata"]["name"]
            if document["kind"] == "ClusterRole":
                rbac.delete_cluster_role(name)
            elif document["kind"] == "ClusterRoleBinding":
                rbac.delete_cluster_role_binding(name)


def test_every_object_of_the_chart_is_admitted(
    installed: tuple[client.ApiClient, list[Document]],
) -> None:
    admin, documents = installed
    kinds = {document["kind"] for document in documents}
    assert {"Deployment", "ClusterRole", "ClusterRoleBinding", "NetworkPolicy"} <= kinds
    apps = client.AppsV1Api(admin)

    def available() -> bool:
        deployment: Any = apps.read_namespaced_deployment(RELEASE_NAME, NAMESPACE)
        return bool(deployment.status.available_replicas == 1)

    wait_for(available, "the provisioner's Deployment to become available", timeout=90)
    pod = (
        client.CoreV1Api(admin)
        .list_namespaced_pod(NAMESPACE, label_selector="app.kubernetes.io/component=provisioner")
        .items[0]
    )
    assert pod.spec.service_account_name == RELEASE_NAME
    assert pod.spec.containers[0].security_context.read_only_root_filesystem is True


def may(admin: client.ApiClient, verb: str, resource: str, **where: str) -> bool:
    """What the real RBAC authorizer answers for the chart's ServiceAccount; `resource` is
    `[group:]resource[/subresource]`."""
    group, _, rest = resource.rpartition(":")
    name, _, subresource = rest.partition("/")
    attributes = client.V1ResourceAttributes(
        verb=verb, group=group, resource=name, subresource=subresource or None, **where
    )
    review = client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(user=ACCOUNT, resource_attributes=attributes)
    )
    answer: Any = client.AuthorizationV1Api(admin).create_subject_access_review(review)
    return bool(answer.status.allowed)


@pytest.mark.parametrize(
    ("verb", "resource", "where"),
    [
        ("create", "namespaces", {}),
        ("delete", "namespaces", {}),
        ("create", "apps:deployments", {"namespace": "wf-alice"}),
        ("update", "networking.k8s.io:networkpolicies", {"namespace": "wf-alice"}),
        ("create", "rbac.authorization.k8s.io:rolebindings", {"namespace": "wf-alice"}),
        ("create", "secrets", {"namespace": "wf-alice"}),
        ("list", "pods", {"namespace": "wf-alice"}),
        (
            "bind",
            "rbac.authorization.k8s.io:clusterroles",
            {"name": f"{RELEASE_NAME}-workflow-api-runner"},
        ),
    ],
)
def test_the_provisioner_may_do_what_the_deployer_does(
    installed: tuple[client.ApiClient, list[Document]],
    verb: str,
    resource: str,
    where: dict[str, str],
) -> None:
    assert may(installed[0], verb, resource, **where)


@pytest.mark.parametrize(
    ("verb", "resource", "where"),
    [
        ("get", "secrets", {"namespace": "wf-alice"}),
        ("list", "secrets", {"namespace": NAMESPACE}),
        ("create", "batch:jobs", {"namespace": "wf-alice"}),
        ("delete", "pods", {"namespace": "wf-alice"}),
        ("get", "pods/log", {"namespace": "wf-alice"}),
        ("bind", "rbac.authorization.k8s.io:clusterroles", {"name": "cluster-admin"}),
        ("escalate", "rbac.authorization.k8s.io:clusterroles", {}),
        ("create", "rbac.authorization.k8s.io:clusterrolebindings", {}),
        ("create", "rbac.authorization.k8s.io:roles", {"namespace": "wf-alice"}),
        ("create", "pods", {"namespace": "wf-alice"}),
    ],
)
def test_the_provisioner_may_not_do_more(
    installed: tuple[client.ApiClient, list[Document]],
    verb: str,
    resource: str,
    where: dict[str, str],
) -> None:
    assert not may(installed[0], verb, resource, **where)
