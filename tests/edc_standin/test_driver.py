"""The driver sends EDC's requests and classifies the answers as EDC does (reference §1.5, §2.5),
against a throwaway Starlette "provisioner" served over real HTTP."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from workflow_testkit.edc_standin import wire
from workflow_testkit.edc_standin.fixture import EdcStandIn, serve_in_thread
from workflow_testkit.edc_standin.policy import EDC_NAMESPACE

NS = EDC_NAMESPACE
Hook = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class FakeProvisioner:
    """Answers `status`; `before` runs before answering, `after` as a background task."""

    status: int = 200
    received: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)
    before: Hook | None = None
    after: Hook | None = None
    callback_statuses: list[int] = field(default_factory=list)
    api_key: str | None = None  # x-api-key for the callbacks

    def app(self) -> Starlette:
        async def handle(request: Request) -> Response:
            body = await request.json()
            self.received.append((str(request.url), dict(request.headers), body))
            if self.before is not None:
                await self.before(body)
            background = None if self.after is None else BackgroundTask(self.after, body)
            return Response(status_code=self.status, background=background)

        async def moved(request: Request) -> Response:
            return RedirectResponse("/edc/provision", status_code=307)

        return Starlette(
            routes=[
                Route("/edc/provision", handle, methods=["POST"]),
                Route("/edc/dataplane/provision", handle, methods=["POST"]),
                Route("/moved", moved, methods=["POST"]),
            ]
        )

    async def call_back(self, url: str, body: dict[str, Any], *, retry_on_409: bool = True) -> None:
        headers = {} if self.api_key is None else {"x-api-key": self.api_key}
        async with httpx.AsyncClient(timeout=5, verify=False, headers=headers) as http:
            for _ in range(100):
                status = (await http.post(url, json=body)).status_code
                self.callback_statuses.append(status)
                if status != 409 or not retry_on_409:
                    return
                await asyncio.sleep(0.02)


@pytest.fixture(scope="module")
def provisioner_server() -> Iterator[tuple[FakeProvisioner, str]]:
    fake = FakeProvisioner()
    with serve_in_thread(fake.app()) as base_url:
        yield fake, base_url


@pytest.fixture
def provisioner(provisioner_server: tuple[FakeProvisioner, str]) -> tuple[FakeProvisioner, str]:
    """The module's provisioner server with its behaviour and records reset."""
    fake, base_url = provisioner_server
    vars(fake).update(vars(FakeProvisioner()))
    return fake, base_url


def callback_body(request: dict[str, Any]) -> dict[str, Any]:
    return {
        "edctype": "dataspaceconnector:provisioner-callback-request",
        "resourceDefinitionId": request["resourceDefinitionId"],
        "assetId": request["assetId"],
        "resourceName": f"wf-{request['transferProcessId']}",
        "contentDataAddress": {
            "properties": {NS + "type": "HttpData", NS + "baseUrl": "http://p/d"}
        },
        "apiKeyJwt": "unused",
    }


# -- legacy provision ---------------------------------------------------------------------------


def test_legacy_request_goes_out_as_edc_sends_it(
    edc_standin: EdcStandIn, provisioner: tuple[FakeProvisioner, str]
) -> None:
    fake, base_url = provisioner
    world = edc_standin.world
    process = world.new_transfer(transfer_process_id="tp-1")
    endpoint = f"{base_url}/edc/provision?secret=s3cr3t"
    delivery = edc_standin.driver.send_legacy_provision("tp-1", endpoint=endpoint)
    url, headers, body = fake.received[0]
    assert url == endpoint
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert "x-api-key" not in headers and "authorization" not in headers
    assert body == wire.legacy_provision_request(
        process, world.agreements[process.contract_id], management_url=edc_standin.management_url
    )
    assert body["callbackAddress"] == f"{edc_standin.management_url}/callback"
    assert body["policy"]["permissions"] == []  # default scope http.provisioner
    assert delivery == world.sent[0]
    assert (delivery.status, delivery.outcome) == (200, "accepted")


