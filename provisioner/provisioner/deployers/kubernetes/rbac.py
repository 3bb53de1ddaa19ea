"""The two ClusterRoles the provisioner's installation needs, as data and as pure builders.

`provisioner_rules()` is what the Kubernetes deployer calls, derived from the table that drives
its writes (`kubernetes_api.KINDS`) plus the few reads and deletes it makes: nothing more. The Helm
chart renders the same data (`cluster_roles()`), and a test holds the two equal.

Why the workflow-api's rules are a ClusterRole bound per namespace, not a Role per namespace:
Kubernetes lets a client create a Role only with rules it holds itself (in that namespace), or
with `escalate` on roles; and a RoleBinding only to a role whose rules it holds, or with `bind`
on that role. The choices were:

1. hold the job runner's rules (create Jobs, delete Pods, read logs, ...) cluster-wide, so the
   provisioner could run Jobs in any namespace by itself;
2. `escalate` on roles: RBAC cannot confine it to one Role name on create (the name is not part
   of a create's authorisation), so the provisioner could write any Role anywhere and, with
   `bind`, grant it: any namespaced permission in any namespace;
3. `bind` on the one ClusterRole `workflow-api-runner` (restricted by resourceNames, which works
   for bind), and a RoleBinding to it in each consumer namespace.

The provisioner takes 3: it never holds the job rules, it cannot widen them (the ClusterRole is
the chart's, from `ROLE_RULES`), and it needs no `escalate`. What none of the three prevents: a
client that creates namespaces and bindings anywhere can bind that fixed set in any namespace,
even to itself; RBAC cannot scope a ClusterRoleBinding to namespaces that do not exist yet.

Secrets: the deployer creates and updates them, never reads them, so the provisioner can write
but not read the Secrets of other namespaces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubernetes import client

from provisioner.deployers.kubernetes.api import KINDS
from provisioner.deployers.kubernetes.spec import ROLE_RULES, RUNNER_CLUSTER_ROLE

PROVISIONER_CLUSTER_ROLE = "workflow-provisioner"
RBAC_GROUP = "rbac.authorization.k8s.io"


@dataclass(frozen=True)
class Rule:
    group: str
    resource: str
    verbs: tuple[str, ...]
    resource_names: tuple[str, ...] = ()

    def as_policy_rule(self) -> client.V1PolicyRule:
        return client.V1PolicyRule(
            api_groups=[self.group],
            resources=[self.resource],
            verbs=list(self.verbs),
            resource_names=list(self.resource_names) or None,
        )


# Besides writing its objects (KINDS), the deployer:
EXTRA_VERBS: dict[tuple[str, str], frozenset[str]] = {
    ("", "namespaces"): frozenset({"delete"}),  # removes a consumer (and waits for the 404: get)
    ("", "pods"): frozenset({"list"}),  # says why a Deployment does not become available
}


def provisioner_rules(runner_cluster_role: str = RUNNER_CLUSTER_ROLE) -> tuple[Rule, ...]:
    """Exactly the verbs the deployer uses, per resource, sorted; plus `bind` on the runner's
    ClusterRole so that it can grant it without holding it."""
    verbs: dict[tuple[str, str], set[str]] = {}
    for kind in KINDS.values():
        verbs.setdefault((kind.group, kind.resource), set()).update(kind.verbs)
    for key, extra in EXTRA_VERBS.items():
        verbs.setdefault(key, set()).update(extra)
    rules = [Rule(group, resource, tuple(sorted(v))) for (group, resource), v in verbs.items()]
    rules.sort(key=lambda rule: (rule.group, rule.resource))
    bind = Rule(RBAC_GROUP, "clusterroles", ("bind",), (runner_cluster_role,))
    return (*rules, bind)


def runner_rules() -> tuple[Rule, ...]:
    """The workflow-api's job runner, granted in its own namespace only (`ROLE_RULES`)."""
    return tuple(Rule(group, resource, verbs) for group, resource, verbs in ROLE_RULES)


def _cluster_role(name: str, rules: tuple[Rule, ...], component: str) -> client.V1ClusterRole:
    labels = {
        "app.kubernetes.io/name": "workflow-provisioner",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "workflow-middle-layer",
    }
    return client.V1ClusterRole(
        api_version=f"{RBAC_GROUP}/v1",
        kind="ClusterRole",
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        rules=[rule.as_policy_rule() for rule in rules],
    )


def make_provisioner_cluster_role(
    name: str = PROVISIONER_CLUSTER_ROLE, runner_cluster_role: str = RUNNER_CLUSTER_ROLE
) -> client.V1ClusterRole:
    """Bound (ClusterRoleBinding) to the provisioner's ServiceAccount: nothing else."""
    return _cluster_role(name, provisioner_rules(runner_cluster_role), "provisioner")


def make_runner_cluster_role(name: str = RUNNER_CLUSTER_ROLE) -> client.V1ClusterRole:
    """Bound to nobody cluster-wide; each consumer's RoleBinding grants it in its namespace."""
    return _cluster_role(name, runner_rules(), "workflow-api-runner")


def cluster_roles() -> list[dict[str, Any]]:
    """Both ClusterRoles as plain documents, for the chart and its test."""
    api = client.ApiClient()
    return [
        api.sanitize_for_serialization(role)
        for role in (make_provisioner_cluster_role(), make_runner_cluster_role())
    ]
