"""A real provisioner for tests: uvicorn on loopback, talking to the stand-in EDC over HTTP."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from sqlmodel import Session, select

from provisioner.app import create_app
from provisioner.deployers.base import ConsumerSpec
from provisioner.deployers.local.deployer import LocalDeployer
from provisioner.grants.models import Consumer, ConsumerState, make_engine
from provisioner.services import Parts, Services
from provisioner.settings import Settings
from provisioner.tokens.issuing import workflow_api_audience
from workflow_testkit.sandbox import sandbox_settings
from workflow_testkit.workflow_api import DUMMY_ASSETS, ThreadedServer, bound_socket

T = TypeVar("T")
FINAL_GRANT_STATES = {"revoked", "failed"}
ENDPOINT_SECRET = "endpoint-secret-of-the-tests"  # what EDC appends to its provisioning URLs


def consumer_directories(data_dir: Path) -> list[Path]:
    """The consumers' data directories (hidden entries are the deployer's, e.g. the spare log)."""
    root = data_dir / "consumers"
    return [p for p in root.iterdir() if not p.name.startswith(".")] if root.exists() else []


def eventually(check: Callable[[], T | None], timeout: float = 30, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


@dataclass
class RunningProvisioner:
    settings: Settings
    server: ThreadedServer
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return self.settings.base_url

    @property
    def services(self) -> Services:
        app: Any = self.server.server.config.app
        services: Services = app.state.services
        return services

    @property
    def endpoint_query(self) -> str:
        """What the provisioning URLs configured in EDC end with: `secret=<it>` (or nothing)."""
        secret = self.settings.edc_endpoint_secret
        return f"secret={secret.get_secret_value()}" if secret else ""

    @property
    def legacy_endpoint(self) -> str:
        query = self.endpoint_query
        return f"{self.base_url}/edc/provision" + (f"?{query}" if query else "")

    def dataplane_endpoint(self, asset_id: str) -> str:
        query = self.endpoint_query
        return f"{self.base_url}/edc/dataplane/provision?asset={asset_id}" + (
            f"&{query}" if query else ""
        )

    @property
    def admin(self) -> httpx.Client:
        token = self.settings.admin_token.get_secret_value()
        client = httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        self.clients.append(client)
        return client

    def grants(self, **params: Any) -> list[dict[str, Any]]:
        grants: list[dict[str, Any]] = self.admin.get("/admin/grants", params=params).json()[
            "grants"
        ]
        return grants

    def consumers(self) -> list[dict[str, Any]]:
        consumers: list[dict[str, Any]] = self.admin.get("/admin/consumers").json()["consumers"]
        return consumers

    def consumer(self, consumer_id: str) -> dict[str, Any] | None:
        return next((c for c in self.consumers() if c["id"] == consumer_id), None)

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

        return eventually(reached, timeout, f"grant of {transfer_process_id} in {states}")

    def credentials(self, secret: str) -> dict[str, Any]:
        response = httpx.get(
            f"{self.base_url}/credentials", headers={"Authorization": f"Bearer {secret}"}
        )
        assert response.status_code == 200, response.text
        document: dict[str, Any] = response.json()
        return document

    def assert_nothing_left(
        self, consumer_id: str, endpoint: str | None = None, timeout: float = 30
    ) -> None:
        """No process, no files, no rows in a non-final state."""
        consumer = eventually(
            lambda: (c := self.consumer(consumer_id)) and c["state"] == "removed" and c,
            timeout,
            f"consumer {consumer_id} removed",
        )
        assert not (self.settings.data_dir / "consumers" / consumer["slug"]).exists()
        open_grants = [
            g
            for g in self.grants()
            if g["consumerId"] == consumer_id and g["state"] not in FINAL_GRANT_STATES
        ]
        assert open_grants == []
        if endpoint is not None:
            try:
                httpx.get(f"{endpoint}/conformance", timeout=2)
            except httpx.TransportError:
                pass
            else:
                raise AssertionError(f"the workflow-api at {endpoint} still answers")

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        self.server.stop()


def remove_leftover_deployments(data_dir: Path, database_url: str) -> None:
    """Whatever a test left running (workflow-apis outlive their provisioner by design)."""
    engine = make_engine(database_url)
    with Session(engine) as session:
        consumers = list(
            session.exec(select(Consumer).where(Consumer.state != ConsumerState.REMOVED))
        )
    engine.dispose()
    deployer = LocalDeployer(root=data_dir / "consumers", workflow_api_env={})
    for consumer in consumers:
        spec = ConsumerSpec(consumer.id, consumer.slug, workflow_api_audience(consumer.slug))
        deployer.remove(spec, dict(consumer.detail))


def provisioner_settings(
    data_dir: Path, port: int, management_url: str | None, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "public_url": f"http://127.0.0.1:{port}",
        "data_dir": data_dir,
        "assets_dir": DUMMY_ASSETS,
        "edc_management_url": management_url,
        "admin_token": secrets.token_urlsafe(32),
        "reconcile_interval_seconds": 0.2,
        "supervise_interval_seconds": 1.0,
        "callback_deadline_seconds": 20,
        "local_sandbox": sandbox_settings()["sandbox"],
        "edc_endpoint_secret": ENDPOINT_SECRET,
    }
    values.update(overrides)
    return Settings(**values)


def start_provisioner(
    data_dir: Path, management_url: str | None, parts: Parts | None = None, **overrides: Any
) -> RunningProvisioner:
    data_dir.mkdir(parents=True, exist_ok=True)
    sock = bound_socket()
    settings = provisioner_settings(data_dir, sock.getsockname()[1], management_url, **overrides)
    server = ThreadedServer(create_app(settings, parts), sock)
    server.start()
    return RunningProvisioner(settings=settings, server=server)
