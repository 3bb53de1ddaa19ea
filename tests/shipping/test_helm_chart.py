"""The Helm chart in helm/workflow-provisioner, rendered and linted by the real Helm.

Every rendered manifest is validated against the official schemas of the oldest supported and the
newest Kubernetes (strict), the values schema refuses what cannot work, the ClusterRole equals the
rules the Kubernetes deployer is built from, and the rendered Deployment's environment is accepted
by the provisioner's own Settings.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from provisioner.deployers.kubernetes.rbac import Rule, provisioner_rules, runner_rules
from provisioner.settings import Settings
from workflow_contracts.asset import load_asset
from workflow_testkit.helm import (
    ASSETS,
    CHART,
    CI_VALUES,
    KUBE_VERSION,
    NAMESPACE,
    Document,
    render,
    render_error,
    require_helm,
    run_helm,
)

OLDEST_VERSION = "1.29.0"  # the chart's kubeVersion floor (native sidecars in job pods)
NEWEST_VERSION = kubernetes_validate.latest_version()


@pytest.fixture(scope="module")
def helm() -> Path:
    return require_helm()


def by_kind(documents: list[Document]) -> dict[str, list[Document]]:
    kinds: dict[str, list[Document]] = {}
    for document in documents:
        kinds.setdefault(document["kind"], []).append(document)
    return kinds


def only(documents: list[Document], kind: str) -> Document:
    found = by_kind(documents).get(kind, [])
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


VARIANTS: dict[str, tuple[str, ...]] = {
    "defaults": (),
    "ingress-tls-pdb": (
        "--set=ingress.enabled=true",
        "--set=ingress.className=nginx",
        "--set=ingress.tlsSecret=provisioner-tls",
        "--set=podDisruptionBudget.enabled=true",
        "--set=deployer.ingress.port=30443",
    ),
    "existing-secrets-postgres": (
        "--set=secrets.existingSecret=provisioner-secrets",
        "--set=secrets.adminToken=",
        "--set=signingKey.existingSecret=provisioner-signing-key",
        "--set=persistence.enabled=false",
        "--set=assets.existingConfigMap=my-assets",
    ),
    "own-rbac-existing-claim": (
        "--set=rbac.create=false",
        "--set=serviceAccount.create=false",
        "--set=serviceAccount.name=provisioner",
        "--set=persistence.existingClaim=provisioner-data",
        "--set=networkPolicy.enabled=false",
    ),
}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def variant(request: pytest.FixtureRequest, helm: Path) -> tuple[str, list[Document]]:
    name: str = request.param
    return name, render(helm, *VARIANTS[name])


def test_helm_lint_strict(helm: Path) -> None:
    result = run_helm(
        helm,
        "lint",
        "--strict",
        str(CHART),
        "--kube-version",
        KUBE_VERSION,
        "--values",
        str(CI_VALUES),
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("version", [OLDEST_VERSION, NEWEST_VERSION])
def test_every_rendered_manifest_is_valid(
    variant: tuple[str, list[Document]], version: str
) -> None:
    _, documents = variant
    for document in documents:
        kubernetes_validate.validate(document, version, strict=True)


def test_variants_render_what_they_ask_for(variant: tuple[str, list[Document]]) -> None:
    name, documents = variant
    kinds = set(by_kind(documents))
    always = {"Deployment", "Service"}
    expected = {
        "defaults": always
        | {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Secret", "ConfigMap"}
        | {"PersistentVolumeClaim", "NetworkPolicy"},
        "ingress-tls-pdb": always
        | {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Secret", "ConfigMap"}
        | {"PersistentVolumeClaim", "NetworkPolicy", "Ingress", "PodDisruptionBudget"},
        "existing-secrets-postgres": always
        | {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "NetworkPolicy"},
        "own-rbac-existing-claim": always | {"Secret", "ConfigMap"},
    }[name]
    assert kinds == expected


def test_the_workload_is_locked_down(variant: tuple[str, list[Document]]) -> None:
    _, documents = variant
    deployment = only(documents, "Deployment")
    pod = deployment["spec"]["template"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["spec"]["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert {"livenessProbe", "readinessProbe", "resources"} <= set(container)
    assert container["resources"]["limits"]["memory"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod["metadata"]["labels"].items()
    service = only(documents, "Service")
    assert service["spec"]["selector"] == selector
    for policy in by_kind(documents).get("NetworkPolicy", []):
        assert policy["spec"]["podSelector"]["matchLabels"] == selector
    for budget in by_kind(documents).get("PodDisruptionBudget", []):
        assert budget["spec"]["selector"]["matchLabels"] == selector


def test_secrets_never_appear_in_plain_environment(variant: tuple[str, list[Document]]) -> None:
    _, documents = variant
    (container,) = only(documents, "Deployment")["spec"]["template"]["spec"]["containers"]
    for variable in container["env"]:
        if any(word in variable["name"] for word in ("TOKEN", "KEY", "SECRET", "DATABASE_URL")):
            if variable["name"] in {"PROVISIONER_SIGNING_KEY_FILE", "PROVISIONER_TOKEN_ISSUER"}:
                continue
            if variable["name"] == "PROVISIONER_TOKEN_MAX_LIFETIME_SECONDS":
                continue
            assert "valueFrom" in variable, f"{variable['name']} must come from a Secret"


def environment_of(documents: list[Document], data_dir: Path, assets_dir: Path) -> dict[str, str]:
    """The container's PROVISIONER_* environment with Secret references resolved."""
    secrets = {
        secret["metadata"]["name"]: secret.get("stringData", {})
        for secret in by_kind(documents).get("Secret", [])
    }
    (container,) = only(documents, "Deployment")["spec"]["template"]["spec"]["containers"]
    environment = {}
    for variable in container["env"]:
        if "value" in variable:
            environment[variable["name"]] = variable["value"]
            continue
        reference = variable["valueFrom"]["secretKeyRef"]
        value = secrets.get(reference["name"], {}).get(reference["key"])
        if value is None:
            assert reference.get("optional") is True, f"{variable['name']}: {reference} missing"
            continue
        environment[variable["name"]] = value
    environment["PROVISIONER_DATA_DIR"] = str(data_dir)
    environment["PROVISIONER_ASSETS_DIR"] = str(assets_dir)
    return environment


