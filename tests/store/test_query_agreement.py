"""A differential, model-based test: every aggregate the dashboard and the CLI show agrees
with what the stored rows say.

For each seed a random sequence of real operations runs through the real code paths (the
Writer's puts of calls and feedback, re-pricing with ``recompute_costs``, ``prune`` of
content and of calls, late calls for old days, a user crossing the busy user-day
threshold, monthly partitions created after their rows, a score replaced by SQL as the
triggers allow, stored calls put again). Then, for a grid of filters and ranges, each
public query's answer is compared with a brute-force computation here, in Python, over the
rows read back with ``SELECT *`` from ``llm_calls`` and ``feedback``.

The expected figures follow the README's promises only:

- "the exact same figures as reading the calls": every sum, count and split;
- latency/TTFT percentiles: a value of a whole UTC day read from a histogram stands for
  its bucket's geometric midpoint (at most sqrt(1.02) away; under 0.001 ms as 0, over 1e9
  ms as 1e9 ms), so the figure lies between the percentiles of the values moved down and
  up by that factor ("within 1%"); exact for partial days, and for users filtered with a
  model, status or source;
- ``llmops db prune`` keeps the rollups of the days it prunes: figures of whole pruned days
  keep the pruned calls (the ledger kept here: every row ever read back, with its last
  values), figures read from the calls (partial days, alerts, the Calls page's rows, the
  approximately priced calls, /metrics' percentiles) lose them; under a filter on users
  only the spend figures keep them, the rest keep the busy user-days' only.

Failures are collected and reported together, grouped by query (arguments, expected, got),
after the operations that led to them; ``-k 'sqlite and seed2'`` replays one scenario.

Sums of costs are compared to float rounding (``ABS``): the rollups add each change as
``-old + new``, so a re-priced or pruned-around sum keeps a residue of about 1e-16 of the
largest sum it held (README, "Daily rollups"). Three defects this test found were fixed on
2026-12-06: a virtual key's budget summed the calls, not the key rollup (a prune inside
its window lowered its spend); ``blocked_by_day`` under a filter on users dropped the
pruned days; and a residue of -2.8e-17 read "-$0.00".
"""

from __future__ import annotations

import math
import random
import uuid
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, timezone
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from llmops.audit.retention import prune
from llmops.config import Budget
from llmops.intervals import mean_interval
from llmops.pricing.prices import ModelPrice, PriceBook
from llmops.pricing.recompute import recompute_costs
from llmops.store import partitions
from llmops.store.engine import check_schema, create_engine
from llmops.store.queries import alerts as alert_queries
from llmops.store.queries import audit as audit_queries
from llmops.store.queries import budgets as budget_queries
from llmops.store.queries import calls as call_queries
from llmops.store.queries import metrics as metric_queries
from llmops.store.queries import prompts as prompt_queries
from llmops.store.queries import rollups as rollup_queries
from llmops.store.queries import spend as spend_queries
from llmops.store.queries import timing as timing_queries
from llmops.store.queries.filters import Filters
from llmops.store.tables import BUSY_USER_DAYS, CALLS, FEEDBACK
from llmops.store.writer import Writer

# -- documented constants (README: "What is recorded", "Databases") ------------------------

BUSY_CALLS = 1000  # a user's calls in a UTC day that make it busy (SQLite: 999 or 1000)
BUSY_USER_BYTES = 128  # longer user ids are never marked
SQRT_GAMMA = math.sqrt(1.02)  # a histogram value is at most this factor from its midpoint
ZERO_BELOW_MS = 0.001
TOP_MS = 1e9
OTHER = "(other)"
NONE = "(none)"

# Sums in another order: within REL; the rollups' residues of -old + new: within ABS (USD;
# this test's largest sums are about $1.3M, whose float rounding is about 2e-10).
REL, ABS = 1e-9, 1e-9


@dataclass
class Scenario:
    seed: int
    now: datetime  # the test's "now": today is its UTC day
    busy_user: str | None  # the user who makes 1,000+ calls on busy days
    busy_offsets: tuple[int, ...]  # days before today of those busy days
    prune_calls_days: int
    prune_content_days: int
    partitions_late: bool  # PostgreSQL: months' partitions made after their rows
    prune_again: bool  # a second prune of calls after the late calls
    knobs: dict[str, Any] = field(default_factory=dict)  # the queries' module constants


SCENARIOS = [
    Scenario(
        1, datetime(2026, 3, 4, 13, 37, 11, 123456, tzinfo=UTC), "u1", (0,), 30, 9,
        partitions_late=False, prune_again=False,
        knobs={"QUIET_RUNS": 30, "SEEK_DAYS": 400, "PROBE_CALLS": 10_000},
    ),
    Scenario(
        2, datetime(2026, 6, 1, 0, 0, 0, tzinfo=UTC), "ü-ser ✓", (3, 12), 10, 5,
        partitions_late=True, prune_again=True,
        knobs={"QUIET_RUNS": 0, "SEEK_DAYS": 0, "PROBE_CALLS": 5},
    ),
    Scenario(
        3, datetime(2026, 10, 18, 8, 5, 0, tzinfo=UTC), "é" * 100, (6,), 14, 20,
        partitions_late=False, prune_again=True,
        knobs={"QUIET_RUNS": 1, "SEEK_DAYS": 3, "PROBE_CALLS": 40},
    ),
]  # fmt: skip

MODELS = ["gpt-4o-mini", "m-custom", "m-unknown", "Odd/model ü"]
PROMPTS: dict[str | None, list[str | None]] = {
    None: [None],
    "support/answer": ["aaaaaaaaaaaa", "bbbbbbbbbbbb", None],
    "extract/ticket": ["cccccccccccc"],
}
COMMITS = [None, "c" * 40, "d" * 40]
USERS = [None, "", "u1", "u2", "ü-ser ✓", NONE, "evil\u202eyppah", " ", "é" * 100]
TAGS = [None, [], ["web"], ["web", "web"], ["eu", "web"], ["", "x"], ["x", "eu", "web"], [None, 5]]
KEYS = [None, "team-a", "team-b"]
PRICES = PriceBook({"m-custom": ModelPrice(input_per_million=3.0, output_per_million=12.0)})


def midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, UTC)


# -- the operations ------------------------------------------------------------------------


