"""Both EDC flavours end to end over real HTTP: provision → callback → credentials → a job on the
consumer's own workflow-api → deprovision → nothing left."""

from __future__ import annotations

import concurrent.futures
import time
from datetime import datetime
from typing import Any

import httpx
import pytest

from workflow_testkit.edc_standin import wire as edc_wire
from workflow_testkit.edc_standin.fixture import EdcStandIn
from workflow_testkit.edc_standin.policy import valid_for
from workflow_testkit.polling import poll
from workflow_testkit.provisioner import RunningProvisioner, consumer_directories
from workflow_testkit.workflow_api import execute, wait_for_job

EDC = "https://w3id.org/edc/v0.0.1/ns/"


def _run_echo(endpoint: str, token: str, message: str = "hello from the dataspace") -> None:
    with httpx.Client(
        base_url=endpoint, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as client:
        processes = [p["id"] for p in client.get("/processes").json()["processes"]]
        assert processes == ["echo"]
        job_id = execute(client, "echo", {"message": message})
        assert wait_for_job(client, job_id)["status"] == "successful"
        result = client.get(f"/jobs/{job_id}/results/echo", follow_redirects=True)
        assert result.text == message


def _legacy_secret(callback: Any) -> str:
    properties = callback.body["contentDataAddress"]["properties"]
    assert properties[f"{EDC}type"] == "HttpData"
    assert properties[f"{EDC}authKey"] == "Authorization"
    return str(properties[f"{EDC}authCode"]).removeprefix("Bearer ")


def test_legacy_flavour_full_cycle(
    provisioner: RunningProvisioner, edc_standin: EdcStandIn
) -> None:
    world, driver = edc_standin.world, edc_standin.driver
    process = world.new_transfer(asset_id="echo", consumer_id="alice")
    sent = driver.send_legacy_provision(
        process.id, endpoint=provisioner.legacy_endpoint, policy_scope="transfer.process"
    )
    assert sent.status == 200 and sent.outcome == "accepted"

    callback = driver.wait_for_callback(process.id, "provision", timeout=30)
    assert callback.body["resourceDefinitionId"] == process.resource_definition_id
    assert callback.body["assetId"] == "echo"
    assert driver.wait_for_state(process.id, "PROVISIONED").state == "PROVISIONED"
    properties = callback.body["contentDataAddress"]["properties"]
    assert properties[f"{EDC}baseUrl"] == f"{provisioner.base_url}/credentials"
    credentials = provisioner.credentials(_legacy_secret(callback))
    assert credentials["assets"] == ["echo"]
    _run_echo(credentials["endpoint"], credentials["token"])

    world.transfer_processes[process.id].transition("TERMINATED")
    answer = driver.send_legacy_deprovision(process.id, endpoint=provisioner.legacy_endpoint)
    assert answer.status == 200, "EDC counts anything but exactly 200 as fatal"
    assert world.protocol_violations == []
    provisioner.admin_api.assert_nothing_left("alice", credentials["endpoint"])
    assert provisioner.admin_api.grant_for(process.id)["state"] == "revoked"  # type: ignore[index]
    gone = httpx.get(
        f"{provisioner.base_url}/credentials",
        headers={"Authorization": f"Bearer {_legacy_secret(callback)}"},
    )
    assert gone.status_code == 404


def test_dataplane_flavour_full_cycle(
    provisioner: RunningProvisioner, edc_standin: EdcStandIn
) -> None:
    world, driver = edc_standin.world, edc_standin.driver
    address = {"type": "ProvisionHttp", "baseUrl": provisioner.dataplane_endpoint("echo")}
    process = world.new_transfer(asset_id="echo", consumer_id="bob", data_address=address)
    flow = world.add_data_flow(process.id)
    resource_id = next(iter(flow.resources))
    sent = driver.send_dataplane_provision(process.id)
    assert sent.status == 200 and sent.outcome == "accepted"

    callback = driver.wait_for_callback(process.id, "provision", timeout=30)
    assert callback.resource_id == resource_id
    properties = callback.body["dataAddress"]["properties"]
    assert properties[f"{EDC}type"] == "https://w3id.org/idsa/v4.1/HTTP"
    assert properties[f"{EDC}authType"] == "bearer"
    endpoint, token = properties[f"{EDC}endpoint"], properties[f"{EDC}authorization"]
    _run_echo(endpoint, token)

    driver.terminate(process.id)
    assert driver.send_dataplane_deprovision(process.id).status == 200
    driver.wait_for_callback(process.id, "deprovision", timeout=30)
    provisioner.admin_api.assert_nothing_left("bob", endpoint)
    with httpx.Client(timeout=5) as client, pytest.raises(httpx.TransportError):
        client.get(f"{endpoint}/processes", headers={"Authorization": f"Bearer {token}"})


def test_dataplane_credentials_mode_hands_an_http_data_address(
    provisioner_factory: Any, edc_standin: EdcStandIn
) -> None:
    provisioner = provisioner_factory(dataplane_address="credentials")
    world, driver = edc_standin.world, edc_standin.driver
    address = {"type": "ProvisionHttp", "baseUrl": provisioner.dataplane_endpoint("echo")}
    process = world.new_transfer(asset_id="echo", consumer_id="carol", data_address=address)
    world.add_data_flow(process.id)
    driver.send_dataplane_provision(process.id)
    properties = driver.wait_for_callback(process.id, "provision", timeout=30).body["dataAddress"][
        "properties"
    ]
    assert properties[f"{EDC}type"] == "HttpData"
    secret = str(properties[f"{EDC}authCode"]).removeprefix("Bearer ")
    credentials = provisioner.credentials(secret)
    _run_echo(credentials["endpoint"], credentials["token"])


def test_contract_expiry_tears_down_without_any_edc_call(
    provisioner: RunningProvisioner, edc_standin: EdcStandIn
) -> None:
    world, driver = edc_standin.world, edc_standin.driver
    process = world.new_transfer(asset_id="echo", consumer_id="dave", policy=valid_for("8s"))
    driver.send_legacy_provision(process.id, endpoint=provisioner.legacy_endpoint)
    callback = driver.wait_for_callback(process.id, "provision", timeout=30)
    credentials = provisioner.credentials(_legacy_secret(callback))
    signed = world.agreements[process.contract_id].contract_signing_date
    started = time.time()
    assert abs(_epoch(credentials["expiresAt"]) - (signed + 8)) <= 1, "token exp ≤ contract end"
    requests_before = len(driver.world.sent)

    provisioner.admin_api.assert_nothing_left("dave", credentials["endpoint"], timeout=30)
    assert time.time() - started < 25
    assert len(driver.world.sent) == requests_before, "no EDC request was needed"
    grant = provisioner.admin_api.grant_for(process.id)
    assert grant is not None and grant["revokeReason"] == "the contract expired"


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_forged_request_for_an_unknown_transfer_is_refused_and_deploys_nothing(
    provisioner: RunningProvisioner,
) -> None:
    body = {
        "assetId": "echo",
        "transferProcessId": "forged-transfer",
        "policy": {"permissions": [], "assignee": "mallory"},
        "callbackAddress": "http://127.0.0.1:9/callback",
        "type": "provision",
        "resourceDefinitionId": "rd-x",
    }
    response = httpx.post(provisioner.legacy_endpoint, json=body)
    assert response.status_code == 400
    assert "unknown to EDC" in response.json()["detail"]
    dataplane = httpx.post(
        provisioner.dataplane_endpoint("echo"),
        json={
            "type": "provision",
            "provisionResourceId": "r",
            "flowId": "forged",
            "callbackAddress": "http://x",
        },
    )
    assert dataplane.status_code == 400
    time.sleep(0.5)
    assert provisioner.admin_api.grants() == [] and provisioner.admin_api.consumers() == []
    assert consumer_directories(provisioner.settings.data_dir) == []


@pytest.mark.parametrize(
    ("asset", "policy", "detail"),
    [
        ("not-in-catalog", None, "not in the catalog"),
        ("echo", "expired", "expired"),
    ],
)
def test_requests_edc_would_not_honour_are_refused(
    provisioner: RunningProvisioner,
    edc_standin: EdcStandIn,
    asset: str,
    policy: str | None,
    detail: str,
) -> None:
    world = edc_standin.world
    signing = int(time.time()) - 3600 if policy == "expired" else None
    process = world.new_transfer(
        asset_id=asset,
        consumer_id="eve",
        policy=valid_for("10m") if policy else None,
        signing_date=signing,
    )
    sent = edc_standin.driver.send_legacy_provision(
        process.id, endpoint=provisioner.legacy_endpoint
    )
    assert sent.status == 400 and sent.outcome == "fatal"
    assert provisioner.admin_api.grants() == []


def test_management_api_outage_asks_edc_to_retry(
    provisioner: RunningProvisioner, edc_standin: EdcStandIn
) -> None:
    world = edc_standin.world
    process = world.new_transfer(asset_id="echo", consumer_id="frank")
    world.management_outage = 503
    sent = edc_standin.driver.send_legacy_provision(
        process.id, endpoint=provisioner.legacy_endpoint
    )
    assert sent.status == 503 and sent.outcome == "retry"
    world.management_outage = None
    again = edc_standin.driver.send_legacy_provision(
        process.id, endpoint=provisioner.legacy_endpoint
    )
    assert again.status == 200
    edc_standin.driver.wait_for_callback(process.id, "provision", timeout=30)


def test_concurrent_duplicates_yield_one_deployment_and_one_callback(
    provisioner: RunningProvisioner, edc_standin: EdcStandIn
) -> None:
    world = edc_standin.world
    process = world.new_transfer(asset_id="echo", consumer_id="grace")
    with world.lock:
        world.transfer_processes[process.id].resource_definition_id = "rd-dup"
        body = edc_wire.legacy_provision_request(
            world.transfer_processes[process.id],
            world.agreements[process.contract_id],
            management_url=world.management_url,
            policy_scope="transfer.process",
        )
        world.transfer_processes[process.id].transition("PROVISIONING_REQUESTED")

    def send(_: int) -> int:
        return httpx.post(provisioner.legacy_endpoint, json=body, timeout=30).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(send, range(20)))
    assert statuses == [200] * 20
    edc_standin.driver.wait_for_callback(process.id, "provision", timeout=30)
    time.sleep(1.0)
    accepted = [c for c in world.callbacks(process.id, "provision") if c.status == 204]
    assert len(accepted) == 1
    assert len(provisioner.admin_api.grants()) == 1
    assert len(provisioner.admin_api.consumers()) == 1
    consumer_dirs = consumer_directories(provisioner.settings.data_dir)
    assert len(consumer_dirs) == 1


