"""A provisioner killed with SIGKILL at each step resumes to the right end state after a restart."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from workflow_testkit.edc_standin.fixture import EdcStandIn
from workflow_testkit.polling import poll
from workflow_testkit.ports import bound_socket
from workflow_testkit.provisioner import (
    ENDPOINT_SECRET,
    consumer_directories,
    remove_leftover_deployments,
)
from workflow_testkit.provisioner_admin import ProvisionerAdmin
from workflow_testkit.workflow_api import DUMMY_ASSETS

EDC = "https://w3id.org/edc/v0.0.1/ns/"


class ProvisionerProcess:
    """`python -m provisioner serve` with PROVISIONER_* settings; killable, restartable."""

    def __init__(self, data_dir: Path, management_url: str, **settings: str) -> None:
        sock = bound_socket()
        self.port = sock.getsockname()[1]
        sock.close()
        self.data_dir = data_dir
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.admin_token = secrets.token_urlsafe(32)
        self.env = {
            **os.environ,
            "PROVISIONER_PUBLIC_URL": self.base_url,
            "PROVISIONER_DATA_DIR": str(data_dir),
            "PROVISIONER_ASSETS_DIR": str(DUMMY_ASSETS),
            "PROVISIONER_EDC_MANAGEMENT_URL": management_url,
            "PROVISIONER_ADMIN_TOKEN": self.admin_token,
            "PROVISIONER_EDC_ENDPOINT_SECRET": ENDPOINT_SECRET,
            "PROVISIONER_RECONCILE_INTERVAL_SECONDS": "0.2",
            "PROVISIONER_SUPERVISE_INTERVAL_SECONDS": "1",
            **{f"PROVISIONER_{key.upper()}": value for key, value in settings.items()},
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.data_dir / "provisioner.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "provisioner", "serve", "--port", str(self.port)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        poll(self._healthy, 30, "the provisioner to start")

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()

    @property
    def admin_api(self) -> ProvisionerAdmin:
        return ProvisionerAdmin(self.base_url, self.admin_token, self.data_dir)

    def consumer_state(self, consumer_id: str) -> str | None:
        consumer = self.admin_api.consumer(consumer_id)
        return consumer["state"] if consumer else None


@pytest.fixture
def crashable(tmp_path: Path, edc_standin: EdcStandIn) -> Iterator[Any]:
    started: list[ProvisionerProcess] = []

    def make(**settings: str) -> ProvisionerProcess:
        data_dir = tmp_path / f"provisioner-{len(started)}"
        data_dir.mkdir()
        running = ProvisionerProcess(data_dir, edc_standin.management_url, **settings)
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()
        remove_leftover_deployments(
            running.data_dir, f"sqlite:///{running.data_dir / 'provisioner.db'}"
        )


def _accepted_callbacks(edc: EdcStandIn, transfer_id: str, kind: str = "provision") -> int:
    return len([c for c in edc.world.callbacks(transfer_id, kind) if c.status == 204])


def test_killed_while_deploying_resumes_and_calls_back_once(
    crashable: Any, edc_standin: EdcStandIn
) -> None:
    provisioner = crashable()
    provisioner.start()
    process = edc_standin.world.new_transfer(asset_id="echo", consumer_id="alice")
    sent = edc_standin.driver.send_legacy_provision(
        process.id, endpoint=f"{provisioner.base_url}/edc/provision?secret={ENDPOINT_SECRET}"
    )
    assert sent.status == 200
    provisioner.kill()  # the grant is persisted; the deployment has barely started
    assert _accepted_callbacks(edc_standin, process.id) == 0

    provisioner.start()
    edc_standin.driver.wait_for_callback(process.id, "provision", timeout=60)
    poll(
        lambda: (g := provisioner.admin_api.grant_for(process.id)) and g["state"] == "active",
        30,
        "active",
    )
    time.sleep(1)
    assert _accepted_callbacks(edc_standin, process.id) == 1
    consumers = provisioner.admin_api.get("/consumers")["consumers"]
    assert len(consumers) == 1 and consumers[0]["state"] == "ready"
    assert len(consumer_directories(provisioner.data_dir)) == 1


def test_killed_after_edc_took_the_callback_but_before_the_answer(
    crashable: Any, edc_standin: EdcStandIn
) -> None:
    """EDC processed the callback, the answer never arrived, the provisioner died: on restart
    EDC answers 409 (the transfer moved on); the provisioner asks EDC and settles on active."""
    provisioner = crashable()
    provisioner.start()
    world = edc_standin.world
    process = world.new_transfer(asset_id="echo", consumer_id="bob")
    world.drop_next_callbacks(1000, after_processing=True)
    edc_standin.driver.send_legacy_provision(
        process.id, endpoint=f"{provisioner.base_url}/edc/provision?secret={ENDPOINT_SECRET}"
    )
    edc_standin.driver.wait_for_state(process.id, "PROVISIONED", timeout=60)
    provisioner.kill()
    with world.lock:
        world.faults.clear()
        world.transfer_processes[process.id].transition("STARTED")

    provisioner.start()
    grant = poll(
        lambda: (g := provisioner.admin_api.grant_for(process.id)) and g["state"] == "active" and g,
        30,
        "active",
    )
    assert grant["lastError"] is None
    assert provisioner.consumer_state("bob") == "ready"


def test_killed_while_revoking_finishes_the_deprovisioning(
    crashable: Any, edc_standin: EdcStandIn
) -> None:
    provisioner = crashable()
    provisioner.start()
    world, driver = edc_standin.world, edc_standin.driver
    address = {
        "type": "ProvisionHttp",
        "baseUrl": f"{provisioner.base_url}/edc/dataplane/provision"
        f"?asset=echo&secret={ENDPOINT_SECRET}",
    }
    process = world.new_transfer(asset_id="echo", consumer_id="carol", data_address=address)
    world.add_data_flow(process.id)
    driver.send_dataplane_provision(process.id)
    driver.wait_for_callback(process.id, "provision", timeout=60)
    world.fail_next_callbacks(1000, status=503)  # the deprovision callback cannot get through
    driver.terminate(process.id)
    assert driver.send_dataplane_deprovision(process.id).status == 200
    poll(lambda: world.callbacks(process.id, "deprovision"), 30, "a deprovision attempt")
    provisioner.kill()
    with world.lock:
        world.faults.clear()

    provisioner.start()
    driver.wait_for_callback(process.id, "deprovision", timeout=60)
    poll(lambda: provisioner.consumer_state("carol") == "removed", 60, "teardown")
    assert provisioner.admin_api.grant_for(process.id)["state"] == "revoked"  # type: ignore[index]
    assert consumer_directories(provisioner.data_dir) == []


def test_killed_during_the_grace_period_still_tears_down(
    crashable: Any, edc_standin: EdcStandIn
) -> None:
    provisioner = crashable(expiry_grace_seconds="3")
    provisioner.start()
    world, driver = edc_standin.world, edc_standin.driver
    process = world.new_transfer(asset_id="echo", consumer_id="dave")
    endpoint = f"{provisioner.base_url}/edc/provision?secret={ENDPOINT_SECRET}"
    driver.send_legacy_provision(process.id, endpoint=endpoint)
    callback = driver.wait_for_callback(process.id, "provision", timeout=60)
    world.transfer_processes[process.id].transition("TERMINATED")
    assert driver.send_legacy_deprovision(process.id, endpoint=endpoint).status == 200
    poll(lambda: provisioner.admin_api.grant_for(process.id)["state"] == "revoked", 30, "revoked")  # type: ignore[index]
    assert provisioner.consumer_state("dave") == "ready", "kept during the grace period"
    provisioner.kill()

    provisioner.start()
    poll(lambda: provisioner.consumer_state("dave") == "removed", 60, "teardown after grace")
    assert consumer_directories(provisioner.data_dir) == []
    secret = callback.body["contentDataAddress"]["properties"][f"{EDC}authCode"].removeprefix(
        "Bearer "
    )
    response = httpx.get(
        f"{provisioner.base_url}/credentials", headers={"Authorization": f"Bearer {secret}"}
    )
    assert response.status_code == 404


def test_workflow_api_that_dies_is_restarted(crashable: Any, edc_standin: EdcStandIn) -> None:
    provisioner = crashable()
    provisioner.start()
    process = edc_standin.world.new_transfer(asset_id="echo", consumer_id="erin")
    edc_standin.driver.send_legacy_provision(
        process.id, endpoint=f"{provisioner.base_url}/edc/provision?secret={ENDPOINT_SECRET}"
    )
    callback = edc_standin.driver.wait_for_callback(process.id, "provision", timeout=60)
    secret = callback.body["contentDataAddress"]["properties"][f"{EDC}authCode"].removeprefix(
        "Bearer "
    )
    credentials = httpx.get(
        f"{provisioner.base_url}/credentials", headers={"Authorization": f"Bearer {secret}"}
    ).json()
    os.kill(_pid_listening(credentials["endpoint"]), signal.SIGKILL)

    def answers() -> bool:
        try:
            return httpx.get(f"{credentials['endpoint']}/conformance", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    time.sleep(0.5)
    poll(answers, 60, "the workflow-api to be restarted")
    with httpx.Client(
        base_url=credentials["endpoint"],
        headers={"Authorization": f"Bearer {credentials['token']}"},
    ) as client:
        assert [p["id"] for p in client.get("/processes").json()["processes"]] == ["echo"]


def _pid_listening(endpoint: str) -> int:
    port = int(endpoint.rsplit(":", 1)[1])
    output = subprocess.run(
        ["ss", "-ltnpH", f"sport = :{port}"], check=True, capture_output=True, text=True
    ).stdout
    return int(output.split("pid=")[1].split(",")[0])
