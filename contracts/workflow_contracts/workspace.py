"""What a worker sees: the workspace layout and the environment it runs with.

    <workspace>/inputs/<input id>     a file, or a directory for an extracted archive
    <workspace>/inputs.json           literal inputs as a JSON object
    <workspace>/outputs/<output id>   a file, or a directory (delivered as a zip archive)

The worker's environment is exactly (`environment.worker_environment`, the same for every runner):
the variables of this module (`WORKFLOW_*`), the asset's own `env`, its literal inputs as
`INPUT_<ID>` (upper case, `-` as `_`) and those variables of an `env-file` input whose names the
asset declares on that input (`variables: {names, patterns}`); an env-file with any other name is
refused when the job is submitted. Inputs never override the asset's or the runtime's variables.
Progress is reported by appending `<percent> <message>` lines to the file named by
`WORKFLOW_PROGRESS_FILE`.
"""

from __future__ import annotations

from workflow_contracts.env_names import ENV_NAME_PATTERN

WORKSPACE_ENV = "WORKFLOW_WORKSPACE"
INPUTS_DIR_ENV = "WORKFLOW_INPUTS_DIR"
OUTPUTS_DIR_ENV = "WORKFLOW_OUTPUTS_DIR"
PROGRESS_FILE_ENV = "WORKFLOW_PROGRESS_FILE"
CONTAINER_WORKSPACE = "/workspace"

INPUTS_DIR = "inputs"
OUTPUTS_DIR = "outputs"
LITERALS_FILE = "inputs.json"


def literal_env_name(input_id: str) -> str:
    return "INPUT_" + input_id.upper().replace("-", "_")


def parse_progress_line(line: str) -> tuple[int, str] | None:
    """`"42 halfway there"` -> (42, "halfway there"); anything else -> None."""
    head, _, message = line.strip().partition(" ")
    try:
        percent = round(float(head))
    except ValueError:
        return None
    return max(0, min(100, percent)), message.strip()


class EnvFileError(ValueError):
    """An env-file line that is not `NAME=value`."""


def parse_env_file(text: str) -> dict[str, str]:
    """`NAME=value` lines; blanks and `#` comments skipped; matching quotes removed.

    Syntax only: which names may reach the worker is `environment.env_file_variables`.
    """
    variables: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        name, separator, value = line.partition("=")
        name = name.strip()
        if not separator or not ENV_NAME_PATTERN.fullmatch(name):
            raise EnvFileError(f"line {number}: expected NAME=value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        variables[name] = value
    return variables
