"""Safe names from consumer ids: DNS-label characters, bounded length, a hash for uniqueness."""

from __future__ import annotations

import hashlib
import re

_UNSAFE = re.compile(r"[^a-z0-9]+")


def consumer_slug(consumer_id: str, *, max_length: int = 40) -> str:
    """`"did:web:Example.org:Alice"` -> `"did-web-example-org-alice-1a2b3c4d"`; unique per id."""
    digest = hashlib.sha256(consumer_id.encode()).hexdigest()[:8]
    readable = _UNSAFE.sub("-", consumer_id.lower()).strip("-")[: max_length - 9].strip("-")
    return f"{readable}-{digest}" if readable else f"c-{digest}"
