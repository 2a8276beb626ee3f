"""The rollups of busy user-days (migration 0021) equal what the calls of those days say,
after inserts, updates and deletes, whether a day was marked before its calls came, while
they came (the threshold) or after (filled from the calls)."""

from __future__ import annotations

import bisect
import random
import threading
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from llmops.store.engine import HEAD_REVISION, check_schema, create_engine, upgrade
from llmops.store.tables import (
    BUSY_USER_DAYS,
    CALLS,
    FEEDBACK,
    TIMING_BUCKETS,
    USER_CALL_DAYS,
    USER_FEEDBACK_DAYS,
    USER_TAG_DAYS,
    USER_TIMING_DAYS,
)
from tests.store.test_rollups import START, _utc, random_calls
from tests.store.test_writer import CALL_COLUMNS, call_row, feedback_row, insert_calls, store_rows

BUSY_CALLS = 1000  # migration 0021
GROUP = ("model", "prompt_name", "prompt_version", "source", "status")


def _key(c: Any, *names: str) -> tuple[Any, ...]:
    return tuple(getattr(c, n) or "" for n in names)


def expected(engine: sa.Engine) -> dict[str, dict[tuple, Any]]:
    """The users' rollups computed here from the calls and feedback of the marked days."""
    with engine.connect() as connection:
        marks = {(_day(d), u) for d, u in connection.execute(sa.select(BUSY_USER_DAYS))}
        calls = {r.id: r for r in connection.execute(sa.select(*CALL_COLUMNS))}
        feedback = connection.execute(sa.select(FEEDBACK)).all()
        bounds = connection.execute(
            sa.select(TIMING_BUCKETS.c.lower, TIMING_BUCKETS.c.bucket)
            .where(TIMING_BUCKETS.c.lower.is_not(None))
            .order_by(TIMING_BUCKETS.c.lower)
        ).all()
    lowers = [b[0] for b in bounds]
    tables: dict[str, dict[tuple, Any]] = {
        USER_CALL_DAYS.name: {},
        USER_TAG_DAYS.name: {},
        USER_FEEDBACK_DAYS.name: defaultdict(int),
        USER_TIMING_DAYS.name: defaultdict(int),
    }
    busy = {}
    for c in calls.values():
        day = _utc(c.created_at).date()
        if (day, c.user_id) not in marks:
            continue
        busy[c.id] = c
        spend = {
            "calls": 1,
            "prompt_tokens": c.prompt_tokens or 0,
            "completion_tokens": c.completion_tokens or 0,
            "cost_usd": c.cost_usd or 0.0,
            "unpriced_calls": int(c.cost_status == "unpriced"),
        }
        names = ("model", "prompt_name", "prompt_version", "git_commit", "source", "status")
        key = (day, c.user_id, *_key(c, *names), c.api_key or "")
        created = _utc(c.created_at)
        d = tables[USER_CALL_DAYS.name].setdefault(
            key, defaultdict(int, first_at=created, last_at=created)
        )
        for name, value in spend.items():
            d[name] += value
        d["priced_calls"] += c.cost_usd is not None
        d["estimated_calls"] += bool(c.tokens_estimated)
        d["latency_ms_sum"] += c.latency_ms or 0.0
        d["latency_calls"] += c.latency_ms is not None
        d["first_at"], d["last_at"] = min(d["first_at"], created), max(d["last_at"], created)
        for tag in c.tags if c.tags is not None else [""]:
            t = tables[USER_TAG_DAYS.name].setdefault(
                (day, c.user_id, tag, *_key(c, *GROUP)), defaultdict(int)
            )
            for name, value in spend.items():
                t[name] += value
        for metric, value in (("latency", c.latency_ms), ("ttft", c.ttft_ms)):
            if value is not None:
                i = bisect.bisect_right(lowers, value) - 1
                bucket = bounds[i][1] if i >= 0 else -350
                key = (day, c.user_id, c.prompt_name or "", c.prompt_version or "")
                tables[USER_TIMING_DAYS.name][(*key, metric, bucket)] += 1
    for f in feedback:
        c = busy.get(f.call_id)
        if c is not None:
            key = (_utc(c.created_at).date(), c.user_id, *_key(c, *GROUP), f.name, f.score)
            tables[USER_FEEDBACK_DAYS.name][key] += 1
    return {name: {k: _plain(v) for k, v in rows.items()} for name, rows in tables.items()}


