"""The shared queries, checked against figures computed here in Python from the same rows."""

from __future__ import annotations

import dataclasses
import math
import random
import re
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from llmops.store import queries as q
from llmops.store.engine import check_schema, create_engine
from llmops.store.queries import rollups
from llmops.store.queries.timing import RELATIVE_ERROR
from llmops.store.tables import BUSY_USER_DAYS, EVAL_RUNS, USER_CALL_DAYS
from tests.store.test_writer import call_row, feedback_row, store_rows

NOW = datetime(2026, 11, 18, 15, 30, tzinfo=UTC)  # a Wednesday


def quantile(values: list[float], q_: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    position = q_ * (len(ordered) - 1)
    low, high = int(position), min(int(position) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@pytest.fixture
def seeded(database_url: str, tmp_path: Path):
    """400 calls over 45 days (some errors, unpriced, tags, users), and feedback."""
    rng = random.Random(3)
    engine = create_engine(database_url)
    check_schema(engine)
    calls, feedback = [], []
    for i in range(400):
        when = NOW - timedelta(minutes=rng.randrange(0, 45 * 24 * 60))
        model = rng.choice(["gpt-4o-mini", "gpt-4o", "claude-haiku-4-5"])
        status = "error" if i % 25 == 0 else "ok"
        unpriced = model == "claude-haiku-4-5" and i % 7 == 0
        row = call_row(
            created_at=when,
            model=model,
            status=status,
            user_id=f"u{rng.randrange(5)}",
            source="eval" if i % 10 == 0 else "app",
            prompt_name=rng.choice(["support/answer", "extract/ticket", None]),
            prompt_version=rng.choice(["aaaaaaaaaaaa", "bbbbbbbbbbbb"]),
            tags=rng.choice([["web"], ["web", "eu"], None]),
            prompt_tokens=rng.randrange(10, 2000),
            completion_tokens=rng.randrange(1, 500),
            cost_usd=None if unpriced else round(rng.uniform(0.0001, 0.02), 6),
            cost_status="unpriced" if unpriced else "priced",
            latency_ms=round(rng.lognormvariate(5, 0.6), 3),
            ttft_ms=round(rng.uniform(50, 400), 3) if i % 3 == 0 else None,
            api_key=("team-a", "team-b", None)[i % 3],
        )
        if row["prompt_name"] is None:
            row["prompt_version"] = None
        calls.append(row)
        if i % 4 == 0:
            stars = rng.random() < 0.5  # two names on two scales: never averaged together
            fb = feedback_row(row["id"], rng.choice([1, 4, 5]) if stars else rng.choice([0, 1]))
            fb["name"] = "stars" if stars else "thumbs"
            fb["comment"] = "great" if fb["score"] >= 4 else None
            feedback.append(fb)
    store_rows(engine, tmp_path / "spool", calls, feedback)
    return engine, calls, feedback


def in_range(rows, filters: q.Filters):
    return [r for r in rows if filters.start <= r["created_at"] < filters.end]


def test_the_dashboards_ranges_are_whole_days_counted_from_the_rollups(seeded) -> None:
    """``Filters.days`` (the dashboard's ranges) is whole UTC days, today included in full:
    no partial day is left to read from the calls, and the figures are those of every call
    of those days."""
    engine, calls, _ = seeded
    first, last = NOW.date() - timedelta(days=6), NOW.date()
    filters = q.Filters.days(first, last, models=("gpt-4o",))
    assert filters.start == datetime(2026, 11, 12, tzinfo=UTC)
    assert filters.end == datetime(2026, 11, 19, tzinfo=UTC)
    assert filters.whole_days() == (first, last + timedelta(days=1)) and filters.edges() == []
    rows = [r for r in in_range(calls, filters) if r["model"] == "gpt-4o"]
    assert rows and any(r["created_at"].date() == last for r in rows)
    summary = q.overview(engine, filters)
    assert summary.calls == len(rows)
    assert summary.cost_usd == pytest.approx(sum(r["cost_usd"] or 0 for r in rows))
    spent = q.daily_spend(engine, filters, by="model")
    assert {(r.date, r.calls) for r in spent} == {
        (day, sum(1 for r in rows if r["created_at"].date() == day))
        for day in {r["created_at"].date() for r in rows}
    }


def test_daily_spend_by_every_grouping(seeded) -> None:
    engine, calls, _ = seeded
    filters = q.Filters.last_days(30, now=NOW)
    rows = in_range(calls, filters)
    for by, key in [
        ("model", lambda r: [r["model"]]),
        ("user", lambda r: [r["user_id"]]),
        ("source", lambda r: [r["source"]]),
        ("prompt", lambda r: [r["prompt_name"] or "(none)"]),
        ("tag", lambda r: r["tags"] or ["(none)"]),
    ]:
        expected: dict[tuple[date, str], list] = defaultdict(lambda: [0, 0.0, 0, 0])
        for r in rows:
            for k in key(r):
                cell = expected[(r["created_at"].date(), k)]
                cell[0] += 1
                cell[1] += r["cost_usd"] or 0.0
                cell[2] += r["prompt_tokens"]
                cell[3] += r["cost_status"] == "unpriced"
        got = {(s.date, s.key): s for s in q.daily_spend(engine, filters, by=by)}
        assert set(got) == set(expected), by
        for k, (n, cost, tokens, unpriced) in expected.items():
            assert got[k].calls == n and got[k].prompt_tokens == tokens
            assert got[k].cost_usd == pytest.approx(cost) and got[k].unpriced_calls == unpriced
        for s in got.values():  # typed as declared, whatever the database's sums are
            assert [type(v) for v in s] == [date, str, int, int, int, float, int], s
    with pytest.raises(ValueError):
        q.daily_spend(engine, filters, by="colour")
    total = q.spend_total(engine, filters)  # each call once, tags or not
    assert total.calls == len(rows) == q.overview(engine, filters).calls
    assert total.cost_usd == pytest.approx(sum(r["cost_usd"] or 0.0 for r in rows))
    assert total.unpriced_calls == sum(r["cost_status"] == "unpriced" for r in rows)


def test_spend_periods(seeded) -> None:
    engine, calls, _ = seeded
    today = datetime(2026, 11, 18, tzinfo=UTC)
    monday = datetime(2026, 11, 16, tzinfo=UTC)

    def spend(start, end, inclusive=False):
        return sum(
            r["cost_usd"] or 0
            for r in calls
            if start <= r["created_at"]
            and (r["created_at"] <= end if inclusive else r["created_at"] < end)
        )

    periods = {p.name: p for p in q.spend_periods(engine, now=NOW)}
    assert list(periods) == ["today", "yesterday", "this week", "this month"]
    day = timedelta(days=1)
    # a running period against the one before up to the same point: like with like
    assert periods["today"].cost_usd == pytest.approx(spend(today, NOW, True))
    assert periods["today"].previous_usd == pytest.approx(spend(today - day, NOW - day, True))
    assert periods["yesterday"].cost_usd == pytest.approx(spend(today - day, today))
    assert periods["yesterday"].previous_usd == pytest.approx(spend(today - 2 * day, today - day))
    assert periods["this week"].cost_usd == pytest.approx(spend(monday, NOW, True))
    assert periods["this week"].previous_usd == pytest.approx(
        spend(monday - 7 * day, NOW - 7 * day, True)
    )
    month = datetime(2026, 11, 1, tzinfo=UTC)
    assert periods["this month"].cost_usd == pytest.approx(spend(month, NOW, True))
    october_18 = datetime(2026, 10, 18, 15, 30, tzinfo=UTC)  # the same days of last month
    assert periods["this month"].previous_usd == pytest.approx(
        spend(datetime(2026, 10, 1, tzinfo=UTC), october_18, True)
    )
    p = periods["this month"]
    assert p.change == pytest.approx((p.cost_usd - p.previous_usd) / p.previous_usd)
    # the whole month at the rate so far: November has 30 days, 17 d 15.5 h are gone
    budget = q.month_budget(engine, 100.0, now=NOW)
    elapsed = (NOW - month).total_seconds() / (30 * 86400)
    assert budget.forecast_usd == pytest.approx(p.cost_usd / elapsed)
    assert budget.forecast_over == (p.cost_usd / elapsed > 100.0)


def test_like_for_like_months_of_different_lengths() -> None:
    """On March 31 the month before (February) is shorter: compared until its end."""
    spans = q.period_spans(datetime(2026, 3, 31, 12, 0, tzinfo=UTC))
    _, _, before, before_end = spans["this month"]
    assert (before, before_end) == (
        datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC))  # fmt: skip
    assert q.month_forecast(10.0, datetime(2026, 3, 1, 0, 30, tzinfo=UTC)) is None  # too early
    assert q.month_forecast(10.0, datetime(2026, 3, 16, 12, 0, tzinfo=UTC)) == pytest.approx(20.0)


def test_overview_with_filters_and_percentiles_within_one_percent(seeded) -> None:
    engine, calls, feedback = seeded
    for filters in (
        q.Filters.last_days(30, now=NOW),
        q.Filters.last_days(30, now=NOW, models=("gpt-4o",), sources=("app",)),
    ):
        rows = [
            r
            for r in in_range(calls, filters)
            if (not filters.models or r["model"] in filters.models)
            and (not filters.sources or r["source"] in filters.sources)
        ]
        got = q.overview(engine, filters)
        assert got.calls == len(rows)
        assert got.errors == sum(r["status"] == "error" for r in rows)
        assert got.error_rate == pytest.approx(got.errors / len(rows))
        assert got.cost_usd == pytest.approx(sum(r["cost_usd"] or 0 for r in rows))
        assert got.unpriced_calls == sum(r["cost_status"] == "unpriced" for r in rows)
        latencies = [r["latency_ms"] for r in rows]
        for value, quant in (
            (got.latency_p50, 0.5),
            (got.latency_p95, 0.95),
            (got.latency_p99, 0.99),
        ):
            # whole days from the histograms (llmops.store.queries.timing): within 1%
            assert value == pytest.approx(quantile(latencies, quant), rel=RELATIVE_ERROR)
        ttfts = [r["ttft_ms"] for r in rows if r["ttft_ms"] is not None]
        assert got.ttft_p95 == pytest.approx(quantile(ttfts, 0.95), rel=RELATIVE_ERROR)
        ids = {r["id"] for r in rows}
        scores = [f["score"] for f in feedback if f["call_id"] in ids]
        assert got.feedback_count == len(scores)
        for score in got.feedback:  # per name, each on its own scale
            named = [
                f["score"] for f in feedback if f["call_id"] in ids and f["name"] == score.name
            ]
            assert score.count == len(named) and score.average == pytest.approx(
                sum(named) / len(named)
            )
        assert {s.name for s in got.feedback} == {
            f["name"] for f in feedback if f["call_id"] in ids
        }


def test_empty_database(database_url: str) -> None:
    engine = create_engine(database_url)
    check_schema(engine)
    filters = q.Filters.last_days(7, now=NOW)
    empty = q.overview(engine, filters)
    assert empty.calls == 0 and empty.latency_p50 is None and empty.error_rate is None
    assert q.daily_spend(engine, filters) == []
    assert [d.cost_usd for d in q.daily_totals(engine, filters)] == [0.0] * 7
    assert all(p.cost_usd == 0 and p.change is None for p in q.spend_periods(engine, NOW))
    assert q.calls_page(engine, filters) == ([], 0)
    assert q.prompt_versions(engine, filters) == []
    assert q.eval_runs(engine) == []


def test_daily_totals_and_budgets(seeded) -> None:
    engine, calls, _ = seeded
    filters = q.Filters.last_days(14, now=NOW)
    days = q.daily_totals(engine, filters, daily_budget_usd=0.05)
    assert len(days) == 14 and days[-1].date == NOW.date()
    for day in days:
        cost = sum(r["cost_usd"] or 0 for r in calls if r["created_at"].date() == day.date)
        assert day.cost_usd == pytest.approx(cost)
        assert day.over_budget == (cost > 0.05)
    budget = q.month_budget(engine, 1.0, now=NOW)
    month = sum(
        r["cost_usd"] or 0 for r in calls if datetime(2026, 11, 1, tzinfo=UTC) <= r["created_at"]
    )
    assert budget.month_to_date_usd == pytest.approx(month)
    assert budget.used == pytest.approx(month) and budget.over == (month > 1.0)


@pytest.mark.parametrize("hours", [9, -16])
def test_times_given_in_other_zones_mean_their_utc_days(seeded, hours: int) -> None:
    """A time given in another zone (the API's callers; the dashboard and the CLI give UTC)
    falls on another local date: periods, forecasts and the days of a range took that date
    for the UTC day (in Tokyo today was tomorrow, and its spend nothing)."""
    engine, _, _ = seeded
    zone = timezone(timedelta(hours=hours))
    local = NOW.astimezone(zone)
    assert local.date() != NOW.date()
    assert q.spend_periods(engine, local) == q.spend_periods(engine, NOW)
    assert q.month_budget(engine, 1.0, now=local) == q.month_budget(engine, 1.0, now=NOW)
    assert q.Filters.last_days(14, now=local) == q.Filters.last_days(14, now=NOW)
    span = q.Filters(datetime(2026, 11, 10, 22, tzinfo=UTC), datetime(2026, 11, 14, 1, tzinfo=UTC))
    shifted = q.Filters(span.start.astimezone(zone), span.end.astimezone(zone))
    days = q.daily_totals(engine, span)
    assert [d.date for d in days] == [date(2026, 11, d) for d in (10, 11, 12, 13, 14)]
    assert q.daily_totals(engine, shifted) == days


def test_prompt_versions_with_latest_eval(seeded) -> None:
    engine, calls, feedback = seeded
    with engine.begin() as connection:
        for started, rate in ((NOW - timedelta(days=2), 0.5), (NOW - timedelta(days=1), 0.9)):
            connection.execute(
                EVAL_RUNS.insert(),
                {
                    "id": str(uuid.uuid4()), "batch_id": "b", "role": "candidate",
                    "suite": "support", "prompt_name": "support/answer",
                    "prompt_ref": "working", "prompt_version": "aaaaaaaaaaaa", "model": "m",
                    "started_at": started, "cases": 10, "results": 10,
                    "passed": int(rate * 10), "pass_rate": rate, "cached": 0,
                },
            )  # fmt: skip
    filters = q.Filters.last_days(30, now=NOW)
    rows = [r for r in in_range(calls, filters) if r["prompt_name"]]
    got = {(v.prompt_name, v.prompt_version): v for v in q.prompt_versions(engine, filters)}
    for key in {(r["prompt_name"], r["prompt_version"]) for r in rows}:
        mine = [r for r in rows if (r["prompt_name"], r["prompt_version"]) == key]
        assert got[key].calls == len(mine)
        priced = [r["cost_usd"] for r in mine if r["cost_usd"] is not None]
        assert got[key].cost_per_call == pytest.approx(sum(priced) / len(priced))
        tokens = [r["prompt_tokens"] + r["completion_tokens"] for r in mine]
        assert got[key].tokens_per_call == pytest.approx(sum(tokens) / len(tokens))
        ids = {r["id"] for r in mine}
        scores = [f["score"] for f in feedback if f["call_id"] in ids]
        assert got[key].feedback_count == len(scores)
        for score in got[key].feedback:
            named = [
                f["score"] for f in feedback if f["call_id"] in ids and f["name"] == score.name
            ]
            assert score.average == pytest.approx(sum(named) / len(named))
        counts = [score.count for score in got[key].feedback]
        assert counts == sorted(counts, reverse=True)  # the most used name first
    assert got[("support/answer", "aaaaaaaaaaaa")].eval_pass_rate == 0.9
    assert got[("extract/ticket", "aaaaaaaaaaaa")].eval_pass_rate is None


def test_calls_page_and_detail(seeded) -> None:
    engine, calls, feedback = seeded
    filters = q.Filters.last_days(30, now=NOW, statuses=("ok",), users=("u1", "u2"))
    expected = sorted(
        (
            r
            for r in in_range(calls, filters)
            if r["status"] == "ok" and r["user_id"] in ("u1", "u2")
        ),
        key=lambda r: (-r["created_at"].timestamp(), r["id"]),
    )
    first, total = q.calls_page(engine, filters, limit=10)
    second, _ = q.calls_page(engine, filters, limit=10, offset=10)
    assert total == len(expected)
    assert [r["id"] for r in first + second] == [r["id"] for r in expected[:20]]
    with_feedback = next(f["call_id"] for f in feedback)
    detail = q.call_detail(engine, with_feedback)
    assert detail is not None and detail["id"] == with_feedback
    assert [f["call_id"] for f in detail["feedback"]] == [with_feedback]
    assert detail["request"]["messages"][0]["content"] == "hi"
    assert q.call_detail(engine, str(uuid.uuid4())) is None


def test_feedback_queries(seeded) -> None:
    engine, calls, feedback = seeded
    filters = q.Filters.last_days(30, now=NOW)
    by_id = {r["id"]: r for r in in_range(calls, filters) if r["prompt_name"]}
    mine = [f for f in feedback if f["call_id"] in by_id]
    counts: dict[tuple, int] = defaultdict(int)
    for f in mine:
        call = by_id[f["call_id"]]
        counts[(call["prompt_name"], call["prompt_version"], f["name"], f["score"])] += 1
    got = {(s.prompt_name, s.prompt_version, s.name, s.score): s.count
           for s in q.feedback_distribution(engine, filters)}  # fmt: skip
    assert got == dict(counts)
    trend = q.feedback_trend(engine, filters)
    assert sum(d.count for d in trend) == len(mine)
    comments = q.feedback_comments(engine, filters)
    assert len(comments) == sum(1 for f in mine if f["comment"])
    assert all(c["comment"] == "great" and c["score"] >= 4 for c in comments)


def test_filter_options(seeded) -> None:
    engine, calls, _ = seeded
    options = q.filter_options(engine)
    assert options["models"] == sorted({r["model"] for r in calls})
    assert options["users"] == sorted({r["user_id"] for r in calls})
    assert options["statuses"] == ["error", "ok"]
    assert options["prompts"] == ["extract/ticket", "support/answer"]


def test_queries_are_parameterized(seeded) -> None:
    engine, _, _ = seeded
    hostile = "x'); DROP TABLE llm_calls; --"
    filters = q.Filters.last_days(30, now=NOW, models=(hostile,), users=(hostile,))
    assert q.overview(engine, filters).calls == 0
    assert q.calls_page(engine, filters) == ([], 0)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM llm_calls")).scalar_one() == 400


PERCENTILES = {
    f"{m}_p{q}{ms}" for m in ("latency", "ttft") for q in (50, 95, 99) for ms in ("", "_ms")
}


def _close(a, b, path: str = "") -> None:
    """Equal, up to float rounding (sums added in another order differ in the last bits)."""
    if dataclasses.is_dataclass(a):
        a, b = dataclasses.asdict(a), dataclasses.asdict(b)
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            _close(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, (list, tuple)) and not isinstance(a, str):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        # the latency and TTFT percentiles merge the daily histograms: within 1%
        percentile = path.rpartition(".")[2] in PERCENTILES
        rel_tol = RELATIVE_ERROR * (1 + 1e-9) if percentile else 1e-9
        assert math.isclose(a, b, rel_tol=rel_tol, abs_tol=1e-12), (path, a, b)
    else:
        assert a == b, (path, a, b)


def every_figure(engine: sa.Engine, ranges: list[q.Filters]) -> list:
    """Every rollup-backed figure of each range; per range, in this order: the overview,
    the daily totals, the spend total, the prompt versions, two versions compared, the
    feedback distribution and trend, and the spend split each way (``q.GROUPINGS``)."""
    found: list = []
    for f in ranges:
        found += [
            q.overview(engine, f),
            q.daily_totals(engine, f, 0.05),
            q.spend_total(engine, f),
            q.prompt_versions(engine, f),
            q.compare_versions(engine, f, "support/answer", ["aaaaaaaaaaaa", "bbbbbbbbbbbb"]),
            q.feedback_distribution(engine, f),
            q.feedback_trend(engine, f),
            *(q.daily_spend(engine, f, by=by) for by in q.GROUPINGS),
        ]
    return found


def test_rollups_give_the_figures_the_calls_give(seeded, monkeypatch) -> None:
    """Every rollup-backed figure equals the same figure summed from the calls, for ranges
    that start and end mid-day, lie inside one day, or are whole days, with filters."""
    engine, _, _ = seeded
    ranges = [
        q.Filters.last_days(30, NOW),
        q.Filters(NOW - timedelta(days=20, hours=5, minutes=7), NOW - timedelta(days=2, hours=3)),
        q.Filters(NOW - timedelta(hours=6), NOW),
        q.Filters(datetime(2026, 10, 20, tzinfo=UTC), datetime(2026, 11, 10, tzinfo=UTC)),
        q.Filters.last_days(45, NOW, models=("gpt-4o",), statuses=("ok",), sources=("app",)),
        q.Filters.last_days(45, NOW, prompts=("support/answer",), versions=("aaaaaaaaaaaa",)),
        q.Filters.last_days(30, NOW, users=("u1", "u3")),
        q.Filters(
            NOW - timedelta(days=20, hours=5),
            NOW,
            users=("u2",),
            models=("gpt-4o",),
            sources=("app",),
        ),
    ]

    def figures() -> list:
        return [q.spend_periods(engine, NOW), *every_figure(engine, ranges)]

    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    from_rollups = figures()
    assert any("llm_calls_daily" in s for s in statements)
    for rollup in ("feedback_daily", "llm_calls_daily_users", "llm_calls_daily_tags",
                   "llm_calls_daily_timing", "llm_calls_daily_user_groups",
                   "llm_calls_daily_timing_groups", "llm_calls_daily_keys"):  # fmt: skip
        assert any(rollup in s for s in statements), rollup
    monkeypatch.setattr(rollups, "READ_ROLLUPS", False)
    statements.clear()
    from_calls = figures()
    assert not any("_daily" in s for s in statements)
    _close(from_rollups, from_calls)
    assert from_calls[1].calls > 100  # the ranges hold calls, not nothing


def test_an_empty_filter_value_means_none_from_the_rollups_and_the_calls(
    seeded, tmp_path, monkeypatch
) -> None:
    """The rollups key a call without a user, prompt or version as ''; a filter on '' read
    the rollups' rows for whole days (calls with NULL and '' together) and the calls' own
    '' for partial days: the spend splits of the same calls doubled."""
    engine, _, _ = seeded
    rng = random.Random(5)
    extra = [
        call_row(
            created_at=NOW - timedelta(minutes=rng.randrange(0, 20 * 24 * 60)),
            user_id=rng.choice([None, ""]),
            prompt_name=rng.choice([None, ""]),
            prompt_version=rng.choice([None, ""]),
            cost_usd=0.001,
            latency_ms=100.0 + i,
        )
        for i in range(60)
    ]
    store_rows(engine, tmp_path / "spool-empty", extra, [])
    ranges = [
        q.Filters.days(NOW.date() - timedelta(days=29), NOW.date(), users=("",)),
        q.Filters.last_days(30, NOW, users=("",)),
        q.Filters.last_days(30, NOW, prompts=("",), versions=("",)),
        q.Filters(NOW - timedelta(days=12, hours=5), NOW, users=("", "u1"), models=("gpt-4o",)),
    ]
    from_rollups = every_figure(engine, ranges)
    monkeypatch.setattr(rollups, "READ_ROLLUPS", False)
    from_calls = every_figure(engine, ranges)
    _close(from_rollups, from_calls)
    assert from_calls[0].calls == 60
    none = q.calls_page(engine, q.Filters.last_days(30, NOW, users=("",)), limit=100)
    assert none[1] == 60


def test_a_call_counts_once_under_each_tag(seeded, tmp_path) -> None:
    """A call tagged twice with the same tag counted twice in the split by tag (and a
    budget on the tag); one tagged with an empty list counted under no tag at all."""
    engine, _, _ = seeded
    day = NOW.date() - timedelta(days=3)
    at = datetime(day.year, day.month, day.day, 5, tzinfo=UTC)
    extra = [
        call_row(created_at=at, tags=["twice", "twice"], cost_usd=0.25),
        call_row(created_at=at, tags=["twice"], cost_usd=0.25),
        call_row(created_at=at, tags=[], cost_usd=0.5, user_id="no-tags-user"),
    ]
    store_rows(engine, tmp_path / "spool-tags", extra, [])
    for filters in (
        q.Filters.days(day, day),
        q.Filters(at - timedelta(hours=1), at + timedelta(hours=1)),
    ):
        spend = {r.key: r for r in q.daily_spend(engine, filters, by="tag")}
        assert (spend["twice"].calls, spend["twice"].cost_usd) == (2, pytest.approx(0.5))
        untagged = q.daily_spend(
            engine, dataclasses.replace(filters, users=("no-tags-user",)), by="tag"
        )
        assert [(r.key, r.calls) for r in untagged] == [("(none)", 1)]


def test_busy_user_days_give_the_figures_the_calls_give(seeded, monkeypatch) -> None:
    """Under a filter on users, the users' busy days (migration 0021) are summed from their
    rollups and the other days read from the calls: every figure equals the calls' own, for
    one user or two, with other filters, over whole days and partial ones."""
    engine, _, _ = seeded
    first = NOW.date() - timedelta(days=44)
    busy = [(first + timedelta(days=d), "u1") for d in range(0, 45, 2)]
    busy += [(first + timedelta(days=d), "u3") for d in (3, 4, 5, 30, 44)]
    with engine.begin() as connection:  # each marker fills its day from the calls
        connection.execute(sa.insert(BUSY_USER_DAYS), [{"day": d, "user_id": u} for d, u in busy])
    ranges = [
        q.Filters.days(NOW.date() - timedelta(days=29), NOW.date(), users=("u1",)),
        q.Filters.days(first, NOW.date(), users=("u1", "u3", "u4")),
        q.Filters.last_days(30, NOW, users=("u3",)),
        q.Filters(NOW - timedelta(days=20, hours=5), NOW, users=("u1",), models=("gpt-4o",)),
        q.Filters.days(first, NOW.date(), users=("u1",), prompts=("support/answer",)),
        q.Filters.days(first, NOW.date(), users=("u1",), statuses=("ok",), sources=("app",)),
    ]

    def figures() -> list:
        return every_figure(engine, ranges)

    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    from_rollups = figures()
    for twin in ("llm_calls_daily_user_calls", "llm_calls_daily_user_tags",
                 "feedback_daily_users", "llm_calls_daily_user_timing"):  # fmt: skip
        assert any(twin in s for s in statements), twin
    monkeypatch.setattr(rollups, "READ_ROLLUPS", False)
    from_calls = figures()
    _close(from_rollups, from_calls)
    assert from_calls[0].calls > 20 and from_calls[0].feedback_count > 3
    monkeypatch.setattr(rollups, "READ_ROLLUPS", True)
    # many runs of days that are not busy: read in one pass that leaves the busy days out
    monkeypatch.setattr(rollups, "QUIET_RUNS", 1)
    statements.clear()
    _close(figures(), from_calls)
    assert any("llm_calls_busy_user_days" in s and "NOT (EXISTS" in s for s in statements)
    monkeypatch.setattr(rollups, "QUIET_RUNS", 30)

    # the busy days are read from their rollup, the other days from the calls
    day = NOW.date() - timedelta(days=2)
    assert (day, "u1") in busy and (day + timedelta(days=1), "u1") not in busy
    with engine.begin() as connection:
        changed = connection.execute(
            sa.update(USER_CALL_DAYS)
            .where(USER_CALL_DAYS.c.day == day, USER_CALL_DAYS.c.user_id == "u1")
            .values(cost_usd=USER_CALL_DAYS.c.cost_usd + 1000)
        )

    def per_day(rows: list[q.SpendRow]) -> dict[date, float]:
        days: dict[date, float] = defaultdict(float)
        for row in rows:
            days[row.date] += row.cost_usd
        return days

    before, after = (
        per_day(from_rollups[7 + 5]),
        per_day(q.daily_spend(engine, ranges[0], by="key")),
    )
    assert changed.rowcount > 0
    assert {d: round(after[d] - before[d], 6) for d in after if after[d] != before[d]} == {
        day: 1000 * changed.rowcount
    }


def test_a_filter_on_users_sums_the_user_rollup(seeded) -> None:
    """Whole days filtered on users and another key sum the user group rollup (migration
    0011) and never read the calls, and give the calls' figures."""
    engine, calls, _ = seeded
    f = q.Filters(
        datetime(2026, 10, 20, tzinfo=UTC),
        datetime(2026, 11, 10, tzinfo=UTC),
        users=("u1", "u3"),
        models=("gpt-4o",),
    )
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    by_user = q.daily_spend(engine, f, by="user")
    totals = q.daily_totals(engine, f)
    assert statements and all("llm_calls_daily_user_groups" in s for s in statements)
    assert not any(re.search(r"\bllm_calls\b(?!_)", s) for s in statements)
    chosen = [c for c in in_range(calls, f) if c["user_id"] in f.users and c["model"] == "gpt-4o"]
    assert len(chosen) > 5
    for user in f.users:
        mine = [c for c in chosen if c["user_id"] == user]
        assert sum(r.calls for r in by_user if r.key == user) == len(mine)
        assert sum(r.cost_usd for r in by_user if r.key == user) == pytest.approx(
            sum(c["cost_usd"] or 0 for c in mine)
        )
    assert sum(d.calls for d in totals) == len(chosen)


@pytest.mark.parametrize("by", ["user", "tag", "model"])
def test_daily_spend_keeps_the_top_keys_and_sums_the_rest(seeded, by: str) -> None:
    engine, _, _ = seeded
    filters = q.Filters.last_days(30, NOW)
    every = q.daily_spend(engine, filters, by=by)
    totals: dict[str, float] = defaultdict(float)
    for row in every:
        totals[row.key] += row.cost_usd
    leaders = sorted(totals, key=lambda k: (-totals[k], k))[:2]
    top = q.daily_spend(engine, filters, by=by, top=2)
    assert {r.key for r in top} == {*leaders, q.OTHER}
    for day in {r.date for r in every}:
        for figure in ("calls", "cost_usd", "prompt_tokens"):
            kept = {r.key: getattr(r, figure) for r in top if r.date == day}
            all_ = {r.key: getattr(r, figure) for r in every if r.date == day}
            assert sum(kept.values()) == pytest.approx(sum(all_.values()))
            for leader in leaders:
                assert kept.get(leader, 0) == pytest.approx(all_.get(leader, 0))


def test_approximate_calls_are_counted_by_their_partial_index(database_url, tmp_path) -> None:
    engine = create_engine(database_url)
    check_schema(engine)
    rows = [
        call_row(created_at=NOW - timedelta(hours=i), model=model, cost_status=status)
        for i in range(60)
        for model, status in (("gpt-4o", "priced"), ("vertex_ai/claude-3", "approximate"))
        if status == "priced" or i % 3 == 0
    ]
    store_rows(engine, tmp_path / "spool", rows)
    week = q.Filters(start=NOW - timedelta(days=7), end=NOW + timedelta(hours=1))
    summary = q.overview(engine, week)
    assert (summary.approximate_calls, summary.approximate_models) == (20, ("vertex_ai/claude-3",))
    day = dataclasses.replace(week, start=NOW - timedelta(hours=11, minutes=30))
    assert q.overview(engine, day).approximate_calls == 4  # hours 0, 3, 6, 9
    gpt = dataclasses.replace(week, models=("gpt-4o",))
    assert q.overview(engine, gpt).approximate_calls == 0
    if engine.dialect.name == "sqlite":  # the statement names the partial index
        statements: list[str] = []
        sa.event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        q.overview(engine, week)
        assert any("INDEXED BY ix_llm_calls_approximate" in s for s in statements)


SORTED_BY = {
    "cost": lambda r: (r["cost_usd"] is None, -(r["cost_usd"] or 0)),
    "latency": lambda r: (r["latency_ms"] is None, -(r["latency_ms"] or 0)),
    "tokens": lambda r: (False, -((r["prompt_tokens"] or 0) + (r["completion_tokens"] or 0))),
}


@pytest.mark.parametrize("order", list(SORTED_BY))
@pytest.mark.parametrize("probe", [10, 10_000], ids=["probe-10", "probe-10000"])
def test_sorted_calls_pages_are_exact_with_and_without_filters(
    seeded, monkeypatch, order: str, probe: int
) -> None:
    """Every way to a sorted page gives the order over all matching calls: each model's top
    merged (no filters, or a model filter alone), each model's probe that fills the page,
    probes that do not and one sort of those models' matching calls merged in, and a sort
    of the matching calls alone when few match (probe 10,000 here)."""
    engine, calls, _ = seeded
    module = "llmops.store.queries.calls"
    monkeypatch.setattr(f"{module}.PROBE_CALLS", probe)
    monkeypatch.setattr(f"{module}.PROBE_PAGES", 1)
    ran: list[str] = []
    for name in ("_matching", "_model_top"):
        real = getattr(q.calls, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            ran.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(f"{module}.{name}", spy)
    ways = set()
    for kwargs in (
        {}, {"models": ("gpt-4o",)}, {"statuses": ("ok",)}, {"users": ("u3",)},
        {"models": ("gpt-4o-mini", "gpt-4o"), "prompts": ("support/answer",)},
    ):  # fmt: skip
        filters = q.Filters.last_days(30, now=NOW, **kwargs)
        expected = sorted(
            (r for r in in_range(calls, filters) if all(
                r[column] in values for column, values in (
                    ("model", kwargs.get("models")), ("status", kwargs.get("statuses")),
                    ("user_id", kwargs.get("users")), ("prompt_name", kwargs.get("prompts")),
                ) if values
            )),
            key=lambda r: (*SORTED_BY[order](r), -r["created_at"].timestamp(), r["id"]),
        )  # fmt: skip
        got = []
        for offset in (0, 7):
            ran.clear()
            page, total = q.calls_page(engine, filters, limit=7, offset=offset, order=order)
            assert total == len(expected)
            got += [r["id"] for r in page]
            tops = ran.count("_model_top")
            ways.add((bool(set(kwargs) - {"models"}), tops, ran.count("_matching")))
            if tops:  # one top per model with calls in the range (or filtered)
                assert tops == len(set(kwargs.get("models", ())) or {r["model"] for r in calls})
        assert got == [r["id"] for r in expected[:14]], (kwargs, order)
        # the last page: past the calls with a value to sort by (unpriced ones, by cost)
        last = q.calls_page(engine, filters, limit=7, offset=len(expected) - 5, order=order)[0]
        assert [r["id"] for r in last] == [r["id"] for r in expected[-5:]], (kwargs, order)
        if order == "cost" and not kwargs:
            assert last[-1]["cost_usd"] is None
    # (other filters than models, model tops merged, sorts of matching calls)
    if probe == 10:  # merged tops, probes that fill the page and probes that do not
        assert {(False, 3, 0), (False, 1, 0), (True, 3, 0)} <= ways
        assert any(sorts for _, tops, sorts in ways if tops), ways
        assert all(sorts <= 1 for _, _, sorts in ways), ways  # one sort for every model apart
    else:  # 400 calls: a sort of the matching calls alone
        assert ways == {(False, 0, 1), (True, 0, 1)}


def test_the_sorted_calls_page_reads_the_top_of_each_models_index(seeded, monkeypatch) -> None:
    """Without filters each model's top of a sort order is read from the top of its part of
    the order's index (migration 0017): no sort of the range's calls (but of ties, by id),
    and the tops are merged."""
    engine, calls, _ = seeded
    monkeypatch.setattr("llmops.store.queries.calls.PROBE_CALLS", 10)  # 400 calls are many
    filters = q.Filters.last_days(30, now=NOW)
    ran: list[tuple[str, object]] = []

    def keep(_conn, _cursor, statement, parameters, _context, _many) -> None:
        if "ORDER BY" in statement:
            ran.append((statement, parameters))

    for order in ("cost", "latency", "tokens"):
        ran.clear()
        sa.event.listen(engine, "before_cursor_execute", keep)
        try:
            q.calls_page(engine, filters, order=order)
        finally:
            sa.event.remove(engine, "before_cursor_execute", keep)
        [(statement, parameters)] = ran
        assert statement.count("UNION ALL") == len({r["model"] for r in calls}) - 1
        with engine.connect() as connection:
            if engine.dialect.name == "postgresql":
                # 400 calls: scanning and sorting them wins; can the index serve the order?
                connection.exec_driver_sql("SET enable_seqscan = off")
                connection.exec_driver_sql("SET enable_sort = off")
                plan = connection.exec_driver_sql(f"EXPLAIN {statement}", parameters).scalars()
                lines = [line.strip().removeprefix("->").strip() for line in plan]
                scans = [line for line in lines if line.startswith("Index Scan")]
                # each partition's copy of the index, named by PostgreSQL after its columns
                column = {"cost": "cost_usd", "latency": "latency_ms", "tokens": "expr"}[order]
                assert all(f"_model_{column}_idx on " in line for line in scans), lines
                assert len(scans) >= 3, lines
            else:
                plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
                text = "\n".join(str(r[-1]) for r in plan)
                assert text.count(f"USING INDEX ix_llm_calls_model_{order}") == 3, text
                # no call read but through the index (then sorts of ties and of the tops)
                assert "SCAN llm_calls" not in text, text


def test_the_largest_calls_add_their_tokens_without_overflow(database_url, tmp_path) -> None:
    """Two int4 token counts near 2**31 sum past int4: stored, indexed and sorted first."""
    engine = create_engine(database_url)
    check_schema(engine)
    huge = call_row(created_at=NOW, prompt_tokens=2**31 - 1, completion_tokens=2**31 - 1)
    store_rows(engine, tmp_path / "spool", [call_row(created_at=NOW), huge], [])
    rows, total = q.calls_page(engine, q.Filters.last_days(1, now=NOW), order="tokens")
    assert total == 2 and rows[0]["id"] == huge["id"]