def test_second_contract_of_a_consumer_joins_the_existing_deployment(
    provisioner: RunningProvisioner, edc_standin: EdcStandIn
) -> None:
    world, driver = edc_standin.world, edc_standin.driver
    first = world.new_transfer(asset_id="echo", consumer_id="heidi")
    driver.send_legacy_provision(first.id, endpoint=provisioner.legacy_endpoint)
    first_credentials = provisioner.credentials(
        _legacy_secret(driver.wait_for_callback(first.id, timeout=30))
    )
    second = world.new_transfer(asset_id="dummy", consumer_id="heidi")
    driver.send_legacy_provision(second.id, endpoint=provisioner.legacy_endpoint)
    second_credentials = provisioner.credentials(
        _legacy_secret(driver.wait_for_callback(second.id, timeout=30))
    )

    assert second_credentials["endpoint"] == first_credentials["endpoint"]
    assert second_credentials["assets"] == ["dummy", "echo"]
    assert len(provisioner.admin_api.consumers()) == 1

    world.transfer_processes[first.id].transition("TERMINATED")
    driver.send_legacy_deprovision(first.id, endpoint=provisioner.legacy_endpoint)
    provisioner.admin_api.wait_for_grant(first.id, {"revoked"})
    with httpx.Client(
        base_url=second_credentials["endpoint"],
        headers={"Authorization": f"Bearer {second_credentials['token']}"},
    ) as client:
        ids = [p["id"] for p in client.get("/processes").json()["processes"]]
    assert ids == ["dummy"], "only the revoked grant's asset disappears"
    assert provisioner.admin_api.consumer("heidi")["state"] == "ready"  # type: ignore[index]