def test_transfer_process_scope_sends_the_full_permissions(
    edc_standin: EdcStandIn, provisioner: tuple[FakeProvisioner, str]
) -> None:
    fake, base_url = provisioner
    edc_standin.world.new_transfer(transfer_process_id="tp-1")
    driver = edc_standin.driver
    driver.legacy_endpoint, driver.policy_scope = f"{base_url}/edc/provision", "transfer.process"
    driver.send_legacy_provision("tp-1")
    permission = fake.received[0][2]["policy"]["permissions"][0]
    assert permission["constraints"][0]["edctype"] == "AndConstraint"


@pytest.mark.parametrize(
    ("status", "outcome", "state"),
    [
        (200, "accepted", "PROVISIONING_REQUESTED"),
        (201, "accepted", "PROVISIONING_REQUESTED"),
        (202, "accepted", "PROVISIONING_REQUESTED"),
        (204, "accepted", "PROVISIONING_REQUESTED"),
        (500, "retry", "PROVISIONING"),
        (503, "retry", "PROVISIONING"),
        (504, "retry", "PROVISIONING"),
        (301, "fatal", "TERMINATING"),
        (400, "fatal", "TERMINATING"),
        (404, "fatal", "TERMINATING"),
        (409, "fatal", "TERMINATING"),
        (505, "fatal", "TERMINATING"),
    ],
)
def test_legacy_provision_answer_classification(
    edc_standin: EdcStandIn,
    provisioner: tuple[FakeProvisioner, str],
    status: int,
    outcome: str,
    state: str,
) -> None:
    fake, base_url = provisioner
    fake.status = status
    process = edc_standin.world.new_transfer()
    delivery = edc_standin.driver.send_legacy_provision(
        process.id, endpoint=f"{base_url}/edc/provision"
    )
    assert (delivery.status, delivery.outcome, process.state) == (status, outcome, state)
    if outcome == "fatal":
        assert process.error_detail is not None and str(status) in process.error_detail
        with pytest.raises(ValueError, match="TERMINATING"):
            edc_standin.driver.send_legacy_provision(
                process.id, endpoint=f"{base_url}/edc/provision"
            )


