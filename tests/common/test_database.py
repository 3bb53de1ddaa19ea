"""Each service's tables live in its own metadata: its engine creates exactly those."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect
from sqlmodel import SQLModel

from provisioner.grants.models import ProvisionerTable
from provisioner.grants.models import make_engine as make_provisioner_engine
from workflow_api.db import ApiTable
from workflow_api.db import make_engine as make_api_engine

API_TABLES = {"grants", "uploads", "jobs", "stored_objects"}
PROVISIONER_TABLES = {"provisioner_consumers", "provisioner_grants"}


def test_each_service_metadata_holds_exactly_its_own_tables() -> None:
    assert set(ApiTable.metadata.tables) == API_TABLES
    assert set(ProvisionerTable.metadata.tables) == PROVISIONER_TABLES
    assert not set(SQLModel.metadata.tables) & (API_TABLES | PROVISIONER_TABLES)


def test_each_service_engine_creates_only_its_own_tables(tmp_path: Path) -> None:
    api = make_api_engine(f"sqlite:///{tmp_path / 'api.db'}")
    provisioner = make_provisioner_engine(f"sqlite:///{tmp_path / 'provisioner.db'}")
    try:
        assert set(inspect(api).get_table_names()) == API_TABLES
        assert set(inspect(provisioner).get_table_names()) == PROVISIONER_TABLES
    finally:
        api.dispose()
        provisioner.dispose()


def test_both_services_can_share_one_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    api, provisioner = make_api_engine(url), make_provisioner_engine(url)
    try:
        assert set(inspect(api).get_table_names()) == API_TABLES | PROVISIONER_TABLES
    finally:
        api.dispose()
        provisioner.dispose()
