"""Per-grant credential secrets: `<grant id>.<HMAC>`, 256 bits, derived rather than stored.

The secret travels in the data address EDC keeps (`authCode`); the credentials endpoint recomputes
the HMAC for the named grant and compares in constant time. Nothing secret sits in the database,
and knowing a consumer or grant id is not enough.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from pathlib import Path

from workflow_common.private_files import write_secret_file


class CredentialSecrets:
    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the credentials key needs at least 32 bytes")
        self._key = key

    @classmethod
    def load_or_create(cls, path: Path) -> CredentialSecrets:
        """The key at `path`; a new random one first if there is none (concurrent starts agree)."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_secret_file(path, os.urandom(32), if_absent=True)
        return cls(path.read_bytes())

    def _mac(self, grant_id: str) -> str:
        digest = hmac.new(self._key, f"credentials:{grant_id}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def derive(self, purpose: str, length: int = 40) -> str:
        """A secret for `purpose` (e.g. `"storage-user:<slug>"`): the same under the same key, so
        it need not be stored, and independent of every other purpose's secret."""
        digest = hmac.new(self._key, f"derived:{purpose}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()[:length]

    def issue(self, grant_id: str) -> str:
        return f"{grant_id}.{self._mac(grant_id)}"

    def grant_id_of(self, secret: str) -> str | None:
        """The grant a secret belongs to, or None if it is not one we issued."""
        grant_id, separator, mac = secret.strip().rpartition(".")
        if not separator or not grant_id:
            return None
        if not hmac.compare_digest(mac.encode(), self._mac(grant_id).encode()):
            return None
        return grant_id
