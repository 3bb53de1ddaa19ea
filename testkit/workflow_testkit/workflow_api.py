"""Real workflow-api servers for tests: uvicorn on a loopback socket, real tokens, real files."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from data_sidecar.egress import Resolver, system_resolver
from provisioner.tokens.signing_key import SigningKey
from workflow_api.app import create_app
from workflow_api.services import Services
from workflow_api.settings import Settings
from workflow_contracts.tokens import ADMIN_SCOPE, CONSUMER_SCOPE
from workflow_testkit.ports import bound_socket
from workflow_testkit.sandbox import sandbox_settings

REPOSITORY = Path(__file__).resolve().parents[2]
DUMMY_ASSETS = REPOSITORY / "dummy-job" / "assets"
ISSUER = "test-provisioner"
FINISHED = {"successful", "failed", "dismissed"}
# Loopback is not a public address: tests whose inputs or subscribers are loopback servers say so.
ALLOW_LOOPBACK = {"egress_allow_cidrs": ["127.0.0.1/32"]}


class ThreadedServer:
    """A uvicorn server in a thread, serving on a socket bound before the app is built."""

    def __init__(self, app: Any, sock: socket.socket, **options: Any) -> None:
        """`options`: more of uvicorn's settings (e.g. a certificate to serve TLS)."""
        self._sock = sock
        self.server = uvicorn.Server(
            uvicorn.Config(
                app, log_level="warning", lifespan="on", timeout_graceful_shutdown=10, **options
            )
        )
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, daemon=True
        )

    def start(self, timeout: float = 30) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)

    @property
    def url(self) -> str:
        """Where it really listens (a `public_url` may name a proxy in front of it)."""
        host, port = self._sock.getsockname()[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=60)
        self._sock.close()


@dataclass
class RunningApi:
    settings: Settings
    key: SigningKey
    server: ThreadedServer
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def services(self) -> Services:
        app: Any = self.server.server.config.app
        services: Services = app.state.services
        return services

    @property
    def base_url(self) -> str:
        return self.settings.base_url

    def token(self, *, scope: str = CONSUMER_SCOPE, **overrides: Any) -> str:
        claims: dict[str, Any] = {
            "issuer": ISSUER,
            "subject": self.settings.consumer_id,
            "audience": self.settings.token_audience,
            "scope": scope,
        }
        claims.update(overrides)
        return self.key.mint(**claims)

    def client(self, token: str | None = None, **options: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        client = httpx.Client(base_url=self.base_url, headers=headers, timeout=60, **options)
        self.clients.append(client)
        return client

    @property
    def consumer(self) -> httpx.Client:
        return self.client(self.token())

    @property
    def admin(self) -> httpx.Client:
        return self.client(self.token(scope=ADMIN_SCOPE, subject="provisioner"))

    def grant(self, *asset_ids: str) -> None:
        admin = self.admin
        for asset_id in asset_ids:
            admin.put(f"/admin/grants/{asset_id}", json={}).raise_for_status()

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        self.server.stop()


def make_settings(data_dir: Path, jwks: Path, sock: socket.socket, **overrides: Any) -> Settings:
    port = sock.getsockname()[1]
    consumer = overrides.pop("consumer_id", "consumer-a")
    values: dict[str, Any] = {
        "consumer_id": consumer,
        "data_dir": data_dir,
        "assets_dir": DUMMY_ASSETS,
        "public_url": f"http://127.0.0.1:{port}",
        "token_issuer": ISSUER,
        "token_audience": f"workflow-api/{consumer}",
        "jwks_file": jwks,
        "progress_poll_seconds": 0.1,
        "dismiss_grace_seconds": 2.0,
        "subscriber_attempts": 3,
        **sandbox_settings(),
    }
    values.update(overrides)
    return Settings(**values)


def start_api(
    data_dir: Path,
    key: SigningKey,
    *,
    grants: Iterable[str] = (),
    resolver: Resolver = system_resolver,
    **overrides: Any,
) -> RunningApi:
    """`resolver`: a hosts-style table for the egress policy's names (never real DNS)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    jwks = key.write_jwks(data_dir.parent / f"{data_dir.name}-jwks.json")
    sock = bound_socket()
    settings = make_settings(data_dir, jwks, sock, **overrides)
    server = ThreadedServer(create_app(settings, resolver), sock)
    server.start()
    api = RunningApi(settings=settings, key=key, server=server)
    api.grant(*grants)
    return api


def wait_for_job(
    client: httpx.Client, job_id: str, statuses: set[str] = FINISHED, timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        info: dict[str, Any] = client.get(f"/jobs/{job_id}").raise_for_status().json()
        if info["status"] in statuses:
            return info
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {info['status']} after {timeout} s: {info}")
        time.sleep(0.05)


def upload(client: httpx.Client, content: bytes, filename: str = "file.bin") -> dict[str, Any]:
    response = client.post("/uploads", params={"filename": filename}, content=content)
    assert response.status_code == 201, response.text
    document: dict[str, Any] = response.json()
    return document


def execute(client: httpx.Client, process_id: str, inputs: dict[str, Any], **extra: Any) -> str:
    response = client.post(f"/processes/{process_id}/execution", json={"inputs": inputs, **extra})
    assert response.status_code == 201, response.text
    job_id: str = response.json()["jobID"]
    assert response.headers["Location"].endswith(f"/jobs/{job_id}")
    return job_id
