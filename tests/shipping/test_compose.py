"""docker-compose.yml: valid Compose, and wired to what exists in this repository.

Checked without a Docker engine: the file against the Compose Specification's JSON schema
(vendored, compose_spec/README.md), builds against our Dockerfiles, ports, bind mounts, every
PROVISIONER_* variable against the provisioner's Settings (and the whole environment through its
validation), every EDC variable against the connector's properties file, healthchecks behind
`depends_on: service_healthy`. The slow test starts a real EDC runtime with a compose service's
environment and runs that service's healthcheck command against it.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from dockerfile_lint.parser import parse
from dockerfile_lint.rules import DOCKERFILES, REPOSITORY
from provisioner.settings import Settings as ProvisionerSettings
from tests.shipping.containers import ContainerOnHost, in_private_network, private_network_reason
from workflow_testkit.edc.runtimes import require_edc_runtime

COMPOSE = REPOSITORY / "docker-compose.yml"
SPEC = Path(__file__).with_name("compose_spec")
UPSTREAM_BLOBS = {
    "compose-spec.json": "5db97d0fbbb8e7fbedea0bb5fdb3fe0e93b0e4b1",
    "LICENSE": "b70e4ca0efcc4e201c44e4fd9daa9e5cb55aa7f2",
}
EDC_SERVICES = ("provider", "consumer")
INTERPOLATION = re.compile(
    r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
)


def interpolate(value: Any, environment: Mapping[str, str] | None = None) -> Any:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `$$`."""
    environment = environment or {}
    if isinstance(value, dict):
        return {k: interpolate(v, environment) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, environment) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        current = environment.get(name)
        if op in (":-", "-") and (current is None or (op == ":-" and current == "")):
            return arg
        if op in (":?", "?") and not current:
            raise KeyError(f"{name} is required: {arg}")
        if current is None:
            raise KeyError(f"{name} is not set and has no default")
        return current

    return INTERPOLATION.sub(one, value.replace("$$", "\0")).replace("\0", "$")


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


def services() -> dict[str, Any]:
    resolved: dict[str, Any] = interpolate(compose())["services"]
    return resolved


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    given = service.get("environment", {})
    if isinstance(given, list):
        given = dict(item.split("=", 1) for item in given)
    return {k: str(v) for k, v in given.items()}


