"""Monthly partitions of llm_calls on PostgreSQL (migration 0012): the migration keeps every
row, rollup, histogram, index, constraint and trigger and the chains' verification; the
writer stores into any month (the DEFAULT partition takes what no month covers) exactly
once; partitions are created ahead, concurrently, moving rows out of the DEFAULT partition;
prune drops whole months; a time-range query reads only its months' partitions."""

from __future__ import annotations

import json
import random
import re
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from llmops.audit.retention import prune
from llmops.audit.verify import verify
from llmops.errors import DatabaseError
from llmops.store.engine import HEAD_REVISION, check_schema, create_engine, upgrade
from llmops.store.engine import snapshot as read_snapshot
from llmops.store.partitions import (
    DEFAULT_PARTITION,
    ensure_partitions,
    list_partitions,
    month_of,
    next_month,
    partition_name,
)
from llmops.store.tables import VALUE_INDEXES
from llmops.store.writer import Writer
from tests.store.test_rollups import assert_rollups_match
from tests.store.test_timing import assert_histograms_match, upgrade_down
from tests.store.test_writer import (
    call_row,
    feedback_row,
    insert_calls,
    recorded_calls,
    store_rows,
    wait_for_a_rejection,
)

ROLLUP_TABLES = (
    "llm_calls_daily", "llm_calls_daily_users", "llm_calls_daily_tags", "feedback_daily",
    "llm_calls_daily_timing",
)  # fmt: skip
SORT_INDEXES = tuple(
    f"CREATE INDEX ix_llm_calls_model_{order}" for order in ("cost", "latency", "tokens")
)
# migration 0017: indexes dropped, and indexes of the calls with a value in a column
DROPPED_INDEXES = ("ix_llm_calls_source", "ix_llm_calls_timing")  # migrations 0017, 0020
PARTIAL_INDEXES = {
    "ix_llm_calls_user": "user_id",
    "ix_llm_calls_session": "session_id",
    "ix_llm_calls_api_key": "api_key",
    "ix_llm_calls_prompt": "prompt_name",
    "ix_llm_calls_version": "prompt_version",
}
EDGES = [
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(2025, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),  # the last moment of a month
    datetime(2026, 1, 1, tzinfo=UTC),  # the first moment of the next
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
]


@pytest.fixture
def engine(postgres_url: str) -> Any:
    engine = create_engine(postgres_url)
    yield engine
    engine.dispose()


def calls_over_months(rng: random.Random, n: int, first: datetime, days: int) -> list[dict]:
    rows = []
    for _ in range(n):
        at = first + timedelta(seconds=rng.uniform(0, days * 86_400))
        rows.append(
            call_row(
                created_at=at,
                model=rng.choice(["gpt-4o", "gpt-4o-mini"]),
                user_id=rng.choice(["u1", "u2", None]),
                tags=rng.choice([["a"], ["a", "b"], None]),
                latency_ms=rng.lognormvariate(6, 1),
                ttft_ms=rng.choice([None, rng.lognormvariate(5, 1)]),
                cost_usd=rng.random() / 100,
            )
        )
    return rows


def snapshot(engine: sa.Engine) -> dict[str, Any]:
    """Every call as recorded (with its content, wherever the schema keeps it), every row of
    feedback, and every rollup and histogram row."""
    with engine.connect() as connection:
        tables = {
            name: sorted(
                (tuple(json.dumps(v, default=str) for v in r) for r in connection.execute(
                    sa.text(f"SELECT * FROM {name}"))),
            )
            for name in ("feedback", *ROLLUP_TABLES)
        }  # fmt: skip
        tables["llm_calls"] = sorted(
            tuple(json.dumps(row[k], default=str, sort_keys=True) for k in sorted(row))
            for row in recorded_calls(connection)
        )
    return tables


def catalog(engine: sa.Engine) -> dict[str, Any]:
    """What PostgreSQL says llm_calls is: columns (type, NOT NULL, default), constraints,
    indexes, its own triggers, privileges, and feedback's constraints."""
    q = {
        "columns": "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
        "pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a LEFT JOIN pg_attrdef d "
        "ON d.adrelid = a.attrelid AND d.adnum = a.attnum WHERE a.attrelid = 'llm_calls'::regclass "
        "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        "constraints": "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = 'llm_calls'::regclass ORDER BY conname",
        "indexes": "SELECT pg_get_indexdef(indexrelid) FROM pg_index "
        "WHERE indrelid = 'llm_calls'::regclass ORDER BY 1",
        "triggers": "SELECT pg_get_triggerdef(oid) FROM pg_trigger "
        "WHERE tgrelid = 'llm_calls'::regclass AND NOT tgisinternal ORDER BY tgname",
        "grants": "SELECT grantee, privilege_type FROM information_schema.role_table_grants "
        "WHERE table_name = 'llm_calls' AND grantee <> current_user ORDER BY 1, 2",
        "feedback": "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = 'feedback'::regclass ORDER BY conname",
    }
    with engine.connect() as connection:
        found = {k: [tuple(r) for r in connection.execute(sa.text(v))] for k, v in q.items()}
    found["indexes"] = [(re.sub(" ON ONLY ", " ON ", d),) for (d,) in found["indexes"]]
    return found


def where_rows_are(engine: sa.Engine) -> dict[str, str]:
    """call id -> the partition (or table) holding it."""
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT id, tableoid::regclass::text FROM llm_calls"))
        return {r[0]: r[1] for r in rows}


def names(engine: sa.Engine) -> set[str]:
    with engine.connect() as connection:
        return {p.name for p in list_partitions(connection)}


