"""Tokens the provisioner issues to consumers and to itself, and the JWKS that verifies them."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from provisioner.tokens.signing_key import SigningKey
from workflow_contracts.tokens import ADMIN_SCOPE, CONSUMER_SCOPE

ADMIN_SUBJECT = "provisioner"
ADMIN_TOKEN_SECONDS = 300


def workflow_api_audience(slug: str) -> str:
    return f"workflow-api/{slug}"


class TokenService:
    def __init__(self, key: SigningKey, *, issuer: str, max_lifetime_seconds: int) -> None:
        self._key = key
        self.issuer = issuer
        self._max_lifetime = max_lifetime_seconds

    def jwks(self) -> dict[str, Any]:
        return self._key.public_jwks()

    def consumer_token(
        self, consumer_id: str, audience: str, contract_end: datetime | None
    ) -> tuple[str, datetime]:
        """A token whose `exp` never passes the latest contract end (nor the maximum lifetime)."""
        now = int(time.time())
        expires = now + self._max_lifetime
        if contract_end is not None:
            expires = min(expires, int(contract_end.timestamp()))
        token = self._key.mint(
            issuer=self.issuer,
            subject=consumer_id,
            audience=audience,
            lifetime_seconds=max(expires - now, 1),
            scope=CONSUMER_SCOPE,
        )
        return token, datetime.fromtimestamp(max(expires, now + 1), UTC)

    def admin_token(self, audience: str) -> str:
        return self._key.mint(
            issuer=self.issuer,
            subject=ADMIN_SUBJECT,
            audience=audience,
            lifetime_seconds=ADMIN_TOKEN_SECONDS,
            scope=ADMIN_SCOPE,
        )
