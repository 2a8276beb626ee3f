"""The daily rollups equal what the raw rows say, after inserts, updates and deletes."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from llmops.store.engine import check_schema, create_engine, upgrade
from llmops.store.tables import (
    CALL_DAYS,
    CALLS,
    FEEDBACK,
    FEEDBACK_DAYS,
    KEY_DAYS,
    TAG_DAYS,
    USER_DAYS,
    USER_GROUP_DAYS,
)
from tests.store.test_writer import (
    CALL_COLUMNS,
    call_row,
    feedback_row,
    insert_calls,
    store_rows,
)

START = datetime(2026, 11, 1, tzinfo=UTC)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


SPEND = ("calls", "prompt_tokens", "completion_tokens", "cost_usd", "unpriced_calls")


def expected_rollups(engine: sa.Engine) -> list[dict[tuple, Any]]:
    """The rollups computed here, in Python, from every call and feedback row."""
    with engine.connect() as connection:
        calls = {r.id: r for r in connection.execute(sa.select(*CALL_COLUMNS))}
        feedback = connection.execute(sa.select(FEEDBACK)).all()
    days: dict[tuple, dict[str, Any]] = {}
    users: dict[tuple, dict[str, Any]] = {}
    user_groups: dict[tuple, dict[str, Any]] = {}
    keys: dict[tuple, dict[str, Any]] = {}
    tags: dict[tuple, dict[str, Any]] = {}
    for c in calls.values():
        created = _utc(c.created_at)
        spend = dict(
            zip(
                SPEND,
                (
                    1,
                    c.prompt_tokens or 0,
                    c.completion_tokens or 0,
                    c.cost_usd or 0.0,
                    int(c.cost_status == "unpriced"),
                ),
                strict=True,
            )
        )
        group = (c.model, c.prompt_name or "", c.prompt_version or "", c.source, c.status)
        groups = [
            users.setdefault((created.date(), c.user_id or ""), defaultdict(int)),
            user_groups.setdefault((created.date(), c.user_id or "", *group), defaultdict(int)),
            keys.setdefault((created.date(), c.api_key or "", *group), defaultdict(int)),
        ]
        for tag in c.tags if c.tags is not None else [""]:
            key = (
                created.date(),
                tag,
                c.model,
                c.prompt_name or "",
                c.prompt_version or "",
                c.source,
                c.status,
            )
            groups.append(tags.setdefault(key, defaultdict(int)))
        for group in groups:
            for name, value in spend.items():
                group[name] += value
        key = (
            created.date(), c.model, c.prompt_name or "", c.prompt_version or "",
            c.git_commit or "", c.source, c.status,
        )  # fmt: skip
        d = days.setdefault(key, defaultdict(int, first_at=created, last_at=created))
        d["calls"] += 1
        d["prompt_tokens"] += c.prompt_tokens or 0
        d["completion_tokens"] += c.completion_tokens or 0
        d["cost_usd"] += c.cost_usd or 0.0
        d["priced_calls"] += c.cost_usd is not None
        d["unpriced_calls"] += c.cost_status == "unpriced"
        d["estimated_calls"] += bool(c.tokens_estimated)
        d["latency_ms_sum"] += c.latency_ms or 0.0
        d["latency_calls"] += c.latency_ms is not None
        d["first_at"] = min(d["first_at"], created)
        d["last_at"] = max(d["last_at"], created)
    scores: dict[tuple, int] = defaultdict(int)
    for f in feedback:
        c = calls[f.call_id]
        key = (
            _utc(c.created_at).date(), c.model, c.prompt_name or "", c.prompt_version or "",
            c.source, c.status, f.name, f.score,
        )  # fmt: skip
        scores[key] += 1
    return [
        {k: dict(v) for k, v in table.items()} for table in (days, users, user_groups, keys, tags)
    ] + [dict(scores)]


def stored_rollups(engine: sa.Engine) -> list[Any]:
    """Every spend rollup keyed as :func:`expected_rollups` keys them (None for a table an
    older schema lacks), then the feedback rollup."""
    found = []
    tables = set(sa.inspect(engine).get_table_names())
    with engine.connect() as connection:
        for table, key in (
            (CALL_DAYS, ("day", "model", "prompt_name", "prompt_version", "git_commit", "source",
                         "status")),
            (USER_DAYS, ("day", "user_id")),
            (USER_GROUP_DAYS, ("day", "user_id", "model", "prompt_name", "prompt_version",
                               "source", "status")),
            (KEY_DAYS, ("day", "api_key", "model", "prompt_name", "prompt_version", "source",
                        "status")),
            (TAG_DAYS, ("day", "tag", "model", "prompt_name", "prompt_version", "source",
                        "status")),
        ):  # fmt: skip
            if table.name not in tables:
                found.append(None)
                continue
            found.append(
                {
                    tuple(r[k] for k in key): {k: v for k, v in r.items() if k not in key}
                    for r in (row._mapping for row in connection.execute(sa.select(table)))
                }
            )
        found.append({tuple(r[:-1]): r[-1] for r in connection.execute(sa.select(FEEDBACK_DAYS))})
    for figures in found[0].values():
        figures["first_at"] = _utc(figures["first_at"])
        figures["last_at"] = _utc(figures["last_at"])
    return found


def assert_rollups_match(engine: sa.Engine) -> None:
    *expected_spend, expected_scores = expected_rollups(engine)
    *spend, scores = stored_rollups(engine)
    for stored, expected_rows in zip(spend, expected_spend, strict=True):
        if stored is None:  # not in this schema
            continue
        assert stored.keys() == expected_rows.keys()
        for key, figures in stored.items():
            expected = dict(expected_rows[key])
            bounds = [b for b in ("first_at", "last_at") if b in figures]
            assert [figures.pop(b) for b in bounds] == [expected.pop(b) for b in bounds], key
            assert figures == pytest.approx(expected, rel=1e-9, abs=1e-12), key
    assert scores == expected_scores


def random_calls(rng: random.Random, n: int, keys: bool = True) -> list[dict[str, Any]]:
    """``n`` calls over 5 days; with virtual keys unless ``keys`` is False (before 0008)."""
    rows = []
    for _ in range(n):
        prompt = rng.choice(["support/answer", "extract/ticket", None])
        unpriced = rng.random() < 0.15
        rows.append(
            call_row(
                created_at=START + timedelta(minutes=rng.randrange(0, 5 * 24 * 60)),
                model=rng.choice(["gpt-4o-mini", "gpt-4o"]),
                status=rng.choice(["ok", "ok", "ok", "error"]),
                source=rng.choice(["app", "eval"]),
                prompt_name=prompt,
                prompt_version=rng.choice(["aaaaaaaaaaaa", "bbbbbbbbbbbb"]) if prompt else None,
                git_commit=rng.choice(["c" * 40, None]),
                prompt_tokens=rng.choice([None, rng.randrange(1, 900)]),
                completion_tokens=rng.randrange(0, 300),
                cost_usd=None if unpriced else round(rng.uniform(0, 0.01), 6),
                cost_status="unpriced" if unpriced else "priced",
                tokens_estimated=rng.random() < 0.1,
                latency_ms=rng.choice([None, round(rng.uniform(50, 3000), 3)]),
                user_id=rng.choice(["u1", "u2", None]),
                **({"api_key": rng.choice(["team-a", "team-b", None])} if keys else {}),
                tags=rng.choice([None, [], ["web"], ["web", "eu"], ["eu", "eu"]]),
            )
        )
    return rows


@pytest.fixture
def engine(database_url: str, tmp_path: Path) -> sa.Engine:
    engine = create_engine(database_url)
    check_schema(engine)
    return engine


def test_rollups_follow_inserts_updates_and_deletes(engine: sa.Engine, tmp_path: Path) -> None:
    rng = random.Random(5)
    calls = random_calls(rng, 300)
    feedback = [
        {**feedback_row(rng.choice(calls)["id"], rng.choice([0, 1, 3, 5])), "name": name}
        for name in ("rating", "thumbs")
        for _ in range(60)
    ]
    store_rows(engine, tmp_path / "spool", calls, feedback)
    assert_rollups_match(engine)

    with engine.begin() as connection:  # the same rows again change nothing
        insert_calls(connection, calls[:50], ignore=True)
    assert_rollups_match(engine)

    with_feedback = {f["call_id"] for f in feedback}
    idle = [c["id"] for c in calls if c["id"] not in with_feedback]
    busy = sorted(with_feedback)
    with engine.begin() as connection:
        # re-pricing, as `llmops costs recompute` does: costs and statuses change
        connection.execute(
            CALLS.update()
            .where(CALLS.c.cost_status == "unpriced")
            .values(cost_usd=0.5, cost_status="custom")
        )
        connection.execute(
            CALLS.update()
            .where(CALLS.c.id.in_(idle[:20]))
            .values(cost_usd=None, cost_status="unpriced")
        )
        connection.execute(
            CALLS.update().where(CALLS.c.id.in_(idle[80:90])).values(user_id="u9", tags=["new"])
        )
        # calls whose key changes, feedback and all
        connection.execute(
            CALLS.update().where(CALLS.c.id.in_(busy[:15])).values(model="gpt-5", status="ok")
        )
        connection.execute(
            CALLS.update()
            .where(CALLS.c.id.in_(busy[15:25]))
            .values(created_at=START + timedelta(days=9, hours=3))
        )
        connection.execute(CALLS.delete().where(CALLS.c.id.in_(idle[20:80])))
        connection.execute(
            FEEDBACK.delete().where(FEEDBACK.c.id.in_([f["id"] for f in feedback[:30]]))
        )
        connection.execute(
            FEEDBACK.update()
            .where(FEEDBACK.c.id.in_([f["id"] for f in feedback[30:50]]))
            .values(score=2)
        )
    assert_rollups_match(engine)

    with engine.begin() as connection:  # a whole day goes: its rollup rows go too
        first_day = sa.and_(CALLS.c.created_at < START + timedelta(days=1))
        ids = connection.execute(sa.select(CALLS.c.id).where(first_day)).scalars().all()
        connection.execute(FEEDBACK.delete().where(FEEDBACK.c.call_id.in_(ids)))
        connection.execute(CALLS.delete().where(CALLS.c.id.in_(ids)))
        assert (
            connection.execute(
                sa.select(sa.func.count()).where(CALL_DAYS.c.day == START.date())
            ).scalar_one()
            == 0
        )
    assert_rollups_match(engine)


def test_migration_fills_the_rollups_from_existing_rows(
    empty_database_url: str, tmp_path: Path
) -> None:
    from llmops.store.engine import upgrade

    engine = create_engine(empty_database_url)
    upgrade(engine, "0004")
    calls = random_calls(random.Random(8), 120, keys=False)
    feedback = [feedback_row(c["id"], 4) for c in calls[::3]]
    with engine.begin() as connection:
        insert_calls(connection, calls)
        connection.execute(FEEDBACK.insert(), feedback)
    upgrade(engine)
    assert_rollups_match(engine)
    calls_days, users, user_groups, keys, tags, _ = stored_rollups(engine)
    assert sum(r["calls"] for r in calls_days.values()) == 120
    assert sum(r["calls"] for r in keys.values()) == 120
    assert sum(r["calls"] for r in users.values()) == 120
    assert sum(r["calls"] for r in user_groups.values()) == 120
    assert sum(r["calls"] for r in tags.values()) > 100


def user_totals(engine: sa.Engine, table: sa.Table = USER_DAYS) -> dict[tuple, tuple]:
    """A user rollup summed per (day, user), whatever its other keys."""
    u = table.c
    query = sa.select(u.day, u.user_id, *(sa.func.sum(u[s]) for s in SPEND)).group_by(
        u.day, u.user_id
    )
    with engine.connect() as connection:
        return {
            (str(day), user): tuple(round(float(v), 9) for v in figures)
            for day, user, *figures in connection.execute(query)
        }


def prune_day(engine: sa.Engine, day: date, kept: sa.TableClause) -> None:
    """What `llmops db prune` does to a whole day: its calls go (the triggers take them out
    of the rollups) and ``kept``, the rollup an old migration is to keep, gets the day
    back."""
    with engine.begin() as connection:
        rows = connection.execute(sa.select(kept).where(kept.c.day == day)).all()
        start = datetime.combine(day, datetime.min.time(), UTC)
        gone = CALLS.delete().where(
            CALLS.c.created_at >= start, CALLS.c.created_at < start + timedelta(days=1)
        )
        assert connection.execute(gone).rowcount > 20
        connection.execute(kept.delete().where(kept.c.day == day))
        connection.execute(kept.insert(), [r._asdict() for r in rows])


def test_migration_0011_splits_the_user_rollup_and_keeps_pruned_days(
    empty_database_url: str,
) -> None:
    """0010 -> 0011 fills the user group rollup from the calls; a day whose calls were pruned
    keeps its per-user totals under '' keys; the triggers keep both user rollups; downgrading
    leaves the per-user rollup as it was."""
    from tests.store.test_timing import upgrade_down

    engine = create_engine(empty_database_url)
    upgrade(engine, "0010")
    rows = random_calls(random.Random(11), 400)
    with engine.begin() as connection:
        insert_calls(connection, rows)
    before = user_totals(engine)
    pruned = START.date() + timedelta(days=2)
    columns = [sa.column("day", sa.Date), *(sa.column(c) for c in ("user_id", *SPEND))]
    narrow = sa.table("llm_calls_daily_users", *columns)
    prune_day(engine, pruned, narrow)
    assert user_totals(engine) == before

    upgrade(engine, "0011")
    assert user_totals(engine) == user_totals(engine, USER_GROUP_DAYS) == before
    with engine.connect() as connection:
        groups = connection.execute(sa.select(USER_GROUP_DAYS)).all()
    assert {(r.model, r.source, r.status) for r in groups if r.day == pruned} == {("", "", "")}
    assert_users_match_calls(engine, pruned)

    extra = call_row(created_at=START + timedelta(hours=30), user_id="u9", cost_usd=0.25)
    with engine.begin() as connection:  # the redefined triggers keep it exact
        insert_calls(connection, [extra])
    assert_users_match_calls(engine, pruned)

    after = user_totals(engine)
    assert user_totals(engine, USER_GROUP_DAYS) == after
    upgrade_down(engine, "0010")
    assert "llm_calls_daily_user_groups" not in sa.inspect(engine).get_table_names()
    assert user_totals(engine) == after
    assert after.pop((str(extra["created_at"].date()), "u9"))[0] == 1
    assert after == before


def assert_users_match_calls(engine: sa.Engine, pruned: date) -> None:
    """The user group rollup, but for the pruned day, is what the calls give."""
    expected = expected_rollups(engine)[2]
    stored = {k: v for k, v in stored_rollups(engine)[2].items() if k[0] != pruned}
    assert stored.keys() == expected.keys()
    for key, figures in stored.items():
        assert figures == pytest.approx(dict(expected[key]), rel=1e-9, abs=1e-12), key


def test_infinite_measurements_are_stored_as_unknown(engine: sa.Engine, tmp_path: Path) -> None:
    """A NaN or infinite latency, TTFT or cost from an app is no measurement: stored as NULL,
    so that the rollups' sums stay finite and the call can still be updated and deleted."""
    rows = [
        call_row(latency_ms=math.inf, ttft_ms=math.nan, cost_usd=math.inf),
        call_row(latency_ms=-math.inf, ttft_ms=math.inf, cost_usd=math.nan),
        call_row(latency_ms=12.5, cost_usd=0.001),
    ]
    store_rows(engine, tmp_path / "spool", rows, [])
    with engine.connect() as connection:
        stored = connection.execute(
            sa.select(CALLS.c.latency_ms, CALLS.c.ttft_ms, CALLS.c.cost_usd).order_by(
                CALLS.c.latency_ms
            )
        ).all()
    assert sorted(stored, key=str) == sorted(
        [(None, None, None)] * 2 + [(12.5, None, 0.001)], key=str
    )
    assert_rollups_match(engine)
    with engine.begin() as connection:
        connection.execute(CALLS.update().values(cost_usd=0.5, cost_status="custom"))
        connection.execute(CALLS.delete().where(CALLS.c.id == rows[0]["id"]))
    assert_rollups_match(engine)


