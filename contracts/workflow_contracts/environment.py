"""A worker's environment: exactly what the asset declares, the same rule for every runner.

    worker_environment(inputs, job_variables, provider=..., base=..., workspace=...)

`job_variables` are what the consumer's inputs set: literal inputs as `INPUT_<ID>` and env-file
variables. Each must be one the asset declares (`check_job_variables`); then the layers are
merged lowest first: job variables, the runner's base (`PATH`, `HOME`, ...), the asset's own
`env`, the workspace contract (`WORKFLOW_*`). So no input can override what the provider or the
runtime set. The workflow-api checks an env-file when a job is submitted
(`env_file_variables`), and the runners check the whole set again when they build the
environment, so a job submitted under an older asset definition cannot carry more.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from workflow_contracts.asset import AssetInput, InputKind
from workflow_contracts.env_names import reserved_reason
from workflow_contracts.text import text_problem
from workflow_contracts.workspace import literal_env_name


class UndeclaredVariableError(ValueError):
    """A variable the asset does not declare, or a value no environment can carry."""


def env_file_variables(item: AssetInput, variables: Mapping[str, str]) -> dict[str, str]:
    """The parsed variables of env-file input `item`, if the asset declares every name."""
    declared = item.declared_variables
    for name, value in variables.items():
        if not declared.allows(name) or reserved_reason(name) is not None:
            raise UndeclaredVariableError(
                f"variable {name} is not one the asset declares (declared: {declared.describe()})"
            )
        problem = text_problem(value)
        if problem is not None:
            raise UndeclaredVariableError(f"the value of {name} {problem}")
    return dict(variables)


def literal_text(value: Any) -> str:
    """How a literal input appears in the environment (booleans as JSON: `true`/`false`)."""
    return json.dumps(value) if isinstance(value, bool) else str(value)


def literal_variables(literals: Mapping[str, Any]) -> dict[str, str]:
    return {literal_env_name(input_id): literal_text(v) for input_id, v in literals.items()}


def check_job_variables(inputs: Iterable[AssetInput], variables: Mapping[str, str]) -> None:
    """UndeclaredVariableError naming the first variable no input of the asset declares."""
    inputs = list(inputs)
    literal_names = {literal_env_name(i.id) for i in inputs if i.kind is InputKind.LITERAL}
    env_files = [i.declared_variables for i in inputs if i.kind is InputKind.ENV_FILE]
    for name, value in variables.items():
        declared = name in literal_names or any(d.allows(name) for d in env_files)
        if not declared or (name not in literal_names and reserved_reason(name) is not None):
            raise UndeclaredVariableError(f"variable {name} is not one the asset declares")
        problem = text_problem(value)
        if problem is not None:
            raise UndeclaredVariableError(f"the value of {name} {problem}")


def worker_environment(
    inputs: Iterable[AssetInput],
    job_variables: Mapping[str, str],
    *,
    provider: Mapping[str, str],
    workspace: Mapping[str, str],
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The whole environment of a worker; inputs never override a higher layer."""
    check_job_variables(inputs, job_variables)
    return {**job_variables, **(base or {}), **provider, **workspace}
