"""Which workflow assets this consumer may see and run: the catalog filtered by current grants."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from workflow_api.db import Grant
from workflow_api.errors import NoSuchProcessError, NotFoundError
from workflow_common.clock import utcnow
from workflow_contracts.asset import WorkflowAsset


class AssetRegistry:
    def __init__(self, catalog: dict[str, WorkflowAsset], engine: Engine) -> None:
        self._catalog = catalog
        self._engine = engine

    def visible(self) -> list[WorkflowAsset]:
        """Granted, unexpired assets, ordered by id."""
        granted = {grant.asset_id for grant in self.grants() if _in_force(grant)}
        return [self._catalog[i] for i in sorted(granted) if i in self._catalog]

    def get(self, asset_id: str) -> WorkflowAsset:
        """A visible asset, or NoSuchProcessError (unknown and not granted look the same)."""
        with Session(self._engine) as session:
            grant = session.get(Grant, asset_id)
        asset = self._catalog.get(asset_id)
        if asset is None or grant is None or not _in_force(grant):
            raise NoSuchProcessError(f"no process {asset_id!r} is available to you")
        return asset

    def grants(self) -> list[Grant]:
        with Session(self._engine) as session:
            return list(session.exec(select(Grant).order_by(Grant.asset_id)))

    def grant(
        self, asset_id: str, *, agreement_id: str | None, expires_at: datetime | None
    ) -> Grant:
        """Create or update the grant of a catalog asset; idempotent."""
        if asset_id not in self._catalog:
            raise NotFoundError(f"asset {asset_id!r} is not in this API's catalog")
        with Session(self._engine) as session:
            grant = session.get(Grant, asset_id) or Grant(asset_id=asset_id, granted_at=utcnow())
            grant.agreement_id = agreement_id
            grant.expires_at = expires_at
            session.add(grant)
            session.commit()
            session.refresh(grant)
            return grant

    def revoke(self, asset_id: str) -> bool:
        """Remove the grant; False if there was none (already revoked is fine)."""
        with Session(self._engine) as session:
            grant = session.get(Grant, asset_id)
            if grant is None:
                return False
            session.delete(grant)
            session.commit()
            return True


def _in_force(grant: Grant) -> bool:
    return grant.expires_at is None or grant.expires_at > utcnow()
