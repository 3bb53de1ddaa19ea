"""An ES256 signing key: generate or load (persisted, mode 0600), publish as JWKS, mint tokens.

The provisioner owns the key that signs every token (`provisioner.tokens`); a workflow-api only
verifies them against the published JWKS. Tests use it to mint the tokens a workflow-api verifies.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jose import jwk, jwt

from workflow_common.private_files import write_secret_file
from workflow_contracts.tokens import CONSUMER_SCOPE


class SigningKey:
    def __init__(self, private_pem: bytes, key_id: str) -> None:
        self._private_pem = private_pem
        self.key_id = key_id

    @classmethod
    def generate(cls) -> SigningKey:
        private = ec.generate_private_key(ec.SECP256R1())
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return cls(pem, uuid.uuid4().hex[:16])

    @classmethod
    def load_or_create(cls, path: Path) -> SigningKey:
        """A key persisted as PEM next to its key id; created (mode 0600) on first use."""
        id_path = path.with_suffix(".kid")
        if path.exists() and id_path.exists():
            return cls(path.read_bytes(), id_path.read_text().strip())
        key = cls.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        write_secret_file(path, key._private_pem)
        write_secret_file(id_path, key.key_id.encode())
        return key

    def public_jwks(self) -> dict[str, Any]:
        private = serialization.load_pem_private_key(self._private_pem, password=None)
        public_pem = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        public = jwk.construct(public_pem.decode(), algorithm="ES256").to_dict()
        public.update({"kid": self.key_id, "use": "sig", "alg": "ES256"})
        return {"keys": [public]}

    def write_jwks(self, path: Path) -> Path:
        path.write_text(json.dumps(self.public_jwks(), indent=2))
        return path

    def mint(
        self,
        *,
        issuer: str,
        subject: str,
        audience: str,
        lifetime_seconds: int = 3600,
        scope: str = CONSUMER_SCOPE,
        **extra: Any,
    ) -> str:
        now = int(time.time())
        claims = {
            "iss": issuer,
            "sub": subject,
            "aud": audience,
            "iat": now,
            "exp": now + lifetime_seconds,
            "jti": uuid.uuid4().hex,
            "scope": scope,
            **extra,
        }
        token: str = jwt.encode(
            claims, self._private_pem.decode(), algorithm="ES256", headers={"kid": self.key_id}
        )
        return token
