"""HMAC signatures of the filesystem store's signed URLs.

A signed URL carries `method`, `expires` (unix seconds) and `signature`, the hex HMAC-SHA256 of
`<method>\\n<key>\\n<expires>` under the store's signing key. Keys never contain a newline
(`check_key`), so the message is unambiguous.

    SignedUrlError            the URL does not authorise the request
    ├── InvalidSignedUrlError missing, malformed or tampered (method, key, expiry or signature)
    └── ExpiredSignedUrlError genuine, but its expiry has passed
"""

from __future__ import annotations

import hashlib
import hmac
import re

_EXPIRES_PATTERN = re.compile(r"[0-9]{1,12}")
_SIGNATURE_PATTERN = re.compile(r"[0-9a-f]{64}")


class SignedUrlError(Exception):
    """The signed URL does not authorise this request."""


class InvalidSignedUrlError(SignedUrlError):
    """Missing, malformed or tampered: the signature does not match."""


class ExpiredSignedUrlError(SignedUrlError):
    """The signature is genuine but the URL has expired."""


def sign(signing_key: bytes, method: str, key: str, expires: int) -> str:
    message = f"{method}\n{key}\n{expires}".encode()
    return hmac.new(signing_key, message, hashlib.sha256).hexdigest()


def verify(
    signing_key: bytes,
    method: str,
    key: str,
    expires: str | None,
    signature: str | None,
    *,
    now: float,
) -> None:
    """Raise unless `signature` is this key's signature of (method, key, expires), unexpired.

    The signature is checked first (in constant time), so an expired URL is only reported as
    such when it is genuine.
    """
    if not expires or not signature:
        raise InvalidSignedUrlError("the URL has no signature or expiry")
    if not _EXPIRES_PATTERN.fullmatch(expires) or not _SIGNATURE_PATTERN.fullmatch(signature):
        raise InvalidSignedUrlError("the URL's signature or expiry is malformed")
    expected = sign(signing_key, method, key, int(expires))
    if not hmac.compare_digest(expected, signature):
        raise InvalidSignedUrlError("the URL's signature does not match")
    if int(expires) < now:
        raise ExpiredSignedUrlError("the URL has expired")
