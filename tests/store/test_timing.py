"""Latency and TTFT histograms (migration 0010): the triggers keep them equal to what the
calls say, the migration fills them the same way, prune keeps them, and percentiles merged
from them stay within the stated 1% of the exact ones."""

from __future__ import annotations

import bisect
import math
import random
import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from llmops.audit.retention import prune
from llmops.store.engine import check_schema, create_engine, upgrade
from llmops.store.queries import Filters, overview, percentiles, timing_percentiles
from llmops.store.queries import rollups as rollup_queries
from llmops.store.queries.timing import GAMMA, HIGHEST_MS, LOWEST_MS, RELATIVE_ERROR
from llmops.store.tables import CALLS, TIMING_BUCKETS, TIMING_DAYS, TIMING_GROUP_DAYS
from tests.store.test_writer import CALL_COLUMNS, call_row, insert_calls

START = datetime(2026, 11, 1, tzinfo=UTC)
QUANTILES = (0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0)
BOUNDS = [GAMMA**b for b in range(-349, 1047)]  # the lower bounds, as the migration stores them


@pytest.fixture
def engine(database_url: str) -> sa.Engine:
    engine = create_engine(database_url)
    check_schema(engine)
    return engine


def bucket(value: float) -> int:
    """The histogram bucket of a value, from the bounds (as the triggers look it up)."""
    return bisect.bisect_right(BOUNDS, value) - 1 - 349 if value >= BOUNDS[0] else -350


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


GROUP_KEYS = ("model", "prompt_name", "prompt_version", "source", "status")


def expected_histograms(engine: sa.Engine, groups: bool = False) -> Counter[tuple]:
    """A histogram table (every call's, or per group), computed here from the stored calls."""
    every: Counter[tuple] = Counter()
    with engine.connect() as connection:
        for c in connection.execute(sa.select(*CALL_COLUMNS)):
            day = _utc(c.created_at).date()
            group = tuple(getattr(c, k) or "" for k in GROUP_KEYS) if groups else ()
            for metric, value in (("latency", c.latency_ms), ("ttft", c.ttft_ms)):
                if value is None or math.isnan(value):
                    continue
                every[(day, *group, metric, bucket(value))] += 1
    return every


def stored_histograms(engine: sa.Engine, table: sa.Table = TIMING_DAYS) -> Counter[tuple]:
    group = [table.c[k] for k in GROUP_KEYS if k in table.c]
    with engine.connect() as connection:
        columns = [table.c.day, *group, table.c.metric, table.c.bucket]
        rows = connection.execute(sa.select(*columns, table.c.calls)).all()
    assert all(r[-1] > 0 for r in rows)  # emptied buckets are removed
    return Counter({tuple(r[:-1]): r[-1] for r in rows})


def assert_histograms_match(engine: sa.Engine) -> None:
    assert stored_histograms(engine) == expected_histograms(engine)
    assert stored_histograms(engine, TIMING_GROUP_DAYS) == expected_histograms(engine, True)


