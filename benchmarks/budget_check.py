"""Blocking budgets: what the check adds to each call, with ten budgets configured.

Times what a Gateway adds on the app's call path for its budgets: ``BudgetGuard.admit``
(the estimate, then the ten leases checked in memory, with the rare database round trip
that extends a lease) and ``BudgetGuard.settle`` (the real cost replacing the estimate),
for calls that fall under every budget (a user, tags, a prompt-less model, the app
source). Against a SQLite file in a temporary folder (or ``--database-url``). Both arms run
interleaved in rounds in one process: the guard, and the same loop without it (building
the call only), so the difference is the budgets' cost. Goal: under 50 us per call.

Usage: python benchmarks/budget_check.py [--calls N] [--rounds R] [--database-url URL]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

from _common import bootstrap_median_diff, median
from sqlalchemy.engine import Engine

from llmops.config import Budget
from llmops.gateway.budgets import BudgetGuard
from llmops.gateway.recorder import Call
from llmops.pricing.prices import PriceBook, model_price
from llmops.store.engine import check_schema, create_engine

GOAL_US = 50.0
MODEL = "gpt-4o-mini"
MESSAGES = [
    {"role": "system", "content": "You answer questions about parcels, briefly."},
    {"role": "user", "content": "Where is my parcel? The order number is 1234."},
]
BUDGETS = [
    Budget(name="all-day", window="day", limit_usd=1e6, action="block"),
    Budget(name="all-week", window="week", limit_usd=1e6, action="block"),
    Budget(name="all-month", window="month", limit_usd=1e6, action="block"),
    Budget(name="per-user", window="day", limit_usd=1e5, action="block", scope={"user": "each"}),
    Budget(name="per-tag", window="day", limit_usd=1e5, action="block", scope={"tag": "each"}),
    Budget(name="model", window="day", limit_usd=1e5, action="block", scope={"model": MODEL}),
    Budget(name="app", window="month", limit_usd=1e6, action="block", scope={"source": "app"}),
    Budget(name="vip", window="day", limit_usd=1e5, action="block", scope={"user": "u7"}),
    Budget(name="batch", window="week", limit_usd=1e5, action="block", scope={"tag": "batch"}),
    Budget(name="models", window="month", limit_usd=1e6, action="block", scope={"model": "each"}),
]


def make_call(i: int) -> Call:
    user = f"u{i % 50}"
    return Call(str(uuid.uuid4()), MODEL, MESSAGES, {"max_tokens": 200}, None, user, None,
                ["batch", f"t{i % 5}"], None, None)  # fmt: skip


def engine_and_prices(database_url: str | None) -> tuple[Engine, PriceBook]:
    """The database (a SQLite file in a temporary folder unless ``database_url``), its schema
    made, and the price of MODEL."""
    folder = Path(tempfile.mkdtemp(prefix="llmops-bench-budgets-"))
    engine = create_engine(database_url or f"sqlite:///{folder / 'llmops.db'}")
    check_schema(engine)
    prices = PriceBook(
        {MODEL: model_price({"input_per_million": 0.15, "output_per_million": 0.6}, "bench")}
    )
    return engine, prices


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    engine, prices = engine_and_prices(args.database_url)
    guard = BudgetGuard(BUDGETS, lambda: engine, prices, source="app")
    row = {"id": "", "cost_usd": 0.00004}
    per_round = args.calls // args.rounds
    guarded: list[float] = []
    bare: list[float] = []

    def run_guarded(n: int, start: int) -> float:
        calls = [make_call(start + i) for i in range(n)]
        clock = time.perf_counter
        t0 = clock()
        for call in calls:
            if guard.admit(call) is not None:
                raise SystemExit("a call was refused: the limits are meant to be out of reach")
            row["id"] = call.id
            guard.settle("call", row)  # type: ignore[arg-type]
        return (clock() - t0) / n

    def run_bare(n: int, start: int) -> float:
        calls = [make_call(start + i) for i in range(n)]
        clock = time.perf_counter
        t0 = clock()
        for call in calls:
            row["id"] = call.id
        return (clock() - t0) / n

    run_guarded(2000, 0)  # warm-up: leases granted, prices resolved
    granted = dict(guard._leases)  # counted for the report
    for r in range(args.rounds):
        arms = [(guarded, run_guarded), (bare, run_bare)]
        for times, arm in arms if r % 2 == 0 else reversed(arms):
            times.append(arm(per_round, (r + 1) * per_round))
    guard.close()
    added = [(g - b) * 1e6 for g, b in zip(guarded, bare, strict=True)]
    low, high = bootstrap_median_diff([b * 1e6 for b in bare], [g * 1e6 for g in guarded])
    where = engine.url.render_as_string(hide_password=True)
    print(f"budgets: {len(BUDGETS)} blocking; calls: {per_round * args.rounds}; "
          f"leases held: {len(granted)}; database: {where}")  # fmt: skip
    print(f"guard admit+settle: {median(guarded) * 1e6:.1f} us/call; loop alone: "
          f"{median(bare) * 1e6:.2f} us/call")  # fmt: skip
    verdict = "met" if median(added) < GOAL_US else "NOT met"
    print(f"added per call: median {median(added):.1f} us (95% CI {low:.1f}..{high:.1f}); "
          f"goal < {GOAL_US:.0f} us: {verdict}")  # fmt: skip
    return 0 if median(added) < GOAL_US else 1


if __name__ == "__main__":
    sys.exit(main())
