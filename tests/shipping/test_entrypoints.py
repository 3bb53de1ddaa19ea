"""Each image's own ENTRYPOINT + CMD, read from its Dockerfile, run on this machine.

The command, environment (ENV of the image, paths mapped, see containers.py) and working directory
are the image's; only the settings without a default are added, as `docker run -e` would. The two
servers run in a private network namespace, so they bind the image's very address and port, and
the Dockerfile's HEALTHCHECK command is run against them there (and must fail once they stop).
Not covered: the image build itself (no Docker engine here); `/opt/venv` is the project's venv.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from dockerfile_lint.parser import parse
from dockerfile_lint.rules import DOCKERFILES, REPOSITORY
from provisioner.settings import Settings as ProvisionerSettings
from provisioner.tokens.signing_key import SigningKey
from tests.shipping.containers import ContainerOnHost, in_private_network, private_network_reason
from workflow_api.settings import Settings as WorkflowApiSettings
from workflow_contracts.tokens import CONSUMER_SCOPE

WALKTHROUGH = Path(__file__).with_name("walkthrough.py")
CLIENT_SESSION_MARKER = "tests/shipping/test_entrypoints.py runs the next block"


def client_session() -> str:
    """The README's shell block for the compose stack's `client` container."""
    text = (REPOSITORY / "README.md").read_text()
    assert CLIENT_SESSION_MARKER in text, "the README's client session is gone"
    match = re.search(r"```sh\n(.*?)```", text.split(CLIENT_SESSION_MARKER, 1)[1], re.S)
    assert match, "no ```sh block after the marker in README.md"
    return match.group(1)


needs_private_network = pytest.mark.skipif(
    private_network_reason() is not None,
    reason=f"needs a private network namespace: {private_network_reason()}",
)


def required_settings(
    settings: type[Any], prefix: str, image_environment: dict[str, str]
) -> set[str]:
    """Settings without a default that the image's ENV does not already give."""
    required = {
        f"{prefix}{name.upper()}" for name, f in settings.model_fields.items() if f.is_required()
    }
    return required - set(image_environment)


def server_job(
    container: ContainerOnHost,
    environment: dict[str, str],
    ready_path: str,
    probes: list[dict[str, Any]],
) -> dict[str, Any]:
    dockerfile = container.dockerfile
    command = dockerfile.command
    port = int(command[command.index("--port") + 1])
    health = dockerfile.healthcheck
    assert health is not None
    base = f"http://127.0.0.1:{port}"
    run = {"env": environment, "cwd": str(container.cwd)}
    return {
        "server": {"argv": container.argv(command), **run},
        "ready_url": base + ready_path,
        "ready_timeout": 60,
        "probes": [{**p, "url": base + p["path"]} for p in probes],
        "commands": [{"argv": container.argv(health), **run}],
        "commands_after_stop": [{"argv": container.argv(health), **run}],
    }


def assert_served(result: dict[str, Any]) -> None:
    assert result["ready"], result["server_output"]
    health, after_stop = result["commands"][0], result["commands_after_stop"][0]
    assert health["returncode"] == 0, health["output"]
    assert after_stop["returncode"] not in (0, None), "the HEALTHCHECK passes with no server"
    # SIGTERM: a clean stop (uvicorn re-raises the signal once it has shut down)
    assert result["server_returncode"] in (0, -15), result["server_output"]
    assert "Application shutdown complete" in result["server_output"]


