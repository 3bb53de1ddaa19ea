"""Push-out: upload a job's outputs, its log and a report through signed targets.

Each declared output found under `<workspace>/outputs/<id>` is uploaded (a directory as a zip
archive built in a temporary file); a failed upload is recorded and the others still go. Before
any output is sent their total size is admitted against the consumer's storage quota (`Admit`);
a refusal, there or by the storage (see `data_sidecar.uploads`), stops the outputs and says so in
the report.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from data_sidecar.errors import PushOutError, StorageRefusedError
from data_sidecar.transport import TransferPolicy, client_for
from data_sidecar.uploads import upload_bytes, upload_file
from workflow_contracts.asset import IDENTIFIER_PATTERN, OutputKind
from workflow_contracts.manifest import (
    JobManifest,
    OutputTarget,
    PushedOutput,
    PushOutReport,
    StorageBudget,
    quota_shortfall,
)
from workflow_contracts.workspace import OUTPUTS_DIR

log = logging.getLogger(__name__)

_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)


@dataclass(frozen=True)
class PushOutOutcome:
    """The report, and every upload (output, log or report) that failed, as one line each."""

    report: PushOutReport
    errors: tuple[str, ...]

    @property
    def succeeded(self) -> bool:
        return not self.errors


Admit = Callable[[Mapping[str, int]], str | None]
"""Asked before uploading, with the byte size of each output (or of the log, as `LOG_TARGET`):
None to go ahead, else why the consumer's storage quota has no room (nothing is uploaded then)."""

LOG_TARGET = ".log"  # not a valid output id, so it never names an output


def push_out(
    manifest: JobManifest,
    workspace: Path,
    log_path: Path | None,
    client: httpx.Client | None = None,
    *,
    policy: TransferPolicy | None = None,
    admit: Admit | None = None,
) -> PushOutReport:
    """Upload outputs, log and report; never raises for a failed upload (see the report)."""
    return run_push_out(manifest, workspace, log_path, client, policy=policy, admit=admit).report


def run_push_out(
    manifest: JobManifest,
    workspace: Path,
    log_path: Path | None,
    client: httpx.Client | None = None,
    *,
    policy: TransferPolicy | None = None,
    admit: Admit | None = None,
) -> PushOutOutcome:
    """`push_out`, also telling whether the log and the report could be uploaded.

    `admit` (the local runner's, which asks the API's quota ledger) defaults to checking the
    manifest's storage budget.
    """
    policy = policy or TransferPolicy()
    admit = admit or BudgetGate(manifest.storage)
    with client_for(client, policy) as http:
        outputs = _push_outputs(http, manifest, workspace, policy, admit)
        errors = [f"output {output_id!r}: {reason}" for output_id, reason in outputs.failed.items()]
        if outputs.refused is not None:
            errors.append(outputs.refused)
        log_pushed = False
        if log_path is not None and log_path.is_file():
            try:
                refusal = admit({LOG_TARGET: log_path.stat().st_size})
                if refusal is not None:
                    raise StorageRefusedError(refusal)
                upload_file(http, manifest.log_url, log_path, policy, manifest.log_form)
                log_pushed = True
            except (PushOutError, OSError) as error:
                log.error("job %s: log: %s", manifest.job_id, error)
                errors.append(f"log: {error}")
        report = PushOutReport(
            pushed=outputs.pushed,
            missing=outputs.missing,
            failed=outputs.failed,
            log_pushed=log_pushed,
            refused=outputs.refused,
        )
        if manifest.report_url is not None:
            try:
                body = report.model_dump_json().encode()
                upload_bytes(http, manifest.report_url, body, policy, manifest.report_form)
            except PushOutError as error:
                log.error("job %s: report: %s", manifest.job_id, error)
                errors.append(f"report: {error}")
    log.info(
        "job %s: pushed %d outputs, %d missing, %d failed%s",
        manifest.job_id,
        len(outputs.pushed),
        len(outputs.missing),
        len(outputs.failed),
        ", refused by the storage quota" if outputs.refused else "",
    )
    return PushOutOutcome(report=report, errors=tuple(errors))


