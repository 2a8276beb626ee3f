"""Budgets in their windows: spend from the ledger against sums over the stored calls."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from llmops.config import Budget
from llmops.store import queries as q
from llmops.store.engine import check_schema, create_engine
from llmops.store.queries.budgets import window_spend
from tests.store.test_writer import call_row, store_rows

NOW = datetime(2026, 12, 2, 15, 30, tzinfo=UTC)  # a Wednesday


@pytest.mark.parametrize(
    ("window", "now", "start", "end"),
    [
        ("day", NOW, datetime(2026, 12, 2, tzinfo=UTC), datetime(2026, 12, 3, tzinfo=UTC)),
        ("week", NOW, datetime(2026, 11, 30, tzinfo=UTC), datetime(2026, 12, 7, tzinfo=UTC)),
        ("month", NOW, datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
        # the first instant of a window belongs to it; a month of 28 days; a week across years
        ("day", datetime(2026, 12, 3, tzinfo=UTC), datetime(2026, 12, 3, tzinfo=UTC),
         datetime(2026, 12, 4, tzinfo=UTC)),
        ("month", datetime(2027, 2, 28, 23, 59, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC),
         datetime(2027, 3, 1, tzinfo=UTC)),
        ("week", datetime(2027, 1, 1, 12, tzinfo=UTC), datetime(2026, 12, 28, tzinfo=UTC),
         datetime(2027, 1, 4, tzinfo=UTC)),
    ],
)  # fmt: skip
def test_windows_are_utc_calendar_spans(window, now, start, end) -> None:
    assert q.window_span(window, now) == (start, end)
    # a time given in another zone is the same instant
    eastern = now.astimezone(datetime.now().astimezone().tzinfo)
    assert q.window_span(window, eastern) == (start, end)


@pytest.fixture
def ledger(database_url: str, tmp_path: Path):
    """300 calls over the 40 days before NOW (and a few after it), some unpriced."""
    rng = random.Random(7)
    engine = create_engine(database_url)
    check_schema(engine)
    calls = []
    for i in range(300):
        when = NOW - timedelta(minutes=rng.randrange(-120, 40 * 24 * 60))
        unpriced = i % 11 == 0
        calls.append(
            call_row(
                created_at=when,
                model=rng.choice(["gpt-4o-mini", "gpt-4o"]),
                user_id=rng.choice(["ann", "bob", "cy", None]),
                tags=rng.choice([["web"], ["web", "eu"], None]),
                cost_usd=None if unpriced else round(rng.uniform(0.001, 0.5), 6),
                cost_status="unpriced" if unpriced else "priced",
            )
        )
    store_rows(engine, tmp_path / "spool", calls)
    return engine, calls


def _expected(calls, window: str, keep) -> tuple[float, int, int]:
    start, end = q.window_span(window, NOW)
    chosen = [c for c in calls if start <= c["created_at"] < end and keep(c)]
    cost = sum(c["cost_usd"] or 0 for c in chosen)
    return cost, len(chosen), sum(c["cost_status"] == "unpriced" for c in chosen)


def test_spend_in_each_window_and_scope(ledger) -> None:
    engine, calls = ledger
    budgets = [
        Budget(name="all-day", window="day", limit_usd=1),
        Budget(name="all-week", window="week", limit_usd=5),
        Budget(name="mini-month", window="month", limit_usd=20, scope={"model": "gpt-4o-mini"}),
        Budget(name="web-week", window="week", limit_usd=3, scope={"tag": "eu"}),
        Budget(name="users", window="month", limit_usd=2, scope={"user": "each"}),
    ]
    rows = q.budget_status(engine, budgets, now=NOW)
    by_name = {(r.budget.name, r.key): r for r in rows}
    checks = {
        ("all-day", None): ("day", lambda c: True),
        ("all-week", None): ("week", lambda c: True),
        ("mini-month", None): ("month", lambda c: c["model"] == "gpt-4o-mini"),
        ("web-week", None): ("week", lambda c: "eu" in (c["tags"] or [])),
        ("users", "ann"): ("month", lambda c: c["user_id"] == "ann"),
        ("users", "bob"): ("month", lambda c: c["user_id"] == "bob"),
        ("users", "cy"): ("month", lambda c: c["user_id"] == "cy"),
    }
    assert set(by_name) == set(checks)  # no row for calls without a user
    for key, (window, keep) in checks.items():
        cost, n, unpriced = _expected(calls, window, keep)
        row = by_name[key]
        assert row.spent_usd == pytest.approx(cost, abs=1e-9), key
        assert (row.calls, row.unpriced_calls) == (n, unpriced), key
        assert row.percent == pytest.approx(100 * cost / row.limit_usd)
        elapsed = NOW - row.window_start
        assert row.projected_usd == pytest.approx(
            cost * (row.window_end - row.window_start) / elapsed
        )
    users = [r for r in rows if r.budget.name == "users"]
    assert [r.spent_usd for r in users] == sorted((r.spent_usd for r in users), reverse=True)
    assert len(q.budget_status(engine, budgets[-1:], now=NOW, top=2)) == 2


def test_thresholds_and_exhaustion(ledger) -> None:
    engine, calls = ledger
    cost, _, _ = _expected(calls, "month", lambda c: True)
    budget = Budget(name="b", window="month", limit_usd=cost / 0.85, thresholds=(50, 80, 100))
    (row,) = q.budget_status(engine, [budget], now=NOW)
    assert row.crossed == 80 and not row.exhausted
    (row,) = q.budget_status(engine, [budget.model_copy(update={"limit_usd": cost})], now=NOW)
    assert row.crossed == 100 and row.exhausted


def test_no_projection_in_a_windows_first_hour(ledger) -> None:
    engine, _ = ledger
    early = datetime(2026, 12, 2, 0, 20, tzinfo=UTC)
    (row,) = q.budget_status(engine, [Budget(name="d", window="day", limit_usd=1)], now=early)
    assert row.projected_usd is None


def test_an_empty_database_spends_nothing(database_url: str) -> None:
    engine = create_engine(database_url)
    check_schema(engine)
    budgets = [
        Budget(name="a", window="day", limit_usd=1),
        Budget(name="b", window="week", limit_usd=1, scope={"user": "each"}),
        Budget(name="c", window="month", limit_usd=1, scope={"prompt": "support/answer"}),
    ]
    rows = q.budget_status(engine, budgets, now=NOW)
    assert [(r.budget.name, r.spent_usd, r.calls) for r in rows] == [("a", 0, 0), ("c", 0, 0)]


def test_a_key_budget_keeps_the_spend_of_pruned_days(database_url: str, tmp_path: Path) -> None:
    """A budget scoped to a virtual key summed the calls, not the key rollup: after a prune
    within its window it forgot the pruned calls' spend (and the blocking leases, which
    read the same figures, let through calls its limit should refuse). The key rollup
    (migration 0015) keeps pruned days, as the spend of every other scope does."""
    import sqlalchemy as sa

    from llmops.audit.retention import prune

    engine = create_engine(database_url)
    check_schema(engine)
    now = datetime(2026, 3, 20, 12, tzinfo=UTC)
    calls = [
        call_row(created_at=datetime(2026, 3, 2, 9, tzinfo=UTC), api_key="team-a", cost_usd=1.0),
        call_row(created_at=datetime(2026, 3, 19, 9, tzinfo=UTC), api_key="team-a", cost_usd=2.0),
        call_row(created_at=datetime(2026, 3, 19, 10, tzinfo=UTC), api_key="team-b", cost_usd=4.0),
    ]
    store_rows(engine, tmp_path / "spool", calls)
    prune(engine, calls_days=7, force=True, now=now)
    budgets = [
        Budget(name="a", window="month", limit_usd=10, scope={"key": "team-a"}),
        Budget(name="each", window="month", limit_usd=10, scope={"key": "each"}),
        Budget(name="all", window="month", limit_usd=10),
    ]
    rows = {(r.budget.name, r.key): (r.spent_usd, r.calls) for r in q.budget_status(
        engine, budgets, now=now)}  # fmt: skip
    assert rows == {
        ("a", None): (3.0, 2),
        ("each", "team-a"): (3.0, 2),
        ("each", "team-b"): (4.0, 1),
        ("all", None): (7.0, 3),
    }
    start, end = q.window_span("month", now)
    with engine.connect() as connection:  # what the blocking leases read
        ledger = window_spend(engine, budgets[1], "team-a", start, end)
        assert connection.execute(sa.select(ledger)).scalar_one() == 3.0


def test_blocked_calls_per_day_of_a_user_keep_pruned_days(
    database_url: str, tmp_path: Path
) -> None:
    """blocked_by_day under a filter on users read only the busy days' rollups and the
    calls: a prune took the user's blocked calls of other days away, while the overview
    (from the user rollups) still counted them."""
    from llmops.audit.retention import prune
    from llmops.store.queries.audit import BlockedDay, blocked_by_day

    engine = create_engine(database_url)
    check_schema(engine)
    now = datetime(2026, 3, 20, 12, tzinfo=UTC)
    blocked = {"status": "blocked", "cost_usd": 0.0, "user_id": "u1"}
    calls = [
        call_row(created_at=datetime(2026, 3, 2, 9, tzinfo=UTC), **blocked),
        call_row(created_at=datetime(2026, 3, 18, 9, tzinfo=UTC), **blocked),
        call_row(created_at=datetime(2026, 3, 18, 10, tzinfo=UTC), **{**blocked, "user_id": "u2"}),
    ]
    store_rows(engine, tmp_path / "spool", calls)
    prune(engine, calls_days=7, force=True, now=now)
    days = q.Filters.days(date(2026, 3, 1), date(2026, 3, 19), users=("u1",))
    assert q.overview(engine, days).blocked == 2
    assert blocked_by_day(engine, days) == [
        BlockedDay(date(2026, 3, 2), 1),
        BlockedDay(date(2026, 3, 18), 1),
    ]