def _plain(value: Any) -> Any:
    return dict(value) if isinstance(value, dict) else value


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


KEYS = {  # each table's key, in the order expected() builds it
    USER_CALL_DAYS: ("day", "user_id", "model", "prompt_name", "prompt_version", "git_commit",
                     "source", "status", "api_key"),
    USER_TAG_DAYS: ("day", "user_id", "tag", *GROUP),
    USER_FEEDBACK_DAYS: ("day", "user_id", *GROUP, "name", "score"),
    USER_TIMING_DAYS: ("day", "user_id", "prompt_name", "prompt_version", "metric", "bucket"),
}  # fmt: skip


def stored(engine: sa.Engine) -> dict[str, dict[tuple, Any]]:
    found: dict[str, dict[tuple, Any]] = {}
    with engine.connect() as connection:
        for table, key in KEYS.items():
            rows: dict[tuple, Any] = {}
            for row in connection.execute(sa.select(table)).mappings():
                figures = {k: v for k, v in row.items() if k not in key}
                for bound in ("first_at", "last_at"):
                    if bound in figures:
                        figures[bound] = _utc(figures[bound])
                values = (_day(row["day"]), *(row[k] for k in key[1:]))
                rows[values] = next(iter(figures.values())) if len(figures) == 1 else figures
            found[table.name] = rows
    return found


def assert_user_rollups_match(engine: sa.Engine) -> None:
    want, have = expected(engine), stored(engine)
    for name, rows in want.items():
        assert have[name].keys() == rows.keys(), name
        for key, figures in rows.items():
            if isinstance(figures, dict):
                got = dict(have[name][key])
                for bound in ("first_at", "last_at"):
                    if bound in figures:
                        assert got.pop(bound) == figures[bound], (name, key, bound)
                figures = {k: v for k, v in figures.items() if k not in ("first_at", "last_at")}
                assert got == pytest.approx(figures, rel=1e-9, abs=1e-12), (name, key)
            else:
                assert have[name][key] == figures, (name, key)


def mark(engine: sa.Engine, *days: tuple[date, str]) -> None:
    with engine.begin() as connection:
        connection.execute(sa.insert(BUSY_USER_DAYS), [{"day": d, "user_id": u} for d, u in days])


def marks(engine: sa.Engine) -> set[tuple[date, str]]:
    with engine.connect() as connection:
        return {(_day(d), u) for d, u in connection.execute(sa.select(BUSY_USER_DAYS))}


@pytest.fixture
def engine(database_url: str) -> sa.Engine:
    engine = create_engine(database_url)
    check_schema(engine)
    return engine


def test_busy_days_follow_inserts_updates_and_deletes(engine: sa.Engine, tmp_path: Path) -> None:
    # u1's days are busy before their calls come; one day of u2 is marked once stored
    mark(engine, *((START.date() + timedelta(days=d), "u1") for d in range(10)))
    rng = random.Random(21)
    calls = random_calls(rng, 400)
    for c in calls:
        c["ttft_ms"] = rng.choice([None, round(rng.uniform(5, 900), 3)])
    feedback = [
        {**feedback_row(rng.choice(calls)["id"], rng.choice([0, 1, 3, 5])), "name": name}
        for name in ("rating", "thumbs")
        for _ in range(80)
    ]
    store_rows(engine, tmp_path / "spool", calls, feedback)
    assert_user_rollups_match(engine)
    before = expected(engine)
    mark(engine, (START.date() + timedelta(days=2), "u2"))
    after = expected(engine)
    assert all(len(after[t]) > len(before[t]) for t in before)  # the day was filled
    assert_user_rollups_match(engine)
    assert sum(f["calls"] for f in after[USER_CALL_DAYS.name].values()) > 100
    with engine.begin() as connection:  # the same rows again change nothing
        insert_calls(connection, calls[:50], ignore=True)
    assert_user_rollups_match(engine)

    with_feedback = sorted({f["call_id"] for f in feedback})
    idle = [c["id"] for c in calls if c["id"] not in set(with_feedback)]
    ids = CALLS.c.id
    with engine.begin() as connection:
        connection.execute(  # re-pricing
            CALLS.update()
            .where(CALLS.c.cost_status == "unpriced")
            .values(cost_usd=0.5, cost_status="custom")
        )
        # calls that move in and out of busy days, with their feedback
        connection.execute(CALLS.update().where(ids.in_(with_feedback[:20])).values(user_id="u1"))
        connection.execute(CALLS.update().where(ids.in_(with_feedback[20:35])).values(user_id=None))
        connection.execute(
            CALLS.update()
            .where(ids.in_(with_feedback[35:50]))
            .values(created_at=START + timedelta(days=2, hours=5))
        )
        connection.execute(
            CALLS.update()
            .where(ids.in_(with_feedback[50:60]))
            .values(model="gpt-5", api_key="team-z", tags=["moved"], latency_ms=12.5, ttft_ms=None)
        )
        connection.execute(CALLS.delete().where(ids.in_(idle[:60])))
        connection.execute(
            FEEDBACK.delete().where(FEEDBACK.c.id.in_([f["id"] for f in feedback[:25]]))
        )
        connection.execute(
            FEEDBACK.update()
            .where(FEEDBACK.c.id.in_([f["id"] for f in feedback[25:45]]))
            .values(score=2)
        )
    assert_user_rollups_match(engine)


