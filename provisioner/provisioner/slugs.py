"""Safe names from consumer ids: DNS-label characters, bounded length, a hash for uniqueness.

A slug is `<readable part>-<digest>`: the digest is the first 80 bits of SHA-256 over the id (20
hex digits), so two ids share a slug only by a collision nobody can search for (~2^40 tries for
any pair, 2^80 for a given id). Every name derived from a slug (`<prefix><slug>`, a namespace;
`<stem>-<slug>`, a bucket and its storage user) keeps the whole digest and shortens only the
readable part. The database still refuses a second consumer with a taken slug (unique column).
"""

from __future__ import annotations

import hashlib
import re

_UNSAFE = re.compile(r"[^a-z0-9]+")
DNS_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")
DIGEST_LENGTH = 20  # hex digits: 80 bits
SLUG_MAX_LENGTH = 48  # "wf-" + 48 and "workflow-data-" + 48 stay within 63
_SLUG = re.compile(r"(?:(?P<readable>[a-z0-9][-a-z0-9]*)-)?(?P<digest>[0-9a-f]+)")


def consumer_slug(consumer_id: str, *, max_length: int = SLUG_MAX_LENGTH) -> str:
    """`"did:web:Example.org:Alice"` -> `"did-web-example-org-alice-<20 hex digits>"`."""
    digest = hashlib.sha256(consumer_id.encode()).hexdigest()[:DIGEST_LENGTH]
    room = max_length - DIGEST_LENGTH - 1
    readable = _UNSAFE.sub("-", consumer_id.lower()).strip("-")[:room].strip("-")
    return f"{readable}-{digest}" if readable else f"c-{digest}"


def prefixed_label(prefix: str, slug: str) -> str:
    """`prefix + slug` as a DNS label (a namespace, a bucket, a storage user). When that exceeds
    63 characters, the slug's readable part is shortened; its digest is always kept whole, so
    the names of two slugs differ whenever the slugs' digests do."""
    name = f"{prefix}{slug}"
    if len(name) > 63:
        parts = _SLUG.fullmatch(slug)
        digest = parts["digest"] if parts else hashlib.sha256(slug.encode()).hexdigest()[:20]
        readable = (parts["readable"] or "") if parts else slug
        room = 63 - len(prefix) - len(digest) - 1
        if room < 1:
            raise ValueError(f"prefix {prefix!r} leaves no room for a consumer's name")
        name = f"{prefix}{readable[:room].rstrip('-') or 'c'}-{digest}"
    if not DNS_LABEL.fullmatch(name):
        raise ValueError(f"{name!r} is not a DNS label")
    return name
