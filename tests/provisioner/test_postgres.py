"""The provisioner's state machine on a real PostgreSQL server, across a restart."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from workflow_testkit.edc_standin.fixture import EdcStandIn
from workflow_testkit.provisioner import remove_leftover_deployments, start_provisioner

EDC = "https://w3id.org/edc/v0.0.1/ns/"


@pytest.mark.postgres
def test_provisioning_state_lives_in_postgresql(
    tmp_path: Path, edc_standin: EdcStandIn, fresh_postgres_url: str
) -> None:
    world, driver = edc_standin.world, edc_standin.driver
    first = start_provisioner(
        tmp_path / "p", edc_standin.management_url, database_url=fresh_postgres_url
    )
    try:
        process = world.new_transfer(asset_id="echo", consumer_id="pg-consumer")
        driver.send_legacy_provision(process.id, endpoint=first.legacy_endpoint)
        callback = driver.wait_for_callback(process.id, "provision", timeout=60)
        grants = first.admin_api.grants()
        assert [g["state"] for g in grants] == ["active"]
    finally:
        first.stop()

    second = start_provisioner(
        tmp_path / "p",
        edc_standin.management_url,
        database_url=fresh_postgres_url,
        admin_token=first.settings.admin_token.get_secret_value(),
    )
    try:
        assert [g["state"] for g in second.admin_api.grants()] == ["active"]
        secret = callback.body["contentDataAddress"]["properties"][f"{EDC}authCode"].removeprefix(
            "Bearer "
        )
        credentials = second.credentials(secret)
        with httpx.Client(
            base_url=credentials["endpoint"],
            headers={"Authorization": f"Bearer {credentials['token']}"},
        ) as client:
            assert client.get("/processes").status_code == 200
        world.transfer_processes[process.id].transition("TERMINATED")
        assert (
            driver.send_legacy_deprovision(process.id, endpoint=second.legacy_endpoint).status
            == 200
        )
        second.admin_api.assert_nothing_left("pg-consumer", credentials["endpoint"])
    finally:
        second.stop()
        remove_leftover_deployments(tmp_path / "p", fresh_postgres_url)
