"""What a consumer is handed: its credentials document and the data addresses EDC passes on."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from provisioner.edc import wire
from provisioner.errors import NotFoundError
from provisioner.grants.live import live_grants_of
from provisioner.grants.models import Consumer, ConsumerState, Flavour, Grant
from provisioner.storage.credentials import CredentialSecrets
from provisioner.tokens.issuing import TokenService, workflow_api_audience


class Handover:
    def __init__(
        self,
        *,
        engine: Engine,
        tokens: TokenService,
        secrets: CredentialSecrets,
        base_url: str,
        dataplane_address: str,
    ) -> None:
        self._engine = engine
        self._tokens = tokens
        self._secrets = secrets
        self._credentials_url = f"{base_url}/credentials"
        self._dataplane_address = dataplane_address

    def credentials(self, secret: str) -> dict[str, Any]:
        """`{endpoint, token, expiresAt, assets}` for the holder of a live grant's secret only."""
        grant_id = self._secrets.grant_id_of(secret)
        with Session(self._engine) as session:
            grant = session.get(Grant, grant_id) if grant_id else None
            consumer = session.get(Consumer, grant.consumer_id) if grant else None
        if grant is None or consumer is None or not grant.state.live or not grant.granted_in_api:
            raise NotFoundError("no credentials here")
        if consumer.state is not ConsumerState.READY or consumer.endpoint is None:
            raise NotFoundError("no credentials here")
        return self.credentials_of(consumer)

    def credentials_of(self, consumer: Consumer) -> dict[str, Any]:
        assert consumer.endpoint is not None
        grants = self._live_grants(consumer.id)
        token, expires = self._tokens.consumer_token(
            consumer.id, workflow_api_audience(consumer.slug), _latest_end(grants)
        )
        return {
            "endpoint": consumer.endpoint,
            "token": token,
            "expiresAt": expires.isoformat().replace("+00:00", "Z"),
            "assets": sorted({grant.asset_id for grant in grants}),
        }

    def secret_of(self, grant: Grant) -> str:
        return self._secrets.issue(grant.id)

    def _live_grants(self, consumer_id: str) -> list[Grant]:
        with Session(self._engine) as session:
            return list(session.exec(select(Grant).where(live_grants_of(consumer_id))))

    def callback(
        self, grant: Grant, consumer: Consumer, kind: str
    ) -> tuple[str, dict[str, Any]] | None:
        """The callback URL and body EDC expects for this grant's flavour; None for hand grants."""
        if grant.flavour is Flavour.MANUAL or grant.callback_address is None:
            return None
        if grant.flavour is Flavour.LEGACY:
            url = wire.legacy_callback_url(grant.callback_address, grant.transfer_process_id, kind)
            if kind == "deprovision":
                return url, wire.legacy_deprovision_callback(grant.id)
            assert grant.resource_definition_id is not None
            return url, wire.legacy_provision_callback(
                resource_definition_id=grant.resource_definition_id,
                asset_id=grant.asset_id,
                resource_name=f"workflow-api-{grant.id}",
                address=self._credentials_address(grant),
            )
        assert grant.provision_resource_id is not None
        url = wire.dataplane_callback_url(
            grant.callback_address, grant.transfer_process_id, grant.provision_resource_id, kind
        )
        if kind == "deprovision":
            return url, {}
        if self._dataplane_address == "credentials":
            address = self._credentials_address(grant)
        else:
            credentials = self.credentials_of(consumer)
            address = wire.endpoint_address(credentials["endpoint"], credentials["token"])
        return url, wire.dataplane_provision_callback(address)

    def _credentials_address(self, grant: Grant) -> dict[str, Any]:
        return wire.credentials_address(self._credentials_url, self.secret_of(grant))


def _latest_end(grants: list[Grant]) -> datetime | None:
    """The latest contract end; None if any live grant has no end (then the token cap applies)."""
    ends = [grant.expires_at for grant in grants]
    if not ends or any(end is None for end in ends):
        return None
    return max(end for end in ends if end is not None)
