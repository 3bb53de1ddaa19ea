"""Where a local worker runs: confined by bubblewrap (`WORKFLOW_API_SANDBOX=bubblewrap`) or not.

The bubblewrap sandbox of one job:

- a fresh root of its own (read-only): `/usr` and the `/bin`, `/sbin`, `/lib*` entries, a few
  files of `/etc` (dynamic linker, time zone, name service, certificates), the Python runtime
  this API runs on (its venv, base installation, editable sources), the asset catalog and any
  `WORKFLOW_API_SANDBOX_READ_ONLY_PATHS`, each at its own path; fresh `/proc` and `/dev`, a
  private `/tmp` (tmpfs, at most the memory limit); the job's workspace, read-write, at its
  own path and as the working directory. Nothing else of the host: no data directory of any
  consumer (this one's database, storage and keys included), no provisioner data;
- its own pid, IPC, UTS and cgroup namespaces and its own session: when the worker's first
  process ends or bwrap is killed, the kernel kills everything left in the pid namespace
  (`--die-with-parent`: also when this API dies);
- no network (its own empty network namespace) unless the asset says `local.network: egress`;
- when the API runs as root, a uid and gid of its own (`WORKFLOW_API_SANDBOX_UID`, one per
  consumer, given by the provisioner), no supplementary groups, no capabilities, no new
  privileges; its workspace is chowned to it;
- CPU, memory and process limits (`limits.py`) and the asset's timeout (the runner).

bwrap starts blocked (`--block-fd`) and reports its pid-namespace init (`--info-fd`): the
runner places both in the job's cgroups (or sets rlimits) before the worker's first
instruction runs, so no process of the job ever runs outside its limits.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

SYSTEM_DIRECTORIES = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
SYSTEM_FILES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/alternatives",
)
INFO_TIMEOUT_SECONDS = 10.0
PROBE_TIMEOUT_SECONDS = 20.0


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot be used here: the API refuses to start (the message says why)."""


def runtime_paths() -> list[Path]:
    """What the worker's Python runtime needs: this interpreter's venv and base installation,
    and the sources of editable installs (a development checkout)."""
    paths = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix}
    for distribution in metadata.distributions():
        text = distribution.read_text("direct_url.json")
        if not text:
            continue
        direct = json.loads(text)
        url = direct.get("url", "")
        if direct.get("dir_info", {}).get("editable") and url.startswith("file://"):
            paths.add(url.removeprefix("file://"))
    return [Path(path) for path in paths]


def _outermost(paths: Iterable[Path]) -> list[Path]:
    """Resolved, existing, without those inside another one or inside /usr (bound anyway)."""
    resolved = sorted({Path(os.path.realpath(path)) for path in paths if Path(path).exists()})
    kept: list[Path] = []
    for path in resolved:
        if path.is_relative_to("/usr") or any(path.is_relative_to(outer) for outer in kept):
            continue
        kept.append(path)
    return kept


def _ancestors(paths: Iterable[Path]) -> list[Path]:
    """Every ancestor directory of `paths` below /, outermost first, once."""
    seen: dict[Path, None] = {}
    for path in paths:
        for parent in reversed(path.parents[:-1]):
            seen.setdefault(parent)
    return list(seen)