def test_the_rendered_environment_is_accepted_by_the_provisioner_settings(
    helm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    documents = render(helm)
    known = Settings.variable_names()
    environment = environment_of(documents, tmp_path, tmp_path)
    assert set(environment) <= known, f"unknown settings: {set(environment) - known}"
    for name in [name for name in os.environ if name.startswith("PROVISIONER_")]:
        monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")  # what the kubelet gives a pod
    settings = Settings()  # type: ignore[call-arg]  # from the environment
    assert settings.deployer == "kubernetes"
    assert settings.storage == "s3"
    assert settings.base_url == "https://provisioner.example.org"


def test_the_asset_catalog_holds_valid_assets(helm: Path, tmp_path: Path) -> None:
    config_map = only(render(helm), "ConfigMap")
    assert set(config_map["data"]) == {path.name for path in ASSETS.glob("*.yaml")}
    for name, text in config_map["data"].items():
        path = tmp_path / name
        path.write_text(text)
        assert load_asset(path).id == name.removesuffix(".yaml")


def rule_set(rules: list[dict[str, Any]]) -> set[tuple[str, str, tuple[str, ...], tuple[str, ...]]]:
    """One (group, resource, verbs, names) entry per group and resource of each rule."""
    return {
        (group, resource, tuple(sorted(rule["verbs"])), tuple(rule.get("resourceNames", [])))
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }


def builder_set(rules: tuple[Rule, ...]) -> set[tuple[str, str, tuple[str, ...], tuple[str, ...]]]:
    return {(r.group, r.resource, tuple(sorted(r.verbs)), r.resource_names) for r in rules}


def test_the_cluster_roles_are_exactly_what_the_deployer_and_the_runner_need(helm: Path) -> None:
    documents = render(helm)
    roles = {role["metadata"]["name"]: role for role in by_kind(documents)["ClusterRole"]}
    assert set(roles) == {"wf-workflow-provisioner", "wf-workflow-provisioner-workflow-api-runner"}
    provisioner = roles["wf-workflow-provisioner"]
    runner = roles["wf-workflow-provisioner-workflow-api-runner"]
    assert rule_set(provisioner["rules"]) == builder_set(
        provisioner_rules(runner["metadata"]["name"])
    )
    assert rule_set(runner["rules"]) == builder_set(runner_rules())

    binding = only(documents, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == provisioner["metadata"]["name"]
    (subject,) = binding["subjects"]
    account = only(documents, "ServiceAccount")
    assert (subject["name"], subject["namespace"]) == (account["metadata"]["name"], NAMESPACE)
    (container,) = only(documents, "Deployment")["spec"]["template"]["spec"]["containers"]
    settings = {variable["name"]: variable.get("value") for variable in container["env"]}
    assert settings["PROVISIONER_KUBERNETES_RUNNER_CLUSTER_ROLE"] == runner["metadata"]["name"]
    assert settings["PROVISIONER_KUBERNETES_PROVISIONER_NAMESPACE"] == NAMESPACE


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        (("--set=publicUrl=",), "publicUrl"),
        (("--set=publicUrl=ftp://example.org",), "publicUrl"),
        (("--set=secrets.adminToken=short",), "adminToken"),
        (("--set=edc.dataplaneAddress=both",), "dataplaneAddress"),
        (("--set=storage.endpoint=http://minio:9000",), "endpoint"),
        (("--set=deployer.quota.maxPods=1",), "maxPods"),
        (("--set=replicaCount=3",), "replicaCount"),
    ],
)
def test_the_values_schema_refuses_what_cannot_work(
    helm: Path, arguments: tuple[str, ...], complaint: str
) -> None:
    error = render_error(helm, "--values", str(CI_VALUES), *arguments)
    assert "values don't meet the specifications of the schema" in error
    assert complaint in error


