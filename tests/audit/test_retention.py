"""``llmops db prune``: content goes sooner than metadata, old calls go with their feedback,
the daily rollups stay, the prune is an audit event and the hash chains still verify."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from llmops.audit.retention import prune
from llmops.audit.verify import verify
from llmops.errors import ConfigError
from llmops.store.audit_log import list_events
from llmops.store.engine import create_engine
from llmops.store.queries import stored_calls
from llmops.store.tables import BUSY_USER_DAYS, CALLS, DAILY_ROLLUPS
from llmops.testing import Reply

pytestmark = pytest.mark.integration

AGES = (500, 300, 100, 10, 1)  # days ago of the recorded calls, two a day


class Clock:
    def __init__(self) -> None:
        self.at = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.at


def record(make_gateway: Any, server: Any) -> dict[int, list[str]]:
    clock = Clock()
    gateway = make_gateway(clock=clock)
    ids: dict[int, list[str]] = {}
    for age in AGES:
        for i in range(2):
            clock.at = datetime.now(UTC) - timedelta(days=age, hours=i)
            server.enqueue(Reply(text=f"answer {age}", prompt_tokens=1000, completion_tokens=100))
            result = gateway.complete(
                model="gpt-4o-mini", messages=[{"role": "user", "content": f"q {age} {i}"}],
                api_base=server.base_url, api_key="sk-test", num_retries=0, temperature=0.2,
                user="heavy",
            )  # fmt: skip
            ids.setdefault(age, []).append(result.call_id)
            gateway.feedback(result.call_id, 1, name="thumbs", comment="private words")
    assert gateway.flush(timeout=30)
    return ids


def rollups(connection: sa.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every rollup row (the busy user-days' too), as sorted tuples."""
    return {
        table.name: sorted(tuple(r) for r in connection.execute(sa.select(table)))
        for table in DAILY_ROLLUPS
    }


def busy(engine: sa.Engine) -> None:
    """Mark every day of the user's calls busy (migration 0021): its rows are filled."""
    with engine.begin() as connection:
        days = {
            (c if c.tzinfo is None else c.astimezone(UTC)).date()
            for c in connection.execute(sa.select(CALLS.c.created_at)).scalars()
        }
        connection.execute(
            sa.insert(BUSY_USER_DAYS), [{"day": d, "user_id": "heavy"} for d in days]
        )


def rollup_writes(engine: sa.Engine) -> list[tuple[str, Any]]:
    """(table, day) of every rollup row the engine's statements write from now on."""
    names = {table.name for table in DAILY_ROLLUPS}
    written: list[tuple[str, Any]] = []

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        words = statement.split()
        if words[:2] == ["INSERT", "INTO"] and words[2] in names:
            columns = statement[statement.index("(") + 1 : statement.index(")")].split(", ")
            rows = parameters if isinstance(parameters, list) else [parameters]
            day = columns.index("day")
            written.extend((words[2], r["day"] if isinstance(r, dict) else r[day]) for r in rows)

    sa.event.listen(engine, "before_cursor_execute", seen)
    return written


