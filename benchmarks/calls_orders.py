"""The Calls page in every sort order under several filters, on a database seeded by
benchmarks/dashboard_queries.py (its kept SQLite file, or its kept PostgreSQL cluster
started with `--keep-postgres`): `calls_page` alone, the median of `--runs` warm runs, and
the ids of each page, written to `--out` so that a run of another version of llmops (an
older checkout on PYTHONPATH, before a migration) can be checked to give the same pages
(`--compare FILE`).

Usage: python benchmarks/calls_orders.py URL NOW [--runs 3] [--out FILE] [--compare FILE]
  URL: sqlite:////tmp/llmops-bench/llmops-3000000-v2.db, or the cluster's URL (database
  "bench"); NOW: the "now" of the seeding (in DATA_DIR/llmops-ROWS-v2[-pg].json).
Results: benchmarks/README.md ("After migration 0017").
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import datetime
from pathlib import Path

from dashboard_queries import FILTER_MODEL, FILTER_PROMPT

from llmops.store import queries as q
from llmops.store.engine import create_engine

FILTERS = {
    "no filter": {},
    f"{FILTER_MODEL} + {FILTER_PROMPT}": {"models": (FILTER_MODEL,), "prompts": (FILTER_PROMPT,)},
    f"{FILTER_PROMPT} only": {"prompts": (FILTER_PROMPT,)},
    "status error": {"statuses": ("error",)},
    "one user": {"users": ("user-0042",)},
}
ORDERS = ("newest", "cost", "latency", "tokens")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("now", type=datetime.fromisoformat)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--compare", type=Path, help="a --out file of another run")
    args = parser.parse_args()
    engine = create_engine(args.url)
    before = json.loads(args.compare.read_text()) if args.compare else {}
    found: dict[str, dict[str, object]] = {}
    print(f"{'filter, order':48} {'s':>7} {'calls':>10}" + ("  same page" if before else ""))
    for label, kwargs in FILTERS.items():
        filters = q.Filters.last_days(args.days, args.now, **kwargs)  # type: ignore[arg-type]
        for order in ORDERS:
            times = []
            for _ in range(args.runs + 1):  # the first run warms the cache
                start = time.perf_counter()
                rows, total = q.calls_page(engine, filters, order=order)
                times.append(time.perf_counter() - start)
            name = f"{label}, {order}"
            found[name] = {"s": statistics.median(times[1:]), "total": total}
            found[name]["ids"] = [r["id"] for r in rows]
            line = f"{name:48} {found[name]['s']:7.3f} {total:10,}"
            if name in before:
                same = before[name]["ids"] == found[name]["ids"]
                line += f"  {'yes' if same else 'NO'} (was {before[name]['s']:.3f} s)"
            print(line, flush=True)
    if args.out:
        args.out.write_text(json.dumps(found))


if __name__ == "__main__":
    main()