def insert(engine: sa.Engine, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as connection:
        for start in range(0, len(rows), 2000):
            insert_calls(connection, rows[start : start + 2000])


def calls_over(
    rng: random.Random, n: int, latency: Callable[[], float], days: int = 6
) -> list[dict[str, Any]]:
    """``n`` calls spread over ``days`` days from START, latencies from ``latency``, a TTFT
    on a third of them."""
    rows = []
    for _ in range(n):
        value = latency()
        rows.append(
            call_row(
                created_at=START + timedelta(seconds=rng.uniform(0, days * 86400)),
                model=rng.choice(["gpt-4o-mini", "gpt-4o"]),
                prompt_name=rng.choice(["support/answer", None]),
                status=rng.choice(["ok", "ok", "ok", "error"]),
                source=rng.choice(["app", "eval"]),
                latency_ms=value,
                ttft_ms=value * rng.uniform(0.05, 0.5) if rng.random() < 0.35 else None,
                user_id=rng.choice(["u1", "u2"]),
            )
        )
    return rows


def lognormal(rng: random.Random) -> float:
    return rng.lognormvariate(math.log(800), 0.7)


def bimodal(rng: random.Random) -> float:  # cache hits and slow calls
    return rng.lognormvariate(math.log(15), 0.2) if rng.random() < 0.4 else rng.gauss(2500, 300)


DISTRIBUTIONS: dict[str, Callable[[random.Random], float]] = {
    "lognormal": lognormal,
    "bimodal": bimodal,
    "constant": lambda rng: 431.7,
    "tiny": lambda rng: math.exp(rng.uniform(math.log(0.0011), math.log(0.9))),  # sub-ms
    "huge": lambda rng: rng.lognormvariate(math.log(3e7), 1.2),  # hours, up to days
    "uniform": lambda rng: rng.uniform(1, 60_000),
}


def assert_within_bound(
    found: list[list[float | None]], exact: list[list[float | None]], slack: float = 0.0
) -> None:
    """Within 1% of the exact figure, plus ``slack`` ms (the values below the first bucket,
    0.001 ms, count as 0)."""
    for got_row, exact_row in zip(found, exact, strict=True):
        for q, got, want in zip(QUANTILES, got_row, exact_row, strict=True):
            assert (got is None) == (want is None), q
            if want is not None and got is not None:
                assert abs(got - want) <= RELATIVE_ERROR * abs(want) * (1 + 1e-9) + slack + 1e-12, (
                    q,
                    got,
                    want,
                )


@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_percentiles_from_histograms_are_within_one_percent(engine: sa.Engine, name: str) -> None:
    rng = random.Random(name)
    insert(engine, calls_over(rng, 3000, lambda: DISTRIBUTIONS[name](rng)))
    ranges = [
        Filters(START, START + timedelta(days=6)),  # whole days only
        Filters(START + timedelta(hours=7), START + timedelta(days=5, hours=13)),  # both ends
        Filters(START, START + timedelta(days=6), models=("gpt-4o",), statuses=("ok",)),
        Filters(START + timedelta(hours=2), START + timedelta(days=4), prompts=("support/answer",)),
    ]
    with engine.connect() as connection:
        for filters in ranges:
            found = timing_percentiles(connection, filters, QUANTILES)
            columns = (CALLS.c.latency_ms, CALLS.c.ttft_ms)
            exact = percentiles(connection, columns, filters.where(), QUANTILES)
            # the tiny TTFTs (a twentieth of a latency) go below 0.001 ms, and count as 0
            assert_within_bound(found, exact, LOWEST_MS if name == "tiny" else 0.0)
            if name == "constant" and filters is ranges[0]:  # whole days: a bucket's midpoint
                assert found[0][5] == pytest.approx(GAMMA ** (bucket(431.7) + 0.5))


def test_partial_days_only_are_exact_and_a_user_filter_reads_the_calls(engine: sa.Engine) -> None:
    rng = random.Random(3)
    insert(engine, calls_over(rng, 1500, lambda: lognormal(rng), days=3))
    with engine.connect() as connection:
        for filters in (
            Filters(START + timedelta(hours=3), START + timedelta(hours=20)),  # within a day
            Filters(START + timedelta(hours=12), START + timedelta(days=1, hours=12)),  # 2 ends
            Filters(START, START + timedelta(days=3), users=("u1",)),  # whole days, by user
        ):
            found = timing_percentiles(connection, filters, QUANTILES)
            columns = (CALLS.c.latency_ms, CALLS.c.ttft_ms)
            exact = percentiles(connection, columns, filters.where(), QUANTILES)
            assert found == [[pytest.approx(v, rel=1e-12) for v in row] for row in exact]
        nothing = Filters(START + timedelta(days=30), START + timedelta(days=32))
        assert timing_percentiles(connection, nothing, (0.5,)) == [[None], [None]]


def test_one_range_mixes_histogram_rows_and_calls(engine: sa.Engine) -> None:
    """Whole days from the histograms, the ends from the calls, one walk over both: with
    values far apart per day, every figure says which part it came from."""
    rows = []
    for day, value in enumerate((100.0, 200.0, 300.0, 400.0)):  # one value per day
        for i in range(10):
            at = START + timedelta(days=day, hours=1 + 2 * i)
            rows.append(call_row(created_at=at, latency_ms=value, ttft_ms=None))
    insert(engine, rows)
    # day 0 from 11:00 (5 calls, exact), days 1-2 whole (histograms), day 3 until 10:00 (5)
    filters = Filters(START + timedelta(hours=11), START + timedelta(days=3, hours=10))
    with engine.connect() as connection:
        (latency, ttft) = timing_percentiles(connection, filters, (0.0, 0.5, 1.0))
    mid = [GAMMA ** (bucket(v) + 0.5) for v in (200.0, 300.0)]
    assert latency[0] == 100.0 and latency[2] == 400.0  # the exact ends
    assert latency[1] == pytest.approx((mid[0] + mid[1]) / 2)  # 30 values: ranks 14 and 15
    assert ttft == [None, None, None]


def test_triggers_keep_the_histograms_on_insert_update_and_delete(engine: sa.Engine) -> None:
    rng = random.Random(11)
    rows = calls_over(rng, 400, lambda: lognormal(rng), days=4)
    rows += [
        call_row(created_at=START + timedelta(hours=5), latency_ms=v, ttft_ms=v)
        for v in (0.0, -3.0, 1e-9, LOWEST_MS, 1e12, HIGHEST_MS * 1.5, math.nan, None)
    ]
    insert(engine, rows)
    assert_histograms_match(engine)
    with engine.connect() as connection:  # zero and below in bucket -350, huge in the top one
        counts = dict(
            connection.execute(
                sa.select(TIMING_DAYS.c.bucket, TIMING_DAYS.c.calls).where(
                    TIMING_DAYS.c.bucket.in_([-350, 1046]), TIMING_DAYS.c.metric == "latency"
                )
            ).all()
        )
        assert counts == {-350: 3, 1046: 2}
        values = dict(
            connection.execute(sa.select(TIMING_BUCKETS.c.bucket, TIMING_BUCKETS.c.value)).all()
        )
        assert values[-350] == 0.0 and len(values) == 1397

    ids = [r["id"] for r in rows]
    with engine.begin() as connection:
        connection.execute(  # latency changed
            CALLS.update().where(CALLS.c.id.in_(ids[:40])).values(latency_ms=CALLS.c.latency_ms * 3)
        )
        connection.execute(CALLS.update().where(CALLS.c.id.in_(ids[40:60])).values(ttft_ms=None))
        connection.execute(CALLS.update().where(CALLS.c.id.in_(ids[60:70])).values(latency_ms=None))
        connection.execute(  # the key and the day change
            CALLS.update()
            .where(CALLS.c.id.in_(ids[70:90]))
            .values(model="gpt-5", status="error", created_at=START + timedelta(days=7))
        )
        connection.execute(  # columns the histograms do not read
            CALLS.update().where(CALLS.c.id.in_(ids[90:200])).values(cost_usd=1.0, user_id="u9")
        )
        connection.execute(CALLS.delete().where(CALLS.c.id.in_(ids[200:260])))
    assert_histograms_match(engine)

    with engine.begin() as connection:  # a whole day goes: its histogram rows go too
        connection.execute(CALLS.delete().where(CALLS.c.created_at < START + timedelta(days=1)))
        left = connection.execute(
            sa.select(sa.func.count()).where(TIMING_DAYS.c.day == START.date())
        ).scalar_one()
        assert left == 0
    assert_histograms_match(engine)


def test_prune_keeps_the_histograms_of_the_pruned_days(engine: sa.Engine) -> None:
    now = datetime.now(UTC)
    rng = random.Random(4)
    old = [
        call_row(created_at=now - timedelta(days=400, hours=h), latency_ms=lognormal(rng))
        for h in range(30)
    ]
    recent = [
        call_row(created_at=now - timedelta(days=3, hours=h), latency_ms=lognormal(rng))
        for h in range(30)
    ]
    insert(engine, old + recent)
    before = stored_histograms(engine)
    done = prune(engine, calls_days=300, now=now)
    assert done.calls_removed == 30
    assert stored_histograms(engine) == before
    whole = Filters.last_days(500, now=now)
    with engine.connect() as connection:  # the pruned days still count in the percentiles
        ((p50,),) = timing_percentiles(connection, whole, (0.5,), ("latency",))
    assert p50 is not None
    values = sorted(c["latency_ms"] for c in old + recent)
    assert p50 == pytest.approx((values[29] + values[30]) / 2, rel=2 * RELATIVE_ERROR)


def test_migration_fills_the_histograms_as_the_triggers_would(
    empty_database_url: str, tmp_path: Path
) -> None:
    engine = create_engine(empty_database_url)
    upgrade(engine, "0009")
    rng = random.Random(21)
    rows = calls_over(rng, 500, lambda: bimodal(rng), days=5)
    rows += [call_row(created_at=START, latency_ms=v) for v in (0.0, -1.0, 1e15, None)]
    insert(engine, rows)
    upgrade(engine, "0010")
    backfilled = stored_histograms(engine)
    assert backfilled == expected_histograms(engine)
    assert sum(backfilled.values()) == sum(
        (r["latency_ms"] is not None) + (r["ttft_ms"] is not None) for r in rows
    )
    # the same calls stored through the triggers build the same rows
    fresh = create_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    check_schema(fresh)
    insert(fresh, rows)
    assert stored_histograms(fresh) == backfilled
    # down and up again: the tables and triggers go, then come back filled
    upgrade_down(engine, "0009")
    tables = set(sa.inspect(engine).get_table_names())
    assert not tables & {"timing_buckets", "llm_calls_daily_timing"}
    insert(engine, [call_row(created_at=START, latency_ms=5.0)])  # no trigger left to fail
    upgrade(engine)
    assert_histograms_match(engine)


def upgrade_down(engine: sa.Engine, revision: str) -> None:
    """Alembic's downgrade, configured as llmops.store.engine.upgrade configures upgrades."""
    from alembic import command
    from alembic.config import Config

    import llmops.store.engine

    config = Config()
    folder = Path(llmops.store.engine.__file__).parent / "migrations"
    config.set_main_option("script_location", str(folder))
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
        connection.commit()


def test_overview_and_comparisons_read_the_histograms(engine: sa.Engine) -> None:
    rng = random.Random(8)
    insert(engine, calls_over(rng, 2000, lambda: lognormal(rng), days=5))
    filters = Filters(START + timedelta(hours=6), START + timedelta(days=5))
    found = overview(engine, filters)
    rollup_queries.READ_ROLLUPS = False  # the exact path, as before 0010
    try:
        exact = overview(engine, filters)
    finally:
        rollup_queries.READ_ROLLUPS = True
    for name in ("latency_p50", "latency_p95", "latency_p99", "ttft_p50", "ttft_p95", "ttft_p99"):
        want = getattr(exact, name)
        assert getattr(found, name) == pytest.approx(want, rel=RELATIVE_ERROR), name


def test_values_on_and_next_to_every_bound_land_in_the_same_bucket(engine: sa.Engine) -> None:
    """PostgreSQL computes the bucket (ln, then corrected against power(1.02, b)), SQLite
    looks it up in timing_buckets: both must agree with the bounds, to the last bit."""
    values: list[float] = []
    for b in range(-349, 1047):
        bound = 1.02**b
        values += [bound, math.nextafter(bound, 0.0), math.nextafter(bound, math.inf)]
    rows = [
        call_row(created_at=START + timedelta(seconds=i % 80_000), latency_ms=v)
        for i, v in enumerate(values)
    ]
    insert(engine, rows)
    assert_histograms_match(engine)


def test_a_filtered_range_of_whole_days_reads_the_group_histograms(engine: sa.Engine) -> None:
    """A filter on a model and a prompt merges the per-group histograms (migration 0013)
    without reading a call, within 1% of the exact figures."""
    rng = random.Random(13)
    insert(engine, calls_over(rng, 2000, lambda: lognormal(rng), days=4))
    filters = Filters(
        START, START + timedelta(days=4), models=("gpt-4o",), prompts=("support/answer",)
    )
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    with engine.connect() as connection:
        found = timing_percentiles(connection, filters, QUANTILES)
    assert statements and all("llm_calls_daily_timing_groups" in s for s in statements)
    assert not any(re.search(r"\bllm_calls\b(?!_)", s) for s in statements)
    with engine.connect() as connection:
        columns = (CALLS.c.latency_ms, CALLS.c.ttft_ms)
        exact = percentiles(connection, columns, filters.where(), QUANTILES)
    assert exact[0][5] is not None
    assert_within_bound(found, exact, 0.0)


def test_migration_0013_fills_the_group_histograms_and_goes_back(empty_database_url: str) -> None:
    engine = create_engine(empty_database_url)
    upgrade(engine, "0012")
    rng = random.Random(17)
    insert(engine, calls_over(rng, 600, lambda: bimodal(rng), days=3))
    upgrade(engine, "0013")
    assert_histograms_match(engine)  # the backfill is what the triggers would have made
    insert(engine, calls_over(rng, 50, lambda: lognormal(rng), days=3))
    assert_histograms_match(engine)  # and the redefined triggers keep both tables
    upgrade_down(engine, "0012")
    assert "llm_calls_daily_timing_groups" not in sa.inspect(engine).get_table_names()
    insert(engine, calls_over(rng, 20, lambda: lognormal(rng), days=3))  # no trigger fails
    assert stored_histograms(engine) == expected_histograms(engine)
    upgrade(engine)
    assert_histograms_match(engine)


def test_infinite_and_nan_values_written_by_sql_are_left_out_of_exact_readings(
    engine: sa.Engine,
) -> None:
    """The Writer stores a NaN or infinite latency as NULL; one written by SQL (or by a
    Writer before migration 0011, on SQLite) made an exact percentile ``nan`` (``inf - inf``)
    or ``inf``: the partial days, the users-and-model fallback, alerts and the exporter now
    leave it out, as NULL."""
    from llmops.store.queries.alerts import latency_p95
    from llmops.store.queries.metrics import recent_latency

    values = (100.0, 200.0, 300.0, math.inf, math.nan)
    rows = [
        call_row(created_at=START + timedelta(hours=1 + i), latency_ms=v, ttft_ms=v, user_id="u1")
        for i, v in enumerate(values)
    ]
    insert(engine, rows)
    half_day = (START, START + timedelta(hours=12))
    with engine.connect() as connection:
        for filters in (
            Filters(*half_day),  # a partial day: read from the calls
            Filters(START, START + timedelta(days=1), users=("u1",), models=("gpt-4o-mini",)),
        ):
            assert timing_percentiles(connection, filters, (0.0, 0.5, 1.0)) == [
                [100.0, 200.0, 300.0],
                [100.0, 200.0, 300.0],
            ], filters
    p95 = latency_p95(engine, *half_day, "all", None)[None]
    assert (p95.calls, p95.p95_ms) == (3, pytest.approx(290.0))
    (recent,) = recent_latency(engine, *half_day, (0.5, 1.0), ["gpt-4o-mini"])
    assert (recent.latency_calls, recent.latency_ms, recent.ttft_ms) == (
        3,
        (200.0, 300.0),
        (200.0, 300.0),
    )
