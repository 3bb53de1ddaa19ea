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
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from workflow_testkit.edc.connectors import free_port
from workflow_testkit.polling import poll
from workflow_testkit.provisioner import FINAL_GRANT_STATES
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
    def legacy_endpoint(self) -> str:
        return f"{self.base_url}/edc/provision?secret={self.endpoint_secret}"

    def dataplane_endpoint(self, asset_id: str) -> str:
        query = f"asset={asset_id}&secret={self.endpoint_secret}"
        return f"{self.base_url}/edc/dataplane/provision?{query}"

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

    def admin(self, path: str, **params: Any) -> Any:
        answer = httpx.get(
            f"{self.base_url}/admin{path}",
            params=params,
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=15,
        )
        answer.raise_for_status()
        return answer.json()

    def metric(self, name: str, **labels: str) -> float:
        """The sum of `name`'s samples (from /metrics) whose labels include `labels`."""
        text = httpx.get(f"{self.base_url}/metrics", timeout=15).text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name and labels.items() <= sample.labels.items()
        )

    def grants(self) -> list[dict[str, Any]]:
        grants: list[dict[str, Any]] = self.admin("/grants")["grants"]
        return grants

    def consumer(self, consumer_id: str) -> dict[str, Any] | None:
        consumers = self.admin("/consumers")["consumers"]
        return next((c for c in consumers if c["id"] == consumer_id), None)

    def grant_for(self, transfer_process_id: str) -> dict[str, Any] | None:
        return next(
            (g for g in self.grants() if g["transferProcessId"] == transfer_process_id), None
        )

    def wait_for_grant(
        self, transfer_process_id: str, states: set[str], timeout: float = 30
    ) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            grant = self.grant_for(transfer_process_id)
            return grant if grant and grant["state"] in states else None

        return poll(reached, timeout, f"grant of {transfer_process_id} in {states}")

    def assert_nothing_left(
        self, consumer_id: str, endpoint: str | None = None, timeout: float = 30
    ) -> None:
        """No workflow-api answering, no consumer files, no grant in a non-final state."""
        consumer = poll(
            lambda: (c := self.consumer(consumer_id)) and c["state"] == "removed" and c,
            timeout,
            f"consumer {consumer_id} removed",
        )
        assert not (self.data_dir / "consumers" / consumer["slug"]).exists()
        open_grants = [
            g
            for g in self.grants()
            if g["consumerId"] == consumer_id and g["state"] not in FINAL_GRANT_STATES
        ]
        assert open_grants == []
        if endpoint is None:
            return
        try:
            httpx.get(f"{endpoint}/conformance", timeout=2)
        except httpx.TransportError:
            return
        raise AssertionError(f"the workflow-api at {endpoint} still answers")
