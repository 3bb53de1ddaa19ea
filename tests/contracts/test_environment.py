"""The worker's environment: an allow-list declared by the asset, one rule for every runner."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from workflow_contracts.asset import AssetInput, WorkflowAsset
from workflow_contracts.env_names import check_declared_pattern
from workflow_contracts.environment import (
    UndeclaredVariableError,
    check_job_variables,
    env_file_variables,
    literal_variables,
    worker_environment,
)
from workflow_contracts.workspace import parse_env_file

SETTINGS = AssetInput.model_validate(
    {
        "id": "settings",
        "kind": "env-file",
        "variables": {"names": ["GREETING", "REPEAT"], "patterns": ["^MODEL_[A-Z0-9_]{1,32}$"]},
    }
)
DURATION = AssetInput.model_validate({"id": "duration", "kind": "literal", "type": "number"})
INPUTS = (SETTINGS, DURATION)


def asset(**changes: Any) -> WorkflowAsset:
    data: dict[str, Any] = {
        "id": "a",
        "title": "A",
        "inputs": [SETTINGS.model_dump(), DURATION.model_dump()],
        "execution": {"image": "i"},
    }
    data.update(changes)
    return WorkflowAsset.model_validate(data)


@pytest.mark.parametrize(
    "name",
    [
        "PYTHONPYCACHEPREFIX",
        "PYTHONVERBOSE",
        "PYTHONWARNINGS",
        "BASH_ENV",
        "HTTP_PROXY",
        "http_proxy",
        "LD_PRELOAD",
        "PATH",
        "WORKFLOW_OUTPUTS_DIR",
        "INPUT_DURATION",
        "FOO",
        "MODEL_",  # the pattern needs at least one character after the prefix
        "model_x",  # names are matched exactly, case included
    ],
)
def test_an_env_file_variable_the_asset_does_not_declare_is_refused_by_name(name: str) -> None:
    with pytest.raises(UndeclaredVariableError) as caught:
        env_file_variables(SETTINGS, parse_env_file(f"GREETING=hi\n{name}=x\n"))
    assert str(caught.value) == (
        f"variable {name} is not one the asset declares "
        "(declared: GREETING, REPEAT, ^MODEL_[A-Z0-9_]{1,32}$)"
    )


def test_declared_names_and_pattern_matches_pass() -> None:
    variables = parse_env_file("GREETING=hi\nREPEAT=2\nMODEL_SIZE=7\n")
    assert env_file_variables(SETTINGS, variables) == {
        "GREETING": "hi",
        "REPEAT": "2",
        "MODEL_SIZE": "7",
    }


def test_an_env_file_input_that_declares_nothing_accepts_nothing() -> None:
    bare = AssetInput(id="settings", kind="env-file")
    assert env_file_variables(bare, {}) == {}
    with pytest.raises(UndeclaredVariableError, match=r"GREETING .*\(declared: none\)"):
        env_file_variables(bare, {"GREETING": "hi"})


@pytest.mark.parametrize("value", ["a\x00b", "\ud800"])
def test_values_no_environment_can_carry_are_refused(value: str) -> None:
    with pytest.raises(UndeclaredVariableError, match="the value of GREETING"):
        env_file_variables(SETTINGS, {"GREETING": value})


@pytest.mark.parametrize(
    "declaration",
    [
        {"names": ["PYTHONPYCACHEPREFIX"]},
        {"names": ["BASH_ENV"]},
        {"names": ["https_proxy"]},
        {"names": ["LD_LIBRARY_PATH"]},
        {"names": ["WORKFLOW_WORKSPACE"]},
        {"names": ["INPUT_DURATION"]},
        {"names": ["NOT-A-NAME"]},
        {"patterns": ["MODEL_.*"]},  # not anchored
        {"patterns": ["^MODEL_.*$"]},  # not a limited class
        {"patterns": ["^.*$"]},
        {"patterns": ["^[A-Z_]{1,32}$"]},  # no prefix: could be PATH
        {"patterns": ["^PY[A-Z]{1,32}$"]},  # prefix must end in _
        {"patterns": ["^LD_[A-Z_]{1,32}$"]},
        {"patterns": ["^PYTHON_[A-Z]{1,32}$"]},
        {"patterns": ["^WORKFLOW_X_[A-Z]{1,8}$"]},
        {"patterns": ["^MODEL_[A-Z]{0,8}$"]},
        {"patterns": ["^MODEL_[A-Z]{1,99}$"]},
        {"patterns": ["^MODEL_[^=]{1,9}$"]},
        {"patterns": ["^MODEL_[A-Z]{1,8}$|^PATH$"]},
    ],
)
def test_an_asset_cannot_declare_runtime_names(declaration: dict[str, list[str]]) -> None:
    with pytest.raises(ValidationError):
        AssetInput.model_validate({"id": "s", "kind": "env-file", "variables": declaration})


@pytest.mark.parametrize(
    "pattern", ["^MODEL_[A-Za-z0-9_]{1,32}$", "^L_[A-Z]{1,9}$", "^GI_[0-9]{4}$", "^P_[a-z]{2}$"]
)
def test_strict_patterns_that_cannot_reach_runtime_names_are_accepted(pattern: str) -> None:
    assert check_declared_pattern(pattern) == pattern


def test_a_pattern_is_refused_when_its_prefix_is_a_reserved_one_or_matches_a_reserved_name() -> (
    None
):
    with pytest.raises(ValueError, match="GIT_"):
        check_declared_pattern("^GIT_[A-Z]{1,4}$")
    with pytest.raises(ValueError, match="reserved name HTTPS_PROXY"):
        check_declared_pattern("^HTTPS_[A-Z]{1,8}$")


def test_variables_are_only_for_env_file_inputs() -> None:
    with pytest.raises(ValidationError, match="'variables' is for env-file inputs"):
        AssetInput.model_validate({"id": "f", "kind": "file", "variables": {"names": ["GREETING"]}})


def test_an_asset_whose_inputs_would_set_its_own_env_is_refused() -> None:
    with pytest.raises(ValidationError, match="input 'settings' would set GREETING"):
        asset(execution={"image": "i", "env": {"GREETING": "provider's"}})
    with pytest.raises(ValidationError, match="input 'settings' would set MODEL_X"):
        asset(local={"command": ["w"], "env": {"MODEL_X": "1"}})
    with pytest.raises(ValidationError, match="input 'duration' would set INPUT_DURATION"):
        asset(execution={"image": "i", "env": {"INPUT_DURATION": "1"}})
    with pytest.raises(ValidationError, match="both become INPUT_A_B"):
        asset(
            inputs=[
                {"id": "a-b", "kind": "literal", "type": "string"},
                {"id": "a_b", "kind": "literal", "type": "string"},
            ]
        )


def test_worker_environment_is_exactly_the_declared_layers_and_inputs_override_nothing() -> None:
    job = {"GREETING": "hi", **literal_variables({"duration": 2.5})}
    environment = worker_environment(
        INPUTS,
        job,
        provider={"MODE": "fast"},
        base={"PATH": "/usr/bin", "HOME": "/tmp"},
        workspace={"WORKFLOW_WORKSPACE": "/workspace"},
    )
    assert environment == {
        "GREETING": "hi",
        "INPUT_DURATION": "2.5",
        "PATH": "/usr/bin",
        "HOME": "/tmp",
        "MODE": "fast",
        "WORKFLOW_WORKSPACE": "/workspace",
    }


@pytest.mark.parametrize(
    "job",
    [
        {"PATH": "/evil"},
        {"WORKFLOW_WORKSPACE": "/"},
        {"PYTHONPYCACHEPREFIX": "/workspace/inputs/dataset"},
        {"INPUT_OTHER": "1"},  # no literal input `other`
        {"MODE": "slow"},  # the provider's own variable
    ],
)
def test_the_runners_check_refuses_what_no_input_declares(job: dict[str, str]) -> None:
    name = next(iter(job))
    with pytest.raises(UndeclaredVariableError, match=f"variable {name} is not one"):
        check_job_variables(INPUTS, job)
    with pytest.raises(UndeclaredVariableError):
        worker_environment(INPUTS, job, provider={"MODE": "fast"}, workspace={})


def test_literal_variables_spell_booleans_as_json() -> None:
    assert literal_variables({"fail": True, "max-items": 3}) == {
        "INPUT_FAIL": "true",
        "INPUT_MAX_ITEMS": "3",
    }
