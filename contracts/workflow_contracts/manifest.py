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


def format_size(size: int) -> str:
    """Bytes for people: `120 MiB`, `1 GiB`, `512 bytes` (binary units, at most one decimal)."""
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            break
        value /= 1024
    if unit == "bytes":
        return f"{size} bytes"
    text = f"{value:.1f}".removesuffix(".0")
    return f"{text} {unit}"


def quota_shortfall(what: str, need: int, free: int, quota: int) -> str:
    """The one wording of a storage refusal, shared by the API and the sidecar."""
    verb = "need" if what.endswith("s") and not what.endswith("'") else "needs"
    return (
        f"{what} {verb} {format_size(need)} but only {format_size(max(free, 0))} "
        f"of the {format_size(quota)} quota is free"
    )


class StorageBudget(_Wire):
    """The consumer's storage quota and what of it was free when the manifest was made.

    Stage-in bounds archive extraction by `free_bytes`; push-out refuses, before uploading
    anything, outputs whose total exceeds it. The workflow-api enforces the quota itself too
    (see docs/architecture.md, storage); this copy lets a job stop early with a clear message.
    """

    free_bytes: int = Field(ge=0)
    quota_bytes: int = Field(gt=0)

    def shortfall(self, what: str, need: int) -> str | None:
        if need <= self.free_bytes:
            return None
        return quota_shortfall(what, need, self.free_bytes, self.quota_bytes)


class ArchiveLimits(_Wire):
    max_total_size: int = Field(default=10 * 1024**3, gt=0)
    max_files: int = Field(default=100_000, gt=0)


UploadForm = dict[str, str]
"""The fields of an S3 presigned POST, sent as multipart/form-data before the file: its signed
policy names the object and bounds its size, so the storage itself refuses a larger body."""


class OutputTarget(_Wire):
    """One declared output to upload from `outputs/<id>` (directories as a zip archive): PUT to
    `url`, or with `form` a presigned POST to it."""

    id: str
    kind: OutputKind
    url: str
    form: UploadForm | None = None


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
    log_form: UploadForm | None = Field(default=None, description="POST the log instead")
    report_form: UploadForm | None = Field(default=None, description="POST the report instead")
    progress_form: UploadForm | None = Field(default=None, description="POST progress instead")
    archive_limits: ArchiveLimits = ArchiveLimits()
    storage: StorageBudget | None = Field(
        default=None, description="the consumer's storage quota, free part at job start"
    )
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
    refused: str | None = Field(
        default=None, description="why the storage quota refused the outputs (none were kept)"
    )
