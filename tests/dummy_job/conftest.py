from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class JobWorkspace:
    root: Path
    progress_file: Path

    @property
    def inputs(self) -> Path:
        return self.root / "inputs"

    @property
    def outputs(self) -> Path:
        return self.root / "outputs"

    def progress(self) -> list[str]:
        if not self.progress_file.exists():
            return []
        return self.progress_file.read_text(encoding="utf-8").splitlines()


RunJob = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def job_workspace(tmp_path: Path) -> JobWorkspace:
    root = tmp_path / "workspace"
    (root / "inputs").mkdir(parents=True)
    (root / "outputs").mkdir()
    return JobWorkspace(root=root, progress_file=tmp_path / "progress")


@pytest.fixture
def run_job(job_workspace: JobWorkspace) -> RunJob:
    """Run `dummy-job <command>` as a real process in the workspace, like the local runner."""

    def run(command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        environment = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("INPUT_", "WORKFLOW_")) and key not in {"GREETING", "REPEAT"}
        }
        environment.update(
            WORKFLOW_WORKSPACE=str(job_workspace.root),
            WORKFLOW_PROGRESS_FILE=str(job_workspace.progress_file),
        )
        environment.update(env or {})
        return subprocess.run(
            [sys.executable, "-m", "dummy_job", command],
            cwd=job_workspace.root,
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    return run
