"""What a hostile caller or a failing provisioner does to a real EDC flow: a forged provision
request deploys nothing; a provisioner restarted mid-flow keeps the consumer's access."""

from __future__ import annotations

import uuid

import httpx

from tests.edc.e2e.dataspace import Dataspace
from tests.edc.e2e.lifecycle import assert_ended, run_echo, start_echo_transfer


def test_a_forged_provision_request_deploys_nothing(dataspace: Dataspace) -> None:
    space, provisioner = dataspace, dataspace.provisioner
    before = {grant["id"] for grant in provisioner.grants()}
    forged_flow = str(uuid.uuid4())
    if space.legacy:
        url, body = (
            provisioner.legacy_endpoint,
            {
                "assetId": "echo",
                "transferProcessId": forged_flow,
                "callbackAddress": f"{space.provider.management_url}/callback",
                "resourceDefinitionId": str(uuid.uuid4()),
                "type": "provision",
                "policy": None,
            },
        )
    else:
        url, body = (
            provisioner.dataplane_endpoint("echo"),
            {
                "type": "provision",
                "provisionResourceId": str(uuid.uuid4()),
                "flowId": forged_flow,
                "callbackAddress": space.provider.url("provision", "/provisioning"),
            },
        )

    answer = httpx.post(url, json=body, timeout=15)

    assert 400 <= answer.status_code < 500, answer.text
    assert forged_flow in answer.json()["detail"]
    assert {grant["id"] for grant in provisioner.grants()} == before
    assert provisioner.grant_for(forged_flow) is None


def test_the_provisioner_restarted_mid_flow_keeps_access_and_tears_down(
    dataspace: Dataspace,
) -> None:
    space = dataspace
    running = start_echo_transfer(space)
    run_echo(running.access, "before the restart")

    space.provisioner.stop()
    space.provisioner.start()

    run_echo(running.access, "after the restart")
    space.terminate(running.transfer)
    assert_ended(space, running)
