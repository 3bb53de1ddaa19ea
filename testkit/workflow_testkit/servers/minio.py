"""A real MinIO server for the test session, for what moto does not check: credentials,
signatures, per-user policies (AccessDenied), MinIO's admin API.

The binary is `WORKFLOW_TESTS_MINIO_BINARY`, else `minio` in the tools cache that
`.ci/build-tools.sh` fills (`~/.cache/workflow-middle-layer/tools/bin`), else on the `PATH`.
Without it the tests that need MinIO are skipped, or fail when `WORKFLOW_TESTS_REQUIRE_MINIO=1`
(CI). The server runs from a private temporary directory and listens on 127.0.0.1 only (API and
console), on free ports.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from minio import Minio

if TYPE_CHECKING:
    from workflow_testkit.servers.s3 import S3Server

from workflow_common.s3 import make_s3_client
from workflow_testkit.ports import free_port

# Loopback-only throwaway credentials of the test server (MinIO wants >= 8 characters).
TEST_ROOT_USER = "workflow-tests-root"
TEST_ROOT_PASSWORD = "workflow-tests-root-password"
_START_TIMEOUT_SECONDS = 60
_STOP_TIMEOUT_SECONDS = 10


class MinioUnavailableError(RuntimeError):
    """No MinIO server binary was found."""


@dataclass(frozen=True)
class MinioServer:
    endpoint: str  # host:port
    root_user: str
    root_password: str
    directory: Path

    def client(self, access_key: str | None = None, secret_key: str | None = None) -> Minio:
        """A client with the root credentials, or with the given ones."""
        return make_s3_client(
            self.endpoint,
            access_key or self.root_user,
            secret_key or self.root_password,
            secure=False,
            region="us-east-1",
        )

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = (self.directory / "server.log").read_text(errors="replace")
        except FileNotFoundError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])


def find_minio() -> Path:
    candidates = [
        os.environ.get("WORKFLOW_TESTS_MINIO_BINARY"),
        str(Path.home() / ".cache" / "workflow-middle-layer" / "tools" / "bin" / "minio"),
        shutil.which("minio"),
    ]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise MinioUnavailableError(
        "no MinIO server binary (WORKFLOW_TESTS_MINIO_BINARY, the tools cache of"
        " .ci/build-tools.sh, or `minio` on the PATH)"
    )


def _wait_ready(server: MinioServer, process: subprocess.Popen[bytes]) -> None:
    url = f"http://{server.endpoint}/minio/health/ready"
    deadline = time.monotonic() + _START_TIMEOUT_SECONDS
    with httpx.Client(timeout=1, trust_env=False) as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"MinIO exited ({process.returncode}):\n{server.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if http.get(url).status_code == 200:
                    return
            time.sleep(0.1)
    raise RuntimeError(f"MinIO not ready after {_START_TIMEOUT_SECONDS}s:\n{server.log_tail()}")


@contextlib.contextmanager
def running_minio(binary: Path) -> Iterator[MinioServer]:
    """A fresh server in a private temporary directory, stopped and removed on exit."""
    directory = Path(tempfile.mkdtemp(prefix="workflow-tests-minio-"))
    server = MinioServer(
        endpoint=f"127.0.0.1:{free_port()}",
        root_user=TEST_ROOT_USER,
        root_password=TEST_ROOT_PASSWORD,
        directory=directory,
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(directory),  # MinIO keeps its own state (certs dir) under HOME
        "MINIO_ROOT_USER": server.root_user,
        "MINIO_ROOT_PASSWORD": server.root_password,
        "MINIO_BROWSER": "off",
        "MINIO_UPDATE": "off",
    }
    command = [
        str(binary),
        "server",
        "--quiet",
        "--address",
        server.endpoint,
        "--console-address",
        f"127.0.0.1:{free_port()}",
        str(directory / "data"),
    ]
    with (directory / "server.log").open("wb") as log_file:
        process = subprocess.Popen(
            command, env=env, stdout=log_file, stderr=subprocess.STDOUT, cwd=directory
        )
    try:
        _wait_ready(server, process)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=_STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def minio_server(s3_server: S3Server) -> MinioServer:
    """The session's S3 server when it is MinIO (see `servers/s3.py`); skipped otherwise."""
    if s3_server.minio is None:
        pytest.skip("no MinIO server binary; the S3 server is moto")
    return s3_server.minio
