"""Bearer-token verification: signature (ES256/RS256 from a JWKS), issuer, audience, expiry, scope.

The JWKS comes from a file or a URL and is cached; a token signed with an unknown key id triggers
one refresh (at most every few seconds), so key rotation at the provisioner needs no restart.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from jose import JWTError, jwt
from jose.exceptions import ExpiredSignatureError, JOSEError, JWTClaimsError
from pydantic import ValidationError

from workflow_api.errors import ForbiddenError, UnauthorizedError
from workflow_contracts.tokens import ADMIN_SCOPE, CONSUMER_SCOPE, TOKEN_ALGORITHMS, TokenClaims

log = logging.getLogger(__name__)

_MIN_REFRESH_SECONDS = 5.0


class JwksSource:
    """The verification keys, from a JWKS file or URL, cached for `cache_seconds`."""

    def __init__(
        self, *, file: Path | None = None, url: str | None = None, cache_seconds: int = 300
    ):
        if (file is None) == (url is None):
            raise ValueError("exactly one of file and url")
        self._file = file
        self._url = url
        self._cache_seconds = cache_seconds
        self._keys: list[dict[str, Any]] = []
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    def keys(self, *, refresh: bool = False) -> list[dict[str, Any]]:
        with self._lock:
            age = time.monotonic() - self._loaded_at
            stale = age > self._cache_seconds or (refresh and age > _MIN_REFRESH_SECONDS)
            if stale or not self._keys:
                self._keys = self._load()
                self._loaded_at = time.monotonic()
            return self._keys

    def _load(self) -> list[dict[str, Any]]:
        try:
            if self._file is not None:
                document = json.loads(self._file.read_text(encoding="utf-8"))
            else:
                assert self._url is not None
                response = httpx.get(self._url, timeout=10.0)
                response.raise_for_status()
                document = response.json()
        except (OSError, ValueError, httpx.HTTPError) as error:
            log.error("cannot load the JWKS: %s", error)
            if self._keys:
                return self._keys
            raise UnauthorizedError("token keys are unavailable") from error
        keys = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(keys, list):
            raise UnauthorizedError("token keys are unavailable")
        return [key for key in keys if isinstance(key, dict)]


class TokenVerifier:
    def __init__(self, keys: JwksSource, *, issuer: str, audience: str, consumer_id: str):
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._consumer_id = consumer_id

    def verify(self, token: str) -> TokenClaims:
        """Valid claims, or UnauthorizedError saying what was wrong (never the token itself)."""
        try:
            header = jwt.get_unverified_header(token)
        except JWTError as error:
            raise UnauthorizedError("malformed bearer token") from error
        algorithm = header.get("alg")
        if algorithm not in TOKEN_ALGORITHMS:
            raise UnauthorizedError(f"token algorithm must be one of {', '.join(TOKEN_ALGORITHMS)}")
        key = self._key_for(header.get("kid"))
        if key.get("alg", algorithm) != algorithm:
            raise UnauthorizedError("token algorithm does not match its signing key")
        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self._audience,
                issuer=self._issuer,
                options={"require_exp": True, "require_aud": True, "require_iss": True},
            )
            claims = TokenClaims.model_validate(payload)
        except ExpiredSignatureError as error:
            raise UnauthorizedError("token has expired") from error
        except JWTClaimsError as error:
            raise UnauthorizedError(f"token claims rejected: {error}") from error
        except (JOSEError, ValidationError) as error:  # JWKError: a key of another type, ...
            raise UnauthorizedError("token signature or claims are invalid") from error
        return claims

    def _key_for(self, key_id: object) -> dict[str, Any]:
        for refresh in (False, True):
            keys = self._keys.keys(refresh=refresh)
            matching = [key for key in keys if key_id is None or key.get("kid") == key_id]
            if len(matching) == 1 or (matching and key_id is not None):
                return matching[0]
        raise UnauthorizedError("token is signed by an unknown key")

    def require_consumer(self, claims: TokenClaims) -> TokenClaims:
        if claims.sub != self._consumer_id:
            raise ForbiddenError("this API serves another consumer")
        if CONSUMER_SCOPE not in claims.scopes:
            raise ForbiddenError(f"token lacks the {CONSUMER_SCOPE!r} scope")
        return claims

    def require_admin(self, claims: TokenClaims) -> TokenClaims:
        if ADMIN_SCOPE not in claims.scopes:
            raise ForbiddenError(f"token lacks the {ADMIN_SCOPE!r} scope")
        return claims


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise UnauthorizedError("a bearer token is required")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthorizedError("the Authorization header must be 'Bearer <token>'")
    return token.strip()
