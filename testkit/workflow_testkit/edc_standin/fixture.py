"""The `edc_standin` pytest fixture, and `serve_in_thread` for any ASGI app (the provisioner).

Register with `pytest_plugins = ["workflow_testkit.edc_standin.fixture"]` in the root conftest.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import uvicorn
from starlette.types import ASGIApp

from workflow_testkit.edc_standin.driver import Driver
from workflow_testkit.edc_standin.model import World
from workflow_testkit.edc_standin.server import create_app


@contextmanager
def serve_in_thread(
    app: ASGIApp, *, host: str = "127.0.0.1", timeout: float = 10.0
) -> Iterator[str]:
    """Run `app` with uvicorn in a daemon thread on a port bound before start; yields the base
    URL (`http://127.0.0.1:<port>`) and stops the server on exit."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()


@dataclass
class EdcStandIn:
    """A running stand-in EDC: configure through `world` and `driver`, assert on both."""

    world: World
    driver: Driver
    base_url: str  # http://127.0.0.1:PORT

    @property
    def management_url(self) -> str:
        """`edc.management.endpoint`; legacy callbackAddress = this + "/callback"."""
        return self.world.management_url

    @property
    def provisioning_url(self) -> str:
        """`edc.dataplane.provision.http.endpoint`, the data-plane callbackAddress."""
        return self.world.provisioning_url


class _WorldSlot:
    """The world the session's server serves; each test installs a fresh one."""

    def __init__(self) -> None:
        self.world = World()

    def __call__(self) -> World:
        return self.world


@pytest.fixture(scope="session")
def edc_standin_server() -> Iterator[tuple[str, _WorldSlot]]:
    """One uvicorn server for the session (stopping one costs ~0.2 s); worlds are per test."""
    slot = _WorldSlot()
    with serve_in_thread(create_app(slot)) as base_url:
        yield base_url, slot


@pytest.fixture
def edc_standin(edc_standin_server: tuple[str, _WorldSlot]) -> Iterator[EdcStandIn]:
    """A stand-in EDC with a fresh, empty world and a driver without a legacy endpoint."""
    base_url, slot = edc_standin_server
    world = World(
        management_url=f"{base_url}/management", provisioning_url=f"{base_url}/provisioning"
    )
    slot.world = world
    driver = Driver(world)
    try:
        yield EdcStandIn(world=world, driver=driver, base_url=base_url)
    finally:
        driver.close()
        slot.world = World()  # late requests of this test land in a throwaway world