def test_migrating_a_0011_database_keeps_every_row_index_trigger_and_chain(
    engine: sa.Engine, tmp_path: Path
) -> None:
    upgrade(engine, "0011")
    role = f"reader_{uuid.uuid4().hex[:8]}"
    with engine.begin() as connection:  # what a user may have added to the table
        connection.execute(
            sa.text(
                "ALTER TABLE llm_calls ADD CONSTRAINT tokens_not_negative "
                "CHECK (prompt_tokens IS NULL OR prompt_tokens >= 0)"
            )
        )
        connection.execute(sa.text("ALTER TABLE llm_calls ALTER COLUMN source SET DEFAULT 'app'"))
        connection.execute(sa.text("CREATE INDEX my_metadata ON llm_calls USING gin (metadata)"))
        connection.execute(sa.text("CREATE TABLE seen (id text)"))
        connection.execute(
            sa.text(
                "CREATE FUNCTION note() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "INSERT INTO seen VALUES (NEW.id); RETURN NULL; END $$"
            )
        )
        connection.execute(
            sa.text(
                "CREATE TRIGGER my_row_trigger AFTER INSERT ON llm_calls "
                "FOR EACH ROW EXECUTE FUNCTION note()"
            )
        )
        connection.execute(sa.text(f"CREATE ROLE {role}"))
        connection.execute(sa.text(f"GRANT SELECT ON llm_calls TO {role}"))
    try:
        rng = random.Random(11)
        calls = [call_row(created_at=at) for at in EDGES]
        calls += calls_over_months(rng, 600, datetime(2026, 7, 15, tzinfo=UTC), 150)
        feedback = [feedback_row(c["id"], rng.choice([0, 1])) for c in calls[::7]]
        store_rows(engine, tmp_path / "spool", calls, feedback)
        before, shape = snapshot(engine), catalog(engine)  # (verified after the upgrade)

        assert upgrade(engine) == HEAD_REVISION
        assert snapshot(engine) == before  # every row, rollup and histogram, unchanged
        after = catalog(engine)
        added = [t for t in after["triggers"] if " llm_calls_user_rollups_" in t[0]]
        assert len(added) == 3  # migration 0021: the busy user-days' rollups
        assert [t for t in after["triggers"] if t not in added] == shape["triggers"]
        assert after["grants"] == shape["grants"]
        # migration 0016: the content moved to llm_call_content, the parameters to a column
        content = [c for c in shape["columns"] if c[0] in ("request", "response_text")]
        assert after["columns"] == [c for c in shape["columns"] if c not in content] + [
            ("params", "jsonb", False, None)
        ]
        pkey = ("llm_calls_pkey", "PRIMARY KEY (id, created_at)")
        assert after["constraints"] == sorted(
            [pkey if name == "llm_calls_pkey" else (name, d) for name, d in shape["constraints"]]
        )
        pk_index = "CREATE UNIQUE INDEX llm_calls_pkey ON public.llm_calls USING btree (id"
        sorts = [(d,) for (d,) in after["indexes"] if d.split(" ON ")[0] in SORT_INDEXES]
        assert len(sorts) == len(SORT_INDEXES)  # migration 0017's, after 0012

        def now_as(definition: str) -> str | None:
            name = definition.split(" ON ")[0].removeprefix("CREATE INDEX ")
            if name in DROPPED_INDEXES:
                return None
            if name in VALUE_INDEXES:  # migration 0019: the values alone
                definition = definition.replace(", created_at)", ")")
            if name in PARTIAL_INDEXES:
                return f"{definition} WHERE ({PARTIAL_INDEXES[name]} IS NOT NULL)"
            return definition.replace(f"{pk_index})", f"{pk_index}, created_at)")

        expected = [now_as(d) for (d,) in shape["indexes"]]
        assert [i for i in after["indexes"] if i not in sorts] == sorted(
            (d,) for d in expected if d is not None
        )
        assert after["feedback"] == [f for f in shape["feedback"] if "FOREIGN KEY" not in f[1]]
        result = verify(engine)
        assert result.ok, result.breaks
        assert result.checked["llm_calls"] == len(calls)

        # a partition per month with rows, the current and next months, and DEFAULT
        months = {month_of(c["created_at"]) for c in calls} | {month_of(datetime.now(UTC))}
        assert {partition_name(m) for m in months} | {DEFAULT_PARTITION} <= names(engine)
        placed = where_rows_are(engine)
        assert all(placed[c["id"]] == partition_name(month_of(c["created_at"])) for c in calls)
        with engine.connect() as connection:  # each partition has every index of the parent
            per_partition = dict(
                connection.execute(
                    sa.text(
                        "SELECT c.relname, count(*) FROM pg_inherits i JOIN pg_class c "
                        "ON c.oid = i.inhrelid JOIN pg_index x ON x.indrelid = c.oid "
                        "WHERE i.inhparent = 'llm_calls'::regclass AND x.indisvalid GROUP BY 1"
                    )
                ).all()
            )
        assert set(per_partition.values()) == {len(after["indexes"])}

        # the triggers fire for rows routed to any partition, on insert, update and delete
        later = calls_over_months(rng, 200, datetime(2026, 9, 1, tzinfo=UTC), 90)
        later.append(call_row(created_at=datetime(2300, 1, 1, tzinfo=UTC)))  # DEFAULT
        store_rows(engine, tmp_path / "spool2", later, [feedback_row(later[0]["id"])])
        with engine.connect() as connection:
            seen = connection.execute(sa.text("SELECT count(*) FROM seen")).scalar()
        assert seen == len(calls) + len(later)  # the row trigger fired for every insert
        with engine.begin() as connection:
            moved = connection.execute(
                sa.text(  # to another month's partition
                    "UPDATE llm_calls SET created_at = created_at - interval '40 days', "
                    "latency_ms = 7.5 WHERE id IN (SELECT id FROM llm_calls ORDER BY id LIMIT 50)"
                )
            )
            assert moved.rowcount == 50
            connection.execute(
                sa.text(
                    "DELETE FROM feedback WHERE call_id IN "
                    "(SELECT id FROM llm_calls ORDER BY id DESC LIMIT 20)"
                )
            )
            connection.execute(
                sa.text(
                    "DELETE FROM llm_calls WHERE id IN (SELECT id FROM llm_calls ORDER BY id DESC "
                    "LIMIT 20)"
                )
            )
        assert_rollups_match(engine)
        assert_histograms_match(engine)

        # down to 0011: a plain table again, with the same shape and rows
        kept = snapshot(engine)
        upgrade_down(engine, "0011")
        back = catalog(engine)
        assert sorted(back.pop("columns")) == sorted(shape["columns"])  # content last now
        assert back == {k: v for k, v in shape.items() if k != "columns"}
        assert snapshot(engine) == kept
        with engine.connect() as connection:
            kind = connection.execute(
                sa.text("SELECT relkind FROM pg_class WHERE oid = 'llm_calls'::regclass")
            ).scalar()
            assert kind == "r"
            assert not connection.execute(
                sa.text(
                    "SELECT count(*) FROM pg_class WHERE relname LIKE 'llm\\_calls\\_____\\___' "
                    "OR relname = 'llm_calls_default'"
                )
            ).scalar()
        assert_rollups_match(engine)
        assert upgrade(engine) == HEAD_REVISION  # and up again
        assert snapshot(engine) == kept
        assert_rollups_match(engine)
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text(f"REVOKE ALL ON llm_calls FROM {role}"))
            connection.execute(sa.text(f"DROP ROLE {role}"))


def test_downgrade_refuses_feedback_whose_call_is_gone(engine: sa.Engine) -> None:
    """Without the foreign key, feedback could outlive its call if written around llmops:
    downgrade then stops (the foreign key cannot be made) and changes nothing."""
    check_schema(engine)
    with engine.begin() as connection:
        insert_calls(connection, [call_row(id="c1")])
        connection.execute(
            sa.text(
                "INSERT INTO feedback (id, call_id, created_at, name, score) "
                "VALUES ('f1', 'gone', now(), 'rating', 1)"
            )
        )
    with pytest.raises(DatabaseError, match="foreign key"):
        upgrade_down(engine, "0011")
    with engine.connect() as connection:
        kind = connection.execute(
            sa.text("SELECT relkind FROM pg_class WHERE oid = 'llm_calls'::regclass")
        ).scalar()
    assert kind == "p"
    assert check_schema(engine, create=False) == HEAD_REVISION


