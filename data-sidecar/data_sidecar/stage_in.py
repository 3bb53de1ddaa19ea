"""Stage-in: download a job's inputs through signed GET URLs into its workspace.

    <workspace>/inputs/<id>      a file (kinds `file`, `env-file`) or an extracted archive directory
    <workspace>/inputs.json      the manifest's literals
    <workspace>/outputs/         created empty for the worker

Downloads are streamed in chunks, stop as soon as they pass the input's size limit, and land under
a hidden name that is renamed into place only once size and checksum are verified. Archives expand
at most to the smallest of the per-job archive limit, the storage quota left (the manifest's
`storage`, less what earlier archives of the job expanded to) and the free disk space (statvfs of
the workspace, read just before each extraction).

Signed storage URLs are fetched with the caller's client. External inputs (URLs the consumer gave)
go through the manifest's egress policy instead (`data_sidecar.egress`): a pinned client, every
redirect checked, a total deadline per input, and failures reported without detail from the wire.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path

import httpx

from data_sidecar.archives import (
    ArchiveRejected,
    extract_archive,
    extraction_bound,
    free_disk_bytes,
)
from data_sidecar.egress import EgressPolicy, EgressRefusedError, Resolver, system_resolver
from data_sidecar.egress_http import (
    NO_ANSWER,
    Deadline,
    EgressFailedError,
    guarded_client,
    open_guarded,
)
from data_sidecar.errors import (
    ChecksumMismatchError,
    InputTooLargeError,
    StageInError,
    TransferError,
    UnsafeArchiveError,
)
from data_sidecar.transport import (
    CHUNK_SIZE,
    TransferPolicy,
    check_status,
    client_for,
    describe,
    is_retryable,
    safe_url,
    with_retries,
)
from workflow_contracts.asset import IDENTIFIER_PATTERN, InputKind
from workflow_contracts.manifest import JobManifest, StagedInput
from workflow_contracts.workspace import INPUTS_DIR, LITERALS_FILE, OUTPUTS_DIR

log = logging.getLogger(__name__)

_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)

DiskSpace = Callable[[Path], int]


def workspace_disk_free(path: Path) -> int:
    return free_disk_bytes(os.statvfs(path))


def stage_in(
    manifest: JobManifest,
    workspace: Path,
    client: httpx.Client | None = None,
    *,
    policy: TransferPolicy | None = None,
    disk_free: DiskSpace = workspace_disk_free,
    resolver: Resolver = system_resolver,
) -> None:
    """Download every input of `manifest` into `workspace`; raise `StageInError` on the first
    input that fails, leaving no partial file or directory of it behind."""
    policy = policy or TransferPolicy()
    inputs_dir = workspace / INPUTS_DIR
    inputs_dir.mkdir(parents=True, exist_ok=True)
    (workspace / OUTPUTS_DIR).mkdir(parents=True, exist_ok=True)
    _write_literals(manifest, workspace / LITERALS_FILE)
    extracted = 0
    with ExitStack() as stack:
        http = stack.enter_context(client_for(client, policy))
        external: _External | None = None
        if any(staged.external for staged in manifest.inputs):
            egress = EgressPolicy.from_rules(manifest.egress)
            guarded = stack.enter_context(guarded_client(egress, policy.timeout, resolver))
            external = _External(guarded, egress, manifest.egress.deadline_seconds)
        for staged in manifest.inputs:
            extracted += _stage_one(
                http, external, staged, inputs_dir, manifest, policy, disk_free, extracted
            )
    log.info("job %s: staged %d inputs", manifest.job_id, len(manifest.inputs))


class _External:
    """How external inputs are fetched: the guarded client, its policy, the deadline of each."""

    def __init__(self, client: httpx.Client, egress: EgressPolicy, deadline_seconds: float):
        self.client = client
        self.egress = egress
        self.deadline_seconds = deadline_seconds


def _write_literals(manifest: JobManifest, path: Path) -> None:
    scratch = path.with_name(f".{path.name}.part")
    scratch.write_text(json.dumps(manifest.literals, indent=2, allow_nan=False), encoding="utf-8")
    scratch.replace(path)


def _stage_one(
    http: httpx.Client,
    external: _External | None,
    staged: StagedInput,
    inputs_dir: Path,
    manifest: JobManifest,
    policy: TransferPolicy,
    disk_free: DiskSpace,
    extracted: int,
) -> int:
    """Stage one input; returns the bytes an archive expanded to (0 for other kinds)."""
    if not _IDENTIFIER.fullmatch(staged.id):
        raise StageInError(staged.id, "is not a valid input id")
    if staged.kind is InputKind.LITERAL:
        raise StageInError(staged.id, "literal inputs travel in the manifest's literals")
    target = inputs_dir / staged.id
    download = inputs_dir / f".{staged.id}.part"
    log.info("job %s: staging input %s from %s", manifest.job_id, staged.id, safe_url(staged.url))
    try:
        if staged.external:
            assert external is not None
            _download_external(external, staged, download, policy)
        else:
            _download(http, staged, download, policy)
        if staged.kind is not InputKind.ARCHIVE:
            download.replace(target)
            return 0
        bound = extraction_bound(
            manifest.archive_limits, manifest.storage, disk_free(inputs_dir), extracted
        )
        return extract_archive(download, target, manifest.archive_limits, bound)
    except ArchiveRejected as error:
        raise UnsafeArchiveError(staged.id, f"archive {error}") from error
    except OSError as error:
        raise StageInError(staged.id, f"cannot write to the workspace: {error}") from error
    finally:
        download.unlink(missing_ok=True)


def _download(
    http: httpx.Client, staged: StagedInput, destination: Path, policy: TransferPolicy
) -> None:
    """GET `staged.url` into `destination`, verifying size and digest; retried from scratch."""

    def attempt() -> tuple[int, str]:
        with http.stream(
            "GET",
            staged.url,
            headers={"Accept-Encoding": "identity"},
            timeout=policy.timeout,
            follow_redirects=True,
        ) as response:
            check_status(response, "GET", staged.url)
            _check_announced_size(staged, response)
            return _save(staged, response, destination)

    try:
        size, digest = with_retries(policy, "GET", staged.url, attempt)
    except TransferError as error:
        raise StageInError(staged.id, str(error)) from error
    except (httpx.HTTPError, httpx.InvalidURL) as error:
        suffix = f" after {policy.attempts} attempts" if is_retryable(error) else ""
        raise StageInError(
            staged.id, f"GET {safe_url(staged.url)} failed{suffix}: {describe(error, staged.url)}"
        ) from error
    _verify(staged, size, digest)


def _download_external(
    external: _External, staged: StagedInput, destination: Path, policy: TransferPolicy
) -> None:
    """GET a consumer's URL through the egress policy, all attempts within one deadline."""
    deadline = Deadline(external.deadline_seconds, policy.timeout)
    headers = {"Accept-Encoding": "identity"}

    def attempt() -> tuple[int, str]:
        opened = open_guarded(external.client, external.egress, staged.url, deadline, headers)
        return _fetch(staged, opened, destination, deadline)

    where = f"GET {safe_url(staged.url)}"
    try:
        size, digest = with_retries(policy, "GET", staged.url, attempt)
    except EgressRefusedError as error:
        raise StageInError(staged.id, f"{where} refused: {error}") from error
    except EgressFailedError as error:
        suffix = f" after {policy.attempts} attempts" if error.retryable else ""
        raise StageInError(staged.id, f"{where} failed{suffix}: {error}") from error
    except TransferError as error:
        raise StageInError(staged.id, str(error)) from error
    _verify(staged, size, digest)


