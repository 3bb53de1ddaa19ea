"""Time as both services store it: aware datetimes in UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """The same instant in UTC: an aware value is converted, a naive one (as SQLite hands them
    back) was stored as UTC and is labelled so."""
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