def test_callbacks_are_retried_on_conflict_and_server_errors(
    provisioner: RunningProvisioner, edc_standin: EdcStandIn
) -> None:
    world, driver = edc_standin.world, edc_standin.driver
    process = world.new_transfer(asset_id="echo", consumer_id="ivan")
    world.fail_next_callbacks(2, status=503)
    driver.send_legacy_provision(process.id, endpoint=provisioner.legacy_endpoint)
    driver.wait_for_callback(process.id, "provision", timeout=30)
    statuses = [c.status for c in world.callbacks(process.id, "provision")]
    assert statuses[-1] == 204 and statuses.count(503) == 2


def test_callback_rejected_for_good_gives_up_and_removes_the_deployment(
    provisioner_factory: Any, edc_standin: EdcStandIn
) -> None:
    provisioner = provisioner_factory(callback_deadline_seconds=3)
    world, driver = edc_standin.world, edc_standin.driver
    process = world.new_transfer(asset_id="echo", consumer_id="judy")
    world.fail_next_callbacks(1000, status=503)
    driver.send_legacy_provision(process.id, endpoint=provisioner.legacy_endpoint)
    grant = provisioner.admin_api.wait_for_grant(process.id, {"failed"}, timeout=30)
    assert "503" in grant["lastError"]
    provisioner.admin_api.assert_nothing_left("judy")


