"""The one query of a live grant: provisioning or active (`LIVE_STATES`), as SQL conditions.

Every reader of "which grants count" (the reconciler, the credentials handover) builds its
query from these, so a new state cannot be live in one place and not in another.
"""

from __future__ import annotations

from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from provisioner.grants.models import LIVE_STATES, Grant


def is_live() -> ColumnElement[bool]:
    """`Grant.state` is provisioning or active."""
    return col(Grant.state).in_(sorted(LIVE_STATES))


def live_grants_of(consumer_id: str) -> ColumnElement[bool]:
    """The consumer's live grants."""
    return (col(Grant.consumer_id) == consumer_id) & is_live()
