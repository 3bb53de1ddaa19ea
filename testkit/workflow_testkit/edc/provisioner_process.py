"""A real provisioner for the EDC tests: `provisioner serve` as a subprocess on a free loopback
port (local deployer, SQLite, filesystem storage, an asset catalog), stopped by its pid and
restartable on the same port and data; `provisioner publish` with the same settings offers the
catalog in the provider, as a provider would."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from workflow_testkit.ports import free_port
from workflow_testkit.provisioner_admin import (
    ProvisionerAdmin,
    dataplane_endpoint,
    legacy_endpoint,
)
from workflow_testkit.workflow_api import DUMMY_ASSETS


@dataclass
class ProvisionerProcess:
    data_dir: Path
    environment: dict[str, str]
    port: int = field(default_factory=free_port)
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    endpoint_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    assets_dir: Path = DUMMY_ASSETS
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    @property
    def admin_api(self) -> ProvisionerAdmin:
        return ProvisionerAdmin(self.base_url, self.admin_token, self.data_dir)

    @property
    def legacy_endpoint(self) -> str:
        return legacy_endpoint(self.base_url, self.endpoint_secret)

    def dataplane_endpoint(self, asset_id: str) -> str:
        return dataplane_endpoint(self.base_url, asset_id, self.endpoint_secret)

    def settings(self) -> dict[str, str]:
        """The process environment: no PROVISIONER_* of ours leaks in, `environment` on top."""
        return {
            key: value for key, value in os.environ.items() if not key.startswith("PROVISIONER_")
        } | {
            "PROVISIONER_PUBLIC_URL": self.base_url,
            "PROVISIONER_DATA_DIR": str(self.data_dir),
            "PROVISIONER_ASSETS_DIR": str(self.assets_dir),
            "PROVISIONER_ADMIN_TOKEN": self.admin_token,
            "PROVISIONER_EDC_ENDPOINT_SECRET": self.endpoint_secret,  # EDC sends it in the URL
            "PROVISIONER_RECONCILE_INTERVAL_SECONDS": "0.2",
            "PROVISIONER_SUPERVISE_INTERVAL_SECONDS": "1",
            **self.environment,
        }

    def publish(self, *, dry_run: bool = False) -> str:
        """`provisioner publish`: the catalog into the provider's EDC; its report (exit code 0)."""
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        command = [sys.executable, "-m", "provisioner", "publish", *(["--dry-run"] * dry_run)]
        done = subprocess.run(
            command,
            env=self.settings(),
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        assert done.returncode == 0, f"provisioner publish: {done.stdout}{done.stderr[-3000:]}"
        return done.stdout

    def start(self, timeout: float = 60) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        environment = self.settings()
        command = [sys.executable, "-m", "provisioner", "serve", "--host", "127.0.0.1"]
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [*command, "--port", str(self.port)],
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"provisioner exited: {self.tail()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"provisioner not ready: {self.tail()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def tail(self, size: int = 4000) -> str:
        return self.log_file.read_text(errors="replace")[-size:] if self.log_file.exists() else ""

    def metric(self, name: str, **labels: str) -> float:
        """The sum of `name`'s samples (from /metrics) whose labels include `labels`."""
        text = httpx.get(f"{self.base_url}/metrics", timeout=15).text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name and labels.items() <= sample.labels.items()
        )
