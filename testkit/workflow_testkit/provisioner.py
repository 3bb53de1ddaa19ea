"""A real provisioner for tests: uvicorn on loopback, talking to the stand-in EDC over HTTP."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlmodel import Session, select

from provisioner.app import create_app
from provisioner.deployers.base import ConsumerSpec
from provisioner.deployers.local.deployer import LocalDeployer
from provisioner.grants.models import Consumer, ConsumerState, make_engine
from provisioner.services import Parts, Services
from provisioner.settings import Settings
from provisioner.tokens.issuing import workflow_api_audience
from workflow_testkit.ports import bound_socket
from workflow_testkit.provisioner_admin import (
    ProvisionerAdmin,
    dataplane_endpoint,
    legacy_endpoint,
)
from workflow_testkit.sandbox import sandbox_settings
from workflow_testkit.workflow_api import DUMMY_ASSETS, ThreadedServer

ENDPOINT_SECRET = "endpoint-secret-of-the-tests"  # what EDC appends to its provisioning URLs


def consumer_directories(data_dir: Path) -> list[Path]:
    """The consumers' data directories (hidden entries are the deployer's, e.g. the spare log)."""
    root = data_dir / "consumers"
    return [p for p in root.iterdir() if not p.name.startswith(".")] if root.exists() else []


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
    def admin_api(self) -> ProvisionerAdmin:
        token = self.settings.admin_token.get_secret_value()
        return ProvisionerAdmin(self.base_url, token, self.settings.data_dir)

    @property
    def endpoint_secret(self) -> str | None:
        """What EDC appends to the provisioning URLs configured in it (`secret=<it>`), if set."""
        secret = self.settings.edc_endpoint_secret
        return secret.get_secret_value() if secret else None

    @property
    def legacy_endpoint(self) -> str:
        return legacy_endpoint(self.base_url, self.endpoint_secret)

    def dataplane_endpoint(self, asset_id: str) -> str:
        return dataplane_endpoint(self.base_url, asset_id, self.endpoint_secret)

    @property
    def admin(self) -> httpx.Client:
        client = self.admin_api.client()
        self.clients.append(client)
        return client

    def credentials(self, secret: str) -> dict[str, Any]:
        response = httpx.get(
            f"{self.base_url}/credentials", headers={"Authorization": f"Bearer {secret}"}
        )
        assert response.status_code == 200, response.text
        document: dict[str, Any] = response.json()
        return document

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
