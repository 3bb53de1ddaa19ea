"""Safe names from consumer ids: DNS-label characters, bounded length, a hash for uniqueness."""

from __future__ import annotations

import hashlib
import re

_UNSAFE = re.compile(r"[^a-z0-9]+")
DNS_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")


def consumer_slug(consumer_id: str, *, max_length: int = 40) -> str:
    """`"did:web:Example.org:Alice"` -> `"did-web-example-org-alice-1a2b3c4d"`; unique per id."""
    digest = hashlib.sha256(consumer_id.encode()).hexdigest()[:8]
    readable = _UNSAFE.sub("-", consumer_id.lower()).strip("-")[: max_length - 9].strip("-")
    return f"{readable}-{digest}" if readable else f"c-{digest}"


def prefixed_label(prefix: str, slug: str) -> str:
    """`prefix + slug` as a DNS label (a namespace, a bucket, a storage user): when that exceeds
    63 characters, a shortened slug plus a hash of the whole slug, so names stay unique."""
    name = f"{prefix}{slug}"
    if len(name) > 63:
        digest = hashlib.sha256(slug.encode()).hexdigest()[:8]
        name = f"{prefix}{slug[: 63 - len(prefix) - 9].rstrip('-')}-{digest}"
    if not DNS_LABEL.fullmatch(name):
        raise ValueError(f"{name!r} is not a DNS label")
    return name
