"""The job manifest handed to the data-sidecar, and the report it returns.

The manifest holds only signed URLs that expire (GET for inputs, PUT for outputs, log, report and
progress): no storage credential ever enters a job. Fields added later have defaults, so a manifest
written by an older workflow-api still parses.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from workflow_contracts.asset import InputKind, OutputKind


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StagedInput(_Wire):
    """One file-like input to download into `inputs/<id>` (archives extracted into a directory)."""

    id: str
    kind: InputKind
    url: str
    size: int | None = Field(default=None, ge=0, description="expected size, when known")
    sha256: str | None = Field(default=None, description="expected digest, when known")
    max_size: int = Field(gt=0)
    external: bool = Field(
        default=False,
        description="a URL the consumer gave (not a signed storage URL): fetched through the"
        " manifest's egress rules",
    )


class EgressRules(_Wire):
    """What the egress policy lets external inputs reach besides public addresses
    (`data_sidecar.egress`), and the API's own origins (`host:port`), which it refuses."""

    allow_hosts: list[str] = Field(default_factory=list)
    allow_cidrs: list[str] = Field(default_factory=list)
    own_origins: list[str] = Field(default_factory=list)
    max_redirects: int = Field(default=5, ge=0, le=20)
    deadline_seconds: float = Field(default=3600.0, gt=0, description="per external input")


class ArchiveLimits(_Wire):
    max_total_size: int = Field(default=10 * 1024**3, gt=0)
    max_files: int = Field(default=100_000, gt=0)


class OutputTarget(_Wire):
    """One declared output to upload from `outputs/<id>` (directories as a zip archive)."""

    id: str
    kind: OutputKind
    url: str


class JobManifest(_Wire):
    job_id: str
    inputs: list[StagedInput] = Field(default_factory=list)
    literals: dict[str, Any] = Field(default_factory=dict, description="written to inputs.json")
    outputs: list[OutputTarget] = Field(default_factory=list)
    log_url: str
    report_url: str | None = Field(default=None, description="where push-out PUTs its report")
    progress_url: str | None = Field(
        default=None,
        description="where `data-sidecar follow` PUTs the worker's latest progress line",
    )
    archive_limits: ArchiveLimits = ArchiveLimits()
    egress: EgressRules = EgressRules()


class PushedOutput(_Wire):
    size: int
    sha256: str


class PushOutReport(_Wire):
    """What push-out uploaded; outputs absent from `pushed` did not exist."""

    pushed: dict[str, PushedOutput] = Field(default_factory=dict)
    missing: list[str] = Field(default_factory=list)
    failed: dict[str, str] = Field(default_factory=dict, description="output id -> error")
    log_pushed: bool = False
