"""Push-out: upload a job's outputs, its log and a report through signed PUT URLs.

Each declared output found under `<workspace>/outputs/<id>` is uploaded (a directory as a zip
archive built in a temporary file); a failed upload is recorded and the others still go. Bodies are
streamed from disk with an explicit Content-Length, and re-sent from the start on a retry.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from data_sidecar.errors import PushOutError, TransferError
from data_sidecar.transport import (
    CHUNK_SIZE,
    TransferPolicy,
    check_status,
    client_for,
    describe,
    safe_url,
    with_retries,
)
from workflow_contracts.asset import IDENTIFIER_PATTERN, OutputKind
from workflow_contracts.manifest import JobManifest, OutputTarget, PushedOutput, PushOutReport
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


def push_out(
    manifest: JobManifest,
    workspace: Path,
    log_path: Path | None,
    client: httpx.Client | None = None,
    *,
    policy: TransferPolicy | None = None,
) -> PushOutReport:
    """Upload outputs, log and report; never raises for a failed upload (see the report)."""
    return run_push_out(manifest, workspace, log_path, client, policy=policy).report


def run_push_out(
    manifest: JobManifest,
    workspace: Path,
    log_path: Path | None,
    client: httpx.Client | None = None,
    *,
    policy: TransferPolicy | None = None,
) -> PushOutOutcome:
    """`push_out`, also telling whether the log and the report could be uploaded."""
    policy = policy or TransferPolicy()
    with client_for(client, policy) as http:
        pushed, missing, failed = _push_outputs(http, manifest, workspace, policy)
        errors = [f"output {output_id!r}: {reason}" for output_id, reason in failed.items()]
        log_pushed = False
        if log_path is not None and log_path.is_file():
            try:
                _upload(http, manifest.log_url, log_path, policy)
                log_pushed = True
            except PushOutError as error:
                log.error("job %s: log: %s", manifest.job_id, error)
                errors.append(f"log: {error}")
        report = PushOutReport(pushed=pushed, missing=missing, failed=failed, log_pushed=log_pushed)
        if manifest.report_url is not None:
            try:
                _upload_bytes(http, manifest.report_url, report.model_dump_json().encode(), policy)
            except PushOutError as error:
                log.error("job %s: report: %s", manifest.job_id, error)
                errors.append(f"report: {error}")
    log.info(
        "job %s: pushed %d outputs, %d missing, %d failed",
        manifest.job_id,
        len(pushed),
        len(missing),
        len(failed),
    )
    return PushOutOutcome(report=report, errors=tuple(errors))


def _push_outputs(
    http: httpx.Client, manifest: JobManifest, workspace: Path, policy: TransferPolicy
) -> tuple[dict[str, PushedOutput], list[str], dict[str, str]]:
    """Upload each declared output that exists: (pushed, missing, failed)."""
    pushed: dict[str, PushedOutput] = {}
    missing: list[str] = []
    failed: dict[str, str] = {}
    for target in manifest.outputs:
        source = workspace / OUTPUTS_DIR / target.id
        try:
            if not _IDENTIFIER.fullmatch(target.id):
                raise PushOutError("is not a valid output id")
            if not os.path.lexists(source):
                log.warning("job %s: output %s was not produced", manifest.job_id, target.id)
                missing.append(target.id)
                continue
            pushed[target.id] = _push_output(http, target, source, workspace, policy)
        except (PushOutError, OSError) as error:
            reason = " ".join(str(error).split())
            log.error("job %s: output %s: %s", manifest.job_id, target.id, reason)
            failed[target.id] = reason
    return pushed, missing, failed


def _push_output(
    http: httpx.Client, target: OutputTarget, source: Path, workspace: Path, policy: TransferPolicy
) -> PushedOutput:
    if target.kind is OutputKind.DIRECTORY:
        if source.is_symlink() or not source.is_dir():
            raise PushOutError("expected a directory")
        handle, name = tempfile.mkstemp(prefix=f".{target.id}-", suffix=".zip", dir=workspace)
        os.close(handle)
        bundle = Path(name)
        try:
            zip_directory(source, bundle)
            return _upload(http, target.url, bundle, policy)
        except OSError as error:
            raise PushOutError(f"cannot zip the directory: {error}") from error
        finally:
            bundle.unlink(missing_ok=True)
    if not stat.S_ISREG(source.lstat().st_mode):
        raise PushOutError("expected a regular file")
    return _upload(http, target.url, source, policy)


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


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as source:
        while chunk := source.read(CHUNK_SIZE):
            yield chunk


def _digest(path: Path) -> PushedOutput:
    digest = hashlib.sha256()
    size = 0
    for chunk in _file_chunks(path):
        size += len(chunk)
        digest.update(chunk)
    return PushedOutput(size=size, sha256=digest.hexdigest())


def _upload(http: httpx.Client, url: str, path: Path, policy: TransferPolicy) -> PushedOutput:
    """PUT the file at `path`, streamed; returns the size and digest of what was sent."""
    try:
        summary = _digest(path)
    except OSError as error:
        raise PushOutError(f"cannot read {path.name}: {error}") from error

    def attempt() -> None:
        response = http.put(
            url,
            content=_file_chunks(path),
            headers={"Content-Length": str(summary.size)},
            timeout=policy.timeout,
        )
        check_status(response, "PUT", url)

    _put_with_retries(url, policy, attempt)
    return summary


def _upload_bytes(http: httpx.Client, url: str, body: bytes, policy: TransferPolicy) -> None:
    def attempt() -> None:
        response = http.put(
            url, content=body, headers={"Content-Type": "application/json"}, timeout=policy.timeout
        )
        check_status(response, "PUT", url)

    _put_with_retries(url, policy, attempt)


def _put_with_retries(url: str, policy: TransferPolicy, attempt: Callable[[], None]) -> None:
    try:
        with_retries(policy, "PUT", url, attempt)
    except TransferError as error:
        raise PushOutError(str(error)) from error
    except (httpx.HTTPError, httpx.InvalidURL, OSError) as error:
        raise PushOutError(f"PUT {safe_url(url)} failed: {describe(error, url)}") from error
    log.info("uploaded %s", safe_url(url))