def test_endpoint_secret_is_required_when_configured(
    provisioner_factory: Any, edc_standin: EdcStandIn
) -> None:
    provisioner = provisioner_factory(edc_endpoint_secret="s3cr3t-in-the-endpoint-url")
    process = edc_standin.world.new_transfer(asset_id="echo", consumer_id="kim")
    refused = edc_standin.driver.send_legacy_provision(
        process.id, endpoint=f"{provisioner.base_url}/edc/provision"
    )
    assert refused.status == 403 and refused.outcome == "fatal"
    wrong = edc_standin.world.new_transfer(asset_id="echo", consumer_id="kim")
    guessed = edc_standin.driver.send_legacy_provision(
        wrong.id, endpoint=f"{provisioner.base_url}/edc/provision?secret=guess-guess-guess-guess"
    )
    assert guessed.status == 403
    assert provisioner.admin_api.grants() == []
    second = edc_standin.world.new_transfer(asset_id="echo", consumer_id="kim")
    accepted = edc_standin.driver.send_legacy_provision(
        second.id,
        endpoint=f"{provisioner.base_url}/edc/provision?secret=s3cr3t-in-the-endpoint-url",
    )
    assert accepted.status == 200


def test_two_consumers_never_see_each_others_jobs_files_or_tokens(
    provisioner: RunningProvisioner, edc_standin: EdcStandIn
) -> None:
    world, driver = edc_standin.world, edc_standin.driver
    credentials = {}
    for consumer in ("alice", "bob"):
        process = world.new_transfer(asset_id="echo", consumer_id=consumer)
        driver.send_legacy_provision(process.id, endpoint=provisioner.legacy_endpoint)
        credentials[consumer] = provisioner.credentials(
            _legacy_secret(driver.wait_for_callback(process.id, timeout=30))
        )
    alice, bob = credentials["alice"], credentials["bob"]
    assert alice["endpoint"] != bob["endpoint"]
    with httpx.Client(
        base_url=alice["endpoint"], headers={"Authorization": f"Bearer {alice['token']}"}
    ) as client:
        job_id = execute(client, "echo", {"message": "alice only"})
        wait_for_job(client, job_id)
        upload = client.post("/uploads", content=b"alice's file").json()
    with httpx.Client(
        base_url=alice["endpoint"], headers={"Authorization": f"Bearer {bob['token']}"}
    ) as intruder:
        assert intruder.get(f"/jobs/{job_id}").status_code == 401
        assert intruder.get("/jobs").status_code == 401
        assert intruder.get(f"/uploads/{upload['id']}").status_code == 401
    with httpx.Client(
        base_url=bob["endpoint"], headers={"Authorization": f"Bearer {bob['token']}"}
    ) as own:
        assert own.get(f"/jobs/{job_id}").status_code == 404
        assert own.get(f"/uploads/{upload['id']}").status_code == 404
    assert (
        httpx.get(
            f"{provisioner.base_url}/credentials", headers={"Authorization": "Bearer alice"}
        ).status_code
        == 404
    )
    assert (
        httpx.get(f"{provisioner.base_url}/credentials", params={"consumer": "alice"}).status_code
        == 404
    )


