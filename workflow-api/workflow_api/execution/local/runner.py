"""The local job runner: each job as plain processes on this machine.

Per job: `data-sidecar stage-in` (in a worker thread) → the asset's local command in its own
process group with a timeout, its progress file relayed → `data-sidecar push-out` (worker thread),
which runs whether the worker succeeded or failed; the log is first cut to its last
`max_log_size` bytes, and push-out asks the quota ledger (`JobRun.admit`) before it uploads.
Cancelling kills the whole process group (SIGTERM, then SIGKILL after a grace period) before the
cancellation completes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import shutil
import signal
import stat
import sys
from pathlib import Path

import httpx

from data_sidecar import push_out, stage_in
from data_sidecar.egress import Resolver, system_resolver
from data_sidecar.errors import SidecarError
from workflow_api.execution.local.workers import Worker, WorkerLauncher
from workflow_api.execution.runner import JobRun, Outcome
from workflow_common.private_files import open_private, private_dir, private_file, workspace_dir
from workflow_common.proc_identity import ProcessIdentity, signal_group
from workflow_contracts.asset import WorkflowAsset
from workflow_contracts.environment import UndeclaredVariableError, worker_environment
from workflow_contracts.manifest import JobManifest
from workflow_contracts.workspace import (
    INPUTS_DIR,
    INPUTS_DIR_ENV,
    OUTPUTS_DIR,
    OUTPUTS_DIR_ENV,
    PROGRESS_FILE_ENV,
    WORKSPACE_ENV,
    parse_progress_line,
)

log = logging.getLogger(__name__)

PUSH_OUT_ON_CANCEL_SECONDS = 10.0


class LocalJobRunner:
    def __init__(
        self,
        work_dir: Path,
        *,
        grace_seconds: float,
        poll_seconds: float,
        max_log_size: int = 16 * 1024**2,
        resolver: Resolver = system_resolver,
        launcher: WorkerLauncher | None = None,
    ) -> None:
        self._work_dir = work_dir
        self._max_log_size = max_log_size
        self._resolver = resolver  # names of external inputs (the manifest's egress rules)
        self._launcher = launcher or WorkerLauncher(None, max_processes=0)
        self._grace_seconds = grace_seconds
        self._poll_seconds = poll_seconds
        self._closing = False
        # One client (connection pool, TLS context) for every job's stage-in and push-out.
        self._http = httpx.Client(timeout=httpx.Timeout(60.0, connect=10.0))

    def close(self) -> None:
        self._closing = True
        self._http.close()

    def _workspace(self, job_id: str) -> Path:
        return self._work_dir / job_id

    def _log_path(self, job_id: str) -> Path:
        return self._work_dir / f"{job_id}.log"

    def live_log(self, job_id: str) -> Path | None:
        path = self._log_path(job_id)
        return path if path.exists() else None

    async def run(self, job: JobRun) -> Outcome:
        workspace = self._workspace(job.job_id)
        log_path = self._log_path(job.job_id)
        shutil.rmtree(workspace, ignore_errors=True)
        private_dir(self._work_dir)
        workspace_dir(workspace)
        try:
            exit_code, error, note = await self._stage_and_work(job, workspace, log_path)
            await asyncio.to_thread(bound_log, log_path, self._max_log_size)
            report = await asyncio.to_thread(
                functools.partial(
                    push_out, job.manifest, workspace, log_path, self._http, admit=job.admit
                )
            )
            return Outcome(exit_code=exit_code, error=error, report=report, note=note)
        except asyncio.CancelledError:
            await self._push_log_after_cancel(job, workspace, log_path)
            raise
        finally:
            shutil.rmtree(workspace, ignore_errors=True)
            log_path.unlink(missing_ok=True)

    async def _stage_and_work(
        self, job: JobRun, workspace: Path, log_path: Path
    ) -> tuple[int | None, str | None, str | None]:
        """(exit code, error, how the worker was confined)."""
        try:
            await asyncio.to_thread(
                functools.partial(stage_in, resolver=self._resolver),
                job.manifest,
                workspace,
                self._http,
            )
        except SidecarError as error:
            _append(log_path, f"[stage-in] {error}\n")
            return None, f"stage-in failed: {error}", None
        assert job.asset.local is not None
        timeout = job.asset.execution.timeout_seconds
        progress_file = workspace / ".progress"
        private_file(progress_file)
        try:
            env = worker_environment(
                job.asset.inputs,
                job.env,
                provider=job.asset.local.env,
                base=_base_environment(),
                workspace={
                    WORKSPACE_ENV: str(workspace),
                    INPUTS_DIR_ENV: str(workspace / INPUTS_DIR),
                    OUTPUTS_DIR_ENV: str(workspace / OUTPUTS_DIR),
                    PROGRESS_FILE_ENV: str(progress_file),
                },
            )
        except UndeclaredVariableError as error:
            _append(log_path, f"[runner] {error}\n")
            return None, f"the job's environment is not what the asset declares: {error}", None
        with open_private(log_path) as log_file:
            try:
                worker = await self._launcher.start(
                    job.job_id, job.asset, workspace=workspace, env=env, log_file=log_file
                )
            except OSError as error:
                _append(log_path, f"[runner] cannot start the worker: {error}\n")
                return None, f"the worker could not be started: {error}", None
        _append(log_path, f"[runner] {worker.note}\n")
        identity = ProcessIdentity.of(worker.process.pid) or ProcessIdentity(worker.process.pid, 0)
        await job.on_started(identity)
        relay = asyncio.create_task(self._relay_progress(progress_file, job))
        try:
            exit_code = await asyncio.wait_for(worker.process.wait(), timeout)
            if worker.memory_exceeded():
                _append(log_path, "[runner] the worker exceeded its memory limit\n")
                limit = job.asset.execution.resources.memory
                return exit_code, f"the worker exceeded its memory limit of {limit}", worker.note
            return exit_code, None, worker.note
        except TimeoutError:
            _append(log_path, f"[runner] timed out after {timeout} s; stopping the worker\n")
            return None, f"the job timed out after {timeout} s", worker.note
        finally:
            relay.cancel()
            await _stop(worker, self._grace_seconds)
            with contextlib.suppress(asyncio.CancelledError):
                await relay

    async def _relay_progress(self, progress_file: Path, job: JobRun) -> None:
        position = 0
        last: tuple[int, str] | None = None
        while True:
            await asyncio.sleep(self._poll_seconds)
            try:
                chunk = _read_from(progress_file, position)
            except OSError:
                continue
            complete, _, _ = chunk.rpartition(b"\n")
            if not complete:
                continue
            position += len(complete) + 1
            for line in complete.decode("utf-8", "replace").splitlines():
                parsed = parse_progress_line(line)
                if parsed is not None:
                    last = parsed
            if last is not None:
                await job.on_progress(*last)

    async def _push_log_after_cancel(self, job: JobRun, workspace: Path, log_path: Path) -> None:
        """Keep the log of a dismissed job; outputs are not wanted any more."""
        if self._closing:
            return
        manifest = job.manifest.model_copy(update={"outputs": [], "report_url": None})
        _append(log_path, "[runner] the job was dismissed\n")
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                asyncio.shield(
                    asyncio.to_thread(self._push_log, manifest, job, workspace, log_path)
                ),
                PUSH_OUT_ON_CANCEL_SECONDS,
            )

    def _push_log(
        self, manifest: JobManifest, job: JobRun, workspace: Path, log_path: Path
    ) -> None:
        bound_log(log_path, self._max_log_size)
        push_out(manifest, workspace, log_path, self._http, admit=job.admit)

    def refusal(self, asset: WorkflowAsset) -> str | None:
        if asset.local is None:
            return f"the process {asset.id!r} has no local command; it cannot run here"
        return self._launcher.refusal(asset)

    def recover(self, job_id: str, identity: ProcessIdentity | None) -> bool:
        """A worker cannot be re-attached to: stop what is left of it, the job has failed."""
        if identity is not None and identity.exists():
            log.warning("stopping leftover processes of job %s", job_id)
            signal_group(identity, signal.SIGKILL)
        self._launcher.recover(job_id)
        shutil.rmtree(self._workspace(job_id), ignore_errors=True)
        self._log_path(job_id).unlink(missing_ok=True)
        return False


def _base_environment() -> dict[str, str]:
    """A small, predictable environment; the runtime's own bin directory first on PATH."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    keep = {name: os.environ[name] for name in ("LANG", "LC_ALL", "TZ") if name in os.environ}
    return {"PATH": path, "HOME": os.environ.get("HOME", "/tmp"), **keep}  # noqa: S108


async def _stop(worker: Worker, grace_seconds: float) -> None:
    """SIGTERM the worker, SIGKILL what is left after the grace period (the whole sandbox)."""
    process = worker.process
    if process.returncode is None:
        worker.terminate()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(process.wait()), grace_seconds)
    worker.kill()
    await process.wait()
    await asyncio.to_thread(worker.release)


def _read_from(path: Path, position: int) -> bytes:
    """Never through a symbolic link: the worker owns the workspace, the API reads with its
    own rights (a link to the API's key would relay the key as progress messages)."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return b""
        handle.seek(position)
        return handle.read(1 << 16)


def bound_log(path: Path, limit: int) -> None:
    """Keep at most `limit` bytes of a log: its last part, after a note saying it was cut."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    if size <= limit:
        return
    note = f"[runner] the log had {size} bytes; only its last part is kept\n".encode()
    keep = max(limit - len(note), 0)
    with path.open("rb") as source:
        source.seek(size - keep)
        tail = source.read(keep)
    scratch = path.with_name(f".{path.name}.bounded")
    scratch.write_bytes(note + tail)
    scratch.replace(path)


def _append(path: Path, text: str) -> None:
    with open_private(path) as handle:
        handle.write(text.encode("utf-8"))