def test_the_writer_stores_past_current_and_far_future_months_once(
    engine: sa.Engine, tmp_path: Path
) -> None:
    check_schema(engine)
    now = datetime.now(UTC)
    calls = [call_row(created_at=at) for at in [*EDGES, now, datetime(2100, 6, 1, tzinfo=UTC)]]
    feedback = [feedback_row(c["id"]) for c in calls]
    store_rows(engine, tmp_path / "spool", calls, feedback)
    placed = where_rows_are(engine)
    assert len(placed) == len(calls)
    assert placed[calls[4]["id"]] == partition_name(month_of(now))
    for row in calls[:4] + calls[5:]:  # no month partition for those: DEFAULT takes them
        assert placed[row["id"]] == DEFAULT_PARTITION
    with engine.connect() as connection:
        stored = dict(connection.execute(sa.text("SELECT id, created_at FROM llm_calls")).all())
    assert all(stored[c["id"]] == c["created_at"] for c in calls)  # to the microsecond

    # replayed rows are skipped (same id, same created_at), by the writer's check ...
    writer = Writer(lambda: engine, tmp_path / "spool")
    for row in calls:
        writer.put("call", dict(row))
    for row in feedback:
        writer.put("feedback", dict(row))
    writer.close()
    # ... and by ON CONFLICT DO NOTHING, if two writers race past the check
    with engine.begin() as connection:
        insert_calls(connection, calls, ignore=True)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM llm_calls")).scalar() == len(calls)
        assert connection.execute(sa.text("SELECT count(*) FROM feedback")).scalar() == len(calls)
    result = verify(engine)
    assert result.ok, result.breaks
    assert result.checked == {"llm_calls": len(calls), "feedback": len(calls)}
    assert_rollups_match(engine)
    assert_histograms_match(engine)


def test_feedback_for_a_missing_call_waits_then_is_rejected_without_a_foreign_key(
    engine: sa.Engine, tmp_path: Path
) -> None:
    check_schema(engine)
    writer = Writer(lambda: engine, tmp_path / "spool", retry_min=0.05, retry_max=0.2)
    good = call_row(created_at=datetime(1999, 1, 1, tzinfo=UTC))
    writer.put("call", good)
    writer.put("feedback", feedback_row(str(uuid.uuid4())))
    writer.put("feedback", feedback_row(good["id"]))
    wait_for_a_rejection(writer)
    assert writer.flush(10)
    writer.close()
    assert writer.stats.rejected == 1
    rejected = (tmp_path / "spool" / "rejected.log").read_text()
    assert "never stored" in rejected
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT call_id FROM feedback")).scalars().all() == [
            good["id"]
        ]
    assert verify(engine).ok


def test_feedback_looks_for_recent_calls_first(engine: sa.Engine, tmp_path: Path) -> None:
    """The writer's check of feedback's calls reads the recent months' partitions; only a
    call it does not find there is looked for in every partition."""
    check_schema(engine)
    recent = call_row(created_at=datetime.now(UTC) - timedelta(hours=1))
    old = call_row(created_at=datetime(1999, 1, 1, tzinfo=UTC))
    store_rows(engine, tmp_path / "spool", [recent, old], [])
    checks: list[bool] = []  # per look-up: bounded to the recent calls?

    def look_up(_conn, _cursor, statement, _parameters, _context, _many) -> None:
        if "FOR KEY SHARE" in statement:
            checks.append("created_at >=" in statement)

    sa.event.listen(engine, "before_cursor_execute", look_up)
    try:
        store_rows(engine, tmp_path / "spool2", [], [feedback_row(recent["id"])])
        assert checks == [True]
        checks.clear()
        store_rows(engine, tmp_path / "spool3", [], [feedback_row(old["id"])])
        assert checks == [True, False]
    finally:
        sa.event.remove(engine, "before_cursor_execute", look_up)
    with engine.connect() as connection:
        stored = connection.execute(sa.text("SELECT call_id FROM feedback")).scalars().all()
    assert sorted(stored) == sorted([recent["id"], old["id"]])


def insert_generated_calls(
    connection: sa.Connection, count: int, spacing: str, **columns: str
) -> None:
    """``count`` calls made in the database, the i-th ``spacing`` before now (i = 1, 2, ...):
    id ``md5(i)``, an ok priced call of model ``m`` from the app, or ``columns``' SQL
    expressions of ``i`` (``%`` written ``%%``)."""
    values = {
        "id": "md5(i::text)", "created_at": f"now() - i * interval '{spacing}'",
        "source": "'app'", "model": "'m'", "status": "'ok'", "tokens_estimated": "false",
        "cost_status": "'priced'", **columns,
    }  # fmt: skip
    connection.exec_driver_sql(
        f"INSERT INTO llm_calls ({', '.join(values)}) SELECT {', '.join(values.values())} "
        f"FROM generate_series(1, {count}) AS i"
    )


def calls_without_statistics(engine: sa.Engine) -> tuple[list[Any], list[str]]:
    """50,000 calls in partitions that autovacuum leaves unanalyzed; returns 200 of their
    (id, created_at) and the partitions holding calls."""
    check_schema(engine)
    with engine.begin() as connection:
        for partition in list_partitions(connection):
            connection.exec_driver_sql(
                f"ALTER TABLE {partition.name} SET (autovacuum_enabled = off)"
            )
        insert_generated_calls(connection, 50_000, "1 ms")
    with engine.connect() as connection:
        keys = connection.execute(
            sa.text("SELECT id, created_at FROM llm_calls ORDER BY id LIMIT 200")
        ).all()
        holding = connection.exec_driver_sql(
            "SELECT DISTINCT tableoid::regclass::text FROM llm_calls"
        ).scalars().all()  # fmt: skip
        assert connection.exec_driver_sql(  # no statistics: what the planner guesses from
            "SELECT count(*) FROM pg_stats WHERE tablename LIKE 'llm_calls%%'"
        ).scalar() == 0  # fmt: skip
    return list(keys), list(holding)


def assert_probed(plan: list[str], holding: list[str], key: str) -> None:
    """The partitions holding calls are read by their key, id by id (``id = <key>``, a
    pattern)."""
    for name in holding:
        node = next(i for i, line in enumerate(plan) if f" on {name} " in line)
        assert "Seq Scan" not in plan[node], plan
        pattern = r"(Index|Recheck) Cond: \(+\(?id\)?(::text)? = " + key
        assert re.search(pattern, plan[node + 1]), plan