def properties(path: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", "!")) and "=" in line:
            key, _, value = line.partition("=")
            found[key.strip()] = value.strip()
    return found


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """container path -> repository path of the service's bind mounts."""
    mounts: dict[str, Path] = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume.get("source", ""), volume["target"]
        if source.startswith((".", "/")):
            mounts[target] = (REPOSITORY / source).resolve()
    return mounts


def connector_properties(name: str) -> dict[str, str]:
    service = services()[name]
    config = parse(DOCKERFILES["edc"]).final.environment["EDC_FS_CONFIG"]
    return properties(bind_mounts(service)[config])


def published(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(host ip, host port, container port) of each published port."""
    found = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            found.append((port.get("host_ip", ""), int(port["published"]), int(port["target"])))
            continue
        parts = str(port).split(":")
        host_ip = parts[0] if len(parts) == 3 else ""
        found.append((host_ip, int(parts[-2]), int(parts[-1])))
    return found


def healthcheck_of(name: str, service: dict[str, Any]) -> list[str] | None:
    """The service's healthcheck command (exec form), from compose or from its Dockerfile."""
    check = service.get("healthcheck")
    if check is not None and not check.get("disable"):
        test = check["test"]
        assert test[0] == "CMD", f"{name}: healthcheck not in exec form"
        return list(test[1:])
    build = service.get("build")
    if build is not None:
        return parse(REPOSITORY / build["context"] / build["dockerfile"]).healthcheck
    return None


# --- the file itself ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(UPSTREAM_BLOBS))
def test_vendored_schema_is_byte_identical_to_upstream(name: str) -> None:
    data = (SPEC / name).read_bytes()
    blob = hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()
    assert blob == UPSTREAM_BLOBS[name]


def validator() -> jsonschema.protocols.Validator:
    schema = yaml.safe_load((SPEC / "compose-spec.json").read_text())
    # "$schema" says draft-07 (as https://json-schema.org/draft-07/schema, without the "#"
    # jsonschema looks its validators up by)
    assert "draft-07" in schema["$schema"]
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_compose_file_is_valid_compose() -> None:
    errors = sorted(validator().iter_errors(compose()), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
    interpolated = interpolate(compose())
    assert not list(validator().iter_errors(interpolated))


def test_schema_catches_what_compose_would_refuse() -> None:
    broken = compose()
    broken["services"]["provisioner"]["depends_on"]["postgres"]["condition"] = "service_ready"
    broken["services"]["minio"]["helthcheck"] = {"test": ["CMD", "true"]}
    messages = [e.message for e in validator().iter_errors(broken)]
    assert any("service_ready" in m for m in messages), messages
    assert any("helthcheck" in m for m in messages), messages


def test_every_variable_has_a_default_so_up_needs_no_env_file() -> None:
    assert interpolate(compose(), {})  # raises KeyError on a variable without default
    names = set(INTERPOLATION.findall(COMPOSE.read_text()))
    assert names  # the secrets can be overridden
    for name, op, _ in names:
        assert op in (":-", "-"), f"${{{name}}} has no default"


# --- images and builds --------------------------------------------------------------------------


def test_built_services_use_our_dockerfiles_from_the_repository_root() -> None:
    built = {name: s for name, s in services().items() if "build" in s}
    assert set(built) == {"provisioner", *EDC_SERVICES}
    for name, service in built.items():
        build = service["build"]
        context = (REPOSITORY / build["context"]).resolve()
        assert context == REPOSITORY, f"{name}: the build context is the repository root"
        dockerfile = (context / build["dockerfile"]).resolve()
        assert dockerfile in DOCKERFILES.values(), f"{name}: {dockerfile}"
        parsed = parse(dockerfile)
        declared = {k for stage in parsed.stages for k in stage.arguments}
        assert set(build.get("args", {})) <= declared, f"{name}: unknown build args"
        version = parsed.labels["org.opencontainers.image.version"]
        version = build.get("args", {}).get("EDC_VERSION", version)
        image = next(k for k, v in DOCKERFILES.items() if v == dockerfile)
        assert service["image"] == f"ghcr.io/workflow-middle-layer/{image}:{version}"


def test_pulled_images_are_pinned_to_a_release() -> None:
    for name, service in services().items():
        if "build" in service:
            continue
        image = service["image"]
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        assert tag and tag != "latest", f"{name}: {image}"
        assert re.search(r"^\d+\.\d+|RELEASE\.\d{4}-\d\d-\d\dT", tag), f"{name}: {image}"


# --- ports, volumes, health ---------------------------------------------------------------------


def test_host_ports_are_unique_and_on_loopback() -> None:
    seen: dict[tuple[str, int], str] = {}
    for name, service in services().items():
        for host_ip, host_port, _ in published(service):
            assert host_ip == "127.0.0.1", f"{name}: {host_port} published beyond this machine"
            assert (host_ip, host_port) not in seen, f"{name} and {seen[(host_ip, host_port)]}"
            seen[(host_ip, host_port)] = name


def test_published_ports_are_ports_the_services_listen_on() -> None:
    all_services = services()
    provisioner = parse(DOCKERFILES["provisioner"])
    assert [c for _, _, c in published(all_services["provisioner"])] == provisioner.exposed_ports
    for name in EDC_SERVICES:
        listening = {
            int(v)
            for k, v in connector_properties(name).items()
            if re.fullmatch(r"web\.http(\.\w+)?\.port", k)
        }
        for _, _, container_port in published(all_services[name]):
            assert container_port in listening, f"{name}: nothing listens on {container_port}"


def test_bind_mount_sources_exist_and_named_volumes_are_declared() -> None:
    declared = set(compose().get("volumes", {}))
    for name, service in services().items():
        for target, source in bind_mounts(service).items():
            assert source.exists(), f"{name}: {source} does not exist"
            assert source.is_relative_to(REPOSITORY), f"{name}: {source} is outside the repository"
            assert target.startswith("/")
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if not source.startswith((".", "/")):
                assert source in declared, f"{name}: volume {source} not declared"


def test_waited_for_services_have_healthchecks() -> None:
    all_services = services()
    for name, service in all_services.items():
        if "tools" in service.get("profiles", []):
            continue
        assert healthcheck_of(name, service), f"{name} has no healthcheck"
        for target, condition in service.get("depends_on", {}).items():
            assert target in all_services
            assert condition["condition"] == "service_healthy", f"{name} -> {target}"


def test_our_services_run_read_only_without_capabilities() -> None:
    all_services = services()
    for name in ("provisioner", *EDC_SERVICES):
        service = all_services[name]
        assert service["read_only"] is True
        assert "/tmp" in service["tmpfs"]
        assert service["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in service["security_opt"]
    provisioner = all_services["provisioner"]
    volumes = {v.split(":")[1] for v in provisioner["volumes"]}
    assert set(parse(DOCKERFILES["provisioner"]).volumes) <= volumes  # its data survives `down`


# --- settings and wiring ------------------------------------------------------------------------


def test_provisioner_variables_are_settings() -> None:
    fields = ProvisionerSettings.variable_names()
    for name in environment_of(services()["provisioner"]):
        assert name.startswith("PROVISIONER_"), name
        assert name in fields, f"{name} is no setting"


def test_provisioner_environment_passes_settings_validation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = services()["provisioner"]
    container = ContainerOnHost(
        parse(DOCKERFILES["provisioner"]), tmp_path, mounts=bind_mounts(service)
    )
    for name in [n for n in os.environ if n.startswith("PROVISIONER_")]:
        monkeypatch.delenv(name)
    for name, value in container.environment(environment_of(service)).items():
        if name.startswith("PROVISIONER_"):
            monkeypatch.setenv(name, value)
    settings = ProvisionerSettings()
    assert settings.storage == "s3" and settings.s3.secure is False
    assert settings.deployer == "local"
    assert settings.assets_dir == REPOSITORY / "dummy-job" / "assets"  # the bind mount
    assert settings.database_url is not None and settings.database_url.startswith(
        "postgresql+psycopg://"
    )


def test_provisioner_reaches_postgres_minio_and_the_provider_as_configured() -> None:
    all_services = services()
    settings = environment_of(all_services["provisioner"])
    database = urlsplit(settings["PROVISIONER_DATABASE_URL"])
    postgres = environment_of(all_services["postgres"])
    assert database.hostname == "postgres" and database.port == 5432
    assert database.username == postgres["POSTGRES_USER"]
    assert database.password == postgres["POSTGRES_PASSWORD"]
    assert database.path == "/" + postgres["POSTGRES_DB"]
    assert "--dbname" in (check := all_services["postgres"]["healthcheck"]["test"])
    assert check[check.index("--dbname") + 1] == postgres["POSTGRES_DB"]

    minio = environment_of(all_services["minio"])
    assert settings["PROVISIONER_S3_ENDPOINT"] == "minio:9000"  # MinIO's S3 port
    assert settings["PROVISIONER_S3_ACCESS_KEY"] == minio["MINIO_ROOT_USER"]
    assert settings["PROVISIONER_S3_SECRET_KEY"] == minio["MINIO_ROOT_PASSWORD"]
    assert len(minio["MINIO_ROOT_PASSWORD"]) >= 8  # MinIO refuses to start otherwise

    management = urlsplit(settings["PROVISIONER_EDC_MANAGEMENT_URL"])
    provider = connector_properties("provider")
    assert management.hostname == "provider"
    assert management.port == int(provider["web.http.management.port"])
    assert management.path == provider["web.http.management.path"]
    assert (
        settings["PROVISIONER_EDC_MANAGEMENT_API_KEY"] == provider["web.http.management.auth.key"]
    )

    public = urlsplit(settings["PROVISIONER_PUBLIC_URL"])
    assert public.hostname == "provisioner" == settings["PROVISIONER_LOCAL_PUBLIC_HOST"]
    assert public.port in parse(DOCKERFILES["provisioner"]).exposed_ports
    client = environment_of(all_services["client"])
    assert client["P"] == settings["PROVISIONER_PUBLIC_URL"]
    assert client["ADMIN"] == f"Authorization: Bearer {settings['PROVISIONER_ADMIN_TOKEN']}"


@pytest.mark.parametrize("name", EDC_SERVICES)
def test_edc_variables_override_properties_of_the_mounted_file(name: str) -> None:
    service = services()[name]
    config = parse(DOCKERFILES["edc"]).final.environment["EDC_FS_CONFIG"]
    assert config in bind_mounts(service), f"{name}: nothing mounted at EDC_FS_CONFIG"
    known = connector_properties(name)
    assert known["edc.participant.id"] == name
    for variable, value in environment_of(service).items():
        key = variable.lower().replace("_", ".")  # how EDC reads the environment
        assert key in known, f"{name}: {variable} sets no property of the file"
        if value.startswith("http"):
            url = urlsplit(value)
            assert url.hostname == name, f"{name}: {variable} names another host"
            assert str(url.port) in known.values(), (
                f"{name}: {variable}: nothing listens on {url.port}"
            )
            assert urlsplit(known[key]).port == url.port and urlsplit(known[key]).path == url.path
    health = healthcheck_of(name, service)
    assert health is not None and f"/dev/tcp/127.0.0.1/{known['web.http.port']}" in health[-1]
    assert f"GET {known['web.http.path']}/check/health" in health[-1]


# --- a real connector with a compose service's environment --------------------------------------


@pytest.mark.slow
def test_provider_starts_with_its_compose_environment_and_is_healthy(tmp_path: Path) -> None:
    """The consumer differs only in values that the test above checks against its properties
    file; one JVM (10-40 s on two shared cores) is enough."""
    name = "provider"
    if (reason := private_network_reason()) is not None:
        if os.environ.get("WORKFLOW_TESTS_REQUIRE_EDC") == "1":  # as CI: no EDC test skipped
            pytest.fail(f"WORKFLOW_TESTS_REQUIRE_EDC=1 but no private network namespace: {reason}")
        pytest.skip(f"needs a private network namespace: {reason}")
    edc_libraries = require_edc_runtime("0.18.0")  # CI builds it: .ci/build-edc.sh
    all_services = services()
    service = all_services[name]
    assert service["build"]["args"]["EDC_VERSION"] == "0.18.0"
    mounts = {"/opt/edc/lib": edc_libraries, **bind_mounts(service)}
    container = ContainerOnHost(parse(DOCKERFILES["edc"]), tmp_path, mounts=mounts)
    environment = container.environment(environment_of(service))
    known = connector_properties(name)
    management = (
        f"http://127.0.0.1:{known['web.http.management.port']}{known['web.http.management.path']}"
    )
    key = environment_of(all_services["provisioner"])["PROVISIONER_EDC_MANAGEMENT_API_KEY"]
    query = '{"@context": {"@vocab": "https://w3id.org/edc/v0.0.1/ns/"}, "@type": "QuerySpec"}'
    health = healthcheck_of(name, service)
    assert health is not None
    run = {"argv": health, "env": environment, "cwd": str(container.cwd)}
    job = {
        "server": {
            "argv": container.argv(container.dockerfile.command),
            "env": environment,
            "cwd": str(container.cwd),
        },
        "ready_url": f"http://127.0.0.1:{known['web.http.port']}{known['web.http.path']}/check/health",
        "ready_timeout": 150,
        "probes": [
            {
                "url": f"{management}/v3/assets/request",
                "method": "POST",
                "headers": {"x-api-key": key, "Content-Type": "application/json"},
                "body": query,
            },
            {
                "url": f"{management}/v3/assets/request",
                "method": "POST",
                "headers": {"x-api-key": "not-the-key", "Content-Type": "application/json"},
                "body": query,
            },
        ],
        "commands": [run],
        "commands_after_stop": [run],
    }
    result = in_private_network(job, timeout=240)
    assert result["ready"], result["server_output"]
    with_key, without = result["probes"]
    assert with_key["status"] == 200, with_key
    assert without["status"] == 401, without
    assert result["commands"][0]["returncode"] == 0, result["commands"][0]["output"]
    assert result["commands_after_stop"][0]["returncode"] != 0
