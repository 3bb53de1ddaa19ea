"""The workflow-api's admin API, which only the provisioner calls (admin-scoped token): its paths
and the grant body, used by the provisioner's client and by the workflow-api's route alike.

    PUT    /admin/grants/{asset_id}   GrantRequest: the consumer may use the asset (until
                                      `expires_at`, under `agreement_id`); idempotent
    DELETE /admin/grants/{asset_id}   the asset disappears, its jobs are dismissed
    GET    /admin/grants              the grants
    DELETE /admin/data                before teardown: every job dismissed, all data deleted
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, field_serializer

PREFIX = "/admin"
GRANTS = "/grants"
GRANT = "/grants/{asset_id}"
DATA = "/data"


def grant_path(asset_id: str) -> str:
    """The path of one asset's grant, `/admin/grants/<asset_id>`."""
    return PREFIX + GRANT.format(asset_id=asset_id)


def data_path() -> str:
    return PREFIX + DATA


class GrantRequest(BaseModel):
    """The body of `PUT /admin/grants/{asset_id}`."""

    model_config = ConfigDict(extra="forbid")

    agreement_id: str | None = None
    expires_at: datetime | None = None

    @field_serializer("expires_at")
    def _iso(self, value: datetime | None) -> str | None:
        return value.isoformat() if value else None
