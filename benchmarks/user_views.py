"""One user's view of the dashboard, for users from the heaviest to light ones, on a
PostgreSQL cluster (or SQLite file) that `dashboard_queries.py` seeded and kept: how a
filter on users scales with the user's calls (issue 18; migration 0021's busy user-days).

    python benchmarks/user_views.py --rows 10000000 --postgres --data-dir D [--runs 3]
    python benchmarks/user_views.py --rows 3000000 --data-dir D

Prints, per user, the calls of the default 30-day range and the seconds (median of
``--runs``) of the pages a filter on users slows most, and of their slowest functions.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import benchmarks.dashboard_queries as bench
from llmops.store import queries as q
from llmops.store.engine import HEAD_REVISION, create_engine, upgrade

USERS = ("user-0001", "user-0003", "user-0010", "user-0042", "user-0300")
PAGES = ("Overview", "Overview, split by tag", "Overview, split by key", "Prompts", "Feedback")
FUNCTIONS = ("overview", "daily_spend(tag)", "compare_versions", "feedback_distribution")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--data-dir", type=Path, default=Path("benchmarks/.data"))
    parser.add_argument("--postgres", action="store_true", help="the kept cluster, not SQLite")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if args.postgres:
        with bench.postgres_cluster(args.data_dir, args.rows, True) as (server, meta, _):
            if meta is None:
                raise SystemExit("no kept cluster: seed one with dashboard_queries.py first")
            run(server.url_for("bench"), datetime.fromisoformat(meta["now"]), args.runs)
    else:
        path = args.data_dir / f"llmops-{args.rows}-v{bench.DATA_FORMAT}.db"
        meta_path = path.with_suffix(".json")
        if not meta_path.exists():
            raise SystemExit(f"no seeded file {path}: seed it with dashboard_queries.py first")
        now = datetime.fromisoformat(bench.json.loads(meta_path.read_text())["now"])
        run(f"sqlite:///{path}", now, args.runs)


def run(url: str, now: datetime, runs: int) -> None:
    engine = create_engine(url)
    started = time.perf_counter()
    if upgrade(engine) != HEAD_REVISION:
        raise SystemExit("the database is not at llmops' schema")
    print(f"(schema at {HEAD_REVISION}: {time.perf_counter() - started:.1f} s)\n")
    first, last = now.date() - timedelta(days=29), now.date()
    print(f"| user | calls in 30 days | {' | '.join(PAGES)} | "
          f"{' | '.join(f'`{f}`' for f in FUNCTIONS)} |")  # fmt: skip
    print("|---" * (2 + len(PAGES) + len(FUNCTIONS)) + "|")
    for user in USERS:
        view = bench.View(user, q.Filters.days(first, last, users=(user,)))
        timing = bench.measure(engine, view, now, runs)
        cells = [f"{timing.pages[p]:.3f}" for p in PAGES]
        cells += [f"{timing.functions[f]:.3f}" for f in FUNCTIONS]
        print(f"| {user} | {timing.in_view:,} | {' | '.join(cells)} |", flush=True)
    engine.dispose()


if __name__ == "__main__":
    main()
