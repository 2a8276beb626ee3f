"""Helpers shared by the benchmarks: statistics, a throwaway PostgreSQL, row counts."""

from __future__ import annotations

import contextlib
import random
import statistics
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python benchmarks/x.py` puts only benchmarks/ on the path
    sys.path.insert(0, str(ROOT))


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def quartiles(values: Sequence[float]) -> tuple[float, float]:
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


def bootstrap_median_diff(
    a: Sequence[float], b: Sequence[float], *, resamples: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """95% interval of median(b) - median(a), resampling each sample with replacement."""
    rng = random.Random(seed)
    diffs = sorted(
        statistics.median(rng.choices(b, k=len(b))) - statistics.median(rng.choices(a, k=len(a)))
        for _ in range(resamples)
    )
    return diffs[int(0.025 * resamples)], diffs[int(0.975 * resamples) - 1]


def count_rows(url: str, table: str = "llm_calls") -> int:
    import sqlalchemy as sa

    from llmops.store.engine import create_engine

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[Any]:
    """A PostgreSQL cluster from tests/fixtures/postgres.py (fsync off), deleted at the end."""
    from tests.fixtures.postgres import PostgresServer, PostgresUnavailable, find_bindir

    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL server binaries (initdb, pg_ctl) not found")
    server = PostgresServer(bindir)
    try:
        try:
            server.start()
        except PostgresUnavailable as exc:
            raise SystemExit(f"PostgreSQL did not start: {exc}") from None
        yield server
    finally:
        server.destroy()