def test_the_writers_look_ups_probe_the_key_without_statistics(
    engine: sa.Engine, tmp_path: Path
) -> None:
    """The writer's look-ups (a replayed batch's ids, feedback's calls) probe the primary key
    id by id, whatever statistics a partition has. Before autovacuum analyzes a new month's
    partition (or the DEFAULT one), an ``id IN (...)`` list was planned as a read of all its
    calls: 0.1-0.4 s per batch at 300,000 calls, growing with the partition."""
    keys, holding = calls_without_statistics(engine)
    look_ups: list[tuple[str, Any]] = []

    def look_up(_conn, _cursor, statement, parameters, _context, _many) -> None:
        partitions = "llm_calls_default" in statement  # the writer's check of its months
        if statement.startswith("SELECT") and "llm_calls" in statement and not partitions:
            look_ups.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", look_up)
    try:  # the 200 calls again (a replay: stored already), then feedback on them
        replay = [call_row(id=i, created_at=at) for i, at in keys]
        store_rows(engine, tmp_path / "spool", replay, [feedback_row(i) for i, _ in keys])
    finally:
        sa.event.remove(engine, "before_cursor_execute", look_up)
    assert len(look_ups) == 2, look_ups  # the replay's ids, then the feedback's calls
    with engine.connect() as connection:
        for statement, parameters in look_ups:
            plan = connection.exec_driver_sql(f"EXPLAIN {statement}", parameters).scalars().all()
            assert_probed(plan, holding, r"k\.id")
        assert connection.execute(sa.text("SELECT count(*) FROM llm_calls")).scalar() == 50_000
        assert connection.execute(sa.text("SELECT count(*) FROM feedback")).scalar() == 200


