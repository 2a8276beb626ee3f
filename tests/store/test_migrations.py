"""Schema: created on first use, migrations match the tables, old schemas are refused."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from llmops.errors import ConfigError, SchemaOutdatedError
from llmops.store.engine import (
    HEAD_REVISION,
    REVISIONS,
    SQLITE_PAGE_SIZE,
    VERSION_TABLE,
    check_schema,
    create_engine,
    current_revision,
    normalize_url,
    upgrade,
)
from llmops.store.partitions import PARENTS, list_partitions
from llmops.store.queries import Filters, calls_page
from llmops.store.tables import VALUE_INDEXES, SQLModel
from tests.store.test_partitions import insert_generated_calls
from tests.store.test_timing import upgrade_down


def test_new_database_is_created_at_head(empty_database_url: str) -> None:
    engine = create_engine(empty_database_url)
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


def test_migrations_produce_exactly_the_declared_tables(empty_database_url: str) -> None:
    """The tables of the models, exactly; on PostgreSQL ``llm_calls`` and
    ``llm_call_content`` are partitioned (migrations 0012, 0016): their partitions are not
    tables of their own, and ``feedback.call_id`` has no foreign key there (a partitioned
    table can only be referenced by its whole key)."""
    engine = create_engine(empty_database_url)
    upgrade(engine)
    postgres = engine.dialect.name == "postgresql"
    with engine.connect() as connection:
        partitions = {p.name for parent in PARENTS for p in list_partitions(connection, parent)}
        connection.rollback()

        def include(
            _object: object, name: str | None, kind: str, reflected: bool, _to: object
        ) -> bool:
            if kind == "index" and name in SORT_INDEXES:  # compared in the next test
                return False
            if kind == "index" and name in VALUE_INDEXES and postgres:  # migration 0019
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
    if postgres:
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


def test_the_sort_indexes_are_in_the_calls_page_order(empty_database_url: str) -> None:
    """Alembic cannot compare expression or descending indexes: their definitions are read
    from the database, and each index serves its order (the planner reads its top)."""
    engine = create_engine(empty_database_url)
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


def test_indexes_for_the_common_queries(empty_database_url: str) -> None:
    """The filters' indexes: (values, created_at) on SQLite; the values alone on PostgreSQL
    (migration 0019), where each holds a value once with its calls."""
    engine = create_engine(empty_database_url)
    check_schema(engine)
    indexes = {i["name"]: i["column_names"] for i in sa.inspect(engine).get_indexes("llm_calls")}
    assert indexes["ix_llm_calls_created_at"] == ["created_at"]
    assert "ix_llm_calls_source" not in indexes  # migration 0017: a source's calls by time
    assert "ix_llm_calls_timing" not in indexes  # migration 0020: the histograms serve
    values = {
        "ix_llm_calls_model": ["model"],
        "ix_llm_calls_status": ["status"],
        "ix_llm_calls_prompt": ["prompt_name", "prompt_version"],
        "ix_llm_calls_version": ["prompt_version"],
        "ix_llm_calls_user": ["user_id"],
        "ix_llm_calls_session": ["session_id"],
        "ix_llm_calls_api_key": ["api_key"],
    }
    assert set(values) == set(VALUE_INDEXES)
    time = [] if engine.dialect.name == "postgresql" else ["created_at"]
    assert {name: indexes[name] for name in values} == {n: v + time for n, v in values.items()}


GENERATED_CALLS = 50_000


def generated_calls(postgres_url: str) -> sa.Engine:
    """A database at head with 50,000 calls of the last 14 hours: 8 models, 6 prompts of 12
    versions, 200 users, 2,000 sessions, 3 virtual keys, 1 call in 100 an error."""
    engine = create_engine(postgres_url)
    upgrade(engine)
    with engine.begin() as connection:
        insert_generated_calls(
            connection, GENERATED_CALLS, "1 s",
            model="'model-' || i %% 8", prompt_name="'prompt-' || i %% 6",
            prompt_version="'v' || i %% 12", user_id="'user-' || i %% 200",
            session_id="'session-' || i %% 2000", api_key="'key-' || i %% 3",
            status="CASE WHEN i %% 100 = 0 THEN 'error' ELSE 'ok' END",
        )  # fmt: skip
    return engine


def test_postgres_value_indexes_hold_each_value_once(postgres_url: str) -> None:
    """Migration 0019: on PostgreSQL a filter's index holds each value once with the row
    addresses of its calls (B-tree deduplication), a few bytes per call; with created_at
    beside the value, each call had an entry of its own (31-82 bytes at 10 million calls).
    Downgraded, the indexes hold the time again."""
    engine = generated_calls(postgres_url)

    def bytes_per_call() -> dict[str, float]:
        with engine.connect() as connection:
            sizes = connection.execute(
                sa.text(
                    "SELECT p.relname, sum(pg_relation_size(c.oid)) FROM pg_class p "
                    "JOIN pg_inherits i ON i.inhparent = p.oid JOIN pg_class c "
                    "ON c.oid = i.inhrelid WHERE p.relname IN :names GROUP BY p.relname"
                ).bindparams(sa.bindparam("names", expanding=True)),
                {"names": list(VALUE_INDEXES)},
            ).all()
        return {name: int(size) / GENERATED_CALLS for name, size in sizes}

    lean = bytes_per_call()
    assert set(lean) == set(VALUE_INDEXES)
    # 7-10 B here: each partition's index has a page or two even empty (8 KB each)
    assert all(size < 14 for size in lean.values()), lean
    upgrade_down(engine, "0018")
    wide = bytes_per_call()
    assert all(wide[name] > 2.5 * lean[name] for name in VALUE_INDEXES), (wide, lean)  # 32-41 B
    assert upgrade(engine) == HEAD_REVISION


def test_postgres_reads_a_page_of_few_calls_by_value_and_of_many_by_time(
    postgres_url: str,
) -> None:
    """Without the time in the value indexes (migration 0019), the newest page of a filter
    that picks few calls (a user: 1 in 200) is read through the value's index, and of one
    that picks many (a model: 1 in 8; the "ok" status) newest first through an index that
    starts with ``created_at``, as the planner decides from the columns' statistics: neither
    reads every call of the value or of the range."""
    engine = generated_calls(postgres_url)
    with engine.begin() as connection:
        # every row in the sample (300 x the target), so that the statistics, and the plans
        # chosen from them, are the same on every run: with the default target ANALYZE
        # reads 30,000 rows at random, and which users made its list of most common values
        # decided between the two plans of a user's page (once in CI: by time)
        connection.exec_driver_sql("SET LOCAL default_statistics_target = 1000")
        connection.exec_driver_sql("ANALYZE llm_calls")
        for partition in list_partitions(connection):
            connection.exec_driver_sql(f"ANALYZE {partition.name}")
    now = datetime.now(UTC)
    day = Filters(start=now - timedelta(hours=12), end=now + timedelta(minutes=1))
    cases = {
        "a user": (replace(day, users=("user-7",)), "_user_id_idx"),
        "a model": (replace(day, models=("model-3",)), "_created_at"),
        "the ok status": (replace(day, statuses=("ok",)), "_created_at"),
    }
    statements: list[tuple[str, object]] = []

    def keep(_conn, _cursor, statement, parameters, _context, _many) -> None:
        if "ORDER BY" in statement:
            statements.append((statement, parameters))

    for case, (filters, index) in cases.items():
        statements.clear()
        sa.event.listen(engine, "before_cursor_execute", keep)
        try:
            rows, total = calls_page(engine, filters)
        finally:
            sa.event.remove(engine, "before_cursor_execute", keep)
        assert len(rows) == 50 and total > 50, case
        [(statement, parameters)] = statements
        with engine.connect() as connection:
            plan = connection.exec_driver_sql(
                f"EXPLAIN ANALYZE {statement}", parameters
            ).scalars().all()  # fmt: skip
        scans = [line for line in plan if "Index" in line and " on llm_calls_" in line]
        assert scans and all(index in line for line in scans), (case, plan)
        assert "Seq Scan" not in "\n".join(plan), (case, plan)
        if index == "_created_at":  # newest first: only until the page is full
            assert all("Backward" in line for line in scans), (case, plan)


def test_the_indexes_of_often_empty_columns_hold_only_values(empty_database_url: str) -> None:
    """Migration 0017: the calls without a user, session, key, prompt or version are not in
    those indexes (both databases read "WHERE column IS NOT NULL" as the whole index's)."""
    engine = create_engine(empty_database_url)
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


def at_0001_with_a_call(database_url: str) -> sa.Engine:
    """The database at schema 0001 with one call, ``old-call``, and its feedback."""
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
        connection.execute(
            sa.text(
                "INSERT INTO feedback (id, call_id, created_at, name, score) VALUES "
                "('old-feedback', 'old-call', '2026-01-01 00:01:00', 'thumbs', 1)"
            )
        )
    return engine


def test_outdated_schema_is_refused_then_upgraded_keeping_rows(empty_database_url: str) -> None:
    engine = at_0001_with_a_call(empty_database_url)
    with pytest.raises(SchemaOutdatedError, match=r"at schema 0001.*run `llmops db upgrade`"):
        check_schema(engine)
    assert upgrade(engine) == HEAD_REVISION
    assert check_schema(engine) == HEAD_REVISION
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT id FROM llm_calls")).scalars().all() == [
            "old-call"
        ]
        assert current_revision(connection) == HEAD_REVISION