def test_io_errors_and_timeouts_are_retried(
    edc_standin: EdcStandIn, provisioner: tuple[FakeProvisioner, str]
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/edc/provision"
    process = edc_standin.world.new_transfer()
    refused = edc_standin.driver.send_legacy_provision(process.id, endpoint=closed)
    assert (refused.status, refused.outcome, process.state) == (None, "retry", "PROVISIONING")
    assert refused.error is not None and "ConnectError" in refused.error

    fake, base_url = provisioner
    fake.before = lambda body: asyncio.sleep(0.5)
    edc_standin.driver.client.timeout = httpx.Timeout(0.1)
    slow = edc_standin.driver.send_legacy_provision(
        process.id, endpoint=f"{base_url}/edc/provision"
    )
    assert (slow.status, slow.outcome, process.state) == (None, "retry", "PROVISIONING")


def test_retries_keep_the_resource_definition_id_and_redirects_are_followed(
    edc_standin: EdcStandIn, provisioner: tuple[FakeProvisioner, str]
) -> None:
    fake, base_url = provisioner
    process = edc_standin.world.new_transfer()
    fake.status = 503
    edc_standin.driver.send_legacy_provision(process.id, endpoint=f"{base_url}/edc/provision")
    fake.status = 200
    delivery = edc_standin.driver.send_legacy_provision(process.id, endpoint=f"{base_url}/moved")
    assert delivery.outcome == "accepted"  # OkHttp follows the 307 with the same POST
    first, second = (body["resourceDefinitionId"] for _, _, body in fake.received)
    assert first == second == process.resource_definition_id


# -- legacy deprovision -------------------------------------------------------------------------


def provisioned_and_terminated(edc_standin: EdcStandIn, base_url: str) -> str:
    world = edc_standin.world
    process = world.new_transfer()
    world.lease_seconds = 0
    edc_standin.driver.send_legacy_provision(process.id, endpoint=f"{base_url}/edc/provision")
    request = edc_standin.driver.world.sent[-1].body
    response = httpx.post(
        f"{edc_standin.management_url}/callback/{process.id}/provision",
        json={**callback_body(request), "assetId": "asset-as-called-back"},
    )
    assert response.status_code == 204
    assert process.state == "PROVISIONED"
    edc_standin.driver.terminate(process.id, "contract expired")
    assert (process.state, process.terminations) == ("TERMINATED", ["contract expired"])
    return process.id


@pytest.mark.parametrize(
    ("status", "outcome", "state", "violation"),
    [
        (200, "accepted", "DEPROVISIONED", False),
        (201, "fatal", "DEPROVISIONED", True),
        (202, "fatal", "DEPROVISIONED", True),
        (204, "fatal", "DEPROVISIONED", True),
        (503, "retry", "DEPROVISIONING", False),
        (404, "fatal", "DEPROVISIONED", False),
    ],
)
def test_legacy_deprovision_accepts_exactly_200(
    edc_standin: EdcStandIn,
    provisioner: tuple[FakeProvisioner, str],
    status: int,
    outcome: str,
    state: str,
    violation: bool,
) -> None:
    fake, base_url = provisioner
    tp_id = provisioned_and_terminated(edc_standin, base_url)
    fake.status = status
    delivery = edc_standin.driver.send_legacy_deprovision(
        tp_id, endpoint=f"{base_url}/edc/provision"
    )
    process = edc_standin.world.transfer_processes[tp_id]
    assert (delivery.outcome, process.state) == (outcome, state)
    assert bool(edc_standin.world.protocol_violations) is violation
    assert ("failed to deprovision" in str(process.error_detail)) is (outcome == "fatal")
    provision, deprovision = (body for _, _, body in fake.received)
    assert deprovision["type"] == "deprovision"
    assert deprovision["resourceDefinitionId"] == provision["resourceDefinitionId"]
    assert deprovision["assetId"] == "asset-as-called-back"
    assert deprovision["policy"]["permissions"] != []  # unfiltered


def test_legacy_deprovision_needs_termination_and_a_provisioned_resource(
    edc_standin: EdcStandIn, provisioner: tuple[FakeProvisioner, str]
) -> None:
    fake, base_url = provisioner
    process = edc_standin.world.new_transfer()
    with pytest.raises(ValueError, match="INITIAL"):
        edc_standin.driver.send_legacy_deprovision(process.id, endpoint=f"{base_url}/edc/provision")
    with pytest.raises(TimeoutError):
        edc_standin.driver.wait_for_callback(process.id, "provision", timeout=0.05)
    edc_standin.driver.terminate(process.id)
    delivery = edc_standin.driver.send_legacy_deprovision(
        process.id, endpoint=f"{base_url}/edc/provision"
    )
    assert (delivery.outcome, process.state, fake.received) == ("skipped", "DEPROVISIONED", [])


# -- data plane ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "outcome", "flow_state"),
    [
        (200, "accepted", "PROVISION_REQUESTED"),
        (204, "accepted", "PROVISION_REQUESTED"),
        (503, "retry", "PROVISIONING"),
        (400, "fatal", "PROVISIONING"),
    ],
)
def test_dataplane_request_and_answer_classification(
    edc_standin: EdcStandIn,
    provisioner: tuple[FakeProvisioner, str],
    status: int,
    outcome: str,
    flow_state: str,
) -> None:
    fake, base_url = provisioner
    fake.status = status
    world = edc_standin.world
    base = f"{base_url}/edc/dataplane/provision?asset=wf-1"
    world.new_transfer(
        transfer_process_id="flow-1", data_address={"type": "ProvisionHttp", "baseUrl": base}
    )
    flow = world.add_data_flow("flow-1", resource_ids=["res-1"])
    delivery = edc_standin.driver.send_dataplane_provision("flow-1")
    url, headers, body = fake.received[0]
    assert url == base  # the asset's baseUrl, query included
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert body == {
        "type": "provision",
        "provisionResourceId": "res-1",
        "flowId": "flow-1",
        "callbackAddress": edc_standin.provisioning_url,
    }
    assert (delivery.outcome, flow.state) == (outcome, flow_state)
    assert (flow.error_detail is None) is (outcome == "accepted")


