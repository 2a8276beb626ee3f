"""Latency and TTFT percentiles over ranges: the exact path (every call of the range) against
the daily histograms of migration 0010 (whole days merged from bucket counts, the partial
days at the ends from the calls), side by side, with the error of the histograms' figures.

Data: the SQLite file of benchmarks/dashboard_queries.py (`--rows`, default 1,000,000 calls
over 90 days, seeded once and reused from `--data-dir`; an older file is migrated, and the
migration, which fills the histograms from the calls, is timed). `--copies K` builds a second
file holding the calls K times (each copy with its latencies jittered by up to +-10%, so the
values differ; the triggers fill the histograms as the rows go in), e.g. 3,000,000 calls from
the 1,000,000 file. `--postgres` loads the same calls into a throwaway PostgreSQL cluster
(executemany in batches, through the triggers, then VACUUM ANALYZE).

For each view (last 30 days: unfiltered, one model and one prompt, one status; last 7 and 90
days; a user filter, which the histograms cannot answer), p50/p95/p99 of latency and TTFT by
`percentiles` (exact) and `timing_percentiles` (histograms), each the median of `--runs`
runs, their ratio, and the largest relative difference of the 6 figures. Also: the
histogram tables' rows and bytes, per call. Results: benchmarks/README.md.

Usage: python benchmarks/percentiles.py [--rows N] [--copies K] [--runs R] [--postgres]
           [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from _common import throwaway_postgres
from dashboard_queries import FILTER_MODEL, FILTER_PROMPT, cached_sqlite, load

from llmops.store import queries as q
from llmops.store.engine import check_schema, create_engine
from llmops.store.tables import CALLS

QUANTILES = (0.5, 0.95, 0.99)
HISTOGRAMS = ("llm_calls_daily_timing",)


def views(now: datetime) -> dict[str, q.Filters]:
    return {
        "30 days": q.Filters.last_days(30, now),
        "30 days, 1 model + 1 prompt": q.Filters.last_days(
            30, now, models=(FILTER_MODEL,), prompts=(FILTER_PROMPT,)
        ),
        "30 days, status error": q.Filters.last_days(30, now, statuses=("error",)),
        "7 days": q.Filters.last_days(7, now),
        "90 days": q.Filters.last_days(90, now),
        "30 days, 1 user (exact both ways)": q.Filters.last_days(30, now, users=("user-0001",)),
    }


def timed(call: Any, runs: int) -> tuple[float, Any]:
    call()  # warm the caches
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        result = call()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), result


def largest_error(found: list[list[float | None]], exact: list[list[float | None]]) -> float:
    worst = 0.0
    for got_row, exact_row in zip(found, exact, strict=True):
        for got, want in zip(got_row, exact_row, strict=True):
            if got is not None and want:
                worst = max(worst, abs(got - want) / abs(want))
    return worst


def measure(label: str, url: str, now: datetime, runs: int) -> None:
    engine = create_engine(url)
    columns = (CALLS.c.latency_ms, CALLS.c.ttft_ms)
    print(f"\n{label}, median of {runs} runs:\n")
    print("| view | calls | exact (s) | histograms (s) | ratio | largest error |")
    print("|---|---|---|---|---|---|")
    with engine.connect() as connection:
        for name, f in views(now).items():
            calls = connection.execute(sa.select(sa.func.count()).where(*f.where())).scalar_one()
            old, exact = timed(
                lambda f=f: q.percentiles(connection, columns, f.where(), QUANTILES), runs
            )
            new, found = timed(lambda f=f: q.timing_percentiles(connection, f, QUANTILES), runs)
            print(
                f"| {name} | {calls:,} | {old:.3f} | {new:.3f} | {old / new:.1f}x | "
                f"{largest_error(found, exact):.3%} |"
            )
        total = connection.execute(sa.select(sa.func.count()).select_from(CALLS)).scalar_one()
        print(f"\nHistogram tables ({total:,} calls):\n")
        for table in HISTOGRAMS:
            rows = connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
            if engine.dialect.name == "sqlite":
                size = connection.execute(
                    sa.text("SELECT sum(pgsize) FROM dbstat WHERE name IN (:t, :i)"),
                    {"t": table, "i": f"sqlite_autoindex_{table}_1"},
                ).scalar_one()
            else:
                size = connection.execute(
                    sa.text("SELECT pg_total_relation_size(:t)"), {"t": table}
                ).scalar_one()
            print(
                f"- `{table}`: {rows:,} rows, {size / 1e6:,.1f} MB "
                f"({size / total:,.1f} bytes per call)"
            )
    engine.dispose()
    sys.stdout.flush()


def copies(url: str, meta: dict[str, Any], k: int, data_dir: Path) -> tuple[str, dict[str, Any]]:
    """The calls of ``url`` K times in a file of their own (built once, then reused)."""
    source = Path(url.removeprefix("sqlite:///"))
    path = data_dir / f"{source.stem}-x{k}.db"
    meta_path = path.with_suffix(".json")
    target = f"sqlite:///{path}"
    if path.exists() and meta_path.exists():
        return target, {**json.loads(meta_path.read_text()), "reused": True}
    shutil.copyfile(source, path)
    engine = create_engine(target)
    names = [c.name for c in CALLS.columns]
    jittered = {
        "id": "id || '-' || :copy",
        "latency_ms": "latency_ms * (0.9 + abs(random() % 20001) / 100000.0)",
        "ttft_ms": "ttft_ms * (0.9 + abs(random() % 20001) / 100000.0)",
        **{n: "NULL" for n in ("chain_id", "chain_seq", "content_hash", "row_hash")},
    }
    select = ", ".join(jittered.get(n, n) for n in names)
    started = time.perf_counter()
    with engine.begin() as connection:
        for copy in range(2, k + 1):
            connection.execute(
                sa.text(
                    f"INSERT INTO llm_calls ({', '.join(names)}) SELECT {select} FROM llm_calls "
                    "WHERE id NOT LIKE '%-%-%-%-%-%'"
                ),
                {"copy": copy},
            )
    seconds = time.perf_counter() - started
    engine.dispose()
    built = {**meta, "calls": meta["calls"] * k, "copy_seconds": round(seconds, 1)}
    meta_path.write_text(json.dumps(built, indent=2))
    return target, {**built, "reused": False}


def to_postgres(sqlite_url: str, pg_url: str) -> float:
    """Copy every call into PostgreSQL in batches, through the triggers; seconds taken."""
    source, target = create_engine(sqlite_url), create_engine(pg_url)
    check_schema(target)
    started = time.perf_counter()
    with source.connect() as reading, target.begin() as writing:
        result = reading.execute(sa.select(CALLS)).mappings()
        while batch := result.fetchmany(10_000):
            writing.execute(CALLS.insert(), [dict(r) for r in batch])
    seconds = time.perf_counter() - started
    with target.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
    source.dispose()
    target.dispose()
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="calls to seed")
    parser.add_argument("--copies", type=int, default=1, help="the calls K times")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per function")
    parser.add_argument(
        "--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "llmops-bench"
    )
    parser.add_argument("--postgres", action="store_true", help="also a throwaway PostgreSQL")
    args = parser.parse_args()
    url, meta = cached_sqlite(args.data_dir, args.rows)
    now = datetime.fromisoformat(meta["now"])
    if args.copies > 1:
        url, meta = copies(url, meta, args.copies, args.data_dir)
        how = "reused" if meta["reused"] else f"built now in {meta['copy_seconds']} s"
        print(f"{meta['calls']:,} calls: the seeded ones {args.copies} times ({how})")
    print(f"SQLite file {url.removeprefix('sqlite:///')}: {meta['calls']:,} calls, now = {now}")
    print(f"Load average before: {load()}")
    measure(f"SQLite, {meta['calls']:,} calls", url, now, args.runs)
    if args.postgres:
        with throwaway_postgres() as server:
            pg_url = server.new_database("bench")
            seconds = to_postgres(url, pg_url)
            print(
                f"\nPostgreSQL 15 (throwaway cluster, fsync off): {meta['calls']:,} calls "
                f"copied in {seconds:,.0f} s through the triggers, then VACUUM ANALYZE"
            )
            measure(f"PostgreSQL, {meta['calls']:,} calls", pg_url, now, args.runs)
    print(f"\nLoad average after: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
