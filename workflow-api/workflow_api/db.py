"""Persisted state of one workflow-api: grants, uploads, jobs, stored objects (SQLModel; SQLite or
PostgreSQL)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Column, DateTime, event
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Field, SQLModel, create_engine

from workflow_api.private_files import private_file


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """SQLite hands datetimes back naive; they were stored as UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def timestamp_field(*, nullable: bool = False, index: bool = False) -> Any:
    return Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=nullable, index=index)
    )


class JobStatus(StrEnum):
    ACCEPTED = "accepted"
    RUNNING = "running"
    SUCCESSFUL = "successful"
    FAILED = "failed"
    DISMISSED = "dismissed"

    @property
    def finished(self) -> bool:
        return self in {JobStatus.SUCCESSFUL, JobStatus.FAILED, JobStatus.DISMISSED}


class Grant(SQLModel, table=True):
    __tablename__ = "grants"

    asset_id: str = Field(primary_key=True)
    agreement_id: str | None = None
    granted_at: datetime = timestamp_field()
    expires_at: datetime | None = timestamp_field(nullable=True)


class Upload(SQLModel, table=True):
    __tablename__ = "uploads"

    id: str = Field(primary_key=True)
    filename: str
    media_type: str
    size: int
    sha256: str
    created: datetime = timestamp_field(index=True)


class Job(SQLModel, table=True):
    __tablename__ = "jobs"

    id: str = Field(primary_key=True)
    process_id: str = Field(index=True)
    status: JobStatus = Field(index=True)
    message: str = ""
    progress: int = 0
    created: datetime = timestamp_field(index=True)
    started: datetime | None = timestamp_field(nullable=True)
    finished: datetime | None = timestamp_field(nullable=True)
    updated: datetime = timestamp_field()
    launch: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    subscriber: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    results: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    stored_bytes: int = 0
    process_group: int | None = None
    process_start_ticks: int | None = None


class StoredObject(SQLModel, table=True):
    """One object a job stored (output, log, report, progress line, inline input): the quota
    ledger's persisted count of job data (uploads are counted from their own table)."""

    __tablename__ = "stored_objects"

    key: str = Field(primary_key=True)
    job_id: str | None = Field(default=None, index=True)
    size: int


def make_engine(url: str, tables: Sequence[type[SQLModel]] | None = None) -> Engine:
    """An engine with the tables created (this service's, unless others are named)."""
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:" and not database.startswith("file:"):
            private_file(Path(database))  # SQLite gives its -wal and -shm files the same mode
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)
    models = (Grant, Upload, Job, StoredObject) if tables is None else tables
    SQLModel.metadata.create_all(engine, tables=[_table(model) for model in models])
    return engine


def _table(model: type[SQLModel]) -> Any:
    return model.__table__  # type: ignore[attr-defined]


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
