"""Run an image's own command on this machine, as close to its container as we can without Docker.

`ContainerOnHost` reads the final stage of a Dockerfile and maps the container's paths to this
machine's: the venv the image builds (`/opt/venv`) to the project's venv, what the image COPYs
from the repository to the repository files themselves, its VOLUMEs, WORKDIR and home to fresh
directories. The environment is the base image's plus the Dockerfile's ENV (paths mapped) plus
only what the caller passes: what `docker run -e` would add.

`in_private_network` runs a server with the image's exact command in a network namespace of its
own (`unshare -rn`), so it binds the address and port the image says; probes and HEALTHCHECK
commands run inside the same namespace (netns_driver.py).
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockerfile_lint.parser import VARIABLE, Dockerfile
from dockerfile_lint.rules import REPOSITORY

DRIVER = Path(__file__).with_name("netns_driver.py")
VENV = Path(sys.prefix)  # the tests run in the project's venv: what the image's /opt/venv holds
# What the base images set before our ENV (docker inspect of python:3.11.*-slim-bookworm).
BASE_ENVIRONMENT = {
    "python": {
        "PATH": "/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
    },
    "eclipse-temurin": {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "en_US.UTF-8",
    },
}
HOME = "/nonexistent"  # the home of the images' user 10001


@dataclass
class ContainerOnHost:
    dockerfile: Dockerfile
    scratch: Path  # where VOLUMEs, WORKDIR and home go
    mounts: dict[str, Path] = field(default_factory=dict)  # extra container path -> host path

    def __post_init__(self) -> None:
        final = self.dockerfile.final
        paths: dict[str, Path] = {"/opt/venv": VENV}
        for stage, _, flags, sources, target in self.dockerfile.copies():
            if stage is final and not flags and len(sources) == 1:
                paths[target.rstrip("/")] = REPOSITORY / sources[0].rstrip("/")
        for index, volume in enumerate(self.dockerfile.volumes):
            paths.setdefault(volume, self._fresh(f"volume-{index}"))
        workdir = self.dockerfile.workdir
        if workdir is not None and self._lookup(paths, workdir) is None:
            paths[workdir] = self._fresh("workdir")
        paths[HOME] = self.scratch / "nonexistent"  # never created, as in the image
        paths.update(self.mounts)
        self.paths = paths

    def _fresh(self, name: str) -> Path:
        path = self.scratch / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    @staticmethod
    def _lookup(paths: Mapping[str, Path], container_path: str) -> str | None:
        for prefix in sorted(paths, key=len, reverse=True):
            if container_path == prefix or container_path.startswith(prefix.rstrip("/") + "/"):
                return str(paths[prefix]) + container_path[len(prefix.rstrip("/")) :]
        return None

    def host_path(self, value: str) -> str:
        """`value` with container paths (also in `a:b` lists such as PATH) mapped to this host."""
        return ":".join(self._lookup(self.paths, part) or part for part in value.split(":"))

    @property
    def base_environment(self) -> dict[str, str]:
        base = self.dockerfile.final.base.split(":")[0].rsplit("/", 1)[-1]
        return dict(BASE_ENVIRONMENT[base])

    def environment(self, given: Mapping[str, str] | None = None) -> dict[str, str]:
        base = self.base_environment
        environment = {**base, "HOME": HOME}
        for name, value in self.dockerfile.final.environment.items():
            expanded = VARIABLE.sub(
                lambda m: base.get(m.group("braced") or m.group("bare") or "", ""), value
            )
            environment[name] = expanded
        environment.update(given or {})
        return {name: self.host_path(value) for name, value in environment.items()}

    @property
    def cwd(self) -> Path:
        workdir = self.dockerfile.workdir or "/"
        return Path(self.host_path(workdir))

    def argv(self, command: Sequence[str]) -> list[str]:
        return [self.host_path(part) if part.startswith("/") else part for part in command]


@functools.cache
def private_network_reason() -> str | None:
    """None when `unshare -rn` works here, else why not."""
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    try:
        subprocess.run(["unshare", "-rn", "true"], check=True, capture_output=True, timeout=10)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        return f"no user and network namespaces here (unshare -rn: {error})"
    return None


def in_private_network(job: Mapping[str, Any], timeout: float = 180) -> dict[str, Any]:
    """Run netns_driver.py with `job` in a fresh network namespace; its JSON result."""
    done = subprocess.run(
        ["unshare", "-rn", sys.executable, str(DRIVER)],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"the driver failed ({done.returncode}): {done.stderr[-5000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def port_of(url: str) -> int:
    match = re.search(r":(\d+)(/|$)", url)
    assert match, url
    return int(match.group(1))
