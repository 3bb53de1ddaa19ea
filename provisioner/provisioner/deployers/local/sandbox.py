"""The sandbox settings the local deployer gives each consumer's workflow-api.

Every workflow-api runs its workers in the bubblewrap sandbox (`WORKFLOW_API_SANDBOX`) unless
the operator said `PROVISIONER_LOCAL_SANDBOX=none`. When the provisioner (and so each
workflow-api) runs as root, each consumer's workers also get a uid of their own
(`WORKFLOW_API_SANDBOX_UID`, used as gid too): chosen once per consumer from
`[uid_base, uid_base + uid_count)`, preferring one derived from the slug, never one another
consumer's data directory records, and kept in `<data dir>/worker-uid` (so it survives
restarts and is free again when the consumer's data directory is removed at teardown).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from provisioner.settings import Settings
from workflow_common.sandbox import BubblewrapPolicy
from workflow_contracts.workflow_api_env import WorkerSandbox

WORKER_UID_FILE = "worker-uid"


@dataclass(frozen=True)
class LocalSandbox:
    kind: Literal["bubblewrap", "none"]
    uid_base: int
    uid_count: int

    @classmethod
    def of(cls, settings: Settings) -> LocalSandbox:
        return cls(
            settings.local_sandbox,
            uid_base=settings.local_worker_uid_base,
            uid_count=settings.local_worker_uid_count,
        )

    def environment(self, root: Path, slug: str) -> dict[str, str]:
        """The WORKFLOW_API_SANDBOX* settings of the consumer whose data directory is
        `root/slug` (which must exist)."""
        confined_as_root = self.kind == "bubblewrap" and os.geteuid() == 0
        uid = self.worker_uid(root, slug) if confined_as_root else None
        return WorkerSandbox(sandbox=self.kind, sandbox_uid=uid).to_env()

    def worker_uid(self, root: Path, slug: str) -> int:
        own = _recorded(root / slug)
        if own is not None and self._in_range(own):
            return own
        taken = set()
        for directory in root.iterdir():
            uid = _recorded(directory) if directory.name != slug else None
            if uid is not None:
                taken.add(uid)
        digest = int.from_bytes(hashlib.sha256(slug.encode()).digest()[:8], "big")
        for step in range(self.uid_count):
            uid = self.uid_base + (digest + step) % self.uid_count
            if uid not in taken:
                _record(root / slug, uid)
                return uid
        raise OSError(f"all {self.uid_count} worker uids from {self.uid_base} are taken")

    def check(self, data_dir: Path, assets_dir: Path) -> None:
        """Run a sandbox like the workflow-apis will; SandboxUnavailable when it cannot."""
        if self.kind == "none":
            return
        uid = self.uid_base if os.geteuid() == 0 else None
        policy = BubblewrapPolicy.prepare(
            data_dir=data_dir, assets_dir=assets_dir, extra_read_only=(), worker_uid=uid
        )
        policy.probe()

    def _in_range(self, uid: int) -> bool:
        return self.uid_base <= uid < self.uid_base + self.uid_count


def _recorded(directory: Path) -> int | None:
    try:
        text = (directory / WORKER_UID_FILE).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _record(directory: Path, uid: int) -> None:
    path = directory / WORKER_UID_FILE
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(f"{uid}\n")
    temporary.replace(path)