def test_content_then_calls_are_pruned_keeping_rollups_and_chains(
    database_url: str, make_gateway: Any, server: Any
) -> None:
    ids = record(make_gateway, server)
    engine = create_engine(database_url)
    busy(engine)
    try:
        with engine.connect() as connection:
            before = rollups(connection)
        assert len(before["llm_calls_daily_user_calls"]) >= len(AGES)

        dry = prune(engine, content_days=30, calls_days=400, dry_run=True)
        # older than 30 days, but those of the calls removed (they go with their calls)
        assert (dry.content_calls, dry.content_feedback) == (4, 4)
        assert (dry.calls_removed, dry.feedback_removed) == (2, 2)  # the 500-day-old day
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT count(*) FROM llm_calls")).scalar() == 10
        assert [e.kind for e in list_events(engine)] == ["chain_start"]  # nothing recorded

        done = prune(engine, content_days=30)
        assert (done.content_calls, done.content_feedback, done.calls_removed) == (6, 6, 0)
        with engine.connect() as connection:
            rows = [(r["id"], r["request"], r["response_text"]) for r in stored_calls(connection)]
            left = connection.execute(sa.text("SELECT count(*) FROM llm_call_content")).scalar()
            comments = connection.execute(
                sa.text("SELECT count(*) FROM feedback WHERE comment IS NOT NULL")
            ).scalar()
            assert rollups(connection) == before
        recent = set(ids[10] + ids[1])
        for call_id, request, response in rows:
            request = request if isinstance(request, dict) else __import__("json").loads(request)
            assert request["params"]["temperature"] == 0.2  # the parameters are metadata
            if call_id in recent:
                assert request["messages"] and response
            else:
                assert request["messages"] is None and response is None
        assert comments == 4
        assert left == len(recent)  # the others' content rows are gone
        again = prune(engine, content_days=30)  # nothing left to drop: no second event
        assert again.rows == 0 and again.event is None
        assert verify(engine).ok, verify(engine).breaks

        done = prune(engine, calls_days=400)
        assert (done.calls_removed, done.feedback_removed) == (2, 2)
        with engine.connect() as connection:
            left = set(connection.execute(sa.text("SELECT id FROM llm_calls")).scalars())
            assert rollups(connection) == before  # the days of the deleted calls stay
        assert left == {i for age in AGES[1:] for i in ids[age]}
        result = verify(engine)
        assert result.ok, result.breaks
        kinds = [(e.kind, e.rows) for e in result.events]
        assert kinds == [("prune", 12), ("prune", 4)]
        assert result.events[0].details["content_before"]

        # a deletion after the prune is still found
        with engine.begin() as connection:
            victim = ids[300][0]
            connection.execute(sa.text("DELETE FROM feedback WHERE call_id = :i"), {"i": victim})
            connection.execute(sa.text("DELETE FROM llm_calls WHERE id = :i"), {"i": victim})
        assert not verify(engine).ok
    finally:
        engine.dispose()


def test_calls_younger_than_the_minimum_are_kept_unless_forced(
    database_url: str, make_gateway: Any, server: Any
) -> None:
    record(make_gateway, server)
    engine = create_engine(database_url)
    try:
        with pytest.raises(ConfigError, match="younger than 183 days"):
            prune(engine, calls_days=50)
        with pytest.raises(ConfigError, match="nothing to prune"):
            prune(engine)
        done = prune(engine, calls_days=50, force=True)
        assert done.calls_removed == 6 and done.event is not None
        assert done.event.details and done.event.details["forced"] is True
        assert verify(engine).ok
    finally:
        engine.dispose()


def llmops(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmops", *args], capture_output=True, text=True, env=env,
        timeout=120,
    )  # fmt: skip


def test_the_commands(database_url: str, make_gateway: Any, server: Any, tmp_path: Any) -> None:
    record(make_gateway, server)
    env = {**os.environ, "LLMOPS_DATABASE_URL": database_url, "LLMOPS_HOME": str(tmp_path / "h")}
    env.pop("LLMOPS_CONFIG", None)
    ok = llmops("audit", "verify", env=env)
    assert ok.returncode == 0 and "intact" in ok.stdout and "10 rows" not in ok.stderr, ok
    for args, message in [
        (("db", "prune", "--calls-older-than", "30d"), "younger than 183 days"),
        (("db", "prune", "--content-older-than", "soon"), "expected days such as 30d"),
        (("db", "prune",), "nothing to prune"),
        (("audit", "verify", "--since", "2026-13-01"), "--since"),
    ]:  # fmt: skip
        bad = llmops(*args, env=env)
        assert bad.returncode == 2, bad
        assert bad.stderr.startswith("error:") and message in bad.stderr, bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
    dry = llmops("db", "prune", "--calls-older-than", "400d", "--dry-run", env=env)
    assert dry.returncode == 0 and "would delete 2 calls" in dry.stdout, dry
    done = llmops("db", "prune", "--calls-older-than", "400d", "--content-older-than", "30d",
                  env=env)  # fmt: skip
    assert done.returncode == 0 and "recorded as audit event 2" in done.stdout, done
    ok = llmops("audit", "verify", "--json", env=env)
    assert ok.returncode == 0 and '"ok": true' in ok.stdout, ok
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("UPDATE llm_calls SET user_id = 'someone else'"))
    finally:
        engine.dispose()
    broken = llmops("audit", "verify", env=env)
    assert broken.returncode == 1 and "BROKEN: 8 problem(s)" in broken.stdout, broken


