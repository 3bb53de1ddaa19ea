"""The warm spare: one pre-started workflow-api that has done its imports (most of its start-up
time) and waits on stdin for its assignment (environment, port, directory, log file), so the
next new consumer starts in a fraction of the time. It exits on end of file, so it dies with the
provisioner, and a spare nobody needed exits when the deployer closes."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
from pathlib import Path

from provisioner.deployers.local.logs import LOG_FILE, SPARE_LOG_FILE
from workflow_common.private_files import open_private, private_dir

log = logging.getLogger(__name__)

KILL_WAIT_SECONDS = 5.0


class Spare:
    """At most one spare workflow-api, started by `prepare`, handed out by `assign`."""

    def __init__(self, *, root: Path, python: str, host: str) -> None:
        self._root = root
        self._python = python
        self._host = host
        self.process: subprocess.Popen[bytes] | None = None

    def prepare(self) -> None:
        """Start one unless a live one is waiting."""
        if self.process is not None and self.process.poll() is None:
            return
        private_dir(self._root)
        environment = {
            "PATH": os.pathsep.join([str(Path(self._python).parent), os.environ.get("PATH", "")]),
            "HOME": os.environ.get("HOME", str(self._root)),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
        }
        command = [self._python, "-m", "workflow_api", "serve", "--settings-from-stdin"]
        try:
            with open_private(self._root / SPARE_LOG_FILE) as log_file:
                self.process = subprocess.Popen(
                    command,
                    cwd=self._root,
                    env=environment,
                    stdin=subprocess.PIPE,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        except OSError as error:
            log.warning("cannot pre-start a spare workflow-api: %s", error)
            self.process = None

    def close(self) -> None:
        """Let the spare go (end of file on its stdin), waiting briefly."""
        spare, self.process = self.process, None
        if spare is None:
            return
        with contextlib.suppress(OSError):
            assert spare.stdin is not None
            spare.stdin.close()
        try:
            spare.wait(timeout=KILL_WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            spare.kill()
            spare.wait()

    def assign(
        self, environment: dict[str, str], port: int, data_dir: Path
    ) -> subprocess.Popen[bytes] | None:
        """Hand the spare to a consumer; None if there is no live spare."""
        spare, self.process = self.process, None
        if spare is None or spare.poll() is not None or spare.stdin is None:
            return None
        assignment = {
            "environment": environment,
            "host": self._host,
            "port": port,
            "directory": str(data_dir),
            "log_file": str(data_dir / LOG_FILE),
        }
        try:
            spare.stdin.write(json.dumps(assignment).encode() + b"\n")
            spare.stdin.close()
        except OSError:
            spare.kill()
            spare.wait()
            return None
        return spare
