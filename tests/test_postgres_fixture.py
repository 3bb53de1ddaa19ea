"""The PostgreSQL fixtures start a real server that SQLAlchemy can use."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

pytestmark = pytest.mark.postgres


def test_session_database_accepts_tables_and_rows(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text("CREATE TABLE fixture_check (id serial PRIMARY KEY, name text)")
            )
            connection.execute(text("INSERT INTO fixture_check (name) VALUES ('a'), ('ü')"))
        with engine.connect() as connection:
            names = connection.execute(text("SELECT name FROM fixture_check ORDER BY id")).scalars()
            assert list(names) == ["a", "ü"]
            version = connection.execute(text("SHOW server_version")).scalar_one()
            assert int(str(version).split(".")[0]) >= 12
        with engine.begin() as connection:
            connection.execute(text("DROP TABLE fixture_check"))
    finally:
        engine.dispose()


def test_server_listens_on_loopback_only(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as connection:
            addresses = connection.execute(text("SHOW listen_addresses")).scalar_one()
    finally:
        engine.dispose()
    assert addresses == "127.0.0.1"


@pytest.mark.parametrize("attempt", [1, 2])
def test_fresh_database_starts_empty_each_time(fresh_postgres_url: str, attempt: int) -> None:
    engine = create_engine(fresh_postgres_url)
    try:
        with engine.begin() as connection:
            tables = connection.execute(
                text("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
            ).scalar_one()
            assert tables == 0
            # Same table name in every attempt: it only works if the databases are separate.
            connection.execute(text("CREATE TABLE per_test (value integer)"))
            connection.execute(text("INSERT INTO per_test VALUES (:value)"), {"value": attempt})
            assert connection.execute(text("SELECT value FROM per_test")).scalar_one() == attempt
    finally:
        engine.dispose()


def test_fresh_database_differs_from_session_database(
    postgres_url: str, fresh_postgres_url: str
) -> None:
    assert fresh_postgres_url != postgres_url
    assert fresh_postgres_url.startswith("postgresql+psycopg://")