def test_operations_endpoints(provisioner: RunningProvisioner, edc_standin: EdcStandIn) -> None:
    assert httpx.get(f"{provisioner.base_url}/healthz").status_code == 200
    poll(lambda: httpx.get(f"{provisioner.base_url}/readyz").status_code == 200, 10, "ready")
    jwks = httpx.get(f"{provisioner.base_url}/.well-known/jwks.json").json()
    assert jwks["keys"][0]["kty"] == "EC" and "d" not in jwks["keys"][0]
    process = edc_standin.world.new_transfer(asset_id="echo", consumer_id="lena")
    edc_standin.driver.send_legacy_provision(process.id, endpoint=provisioner.legacy_endpoint)
    edc_standin.driver.wait_for_callback(process.id, timeout=30)
    metrics = httpx.get(f"{provisioner.base_url}/metrics").text
    assert (
        'provisioner_requests_total{flavour="legacy",kind="provision",outcome="accepted"} 1.0'
        in metrics
    )
    assert "provisioner_provisioning_seconds_count" in metrics
    assert poll(
        lambda: (
            "provisioner_active_consumers 1.0" in httpx.get(f"{provisioner.base_url}/metrics").text
        ),
        10,
        "gauge",
    )
    assert httpx.get(f"{provisioner.base_url}/admin/grants").status_code == 401


def test_a_deprovision_before_the_provision_callback_is_answered_ends_revoked(
    provisioner: RunningProvisioner, edc_standin: EdcStandIn
) -> None:
    """EDC applies our provision callback, then terminates the transfer and sends the deprovision
    before its answer to the callback has reached us: the grant was provisioned all the same, so
    the revocation must end `revoked` (not `failed`)."""
    world, driver = edc_standin.world, edc_standin.driver
    address = {"type": "ProvisionHttp", "baseUrl": provisioner.dataplane_endpoint("echo")}
    process = world.new_transfer(asset_id="echo", consumer_id="erin", data_address=address)
    flow = world.add_data_flow(process.id)
    world.delay_next_callbacks(1, seconds=3.0, after_processing=True)
    assert driver.send_dataplane_provision(process.id).status == 200
    world.wait_until(
        lambda: all(r.state == "PROVISIONED" for r in flow.resources.values()), timeout=30
    )
    assert (provisioner.admin_api.grant_for(process.id) or {}).get("state") == "provisioning"
    driver.terminate(process.id)
    assert driver.send_dataplane_deprovision(process.id).status == 200

    driver.wait_for_callback(process.id, "deprovision", timeout=30)
    poll(
        lambda: (provisioner.admin_api.consumer("erin") or {}).get("state") == "removed", 30, "gone"
    )
    grant = provisioner.admin_api.grant_for(process.id) or {}
    assert grant.get("state") == "revoked", grant
