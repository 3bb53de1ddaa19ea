"""A sandboxed worker's CPU, memory and process limits: cgroups v1 where writable, else setrlimit.

Limits come from the asset's `execution.resources` (Kubernetes quantities: `cpu: 100m`,
`memory: 64Mi`) and the runner's process limit. With the cgroup v1 `memory`, `cpu` and `pids`
controllers writable (the job's cgroups are children of this process's own, so every limit
above still holds), the job gets one cgroup per controller: memory (and memory+swap) capped,
CPU bandwidth of `cpu` cores, at most `processes` tasks; an out-of-memory kill is detected and
reported. Otherwise the sandbox's first process gets RLIMIT_AS (memory), RLIMIT_CPU (CPU
seconds: cores times timeout) and RLIMIT_NPROC (per uid), which its descendants inherit.

cgroup v2 is not used yet (a v2 child needs a cgroup without processes to enable controllers
in): on a v2-only host the rlimit fallback applies, and the job's message says so.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import resource
import signal
import time
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("memory", "cpu", "pids")
CPU_PERIOD_MICROSECONDS = 100_000
JOB_CGROUP_PREFIX = "workflow-job-"
REMOVE_WAIT_SECONDS = 2.0

_MEMORY = re.compile(r"(\d+(?:\.\d+)?)\s*(Ki|Mi|Gi|Ti|k|K|M|G|T)?")
_MEMORY_FACTORS = {
    None: 1,
    "k": 1000,
    "K": 1000,
    "M": 1000**2,
    "G": 1000**3,
    "T": 1000**4,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
}
_CPU = re.compile(r"(\d+(?:\.\d+)?)(m)?")


def memory_bytes(quantity: str) -> int:
    """`64Mi` → 67108864; ValueError for anything that is not a memory quantity."""
    match = _MEMORY.fullmatch(quantity.strip())
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"memory {quantity!r} is not a quantity such as 512Mi or 2Gi")
    return int(float(match.group(1)) * _MEMORY_FACTORS[match.group(2)])


def cpu_millicores(quantity: str) -> int:
    """`100m` → 100, `1.5` → 1500; ValueError for anything else."""
    match = _CPU.fullmatch(quantity.strip())
    value = float(match.group(1)) if match else 0.0
    if match is None or value <= 0:
        raise ValueError(f"cpu {quantity!r} is not a quantity such as 500m or 2")
    return max(1, round(value if match.group(2) else value * 1000))


@dataclass(frozen=True)
class Limits:
    memory: str
    cpu: str
    processes: int
    timeout_seconds: int

    @property
    def memory_bytes(self) -> int:
        return memory_bytes(self.memory)

    @property
    def cpu_millicores(self) -> int:
        return cpu_millicores(self.cpu)


def _own_cgroup(controller: str) -> Path | None:
    """This process's cgroup directory of a v1 controller, if that hierarchy is mounted."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, names, path = line.split(":", 2)
        if controller in names.split(","):
            directory = CGROUP_ROOT / controller / path.lstrip("/")
            return directory if (directory / "cgroup.procs").exists() else None
    return None


def _write(path: Path, value: int | str) -> None:
    path.write_text(f"{value}\n")


class JobCgroups:
    """The job's memory, cpu and pids cgroups (v1). `create` answers None when not possible."""

    def __init__(self, directories: dict[str, Path]) -> None:
        self._directories = directories

    @classmethod
    def create(cls, job_id: str, limits: Limits) -> JobCgroups | None:
        cgroups = cls.existing(job_id)
        if cgroups is None:
            return None
        try:
            for directory in cgroups._directories.values():
                directory.mkdir(exist_ok=True)
            memory = cgroups._directories["memory"]
            _write(memory / "memory.limit_in_bytes", limits.memory_bytes)
            swap = memory / "memory.memsw.limit_in_bytes"
            if swap.exists():
                _write(swap, limits.memory_bytes)  # no swap beyond the memory limit
            cpu = cgroups._directories["cpu"]
            _write(cpu / "cpu.cfs_period_us", CPU_PERIOD_MICROSECONDS)
            _write(
                cpu / "cpu.cfs_quota_us", limits.cpu_millicores * CPU_PERIOD_MICROSECONDS // 1000
            )
            _write(cgroups._directories["pids"] / "pids.max", limits.processes)
        except OSError:
            cgroups.remove()
            return None
        return cgroups

    @classmethod
    def existing(cls, job_id: str) -> JobCgroups | None:
        """The job's cgroup directories (whether or not they exist yet); None without cgroups."""
        directories = {}
        for controller in CONTROLLERS:
            own = _own_cgroup(controller)
            if own is None or not os.access(own, os.W_OK):
                return None
            directories[controller] = own / f"{JOB_CGROUP_PREFIX}{job_id}"
        return cls(directories)

    def exist(self) -> bool:
        return any(directory.exists() for directory in self._directories.values())

    def place(self, pid: int) -> None:
        for directory in self._directories.values():
            _write(directory / "cgroup.procs", pid)

    def members(self) -> list[int]:
        try:
            text = (self._directories["pids"] / "cgroup.procs").read_text()
        except OSError:
            return []
        return [int(pid) for pid in text.split()]

    def memory_exceeded(self) -> bool:
        """The kernel killed a process of the job for exceeding the memory limit."""
        try:
            text = (self._directories["memory"] / "memory.oom_control").read_text()
        except OSError:
            return False
        counts = dict(line.split() for line in text.splitlines() if len(line.split()) == 2)
        return int(counts.get("oom_kill", "0")) > 0

    def kill(self) -> None:
        for pid in self.members():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def remove(self) -> None:
        """Kill what is left and remove the directories (a cgroup goes once it is empty)."""
        deadline = time.monotonic() + REMOVE_WAIT_SECONDS
        for directory in self._directories.values():
            while directory.exists():
                self.kill()
                try:
                    directory.rmdir()
                except OSError:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.005)

    def describe(self, limits: Limits) -> str:
        return (
            f"limits by cgroup: memory {limits.memory}, cpu {limits.cpu},"
            f" {limits.processes} processes"
        )


def apply_rlimits(pid: int, limits: Limits) -> str:
    """The fallback: rlimits on the sandbox's first process, inherited by the worker."""
    cpu_seconds = math.ceil(limits.cpu_millicores / 1000) * limits.timeout_seconds
    for name, value in (
        (resource.RLIMIT_AS, limits.memory_bytes),
        (resource.RLIMIT_CPU, cpu_seconds),
        (resource.RLIMIT_NPROC, limits.processes),
    ):
        resource.prlimit(pid, name, (value, value))
    return (
        f"limits by setrlimit: address space {limits.memory}, {cpu_seconds} s of CPU,"
        f" {limits.processes} processes of its uid"
    )
