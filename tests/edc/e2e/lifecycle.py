"""Steps the end-to-end tests share: a consumer's transfer up to a running job, and the checks
that a finished transfer left nothing behind."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from workflow_testkit.edc.connectors import Connector
from workflow_testkit.edc.dataspace import Dataspace, poll
from workflow_testkit.workflow_api import execute, wait_for_job

FINAL_PROVIDER_STATES = {"DEPROVISIONED", "TERMINATED"}
FINAL_CONSUMER_STATES = {"TERMINATED", "DEPROVISIONED"}


@dataclass
class Running:
    transfer: str  # the consumer's transfer process
    flow: str  # the provider's transfer process = the provisioner's transferProcessId
    consumer_id: str
    access: dict[str, str]


def run_echo(access: dict[str, str], message: str = "hello", asset_id: str = "echo") -> None:
    with httpx.Client(
        base_url=access["endpoint"],
        headers={"Authorization": f"Bearer {access['token']}"},
        timeout=30,
        follow_redirects=True,
    ) as client:
        job_id = execute(client, asset_id, {"message": message})
        assert wait_for_job(client, job_id)["status"] == "successful"
        assert client.get(f"/jobs/{job_id}/results/echo").text == message


def start_echo_transfer(
    space: Dataspace, asset_id: str = "echo", consumer: Connector | None = None
) -> Running:
    agreement = space.negotiate(asset_id, consumer)
    transfer = space.transfer(agreement, consumer)
    access = space.workflow_access(transfer, consumer)
    flow = space.provider_transfer(transfer)
    grant = space.provisioner.admin_api.wait_for_grant(flow, {"active"})
    return Running(transfer, flow, grant["consumerId"], access)


def assert_ended(space: Dataspace, running: Running, consumer: Connector | None = None) -> None:
    """EDC's flow in its final state on both sides; nothing of the consumer left."""
    space.wait_state(space.provider, running.flow, FINAL_PROVIDER_STATES)
    space.wait_state(consumer or space.consumer, running.transfer, FINAL_CONSUMER_STATES)
    space.provisioner.admin_api.wait_for_grant(running.flow, {"revoked"})
    space.provisioner.admin_api.assert_nothing_left(running.consumer_id, running.access["endpoint"])
    if space.version != "0.15.1":  # the data plane's flow, left only after our deprovision callback
        poll(
            lambda: space.dataflow_state(running.flow) == "DEPROVISIONED",
            30,
            f"DataFlow {running.flow} DEPROVISIONED (is {space.dataflow_state(running.flow)})",
        )
