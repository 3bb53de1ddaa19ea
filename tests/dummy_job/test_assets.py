"""The asset files load, and they describe what the worker really reads and writes."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from dummy_job import dummy, echo, input_dummy, workspace
from dummy_job.__main__ import COMMANDS
from workflow_contracts import workspace as contract
from workflow_contracts.asset import InputKind, WorkflowAsset, load_asset, load_catalog

DUMMY_JOB = Path(__file__).resolve().parents[2] / "dummy-job"
ASSETS = DUMMY_JOB / "assets"
IMAGE = "ghcr.io/workflow-middle-layer/dummy-job:0.1.0"
WORKERS: dict[str, ModuleType | None] = {
    "dummy": dummy,
    "input-dummy": input_dummy,
    "echo": echo,
    "noop": None,
}


def asset(name: str) -> WorkflowAsset:
    return load_asset(ASSETS / f"{name}.yaml")


def test_the_catalog_holds_one_asset_per_command() -> None:
    catalog = load_catalog(ASSETS)
    assert set(catalog) == set(WORKERS) == set(COMMANDS)


@pytest.mark.parametrize("name", WORKERS)
def test_asset_runs_its_own_subcommand(name: str) -> None:
    definition = asset(name)
    assert definition.id == name
    assert definition.title
    assert definition.description
    assert definition.execution.image == IMAGE
    assert definition.execution.command == ["dummy-job"]
    assert definition.execution.args == [name]
    assert definition.local is not None
    assert definition.local.command == ["dummy-job", name]


@pytest.mark.parametrize("name", WORKERS)
def test_asset_ids_match_what_the_worker_uses(name: str) -> None:
    definition = asset(name)
    module = WORKERS[name]
    expected_inputs = module.INPUT_IDS if module else ()
    expected_outputs = module.OUTPUT_IDS if module else ()
    assert sorted(item.id for item in definition.inputs) == sorted(expected_inputs)
    assert sorted(item.id for item in definition.outputs) == sorted(expected_outputs)


def test_literal_defaults_and_bounds_match_the_worker() -> None:
    duration = asset("dummy").input("duration")
    fail = asset("dummy").input("fail")
    pause = asset("echo").input("pause")
    assert duration is not None and fail is not None and pause is not None
    assert duration.default == dummy.DEFAULT_DURATION
    assert duration.constraints == {"minimum": 0, "maximum": dummy.MAX_DURATION}
    assert fail.default is dummy.DEFAULT_FAIL
    spawn_child = asset("dummy").input("spawn_child")
    assert spawn_child is not None and spawn_child.default is dummy.DEFAULT_SPAWN_CHILD
    assert pause.default == echo.DEFAULT_PAUSE
    assert pause.constraints["maximum"] == echo.MAX_PAUSE
    message = asset("echo").input("message")
    assert message is not None and message.required and message.type == "string"
    assert "format" not in message.constraints


def test_dummy_timeout_covers_the_longest_duration() -> None:
    assert asset("dummy").execution.timeout_seconds > dummy.MAX_DURATION
    assert asset("echo").execution.timeout_seconds > echo.MAX_PAUSE


def test_input_dummy_declares_its_input_kinds_and_sizes() -> None:
    definition = asset("input-dummy")
    kinds = {item.id: item.kind for item in definition.inputs}
    assert kinds == {
        "settings": InputKind.ENV_FILE,
        "dataset": InputKind.ARCHIVE,
        "document": InputKind.FILE,
    }
    for item in definition.inputs:
        assert item.max_size is not None
    dataset = definition.input("dataset")
    document = definition.input("document")
    assert dataset is not None and document is not None
    assert dataset.max_size == document.max_size == 100 * 1024 * 1024
    transformed = definition.output("transformed")
    assert transformed is not None and transformed.delivered_media_type == "application/zip"


def test_worker_uses_the_contract_names() -> None:
    assert workspace.WORKSPACE_ENV == contract.WORKSPACE_ENV
    assert workspace.INPUTS_DIR_ENV == contract.INPUTS_DIR_ENV
    assert workspace.OUTPUTS_DIR_ENV == contract.OUTPUTS_DIR_ENV
    assert workspace.PROGRESS_FILE_ENV == contract.PROGRESS_FILE_ENV
    assert workspace.CONTAINER_WORKSPACE == contract.CONTAINER_WORKSPACE
    assert workspace.LITERALS_FILE == contract.LITERALS_FILE
    for input_id in ("message", "duration", "some-id"):
        assert workspace.literal_env_name(input_id) == contract.literal_env_name(input_id)
