"""Provisioner state: a row per consumer (its deployment), a row per grant (transfer or by hand).

Rows are keyed by EDC's ids with unique constraints, so duplicate and concurrent provision requests
converge on one grant. The reconciler moves them through their states one persisted step at a time.

    grant:    provisioning ──► active ──► revoking ──► revoked
                   │                          ▲
                   └── callback deadline ─────┘ (failed)
    consumer: deploying ◄─► ready ──► tearing_down ──► removed
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column
from sqlalchemy.engine import Engine
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from workflow_common.database import make_engine as make_database_engine
from workflow_common.database import timestamp_field


class Flavour(StrEnum):
    """Which EDC protocol a grant came by (or that it was granted by hand)."""

    LEGACY = "legacy"  # control-plane provision-http (EDC <= 0.15)
    DATAPLANE = "dataplane"  # data-plane-provision-http (EDC 0.14 - 0.18)
    MANUAL = "manual"  # granted by hand through /admin


class GrantState(StrEnum):
    PROVISIONING = "provisioning"
    ACTIVE = "active"
    REVOKING = "revoking"
    REVOKED = "revoked"
    FAILED = "failed"

    @property
    def live(self) -> bool:
        """Provisioning or active: the grant counts (see `provisioner.grants.live`)."""
        return self in LIVE_STATES


# The one definition of a live grant: its asset is (or is about to be) the consumer's.
LIVE_STATES = frozenset({GrantState.PROVISIONING, GrantState.ACTIVE})


class ConsumerState(StrEnum):
    DEPLOYING = "deploying"
    READY = "ready"
    TEARING_DOWN = "tearing_down"
    REMOVED = "removed"


class ProvisionerTable(SQLModel, registry=registry()):
    """The base of this service's tables: `ProvisionerTable.metadata` holds exactly them."""


class Consumer(ProvisionerTable, table=True):
    __tablename__ = "provisioner_consumers"

    id: str = Field(primary_key=True)
    slug: str = Field(unique=True)
    state: ConsumerState = Field(index=True)
    endpoint: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    message: str = ""
    deploy_started: datetime | None = timestamp_field(nullable=True)
    idle_since: datetime | None = timestamp_field(nullable=True)
    checked: datetime | None = timestamp_field(nullable=True)
    created: datetime = timestamp_field()
    updated: datetime = timestamp_field()


class Grant(ProvisionerTable, table=True):
    __tablename__ = "provisioner_grants"

    id: str = Field(primary_key=True)
    request_key: str = Field(unique=True, description="flavour:transfer[:resource]")
    flavour: Flavour
    transfer_process_id: str = Field(index=True)
    provision_resource_id: str | None = None
    resource_definition_id: str | None = None
    callback_address: str | None = None
    consumer_id: str = Field(index=True)
    asset_id: str
    agreement_id: str | None = None
    signed_at: datetime | None = timestamp_field(nullable=True)
    expires_at: datetime | None = timestamp_field(nullable=True, index=True)
    state: GrantState = Field(index=True)
    granted_in_api: bool = False
    callback_done: bool = False
    deprovision_requested: bool = False
    deprovision_callback_done: bool = False
    revoke_reason: str = ""
    last_error: str = ""
    attempts: int = 0
    next_attempt_at: datetime = timestamp_field(index=True)
    callback_deadline: datetime | None = timestamp_field(nullable=True)
    created: datetime = timestamp_field()
    updated: datetime = timestamp_field()
    provisioned_at: datetime | None = timestamp_field(nullable=True)


def make_engine(url: str) -> Engine:
    """An engine with this service's tables created."""
    return make_database_engine(url, ProvisionerTable.metadata)