def test_prunes_one_after_another_leave_chains_that_verify(
    database_url: str, make_gateway: Any, server: Any
) -> None:
    """Monthly prunes from cron: each removes the rows right after the last one's, so the
    chain has one gap made by several events."""
    record(make_gateway, server)
    engine = create_engine(database_url)
    try:
        now = datetime.now(UTC)
        first = prune(engine, calls_days=400, now=now)
        written = rollup_writes(engine)
        second = prune(engine, calls_days=250, minimum_days=200, now=now)
        third = prune(engine, calls_days=50, force=True, now=now, content_days=5)
        assert [p.calls_removed for p in (first, second, third)] == [2, 2, 2]
        # each prune puts back the rollups of the days it removed calls of, and no other
        # (a daily prune from cron rewrote every pruned day's rows, in memory, each time)
        days = {(now - timedelta(days=age, hours=i)).date() for age in (300, 100) for i in (0, 1)}
        assert written and {str(day) for _, day in written} == {d.isoformat() for d in days}
        result = verify(engine)
        assert result.ok, result.breaks
        assert [e.kind for e in result.events] == ["prune"] * 3
        assert result.checked == {"llm_calls": 4, "feedback": 4}
    finally:
        engine.dispose()


def test_a_call_written_while_prune_lists_the_old_ones_waits(
    database_url: str, make_gateway: Any, server: Any
) -> None:
    """An old call written while prune lists what it removes (a journal replayed after a
    long outage) would be removed unlisted: a gap in its chain that no event explains,
    which verify reports as tampering. Prune holds the write lock from its first read
    (SQLite: BEGIN IMMEDIATE; PostgreSQL: LOCK TABLE), so such a write waits (here, gives
    up after 0.2 s, as the writer then keeps the call in its journal)."""
    from llmops.store.chain import Chains
    from llmops.store.records import fitted
    from tests.store.test_writer import call_row, insert_calls

    record(make_gateway, server)
    engine = create_engine(database_url)
    other = create_engine(database_url, busy_timeout_ms=200)
    attempts: list[str] = []

    @sa.event.listens_for(engine, "after_cursor_execute")
    def write_meanwhile(connection: Any, cursor: Any, statement: str, *args: Any) -> None:
        if attempts or "ORDER BY" not in statement or "chain_seq" not in statement:
            return
        rows = [fitted("call", call_row(created_at=datetime.now(UTC) - timedelta(days=450)))]
        chains = Chains()
        try:
            with other.begin() as writing:
                if writing.dialect.name == "postgresql":
                    writing.execute(sa.text("SET LOCAL lock_timeout = '200ms'"))
                chains.seal(writing, "call", rows)
                insert_calls(writing, rows)
            chains.commit()
            attempts.append("stored")
        except Exception as exc:
            attempts.append(f"refused: {exc}")

    try:
        report = prune(engine, calls_days=400)
        assert report.calls_removed == 2 and len(attempts) == 1
        assert attempts[0].startswith("refused") and "lock" in attempts[0], attempts
        result = verify(engine)
        assert result.ok, result.breaks
    finally:
        engine.dispose()
        other.dispose()


