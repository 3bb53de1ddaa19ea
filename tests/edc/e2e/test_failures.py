"""What a hostile caller, a failing provisioner or a second consumer does to a real EDC flow: a
forged provision request deploys nothing; a provisioner restarted mid-flow or down while EDC
provisions converges; two consumers' contracts at once stay apart."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.edc.e2e.lifecycle import Running, assert_ended, run_echo, start_echo_transfer
from workflow_testkit.edc.connectors import Connector
from workflow_testkit.edc.dataspace import Dataspace


def test_a_forged_provision_request_deploys_nothing(dataspace: Dataspace) -> None:
    space, provisioner = dataspace, dataspace.provisioner
    before = {grant["id"] for grant in provisioner.admin_api.grants()}
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
    assert {grant["id"] for grant in provisioner.admin_api.grants()} == before
    assert provisioner.admin_api.grant_for(forged_flow) is None


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


def test_the_provisioner_down_while_edc_provisions_converges(dataspace: Dataspace) -> None:
    """EDC keeps re-sending the provision request while the provisioner is down (0.15.1: many
    times a second); once it is back, exactly one grant serves the transfer, and the retries
    that reach it do not slow it down: its health answers and the provisioning stay fast."""
    space, provisioner = dataspace, dataspace.provisioner
    agreement = space.negotiate("echo")
    provisioner.stop()
    try:
        transfer = space.transfer(agreement)
        flow = space.provider_transfer(transfer)
        time.sleep(2)  # EDC's retries hit a closed port
        assert space.state(space.consumer, transfer) != "STARTED"
    finally:
        provisioner.start()
    back = time.monotonic()
    with ThreadPoolExecutor(1) as pool:
        probing = pool.submit(_answer_times, provisioner.base_url, FLOOD_WINDOW_SECONDS)
        access = space.workflow_access(transfer)
        answer_times = probing.result()
    usable = time.monotonic() - back
    run_echo(access, "after the outage")
    assert [g["transferProcessId"] for g in provisioner.admin_api.grants()].count(flow) == 1
    grant = provisioner.admin_api.wait_for_grant(flow, {"active"})

    # The provisioner's metrics count from its restart: what EDC sent once it was back.
    received = provisioner.metric("provisioner_requests_total", kind="provision")
    accepted = provisioner.metric(
        "provisioner_requests_total", kind="provision", outcome="accepted"
    )
    provisioning = provisioner.metric("provisioner_provisioning_seconds_sum")
    print(
        f"\nEDC {space.version}, provisioner back after an outage: {received:.0f} provision"
        f" request(s) received ({accepted:.0f} accepted); provisioned in {provisioning:.2f} s;"
        f" the consumer's access usable {usable:.1f} s after the restart; {len(answer_times)}"
        f" health answers in {FLOOD_WINDOW_SECONDS} s, slowest {max(answer_times) * 1000:.0f} ms"
    )
    assert received >= 1 and accepted >= 1
    assert max(answer_times) < HEALTH_ANSWER_BOUND_SECONDS, answer_times
    assert provisioning < PROVISIONING_BOUND_SECONDS

    space.terminate(transfer)
    assert_ended(space, Running(transfer, flow, grant["consumerId"], access))


# While EDC's retries arrive after the restart: the provisioner's /healthz answers within this
# (it answers in a few ms when idle; a loaded 2-core machine adds scheduling delays) ...
FLOOD_WINDOW_SECONDS = 3.0
HEALTH_ANSWER_BOUND_SECONDS = 1.0
# ... and provisioning (first accepted request -> EDC took the callback: one workflow-api
# started, 1-3 s here) is not held up by the retries.
PROVISIONING_BOUND_SECONDS = 15.0


def _answer_times(base_url: str, seconds: float) -> list[float]:
    """How long each /healthz took, asked every 50 ms for `seconds`."""
    times = []
    end = time.monotonic() + seconds
    with httpx.Client(base_url=base_url, timeout=10) as client:
        while time.monotonic() < end:
            begin = time.monotonic()
            assert client.get("/healthz").status_code == 200
            times.append(time.monotonic() - begin)
            time.sleep(0.05)
    return times


def test_two_consumers_contracts_at_once(dataspace: Dataspace, tmp_path: Path) -> None:
    space = dataspace
    second = Connector(
        space.version, "consumer", tmp_path / "consumer-2", {"edc.participant.id": "consumer-2"}
    )
    second.start()
    try:
        with ThreadPoolExecutor(2) as pool:
            first_run, second_run = pool.map(
                lambda consumer: start_echo_transfer(space, consumer=consumer),
                [space.consumer, second],
            )
        assert {first_run.consumer_id, second_run.consumer_id} == {"consumer", "consumer-2"}
        assert first_run.access["endpoint"] != second_run.access["endpoint"]
        run_echo(first_run.access, "first")
        run_echo(second_run.access, "second")
        intruder = httpx.get(
            f"{first_run.access['endpoint']}/jobs",
            headers={"Authorization": f"Bearer {second_run.access['token']}"},
            timeout=10,
        )
        assert intruder.status_code == 401
        space.terminate(first_run.transfer)
        space.terminate(second_run.transfer, second)
        assert_ended(space, first_run)
        assert_ended(space, second_run, second)
    finally:
        second.stop()
