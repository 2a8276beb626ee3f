"""Schema: created on first use, migrations match the tables, old schemas are refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from llmops.errors import ConfigError, SchemaOutdatedError
from llmops.store.engine import (
    HEAD_REVISION,
    SQLITE_PAGE_SIZE,
    VERSION_TABLE,
    check_schema,
    create_engine,
    current_revision,
    normalize_url,
    upgrade,
)
from llmops.store.partitions import PARENTS, list_partitions
from llmops.store.tables import SQLModel


def test_new_database_is_created_at_head(database_url: str) -> None:
    engine = create_engine(database_url)
    assert check_schema(engine) == HEAD_REVISION
    tables = set(sa.inspect(engine).get_table_names())
    assert {"llm_calls", "feedback", VERSION_TABLE} <= tables
    assert check_schema(engine) == HEAD_REVISION  # idempotent


def test_a_new_sqlite_file_has_16_kb_pages_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    new = create_engine(f"sqlite:///{tmp_path / 'new.db'}")
    check_schema(new)
    old_path = tmp_path / "old.db"
    with sqlite3.connect(old_path) as old:
        old.execute("CREATE TABLE t (x)")
    old_engine = create_engine(f"sqlite:///{old_path}")
    for engine, size in ((new, SQLITE_PAGE_SIZE), (old_engine, 4096)):
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA page_size").scalar() == size
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    assert SQLITE_PAGE_SIZE == 16384


def test_migrations_produce_exactly_the_declared_tables(database_url: str) -> None:
    """The tables of the models, exactly; on PostgreSQL ``llm_calls`` and
    ``llm_call_content`` are partitioned (migrations 0012, 0016): their partitions are not
    tables of their own, and ``feedback.call_id`` has no foreign key there (a partitioned
    table can only be referenced by its whole key)."""
    engine = create_engine(database_url)
    upgrade(engine)
    with engine.connect() as connection:
        partitions = {p.name for parent in PARENTS for p in list_partitions(connection, parent)}
        connection.rollback()

        def include(
            _object: object, name: str | None, kind: str, reflected: bool, _to: object
        ) -> bool:
            if kind == "index" and name in SORT_INDEXES:  # compared in the next test
                return False
            return not (kind == "table" and reflected and name in partitions)

        context = MigrationContext.configure(
            connection, opts={"version_table": VERSION_TABLE, "include_object": include}
        )
        diff = [
            d
            for d in compare_metadata(context, SQLModel.metadata)
            if not (d[0] == "remove_table" and d[1].name == VERSION_TABLE)
        ]
    if engine.dialect.name == "postgresql":
        assert partitions  # the months and the default one
        keys = [d for d in diff if d[0] == "add_fk"]
        assert [(k[1].parent.name, k[1].column_keys, k[1].referred_table.name) for k in keys] == [
            ("feedback", ["call_id"], "llm_calls")
        ]
        diff = [d for d in diff if d[0] != "add_fk"]
    assert diff == []


SORT_INDEXES = tuple(f"ix_llm_calls_model_{order}" for order in ("cost", "latency", "tokens"))


def index_definitions(engine: sa.Engine) -> dict[str, str]:
    """Each index of ``llm_calls`` by name: its CREATE INDEX statement as the database keeps
    it (alembic cannot compare expression, descending or partial indexes)."""
    query = (
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'llm_calls'"
        if engine.dialect.name == "postgresql"
        else "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'llm_calls'"
    )
    with engine.connect() as connection:
        return {name: sql for name, sql in connection.exec_driver_sql(query) if sql}


def test_the_sort_indexes_are_in_the_calls_page_order(database_url: str) -> None:
    """Alembic cannot compare expression or descending indexes: their definitions are read
    from the database, and each index serves its order (the planner reads its top)."""
    engine = create_engine(database_url)
    upgrade(engine)
    postgres = engine.dialect.name == "postgresql"
    found = {n: d for n, d in index_definitions(engine).items() if n in SORT_INDEXES}
    nulls = " NULLS LAST" if postgres else ""
    tokens = (
        "(CAST(COALESCE(prompt_tokens, 0) AS BIGINT)"
        " + CAST(COALESCE(completion_tokens, 0) AS BIGINT))"
        if not postgres  # PostgreSQL writes the casts its own way
        else "((COALESCE(prompt_tokens, 0))::BIGINT + (COALESCE(completion_tokens, 0))::BIGINT)"
    )
    expected = {
        "ix_llm_calls_model_cost": f"model, cost_usd DESC{nulls}",
        "ix_llm_calls_model_latency": f"model, latency_ms DESC{nulls}",
        "ix_llm_calls_model_tokens": f"model, {tokens} DESC{nulls}",
    }
    assert set(found) == set(expected)

    def bare(sql: str) -> str:  # PostgreSQL adds parentheses and capitals
        return "".join(c for c in sql.upper() if c not in "() ")

    for name, columns in expected.items():
        assert bare(found[name]).endswith(bare(columns)), found[name]


def test_indexes_for_the_common_queries(database_url: str) -> None:
    engine = create_engine(database_url)
    check_schema(engine)
    indexes = {i["name"]: i["column_names"] for i in sa.inspect(engine).get_indexes("llm_calls")}
    assert indexes["ix_llm_calls_created_at"] == ["created_at"]
    assert indexes["ix_llm_calls_timing"][:1] == ["created_at"]  # a range of one source
    assert indexes["ix_llm_calls_prompt"] == ["prompt_name", "prompt_version", "created_at"]
    assert indexes["ix_llm_calls_model"] == ["model", "created_at"]
    assert indexes["ix_llm_calls_user"] == ["user_id", "created_at"]
    assert "ix_llm_calls_source" not in indexes  # migration 0017: ix_llm_calls_timing serves


def test_the_indexes_of_often_empty_columns_hold_only_values(database_url: str) -> None:
    """Migration 0017: the calls without a user, session, key, prompt or version are not in
    those indexes (both databases read "WHERE column IS NOT NULL" as the whole index's)."""
    engine = create_engine(database_url)
    check_schema(engine)
    found = index_definitions(engine)
    partial = {
        "ix_llm_calls_user": "user_id",
        "ix_llm_calls_session": "session_id",
        "ix_llm_calls_api_key": "api_key",
        "ix_llm_calls_prompt": "prompt_name",
        "ix_llm_calls_version": "prompt_version",
    }
    for name, column in partial.items():
        assert (
            found[name].replace("(", "").replace(")", "").endswith(f"WHERE {column} IS NOT NULL")
        ), found[name]


def test_outdated_schema_is_refused_then_upgraded_keeping_rows(database_url: str) -> None:
    engine = create_engine(database_url)
    upgrade(engine, "0001")
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO llm_calls (id, created_at, source, model, status, tokens_estimated,"
                " cost_status) VALUES ('old-call', '2026-01-01 00:00:00', 'app', 'gpt-4o-mini',"
                " 'ok', false, 'priced')"
            )
        )
    with pytest.raises(SchemaOutdatedError, match=r"at schema 0001.*run `llmops db upgrade`"):
        check_schema(engine)
    assert upgrade(engine) == HEAD_REVISION
    assert check_schema(engine) == HEAD_REVISION
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT id FROM llm_calls")).scalars().all() == [
            "old-call"
        ]
        assert current_revision(connection) == HEAD_REVISION


def test_unknown_newer_schema_is_refused(database_url: str) -> None:
    engine = create_engine(database_url)
    check_schema(engine)
    with engine.begin() as connection:
        connection.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'"))
    with pytest.raises(SchemaOutdatedError, match="newer than this llmops"):
        check_schema(engine)


def test_foreign_llm_calls_table_is_refused(database_url: str) -> None:
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE llm_calls (id integer)"))
    with pytest.raises(SchemaOutdatedError, match="did not create"):
        check_schema(engine)


def test_urls() -> None:
    assert normalize_url("postgresql://u:p@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    with pytest.raises(ConfigError, match="unsupported database 'mysql'"):
        normalize_url("mysql://u@h/db")
    with pytest.raises(ConfigError, match="bad database URL"):
        normalize_url("not a url")
