"""Prometheus scrape: how long `llmops metrics` takes to answer on 1,000,000 stored calls.

Uses the SQLite file of benchmarks/dashboard_queries.py (N calls over 90 days, seeded
through the Writer, so the rollup triggers ran; cached in --data-dir and shared with that
benchmark), with its ten budgets, and the seeding moment as "now" (so the 5-minute latency
window holds the newest calls). Measures, median of --runs:

  - each query of one database read: call_totals (all-time totals from the rollups),
    recent_latency (5 minutes; also 1 hour and 1 day, to show what a busier window costs,
    bounded by MAX_RECENT_CALLS), budget_status (the ten budgets);
  - the first scrape of an exporter: GET /metrics through the real HTTP server, its first
    read sums every rollup row (timed on a new exporter each run, server start excluded);
  - later scrapes with the cache off, so every scrape reads the database: today's rollup
    rows and the signature of the past days (what Prometheus sees once per cache period);
  - a cached scrape (cache on, figures already read);
  - a scrape storm: 200 GETs from 16 threads with the default 5 s cache: wall time and how
    many database reads they caused (should be 1).

Goal: every scrape well under 1 s. `--postgres` repeats it on a throwaway PostgreSQL
seeded with the same rows (slow to seed). Results go in the report, not in this file.

Usage: python benchmarks/metrics_scrape.py [--rows N | --quick] [--runs R] [--postgres]
           [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import _common  # noqa: F401  (puts the project root on sys.path)
from dashboard_queries import BUDGETS, cached_sqlite, load, seed

from llmops.control.metrics import (
    LATENCY_WINDOW,
    QUANTILES,
    SpendCollector,
    make_registry,
    serve,
)
from llmops.store import queries as q
from llmops.store.engine import create_engine

GOAL_S = 1.0
STORM_REQUESTS, STORM_THREADS = 200, 16


def timed(call: Callable[[], Any], runs: int) -> tuple[float, Any]:
    """Median seconds of ``runs`` calls (after one warm-up) and the last result."""
    result = call()
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        result = call()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), result


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 (http://127.0.0.1)
        body: bytes = response.read()
        return body


def first_scrapes(engine: Any, now: datetime, runs: int) -> tuple[float, bytes]:
    """Median seconds of GET /metrics from a new exporter each time (its first read sums
    every rollup row); starting and stopping the server are not timed."""
    seconds, body = [], b""
    for _ in range(runs):
        collector = SpendCollector(engine, BUDGETS, cache_seconds=0, clock=lambda: now)
        server = serve(make_registry(collector), "127.0.0.1", 0)
        try:
            started = time.perf_counter()
            body = get(server.url)
            seconds.append(time.perf_counter() - started)
        finally:
            server.close()
    return statistics.median(seconds), body


def run_backend(label: str, url: str, now: datetime, runs: int) -> None:
    engine = create_engine(url)
    try:
        print(f"\n### {label}\n")
        recent = (now - timedelta(days=29)).date()
        seconds, totals = timed(lambda: q.call_totals(engine, recent), runs)
        print(f"call_totals (all time, rollups): {seconds * 1000:.1f} ms, {len(totals):,} groups")
        models = {t.model for t in totals}
        for window in (LATENCY_WINDOW, timedelta(hours=1), timedelta(days=1)):
            seconds, rows = timed(
                lambda w=window: q.recent_latency(engine, now - w, now, QUANTILES, models), runs
            )
            calls = sum(r.latency_calls for r in rows)
            print(f"recent_latency, last {window}: {seconds * 1000:.1f} ms ({calls:,} calls)")
        seconds, statuses = timed(lambda: q.budget_status(engine, BUDGETS, now=now), runs)
        print(f"budget_status, {len(BUDGETS)} budgets: {seconds * 1000:.1f} ms, "
              f"{len(statuses)} rows")  # fmt: skip

        seconds, body = first_scrapes(engine, now, runs)
        lines = [line for line in body.decode().splitlines() if not line.startswith("#")]
        print(f"\nFirst scrape of an exporter (reads every rollup row): {seconds:.3f} s median; "
              f"{len(lines)} series, {len(body) / 1000:.1f} kB "
              f"({'under' if seconds < GOAL_S else 'OVER'} the {GOAL_S:g} s goal)")  # fmt: skip
        seconds, _ = timed(lambda: q.rollup_signature(engine, now.date()), runs)
        print(f"rollup_signature (the past days' sums): {seconds * 1000:.1f} ms")
        cold = SpendCollector(engine, BUDGETS, cache_seconds=0, clock=lambda: now)
        server = serve(make_registry(cold), "127.0.0.1", 0)
        try:
            seconds, body = timed(lambda: get(server.url), runs)
        finally:
            server.close()
        print(f"Later scrapes with the cache off (every scrape reads the database: today's "
              f"rows, the past's signature): {seconds:.3f} s median "
              f"({'under' if seconds < GOAL_S else 'OVER'} the {GOAL_S:g} s goal)")  # fmt: skip

        warm = SpendCollector(engine, BUDGETS, clock=lambda: now)  # the default 5 s cache
        server = serve(make_registry(warm), "127.0.0.1", 0)
        try:
            get(server.url)  # the one read
            seconds, _ = timed(lambda: get(server.url), runs)
            print(f"Cached scrape (within the {warm.cache_seconds:g} s cache): "
                  f"{seconds * 1000:.1f} ms median")  # fmt: skip
            storm = SpendCollector(engine, BUDGETS, clock=lambda: now)
            storm_server = serve(make_registry(storm), "127.0.0.1", 0)
            try:
                started = time.perf_counter()
                per_thread = STORM_REQUESTS // STORM_THREADS
                threads = [
                    threading.Thread(
                        target=lambda: [get(storm_server.url) for _ in range(per_thread)]
                    )
                    for _ in range(STORM_THREADS)
                ]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                wall = time.perf_counter() - started
            finally:
                storm_server.close()
            print(f"Scrape storm: {per_thread * STORM_THREADS} GETs from {STORM_THREADS} "
                  f"threads in {wall:.2f} s, {storm.reads} database read(s)")  # fmt: skip
        finally:
            server.close()
    finally:
        engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="calls to seed")
    parser.add_argument("--quick", action="store_true", help="100,000 calls")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per figure")
    parser.add_argument(
        "--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "llmops-bench"
    )
    parser.add_argument("--postgres", action="store_true", help="also a throwaway PostgreSQL")
    args = parser.parse_args()
    if args.quick:
        args.rows = 100_000
    url, meta = cached_sqlite(args.data_dir, args.rows)
    now = datetime.fromisoformat(meta["now"])
    how = "reused" if meta["reused"] else "seeded now"
    print(f"SQLite file {url.removeprefix('sqlite:///')} ({how}): {meta['calls']:,} calls "
          f"over 90 days; now = {meta['now']}; load average before: {load()}")  # fmt: skip
    run_backend(f"SQLite, {meta['calls']:,} calls", url, now, args.runs)
    if args.postgres:
        from _common import throwaway_postgres

        with throwaway_postgres() as server, tempfile.TemporaryDirectory() as spool:
            pg_url = server.new_database("bench")
            print(f"\nSeeding {args.rows:,} calls into PostgreSQL ...", file=sys.stderr)
            pg_meta = seed(pg_url, args.rows, now, Path(spool))
            engine = create_engine(pg_url)
            with engine.connect() as connection:
                connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                    "VACUUM ANALYZE"
                )
            engine.dispose()
            run_backend(f"PostgreSQL 15, {pg_meta['calls']:,} calls", pg_url, now, args.runs)
    print(f"\nLoad average after: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