def key_totals(engine: sa.Engine, table: sa.Table, but: date | None = None) -> dict[tuple, tuple]:
    """A spend rollup summed per (day, model, prompt, version, source, status), ``but`` a
    day."""
    group = [table.c[k] for k in ("day", "model", "prompt_name", "prompt_version", "source",
                                  "status")]  # fmt: skip
    query = sa.select(*group, *(sa.func.sum(table.c[s]) for s in SPEND)).group_by(*group)
    with engine.connect() as connection:
        return {
            (str(r[0]), *r[1:6]): tuple(round(float(v), 9) for v in r[6:])
            for r in connection.execute(query)
            if str(r[0]) != str(but)
        }


def test_migration_0015_adds_the_key_rollup_and_keeps_pruned_days(empty_database_url: str) -> None:
    """0014 -> 0015 fills the key rollup from the calls; a day whose calls were pruned keeps
    its totals under key ''; the redefined triggers keep every rollup exact, the user group
    rollup of 0011 included; downgrading keeps those triggers and drops the key rollup."""
    from tests.store.test_timing import upgrade_down

    engine = create_engine(empty_database_url)
    upgrade(engine, "0014")
    rows = random_calls(random.Random(15), 300)
    with engine.begin() as connection:
        insert_calls(connection, rows)
    pruned = START.date() + timedelta(days=1)
    prune_day(engine, pruned, CALL_DAYS)

    upgrade(engine, "0015")
    assert key_totals(engine, KEY_DAYS) == key_totals(engine, CALL_DAYS)
    with engine.connect() as connection:
        keys = connection.execute(sa.select(KEY_DAYS)).all()
    assert {r.api_key for r in keys if r.day == pruned} == {""}
    assert {r.api_key for r in keys if r.day != pruned} == {"", "team-a", "team-b"}

    extra = call_row(created_at=START + timedelta(hours=60), api_key="team-c", cost_usd=0.25)
    with engine.begin() as connection:  # the redefined triggers keep every rollup
        insert_calls(connection, [extra])
        connection.execute(CALLS.update().where(CALLS.c.id == rows[0]["id"]).values(
            api_key="team-d"))  # fmt: skip
    assert key_totals(engine, KEY_DAYS) == key_totals(engine, CALL_DAYS)
    with engine.connect() as connection:
        moved = connection.execute(sa.select(KEY_DAYS).where(KEY_DAYS.c.api_key == "team-d"))
        assert [r.calls for r in moved] == [1]
    # (this test pruned the day from llm_calls_daily's point of view only)
    assert key_totals(engine, USER_GROUP_DAYS) == key_totals(engine, CALL_DAYS, but=pruned)

    upgrade_down(engine, "0014")
    assert "llm_calls_daily_keys" not in sa.inspect(engine).get_table_names()
    late = call_row(created_at=START + timedelta(hours=80), user_id="u7")
    with engine.begin() as connection:
        insert_calls(connection, [late])
    assert key_totals(engine, USER_GROUP_DAYS) == key_totals(engine, CALL_DAYS, but=pruned)