class World:
    """The database, the writer, the operations run so far and the ledger: every call and
    feedback row ever read back, with its last values, and which are still stored."""

    def __init__(self, engine: sa.Engine, spool: Path, scenario: Scenario) -> None:
        self.engine = engine
        self.s = scenario
        self.rng = random.Random(scenario.seed)
        self.writer = Writer(lambda: engine, spool, retry_min=0.05, retry_max=0.2)
        self.today = scenario.now.date()
        self.log: list[str] = []
        self.calls: dict[str, dict[str, Any]] = {}
        self.feedback: dict[str, dict[str, Any]] = {}
        self.stored_calls: set[str] = set()
        self.stored_feedback: set[str] = set()
        self.dirty = False

    # the writer's path -------------------------------------------------------------------

    def put_calls(self, rows: list[dict[str, Any]], note: str) -> None:
        for row in rows:
            self.writer.put("call", row)
        self._flush(f"put {len(rows)} calls: {note}")

    def put_feedback(self, rows: list[dict[str, Any]], note: str) -> None:
        for row in rows:
            self.writer.put("feedback", row)
        self._flush(f"put {len(rows)} feedback rows: {note}")

    def _flush(self, note: str) -> None:
        assert self.writer.flush(60), note
        assert self.writer.stats.rejected == 0, (note, self.writer.last_error)
        self.log.append(note)
        self.dirty = True

    def refresh(self) -> None:
        """Read every row back (``SELECT *``) into the ledger."""
        self.dirty = False
        with self.engine.connect() as connection:
            calls = [dict(r) for r in connection.execute(sa.select(CALLS)).mappings()]
            feedback = [dict(r) for r in connection.execute(sa.select(FEEDBACK)).mappings()]
        for row in calls:
            row["created_at"] = row["created_at"].astimezone(UTC)
            row["day"] = row["created_at"].date()
            self.calls[row["id"]] = row
        for row in feedback:
            row["created_at"] = row["created_at"].astimezone(UTC)
            self.feedback[row["id"]] = row
        self.stored_calls = {r["id"] for r in calls}
        self.stored_feedback = {r["id"] for r in feedback}
        self.by_call: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in self.feedback.values():
            self.by_call[row["call_id"]].append(row)

    # random rows -------------------------------------------------------------------------

    def when(self, offset: int | None = None) -> datetime:
        """A moment of a day ``offset`` days before today: any time, midnight exactly, the
        last microsecond, later today than now (a clock ahead), in another time zone."""
        rng = self.rng
        if offset is None:
            offset = rng.choice([0, 0, 0, rng.randrange(0, 41)] + [rng.randrange(1, 41)] * 4)
        day = midnight(self.today - timedelta(days=offset))
        kind = rng.random()
        if kind < 0.1:
            moment = day
        elif kind < 0.15:
            moment = day + timedelta(days=1) - timedelta(microseconds=1)
        else:
            moment = day + timedelta(microseconds=rng.randrange(0, 86_400_000_000))
        if offset == 0 and moment > self.s.now and rng.random() < 0.8:
            moment = day + (self.s.now - day) * rng.random()  # mostly before now
        if rng.random() < 0.15:
            moment = moment.astimezone(timezone(timedelta(hours=rng.choice([-7, 5.5, 14]))))
        return moment

    def call(self, offset: int | None = None, **fixed: Any) -> dict[str, Any]:
        rng = self.rng
        prompt = rng.choice(list(PROMPTS))
        status = rng.choice(["ok"] * 6 + ["error", "cancelled", "blocked"])
        cost_kind = rng.choice(["none", "zero", "normal", "normal", "normal", "tiny", "large"])
        cost = {
            "none": None, "zero": 0.0, "normal": rng.uniform(1e-4, 2e-2),
            "tiny": rng.choice([1e-12, 3e-9]), "large": rng.uniform(1e3, 5e4),
        }[cost_kind]  # fmt: skip
        cost_status = (
            "unpriced"
            if cost is None
            else rng.choice(["priced", "priced", "custom", "approximate"])
        )
        if status == "blocked":
            cost, cost_status = 0.0, "priced"

        def tokens() -> int | None:
            return rng.choice([None, 0, rng.randrange(1, 5000), rng.randrange(1, 5000),
                               2**31 - 1, 2**31 + 5])  # fmt: skip

        def timing(absent: float) -> float | None:
            if rng.random() < absent:
                return None
            return rng.choice([
                0.0, -3.0, 0.0005, 0.002, rng.lognormvariate(6, 1.2), rng.lognormvariate(6, 1.2),
                rng.lognormvariate(6, 1.2), rng.uniform(1, 100), 5e9, 1e12, math.nan, math.inf,
            ])  # fmt: skip

        row = {
            "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "created_at": self.when(offset),
            "source": rng.choice(["app", "app", "eval"]),
            "prompt_name": prompt,
            "prompt_version": rng.choice(PROMPTS[prompt]),
            "git_commit": rng.choice(COMMITS),
            "model": rng.choice(MODELS),
            "provider": "openai",
            "status": status,
            "error_type": rng.choice([None, "RateLimitError", "Timeout"])
            if status == "error"
            else None,
            "error_message": None,
            "prompt_tokens": tokens(),
            "completion_tokens": tokens(),
            "cached_tokens": None,
            "cache_write_tokens": None,
            "reasoning_tokens": None,
            "tokens_estimated": rng.random() < 0.15,
            "cost_usd": cost,
            "cost_status": cost_status,
            "price_source": "test",
            "latency_ms": timing(0.15),
            "ttft_ms": timing(0.6),
            "user_id": rng.choice(USERS),
            "session_id": rng.choice([None, "s-1", "s-2"]),
            "tags": rng.choice(TAGS),
            "metadata": None,
            "request": {"messages": [{"role": "user", "content": "hi"}], "params": {}},
            "response_text": "hello",
            "usage_details": None,
            "api_key": rng.choice(KEYS),
        }
        row.update(fixed)
        return row

    def feedback_for(self, call_ids: Sequence[str]) -> list[dict[str, Any]]:
        rng = self.rng
        rows = []
        for call_id in call_ids:
            call = self.calls[call_id]
            name = rng.choice(["rating", "rating", "thumbs", "odd name ✓"])
            score = {
                "rating": rng.choice([1.0, 2.0, 4.0, 5.0]),
                "thumbs": rng.choice([0.0, 1.0]),
                "odd name ✓": rng.choice([-1.0, 0.5, 1e6, 0.0]),
            }[name]
            # mostly after the call, sometimes before it (another clock, up to 12 hours)
            later = rng.choice([rng.uniform(-43_200, 0), rng.uniform(0, 5 * 86_400)])
            given = call["created_at"] + timedelta(seconds=later)
            rows.append({
                "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "call_id": call_id,
                "created_at": given,
                "name": name,
                "score": score,
                "comment": rng.choice([None, None, "fine", "=SUM(1)"]),
                "user_id": rng.choice([None, "rater"]),
            })  # fmt: skip
        return rows

    # the scenario ------------------------------------------------------------------------

    def run(self) -> None:
        rng, s = self.rng, self.s
        if self.engine.dialect.name == "postgresql" and not s.partitions_late:
            months = {(self.today - timedelta(days=d)).timetuple()[:2] for d in range(0, 70)}
            partitions.ensure_partitions(self.engine, now=s.now, months=months)
            self.log.append("monthly partitions made for every month of the data")
        self.put_calls([self.call() for _ in range(360)], "random calls over 40 days")
        # a busy user-day: calls before the threshold, their feedback, then the rest
        busy = [
            self.call(offset, user_id=s.busy_user)
            for offset in s.busy_offsets
            for _ in range(BUSY_CALLS + rng.randrange(5, 40))
        ]
        first = busy[: len(busy) // 2]
        self.put_calls(first, f"first half of the busy calls of {s.busy_user!r}")
        self.put_feedback(self.feedback_for(self.pick(80)), "feedback on random calls")
        self.put_calls(busy[len(busy) // 2 :], "second half of the busy calls")
        self.put_feedback(self.feedback_for(self.pick(80)), "feedback on random calls")
        self.replace_scores()
        again = [self.calls[i] for i in self.pick(20)]
        self.put_calls([self.as_put(row) for row in again], "20 stored calls put again")
        self.reprice()
        if self.engine.dialect.name == "postgresql" and s.partitions_late:
            months = {(self.today - timedelta(days=d)).timetuple()[:2] for d in range(0, 70)}
            partitions.ensure_partitions(self.engine, now=s.now, months=months)
            self.log.append("monthly partitions made after their rows (moved from DEFAULT)")
        self.prune_content()
        self.prune_calls()
        late = [self.call(rng.randrange(1, 41)) for _ in range(40)]
        late += [self.call(d, user_id=s.busy_user) for d in s.busy_offsets if d for _ in range(3)]
        self.put_calls(late, "late calls for old days (pruned ones, busy ones too)")
        self.refresh()
        noted = [c["id"] for c in late[:15] + late[40:]]
        self.put_feedback(self.feedback_for(noted), "feedback on late calls")
        self.put_calls([self.call(0) for _ in range(30)], "more calls today")
        self.reprice(allow_unpriced=True)
        if s.prune_again:  # the late calls of pruned days go, their days' figures stay
            self.prune_calls()
            self.put_calls([self.call(rng.randrange(1, 41)) for _ in range(10)], "late calls")
        self.put_feedback(self.feedback_for(self.pick(40)), "feedback on random calls")
        self.refresh()

    @staticmethod
    def as_put(row: dict[str, Any]) -> dict[str, Any]:
        """A stored call as the writer got it (a journal replayed, a record put twice)."""
        put = {k: v for k, v in row.items() if k not in ("day", "params", "chain_id",
               "chain_seq", "content_hash", "row_hash")}  # fmt: skip
        put["metadata"] = put.pop("metadata", None)
        put["request"], put["response_text"] = {"messages": [], "params": {}}, "hello"
        return put

    def pick(self, n: int) -> list[str]:
        if self.dirty:
            self.refresh()
        stored = sorted(self.stored_calls)
        return [self.rng.choice(stored) for _ in range(n)]

    def replace_scores(self) -> None:
        """A score replaced: a row put again under its id (the writer keeps the first), and
        scores changed by SQL (an UPDATE, which the triggers follow)."""
        self.refresh()
        ids = sorted(self.stored_feedback)
        again = []
        for feedback_id in self.rng.sample(ids, 5):
            row = {
                k: v
                for k, v in self.feedback[feedback_id].items()
                if k in ("id", "call_id", "created_at", "name", "comment", "user_id")
            }
            again.append({**row, "score": 3.0})
        self.put_feedback(again, "5 feedback rows put again with another score")
        changed = self.rng.sample(ids, 8)
        with self.engine.begin() as connection:
            for i, feedback_id in enumerate(changed):
                values: dict[str, Any] = {"score": float(i % 5)}
                if i % 3 == 0:
                    values["name"] = "rating"
                connection.execute(
                    sa.update(FEEDBACK).where(FEEDBACK.c.id == feedback_id).values(**values)
                )
        self.log.append(f"8 feedback scores replaced by SQL UPDATE: {changed}")
        self.dirty = True

    def reprice(self, allow_unpriced: bool = False) -> None:
        since = midnight(self.today - timedelta(days=self.rng.randrange(5, 40)))
        until = self.s.now + timedelta(days=1)
        report = recompute_costs(
            self.engine, PRICES, since=since, until=until, allow_unpriced=allow_unpriced
        )
        self.log.append(
            f"recompute_costs(since={since:%Y-%m-%d}, allow_unpriced={allow_unpriced}): "
            f"{report.changed} changed"
        )
        self.dirty = True

    def prune_content(self) -> None:
        self.refresh()  # the ledger keeps what a prune removes
        report = prune(self.engine, content_days=self.s.prune_content_days, now=self.s.now)
        self.log.append(f"prune(content_days={self.s.prune_content_days}): {report.rows} rows")
        self.refresh()

    def prune_calls(self) -> None:
        self.refresh()
        report = prune(self.engine, calls_days=self.s.prune_calls_days, force=True, now=self.s.now)
        self.log.append(
            f"prune(calls_days={self.s.prune_calls_days}, force=True): {report.calls_removed}"
            f" calls, {report.feedback_removed} feedback, {report.partitions_dropped}"
        )
        self.refresh()


# -- the reference: which rows a figure covers ---------------------------------------------


def matches(row: dict[str, Any], f: Filters) -> bool:
    """The README's filters: equality, '' (an empty value) for none."""
    for column, values in (
        ("model", f.models), ("prompt_name", f.prompts), ("prompt_version", f.versions),
        ("user_id", f.users), ("status", f.statuses), ("source", f.sources),
    ):  # fmt: skip
        if values and (row[column] or "") not in values:
            return False
    return True


class Reference:
    def __init__(self, world: World) -> None:
        self.w = world
        self.calls = sorted(world.calls.values(), key=lambda r: (r["created_at"], r["id"]))
        self.times = [r["created_at"] for r in self.calls]
        self.stored = world.stored_calls
        self.counts = Counter((r["user_id"], r["day"]) for r in self.calls)
        self.busy = {
            key
            for key, n in self.counts.items()
            if n >= BUSY_CALLS and key[0] and len(key[0].encode()) <= BUSY_USER_BYTES
        }
        self._cache: dict[tuple[str, Filters], list[dict[str, Any]]] = {}

    def in_range(self, f: Filters) -> list[dict[str, Any]]:
        key = ("range", f)
        if key not in self._cache:
            start, end = f.start.astimezone(UTC), f.end.astimezone(UTC)
            rows = self.calls[bisect_left(self.times, start) : bisect_left(self.times, end)]
            self._cache[key] = [r for r in rows if matches(r, f)]
        return self._cache[key]

    def _whole(self, f: Filters) -> tuple[date, date]:
        """The whole UTC days [first, last) of the range."""
        start, end = f.start.astimezone(UTC), f.end.astimezone(UTC)
        first = start.date() if start == midnight(start.date()) else start.date() + timedelta(1)
        return first, end.date()

    def spend(self, f: Filters) -> list[dict[str, Any]]:
        """The calls of spend figures: whole days from the rollups (pruned calls too),
        partial days from the calls."""
        key = ("spend", f)
        if key not in self._cache:
            first, last = self._whole(f)
            self._cache[key] = [
                r for r in self.in_range(f) if first <= r["day"] < last or r["id"] in self.stored
            ]
        return self._cache[key]

    def other(self, f: Filters) -> list[dict[str, Any]]:
        """The calls of the other figures: as spend, but under a filter on users a pruned
        call counts only on a busy user-day."""
        if not f.users:
            return self.spend(f)
        key = ("other", f)
        if key not in self._cache:
            first, last = self._whole(f)
            self._cache[key] = [
                r
                for r in self.in_range(f)
                if r["id"] in self.stored or (first <= r["day"] < last and self.is_busy(r))
            ]
        return self._cache[key]

    def raw(self, f: Filters) -> list[dict[str, Any]]:
        """The calls stored now (figures read from the calls)."""
        return [r for r in self.in_range(f) if r["id"] in self.stored]

    def is_busy(self, row: dict[str, Any]) -> bool:
        return (row["user_id"], row["day"]) in self.busy

    def feedback_of(self, calls: Iterable[dict[str, Any]]) -> list[tuple[dict, dict]]:
        return [(c, fb) for c in calls for fb in self.w.by_call.get(c["id"], ())]

    def timing(self, f: Filters, metric: str) -> list[tuple[float, bool]]:
        """(value, read from a histogram) of the calls a percentile covers."""
        column = {"latency": "latency_ms", "ttft": "ttft_ms"}[metric]
        exact_only = f.users and (f.models or f.statuses or f.sources)
        rows = self.raw(f) if exact_only else self.other(f)
        first, last = self._whole(f)
        found = []
        for r in rows:
            value = r[column]
            if value is None or not math.isfinite(value):
                continue
            approx = (
                not exact_only and first <= r["day"] < last and (not f.users or self.is_busy(r))
            )
            found.append((float(value), approx))
        return found


class Quantile(float):
    """A percentile computed here, with the rounding its interpolation may differ by: a
    tiny part of the two values it lies between (which may be of opposite signs)."""

    slack: float

    def __new__(cls, value: float, slack: float) -> Quantile:
        made = super().__new__(cls, value)
        made.slack = slack
        return made


def quantile(values: Sequence[float], q: float) -> Quantile | None:
    """Linear interpolation between the closest ranks (numpy's default), as documented."""
    if not values:
        return None
    ordered = sorted(values)
    h = q * (len(ordered) - 1)
    low, high = ordered[math.floor(h)], ordered[math.ceil(h)]
    return Quantile(low + (high - low) * (h - math.floor(h)), REL * max(abs(low), abs(high)))


def histogram_bounds(value: float) -> tuple[float, float]:
    """What a histogram may make of ``value``: its bucket's midpoint, within sqrt(1.02)."""
    if value < ZERO_BELOW_MS:
        return 0.0, 0.0
    value = min(value, TOP_MS)
    return value / SQRT_GAMMA * (1 - 1e-12), value * SQRT_GAMMA * (1 + 1e-12)


def percentile_bounds(
    pairs: list[tuple[float, bool]], q: float
) -> tuple[Quantile, Quantile] | None:
    """The interval a percentile must lie in: percentiles are monotone in every value."""
    if not pairs:
        return None
    lows = [histogram_bounds(v)[0] if a else v for v, a in pairs]
    highs = [histogram_bounds(v)[1] if a else v for v, a in pairs]
    return quantile(lows, q), quantile(highs, q)  # type: ignore[return-value]


# -- comparison helpers --------------------------------------------------------------------


class Mismatches:
    def __init__(self, scenario: Scenario, dialect: str) -> None:
        self.found: list[str] = []
        self.where = f"[{dialect} seed {scenario.seed}]"
        self.checked = 0

    def report(self, log: list[str]) -> str:
        """The disagreements grouped by query (a few examples of each), after the
        operations that led to them."""
        groups: dict[str, list[str]] = defaultdict(list)
        for found in self.found:
            groups[found.split("]", 1)[1].split("(", 1)[0].strip()].append(found)
        lines = [f"{len(self.found)} of {self.checked} figures disagree with the stored rows"]
        lines += ["operations:", *(f"  {step}" for step in log)]
        for name, found in sorted(groups.items(), key=lambda g: -len(g[1])):
            lines.append(f"--- {name}: {len(found)} disagreement(s), e.g.")
            lines += [f[:1500] for f in found[:3]]
        return "\n".join(lines)

    def check(self, ok: bool, what: str, expected: Any, got: Any) -> None:
        self.checked += 1
        if not ok:
            self.found.append(
                f"{self.where} {what}\n    expected: {expected!r}\n    got:      {got!r}"
            )

    def run(self, check: Callable[..., None], *args: Any) -> None:
        """Run one check; a query that raises is a disagreement too."""
        try:
            check(self, *args)
        except Exception as exc:
            self.check(False, f"{check.__name__}{args[2:]!r:.300} raised", "an answer", repr(exc))

    def equal(self, what: str, expected: Any, got: Any) -> None:
        if close(expected, got):
            self.checked += 1
            return
        self.check(False, what, *difference(expected, got))


def difference(expected: Any, got: Any) -> tuple[Any, Any]:
    """The parts of two answers that differ (a dict's keys, a list's elements)."""
    if isinstance(expected, dict) and isinstance(got, dict):
        keys = [
            k
            for k in expected.keys() | got.keys()
            if k not in expected or k not in got or not close(expected[k], got[k])
        ]
        return ({k: expected.get(k, "(missing)") for k in keys},
                {k: got.get(k, "(missing)") for k in keys})  # fmt: skip
    if isinstance(expected, list) and isinstance(got, list) and len(expected) == len(got):
        pairs = [(e, g) for e, g in zip(expected, got, strict=True) if not close(e, g)]
        return [e for e, _ in pairs], [g for _, g in pairs]
    if isinstance(expected, list) and isinstance(got, list):
        unmatched = [e for e in expected if not any(close(e, g) for g in got)]
        extra = [g for g in got if not any(close(e, g) for e in expected)]
        return (f"{len(expected)} rows; not found: {unmatched}",
                f"{len(got)} rows; not expected: {extra}")  # fmt: skip
    return expected, got


def close(a: Any, b: Any) -> bool:
    """Equal, floats within float-sum rounding, recursively."""
    if isinstance(a, Quantile):
        return b is not None and abs(a - b) <= a.slack
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return math.isclose(float(a), float(b), rel_tol=REL, abs_tol=ABS)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def fsum(values: Iterable[float | None]) -> float:
    return math.fsum(v or 0.0 for v in values)


def spend_of(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "calls": len(rows),
        "prompt_tokens": sum(r["prompt_tokens"] or 0 for r in rows),
        "completion_tokens": sum(r["completion_tokens"] or 0 for r in rows),
        "cost_usd": fsum(r["cost_usd"] for r in rows),
        "unpriced_calls": sum(r["cost_status"] == "unpriced" for r in rows),
    }


def feedback_names(pairs: list[tuple[dict, dict]]) -> list[tuple[str, int, float]]:
    scores: dict[str, list[float]] = defaultdict(list)
    for _, fb in pairs:
        scores[fb["name"]].append(fb["score"])
    named = [(name, len(s), math.fsum(s) / len(s)) for name, s in scores.items()]
    return sorted(named, key=lambda n: (-n[1], n[0]))


def split_keys(row: dict[str, Any], by: str) -> list[str]:
    if by == "tag":
        return list(row["tags"]) if row["tags"] else [NONE]
    column = {"prompt": "prompt_name", "user": "user_id", "key": "api_key"}.get(by, by)
    return [row[column] or NONE]


def version_key(row: dict[str, Any]) -> tuple[str, str]:
    return row["prompt_name"] or "", row["prompt_version"] or ""


def sort_key_none_last(value: Any) -> tuple[bool, Any]:
    return (value is None, value if value is not None else "")


# -- the checks ----------------------------------------------------------------------------


def check_spend(m: Mismatches, engine: sa.Engine, ref: Reference, f: Filters, tag: str) -> None:
    rows = ref.spend(f)
    total = spend_queries.spend_total(engine, f)
    want = spend_of(rows)
    m.equal(
        f"spend_total({tag})",
        (want["calls"], want["cost_usd"], want["unpriced_calls"]),
        (total.calls, total.cost_usd, total.unpriced_calls),
    )
    days = spend_queries.daily_totals(engine, f, daily_budget_usd=1.0)
    by_day: dict[date, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_day[r["day"]].append(r)
    expected_days = []
    day = f.start.astimezone(UTC).date()
    last = (f.end.astimezone(UTC) - timedelta(microseconds=1)).date()
    while day <= last:
        cost = fsum(r["cost_usd"] for r in by_day.get(day, []))
        expected_days.append((day, cost, len(by_day.get(day, [])), cost > 1.0))
        day += timedelta(days=1)
    got_days = [(d.date, d.cost_usd, d.calls, d.over_budget) for d in days]
    m.equal(f"daily_totals({tag}, daily_budget_usd=1.0)", expected_days, got_days)


def expected_split(rows: list[dict[str, Any]], by: str, top: int | None) -> list[tuple] | None:
    groups: dict[tuple[date, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        for key in split_keys(r, by):
            groups[(r["day"], key)].append(r)
    if top is not None:
        costs: dict[str, float] = defaultdict(float)
        per_key: dict[str, list[float]] = defaultdict(list)
        for (_, key), members in groups.items():
            per_key[key] += [r["cost_usd"] or 0.0 for r in members]
        costs = {k: math.fsum(v) for k, v in per_key.items()}
        ranked = sorted(costs, key=lambda k: (-costs[k], k))
        if len(ranked) > top and close(costs[ranked[top - 1]], costs[ranked[top]]):
            return None  # a tie at the cut (in float sums of any order): either may lead
        leaders = set(ranked[:top])
        merged: dict[tuple[date, str], list[dict[str, Any]]] = defaultdict(list)
        for (day, key), members in groups.items():
            merged[(day, key if key in leaders else OTHER)] += members
        groups = merged
    out = []
    for (day, key), members in sorted(groups.items()):
        s = spend_of(members)
        out.append((day, key, s["calls"], s["prompt_tokens"], s["completion_tokens"],
                    s["cost_usd"], s["unpriced_calls"]))  # fmt: skip
    return out


def check_splits(
    m: Mismatches,
    engine: sa.Engine,
    ref: Reference,
    f: Filters,
    tag: str,
    splits: Sequence[tuple[str, int | None]],
) -> None:
    for by, top in splits:
        # the split by tag or key of a filter on users is not a spend rollup's (README)
        rows = ref.other(f) if f.users and by in ("tag", "key") else ref.spend(f)
        expected = expected_split(rows, by, top)
        if expected is None:
            continue
        got = [tuple(r) for r in spend_queries.daily_spend(engine, f, by=by, top=top)]
        m.equal(f"daily_spend({tag}, by={by!r}, top={top})", expected, got)


def check_overview(m: Mismatches, engine: sa.Engine, ref: Reference, f: Filters, tag: str) -> None:
    got = spend_queries.overview(engine, f)
    rows, others, raw = ref.spend(f), ref.other(f), ref.raw(f)
    s = spend_of(rows)
    status = Counter(r["status"] for r in rows)
    names = feedback_names(ref.feedback_of(others))
    approximate = Counter(r["model"] for r in raw if r["cost_status"] == "approximate")
    expected = {
        "calls": s["calls"], "errors": status["error"], "cancelled": status["cancelled"],
        "blocked": status["blocked"], "cost_usd": s["cost_usd"],
        "prompt_tokens": s["prompt_tokens"], "completion_tokens": s["completion_tokens"],
        "unpriced_calls": s["unpriced_calls"],
        "estimated_calls": sum(bool(r["tokens_estimated"]) for r in others),
        "feedback_count": sum(n for _, n, _ in names),
        "feedback": names,
        "unpriced_models": tuple(sorted({
            r["model"] for r in rows if r["status"] == "ok" and r["cost_status"] == "unpriced"
        })),
        "approximate_calls": sum(approximate.values()),
        "approximate_models": tuple(sorted(approximate)),
    }  # fmt: skip
    actual = {k: getattr(got, k) for k in expected}
    actual["feedback"] = [(x.name, x.count, x.average) for x in got.feedback]
    for key in expected:
        m.equal(f"overview({tag}).{key}", expected[key], actual[key])
    for metric in ("latency", "ttft"):
        pairs = ref.timing(f, metric)
        for p in (50, 95, 99):
            value = getattr(got, f"{metric}_p{p}")
            check_percentile(m, f"overview({tag}).{metric}_p{p}", pairs, p / 100, value)


def check_percentile(
    m: Mismatches, what: str, pairs: list[tuple[float, bool]], q: float, got: float | None
) -> None:
    bounds = percentile_bounds(pairs, q)
    if bounds is None or got is None:
        m.check(bounds is None and got is None, what, bounds, got)
        return
    low, high = bounds
    slack = max(low.slack, high.slack)
    exact = all(not a for _, a in pairs)
    shown = low if exact else (low, high)
    m.check(low - slack <= got <= high + slack, what + (" (exact)" if exact else " (within 1%)"),
            shown, got)  # fmt: skip


def check_versions(m: Mismatches, engine: sa.Engine, ref: Reference, f: Filters, tag: str) -> None:
    rows = ref.other(f)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["prompt_name"]:
            groups[version_key(r)].append(r)
    expected = []
    for (name, version), members in groups.items():
        priced = [r for r in members if r["cost_usd"] is not None]
        timed = [r["latency_ms"] for r in members if r["latency_ms"] is not None]
        commits = [r["git_commit"] for r in members if r["git_commit"]]
        names = feedback_names(ref.feedback_of(members))
        expected.append((
            name, version or None, max(commits) if commits else None, len(members),
            fsum(r["cost_usd"] for r in members) / len(priced) if priced else None,
            sum((r["prompt_tokens"] or 0) + (r["completion_tokens"] or 0) for r in members)
            / len(members),
            math.fsum(timed) / len(timed) if timed else None,
            sum(r["status"] == "error" for r in members),
            names, sum(n for _, n, _ in names),
            min(r["created_at"] for r in members), max(r["created_at"] for r in members),
        ))  # fmt: skip
    got = [
        (v.prompt_name, v.prompt_version, v.git_commit, v.calls, v.cost_per_call,
         v.tokens_per_call, v.latency_avg_ms, v.errors,
         [(x.name, x.count, x.average) for x in v.feedback], v.feedback_count,
         v.first_seen.astimezone(UTC), v.last_seen.astimezone(UTC))
        for v in prompt_queries.prompt_versions(engine, f)
    ]  # fmt: skip
    # in order of prompt and last call (versions last seen at once in any order)
    m.equal(f"prompt_versions({tag}) order", sorted(got, key=lambda v: (v[0], v[-1])) == got, True)

    def ordered(versions: list[tuple]) -> list[tuple]:
        return sorted(versions, key=lambda v: (v[0], v[-1], sort_key_none_last(v[1])))

    m.equal(f"prompt_versions({tag})", ordered(expected), ordered(got))
    # two versions side by side: their latency percentiles over the version's calls
    for prompt, versions in (("support/answer", ["aaaaaaaaaaaa", "bbbbbbbbbbbb"]),):
        sides = prompt_queries.compare_versions(engine, f, prompt, versions)
        want_versions = [v for v in versions if (prompt, v) in groups]
        m.equal(
            f"compare_versions({tag}, {prompt!r}, {versions}).versions",
            want_versions,
            [side.stats.prompt_version for side in sides],
        )
        for side in sides:
            one = replace(f, prompts=(prompt,), versions=(side.stats.prompt_version,))
            pairs = ref.timing(one, "latency")
            for q, value in ((0.5, side.latency_p50_ms), (0.95, side.latency_p95_ms)):
                check_percentile(
                    m, f"compare_versions({tag}).{side.stats.prompt_version}.p{round(q * 100)}",
                    pairs, q, value,
                )  # fmt: skip
            members = groups[(prompt, side.stats.prompt_version or "")]
            pairs_by_name: dict[str, Counter[float]] = defaultdict(Counter)
            for _, fb in ref.feedback_of(members):
                pairs_by_name[fb["name"]][fb["score"]] += 1
            want = []
            for name, counts in pairs_by_name.items():
                i = mean_interval(counts.items())
                want.append((name, i.n, i.rate, i.low, i.high))
            want.sort(key=lambda x: (-x[1], x[0]))
            m.equal(
                f"compare_versions({tag}).{side.stats.prompt_version}.feedback",
                want,
                [(x.name, x.count, x.average, x.low, x.high) for x in side.feedback],
            )


def check_feedback(m: Mismatches, engine: sa.Engine, ref: Reference, f: Filters, tag: str) -> None:
    pairs = ref.feedback_of(ref.other(f))
    dist: Counter[tuple] = Counter()
    trend: dict[tuple, list[float]] = defaultdict(list)
    by_name: dict[str, Counter[float]] = defaultdict(Counter)
    by_day: dict[tuple, list[float]] = defaultdict(list)
    for call, fb in pairs:
        by_name[fb["name"]][fb["score"]] += 1
        by_day[(call["day"], fb["name"])].append(fb["score"])
        if call["prompt_name"]:
            version = call["prompt_version"] or None
            dist[(call["prompt_name"], version, fb["name"], fb["score"])] += 1
            trend[(call["day"], call["prompt_name"], version, fb["name"])].append(fb["score"])
    got = sorted(
        ((s.prompt_name, s.prompt_version, s.name, s.score, s.count)
         for s in call_queries.feedback_distribution(engine, f)),
        key=lambda x: (x[0], sort_key_none_last(x[1]), x[2], x[3]),
    )  # fmt: skip
    want = sorted(
        ((*k, n) for k, n in dist.items()),
        key=lambda x: (x[0], sort_key_none_last(x[1]), x[2], x[3]),
    )
    m.equal(f"feedback_distribution({tag})", want, got)
    got_trend = sorted(
        ((d.date, d.prompt_name, d.prompt_version, d.name, d.average, d.count)
         for d in call_queries.feedback_trend(engine, f)),
        key=lambda x: (x[0], x[1], sort_key_none_last(x[2]), x[3]),
    )  # fmt: skip
    want_trend = sorted(
        ((*k, math.fsum(v) / len(v), len(v)) for k, v in trend.items()),
        key=lambda x: (x[0], x[1], sort_key_none_last(x[2]), x[3]),
    )
    m.equal(f"feedback_trend({tag})", want_trend, got_trend)
    want_summaries = []
    for name, counts in by_name.items():
        i = mean_interval(counts.items())
        want_summaries.append((name, i.n, i.rate, i.low, i.high, min(counts), max(counts)))
    want_summaries.sort(key=lambda s: (-s[1], s[0]))
    got_summaries = [
        (s.name, s.count, s.average, s.low, s.high, s.lowest, s.highest)
        for s in audit_queries.feedback_summaries(engine, f)
    ]
    m.equal(f"audit.feedback_summaries({tag})", want_summaries, got_summaries)
    want_days = sorted(
        ((d, name, len(v), math.fsum(v) / len(v)) for (d, name), v in by_day.items()),
        key=lambda x: (x[1], x[0]),
    )
    got_days = [
        (d.date, d.name, d.count, d.average) for d in audit_queries.feedback_by_day(engine, f)
    ]
    m.equal(f"audit.feedback_by_day({tag})", want_days, got_days)


def check_calls(
    m: Mismatches, engine: sa.Engine, ref: Reference, f: Filters, tag: str, rng: random.Random
) -> None:
    raw = ref.raw(f)
    # the Calls page: its count (the spend rollups: kept by a prune) and its rows (the calls)
    order = rng.choice(list(call_queries.CALL_ORDERS))
    limit, offset = rng.choice([(7, 0), (7, 7), (50, 0), (5, max(0, len(raw) - 3))])
    ordered = sorted(raw, key=lambda r: r["id"])  # stable sorts, the last key first
    ordered.sort(key=lambda r: r["created_at"], reverse=order != "oldest")
    if order == "cost":
        ordered.sort(key=lambda r: (r["cost_usd"] is not None, r["cost_usd"] or 0.0), reverse=True)
    elif order == "latency":
        ordered.sort(
            key=lambda r: (r["latency_ms"] is not None, r["latency_ms"] or 0.0), reverse=True
        )
    elif order == "tokens":
        ordered.sort(
            key=lambda r: (r["prompt_tokens"] or 0) + (r["completion_tokens"] or 0), reverse=True
        )
    page, total = call_queries.calls_page(engine, f, limit=limit, offset=offset, order=order)
    want = [r["id"] for r in ordered[offset : offset + limit]]
    m.equal(f"calls_page({tag}, order={order!r}, limit={limit}, offset={offset}).ids",
            want, [r["id"] for r in page])  # fmt: skip
    m.equal(f"calls_page({tag}).total", len(ref.spend(f)), total)
    # the audit report's figures read from the calls, and from the rollups
    errors = Counter(r["error_type"] or "(unknown)" for r in raw if r["status"] == "error")
    m.equal(
        f"audit.error_types({tag})",
        sorted(errors.items(), key=lambda e: (-e[1], e[0])),
        [(e.error_type, e.calls) for e in audit_queries.error_types(engine, f)],
    )
    # calls by status: a spend figure, kept for pruned days under a filter on users too
    blocked = Counter(r["day"] for r in ref.spend(f) if r["status"] == "blocked")
    m.equal(
        f"audit.blocked_by_day({tag})",
        sorted(blocked.items()),
        [(b.date, b.calls) for b in audit_queries.blocked_by_day(engine, f)],
    )
    comments = [
        (fb, c) for c in raw if c["prompt_name"] is not None
        for fb in ref.w.by_call.get(c["id"], ())
        if fb["comment"] is not None and fb["id"] in ref.w.stored_feedback
    ]  # fmt: skip
    comments.sort(key=lambda p: p[0]["id"])
    comments.sort(key=lambda p: p[0]["created_at"], reverse=True)
    want_comments = [
        (fb["created_at"], c["prompt_name"], c["prompt_version"], fb["name"], fb["score"],
         fb["comment"], fb["user_id"], fb["call_id"])
        for fb, c in comments[:20]
    ]  # fmt: skip
    got_comments = [
        (r["created_at"].astimezone(UTC), r["prompt_name"], r["prompt_version"], r["name"],
         r["score"], r["comment"], r["user_id"], r["call_id"])
        for r in call_queries.feedback_comments(engine, f, limit=20)
    ]  # fmt: skip
    m.equal(f"feedback_comments({tag}, limit=20)", want_comments, got_comments)


def check_timing(m: Mismatches, engine: sa.Engine, ref: Reference, f: Filters, tag: str) -> None:
    quantiles = (0.0, 0.25, 0.5, 0.9, 0.99, 1.0)
    with engine.connect() as connection:
        found = timing_queries.timing_percentiles(connection, f, quantiles)
    for metric, values in zip(("latency", "ttft"), found, strict=True):
        pairs = ref.timing(f, metric)
        for q, value in zip(quantiles, values, strict=True):
            check_percentile(m, f"timing_percentiles({tag}).{metric}[q={q}]", pairs, q, value)


def check_periods(m: Mismatches, engine: sa.Engine, ref: Reference, now: datetime) -> None:
    """Today, yesterday, this week, this month, each against the period before, like with
    like (README, "Dashboard")."""
    tick = timedelta(microseconds=1)
    day = timedelta(days=1)
    today = midnight(now.date())
    week = today - timedelta(days=now.weekday())
    month = today.replace(day=1)
    previous_month = (month - day).replace(day=1)
    same_point = previous_month + (now - month)  # the same day and time of last month
    spans = {
        "today": ((today, now + tick), (today - day, now - day + tick)),
        "yesterday": ((today - day, today), (today - 2 * day, today - day)),
        "this week": ((week, now + tick), (week - 7 * day, now - 7 * day + tick)),
        "this month": ((month, now + tick), (previous_month, min(same_point + tick, month))),
    }

    def cost(span: tuple[datetime, datetime]) -> tuple[float, int]:
        rows = ref.spend(Filters(*span))
        return fsum(r["cost_usd"] for r in rows), len(rows)

    got = {
        p.name: (p.cost_usd, p.previous_usd, p.calls)
        for p in spend_queries.spend_periods(engine, now)
    }
    for name, (this, before) in spans.items():
        want = (cost(this)[0], cost(before)[0], cost(this)[1])
        m.equal(f"spend_periods(now={now.isoformat()})[{name!r}]", want, got.get(name))
    month_to_date = cost(spans["this month"][0])[0]
    elapsed = (now - month).total_seconds()
    next_month = (month + timedelta(days=32)).replace(day=1)
    forecast = (
        None if elapsed < 3600 else month_to_date * (next_month - month).total_seconds() / elapsed
    )
    budget = spend_queries.month_budget(engine, 100.0, now)
    m.equal(f"month_budget(100.0, now={now.isoformat()})",
            (month_to_date, forecast), (budget.month_to_date_usd, budget.forecast_usd))  # fmt: skip


def check_budgets(m: Mismatches, engine: sa.Engine, ref: Reference, now: datetime) -> None:
    budgets = [
        Budget(name="all-day", window="day", limit_usd=5.0),
        Budget(name="all-week", window="week", limit_usd=50.0),
        Budget(name="all-month", window="month", limit_usd=500.0),
        Budget(name="users", window="month", limit_usd=5.0, scope={"user": "each"}),
        Budget(name="tags", window="week", limit_usd=5.0, scope={"tag": "each"}),
        Budget(name="keys", window="month", limit_usd=5.0, scope={"key": "each"}),
        Budget(name="prompts", window="month", limit_usd=5.0, scope={"prompt": "each"}),
        Budget(name="models", window="day", limit_usd=5.0, scope={"model": "each"}),
        Budget(name="sources", window="month", limit_usd=5.0, scope={"source": "each"}),
        Budget(name="one-model", window="month", limit_usd=5.0, scope={"model": "m-custom"}),
        Budget(name="one-user", window="week", limit_usd=5.0, scope={"user": "ü-ser ✓"}),
        Budget(name="one-tag", window="month", limit_usd=5.0, scope={"tag": "web"}),
        Budget(name="one-key", window="month", limit_usd=5.0, scope={"key": "team-a"}),
        Budget(name="one-source", window="day", limit_usd=5.0, scope={"source": "eval"}),
    ]
    today = midnight(now.date())
    week = today - timedelta(days=now.weekday())
    month = today.replace(day=1)
    windows = {
        "day": (today, today + timedelta(days=1)),
        "week": (week, week + timedelta(days=7)),
        "month": (month, (month + timedelta(days=32)).replace(day=1)),
    }
    columns = {"user": "user_id", "prompt": "prompt_name", "key": "api_key", "model": "model",
               "source": "source", "tag": "tag"}  # fmt: skip
    got: dict[tuple[str, str | None], tuple] = {}
    order: dict[str, list[str | None]] = defaultdict(list)
    for status in budget_queries.budget_status(engine, budgets, now=now):
        got[(status.budget.name, status.key)] = (
            status.window_start, status.window_end, status.spent_usd, status.calls,
            status.unpriced_calls, status.projected_usd,
        )  # fmt: skip
        order[status.budget.name].append(status.key)
    for budget in budgets:
        start, end = windows[budget.window]
        rows = ref.spend(Filters(start, end))
        keyed: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            if budget.scope_key is None:
                keyed[None].append(r)
                continue
            column = columns[budget.scope_key]
            values = (r["tags"] or []) if column == "tag" else [r[column]]
            for value in values:
                if not value:
                    continue
                if budget.scope_value == "each":
                    keyed[value].append(r)
                elif value == budget.scope_value:
                    keyed[None].append(r)
        if budget.scope_value != "each":
            keyed.setdefault(None, [])
        elapsed = now - start
        want = {}
        for key, members in keyed.items():
            cost = fsum(r["cost_usd"] for r in members)
            projected = cost * ((end - start) / elapsed) if elapsed >= timedelta(hours=1) else None
            unpriced = sum(r["cost_status"] == "unpriced" for r in members)
            want[key] = (start, end, cost, len(members), unpriced, projected)
        ranked = sorted(want, key=lambda k: (-want[k][2], k or ""))
        for key in ranked[:20]:
            m.equal(f"budget_status({budget.name}, now={now.isoformat()})[{key!r}]",
                    want[key], got.get((budget.name, key)))  # fmt: skip
        # the 20 that cost most, dearest first (keys whose costs tie, in float sums of any
        # order, in either order)
        shown = order.get(budget.name, [])
        costs = [want[k][2] if k in want else math.nan for k in shown]
        descending = all(a >= b or close(a, b) for a, b in pairwise(costs))
        tie_at_cut = len(ranked) > 20 and close(want[ranked[19]][2], want[ranked[20]][2])
        m.check(
            descending and (tie_at_cut or set(shown) == set(ranked[:20])),
            f"budget_status({budget.name}).keys, dearest first",
            ranked[:20],
            shown,
        )


def check_alerts(m: Mismatches, engine: sa.Engine, ref: Reference, now: datetime) -> None:
    spans = [
        (now - timedelta(minutes=15), now),
        (now - timedelta(days=1), now),
        (midnight(now.date()) - timedelta(days=7), midnight(now.date())),
        (now - timedelta(days=40), now + timedelta(days=1)),
    ]
    want_spend = [fsum(r["cost_usd"] for r in ref.raw(Filters(*span))) for span in spans]
    m.equal("alerts.spend_in_spans", want_spend, alert_queries.spend_in_spans(engine, spans))
    for start, end in spans[1:]:
        for source in (None, "app"):
            raw = [r for r in ref.raw(Filters(start, end)) if source in (None, r["source"])]
            for by in ("model", "prompt", "all"):
                column = {"model": "model", "prompt": "prompt_name"}.get(by)

                def subject(r: dict[str, Any], column: str | None = column) -> str | None:
                    return None if column is None else r[column]

                counted: dict[str | None, list[int]] = defaultdict(lambda: [0, 0])
                timed: dict[str | None, list[float]] = defaultdict(list)
                for r in raw:
                    if r["status"] != "blocked":
                        counted[subject(r)][0] += 1
                        counted[subject(r)][1] += r["status"] == "error"
                    if r["status"] == "ok" and r["latency_ms"] is not None:
                        timed[subject(r)].append(r["latency_ms"])
                what = f"({start.isoformat()}, {end.isoformat()}, by={by!r}, source={source!r})"
                got = sorted(
                    ((e.subject, e.calls, e.errors)
                     for e in alert_queries.error_counts(engine, start, end, by, source)),
                    key=lambda x: sort_key_none_last(x[0]),
                )  # fmt: skip
                want = sorted(((k, *v) for k, v in counted.items()),
                              key=lambda x: sort_key_none_last(x[0]))  # fmt: skip
                m.equal(f"alerts.error_counts{what}", want, got)
                p95 = alert_queries.latency_p95(engine, start, end, by, source)
                want_p95 = {k: (len(v), quantile(v, 0.95)) for k, v in timed.items()}
                m.equal(f"alerts.latency_p95{what}", want_p95,
                        {k: (v.calls, v.p95_ms) for k, v in p95.items()})  # fmt: skip
    for start, end in spans[1:]:
        for source in (None, "eval"):
            for name in ("rating", "thumbs"):
                sums: dict[tuple[str, str], list[float]] = defaultdict(list)
                for fb in ref.w.feedback.values():
                    if fb["id"] not in ref.w.stored_feedback or fb["name"] != name:
                        continue
                    if not start <= fb["created_at"] < end:
                        continue
                    call = ref.w.calls[fb["call_id"]]
                    if call["prompt_name"] is None or call["prompt_version"] is None:
                        continue
                    if source not in (None, call["source"]):
                        continue
                    sums[(call["prompt_name"], call["prompt_version"])].append(fb["score"])
                want = {k: (len(v), math.fsum(v) / len(v)) for k, v in sums.items()}
                got = alert_queries.feedback_averages(engine, name, start, end, source)
                m.equal(
                    f"alerts.feedback_averages({name!r}, {start.isoformat()}, {end.isoformat()},"
                    f" {source!r})", want, {k: (v.count, v.average) for k, v in got.items()},
                )  # fmt: skip


def check_metrics(m: Mismatches, engine: sa.Engine, ref: Reference, now: datetime) -> None:
    today = now.date()
    for since, before in ((None, None), (today - timedelta(days=20), None), (None, today)):
        recent = today - timedelta(days=6)
        start = midnight(since) if since else datetime(1, 1, 1, tzinfo=UTC)
        end = midnight(before) if before else datetime(9999, 12, 31, tzinfo=UTC)
        rows = ref.spend(Filters(start, end))
        groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            key = (r["model"], r["prompt_name"] or None, r["prompt_version"] or None, r["source"],
                   r["status"])  # fmt: skip
            groups[key].append(r)
        want = {}
        for key, members in groups.items():
            s = spend_of(members)
            fresh = [r for r in members if r["day"] >= recent]
            want[key] = (
                s["calls"], s["prompt_tokens"], s["completion_tokens"], s["cost_usd"],
                s["unpriced_calls"], fsum(r["latency_ms"] for r in members),
                sum(r["latency_ms"] is not None for r in members),
                fsum(r["cost_usd"] for r in fresh), len(fresh),
            )  # fmt: skip
        got = {
            (t.model, t.prompt, t.version, t.source, t.status): (
                t.calls, t.prompt_tokens, t.completion_tokens, t.cost_usd, t.unpriced_calls,
                t.latency_ms_sum, t.latency_calls, t.recent_cost_usd, t.recent_calls,
            )
            for t in metric_queries.call_totals(engine, recent, since=since, before=before)
        }  # fmt: skip
        m.equal(f"metrics.call_totals(recent={recent}, since={since}, before={before})", want, got)
    rows = ref.spend(Filters(datetime(1, 1, 1, tzinfo=UTC), midnight(today)))
    s = spend_of(rows)
    want_signature = (
        s["calls"], s["prompt_tokens"], s["completion_tokens"], s["cost_usd"],
        s["unpriced_calls"], sum(r["latency_ms"] is not None for r in rows),
        fsum(r["latency_ms"] for r in rows),
    )  # fmt: skip
    got_signature = metric_queries.rollup_signature(engine, today)[1:]
    m.equal(f"metrics.rollup_signature(before={today})[1:]", want_signature, got_signature)
    quantiles = (0.5, 0.9, 0.99)
    for start, end, models, limit in (
        (now - timedelta(hours=12), now, ("gpt-4o-mini", "m-custom"), 100_000),
        (now - timedelta(days=3), now + timedelta(days=1), (), 100_000),
        (now - timedelta(days=3), now, ("Odd/model ü",), 25),
    ):
        raw = [r for r in ref.raw(Filters(start, end)) if r["status"] == "ok"]
        raw.sort(key=lambda r: r["created_at"], reverse=True)
        if len(raw) > limit and raw[limit - 1]["created_at"] == raw[limit]["created_at"]:
            continue  # the newest `limit` are not one set of calls
        raw = raw[:limit]
        latency: dict[str, list[float]] = defaultdict(list)
        ttft: dict[str, list[float]] = defaultdict(list)
        for r in raw:
            key = r["model"] if r["model"] in models else OTHER
            if r["latency_ms"] is not None:
                latency[key].append(r["latency_ms"])
            if r["ttft_ms"] is not None:
                ttft[key].append(r["ttft_ms"])
        keys = sorted(latency.keys() | ttft.keys(), key=lambda k: (k == OTHER, k))
        want_recent = [
            (k, len(latency[k]), tuple(quantile(latency[k], q) for q in quantiles),
             len(ttft[k]), tuple(quantile(ttft[k], q) for q in quantiles))
            for k in keys
        ]  # fmt: skip
        got_recent = [
            (r.model, r.latency_calls, r.latency_ms, r.ttft_calls, r.ttft_ms)
            for r in metric_queries.recent_latency(engine, start, end, quantiles, models, limit)
        ]
        what = f"metrics.recent_latency({start.isoformat()}, {end.isoformat()}, {models}, {limit})"
        m.equal(what, want_recent, got_recent)


def check_choices(m: Mismatches, engine: sa.Engine, ref: Reference) -> None:
    stored = [r for r in ref.calls if r["id"] in ref.stored]
    options = call_queries.filter_options(engine)
    for name, column in (("models", "model"), ("prompts", "prompt_name"),
                         ("versions", "prompt_version"), ("users", "user_id"),
                         ("statuses", "status")):  # fmt: skip
        want = sorted({r[column] for r in stored if r[column] is not None})
        m.equal(f"filter_options().{name}", want, options[name])
    m.equal(
        "filter_options().sources", sorted({r["source"] for r in ref.calls}), options["sources"]
    )
    names: dict[str, set[str]] = defaultdict(set)
    for r in ref.calls:
        if r["prompt_version"] and r["prompt_name"]:
            names[r["prompt_version"]].add(r["prompt_name"])
    m.equal("version_prompts()", {v: ", ".join(sorted(n)) for v, n in names.items()},
            call_queries.version_prompts(engine))  # fmt: skip
    times = [r["created_at"] for r in stored]
    m.equal(
        "audit.stored_calls()",
        (len(stored), min(times), max(times)),
        tuple(vars(audit_queries.stored_calls(engine)).values()),
    )


def check_busy_days(m: Mismatches, engine: sa.Engine, ref: Reference) -> None:
    """The README's rule: a user's UTC day with 1,000 calls is marked (SQLite: at 999 or
    1,000), never a user id over 128 bytes, nor none."""
    with engine.connect() as connection:
        marked = {
            (u, d if isinstance(d, date) else date.fromisoformat(str(d)[:10]))
            for d, u in connection.execute(
                sa.select(BUSY_USER_DAYS.c.day, BUSY_USER_DAYS.c.user_id)
            )
        }
    maybe = {
        key for key, n in ref.counts.items()
        if n == BUSY_CALLS - 1 and key[0] and len(key[0].encode()) <= BUSY_USER_BYTES
    }  # fmt: skip
    m.check(ref.busy <= marked <= ref.busy | maybe, "busy user-days marked", ref.busy, marked)


# -- the grid ------------------------------------------------------------------------------


def ranges(now: datetime, rng: random.Random) -> list[tuple[str, Filters]]:
    today = now.date()
    mid = lambda d, h: midnight(today - timedelta(days=d)) + timedelta(hours=h)  # noqa: E731
    india = timezone(timedelta(hours=5, minutes=30))
    single = rng.randrange(1, 35)
    return [
        ("recent_days(7)", Filters.recent_days(7, today)),
        ("recent_days(45)", Filters.recent_days(45, today)),
        (f"days(-{single})", Filters.days(today - timedelta(single), today - timedelta(single))),
        ("last_days(30)", Filters.last_days(30, now=now)),
        ("mid-day to mid-day", Filters(mid(25, 7.25), mid(2, 15.5))),
        ("inside one day", Filters(mid(single, 3), mid(single, 21))),
        ("today until now", Filters(midnight(today), now + timedelta(microseconds=1))),
        ("midnight to mid-day", Filters(midnight(today - timedelta(days=12)), mid(4, 9))),
        ("+05:30 days", Filters(datetime.combine(today - timedelta(days=9), time.min, india),
                                datetime.combine(today, time.min, india))),
    ]  # fmt: skip


def filters_grid(s: Scenario) -> list[tuple[str, dict[str, tuple[str, ...]]]]:
    busy = s.busy_user or ""
    return [
        ("all", {}),
        ("model", {"models": ("m-custom",)}),
        ("models", {"models": ("gpt-4o-mini", "Odd/model ü")}),
        ("prompt", {"prompts": ("support/answer",)}),
        ("no prompt", {"prompts": ("",)}),
        ("version", {"versions": ("bbbbbbbbbbbb",)}),
        ("no version", {"versions": ("",)}),
        ("busy user", {"users": (busy,)}),
        ("no user", {"users": ("",)}),
        ("odd users", {"users": ("evil\u202eyppah", " ", NONE)}),
        ("users", {"users": (busy, "u2")}),
        ("status", {"statuses": ("error", "blocked")}),
        ("no such model", {"models": ("nope",)}),
        ("source", {"sources": ("eval",)}),
        ("busy user+model", {"users": (busy,), "models": ("gpt-4o-mini",)}),
        ("busy user+version", {"users": (busy,), "prompts": ("support/answer",),
                               "versions": ("aaaaaaaaaaaa",)}),
        ("user+status", {"users": (busy, "u1"), "statuses": ("ok", "cancelled")}),
        ("model+prompt+source", {"models": ("m-unknown", "gpt-4o-mini"),
                                 "prompts": ("support/answer", ""), "sources": ("app",)}),
    ]  # fmt: skip


def check_all(m: Mismatches, world: World, rng: random.Random, fraction: float) -> None:
    engine, s = world.engine, world.s
    ref = Reference(world)
    m.run(check_busy_days, engine, ref)
    m.run(check_periods, engine, ref, s.now)
    m.run(check_budgets, engine, ref, s.now)
    m.run(check_alerts, engine, ref, s.now)
    m.run(check_metrics, engine, ref, s.now)
    m.run(check_choices, engine, ref)
    spans, grid = ranges(s.now, rng), filters_grid(s)
    # every filter over a range, every range under two more filters
    pairs = [(rng.choice(spans), choice) for choice in grid]
    pairs += [(span, choice) for span in spans for choice in rng.sample(grid, 2)]
    splits = [(by, top) for by in spend_queries.GROUPINGS for top in (None, 2)]
    for (range_name, span), (filter_name, kwargs) in pairs:
        f = replace(span, **kwargs)
        tag = f"{range_name} {f.start.isoformat()}..{f.end.isoformat()}, {filter_name} {kwargs}"
        m.run(check_spend, engine, ref, f, tag)
        m.run(check_overview, engine, ref, f, tag)
        if rng.random() < fraction:
            m.run(check_timing, engine, ref, f, tag)
        m.run(check_splits, engine, ref, f, tag, rng.sample(splits, 2))
        if rng.random() < fraction:
            m.run(check_versions, engine, ref, f, tag)
        if rng.random() < fraction:
            m.run(check_feedback, engine, ref, f, tag)
        if rng.random() < fraction:
            m.run(check_calls, engine, ref, f, tag, random.Random(rng.random()))


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[f"seed{s.seed}" for s in SCENARIOS])
def test_every_figure_agrees_with_the_stored_rows(
    database_url: str, tmp_path: Path, scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in scenario.knobs.items():
        module = call_queries if name == "PROBE_CALLS" else rollup_queries
        monkeypatch.setattr(module, name, value)
    if "PROBE_CALLS" in scenario.knobs:
        monkeypatch.setattr(call_queries, "PROBE_PAGES", 1)
    engine = create_engine(database_url)
    check_schema(engine)
    world = World(engine, tmp_path / "spool", scenario)
    try:
        world.run()
    finally:
        world.writer.close()
    assert_scenario_happened(world)
    m = Mismatches(scenario, engine.dialect.name)
    check_all(m, world, random.Random(scenario.seed * 7919), fraction=0.5)
    assert not m.found, m.report(world.log)


def assert_scenario_happened(world: World) -> None:
    """The situations the scenario is for did arise (else the test would check less)."""
    s, ref = world.s, Reference(world)
    pruned = [r for r in ref.calls if r["id"] not in ref.stored]
    cutoff = world.today - timedelta(days=s.prune_calls_days)
    assert pruned and all(r["day"] < cutoff for r in pruned)
    assert any(r["day"] < cutoff and r["id"] in ref.stored for r in ref.calls)  # late calls
    assert any(fb["id"] not in world.stored_feedback for fb in world.feedback.values())
    busy_days = {(s.busy_user, world.today - timedelta(days=d)) for d in s.busy_offsets}
    assert all(ref.counts[key] >= BUSY_CALLS for key in busy_days)
    marked = {key for key in busy_days if len(str(s.busy_user).encode()) <= BUSY_USER_BYTES}
    assert ref.busy == marked
    assert any(day < cutoff for _, day in ref.busy) == (s.seed == 2)  # a pruned busy day
    if world.engine.dialect.name == "postgresql" and not s.partitions_late:
        assert any("llm_calls_20" in line for line in world.log if "prune(calls" in line)
