"""Persisted state of one workflow-api: grants, uploads, jobs, stored objects (SQLModel; SQLite or
PostgreSQL)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column
from sqlalchemy.engine import Engine
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from workflow_common.database import make_engine as make_database_engine
from workflow_common.database import timestamp_field


class ApiTable(SQLModel, registry=registry()):
    """The base of this service's tables: `ApiTable.metadata` holds exactly them."""


class JobStatus(StrEnum):
    ACCEPTED = "accepted"
    RUNNING = "running"
    SUCCESSFUL = "successful"
    FAILED = "failed"
    DISMISSED = "dismissed"

    @property
    def finished(self) -> bool:
        return self in {JobStatus.SUCCESSFUL, JobStatus.FAILED, JobStatus.DISMISSED}


class Grant(ApiTable, table=True):
    __tablename__ = "grants"

    asset_id: str = Field(primary_key=True)
    agreement_id: str | None = None
    granted_at: datetime = timestamp_field()
    expires_at: datetime | None = timestamp_field(nullable=True)


class Upload(ApiTable, table=True):
    __tablename__ = "uploads"

    id: str = Field(primary_key=True)
    filename: str
    media_type: str
    size: int
    sha256: str
    created: datetime = timestamp_field(index=True)


class Job(ApiTable, table=True):
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


class StoredObject(ApiTable, table=True):
    """One object a job stored (output, log, report, progress line, inline input): the quota
    ledger's persisted count of job data (uploads are counted from their own table)."""

    __tablename__ = "stored_objects"

    key: str = Field(primary_key=True)
    job_id: str | None = Field(default=None, index=True)
    size: int


def make_engine(url: str) -> Engine:
    """An engine with this service's tables created."""
    return make_database_engine(url, ApiTable.metadata)