def test_a_day_is_marked_when_its_user_reaches_the_threshold(
    engine: sa.Engine, tmp_path: Path
) -> None:
    day = START + timedelta(days=1)
    heavy = [
        call_row(
            created_at=day + timedelta(seconds=30 * i),
            user_id="heavy",
            latency_ms=100.0 + i,
            ttft_ms=10.0 + i % 50,
            cost_usd=0.001,
            tags=["web"],
        )
        for i in range(BUSY_CALLS + 10)
    ]
    light = [call_row(created_at=day + timedelta(minutes=i), user_id="light") for i in range(30)]
    other_day = [call_row(created_at=START, user_id="heavy") for _ in range(5)]
    early = heavy[: BUSY_CALLS - 2]
    store_rows(engine, tmp_path / "spool", early + light + other_day)
    assert marks(engine) == set()
    feedback = [feedback_row(c["id"], 1.0) for c in early[:40]]
    store_rows(engine, tmp_path / "spool", heavy[BUSY_CALLS - 2 :], feedback)
    assert marks(engine) == {(day.date(), "heavy")}
    assert_user_rollups_match(engine)
    have = stored(engine)
    assert sum(f["calls"] for f in have[USER_CALL_DAYS.name].values()) == len(heavy)
    assert sum(have[USER_FEEDBACK_DAYS.name].values()) == 40
    assert sum(n for k, n in have[USER_TIMING_DAYS.name].items() if k[4] == "ttft") == len(heavy)


def test_concurrent_writers_lose_nothing_while_a_day_is_marked(
    database_url: str, tmp_path: Path
) -> None:
    """Two writers at once, one adding calls and feedback to a user-day until it crosses the
    threshold, the other feedback alone: every row is counted once, whichever transaction
    commits first (PostgreSQL's row locks; SQLite writes one at a time)."""
    engine = create_engine(database_url)
    check_schema(engine)
    day = START + timedelta(days=3)
    rng = random.Random(3)
    seeded = [
        call_row(created_at=day + timedelta(seconds=i), user_id="heavy", latency_ms=50.0)
        for i in range(BUSY_CALLS - 40)
    ]
    store_rows(engine, tmp_path / "spool", seeded)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for batch in range(6):
                rows = [
                    call_row(
                        created_at=day + timedelta(hours=1 + n, seconds=batch * 100 + i),
                        user_id="heavy",
                        latency_ms=rng.uniform(10, 500),
                    )
                    for i in range(10)
                ]
                with engine.begin() as connection:
                    if n == 0:  # the other writes feedback alone
                        insert_calls(connection, rows)
                    connection.execute(
                        sa.insert(FEEDBACK),
                        [feedback_row(c["id"]) for c in seeded[n * 60 + batch * 10 :][:10]],
                    )
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert marks(engine) == {(day.date(), "heavy")}
    assert_user_rollups_match(engine)
    have = stored(engine)
    assert sum(f["calls"] for f in have[USER_CALL_DAYS.name].values()) == BUSY_CALLS - 40 + 60
    assert sum(have[USER_FEEDBACK_DAYS.name].values()) == 120
    engine.dispose()