KILLED_UPGRADE = """
import os, signal, sys
import sqlalchemy as sa
from llmops.store.engine import create_engine, upgrade

engine = create_engine(sys.argv[1])
statements = 0

@sa.event.listens_for(engine, "after_cursor_execute")
def kill(*args):
    global statements
    statements += 1
    if statements == int(sys.argv[2]):
        os.kill(os.getpid(), signal.SIGKILL)

upgrade(engine)
"""


@pytest.mark.integration  # starts and kills Python processes
@pytest.mark.parametrize("killed_after", [5, 40, 90])
def test_an_upgrade_killed_midway_leaves_the_database_as_it_was(
    empty_database_url: str, killed_after: int
) -> None:
    """``llmops db upgrade`` SIGKILLed after its n-th statement (of about 140 from 0001):
    the database is still at 0001 with its call, and the next upgrade completes. SQLite's
    driver committed each CREATE, DROP and ALTER on its own, so such a kill left half a
    migration behind and the next upgrade failed ("index ... already exists")."""
    engine = at_0001_with_a_call(empty_database_url)
    engine.dispose()
    child = subprocess.run(
        [sys.executable, "-c", KILLED_UPGRADE, empty_database_url, str(killed_after)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert child.returncode == -signal.SIGKILL, child.stderr
    with engine.connect() as connection:
        assert current_revision(connection) == "0001"
    assert upgrade(engine) == HEAD_REVISION
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT id FROM llm_calls")).scalars().all() == [
            "old-call"
        ]
        assert connection.execute(sa.text("SELECT call_id FROM feedback")).scalars().all() == [
            "old-call"
        ]


def test_every_migration_is_known_and_the_one_before_the_head_is_outdated(
    empty_database_url: str,
) -> None:
    """A database one migration behind (llmops upgraded, the schema not yet) is told to run
    `llmops db upgrade`, not that it is newer than llmops."""
    folder = Path(__file__).parents[2] / "llmops" / "store" / "migrations" / "versions"
    files = sorted(path.name[:4] for path in folder.glob("[0-9][0-9][0-9][0-9]_*.py"))
    assert tuple(files) == REVISIONS and REVISIONS[-1] == HEAD_REVISION
    engine = create_engine(empty_database_url)
    upgrade(engine, REVISIONS[-2])
    with pytest.raises(SchemaOutdatedError, match=r"needs " + HEAD_REVISION + r": run `llmops"):
        check_schema(engine)


def test_unknown_newer_schema_is_refused(empty_database_url: str) -> None:
    engine = create_engine(empty_database_url)
    check_schema(engine)
    with engine.begin() as connection:
        connection.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'"))
    with pytest.raises(SchemaOutdatedError, match="newer than this llmops"):
        check_schema(engine)


def test_foreign_llm_calls_table_is_refused(empty_database_url: str) -> None:
    engine = create_engine(empty_database_url)
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
