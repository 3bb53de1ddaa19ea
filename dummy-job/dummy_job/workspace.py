"""The worker's side of the job container contract: where inputs, literals and outputs are.

The names repeat those of `workflow_contracts.workspace` (a test keeps them equal) because the
worker image installs nothing but the standard library.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dummy_job.errors import JobInputError

log = logging.getLogger(__name__)

WORKSPACE_ENV = "WORKFLOW_WORKSPACE"
INPUTS_DIR_ENV = "WORKFLOW_INPUTS_DIR"
OUTPUTS_DIR_ENV = "WORKFLOW_OUTPUTS_DIR"
PROGRESS_FILE_ENV = "WORKFLOW_PROGRESS_FILE"
CONTAINER_WORKSPACE = "/workspace"
LITERALS_FILE = "inputs.json"

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def literal_env_name(input_id: str) -> str:
    return "INPUT_" + input_id.upper().replace("-", "_")


@dataclass(frozen=True)
class Workspace:
    root: Path
    inputs_dir: Path
    outputs_dir: Path
    progress_file: Path | None
    environment: Mapping[str, str] = field(repr=False)

    @classmethod
    def from_environment(cls, environment: Mapping[str, str]) -> Workspace:
        root = Path(environment.get(WORKSPACE_ENV) or CONTAINER_WORKSPACE)
        progress = environment.get(PROGRESS_FILE_ENV)
        return cls(
            root=root,
            inputs_dir=Path(environment.get(INPUTS_DIR_ENV) or root / "inputs"),
            outputs_dir=Path(environment.get(OUTPUTS_DIR_ENV) or root / "outputs"),
            progress_file=Path(progress) if progress else None,
            environment=environment,
        )

    def input_path(self, input_id: str) -> Path:
        return self.inputs_dir / input_id

    def output_path(self, output_id: str) -> Path:
        self.outputs_dir.mkdir(parents=True, exist_ok=True)
        return self.outputs_dir / output_id

    def report_progress(self, percent: int, message: str) -> None:
        """Log the step and append `<percent> <message>` to the progress file, if there is one."""
        log.info("progress %d%%: %s", percent, message)
        if self.progress_file is None:
            return
        line = " ".join(f"{percent} {message}".split())
        with self.progress_file.open("a", encoding="utf-8") as progress:
            progress.write(line + "\n")
            progress.flush()

    def literals(self) -> Literals:
        path = self.root / LITERALS_FILE
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            values = {}
        except (OSError, ValueError) as error:
            raise JobInputError(LITERALS_FILE, f"cannot be read: {error}") from error
        if not isinstance(values, dict):
            raise JobInputError(LITERALS_FILE, "is not a JSON object")
        return Literals(values, self.environment)


class Literals:
    """Literal inputs from `inputs.json` (typed, preferred) or `INPUT_<ID>` variables."""

    def __init__(self, values: dict[str, Any], environment: Mapping[str, str]) -> None:
        self._values = values
        self._environment = environment

    def _raw(self, input_id: str) -> Any:
        if input_id in self._values and self._values[input_id] is not None:
            return self._values[input_id]
        return self._environment.get(literal_env_name(input_id))

    def string(self, input_id: str, default: str | None = None) -> str:
        value = self._raw(input_id)
        if value is None:
            if default is None:
                raise JobInputError(input_id, "is required")
            return default
        if not isinstance(value, str):
            raise JobInputError(input_id, f"must be a string, not {type(value).__name__}")
        return value

    def number(self, input_id: str, default: float, minimum: float, maximum: float) -> float:
        value = self._raw(input_id)
        if value is None:
            return default
        try:
            number = float(value) if not isinstance(value, bool) else math.nan
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number):
            raise JobInputError(input_id, f"must be a number, got {value!r}")
        if not minimum <= number <= maximum:
            raise JobInputError(input_id, f"must be between {minimum:g} and {maximum:g}")
        return number

    def boolean(self, input_id: str, default: bool) -> bool:
        value = self._raw(input_id)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise JobInputError(input_id, f"must be true or false, got {value!r}")
