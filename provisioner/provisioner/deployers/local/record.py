"""What the local deployer remembers of one consumer's workflow-api: the `detail` record the
reconciler persists, and the same record in the consumer's `workflow-api.pid` file.

    pid, start_ticks   the process (None while there is none)
    port, endpoint     kept across restarts, so the consumer's endpoint stays put while it can
    waiting_since      epoch seconds since it has been starting or not answering; None when ready
    starts             how often it was started

The pid file is written at every start, so a process whose detail was never persisted (the
provisioner died right after starting it) is adopted, not started a second time.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeGuard

from workflow_common.private_files import write_private
from workflow_common.proc_identity import ProcessIdentity

log = logging.getLogger(__name__)

PID_FILE = "workflow-api.pid"


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class LocalRecord:
    """What `detail` holds, validated."""

    port: int | None = None
    endpoint: str | None = None
    process: ProcessIdentity | None = None
    waiting_since: float | None = None
    starts: int = 0

    @classmethod
    def from_detail(cls, detail: Mapping[str, Any]) -> LocalRecord:
        pid, ticks, port = detail.get("pid"), detail.get("start_ticks"), detail.get("port")
        endpoint, since = detail.get("endpoint"), detail.get("waiting_since")
        starts = detail.get("starts")
        record = cls(
            port=port if _is_int(port) and 0 < port < 65536 else None,
            endpoint=endpoint if isinstance(endpoint, str) else None,
            waiting_since=float(since) if isinstance(since, int | float) else None,
            starts=starts if _is_int(starts) else 0,
        )
        if _is_int(pid) and _is_int(ticks) and pid > 0 and record.port and record.endpoint:
            return replace(record, process=ProcessIdentity(pid, ticks))
        return record

    def __str__(self) -> str:
        pid = self.process.pid if self.process else None
        return f"pid {pid}, port {self.port}, endpoint {self.endpoint}"

    def to_detail(self) -> dict[str, Any]:
        return {
            "pid": self.process.pid if self.process else None,
            "start_ticks": self.process.start_ticks if self.process else None,
            "port": self.port,
            "endpoint": self.endpoint,
            "waiting_since": self.waiting_since,
            "starts": self.starts,
        }


def read_pid_file(data_dir: Path) -> LocalRecord:
    try:
        detail = json.loads((data_dir / PID_FILE).read_text())
    except (OSError, ValueError):
        return LocalRecord()
    return LocalRecord.from_detail(detail) if isinstance(detail, dict) else LocalRecord()


def write_pid_file(data_dir: Path, record: LocalRecord) -> None:
    path = data_dir / PID_FILE
    temporary = path.with_suffix(".tmp")
    try:
        write_private(temporary, json.dumps(record.to_detail()).encode())
        temporary.replace(path)
    except OSError as error:
        log.warning("cannot write %s: %s", path, error)
