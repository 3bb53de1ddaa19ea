"""Database helpers both services use: each service's own table metadata, timestamp columns, and
the engine (SQLite with WAL and a private file, or PostgreSQL with a checked pool).

Each service declares its tables on a base class of its own, made with its own registry
(`class ServiceTable(SQLModel, registry=registry())`), so that base's metadata holds exactly that
service's tables: `make_engine(url, ServiceTable.metadata)` creates those and no other service's.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Column, DateTime, MetaData, event
from sqlalchemy.engine import Dialect, Engine, make_url
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, create_engine

from workflow_common.clock import as_utc
from workflow_common.private_files import private_file


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored and compared in UTC on every database, read back aware in UTC.

    SQLite keeps no offset (it would store an aware value's wall-clock time as if it were UTC),
    PostgreSQL answers in the session's time zone: so every value, stored or compared, is
    converted to UTC on the way in (a naive one is taken as UTC already), and labelled UTC on
    the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


def timestamp_field(*, nullable: bool = False, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UtcDateTime(), nullable=nullable, index=index))


def make_engine(url: str, metadata: MetaData) -> Engine:
    """An engine with the tables of `metadata` created where missing."""
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:" and not database.startswith("file:"):
            private_file(Path(database))  # SQLite gives its -wal and -shm files the same mode
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)
    metadata.create_all(engine)
    return engine


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