def test_the_migration_fills_the_days_already_busy(empty_database_url: str) -> None:
    engine = create_engine(empty_database_url)
    upgrade(engine, "0020")
    day = START + timedelta(days=2)
    heavy = [
        call_row(created_at=day + timedelta(seconds=20 * i), user_id="heavy", ttft_ms=5.0 + i)
        for i in range(BUSY_CALLS)
    ]
    light = [call_row(created_at=day, user_id="light") for _ in range(BUSY_CALLS - 1)]
    with engine.begin() as connection:
        insert_calls(connection, heavy + light)
        connection.execute(sa.insert(FEEDBACK), [feedback_row(c["id"]) for c in heavy[::10]])
    assert upgrade(engine) == HEAD_REVISION
    assert marks(engine) == {(day.date(), "heavy")}
    assert_user_rollups_match(engine)
    have = stored(engine)
    assert sum(f["calls"] for f in have[USER_CALL_DAYS.name].values()) == BUSY_CALLS
    assert sum(have[USER_FEEDBACK_DAYS.name].values()) == BUSY_CALLS // 10
    engine.dispose()


def test_feedback_changed_while_a_day_is_marked_waits_for_the_marking(
    postgres_url: str, tmp_path: Path
) -> None:
    """PostgreSQL (SQLite writes one transaction at a time): deleting or moving feedback of
    a day another transaction is marking waits for that transaction (the calls' own lock on
    the user-day), then counts."""
    engine = create_engine(postgres_url)
    check_schema(engine)
    day = START + timedelta(days=2)
    early = [
        call_row(created_at=day + timedelta(seconds=i), user_id="heavy")
        for i in range(BUSY_CALLS - 5)
    ]
    quiet = call_row(created_at=START, user_id="heavy")
    feedback = [feedback_row(c["id"]) for c in early[:6]]
    store_rows(engine, tmp_path / "spool", [*early, quiet], feedback)
    marking = engine.connect()
    transaction = marking.begin()
    insert_calls(marking, [call_row(created_at=day, user_id="heavy") for _ in range(10)])
    assert marks(engine) == set()  # not committed yet

    def change() -> None:
        with engine.begin() as connection:
            connection.execute(FEEDBACK.delete().where(FEEDBACK.c.id == feedback[0]["id"]))
            connection.execute(
                FEEDBACK.update()
                .where(FEEDBACK.c.id == feedback[1]["id"])
                .values(call_id=quiet["id"])
            )

    thread = threading.Thread(target=change)
    thread.start()
    thread.join(timeout=1.0)
    assert thread.is_alive()  # waiting for the marking transaction
    transaction.commit()
    marking.close()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert marks(engine) == {(day.date(), "heavy")}
    assert_user_rollups_match(engine)
    assert sum(stored(engine)[USER_FEEDBACK_DAYS.name].values()) == 4
    engine.dispose()


def test_long_keys_are_stored_and_their_user_never_marked(
    database_url: str, tmp_path: Path
) -> None:
    """User ids over 128 bytes are never marked: with model, prompt and tag at their
    longest in 4-byte characters the users' rollups' keys would pass PostgreSQL's limit
    for an index row, and the calls must be stored anyway."""
    engine = create_engine(database_url)
    check_schema(engine)
    rng = random.Random(7)

    def wide() -> str:  # 800 bytes that do not compress
        return "".join(chr(rng.randrange(0x20000, 0x2A6DF)) for _ in range(200))

    user, model, prompt, tag = wide(), wide(), wide(), wide()
    day = START + timedelta(days=1)
    calls = [
        call_row(
            created_at=day + timedelta(seconds=i),
            user_id=user if i % 2 else "u" * 33 + "\U0001f642" * 24,  # 129 bytes
            model=model,
            prompt_name=prompt,
            tags=[tag],
        )
        for i in range(2 * BUSY_CALLS + 2)
    ]
    store_rows(engine, tmp_path / "spool", calls)
    with engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(CALLS)).scalar() == len(
            calls
        )
    assert marks(engine) == set()
    engine.dispose()
