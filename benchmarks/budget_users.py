"""Blocking budgets per user: how long calls wait while the guard publishes its leases.

An ``each: user`` budget holds one lease per user seen in its window. The guard's thread
publishes them (``BudgetGuard.publish``, every second): this times what that does to
calls. First ``--users`` leases are granted (one call per user); then calls of one steady
user are admitted and settled in a loop for ``--seconds``, while the guard's own thread
publishes as it does in an app, and each admission's wait is timed. ``--all-due`` makes
every lease due at every publication (the worst second: without it, leases that did not
change are renewed every ``KEEP_ALIVE_EVERY`` seconds only). Against a SQLite file in a
temporary folder (or ``--database-url``).

Usage: python benchmarks/budget_users.py [--users N] [--seconds S] [--all-due] [--database-url URL]
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid

from budget_check import MODEL, engine_and_prices

from llmops.config import Budget
from llmops.gateway import budgets
from llmops.gateway.budgets import BudgetGuard
from llmops.gateway.recorder import Call

MESSAGES = [{"role": "user", "content": "Where is my parcel? The order number is 1234."}]
BUDGET = Budget(
    name="per-user", window="day", limit_usd=1e5, action="block", scope={"user": "each"}
)


def make_call(user: str) -> Call:
    return Call(str(uuid.uuid4()), MODEL, MESSAGES, {"max_tokens": 200}, None, user, None,
                None, None, None)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--all-due", action="store_true")
    parser.add_argument("--database-url")
    args = parser.parse_args()
    engine, prices = engine_and_prices(args.database_url)
    if args.all_due:
        budgets.KEEP_ALIVE_EVERY = 0.0  # type: ignore[attr-defined,unused-ignore]
    guard = BudgetGuard([BUDGET], lambda: engine, prices, source="app")
    row = {"id": "", "cost_usd": 0.00004}
    started = time.perf_counter()
    for i in range(args.users):
        call = make_call(f"user-{i:05d}")
        if guard.admit(call) is not None:
            raise SystemExit("a call was refused: the limit is meant to be out of reach")
    granting = time.perf_counter() - started
    t0 = time.perf_counter()
    guard.publish()
    first = time.perf_counter() - t0
    waits: list[float] = []
    clock = time.perf_counter
    end = clock() + args.seconds
    while clock() < end:
        call = make_call("steady")
        t = clock()
        guard.admit(call)
        waits.append(clock() - t)
        row["id"] = call.id
        guard.settle("call", row)  # type: ignore[arg-type]
    guard.close()
    waits.sort()
    ms = [w * 1000 for w in waits]
    where = engine.url.render_as_string(hide_password=True)
    print(f"users: {args.users} (granted in {granting:.1f} s); all due: {args.all_due}; "
          f"database: {where}")  # fmt: skip
    print(f"one publication of every lease: {first * 1000:.0f} ms")
    print(f"steady user's admissions: {len(ms)} in {args.seconds:.0f} s; wait median "
          f"{ms[len(ms) // 2]:.3f} ms, p99 {ms[int(len(ms) * 0.99)]:.3f} ms, "
          f"p99.9 {ms[int(len(ms) * 0.999)]:.3f} ms, max {ms[-1]:.1f} ms")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