@needs_private_network
def test_provisioner_serve_starts_with_the_image_environment_and_three_settings(
    tmp_path: Path,
) -> None:
    container = ContainerOnHost(parse(DOCKERFILES["provisioner"]), tmp_path)
    image_environment = container.dockerfile.final.environment
    needed = required_settings(ProvisionerSettings, "PROVISIONER_", image_environment)
    assert needed == {"PROVISIONER_PUBLIC_URL", "PROVISIONER_ADMIN_TOKEN"}
    token = secrets.token_urlsafe(32)
    environment = container.environment(
        {
            "PROVISIONER_PUBLIC_URL": "http://127.0.0.1:8000",
            "PROVISIONER_ADMIN_TOKEN": token,
            # not a required field, but required by the settings' check (see test_edc_endpoint)
            "PROVISIONER_EDC_ENDPOINT_SECRET": secrets.token_urlsafe(24),
        }
    )
    admin = {"Authorization": f"Bearer {token}"}
    job = server_job(
        container,
        environment,
        "/healthz",
        [{"path": "/readyz"}, {"path": "/admin/consumers", "headers": admin}, {"path": "/metrics"}],
    )
    result = in_private_network(job)
    assert_served(result)
    readyz, consumers, metrics = result["probes"]
    assert readyz["status"] == 200, readyz
    assert consumers["status"] == 200 and json.loads(consumers["body"]) == {"consumers": []}
    assert metrics["status"] == 200
    data = Path(container.host_path("/data"))
    assert (data / "provisioner.db").exists()  # SQLite by default, in the image's VOLUME
    assert "invalid settings" not in result["server_output"]


@needs_private_network
def test_provisioner_image_runs_a_consumer_and_its_job_with_the_local_deployer(
    tmp_path: Path,
) -> None:
    """What docker-compose.yml does: workflow-apis on all interfaces of the container, the
    example workers from the image's venv, everything written under the image's VOLUME."""
    container = ContainerOnHost(parse(DOCKERFILES["provisioner"]), tmp_path)
    token = secrets.token_urlsafe(32)
    environment = container.environment(
        {
            "PROVISIONER_PUBLIC_URL": "http://127.0.0.1:8000",
            "PROVISIONER_ADMIN_TOKEN": token,
            "PROVISIONER_EDC_ENDPOINT_SECRET": secrets.token_urlsafe(24),
            "PROVISIONER_LOCAL_HOST": "0.0.0.0",
            "PROVISIONER_LOCAL_PUBLIC_HOST": "127.0.0.1",
        }
    )
    job = server_job(container, environment, "/healthz", [])
    walkthrough = [sys.executable, str(WALKTHROUGH), "http://127.0.0.1:8000", token]
    job["commands"].append(
        {"argv": walkthrough, "env": environment, "cwd": str(tmp_path), "timeout": 150}
    )
    result = in_private_network(job, timeout=240)
    assert_served(result)
    walked = result["commands"][1]
    assert walked["returncode"] == 0, walked["output"] + result["server_output"]
    seen = json.loads(walked["output"].strip().splitlines()[-1])
    assert seen["job_status"] == "successful"
    assert seen["result"] == "hello"
    assert "echo" in seen["processes"]
    assert seen["endpoint"].startswith("http://127.0.0.1:")
    data = Path(container.host_path("/data"))
    assert not [p for p in (data / "consumers").iterdir() if not p.name.startswith(".")]


@needs_private_network
@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl, as the client container")
def test_readme_client_session_runs_against_the_provisioner_image(tmp_path: Path) -> None:
    container = ContainerOnHost(parse(DOCKERFILES["provisioner"]), tmp_path)
    token = secrets.token_urlsafe(32)
    environment = container.environment(
        {
            "PROVISIONER_PUBLIC_URL": "http://127.0.0.1:8000",
            "PROVISIONER_ADMIN_TOKEN": token,
            "PROVISIONER_EDC_ENDPOINT_SECRET": secrets.token_urlsafe(24),
            "PROVISIONER_LOCAL_HOST": "0.0.0.0",
            "PROVISIONER_LOCAL_PUBLIC_HOST": "127.0.0.1",
        }
    )
    job = server_job(container, environment, "/healthz", [])
    client = {  # what docker-compose.yml gives the client container
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "P": "http://127.0.0.1:8000",
        "ADMIN": f"Authorization: Bearer {token}",
    }
    session = ["sh", "-eu", "-c", client_session()]
    job["commands"].append({"argv": session, "env": client, "cwd": str(tmp_path), "timeout": 120})
    result = in_private_network(job, timeout=240)
    assert_served(result)
    session_result = result["commands"][1]
    assert session_result["returncode"] == 0, session_result["output"] + result["server_output"]
    lines = session_result["output"].splitlines()
    assert lines[0].startswith("http://127.0.0.1:")  # alice's endpoint
    assert "hello" in lines
    assert '"revokedGrants":1' in lines[-1]


