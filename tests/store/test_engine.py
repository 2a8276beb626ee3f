"""The store raises :class:`DatabaseError` where it talks to the database."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from llmops.errors import DatabaseError, LLMOpsError
from llmops.store.engine import create_engine


def test_an_unreachable_server_is_a_database_error() -> None:
    engine = create_engine("postgresql+psycopg://postgres@127.0.0.1:1/llmops")
    with pytest.raises(DatabaseError) as failure, engine.connect():
        pass
    error = failure.value
    assert isinstance(error, LLMOpsError)
    assert str(error).startswith("database: connection failed")
    assert "\n" not in str(error)
    assert isinstance(error.original, sa.exc.OperationalError)
    assert error.__cause__ is not None  # the traceback shows what the driver said


def test_a_refused_row_keeps_the_original_error(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'calls.db'}")
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE t (a INTEGER PRIMARY KEY)"))
        connection.execute(sa.text("INSERT INTO t VALUES (1)"))
    refused = pytest.raises(DatabaseError, match="UNIQUE constraint failed")
    with refused as failure, engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO t VALUES (1)"))
    assert isinstance(failure.value.original, sa.exc.IntegrityError)


def test_postgres_errors_carry_their_sqlstate(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    with pytest.raises(DatabaseError) as failure, engine.connect() as connection:
        connection.execute(sa.text("SELECT 1 / 0")).all()
    assert failure.value.sqlstate == "22012"  # division_by_zero: class 22, bad data


def test_the_pool_still_recovers_from_a_restarted_server(
    postgres_server, postgres_url: str
) -> None:
    engine = create_engine(postgres_url)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT 1")).scalar() == 1
    postgres_server.stop()
    postgres_server.start()
    with engine.connect() as connection:  # pre-ping finds the dead connection, not the caller
        assert connection.execute(sa.text("SELECT 1")).scalar() == 1


def test_postgres_connections_run_without_jit(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SHOW jit")).scalar() == "off"
        # the setting is the session's, not a transaction's that a rollback would undo
        connection.rollback()
        assert connection.execute(sa.text("SHOW jit")).scalar() == "off"


def test_a_read_only_sqlite_uri_makes_nothing_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``sqlite:///file:PATH?mode=ro&uri=true`` (SQLite's own read-only URI): llmops took
    ``file:PATH`` for a path, and made a folder ``file:`` with an empty database and a lock
    file in it, in the working folder."""
    from llmops.store.engine import check_schema, upgrade

    database = tmp_path / "calls.db"
    upgrade(create_engine(f"sqlite:///{database}"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    engine = create_engine(f"sqlite:///file:{database}?mode=ro&uri=true")
    assert upgrade(engine) == check_schema(engine)  # at head: nothing to do, no write lock
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM llm_calls")).scalar() == 0
    with pytest.raises(DatabaseError, match="readonly"), engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM llm_calls"))
    assert list(work.iterdir()) == []
