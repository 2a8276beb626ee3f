"""Audit verification: `llmops audit verify` walks the hash chains in linear time.

Seeds SQLite files with N chained calls (and their feedback) each, generated as in
benchmarks/dashboard_queries.py (RowMaker: 90 days, 8 models, prompts, users, tags, request
messages and responses) and chained exactly as the writer chains them
(`llmops.store.chain.Chains.seal` in the transaction that inserts each batch of 5,000 rows;
the rollup triggers run too). Files are kept in --data-dir (default /tmp/llmops-bench) and
reused. Then, for each size, alternately: `llmops.audit.verify.verify` over every row, and
the baseline, the same streamed SELECT of every row in chain order without any hashing
(what reading the rows costs by itself). Reports medians, rows per second and the ratio to
the baseline: equal rows/s across sizes is linear time.

Usage: python benchmarks/audit_verify.py [--sizes 250000 500000 1000000] [--runs 3]
           [--data-dir DIR] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlalchemy as sa
from dashboard_queries import RowMaker

from llmops.audit.verify import verify
from llmops.store.chain import Chains
from llmops.store.engine import check_schema, create_engine
from llmops.store.records import fitted, split_content, storable
from llmops.store.tables import CALL_CONTENT, CALLS, FEEDBACK

BATCH = 5_000
FORMAT = 3  # bump when the chain's hashing changes: cached files are then seeded again
NOW = datetime(2026, 12, 1, tzinfo=UTC)  # fixed: the same data every time


def seed(path: Path, rows: int) -> float:
    """Chained calls into a new SQLite file; returns the seconds it took."""
    engine = create_engine(f"sqlite:///{path}")
    check_schema(engine)
    chains = Chains()
    started = time.perf_counter()
    batch: dict[str, list[dict]] = {"call": [], "feedback": []}

    def store() -> None:
        with engine.begin() as connection:
            for kind, table in (("call", CALLS), ("feedback", FEEDBACK)):
                if batch[kind]:
                    chains.seal(connection, kind, batch[kind])
                    rows, content = batch[kind], []
                    if kind == "call":  # as the writer stores them (migration 0016)
                        rows, content = split_content(rows)
                    connection.execute(sa.insert(table), rows)
                    if content:
                        connection.execute(sa.insert(CALL_CONTENT), content)
        chains.commit()
        batch["call"], batch["feedback"] = [], []

    for kind, row in RowMaker(rows, NOW).rows():
        stored, _ = storable(kind, row)
        batch[kind].append(fitted(kind, stored))
        if len(batch["call"]) >= BATCH:
            store()
    store()
    engine.dispose()
    return time.perf_counter() - started


def read_all(engine: sa.Engine) -> int:
    """The baseline: every chained row, in chain order, streamed, not hashed."""
    count = 0
    with engine.connect() as connection:
        stream = connection.execution_options(stream_results=True, yield_per=5000)
        for table in (CALLS, FEEDBACK):
            query = sa.select(table).where(table.c.chain_id.is_not(None))
            for _ in stream.execute(query.order_by(table.c.chain_id, table.c.chain_seq)).mappings():
                count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[250_000, 500_000, 1_000_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "llmops-bench"
    )
    parser.add_argument("--quick", action="store_true", help="sizes 25,000 50,000 100,000")
    args = parser.parse_args()
    sizes = [25_000, 50_000, 100_000] if args.quick else args.sizes
    args.data_dir.mkdir(parents=True, exist_ok=True)
    print("| calls | rows (calls + feedback) | verify s | read only s | x read only | rows/s |")
    print("|---|---|---|---|---|---|")
    for size in sizes:
        path = args.data_dir / f"audit-v{FORMAT}-{size}.db"
        if not path.exists():
            partial = path.with_suffix(".partial")
            partial.unlink(missing_ok=True)
            took = seed(partial, size)
            partial.rename(path)
            print(f"(seeded {size:,} calls in {took:.0f} s)", file=sys.stderr)
        engine = create_engine(f"sqlite:///{path}")
        check_schema(engine, create=False)
        checked, baseline = [], []
        rows = 0
        for _ in range(args.runs):
            start = time.perf_counter()
            result = verify(engine)
            checked.append(time.perf_counter() - start)
            assert result.ok, result.breaks[:3]
            rows = sum(result.checked.values())
            start = time.perf_counter()
            assert read_all(engine) == rows
            baseline.append(time.perf_counter() - start)
        engine.dispose()
        v, b = statistics.median(checked), statistics.median(baseline)
        print(f"| {size:,} | {rows:,} | {v:.2f} | {b:.2f} | {v / b:.2f} | {rows / v:,.0f} |")
    print(f"\nLoad average after: {' / '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