@needs_private_network
def test_workflow_api_serve_starts_with_the_image_environment_and_its_identity(
    tmp_path: Path,
) -> None:
    container = ContainerOnHost(parse(DOCKERFILES["workflow-api"]), tmp_path)
    needed = required_settings(
        WorkflowApiSettings, "WORKFLOW_API_", container.dockerfile.final.environment
    )
    # what the deployers set per consumer (plus a JWKS source, which has no default either)
    assert needed == {
        "WORKFLOW_API_CONSUMER_ID",
        "WORKFLOW_API_PUBLIC_URL",
        "WORKFLOW_API_TOKEN_AUDIENCE",
    }
    key = SigningKey.generate()
    jwks = key.write_jwks(tmp_path / "jwks.json")
    environment = container.environment(
        {
            "WORKFLOW_API_CONSUMER_ID": "alice",
            "WORKFLOW_API_PUBLIC_URL": "http://127.0.0.1:8080",
            "WORKFLOW_API_TOKEN_AUDIENCE": "workflow-api/alice",
            "WORKFLOW_API_TOKEN_ISSUER": "test",
            "WORKFLOW_API_JWKS_FILE": str(jwks),
        }
    )
    token = key.mint(
        issuer="test", subject="alice", audience="workflow-api/alice", scope=CONSUMER_SCOPE
    )
    job = server_job(
        container,
        environment,
        "/conformance",
        [
            {"path": "/conformance"},
            {"path": "/processes", "headers": {"Authorization": f"Bearer {token}"}},
        ],
    )
    result = in_private_network(job)
    assert_served(result)
    conformance, processes = result["probes"]
    assert "conformsTo" in json.loads(conformance["body"])
    assert processes["status"] == 200, processes  # the image's catalog loaded, the token accepted


def run_once(
    container: ContainerOnHost, arguments: list[str], given: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        container.argv(arguments),
        env=container.environment(given),
        cwd=container.cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_data_sidecar_default_command_explains_itself(tmp_path: Path) -> None:
    container = ContainerOnHost(parse(DOCKERFILES["data-sidecar"]), tmp_path)
    done = run_once(container, container.dockerfile.command)
    assert container.dockerfile.command == ["data-sidecar", "--help"]
    assert done.returncode == 0, done.stderr
    assert "stage-in" in done.stdout and "push-out" in done.stdout


def test_data_sidecar_without_a_manifest_says_so_with_exit_code_2(tmp_path: Path) -> None:
    container = ContainerOnHost(parse(DOCKERFILES["data-sidecar"]), tmp_path)
    entrypoint = container.dockerfile.command[:1]
    done = run_once(container, [*entrypoint, "stage-in"])
    assert done.returncode == 2, done.stdout + done.stderr
    assert "manifest" in done.stderr.lower()


@pytest.mark.parametrize("asset", ["noop", "echo"])
def test_dummy_job_runs_each_asset_command_in_its_workspace(tmp_path: Path, asset: str) -> None:
    container = ContainerOnHost(parse(DOCKERFILES["dummy-job"]), tmp_path)
    execution = yaml.safe_load((REPOSITORY / "dummy-job" / "assets" / f"{asset}.yaml").read_text())[
        "execution"
    ]
    # Kubernetes: the asset's command replaces the ENTRYPOINT, its args the CMD.
    assert execution["command"] == container.dockerfile.command
    done = run_once(
        container, [*execution["command"], *execution["args"]], {"INPUT_MESSAGE": "hello"}
    )
    assert done.returncode == 0, done.stdout + done.stderr
    workspace = Path(container.host_path("/workspace"))
    assert container.cwd == workspace
    if asset == "echo":
        assert (workspace / "outputs" / "echo").read_text() == "hello"
