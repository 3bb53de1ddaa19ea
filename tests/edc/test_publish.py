"""`provisioner publish` against a real EDC provider (0.18.0: data-plane provisioning; 0.15.1:
legacy provision-http), read back through its Management API v3."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from provisioner.__main__ import run_publish
from provisioner.edc.expiry import agreement_end
from provisioner.edc.offering import MANAGED_BY, OfferTarget
from provisioner.edc.publisher import OfferingClient, publish
from provisioner.settings import Settings
from workflow_contracts.asset import load_catalog
from workflow_testkit.edc.connectors import Connector
from workflow_testkit.workflow_api import DUMMY_ASSETS

EDC = "https://w3id.org/edc/v0.0.1/ns/"
PUBLIC_URL = "http://127.0.0.1:8000"


def _get(connector: Connector, path: str) -> httpx.Response:
    return httpx.get(
        f"{connector.management_url}{path}", headers={"x-api-key": connector.api_key}, timeout=10
    )


def _ids(connector: Connector, collection: str) -> set[str]:
    answer = httpx.post(
        f"{connector.management_url}/v3/{collection}/request",
        json={"@context": {"@vocab": EDC}, "@type": "QuerySpec", "limit": 1000},
        headers={"x-api-key": connector.api_key},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return {item["@id"] for item in answer.json()}


def _flavour(connector: Connector) -> Any:
    return "legacy" if connector.version == "0.15.1" else "dataplane"


def _catalog_dir(tmp_path: Path, *names: str) -> Path:
    directory = tmp_path / "assets"
    directory.mkdir(exist_ok=True)
    for path in directory.iterdir():
        path.unlink()
    for name in names:
        shutil.copy(DUMMY_ASSETS / f"{name}.yaml", directory)
    return directory


def test_publish_creates_reads_back_is_idempotent_and_removes_only_its_own(
    edc_provider: Connector, tmp_path: Path
) -> None:
    connector = edc_provider
    hand_made = {
        "@context": {"@vocab": EDC},
        "@id": "hand-made-asset",
        "properties": {"name": "made by an operator"},
        "dataAddress": {"type": "HttpData", "baseUrl": "http://127.0.0.1:9/data"},
    }
    made = httpx.post(
        f"{connector.management_url}/v3/assets",
        json=hand_made,
        headers={"x-api-key": connector.api_key},
    )
    assert made.status_code == 200, made.text
    target = OfferTarget(flavour=_flavour(connector), public_url=PUBLIC_URL)
    client = OfferingClient(connector.management_url, api_key=connector.api_key, timeout_seconds=10)
    try:
        first = publish(client, load_catalog(_catalog_dir(tmp_path, "echo", "noop")), target)
        assert first.ok, first.problems
        assert sorted(c.action for c in first.changes) == ["create"] * 8

        asset = _get(connector, "/v3/assets/echo").json()
        address = asset["dataAddress"]
        if connector.version == "0.15.1":
            assert address["type"] == "WorkflowApi"  # provisioner.http.entries.workflow...type
        else:
            assert address["type"] == "ProvisionHttp"
            assert address["baseUrl"] == f"{PUBLIC_URL}/edc/dataplane/provision?asset=echo"
        assert asset["privateProperties"][MANAGED_BY] == "workflow-provisioner"
        assert asset["properties"]["name"] == "Echo"

        contract = _get(connector, "/v3/policydefinitions/echo-contract-policy").json()
        signed = datetime(2026, 1, 1, tzinfo=UTC)
        assert agreement_end(contract["policy"], signed) == signed + timedelta(days=30)
        offer = _get(connector, "/v3/contractdefinitions/echo-offer").json()
        assert offer["accessPolicyId"] == "echo-access-policy"
        assert offer["contractPolicyId"] == "echo-contract-policy"
        selector = offer["assetsSelector"]
        selector = selector[0] if isinstance(selector, list) else selector
        assert (selector["operandLeft"], selector["operandRight"]) == (EDC + "id", "echo")

        second = publish(client, load_catalog(_catalog_dir(tmp_path, "echo", "noop")), target)
        assert {c.action for c in second.changes} == {"keep"}, "nothing changes the second time"

        catalog_dir = _catalog_dir(tmp_path, "echo", "noop")
        echo_file = catalog_dir / "echo.yaml"
        echo_file.write_text(echo_file.read_text().replace("validity: 30d", "validity: 7d"))
        third = publish(client, load_catalog(catalog_dir), target)
        updated = [c.id for c in third.changes if c.action == "update"]
        assert updated == ["echo-contract-policy"], "only the changed contract policy is written"
        contract = _get(connector, "/v3/policydefinitions/echo-contract-policy").json()
        assert agreement_end(contract["policy"], signed) == signed + timedelta(days=7)

        fourth = publish(client, load_catalog(_catalog_dir(tmp_path, "echo")), target)
        assert fourth.ok, fourth.problems
        deleted = sorted(c.id for c in fourth.changes if c.action == "delete")
        assert deleted == ["noop", "noop-access-policy", "noop-contract-policy", "noop-offer"]
        assert _ids(connector, "assets") >= {"echo", "hand-made-asset"}
        assert "noop" not in _ids(connector, "assets")
        assert "noop-offer" not in _ids(connector, "contractdefinitions")
        assert not {"noop-access-policy", "noop-contract-policy"} & _ids(
            connector, "policydefinitions"
        )
        assert _get(connector, "/v3/assets/hand-made-asset").status_code == 200
    finally:
        client.close()


def test_cli_dry_run_changes_nothing_and_a_foreign_entity_is_an_error(
    edc_provider: Connector, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    connector = edc_provider
    foreign = {
        "@context": {"@vocab": EDC},
        "@id": "dummy",
        "properties": {"name": "not ours"},
        "dataAddress": {"type": "HttpData", "baseUrl": "http://127.0.0.1:9/data"},
    }
    made = httpx.post(
        f"{connector.management_url}/v3/assets",
        json=foreign,
        headers={"x-api-key": connector.api_key},
    )
    assert made.status_code == 200, made.text
    settings = Settings(
        public_url=PUBLIC_URL,
        data_dir=tmp_path / "data",
        assets_dir=_catalog_dir(tmp_path, "dummy", "input-dummy"),
        admin_token="a" * 40,
        edc_endpoint_secret="s" * 32,
        edc_management_url=connector.management_url,
        edc_management_api_key=connector.api_key,
        edc_flavour=_flavour(connector),
    )
    before = _ids(connector, "assets")
    assert run_publish(settings, dry_run=True) == 1, "a foreign asset of our id is an error"
    printed = capsys.readouterr().out
    assert "would create asset input-dummy" in printed
    assert "error: asset dummy exists and was not made by the provisioner" in printed
    assert _ids(connector, "assets") == before, "a dry run changes nothing"

    assert run_publish(settings, dry_run=False) == 1
    assert "input-dummy" in _ids(connector, "assets")
    left = _get(connector, "/v3/assets/dummy").json()
    assert left["properties"]["name"] == "not ours", "the foreign asset is left alone"