class BudgetGate:
    """`Admit` from the manifest's storage budget: what was free when the job started, used up
    as outputs and log are admitted. Without a budget everything is admitted (the storage
    service still enforces the quota)."""

    def __init__(self, budget: StorageBudget | None) -> None:
        self._budget = budget
        self._admitted = 0

    def __call__(self, sizes: Mapping[str, int]) -> str | None:
        if self._budget is None:
            return None
        need = sum(sizes.values())
        what = "the log" if set(sizes) == {LOG_TARGET} else "outputs"
        free = self._budget.free_bytes - self._admitted
        if need > free:
            return quota_shortfall(what, need, free, self._budget.quota_bytes)
        self._admitted += need
        return None


@dataclass
class _OutputsPushed:
    pushed: dict[str, PushedOutput] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    refused: str | None = None


@dataclass(frozen=True)
class _Prepared:
    target: OutputTarget
    path: Path
    size: int


def _push_outputs(
    http: httpx.Client, manifest: JobManifest, workspace: Path, policy: TransferPolicy, admit: Admit
) -> _OutputsPushed:
    """Measure every declared output that exists (zipping directories), ask `admit` once for
    their total, then upload them; the first refusal by the storage stops the rest."""
    outcome = _OutputsPushed()
    bundles: list[Path] = []
    try:
        prepared = _prepare_outputs(manifest, workspace, outcome, bundles)
        refusal = admit({item.target.id: item.size for item in prepared})
        if refusal is not None:
            log.error("job %s: %s", manifest.job_id, refusal)
            outcome.refused = refusal
            return outcome
        for item in prepared:
            try:
                target = item.target
                outcome.pushed[target.id] = upload_file(
                    http, target.url, item.path, policy, target.form
                )
            except StorageRefusedError as error:
                log.error("job %s: output %s: %s", manifest.job_id, item.target.id, error)
                outcome.refused = str(error)
                break
            except PushOutError as error:
                reason = " ".join(str(error).split())
                log.error("job %s: output %s: %s", manifest.job_id, item.target.id, reason)
                outcome.failed[item.target.id] = reason
    finally:
        for bundle in bundles:
            bundle.unlink(missing_ok=True)
    return outcome


def _prepare_outputs(
    manifest: JobManifest, workspace: Path, outcome: _OutputsPushed, bundles: list[Path]
) -> list[_Prepared]:
    prepared = []
    for target in manifest.outputs:
        source = workspace / OUTPUTS_DIR / target.id
        try:
            if not _IDENTIFIER.fullmatch(target.id):
                raise PushOutError("is not a valid output id")
            if not os.path.lexists(source):
                log.warning("job %s: output %s was not produced", manifest.job_id, target.id)
                outcome.missing.append(target.id)
                continue
            path = _output_file(target, source, workspace, bundles)
            prepared.append(_Prepared(target, path, path.stat().st_size))
        except (PushOutError, OSError) as error:
            reason = " ".join(str(error).split())
            log.error("job %s: output %s: %s", manifest.job_id, target.id, reason)
            outcome.failed[target.id] = reason
    return prepared


def _output_file(target: OutputTarget, source: Path, workspace: Path, bundles: list[Path]) -> Path:
    """The file to upload for an output: itself, or for a directory a zip archive of it."""
    if target.kind is OutputKind.DIRECTORY:
        if source.is_symlink() or not source.is_dir():
            raise PushOutError("expected a directory")
        handle, name = tempfile.mkstemp(prefix=f".{target.id}-", suffix=".zip", dir=workspace)
        os.close(handle)
        bundle = Path(name)
        bundles.append(bundle)
        try:
            zip_directory(source, bundle)
        except OSError as error:
            raise PushOutError(f"cannot zip the directory: {error}") from error
        return bundle
    if not stat.S_ISREG(source.lstat().st_mode):
        raise PushOutError("expected a regular file")
    return source


def zip_directory(directory: Path, archive: Path) -> None:
    """Deflate every regular file and directory under `directory` into `archive`, with relative
    names. Symbolic links, devices, pipes and sockets are skipped, so nothing outside is read."""
    with zipfile.ZipFile(
        archive, "w", compression=zipfile.ZIP_DEFLATED, strict_timestamps=False
    ) as bundle:
        for current, directories, files in os.walk(directory, followlinks=False):
            directories.sort()
            base = Path(current)
            relative_base = base.relative_to(directory)
            for name in sorted(directories) + sorted(files):
                path = base / name
                mode = path.lstat().st_mode
                arcname = (relative_base / name).as_posix()
                if stat.S_ISDIR(mode) or stat.S_ISREG(mode):
                    bundle.write(path, arcname)
                else:
                    log.warning("skipping %s: not a regular file or directory", arcname)
