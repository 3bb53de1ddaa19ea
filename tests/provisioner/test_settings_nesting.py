"""The nested settings keep their variable names: every `PROVISIONER_KUBERNETES_<X>` and
`PROVISIONER_S3_<X>` (as the chart, compose and the docs name them) lands in
`settings.kubernetes.<x>` and `settings.s3.<x>`, flat keyword arguments nest the same way, and
the other variables are read as before."""

from __future__ import annotations

import re
import secrets
import typing
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import AnyHttpUrl, SecretStr

from provisioner.deployers.kubernetes.settings import KubernetesSettings
from provisioner.settings import Settings
from provisioner.storage.settings import S3Settings

REPOSITORY = Path(__file__).resolve().parents[2]
DUMMY_ASSETS = REPOSITORY / "dummy-job" / "assets"
DOCUMENTS = [
    REPOSITORY / "helm" / "workflow-provisioner" / "templates" / "_helpers.tpl",
    REPOSITORY / "README.md",
    *sorted((REPOSITORY / "docs").glob("*.md")),
]
S3_DOCUMENTS = [
    REPOSITORY / "helm" / "workflow-provisioner" / "templates" / "deployment.yaml",
    REPOSITORY / "docker-compose.yml",
    REPOSITORY / "README.md",
    *sorted((REPOSITORY / "docs").glob("*.md")),
]


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in [name for name in __import__("os").environ if name.startswith("PROVISIONER_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PROVISIONER_PUBLIC_URL", "http://127.0.0.1:8000")
    monkeypatch.setenv("PROVISIONER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PROVISIONER_ASSETS_DIR", str(DUMMY_ASSETS))
    monkeypatch.setenv("PROVISIONER_ADMIN_TOKEN", secrets.token_urlsafe(32))
    monkeypatch.setenv("PROVISIONER_EDC_ENDPOINT_SECRET", secrets.token_urlsafe(24))
    return monkeypatch


def _sample(annotation: Any, tmp_path: Path) -> tuple[str, Any]:
    """A value of the field's type, as a variable's text and as the field then holds it."""
    if typing.get_origin(annotation) in (typing.Union, __import__("types").UnionType):
        (annotation,) = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    origin = typing.get_origin(annotation)
    if origin is Literal:
        choice = typing.get_args(annotation)[-1]
        return str(choice), choice
    if origin is dict:
        return '{"a.example/key": "value"}', {"a.example/key": "value"}
    if origin is list:
        return '["10.20.0.0/16"]', ["10.20.0.0/16"]
    if annotation is bool:
        return "true", True
    if annotation is int:
        return "7", 7
    if annotation is float:
        return "7.5", 7.5
    if annotation is Path:
        return str(tmp_path / "kubeconfig"), tmp_path / "kubeconfig"
    if annotation is AnyHttpUrl:
        return "http://127.0.0.1:8001/", AnyHttpUrl("http://127.0.0.1:8001/")
    if annotation is SecretStr:
        return "a-sample-secret", SecretStr("a-sample-secret")
    assert annotation is str, annotation
    return "sample-value", "sample-value"


@pytest.mark.parametrize("field", sorted(KubernetesSettings.model_fields))
def test_each_kubernetes_variable_lands_in_its_nested_field(
    field: str, environment: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    text, expected = _sample(KubernetesSettings.model_fields[field].annotation, tmp_path)
    environment.setenv(f"PROVISIONER_KUBERNETES_{field.upper()}", text)

    settings = Settings()  # type: ignore[call-arg]  # from the environment

    assert getattr(settings.kubernetes, field) == expected
    others = set(KubernetesSettings.model_fields) - {field}
    defaults = KubernetesSettings()
    assert all(getattr(settings.kubernetes, name) == getattr(defaults, name) for name in others)


def test_every_documented_kubernetes_variable_is_a_field() -> None:
    documented: set[str] = set()
    for document in DOCUMENTS:
        text = document.read_text()
        documented |= set(re.findall(r"PROVISIONER_KUBERNETES_([A-Z0-9_]+[A-Z0-9])", text))
        if document.suffix == ".tpl":  # the chart's helper writes them without the prefix
            documented |= set(re.findall(r'"KUBERNETES_([A-Z0-9_]+[A-Z0-9])"', text))
    assert len(documented) > 20, documented  # the chart sets most of them
    fields = {name.upper() for name in KubernetesSettings.model_fields}
    assert documented <= fields, sorted(documented - fields)


def documented_s3_variables() -> list[str]:
    documented: set[str] = set()
    for document in S3_DOCUMENTS:
        documented |= set(re.findall(r"PROVISIONER_S3_([A-Z0-9_]+[A-Z0-9])", document.read_text()))
    return sorted(documented)


def test_every_s3_field_is_documented_and_every_documented_s3_variable_is_a_field() -> None:
    documented = set(documented_s3_variables())
    assert documented == {name.upper() for name in S3Settings.model_fields}


@pytest.mark.parametrize("variable", documented_s3_variables())
def test_each_documented_s3_variable_lands_in_its_nested_field(
    variable: str, environment: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    field = variable.lower()
    text, expected = _sample(S3Settings.model_fields[field].annotation, tmp_path)
    environment.setenv(f"PROVISIONER_S3_{variable}", text)

    settings = Settings()  # type: ignore[call-arg]  # from the environment (storage: filesystem)

    assert getattr(settings.s3, field) == expected
    others = set(S3Settings.model_fields) - {field}
    defaults = S3Settings()
    assert all(getattr(settings.s3, name) == getattr(defaults, name) for name in others)


def test_s3_flat_keyword_arguments_nest_like_the_variables(tmp_path: Path) -> None:
    common: dict[str, Any] = {
        "public_url": "http://127.0.0.1:8000",
        "data_dir": tmp_path,
        "assets_dir": DUMMY_ASSETS,
        "admin_token": secrets.token_urlsafe(32),
        "edc_endpoint_unauthenticated": True,
    }
    flat = Settings(**common, s3_bucket="flow", s3_isolation="minio", s3_secure=False)
    nested = Settings(**common, s3={"bucket": "flow", "isolation": "minio", "secure": False})
    both = Settings(**common, s3=S3Settings(bucket="flow", secure=False), s3_isolation="minio")
    assert flat.s3 == nested.s3 == both.s3
    assert (flat.s3.bucket, flat.s3.isolation, flat.s3.secure) == ("flow", "minio", False)
    with pytest.raises(ValueError, match="s3_no_such_setting"):
        Settings(**common, s3_no_such_setting="refused")


def test_the_other_variables_are_read_as_before(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("PROVISIONER_STORAGE_QUOTA", "1000")
    environment.setenv("PROVISIONER_EGRESS_ALLOW_CIDRS", '["10.0.0.0/8"]')
    environment.setenv("PROVISIONER_LOCAL_HOST", "127.0.0.2")
    environment.setenv("PROVISIONER_EDC_TIMEOUT_SECONDS", "3")
    environment.setenv("PROVISIONER_KUBERNETES_NO_SUCH_SETTING", "ignored, as before")
    environment.setenv("PROVISIONER_S3_NO_SUCH_SETTING", "ignored, as before")

    settings = Settings()  # type: ignore[call-arg]

    assert settings.storage_quota == 1000 and settings.egress_allow_cidrs == ["10.0.0.0/8"]
    assert settings.local_host == "127.0.0.2" and settings.edc_timeout_seconds == 3.0
    assert settings.kubernetes == KubernetesSettings()
    assert settings.s3 == S3Settings() and settings.storage == "filesystem"


def test_flat_keyword_arguments_nest_like_the_variables(tmp_path: Path) -> None:
    common: dict[str, Any] = {
        "public_url": "http://127.0.0.1:8000",
        "data_dir": tmp_path,
        "assets_dir": DUMMY_ASSETS,
        "admin_token": secrets.token_urlsafe(32),
        "edc_endpoint_unauthenticated": True,
    }
    flat = Settings(**common, kubernetes_quota_cpu="2", kubernetes_ingress_routing="host")
    nested = Settings(**common, kubernetes={"quota_cpu": "2", "ingress_routing": "host"})
    both = Settings(
        **common, kubernetes=KubernetesSettings(quota_cpu="2"), kubernetes_ingress_routing="host"
    )
    assert flat.kubernetes == nested.kubernetes == both.kubernetes
    assert flat.kubernetes.quota_cpu == "2" and flat.kubernetes.ingress_routing == "host"
    with pytest.raises(ValueError, match="kubernetes_no_such_setting"):
        Settings(**common, kubernetes_no_such_setting="refused")
