"""Starting and stopping one local worker process, confined (`workflow_common.sandbox`) or not.

A worker is known to the runner by its outermost process (bwrap, or the command itself when
unconfined), which leads a process group of its own: that is the identity the job records,
`recover` kills after a restart, and the provisioner's local deployer finds as a job group.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from workflow_api.execution.local.limits import JobCgroups, Limits, apply_rlimits
from workflow_common.proc_identity import group_members
from workflow_common.sandbox import BubblewrapPolicy, read_info
from workflow_contracts.asset import LocalNetwork, WorkflowAsset


@dataclass
class Worker:
    process: asyncio.subprocess.Process
    note: str | None = None  # how it is confined, for the job's message
    cgroups: JobCgroups | None = None
    sandbox_init: int | None = None  # pid of bwrap's init in the job's pid namespace

    def terminate(self) -> None:
        """Ask the worker to stop (SIGTERM to its process group). In the sandbox that is the
        group bwrap's init leads (its own session), the init itself spared: SIGTERM to bwrap
        would end the sandbox at once, without the grace period."""
        if self.sandbox_init is None:
            _signal_group(self.process.pid, signal.SIGTERM)
            return
        for pid in group_members(self.sandbox_init):
            if pid != self.sandbox_init:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL the outermost group; with bwrap the kernel then ends its pid namespace."""
        _signal_group(self.process.pid, signal.SIGKILL)
        if self.cgroups is not None:
            self.cgroups.kill()

    def memory_exceeded(self) -> bool:
        return self.cgroups is not None and self.cgroups.memory_exceeded()

    def release(self) -> None:
        if self.cgroups is not None:
            self.cgroups.remove()


def limits_of(asset: WorkflowAsset, max_processes: int) -> Limits:
    resources = asset.execution.resources
    return Limits(
        memory=resources.memory,
        cpu=resources.cpu,
        processes=max_processes,
        timeout_seconds=asset.execution.timeout_seconds,
    )


class WorkerLauncher:
    """Starts workers as plain process groups (`policy` None) or in the bubblewrap sandbox."""

    def __init__(self, policy: BubblewrapPolicy | None, *, max_processes: int) -> None:
        self._policy = policy
        self._max_processes = max_processes

    def refusal(self, asset: WorkflowAsset) -> str | None:
        if self._policy is None:
            return None
        limits = limits_of(asset, self._max_processes)
        try:
            limits.memory_bytes  # noqa: B018 - parsed here, so a job never starts with bad ones
            limits.cpu_millicores  # noqa: B018
        except ValueError as error:
            return f"the process {asset.id!r} declares unusable resources: {error}"
        return None

    async def start(
        self,
        job_id: str,
        asset: WorkflowAsset,
        *,
        workspace: Path,
        env: dict[str, str],
        log_file: IO[bytes],
    ) -> Worker:
        """Raises OSError when the worker cannot be started (nothing of it is left then).

        A confined start runs to its end even when the caller is cancelled meanwhile (the API
        stopping): cut short, it left bwrap blocked on its block fd, or unblocked outside its
        limits, and the start's pipes open. What it started is then stopped, and the
        cancellation goes on."""
        assert asset.local is not None
        if self._policy is None:
            process = await _spawn(asset.local.command, workspace, env, log_file)
            return Worker(process, note="unconfined: WORKFLOW_API_SANDBOX=none")
        starting = asyncio.ensure_future(
            self._start_confined(job_id, asset, workspace, env, log_file)
        )
        try:
            return await asyncio.shield(starting)
        except asyncio.CancelledError:
            await _despite_cancellation(starting)
            if not starting.cancelled() and starting.exception() is None:
                await _discard(starting.result())
            raise

    async def _start_confined(
        self,
        job_id: str,
        asset: WorkflowAsset,
        workspace: Path,
        env: dict[str, str],
        log_file: IO[bytes],
    ) -> Worker:
        assert self._policy is not None and asset.local is not None
        limits = limits_of(asset, self._max_processes)
        self._policy.give_workspace(workspace)
        info_read, info_write = os.pipe()
        block_read, block_write = os.pipe()
        command = self._policy.arguments(
            asset.local.command,
            workspace=workspace,
            network=asset.local.network is LocalNetwork.EGRESS,
            tmp_size=limits.memory_bytes,
            info_fd=info_write,
            block_fd=block_read,
        )
        try:
            process = await _spawn(
                command, workspace, env, log_file, pass_fds=(info_write, block_read)
            )
        except BaseException:
            for descriptor in (info_read, info_write, block_read, block_write):
                os.close(descriptor)
            raise
        os.close(info_write)
        os.close(block_read)
        worker = Worker(process)
        try:
            worker.sandbox_init = await asyncio.to_thread(read_info, info_read)
            worker.cgroups = JobCgroups.create(job_id, limits)
            if worker.cgroups is not None:
                worker.cgroups.place(process.pid)
                worker.cgroups.place(worker.sandbox_init)
                confinement = worker.cgroups.describe(limits)
            else:
                confinement = apply_rlimits(worker.sandbox_init, limits)
            os.write(block_write, b"go")
        except BaseException:
            await _discard(worker)
            raise
        finally:
            os.close(info_read)
            os.close(block_write)
        uid = self._policy.worker_uid
        who = f"uid {uid}" if uid is not None else f"the API's uid {os.geteuid()}"
        network = "egress" if asset.local.network is LocalNetwork.EGRESS else "no network"
        worker.note = f"sandbox: bubblewrap, {who}, {network}, {confinement}"
        return worker

    def recover(self, job_id: str) -> None:
        """After a restart: kill whatever is left in the job's cgroups and remove them."""
        if self._policy is None:
            return
        cgroups = JobCgroups.existing(job_id)
        if cgroups is not None:
            cgroups.remove()


async def _despite_cancellation(task: asyncio.Future[Any]) -> None:
    """Wait until `task` has ended, through any cancellation of the caller."""
    while not task.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({task})


async def _discard(worker: Worker) -> None:
    """Kill a worker whose start did not complete, reap it and remove its cgroups."""
    worker.kill()
    await _despite_cancellation(asyncio.ensure_future(worker.process.wait()))
    worker.release()


def _signal_group(group: int, signal_number: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal_number)


async def _spawn(
    command: Sequence[str],
    workspace: Path,
    env: dict[str, str],
    log_file: IO[bytes],
    pass_fds: tuple[int, ...] = (),
) -> asyncio.subprocess.Process:
    """The worker's process (or its sandbox) in a session of its own, output to the job's log."""
    return await asyncio.create_subprocess_exec(
        *command,
        cwd=workspace,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=log_file,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
        pass_fds=pass_fds,
    )
