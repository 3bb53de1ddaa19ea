"""A worker's environment holds exactly what its asset declares (real jobs, local runner)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from workflow_testkit.workflow_api import DUMMY_ASSETS, RunningApi, execute, upload, wait_for_job

# A worker that prints its whole environment (`env` adds nothing of its own) to the job's log.
ENV_DUMP_ASSET: dict[str, Any] = {
    "id": "env-dump",
    "title": "Environment dump",
    "inputs": [
        {
            "id": "settings",
            "kind": "env-file",
            "required": False,
            "variables": {"names": ["GREETING"], "patterns": ["^MODEL_[A-Z0-9_]{1,32}$"]},
        },
        {"id": "note", "kind": "literal", "type": "string", "required": False},
    ],
    "execution": {"image": "busybox", "env": {"MODE": "container"}},
    "local": {"command": ["env"], "env": {"MODE": "provider"}},
}
RUNTIME_NAMES = {"PATH", "HOME"} | {name for name in ("LANG", "LC_ALL", "TZ") if name in os.environ}
WORKSPACE_NAMES = {
    "WORKFLOW_WORKSPACE",
    "WORKFLOW_INPUTS_DIR",
    "WORKFLOW_OUTPUTS_DIR",
    "WORKFLOW_PROGRESS_FILE",
}


@pytest.fixture
def env_api(api_factory: Callable[..., RunningApi], tmp_path: Path) -> RunningApi:
    assets = tmp_path / "assets"
    shutil.copytree(DUMMY_ASSETS, assets)
    (assets / "env-dump.yaml").write_text(yaml.safe_dump(ENV_DUMP_ASSET), encoding="utf-8")
    return api_factory(assets_dir=assets, grants=("env-dump", "input-dummy"))


def _worker_environment(api: RunningApi, inputs: dict[str, Any]) -> dict[str, str]:
    job_id = execute(api.consumer, "env-dump", inputs)
    info = wait_for_job(api.consumer, job_id)
    assert info["status"] == "successful", info
    log = api.consumer.get(f"/jobs/{job_id}/logs", follow_redirects=True)
    name_values = (line.partition("=") for line in log.text.splitlines() if "=" in line)
    environment = {name: value for name, _, value in name_values}
    # bubblewrap sets PWD to the directory it enters, the workspace; nothing else may add names.
    if "PWD" in environment:
        assert environment.pop("PWD") == environment["WORKFLOW_WORKSPACE"]
    return environment


def test_the_worker_sees_only_the_declared_variables(env_api: RunningApi) -> None:
    environment = _worker_environment(
        env_api,
        {"settings": "GREETING=hi\nMODEL_SIZE=7\n", "note": "a note"},
    )
    assert set(environment) == {
        "GREETING",
        "MODEL_SIZE",
        "INPUT_NOTE",
        "MODE",
        *RUNTIME_NAMES,
        *WORKSPACE_NAMES,
    }
    assert environment["GREETING"] == "hi"
    assert environment["MODEL_SIZE"] == "7"
    assert environment["INPUT_NOTE"] == "a note"
    assert environment["MODE"] == "provider"
    assert environment["WORKFLOW_OUTPUTS_DIR"].endswith("/outputs")


def test_without_inputs_the_worker_sees_the_asset_and_the_runtime_only(env_api: RunningApi) -> None:
    environment = _worker_environment(env_api, {})
    assert set(environment) == {"MODE", *RUNTIME_NAMES, *WORKSPACE_NAMES}


@pytest.mark.parametrize(
    "name",
    ["PYTHONPYCACHEPREFIX", "PYTHONVERBOSE", "PYTHONWARNINGS", "BASH_ENV", "HTTP_PROXY",
     "LD_PRELOAD", "FOO", "MODE", "WORKFLOW_OUTPUTS_DIR", "INPUT_NOTE", "PATH"],
)  # fmt: skip
def test_an_env_file_with_an_undeclared_variable_is_refused_naming_it(
    env_api: RunningApi, name: str
) -> None:
    response = env_api.consumer.post(
        "/processes/env-dump/execution",
        json={"inputs": {"settings": f"GREETING=hi\n{name}=/workspace/inputs/x\n"}},
    )
    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["input"] == "settings"
    assert problem["detail"] == (
        f"input 'settings': variable {name} is not one the asset declares "
        "(declared: GREETING, ^MODEL_[A-Z0-9_]{1,32}$)"
    )
    assert env_api.consumer.get("/jobs").json()["jobs"] == []


def test_an_uploaded_env_file_is_held_to_the_same_declaration(env_api: RunningApi) -> None:
    settings = upload(env_api.consumer, b"GREETING=hi\nPYTHONPYCACHEPREFIX=/workspace\n")
    response = env_api.consumer.post(
        "/processes/env-dump/execution", json={"inputs": {"settings": {"href": settings["href"]}}}
    )
    assert response.status_code == 400
    assert "variable PYTHONPYCACHEPREFIX is not one the asset declares" in response.json()["detail"]


def test_the_dummy_assets_declare_what_their_workers_read(env_api: RunningApi) -> None:
    response = env_api.consumer.post(
        "/processes/input-dummy/execution",
        json={"inputs": {"settings": "GREETING=hi\nREPEAT=2\nSHOUT=1\n"}},
    )
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "input 'settings': variable SHOUT is not one the asset declares "
        "(declared: GREETING, REPEAT)"
    )


def test_a_queued_job_whose_asset_now_declares_less_fails_instead_of_running(
    api_factory: Callable[..., RunningApi], tmp_path: Path
) -> None:
    assets = tmp_path / "assets"
    shutil.copytree(DUMMY_ASSETS, assets)
    asset_file = assets / "env-dump.yaml"
    asset_file.write_text(yaml.safe_dump(ENV_DUMP_ASSET), encoding="utf-8")
    first = api_factory(
        "shared", assets_dir=assets, grants=("env-dump", "dummy"), max_running_jobs=1
    )
    busy = execute(first.consumer, "dummy", {"duration": 60})
    wait_for_job(first.consumer, busy, statuses={"running"})
    queued = execute(first.consumer, "env-dump", {"settings": "GREETING=hi\n"})
    assert first.consumer.get(f"/jobs/{queued}").json()["status"] == "accepted"
    first.stop()

    narrower = {**ENV_DUMP_ASSET, "inputs": [{**ENV_DUMP_ASSET["inputs"][0], "variables": None}]}
    asset_file.write_text(yaml.safe_dump(narrower), encoding="utf-8")
    second = api_factory("shared", assets_dir=assets, grants=(), max_running_jobs=1)
    info = wait_for_job(second.consumer, queued)
    assert info["status"] == "failed"
    assert info["message"] == (
        "the job's environment is not what the asset declares: "
        "variable GREETING is not one the asset declares"
    )