def _fetch(
    staged: StagedInput,
    opened: AbstractContextManager[httpx.Response],
    destination: Path,
    deadline: Deadline,
) -> tuple[int, str]:
    try:
        with opened as response:
            check_status(response, "GET", staged.url)
            _check_announced_size(staged, response)
            return _save(staged, response, destination, deadline)
    except httpx.HTTPError as error:  # the body broke off or stalled: say no more than that
        raise EgressFailedError(NO_ANSWER) from error


def _verify(staged: StagedInput, size: int, digest: str) -> None:
    if staged.size is not None and size != staged.size:
        raise ChecksumMismatchError(staged.id, f"got {size} bytes, expected {staged.size}")
    if staged.sha256 is not None and digest != staged.sha256.lower():
        raise ChecksumMismatchError(staged.id, f"SHA-256 {digest} differs from {staged.sha256}")
    log.info("input %s: %d bytes, sha256 %s", staged.id, size, digest)


def _check_announced_size(staged: StagedInput, response: httpx.Response) -> None:
    announced = response.headers.get("Content-Length")
    if announced is None or not announced.isdigit():
        return
    length = int(announced)
    if length > staged.max_size:
        raise InputTooLargeError(
            staged.id, f"the server announces {length} bytes, the limit is {staged.max_size}"
        )
    if staged.size is not None and length != staged.size:
        raise ChecksumMismatchError(
            staged.id, f"the server announces {length} bytes, expected {staged.size}"
        )


def _save(
    staged: StagedInput,
    response: httpx.Response,
    destination: Path,
    deadline: Deadline | None = None,
) -> tuple[int, str]:
    """Stream the body into `destination` (truncated first), stopping at the first byte too many
    (or, with a `deadline`, at the first chunk after it)."""
    digest = hashlib.sha256()
    size = 0
    with destination.open("wb") as output:
        for chunk in response.iter_raw(CHUNK_SIZE):
            if deadline is not None:
                deadline.check()
            size += len(chunk)
            if size > staged.max_size:
                raise InputTooLargeError(
                    staged.id, f"more than its limit of {staged.max_size} bytes"
                )
            if staged.size is not None and size > staged.size:
                raise ChecksumMismatchError(
                    staged.id, f"more than the expected {staged.size} bytes"
                )
            digest.update(chunk)
            output.write(chunk)
        output.flush()
        os.fsync(output.fileno())
    return size, digest.hexdigest()