def test_a_call_stored_late_for_a_pruned_day_is_pruned_too(
    database_url: str, make_gateway: Any, server: Any
) -> None:
    """A backfill or a journal replayed late stores a call of a day pruned already: the
    day's rollups count the pruned calls too, so taking the new one out found no call for
    their first and last times, and every later prune failed (NOT NULL first_at)."""
    ids = record(make_gateway, server)
    engine = create_engine(database_url)
    try:
        assert prune(engine, calls_days=200, force=True).calls_removed == 4
        clock = Clock()
        clock.at = datetime.now(UTC) - timedelta(days=300, hours=3)
        gateway = make_gateway(clock=clock)
        server.enqueue(Reply(text="late", prompt_tokens=1000, completion_tokens=100))
        gateway.complete(model="gpt-4o-mini", messages=[{"role": "user", "content": "late"}],
                         api_base=server.base_url, api_key="sk-test", num_retries=0,
                         temperature=0.2, user="heavy")  # fmt: skip
        assert gateway.flush(timeout=30)
        with engine.connect() as connection:
            before = rollups(connection)
        again = prune(engine, calls_days=200, force=True)
        assert again.calls_removed == 1
        with engine.connect() as connection:
            assert rollups(connection) == before  # the late call's day keeps it too
            left = set(connection.execute(sa.text("SELECT id FROM llm_calls")).scalars())
        assert left == {i for age in AGES[2:] for i in ids[age]}
        assert verify(engine).ok, verify(engine).breaks
    finally:
        engine.dispose()


def test_a_users_spend_of_pruned_days_stays(
    database_url: str, make_gateway: Any, server: Any
) -> None:
    """The spend figures filtered on a user read the calls of the user's quiet days (under
    1,000 calls): pruned, they were gone from the totals (`llmops spend --user`'s total
    line, the Overview's tiles) while the split by model, from the user rollups, kept them."""
    from llmops.store import queries as q

    record(make_gateway, server)
    engine = create_engine(database_url)
    try:
        today = datetime.now(UTC).date()
        view = q.Filters.days(today - timedelta(days=520), today, users=("heavy",))

        def figures() -> tuple[Any, ...]:
            o = q.overview(engine, view)
            return (
                q.spend_total(engine, view),
                (o.calls, o.errors, round(o.cost_usd, 9), o.prompt_tokens, o.completion_tokens),
                [(r.key, r.calls, round(r.cost_usd, 9)) for r in q.daily_spend(engine, view)],
                sum(d.calls for d in q.daily_totals(engine, view)),
            )

        before = figures()
        assert before[0].calls == 10 and before[1][0] == 10
        assert prune(engine, calls_days=400).calls_removed == 2
        assert figures() == before
    finally:
        engine.dispose()


def test_a_window_after_a_prune_links_over_pruned_rows_and_rows_outside_it(
    database_url: str, make_gateway: Any, server: Any
) -> None:
    """A chain whose rows were stored out of time order (a backfill, a journal replayed):
    a prune removes a row between two that stay, one of them outside the window. The gap
    the window walks over holds both a pruned row and a row outside the window: it was
    reported as rows deleted."""
    clock = Clock()
    gateway = make_gateway(clock=clock)
    now = datetime.now(UTC)
    for days in (5, 400, 100, 3):  # chain rows 1-4, in the order stored
        clock.at = now - timedelta(days=days)
        server.enqueue(Reply(text="a", prompt_tokens=10, completion_tokens=2))
        gateway.complete(model="gpt-4o-mini", messages=[{"role": "user", "content": "q"}],
                         api_base=server.base_url, api_key="sk-test", num_retries=0)  # fmt: skip
    assert gateway.flush(timeout=30)
    engine = create_engine(database_url)
    try:
        assert prune(engine, calls_days=300, force=True).calls_removed == 1  # row 2
        assert verify(engine).ok
        for since in (now - timedelta(days=7), now - timedelta(days=4)):
            result = verify(engine, since=since, until=now + timedelta(hours=1))
            assert result.ok, result.breaks
    finally:
        engine.dispose()
