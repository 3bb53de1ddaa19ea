"""The admin API: hand grants without EDC, listing, revocation, teardown; settings refusals."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from workflow_common.settings import describe_invalid_settings
from workflow_testkit.polling import poll
from workflow_testkit.provisioner import RunningProvisioner, provisioner_settings
from workflow_testkit.workflow_api import execute, wait_for_job


def _hand_grant(
    provisioner: RunningProvisioner, consumer: str, asset: str, **extra: Any
) -> dict[str, Any]:
    response = provisioner.admin.post(
        "/admin/grants", json={"consumer_id": consumer, "asset_id": asset, **extra}
    )
    assert response.status_code == 201, response.text
    document: dict[str, Any] = response.json()
    return document


def _credentials_when_ready(provisioner: RunningProvisioner, secret: str) -> dict[str, Any]:
    def fetch() -> dict[str, Any] | None:
        response = httpx.get(
            f"{provisioner.base_url}/credentials", headers={"Authorization": f"Bearer {secret}"}
        )
        return response.json() if response.status_code == 200 else None

    return poll(fetch, 30, "credentials")


def test_hand_grant_runs_a_job_then_revocation_tears_down(provisioner: RunningProvisioner) -> None:
    grant = _hand_grant(provisioner, "walk-in", "echo")
    assert grant["flavour"] == "manual" and len(grant["secret"]) > 40
    credentials = _credentials_when_ready(provisioner, grant["secret"])
    with httpx.Client(
        base_url=credentials["endpoint"],
        headers={"Authorization": f"Bearer {credentials['token']}"},
    ) as client:
        job_id = execute(client, "echo", {"message": "by hand"})
        assert wait_for_job(client, job_id)["status"] == "successful"

    listed = provisioner.admin.get("/admin/grants", params={"state": "active"}).json()["grants"]
    assert [g["id"] for g in listed] == [grant["id"]]
    revoked = provisioner.admin.delete(f"/admin/grants/{grant['id']}").json()
    assert revoked["revoked"] is True
    provisioner.admin_api.assert_nothing_left("walk-in", credentials["endpoint"])
    assert provisioner.admin.delete(f"/admin/grants/{grant['id']}").json()["revoked"] is False


def test_consumer_teardown_revokes_every_grant(provisioner: RunningProvisioner) -> None:
    first = _hand_grant(provisioner, "team", "echo")
    second = _hand_grant(provisioner, "team", "dummy")
    credentials = _credentials_when_ready(provisioner, second["secret"])
    poll(
        lambda: len(_credentials_when_ready(provisioner, first["secret"])["assets"]) == 2,
        30,
        "both",
    )
    answer = provisioner.admin.delete("/admin/consumers/team").json()
    assert answer["revokedGrants"] == 2
    provisioner.admin_api.assert_nothing_left("team", credentials["endpoint"])
    assert provisioner.admin.delete("/admin/consumers/nobody").status_code == 404


def test_hand_grant_with_an_expiry_expires(provisioner: RunningProvisioner) -> None:
    expires = datetime.now(UTC) + timedelta(seconds=6)
    grant = _hand_grant(provisioner, "short", "echo", expires_at=expires.isoformat())
    credentials = _credentials_when_ready(provisioner, grant["secret"])
    assert datetime.fromisoformat(credentials["expiresAt"].replace("Z", "+00:00")) <= expires
    provisioner.admin_api.assert_nothing_left("short", credentials["endpoint"], timeout=30)


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"consumer_id": "x", "asset_id": "no-such-asset"}, "not in the catalog"),
        ({"consumer_id": "x", "asset_id": "echo", "expires_at": "2000-01-01T00:00:00Z"}, "past"),
        ({"consumer_id": "", "asset_id": "echo"}, "consumer_id"),
    ],
)
def test_bad_hand_grants_are_refused(
    provisioner: RunningProvisioner, body: dict[str, Any], detail: str
) -> None:
    response = provisioner.admin.post("/admin/grants", json=body)
    assert response.status_code == 400
    assert detail in response.json()["detail"]


def test_admin_api_needs_the_admin_token(provisioner: RunningProvisioner) -> None:
    for token in (None, "wrong", provisioner.settings.admin_token.get_secret_value() + "x"):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = httpx.get(f"{provisioner.base_url}/admin/consumers", headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"admin_token": "changeme"}, "ADMIN_TOKEN"),
        ({"admin_token": "short"}, "ADMIN_TOKEN"),
        ({"storage": "s3"}, "PROVISIONER_S3_ENDPOINT"),
        ({"assets_dir": Path("/no/such/dir")}, "ASSETS_DIR"),
        ({"edc_endpoint_secret": "abc"}, "ENDPOINT_SECRET"),
        ({"edc_endpoint_secret": None}, "PROVISIONER_EDC_ENDPOINT_SECRET is required"),
        ({"edc_endpoint_unauthenticated": True}, "not both"),
    ],
)
def test_settings_are_validated_with_clear_errors(
    tmp_path: Path, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError) as error:
        provisioner_settings(tmp_path, 1, None, **overrides)
    described = describe_invalid_settings(error.value, "PROVISIONER_")
    assert message in described
    for value in overrides.values():
        if isinstance(value, str) and value not in {"s3"}:
            assert value not in described, "a setting's value (maybe a secret) was echoed"


def test_invalid_settings_at_start_up_are_reported_without_values(tmp_path: Path) -> None:
    environment = {
        **os.environ,
        "PROVISIONER_PUBLIC_URL": "http://127.0.0.1:1",
        "PROVISIONER_DATA_DIR": str(tmp_path),
        "PROVISIONER_ASSETS_DIR": str(tmp_path),
        "PROVISIONER_ADMIN_TOKEN": "too-short-but-secret",
    }
    result = subprocess.run(
        [sys.executable, "-m", "provisioner", "serve"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "PROVISIONER_ADMIN_TOKEN" in result.stderr
    assert "too-short-but-secret" not in result.stderr + result.stdout


def test_secrets_never_reach_the_logs(
    provisioner: RunningProvisioner, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    grant = _hand_grant(provisioner, "quiet", "echo")
    credentials = _credentials_when_ready(provisioner, grant["secret"])
    text = caplog.text
    assert grant["secret"] not in text
    assert credentials["token"] not in text
    assert provisioner.settings.admin_token.get_secret_value() not in text
    assert "signature=" not in text
