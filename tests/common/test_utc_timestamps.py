"""Timestamps are stored and compared as instants in UTC, whatever offset they arrive with."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import registry
from sqlmodel import Field, Session, SQLModel, col, select

from workflow_common.clock import as_utc
from workflow_common.database import make_engine, timestamp_field

EAST = timezone(timedelta(hours=2))
WEST = timezone(timedelta(hours=-5))
NOON_UTC = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


class _Table(SQLModel, registry=registry()):
    pass


class Moment(_Table, table=True):
    __tablename__ = "moments"
    id: int = Field(primary_key=True)
    at: datetime = timestamp_field()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'moments.db'}"
    else:
        url = request.getfixturevalue("fresh_postgres_url")
    engine = make_engine(url, _Table.metadata)
    yield engine
    engine.dispose()


def test_as_utc_converts_an_aware_moment_and_labels_a_naive_one() -> None:
    assert as_utc(NOON_UTC.astimezone(EAST)) == NOON_UTC
    assert as_utc(NOON_UTC.astimezone(EAST)).utcoffset() == timedelta(0)
    assert as_utc(datetime(2026, 12, 3, 12, 0)) == NOON_UTC


def test_moments_with_offsets_are_read_back_as_the_same_instants_in_utc(engine: Engine) -> None:
    given = {1: NOON_UTC.astimezone(EAST), 2: NOON_UTC.astimezone(WEST), 3: NOON_UTC}
    with Session(engine) as session:
        session.add_all(Moment(id=key, at=at) for key, at in given.items())
        session.commit()
    with Session(engine) as session:
        read = {moment.id: moment.at for moment in session.exec(select(Moment))}
    assert read == {1: NOON_UTC, 2: NOON_UTC, 3: NOON_UTC}
    assert all(at.utcoffset() == timedelta(0) for at in read.values())


def test_comparisons_use_the_instant_not_the_wall_clock(engine: Engine) -> None:
    with Session(engine) as session:
        session.add_all(
            [
                Moment(id=1, at=NOON_UTC - timedelta(hours=1)),
                Moment(id=2, at=NOON_UTC + timedelta(hours=1)),
            ]
        )
        session.commit()
    with Session(engine) as session:
        # 13:00+02:00 is 11:00 UTC; -05:00 puts noon UTC at 07:00 on the wall clock.
        after_east = session.exec(
            select(Moment.id).where(col(Moment.at) >= NOON_UTC.astimezone(EAST))
        )
        before_west = session.exec(
            select(Moment.id).where(col(Moment.at) < NOON_UTC.astimezone(WEST))
        )
        assert list(after_east) == [2]
        assert list(before_west) == [1]
