"""The /edc/ endpoints against forged and repeated requests: deprovisions are believed only when
EDC's Management API says the transfer ends, answers never name the grant, and the provisioner
does not start without an endpoint secret unless told to."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from provisioner.__main__ import _dev_banner, _dev_settings
from workflow_testkit.edc_standin import wire as edc_wire
from workflow_testkit.edc_standin.fixture import EdcStandIn
from workflow_testkit.polling import poll
from workflow_testkit.provisioner import RunningProvisioner
from workflow_testkit.workflow_api import DUMMY_ASSETS

EDC = "https://w3id.org/edc/v0.0.1/ns/"


def _legacy_active(provisioner: RunningProvisioner, edc: EdcStandIn, consumer: str) -> str:
    process = edc.world.new_transfer(asset_id="echo", consumer_id=consumer)
    sent = edc.driver.send_legacy_provision(process.id, endpoint=provisioner.legacy_endpoint)
    assert sent.status == 200
    provisioner.admin_api.wait_for_grant(process.id, {"active"})
    return process.id


def _forged(url: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(url, content=edc_wire.encode(body), headers=edc_wire.REQUEST_HEADERS)


def test_a_forged_legacy_deprovision_for_a_live_transfer_is_refused(
    provisioner: RunningProvisioner, edc_standin: EdcStandIn
) -> None:
    transfer = _legacy_active(provisioner, edc_standin, "alice")
    body = dict(edc_standin.world.sent[-1].body, type="deprovision")

    answer = _forged(provisioner.legacy_endpoint, body)
    assert answer.status_code == 409, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert "PROVISIONED" in answer.json()["detail"] or "STARTED" in answer.json()["detail"]
    assert provisioner.admin_api.grant_for(transfer)["state"] == "active"  # type: ignore[index]

    # EDC's own deprovision, once the transfer really ended, is taken (exactly 200).
    edc_standin.world.transfer_processes[transfer].transition("TERMINATED")
    genuine = edc_standin.driver.send_legacy_deprovision(
        transfer, endpoint=provisioner.legacy_endpoint
    )
    assert genuine.status == 200
    provisioner.admin_api.wait_for_grant(transfer, {"revoked"})


def test_a_forged_dataplane_deprovision_is_refused_until_edc_ends_the_transfer(
    provisioner: RunningProvisioner, edc_standin: EdcStandIn
) -> None:
    world, driver = edc_standin.world, edc_standin.driver
    address = {"type": "ProvisionHttp", "baseUrl": provisioner.dataplane_endpoint("echo")}
    process = world.new_transfer(asset_id="echo", consumer_id="bob", data_address=address)
    flow = world.add_data_flow(process.id)
    driver.send_dataplane_provision(process.id)
    driver.wait_for_callback(process.id, "provision", timeout=30)
    provisioner.admin_api.wait_for_grant(process.id, {"active"})

    forged = edc_wire.dataplane_request(
        "deprovision",
        provision_resource_id=next(iter(flow.resources)),
        flow_id=process.id,
        callback_address=world.provisioning_url,
    )
    answer = _forged(provisioner.dataplane_endpoint("echo"), forged)
    assert answer.status_code == 409, answer.text
    assert provisioner.admin_api.grant_for(process.id)["state"] == "active"  # type: ignore[index]

    driver.terminate(process.id)
    assert driver.send_dataplane_deprovision(process.id).status == 200
    driver.wait_for_callback(process.id, "deprovision", timeout=30)
    provisioner.admin_api.wait_for_grant(process.id, {"revoked"})


def test_a_deprovision_edc_cannot_confirm_is_refused_or_retried(
    provisioner: RunningProvisioner, edc_standin: EdcStandIn
) -> None:
    transfer = _legacy_active(provisioner, edc_standin, "carol")
    body = dict(edc_standin.world.sent[-1].body, type="deprovision")
    edc_standin.world.fail_next_lookups(10, status=503)
    unavailable = _forged(provisioner.legacy_endpoint, body)
    assert unavailable.status_code == 503, "EDC retries 500-504"
    with edc_standin.world.lock:
        edc_standin.world.faults.clear()
        del edc_standin.world.transfer_processes[transfer]
    unknown = _forged(provisioner.legacy_endpoint, body)
    assert unknown.status_code == 400 and "unknown to EDC" in unknown.json()["detail"]
    assert provisioner.admin_api.grant_for(transfer)["state"] == "active"  # type: ignore[index]


def test_answers_to_edc_never_name_the_grant(
    provisioner: RunningProvisioner, edc_standin: EdcStandIn
) -> None:
    transfer = _legacy_active(provisioner, edc_standin, "dave")
    grant_id = provisioner.admin_api.grant_for(transfer)["id"]  # type: ignore[index]
    repeated = _forged(provisioner.legacy_endpoint, edc_standin.world.sent[-1].body)
    assert repeated.status_code == 200
    assert repeated.json() == {"status": "provisioning"}
    assert grant_id not in repeated.text


def _serve(tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PROVISIONER_")},
        "PROVISIONER_PUBLIC_URL": "http://127.0.0.1:1",
        "PROVISIONER_DATA_DIR": str(tmp_path),
        "PROVISIONER_ASSETS_DIR": str(DUMMY_ASSETS),
        "PROVISIONER_ADMIN_TOKEN": "a" * 16 + "b" * 16,
        **extra,
    }
    return subprocess.run(
        [sys.executable, "-m", "provisioner", "serve", "--port", "1"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_serve_refuses_to_start_without_an_endpoint_secret(tmp_path: Path) -> None:
    result = _serve(tmp_path)
    assert result.returncode == 2
    assert "PROVISIONER_EDC_ENDPOINT_SECRET is required" in result.stderr


def test_running_without_a_secret_needs_the_explicit_setting_and_warns(
    provisioner_factory: Callable[..., RunningProvisioner],
    edc_standin: EdcStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("WARNING")
    provisioner = provisioner_factory(edc_endpoint_secret=None, edc_endpoint_unauthenticated=True)
    assert "?" not in provisioner.legacy_endpoint
    poll(lambda: "EDC_ENDPOINT_UNAUTHENTICATED" in caplog.text, 10, "the warning")
    transfer = _legacy_active(provisioner, edc_standin, "erin")
    assert provisioner.admin_api.grant_for(transfer)["state"] == "active"  # type: ignore[index]


def test_dev_generates_an_endpoint_secret_and_says_how_edc_sends_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("PROVISIONER_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PROVISIONER_DATA_DIR", str(tmp_path / "dev"))
    monkeypatch.chdir(Path(__file__).parents[2])
    settings = _dev_settings("127.0.0.1", 8000)
    secret_file = tmp_path / "dev" / "edc-endpoint-secret"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    assert settings.edc_endpoint_secret is not None
    secret = settings.edc_endpoint_secret.get_secret_value()
    assert len(secret) >= 32 and secret_file.read_text() == secret
    banner = _dev_banner(settings)
    assert f"/edc/provision?secret={secret}" in banner
    assert f"/edc/dataplane/provision?secret={secret}&asset=" in banner
    assert _dev_settings("127.0.0.1", 8000).edc_endpoint_secret == settings.edc_endpoint_secret
