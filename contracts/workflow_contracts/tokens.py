"""Claims of the tokens the provisioner issues and the workflow-apis verify."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

CONSUMER_SCOPE = "workflow:use"
ADMIN_SCOPE = "workflow:admin"
TOKEN_ALGORITHMS = ("ES256", "RS256")


class TokenClaims(BaseModel):
    """`sub` is the consumer id, `aud` the consumer's workflow-api, `scope` space-separated."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    iss: str
    sub: str
    aud: str
    exp: int
    iat: int | None = None
    jti: str | None = None
    scope: str = ""

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.scope.split())