def test_the_feedback_rollup_probes_each_call_without_statistics(
    engine: sa.Engine, tmp_path: Path
) -> None:
    """The trigger that counts new feedback in ``feedback_daily`` finds each feedback row's
    call by its key (migration 0018), whatever statistics the partitions have. Its join of
    migration 0005 was planned as a hash join over every call of an unanalyzed partition:
    44 ms per batch of 142 feedback rows at 200,000 calls, growing with the partition.
    The plan is the one PostgreSQL ran, as auto_explain logs it."""
    keys, holding = calls_without_statistics(engine)
    plans: list[str] = []

    def explain_everything(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.add_notice_handler(lambda notice: plans.append(notice.message_primary))
        for setting in (
            "LOAD 'auto_explain'",
            "SET auto_explain.log_min_duration = 0",
            "SET auto_explain.log_nested_statements = on",
            "SET client_min_messages = log",  # the server's log lines come as notices
        ):
            dbapi_connection.execute(setting)
        dbapi_connection.commit()

    explaining = create_engine(engine.url.render_as_string(hide_password=False))
    sa.event.listen(explaining, "connect", explain_everything)
    try:
        store_rows(explaining, tmp_path / "spool", [], [feedback_row(i) for i, _ in keys])
    finally:
        explaining.dispose()
    counted = [p for p in plans if "Query Text: INSERT INTO feedback_daily (" in p]
    assert len(counted) == 1, plans
    assert_probed(counted[0].splitlines(), holding, r"\(?f\.call_id\)?")
    # and so do the busy user-days' (migration 0021): the share lock, then the count
    for query in ("INSERT INTO feedback_daily_users (", "SELECT 1 FROM llm_calls_daily_users"):
        (plan,) = [p for p in plans if f"Query Text: {query}" in p]
        assert_probed(plan.splitlines(), holding, r"\(?f\.call_id\)?")
    with engine.connect() as connection:
        assert connection.execute(
            sa.text("SELECT sum(feedback_count) FROM feedback_daily")
        ).scalar() == 200  # fmt: skip


def test_rows_waiting_in_the_default_partition_move_to_their_new_partition(
    engine: sa.Engine, tmp_path: Path
) -> None:
    check_schema(engine)
    rng = random.Random(5)
    future = calls_over_months(rng, 300, datetime(2031, 3, 1, tzinfo=UTC), 90)  # Mar-May
    store_rows(engine, tmp_path / "spool", future, [feedback_row(c["id"]) for c in future[:30]])
    assert set(where_rows_are(engine).values()) == {DEFAULT_PARTITION}
    before = snapshot(engine)

    created = ensure_partitions(engine, datetime(2031, 3, 20, tzinfo=UTC), months_ahead=1)
    assert created == [
        "llm_calls_2031_03", "llm_calls_2031_04",
        "llm_call_content_2031_03", "llm_call_content_2031_04",
    ]  # fmt: skip
    placed = where_rows_are(engine)
    with engine.connect() as connection:  # the calls' content moved with them
        query = "SELECT call_id, tableoid::regclass::text FROM llm_call_content"
        content = dict(connection.execute(sa.text(query)).all())
    assert len(content) == len(future)
    for row in future:
        month = month_of(row["created_at"])
        want = partition_name(month) if month < (2031, 5) else DEFAULT_PARTITION
        assert placed[row["id"]] == want
        assert content[row["id"]] == want.replace("llm_calls_", "llm_call_content_")
    assert snapshot(engine) == before  # moved, not changed: rollups and histograms too
    assert_rollups_match(engine)
    assert_histograms_match(engine)
    assert verify(engine).ok
    assert ensure_partitions(engine, datetime(2031, 3, 20, tzinfo=UTC), months_ahead=1) == []
    # the moved rows still count once when they change
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE llm_calls SET prompt_tokens = prompt_tokens + 1"))
    assert_rollups_match(engine)


def test_partitions_are_ensured_by_several_processes_at_once(
    engine: sa.Engine, postgres_url: str
) -> None:
    check_schema(engine)
    with engine.begin() as connection:  # rows waiting in DEFAULT make it slower and racier
        insert_calls(connection, [
            call_row(created_at=datetime(2040, m, 2, tzinfo=UTC)) for m in range(1, 13)
        ])  # fmt: skip
    start = threading.Barrier(6)
    created: list[list[str]] = []
    errors: list[BaseException] = []

    def ensure() -> None:
        mine = create_engine(postgres_url)
        try:
            start.wait()
            created.append(
                ensure_partitions(mine, datetime(2040, 1, 15, tzinfo=UTC), months_ahead=11)
            )
        except BaseException as exc:
            errors.append(exc)
        finally:
            mine.dispose()

    threads = [threading.Thread(target=ensure) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    every = sorted(name for names_ in created for name in names_)
    months = [f"2040_{m:02d}" for m in range(1, 13)]
    assert every == sorted(  # each made once, for both tables
        [f"llm_calls_{m}" for m in months] + [f"llm_call_content_{m}" for m in months]
    )
    placed = where_rows_are(engine)
    assert sorted(placed.values()) == [f"llm_calls_{m}" for m in months]
    assert_rollups_match(engine)


def test_prune_drops_whole_months_and_deletes_the_rest(engine: sa.Engine, tmp_path: Path) -> None:
    check_schema(engine)
    now = datetime(2027, 6, 10, 12, tzinfo=UTC)
    # partitions from 2025-10, as the migration and the writer would have made them
    ensure_partitions(engine, datetime(2025, 10, 1, tzinfo=UTC), months_ahead=22)
    rng = random.Random(3)
    calls = calls_over_months(rng, 800, datetime(2025, 10, 1, tzinfo=UTC), 600)
    calls.append(call_row(created_at=datetime(1970, 1, 1, tzinfo=UTC)))  # in DEFAULT
    feedback = [feedback_row(c["id"]) for c in calls[::5]]
    store_rows(engine, tmp_path / "spool", calls, feedback)
    before = snapshot(engine)
    cutoff = datetime(2026, 5, 6, tzinfo=UTC)  # 400 days before 2027-06-10
    old = {c["id"] for c in calls if c["created_at"] < cutoff}
    old_feedback = sum(1 for f in feedback if f["call_id"] in old)

    dry = prune(engine, calls_days=400, now=now, dry_run=True)
    assert (dry.calls_removed, dry.feedback_removed) == (len(old), old_feedback)
    assert names(engine) >= {"llm_calls_2025_10", "llm_calls_2026_04", "llm_calls_2026_05"}

    done = prune(engine, calls_days=400, now=now)
    assert (done.calls_removed, done.feedback_removed) == (len(old), old_feedback)
    months = [f"{y}_{m:02d}" for y, m in [(2025, 10), (2025, 11), (2025, 12)]]
    months += [f"2026_{m:02d}" for m in range(1, 5)]
    whole = [f"llm_calls_{m}" for m in months] + [f"llm_call_content_{m}" for m in months]
    assert done.partitions_dropped == whole  # the calls' months, and their content's
    assert not names(engine) & set(whole)
    assert "llm_calls_2026_05" in names(engine)  # a partial month: its old rows deleted
    left = set(where_rows_are(engine))
    assert left == {c["id"] for c in calls} - old
    with engine.connect() as connection:  # and their content with them
        content = set(connection.execute(sa.text("SELECT call_id FROM llm_call_content")).scalars())
    assert content == left
    after = snapshot(engine)
    for table in ROLLUP_TABLES:  # the days of the removed calls stay
        assert after[table] == before[table], table
    assert done.event is not None and done.event.details is not None
    assert done.event.details["partitions_dropped"] == whole
    removed = done.event.details["removed"]
    assert sum(b - a + 1 for spans in removed.values() for a, b, _ in spans) == len(old) + (
        old_feedback
    )
    result = verify(engine)
    assert result.ok, result.breaks
    assert result.checked == {"llm_calls": len(left), "feedback": len(feedback) - old_feedback}
    # rows of a dropped month written later land in DEFAULT, and the next prune deletes them
    late = call_row(created_at=datetime(2026, 1, 15, tzinfo=UTC))
    store_rows(engine, tmp_path / "spool3", [late])
    assert where_rows_are(engine)[late["id"]] == DEFAULT_PARTITION
    again = prune(engine, calls_days=400, now=now)
    assert again.calls_removed == 1 and again.partitions_dropped == []
    assert verify(engine).ok
    # an old month's empty partition goes too, with nothing to record
    made = ["llm_calls_2020_01", "llm_call_content_2020_01"]
    assert ensure_partitions(engine, now, months=[(2020, 1)]) == made
    empty = prune(engine, calls_days=400, now=now)
    assert (empty.calls_removed, empty.partitions_dropped, empty.event) == (0, made, None)
    assert verify(engine).ok


def test_content_retention_drops_whole_months_of_content_only(
    engine: sa.Engine, tmp_path: Path
) -> None:
    check_schema(engine)
    now = datetime(2026, 6, 10, 12, tzinfo=UTC)
    ensure_partitions(engine, datetime(2026, 1, 1, tzinfo=UTC), months_ahead=6)
    calls = calls_over_months(random.Random(4), 300, datetime(2026, 1, 1, tzinfo=UTC), 160)
    store_rows(engine, tmp_path / "spool", calls, [feedback_row(c["id"]) for c in calls[::4]])
    cutoff = now - timedelta(days=100)  # 2026-03-02 12:00: January and February go whole
    old = {c["id"] for c in calls if c["created_at"] < cutoff}

    done = prune(engine, content_days=100, now=now)
    assert done.content_calls == len(old) and done.calls_removed == 0
    assert done.partitions_dropped == ["llm_call_content_2026_01", "llm_call_content_2026_02"]
    assert done.event is not None and done.event.details is not None
    assert done.event.details["partitions_dropped"] == done.partitions_dropped
    assert names(engine) >= {"llm_calls_2026_01", "llm_calls_2026_02"}  # the calls stay
    with engine.connect() as connection:
        content = set(connection.execute(sa.text("SELECT call_id FROM llm_call_content")).scalars())
        params = connection.execute(
            sa.text("SELECT count(*) FROM llm_calls WHERE params IS NOT NULL")
        ).scalar()
    assert content == {c["id"] for c in calls} - old  # March's older days deleted too
    assert params == len(calls)  # the parameters are metadata: every call keeps them
    assert len(where_rows_are(engine)) == len(calls)
    result = verify(engine)
    assert result.ok, result.breaks


def test_the_prune_command_drops_partitions(
    postgres_url: str, engine: sa.Engine, tmp_path: Path, cli: Any
) -> None:
    check_schema(engine)
    now = datetime.now(UTC)
    first = now - timedelta(days=600)
    ensure_partitions(engine, first, months_ahead=23)
    calls = calls_over_months(random.Random(1), 300, first, 590)
    store_rows(engine, tmp_path / "spool", calls, [feedback_row(c["id"]) for c in calls[:40]])
    env = {"LLMOPS_DATABASE_URL": postgres_url, "LLMOPS_HOME": str(tmp_path / "home")}
    dry = cli("db", "prune", "--calls-older-than", "400d", "--dry-run", cwd=tmp_path, env=env)
    assert dry.code == 0 and "would delete" in dry.stdout and "dropped" not in dry.stdout, dry
    done = cli("db", "prune", "--calls-older-than", "400d", "--json", cwd=tmp_path, env=env)
    assert done.code == 0, done
    report = json.loads(done.stdout)
    assert len(report["partitions_dropped"]) >= 5
    assert report["calls_removed"] > 0
    ok = cli("audit", "verify", cwd=tmp_path, env=env)
    assert ok.code == 0 and "intact" in ok.stdout, ok
    listed = cli("db", "partitions", "--json", cwd=tmp_path, env=env)
    assert listed.code == 0, listed
    shown = {p["name"] for p in json.loads(listed.stdout)["partitions"]}
    assert not shown & set(report["partitions_dropped"])
    ahead = next_month(next_month(month_of(now)))  # created ahead, for both tables
    assert {partition_name(ahead), partition_name(ahead, "llm_call_content")} <= shown


def test_a_time_range_reads_only_its_months_partitions(engine: sa.Engine) -> None:
    """EXPLAIN of the last 30 days: only those months' partitions are in the plan (not the
    DEFAULT one, nor any other month), and the indexes are inherited and usable."""
    check_schema(engine)
    now = datetime(2027, 3, 10, 12, tzinfo=UTC)
    ensure_partitions(engine, datetime(2026, 10, 1, tzinfo=UTC), months_ahead=8)
    rng = random.Random(2)
    with engine.begin() as connection:
        insert_calls(
            connection, calls_over_months(rng, 2000, datetime(2026, 10, 1, tzinfo=UTC), 200)
        )
        connection.execute(sa.text("ANALYZE llm_calls"))

    def scanned(sql: str, **params: Any) -> list[dict[str, Any]]:
        with engine.connect() as connection:
            connection.execute(sa.text("SET enable_seqscan = off"))  # show the indexes' use
            plan = connection.execute(sa.text(f"EXPLAIN (FORMAT JSON) {sql}"), params).scalar()
        plan = plan if isinstance(plan, list) else json.loads(plan)
        found: list[dict[str, Any]] = []

        def walk(node: dict[str, Any]) -> None:
            if "Relation Name" in node:
                found.append(node)
            for child in node.get("Plans", []):
                walk(child)

        walk(plan[0]["Plan"])
        return found

    window = {"start": now - timedelta(days=30), "end": now}
    nodes = scanned(
        "SELECT model, count(*), sum(cost_usd) FROM llm_calls "
        "WHERE created_at >= :start AND created_at < :end GROUP BY model",
        **window,
    )
    assert {n["Relation Name"] for n in nodes} == {"llm_calls_2027_02", "llm_calls_2027_03"}
    nodes = scanned(
        "SELECT id, latency_ms FROM llm_calls WHERE model = :model "
        "AND created_at >= :start AND created_at < :end ORDER BY created_at DESC LIMIT 50",
        model="gpt-4o",
        **window,
    )
    assert {n["Relation Name"] for n in nodes} == {"llm_calls_2027_02", "llm_calls_2027_03"}
    assert not [n for n in nodes if n["Node Type"] == "Seq Scan"], nodes
    # a call looked up by id alone reads every partition's primary key index
    nodes = scanned("SELECT * FROM llm_calls WHERE id = :id", id="x")
    assert {n["Relation Name"] for n in nodes} == names(engine)
    assert not [n for n in nodes if n["Node Type"] == "Seq Scan"], nodes


def test_a_stopped_database_during_ensure(
    postgres_server: Any, postgres_url: str, engine: sa.Engine, tmp_path: Path, cli: Any
) -> None:
    check_schema(engine)
    env = {"LLMOPS_DATABASE_URL": postgres_url, "LLMOPS_HOME": str(tmp_path / "home")}
    postgres_server.stop()
    try:
        with pytest.raises(DatabaseError):
            ensure_partitions(engine, datetime(2050, 1, 1, tzinfo=UTC))
        result = cli("db", "partitions", cwd=tmp_path, env=env)
        assert result.code != 0 and result.exception is None, result
        assert "Traceback" not in result.stderr and result.stderr.startswith("error:"), result
        # a writer starting now: no error escapes, the calls wait in the journal
        writer = Writer(lambda: engine, tmp_path / "spool", retry_min=0.05, retry_max=0.2)
        row = call_row()
        writer.put("call", row)
        assert writer.flush(10)
        assert writer.stats.spooled == 1
    finally:
        postgres_server.start()
    writer.close()
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT id FROM llm_calls")).scalars().all() == [
            row["id"]
        ]
    ahead = partition_name(next_month(next_month(month_of(datetime.now(UTC)))))
    if ahead not in names(engine):  # the writer could not make it: the command does, now
        assert cli("db", "partitions", cwd=tmp_path, env=env).code == 0
    assert ahead in names(engine)


def test_a_long_query_delays_partition_creation_not_inserts(
    engine: sa.Engine, postgres_url: str
) -> None:
    """CREATE ... PARTITION OF waits for the table's lock, and every insert would queue
    behind it: ensure gives up after its lock timeout, and works on the next try."""
    check_schema(engine)
    reader = create_engine(postgres_url)
    try:
        with reader.connect() as connection:
            connection.execute(sa.text("SELECT count(*) FROM llm_calls"))  # holds its lock
            started = time.monotonic()
            with pytest.raises(DatabaseError, match="lock timeout"):
                ensure_partitions(engine, datetime(2060, 1, 1, tzinfo=UTC), lock_timeout_ms=300)
            assert time.monotonic() - started < 5
            store_rows(engine, Path(tempfile.mkdtemp()), [call_row()])  # inserts go on
            connection.rollback()
        months = ("2060_01", "2060_02", "2060_03")
        assert ensure_partitions(engine, datetime(2060, 1, 1, tzinfo=UTC)) == [
            *(f"llm_calls_{m}" for m in months),
            *(f"llm_call_content_{m}" for m in months),
        ]
    finally:
        reader.dispose()


def test_a_view_on_llm_calls_stops_the_migration_with_a_message(
    engine: sa.Engine, postgres_url: str, tmp_path: Path, cli: Any
) -> None:
    upgrade(engine, "0011")
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE VIEW spend AS SELECT model, cost_usd FROM llm_calls"))
    env = {"LLMOPS_DATABASE_URL": postgres_url, "LLMOPS_HOME": str(tmp_path / "home")}
    result = cli("db", "upgrade", cwd=tmp_path, env=env)
    assert result.code == 1 and result.exception is None, result
    assert "views on llm_calls (spend)" in result.stderr and "Traceback" not in result.stderr
    with engine.begin() as connection:  # nothing changed; without the view it goes through
        assert (
            connection.execute(sa.text("SELECT version_num FROM llmops_schema_version")).scalar()
            == "0011"
        )
        connection.execute(sa.text("DROP VIEW spend"))
    assert cli("db", "upgrade", cwd=tmp_path, env=env).code == 0
    assert DEFAULT_PARTITION in names(engine)


@pytest.mark.parametrize(
    ("zone", "edge"),
    [
        ("America/New_York", datetime(1, 1, 1, tzinfo=UTC)),  # year 0 in New York
        ("Europe/Berlin", datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),  # 10000
    ],
)
def test_a_server_in_another_time_zone_gives_every_time_in_utc(
    postgres_url: str, tmp_path: Path, zone: str, edge: datetime
) -> None:
    """Debian's initdb gives a server the host's time zone; a call the DEFAULT partition
    holds for a clock at year 1 or 9999 read there as a year Python cannot hold, and made
    every verify and prune fail. llmops' sessions read times in UTC."""
    database = sa.make_url(postgres_url).database
    with sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT").connect() as admin:
        admin.execute(sa.text(f"ALTER DATABASE \"{database}\" SET timezone = '{zone}'"))
    engine = create_engine(postgres_url)
    check_schema(engine)
    now = datetime(2027, 6, 10, 12, tzinfo=UTC)
    calls = [call_row(created_at=at) for at in (edge, now - timedelta(days=500), now)]
    store_rows(engine, tmp_path / "spool", calls)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SHOW TimeZone")).scalar() == "UTC"
        stored = dict(connection.execute(sa.text("SELECT id, created_at FROM llm_calls")).all())
    assert stored == {c["id"]: c["created_at"] for c in calls}
    assert verify(engine).ok
    assert prune(engine, calls_days=400, now=now).calls_removed == (2 if edge.year == 1 else 1)
    assert verify(engine).ok
    engine.dispose()


def old_and_new_calls(engine: sa.Engine, tmp_path: Path, now: datetime) -> list[dict]:
    """Calls every other day over 300 days before ``now``, in monthly partitions."""
    check_schema(engine)
    ensure_partitions(engine, now - timedelta(days=310), months_ahead=12)
    calls = [call_row(created_at=now - timedelta(days=d)) for d in range(0, 300, 2)]
    store_rows(engine, tmp_path / "old", calls)
    return calls


def older_than(calls: list[dict], days: int) -> int:
    """How many of ``calls`` a prune of the calls older than ``days`` days removes."""
    today = datetime.combine(datetime.now(UTC).date(), datetime.min.time(), UTC)
    return sum(c["created_at"] < today - timedelta(days=days) for c in calls)


def waiting_for_a_lock(engine: sa.Engine, pid: int) -> bool:
    with engine.connect() as connection:
        query = "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = :pid"
        return bool(connection.execute(sa.text(query), {"pid": pid}).scalar())


def started_until_it_waits(
    engine: sa.Engine, target: Any, outcome: dict[str, Any]
) -> threading.Thread:
    """``target`` in a thread, once the session whose pid it puts in ``outcome`` waits
    for a lock."""
    thread = threading.Thread(target=target)
    thread.start()
    deadline = time.monotonic() + 30
    while "pid" not in outcome or not waiting_for_a_lock(engine, outcome["pid"]):
        assert time.monotonic() < deadline and "error" not in outcome, outcome
        time.sleep(0.05)
    return thread


def pause_between_content_and_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[threading.Event, threading.Event]:
    """Make a Writer's first batch stop after its content, its calls not inserted yet:
    the first event is set then, and it goes on when the second is."""
    between, go_on = threading.Event(), threading.Event()
    insert_table = Writer._insert_table

    def paused(self: Writer, connection: Any, kind: str, rows: list[dict]) -> int:
        stored = insert_table(self, connection, kind, rows)
        if kind == "content" and not between.is_set():
            between.set()
            go_on.wait(30)
        return stored

    monkeypatch.setattr(Writer, "_insert_table", paused)
    return between, go_on


def test_a_prune_waits_for_a_writers_batch_between_its_content_and_calls(
    engine: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer's batch inserts its content, then its calls; a prune that locked llm_calls
    first, then llm_call_content, held one and waited for the other: "deadlock detected".
    Both now lock them in the writers' order: the prune waits for the batch."""
    now = datetime.now(UTC)
    calls = old_and_new_calls(engine, tmp_path, now)
    between, go_on = pause_between_content_and_calls(monkeypatch)
    writer = Writer(lambda: engine, tmp_path / "spool", linger=0)
    late = call_row(created_at=now)
    writer.put("call", late)
    assert between.wait(30)
    outcome: dict[str, Any] = {}

    def run_prune() -> None:
        try:
            with engine.connect() as connection:
                outcome["pid"] = connection.execute(sa.text("SELECT pg_backend_pid()")).scalar()
            outcome["report"] = prune(engine, calls_days=200, force=True, minimum_days=1)
        except Exception as exc:  # the deadlock, before
            outcome["error"] = exc

    pruning = started_until_it_waits(engine, run_prune, outcome)
    go_on.set()  # the writer goes on to llm_calls
    pruning.join(60)
    writer.close()
    assert "error" not in outcome, outcome["error"]
    assert outcome["report"].calls_removed == older_than(calls, 200)
    assert late["id"] in where_rows_are(engine)
    assert verify(engine).ok


def test_creating_partitions_waits_for_a_writers_batch_between_its_content_and_calls(
    engine: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same order when a month's partitions are created (a writer's daily check, `db
    partitions`, `db upgrade`): llm_call_content's first."""
    check_schema(engine)
    between, go_on = pause_between_content_and_calls(monkeypatch)
    writer = Writer(lambda: engine, tmp_path / "spool", linger=0)
    call = call_row()
    writer.put("call", call)
    assert between.wait(30)
    outcome: dict[str, Any] = {}

    def create() -> None:
        try:
            other = create_engine(str(engine.url.render_as_string(hide_password=False)))
            with other.connect() as connection:
                outcome["pid"] = connection.execute(sa.text("SELECT pg_backend_pid()")).scalar()
                outcome["made"] = ensure_partitions(connection, months=[(2040, 1)])
                connection.commit()
            other.dispose()
        except Exception as exc:
            outcome["error"] = exc

    creating = started_until_it_waits(engine, create, outcome)
    go_on.set()
    creating.join(60)
    writer.close()
    assert "error" not in outcome, outcome["error"]
    assert outcome["made"] == ["llm_calls_2040_01", "llm_call_content_2040_01"]
    assert call["id"] in where_rows_are(engine)


def test_a_verify_during_a_prune_sees_the_database_before_or_after_it(
    engine: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dropped partition is gone from every snapshot, also from one taken before the drop
    committed: a verify that began during a prune found the dropped months' rows missing,
    the prune's event not in its snapshot yet. Its snapshot now waits for the prune's
    commit, or the drop for the verify."""
    import llmops.audit.retention as retention

    now = datetime.now(UTC)
    calls = old_and_new_calls(engine, tmp_path, now)
    dropped = threading.Event()
    drop = retention._drop_partitions

    def slow_drop(*args: Any) -> list[str]:
        names = drop(*args)
        dropped.set()
        time.sleep(1.5)  # the rest of a big prune: the transaction still open
        return names

    monkeypatch.setattr(retention, "_drop_partitions", slow_drop)
    outcome: dict[str, Any] = {}
    pruning = threading.Thread(
        target=lambda: outcome.setdefault(
            "prune", prune(engine, calls_days=200, force=True, minimum_days=1)
        )
    )
    pruning.start()
    assert dropped.wait(30)
    result = verify(engine)
    pruning.join(60)
    assert outcome["prune"].partitions_dropped
    assert result.ok, result.breaks
    assert [e.kind for e in result.events][-1] == "prune"  # it waited for the commit

    # and a verify's snapshot held makes the drop wait, then go
    with read_snapshot(engine, ("llm_call_content", "llm_calls", "feedback")) as reading:
        count = reading.execute(sa.text("SELECT count(*) FROM llm_calls")).scalar()
        monkeypatch.setattr(retention, "_drop_partitions", drop)
        again = threading.Thread(
            target=lambda: outcome.__setitem__(
                "again", prune(engine, calls_days=100, force=True, minimum_days=1)
            )
        )
        again.start()
        time.sleep(1.0)
        assert "again" not in outcome  # waiting for the snapshot to end
        assert reading.execute(sa.text("SELECT count(*) FROM llm_calls")).scalar() == count
    again.join(60)
    removed = older_than(calls, 100) - older_than(calls, 200)
    assert outcome["again"].calls_removed == removed and outcome["again"].partitions_dropped
    assert verify(engine).ok


def test_a_prune_gives_up_on_a_reader_that_never_ends_and_changes_nothing(
    engine: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dropping partitions needs the tables to itself: asked for in short tries, so that
    other readers queue behind it a moment at most, and given up after LOCK_WAIT_S with
    nothing pruned."""
    import llmops.audit.retention as retention

    now = datetime.now(UTC)
    old_and_new_calls(engine, tmp_path, now)
    monkeypatch.setattr(retention, "LOCK_WAIT_S", 3.0)
    before, events = snapshot(engine), verify(engine).events
    with engine.connect() as reader:
        reader.execute(sa.text("SELECT count(*) FROM llm_calls"))  # holds it until the end
        outcome: dict[str, Any] = {}

        def run_prune() -> None:
            try:
                outcome["report"] = prune(engine, calls_days=200, force=True, minimum_days=1)
            except DatabaseError as exc:
                outcome["error"] = exc

        pruning = threading.Thread(target=run_prune)
        pruning.start()
        others = 0
        while pruning.is_alive():  # other readers get through while the prune tries
            with engine.connect() as other:
                other.execute(sa.text("SET lock_timeout = '2s'"))
                other.execute(sa.text("SELECT count(*) FROM llm_calls")).scalar()
                others += 1
            time.sleep(0.1)
        pruning.join()
    assert others >= 5
    assert "nothing was pruned, try again" in str(outcome["error"])
    assert snapshot(engine) == before
    assert verify(engine).events == events


def test_a_content_prune_counts_all_it_drops_while_writers_store_old_calls(
    engine: sa.Engine, tmp_path: Path
) -> None:
    """A content prune waits for the drop's lock while a reader holds the table; a call of
    an old month stored meanwhile (a backfill, a journal replayed) had its content dropped
    uncounted, with no prune event: verify then found "content changed" for good. Writes
    now wait for a content prune as for a prune of calls."""
    now = datetime.now(UTC)
    check_schema(engine)
    ensure_partitions(engine, now - timedelta(days=300), months_ahead=12)
    store_rows(
        engine,
        tmp_path / "recent",
        [call_row(created_at=now - timedelta(days=d)) for d in range(0, 60, 3)],
    )
    reader = engine.connect()
    reader.execute(sa.text("SELECT count(*) FROM llm_call_content"))  # held for a moment
    threading.Timer(2.0, reader.rollback).start()
    outcome: dict[str, Any] = {}
    pruning = threading.Thread(
        target=lambda: outcome.setdefault("report", prune(engine, content_days=100, now=now))
    )
    pruning.start()
    time.sleep(0.5)  # counted, and asking for the drop's lock
    backfilled = call_row(created_at=now - timedelta(days=250))
    store_rows(engine, tmp_path / "backfill", [backfilled])  # waits for the prune's commit
    pruning.join(60)
    reader.close()
    assert outcome["report"].partitions_dropped
    result = verify(engine)
    assert result.ok, result.breaks
    with engine.connect() as connection:
        query = "SELECT count(*) FROM llm_call_content WHERE call_id = :id"
        assert connection.execute(sa.text(query), {"id": backfilled["id"]}).scalar() == 1


def test_two_content_prunes_at_once_take_turns(
    engine: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second's delete waited for the first's rows, the first's drop for the second's
    table lock, in tries too short for PostgreSQL's deadlock check: one gave up after
    LOCK_WAIT_S. Each now locks writes first: the second waits, then finds nothing."""
    import llmops.audit.retention as retention

    monkeypatch.setattr(retention, "LOCK_WAIT_S", 5.0)
    now = datetime.now(UTC)
    old_and_new_calls(engine, tmp_path, now)
    outcome: dict[str, Any] = {}

    def run(name: str) -> None:
        try:
            outcome[name] = prune(engine, content_days=100, now=now)
        except DatabaseError as exc:
            outcome[name] = exc

    threads = [threading.Thread(target=run, args=(name,)) for name in ("first", "second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    reports = sorted((outcome["first"], outcome["second"]), key=lambda r: -r.content_calls)
    assert reports[0].content_calls > 0 and reports[0].partitions_dropped
    assert (reports[1].content_calls, reports[1].partitions_dropped) == (0, [])
    assert verify(engine).ok


def test_a_prune_of_calls_and_content_counts_the_content_of_the_calls_it_keeps(
    engine: sa.Engine, tmp_path: Path
) -> None:
    """The content of the calls removed goes with them (their whole months' partitions are
    dropped at the end): `content_calls` counts only the calls kept, dry run and real."""
    now = datetime.now(UTC)
    calls = old_and_new_calls(engine, tmp_path, now)
    today = datetime.combine(now.date(), datetime.min.time(), UTC)
    kept = [c for c in calls if c["created_at"] >= today - timedelta(days=200)]
    expected = sum(c["created_at"] < now - timedelta(days=30) for c in kept)
    for dry_run in (True, False):
        report = prune(engine, calls_days=200, content_days=30, now=now, dry_run=dry_run)
        assert (report.calls_removed, report.content_calls) == (len(calls) - len(kept), expected)
    assert report.event is not None and report.event.details is not None
    assert report.event.details["content_calls"] == expected
    assert verify(engine).ok


def test_the_comments_of_the_calls_kept_are_counted_with_an_anti_join(
    engine: sa.Engine, tmp_path: Path
) -> None:
    """`NOT IN (the removed calls' ids)` is no anti-join on PostgreSQL: once the ids do not
    fit in work_mem, each comment scanned the whole list (hours at a few hundred thousand
    calls removed, the tables locked against writers meanwhile)."""
    now = datetime.now(UTC)
    calls = old_and_new_calls(engine, tmp_path, now)
    store_rows(engine, tmp_path / "feedback", [], [feedback_row(c["id"]) for c in calls])
    counted: list[tuple[str, Any]] = []

    def capture(_conn, _cursor, statement, parameters, _context, _many) -> None:  # type: ignore[no-untyped-def]
        if statement.startswith("SELECT count(*)") and "feedback" in statement:
            counted.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        prune(engine, calls_days=200, content_days=30, now=now, dry_run=True)
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    ((statement, parameters),) = [c for c in counted if "comment" in c[0]]
    with engine.connect() as connection:
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        plan = "\n".join(row[0] for row in cursor.execute("EXPLAIN " + statement, parameters))
    assert "Anti Join" in plan and "SubPlan" not in plan, plan


def test_creating_partitions_gives_way_to_a_reader_of_both_tables(engine: sa.Engine) -> None:
    """A reader that holds llm_calls and then reads llm_call_content, while a month's
    partitions are created: creation held the content table and waited for the calls, the
    reader waited for the content: "deadlock detected" for one of them. Creation now asks
    for both in short tries that give back what they got: the reader goes on, creation
    follows."""
    check_schema(engine)
    outcome: dict[str, Any] = {}
    with engine.connect() as reader:
        reader.execute(sa.text("SELECT count(*) FROM llm_calls"))  # holds it

        def create() -> None:
            try:
                outcome["made"] = ensure_partitions(engine, months=[(2041, 1)])
            except DatabaseError as exc:
                outcome["error"] = exc

        creating = threading.Thread(target=create)
        creating.start()
        time.sleep(0.5)  # creation is trying
        reader.execute(sa.text("SELECT count(*) FROM llm_call_content")).scalar()
        time.sleep(1.5)  # past PostgreSQL's deadlock check (1 s)
        reader.execute(sa.text("SELECT count(*) FROM llm_calls")).scalar()
        reader.rollback()
    creating.join(30)
    assert "error" not in outcome, outcome
    assert {"llm_calls_2041_01", "llm_call_content_2041_01"} <= set(outcome["made"])