@dataclass(frozen=True)
class BubblewrapPolicy:
    """What every job of this API may see and who it runs as; see the module docstring."""

    bwrap: str
    setpriv: str | None  # the uid switch, when the API runs as root
    worker_uid: int | None
    read_only: tuple[Path, ...]

    @classmethod
    def prepare(
        cls,
        *,
        data_dir: Path,
        assets_dir: Path,
        extra_read_only: Iterable[Path],
        worker_uid: int | None,
    ) -> BubblewrapPolicy:
        bwrap = shutil.which("bwrap")
        if bwrap is None:
            raise SandboxUnavailable(
                "WORKFLOW_API_SANDBOX=bubblewrap needs the bwrap program (Debian package"
                " 'bubblewrap'); install it, or set WORKFLOW_API_SANDBOX=none to run workers"
                " unconfined"
            )
        setpriv = None
        if os.geteuid() == 0:
            if worker_uid is None:
                raise SandboxUnavailable(
                    "the API runs as root: set WORKFLOW_API_SANDBOX_UID to the uid its workers"
                    " run as (one per consumer; the provisioner's local deployer sets it)"
                )
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                raise SandboxUnavailable("switching the worker's uid needs setpriv (util-linux)")
        elif worker_uid is not None and worker_uid != os.geteuid():
            raise SandboxUnavailable(
                f"WORKFLOW_API_SANDBOX_UID={worker_uid}: only an API running as root can run"
                f" workers as another uid (this one runs as {os.geteuid()})"
            )
        read_only = _outermost([*runtime_paths(), assets_dir, *extra_read_only])
        data = Path(os.path.realpath(data_dir))
        for path in read_only:
            if data.is_relative_to(path) or path.is_relative_to(data):
                raise SandboxUnavailable(
                    f"the sandbox would show {path} to workers, and the data directory {data}"
                    " overlaps it; move one of them"
                )
        uid = worker_uid if os.geteuid() == 0 else None
        return cls(bwrap=bwrap, setpriv=setpriv, worker_uid=uid, read_only=tuple(read_only))

    def arguments(
        self,
        command: list[str],
        *,
        workspace: Path,
        network: bool,
        tmp_size: int,
        info_fd: int | None = None,
        block_fd: int | None = None,
    ) -> list[str]:
        """The bwrap command line that runs `command` in this sandbox (pure)."""
        arguments = [self.bwrap, "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
        arguments += ["--unshare-cgroup-try", "--die-with-parent", "--new-session"]
        if not network:
            arguments.append("--unshare-net")
        arguments += ["--ro-bind", "/usr", "/usr"]
        for entry in SYSTEM_DIRECTORIES:
            if os.path.islink(entry):
                arguments += ["--symlink", os.readlink(entry), entry]
            elif os.path.isdir(entry):
                arguments += ["--ro-bind", entry, entry]
        arguments += ["--perms", "0755", "--dir", "/etc"]
        for entry in SYSTEM_FILES:
            arguments += ["--ro-bind-try", entry, entry]
        arguments += ["--proc", "/proc", "--dev", "/dev"]
        arguments += ["--perms", "1777", "--size", str(tmp_size), "--tmpfs", "/tmp"]  # noqa: S108
        for directory in _ancestors([*self.read_only, workspace]):  # bwrap would make them 0700
            if directory != Path("/tmp"):  # noqa: S108 - the tmpfs above
                arguments += ["--perms", "0755", "--dir", str(directory)]
        for path in self.read_only:
            arguments += ["--ro-bind", str(path), str(path)]
        arguments += ["--bind", str(workspace), str(workspace), "--chdir", str(workspace)]
        arguments += ["--remount-ro", "/"]
        if info_fd is not None:
            arguments += ["--info-fd", str(info_fd)]
        if block_fd is not None:
            arguments += ["--block-fd", str(block_fd)]
        if self.setpriv is not None and self.worker_uid is not None:
            # bwrap keeps these two capabilities for setpriv alone, which drops them with
            # every other one when it switches to the worker's uid, before the worker runs.
            arguments += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--"]
            uid = str(self.worker_uid)
            arguments += [self.setpriv, "--reuid", uid, "--regid", uid, "--clear-groups"]
            arguments += ["--inh-caps=-all", "--no-new-privs"]
        return [*arguments, "--", *command]

    def give_workspace(self, workspace: Path) -> None:
        """Hand the staged workspace to the worker's uid (0711: bwrap, as root without
        capabilities, must enter it to make it the working directory)."""
        if self.worker_uid is None:
            return
        uid = self.worker_uid
        for current, directories, files in os.walk(workspace):
            for name in [*directories, *files]:
                os.lchown(os.path.join(current, name), uid, uid)
            os.lchown(current, uid, uid)
        workspace.chmod(0o711)

    def probe(self) -> None:
        """Run `true` in a sandbox exactly like a job's; SandboxUnavailable if that fails."""
        with tempfile.TemporaryDirectory(prefix="workflow-sandbox-probe-") as directory:
            workspace = Path(directory)
            self.give_workspace(workspace)
            command = self.arguments(["true"], workspace=workspace, network=False, tmp_size=1 << 20)
            try:
                result = subprocess.run(
                    command,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    timeout=PROBE_TIMEOUT_SECONDS,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as error:
                raise SandboxUnavailable(f"bwrap cannot run here: {error}") from error
        if result.returncode != 0:
            said = result.stderr.decode("utf-8", "replace").strip()
            raise SandboxUnavailable(f"bwrap cannot run here (exit {result.returncode}): {said}")


def read_info(descriptor: int) -> int:
    """The pid (in our pid namespace) of the sandbox's init, from bwrap's `--info-fd`."""
    data = b""
    while True:
        ready, _, _ = select.select([descriptor], [], [], INFO_TIMEOUT_SECONDS)
        chunk = os.read(descriptor, 4096) if ready else b""
        if not chunk:
            raise OSError("bwrap ended before the sandbox was ready (see the job's log)")
        data += chunk
        try:
            pid = json.loads(data)["child-pid"]
        except ValueError:
            continue
        if isinstance(pid, int) and pid > 0:
            return pid
        raise OSError(f"bwrap reported no usable child pid: {data!r}")