def test_required_values_are_named_when_missing(helm: Path) -> None:
    error = render_error(helm)
    for name in ("publicUrl", "managementUrl", "endpoint"):
        assert name in error


def _endpoint_secret_reference(documents: list[Document]) -> dict[str, Any] | None:
    (container,) = only(documents, "Deployment")["spec"]["template"]["spec"]["containers"]
    for variable in container["env"]:
        if variable["name"] == "PROVISIONER_EDC_ENDPOINT_SECRET":
            reference: dict[str, Any] = variable["valueFrom"]["secretKeyRef"]
            return reference
    return None


def test_the_edc_endpoint_secret_is_always_there_generated_when_not_given(helm: Path) -> None:
    """The provisioner refuses to start without it; a chart that left it out would not run."""
    first, second = render(helm), render(helm)
    generated = [only(d, "Secret")["stringData"]["edc-endpoint-secret"] for d in (first, second)]
    assert all(len(value) >= 32 for value in generated)
    assert generated[0] != generated[1], "random when no Secret exists yet"
    reference = _endpoint_secret_reference(first)
    assert reference is not None and "optional" not in reference
    assert reference["name"] == only(first, "Secret")["metadata"]["name"]

    given = render(helm, "--set=secrets.edcEndpointSecret=given-endpoint-secret-0123")
    assert only(given, "Secret")["stringData"]["edc-endpoint-secret"] == (
        "given-endpoint-secret-0123"
    )
    existing = render(helm, *VARIANTS["existing-secrets-postgres"])
    reference = _endpoint_secret_reference(existing)
    assert reference == {"name": "provisioner-secrets", "key": "edc-endpoint-secret"}


def test_running_the_edc_endpoints_without_a_secret_must_be_asked_for(helm: Path) -> None:
    documents = render(helm, "--set=edc.endpointUnauthenticated=true")
    assert "edc-endpoint-secret" not in only(documents, "Secret")["stringData"]
    assert _endpoint_secret_reference(documents) is None
    (container,) = only(documents, "Deployment")["spec"]["template"]["spec"]["containers"]
    settings = {variable["name"]: variable.get("value") for variable in container["env"]}
    assert settings["PROVISIONER_EDC_ENDPOINT_UNAUTHENTICATED"] == "true"
