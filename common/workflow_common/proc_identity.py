"""Processes known by (pid, start time), so a recycled pid is never mistaken for ours.

Used by the local job runner (a job's process group) and by the provisioner's local deployer
(a consumer's workflow-api and the job groups it leads). Linux `/proc` only.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcessStat:
    state: str
    parent: int
    group: int
    start_ticks: int


def process_stat(pid: int) -> ProcessStat | None:
    """Fields 3, 4, 5 and 22 of /proc/<pid>/stat; None when there is no such process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return ProcessStat(fields[0], int(fields[1]), int(fields[2]), int(fields[19]))
    except (OSError, IndexError, ValueError):
        return None


@dataclass(frozen=True)
class ProcessIdentity:
    """A process as (pid, start time in clock ticks since boot)."""

    pid: int
    start_ticks: int

    @classmethod
    def of(cls, pid: int) -> ProcessIdentity | None:
        stat = process_stat(pid)
        return cls(pid, stat.start_ticks) if stat else None

    def exists(self) -> bool:
        """This very process is still in the process table (possibly as a zombie)."""
        stat = process_stat(self.pid)
        return stat is not None and stat.start_ticks == self.start_ticks

    def alive(self) -> bool:
        stat = process_stat(self.pid)
        return stat is not None and stat.start_ticks == self.start_ticks and stat.state != "Z"


def child_groups(parent: int) -> list[ProcessIdentity]:
    """Process groups led by children of `parent` (the local job runner gives each job one)."""
    groups = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = process_stat(int(entry.name))
            if stat is not None and stat.parent == parent and stat.group == int(entry.name):
                groups.append(ProcessIdentity(int(entry.name), stat.start_ticks))
    return groups


def group_members(group: int) -> list[int]:
    """The live processes of a process group."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = process_stat(int(entry.name))
            if stat is not None and stat.group == group and stat.state != "Z":
                members.append(int(entry.name))
    return members


def signal_group(leader: ProcessIdentity, signal_number: signal.Signals) -> None:
    """Signal the group `leader` leads, only while its pid still belongs to that process."""
    if leader.exists():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(leader.pid, signal_number)