# -- round trips --------------------------------------------------------------------------------


def test_legacy_round_trip_early_callback_is_409_then_provisioned(
    edc_standin: EdcStandIn, provisioner: tuple[FakeProvisioner, str]
) -> None:
    fake, base_url = provisioner
    world, driver = edc_standin.world, edc_standin.driver
    world.management_api_key = "password"
    process = world.new_transfer()

    async def too_early(request: dict[str, Any]) -> None:  # calls back before answering
        url = f"{request['callbackAddress']}/{request['transferProcessId']}/provision"
        await fake.call_back(url, callback_body(request), retry_on_409=False)

    async def later(request: dict[str, Any]) -> None:  # answers first, then retries on 409
        url = f"{request['callbackAddress']}/{request['transferProcessId']}/provision"
        await fake.call_back(url, callback_body(request))

    fake.before, fake.after, fake.api_key = too_early, later, "password"
    driver.legacy_endpoint = f"{base_url}/edc/provision"
    assert driver.send_legacy_provision(process.id).outcome == "accepted"
    driver.wait_for_callback(process.id, "provision")
    assert process.state == "PROVISIONED"
    assert process.content_property("baseUrl") == "http://p/d"
    # leased while EDC waits for the answer, and for lease_seconds after it
    assert fake.callback_statuses[0] == 409
    statuses = [exchange.status for exchange in world.callbacks(process.id)]
    assert (statuses[0], statuses[-1], set(statuses)) == (409, 204, {409, 204})


def test_dataplane_round_trip(
    edc_standin: EdcStandIn, provisioner: tuple[FakeProvisioner, str]
) -> None:
    fake, base_url = provisioner
    world, driver = edc_standin.world, edc_standin.driver
    base = f"{base_url}/edc/dataplane/provision"
    process = world.new_transfer(data_address={"type": "ProvisionHttp", "baseUrl": base})
    world.add_data_flow(process.id)
    address = {
        "properties": {
            NS + "type": "https://w3id.org/idsa/v4.1/HTTP",
            NS + "endpoint": "https://wf/",
        }
    }

    async def later(request: dict[str, Any]) -> None:
        management = edc_standin.management_url
        async with httpx.AsyncClient(verify=False) as http:
            tp = (await http.get(f"{management}/v3/transferprocesses/{request['flowId']}")).json()
            agreement = (
                await http.get(f"{management}/v3/contractagreements/{tp['contractId']}")
            ).json()
            assert agreement["consumerId"] == "consumer"
        path = f"{request['callbackAddress']}/{request['flowId']}/{request['provisionResourceId']}"
        body = {"dataAddress": address} if request["type"] == "provision" else {}
        await fake.call_back(f"{path}/{request['type']}", body)

    fake.after = later
    assert driver.send_dataplane_provision(process.id).outcome == "accepted"
    driver.wait_for_callback(process.id, "provision", flavour="dataplane")
    flow = world.data_flows[process.id]
    assert (flow.state, flow.provisioned_data_address()) == (
        "PROVISION_NOTIFYING",
        address["properties"],
    )
    with pytest.raises(ValueError, match="only after termination"):
        driver.send_dataplane_deprovision(process.id)
    driver.terminate(process.id)
    assert driver.send_dataplane_deprovision(process.id).outcome == "accepted"
    driver.wait_for_callback(process.id, "deprovision", flavour="dataplane")
    assert flow.state == "DEPROVISIONED"
    assert world.rejected_callbacks() == []
