"""Dashboard queries: how long each dashboard page's figures take on 1,000,000 stored calls.

Seeds N calls (default 1,000,000; `--quick`: 100,000) spread over the 90 days before the
seeding moment, through `llmops.store.writer.Writer` into a SQLite file with the schema of
`check_schema`: 8 models (one unpriced), 6 prompts with 2-3 versions each (versions roll
out over time, with an A/B overlap) and 12% raw calls, 2,000 users (log-uniform: a few heavy
users), 3% errors and 0.4% cancelled calls, 0-2 tags, 8% `source="eval"`, lognormal token
counts and latencies, time-to-first-token on the 30% that stream, costs from the token
counts. About 15% of successful app calls get 1-2 feedback rows (thumbs and stars, 10% with
a comment); 300 eval runs (200 results each) go straight into `eval_runs`/`eval_results`.
The seeded file is kept (`--data-dir`, default /tmp/llmops-bench) and reused by later runs;
the seeding moment is stored next to it and is the "now" of every timed query, so re-runs
time the same data.

Then, for the default view (last 30 days, no filters), a filtered view (one model, one
prompt) and one user's view (the heaviest user: no rollup has users' timings), every
`llmops.store.queries` function a dashboard page calls when it opens runs `--runs` times
(default 5), in turn, without any Streamlit cache; a page's time is the sum of its
functions in one run, and the figure is the median over the runs. Pages as
dashboard/ calls them (the sidebar, on every page, runs filter_options):

  Overview  filter_options + spend_periods (which also gives the month's budget) +
            overview + daily_totals + daily_spend by model (by tag, by user: more rows)
  Prompts   filter_options + prompt_versions
  Calls     filter_options + calls_page (first page) + call_detail
            (and the same with calls_page at offset 5,000, a deep page)
  Feedback  filter_options + feedback_distribution + feedback_trend + feedback_comments
  Evals     filter_options + eval_runs + eval_comparisons (of the newest batch)

Goal: every page under 1 s. `--explain` prints each statement of the slowest functions
with its own time and its plan (EXPLAIN QUERY PLAN on SQLite, EXPLAIN ANALYZE on
PostgreSQL). `--baseline` repeats the measurements with `queries.rollups.READ_ROLLUPS` off, so every
figure is summed from the calls as before migration 0005 (the daily rollups), checks that
both ways give the same figures, and measures what the rollup triggers cost the Writer
(100,000 calls into fresh SQLite files, with the triggers and with them dropped). A cached
file seeded by an older llmops is migrated first, and the migration timed. `--postgres`
seeds and times a throwaway PostgreSQL cluster too (tests/fixtures/postgres.py; seeded every
time, then VACUUM ANALYZE, as autovacuum would); `--keep-postgres` keeps that cluster
(its folder is recorded in DATA_DIR/llmops-N-vK-pg.json) and reuses it next time instead of
seeding; `--no-sqlite` leaves SQLite out. Unless `--no-apptest`, the dashboard's
overview page (the default page of dashboard/app.py) also runs through Streamlit's AppTest
against the SQLite file, in a fresh process, caches cleared, and its wall time is reported.
Unless `--no-cli`, the queries of `llmops spend` (daily_spend + overview, by each key, 30
and 90 days) and `llmops calls` (calls_page: 7 and 30 days, with filters) are timed too.
Every table of figures is followed by the load average. `--seed-only` seeds and stops.

Seeding (`--seed`): `writer` puts every row through the Writer (about 2,400 rows/s: 10M
calls would take over an hour); `bulk` inserts the same generated rows directly, as the
Writer would store them (every column fitted to its table, each table's rows in one hash
chain with its head in audit_chains, so `llmops audit verify` passes): on SQLite
executemany in transactions of 100,000 calls, on PostgreSQL one COPY per 100,000 calls
(their feedback after them), with the llmops triggers on llm_calls and feedback off
(SQLite: their SQL saved from sqlite_master, dropped, created again after; PostgreSQL:
DISABLE TRIGGER USER), then the rollups and histograms filled by the backfill statements
of migrations 0005 and 0010 (imported from their files, not written twice), then the
triggers on again. `auto` (default): the Writer up to 1,000,000 calls, bulk above.
`--bulk-processes K` (PostgreSQL): K processes generate and COPY a contiguous stretch of
time each, every one with its own random stream and its own chains (as K Writers would):
the same distributions, not the same rows as one process.
`--check-bulk` seeds 20,000 calls (or `--rows`) both ways, into SQLite and (with
`--postgres`) PostgreSQL, and checks that the rollup tables (llm_calls_daily, _users,
_tags, feedback_daily, llm_calls_daily_timing) and the calls and feedback (but for their
chains) are identical and that both seeds verify; it exits 1 if not.
Results: benchmarks/README.md.

Usage: python benchmarks/dashboard_queries.py [--rows N | --quick] [--runs R] [--postgres]
           [--no-sqlite] [--keep-postgres] [--seed auto|writer|bulk] [--bulk-processes K]
           [--check-bulk]
           [--seed-only] [--data-dir DIR] [--explain] [--baseline] [--no-apptest] [--no-cli]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import json
import math
import multiprocessing
import os
import queue
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from _common import ROOT, throwaway_postgres

from llmops.config import Budget
from llmops.evals import history
from llmops.store import queries as q
from llmops.store.audit_log import GENESIS
from llmops.store.chain import TABLE_OF, link, new_chain_id
from llmops.store.engine import (
    HEAD_REVISION,
    check_schema,
    create_engine,
    current_revision,
    upgrade,
)
from llmops.store.ids import time_ordered_id
from llmops.store.queries import rollups
from llmops.store.records import COLUMNS, fitted, json_text, split_content
from llmops.store.tables import (
    AUDIT_CHAINS,
    CALL_CONTENT,
    CALLS,
    DAILY_ROLLUPS,
    EVAL_RESULTS,
    EVAL_RUNS,
)
from llmops.store.writer import Writer

DATA_FORMAT = 3  # bump when the generated data changes: cached files are then reseeded
GOAL_S = 1.0
DAYS = 90
DEEP_OFFSET = 5_000
TOP = 10  # the dashboard's split shows the 10 keys that cost most (dashboard/_common.TOP_KEYS)
CHUNK = 20_000  # at most 2 x CHUNK rows wait in the writer's queue (it never spills)

# name, provider, $ per million input tokens, $ per million output, median latency ms, weight
MODELS = [
    ("gpt-4o-mini", "openai", 0.15, 0.60, 700, 30),
    ("gpt-4o", "openai", 2.50, 10.00, 1400, 12),
    ("gpt-4.1-mini", "openai", 0.40, 1.60, 800, 14),
    ("claude-3-5-haiku-20241022", "anthropic", 0.80, 4.00, 900, 12),
    ("claude-sonnet-4-20250514", "anthropic", 3.00, 15.00, 2200, 8),
    ("gemini/gemini-2.0-flash", "gemini", 0.10, 0.40, 600, 12),
    ("mistral/mistral-small-latest", "mistral", 0.20, 0.60, 750, 10),
    ("ollama/llama3.1:70b", "ollama", None, None, 2600, 2),  # unpriced
]
PROMPTS = {  # name -> number of versions
    "support/answer": 3,
    "support/triage": 2,
    "sales/followup": 2,
    "search/rewrite": 3,
    "docs/summarize": 2,
    "code/review": 3,
}
TAGS = ["web", "mobile", "api", "batch", "beta", "enterprise"]
WORDS = [
    "parcel", "order", "refund", "router", "reset", "delivery", "invoice", "account",
    "password", "mesh", "firmware", "warranty", "shipping", "upgrade", "plan", "billing",
]  # fmt: skip
COMMENTS = [
    "Wrong product.",
    "Great, solved it.",
    "Too long.",
    "Made up a policy that does not exist.",
    "Perfect answer, thanks!",
    "Did not answer the question.",
]
USERS = 2_000
FILTER_MODEL, FILTER_PROMPT = "gpt-4o-mini", "support/answer"
FILTER_USER = "user-0001"  # the heaviest user (log-uniform ids)

# -- seeding ----------------------------------------------------------------------------


def version_id(prompt: str, index: int) -> str:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"{prompt}@{index}").hex[:12]


class RowMaker:
    """Deterministic call and feedback rows, oldest call first."""

    def __init__(self, rows: int, now: datetime, seed: int = 0) -> None:
        self.rng = random.Random(seed)
        self.now = now
        self.start = now - timedelta(days=DAYS)
        span = DAYS * 86400.0
        # Traffic grows over the window: more calls near now than 90 days ago.
        self.offsets = sorted(span * self.rng.random() ** 0.8 for _ in range(rows))
        self.all_offsets = self.offsets
        self.models = [m[:5] for m in MODELS]
        self.model_weights = [m[5] for m in MODELS]
        self.prompt_names = list(PROMPTS)
        # Each version of a prompt starts at some moment; the first one before the window.
        self.rollouts = {
            name: [-1.0, *sorted(self.rng.uniform(0.15, 0.9) * span for _ in range(n - 1))]
            for name, n in PROMPTS.items()
        }
        self.commits = {
            (name, i): f"{self.rng.getrandbits(160):040x}"
            for name, n in PROMPTS.items()
            for i in range(n)
        }

    def segment(self, index: int, parts: int) -> None:
        """Keep only the ``index``-th of ``parts`` contiguous stretches of the calls, drawn
        from a random stream of their own (the models, prompts, versions, users... of the
        same distributions), for seeding in parallel (``--bulk-processes``)."""
        lo, hi = len(self.offsets) * index // parts, len(self.offsets) * (index + 1) // parts
        self.offsets = self.offsets[lo:hi]
        self.rng = random.Random(f"segment {index} of {parts}")

    def version(self, prompt: str, offset: float) -> int:
        starts = self.rollouts[prompt]
        current = max(i for i, s in enumerate(starts) if s <= offset)
        if current and offset - starts[current] < 7 * 86400 and self.rng.random() < 0.3:
            return current - 1  # A/B overlap for a week after a rollout
        return current

    def rows(self) -> Iterator[tuple[str, dict[str, Any]]]:
        rng = self.rng
        for offset in self.offsets:
            created = self.start + timedelta(seconds=offset)
            call = self.call(created, offset)
            yield "call", call
            if call["status"] == "ok" and call["source"] == "app" and rng.random() < 0.15:
                for name in ("thumbs", "stars")[: 1 if rng.random() < 0.7 else 2]:
                    yield "feedback", self.feedback(call, name)

    def call(self, created: datetime, offset: float) -> dict[str, Any]:
        rng = self.rng
        model, provider, price_in, price_out, latency_median = rng.choices(
            self.models, self.model_weights
        )[0]
        r = rng.random()
        status = "error" if r < 0.03 else "cancelled" if r < 0.034 else "ok"
        source = "eval" if rng.random() < 0.08 else "app"
        prompt = version = commit = None
        if rng.random() < 0.88:
            prompt = rng.choice(self.prompt_names)
            index = self.version(prompt, offset)
            version, commit = version_id(prompt, index), self.commits[(prompt, index)]
        user = None if source == "eval" else f"user-{int(USERS ** rng.random()):04d}"
        stream = rng.random() < 0.3
        question = " ".join(rng.choices(WORDS, k=rng.randint(5, 14)))
        row: dict[str, Any] = {
            "id": time_ordered_id(int(created.timestamp() * 1000), rng.getrandbits(74)),
            "created_at": created,
            "source": source,
            "prompt_name": prompt,
            "prompt_version": version,
            "git_commit": commit,
            "model": model,
            "provider": provider,
            "status": status,
            "error_type": None,
            "error_message": None,
            "prompt_tokens": None,
            "completion_tokens": None,
            "cached_tokens": None,
            "cache_write_tokens": None,
            "reasoning_tokens": None,
            "tokens_estimated": False,
            "cost_usd": None,
            "cost_status": "unpriced",
            "price_source": None,
            "latency_ms": None,
            "ttft_ms": None,
            "user_id": user,
            "session_id": f"s-{user}-{int(offset // 3600)}" if user else None,
            "tags": rng.sample(TAGS, k=rng.choice((0, 1, 1, 2))) or None,
            "metadata": {"tenant": f"t{rng.randint(1, 40)}", "ab": rng.choice("AB")},
            "request": {
                "messages": [
                    {"role": "system", "content": "You are a helpful support agent."},
                    {"role": "user", "content": question},
                ],
                "params": {"temperature": 0.2, "max_tokens": 400, "stream": stream},
            },
            "response_text": None,
        }
        if status == "error":
            row.update(
                error_type=rng.choice(("RateLimitError", "APIConnectionError", "Timeout")),
                error_message="litellm.RateLimitError: provider said 429, retry later",
                cost_usd=0.0,
                cost_status="priced",
                price_source="not billed: the call failed",
                latency_ms=round(rng.lognormvariate(math.log(300), 0.8), 3),
            )
            return row
        latency = rng.lognormvariate(math.log(latency_median), 0.55)
        row["latency_ms"] = round(latency, 3)
        if stream:
            row["ttft_ms"] = round(latency * rng.uniform(0.08, 0.35), 3)
        if status == "cancelled":
            return row
        prompt_tokens = max(8, int(rng.lognormvariate(math.log(450), 0.7)))
        completion_tokens = max(1, int(rng.lognormvariate(math.log(160), 0.8)))
        row.update(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cached_tokens=0,
            cache_write_tokens=0,
            reasoning_tokens=0,
            response_text=" ".join(rng.choices(WORDS, k=rng.randint(10, 40))),
        )
        if price_in is not None:
            row.update(
                cost_usd=(prompt_tokens * price_in + completion_tokens * price_out) / 1e6,
                cost_status="priced",
                price_source="litellm-1.110.2:bundled",
            )
        return row

    def feedback(self, call: dict[str, Any], name: str) -> dict[str, Any]:
        rng = self.rng
        if name == "thumbs":
            score = 1.0 if rng.random() < 0.75 else 0.0
        else:
            score = float(rng.choices((1, 2, 3, 4, 5), (5, 7, 15, 35, 38))[0])
        created = min(call["created_at"] + timedelta(minutes=rng.uniform(0.2, 90)), self.now)
        return {
            "id": time_ordered_id(int(created.timestamp() * 1000), rng.getrandbits(74)),
            "call_id": call["id"],
            "created_at": created,
            "name": name,
            "score": score,
            "comment": rng.choice(COMMENTS) if rng.random() < 0.1 else None,
            "user_id": call["user_id"],
        }

    def eval_runs(self, count: int = 300) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """``count`` runs in candidate/baseline pairs, 100 cases x 2 repeats each."""
        rng, runs, results = self.rng, [], []
        for i in range(count // 2):
            started = self.start + timedelta(seconds=DAYS * 86400 * (i + 0.5) / (count // 2))
            prompt = rng.choice(self.prompt_names)
            versions = PROMPTS[prompt]
            batch = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            for role, index in (("candidate", versions - 1), ("baseline", versions - 2)):
                run_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                outcomes = [rng.random() < 0.85 for _ in range(200)]
                passed = sum(outcomes)
                for n, ok in enumerate(outcomes):
                    results.append(
                        {
                            "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                            "run_id": run_id,
                            "case_id": f"case-{n // 2:03d}",
                            "repeat_index": n % 2,
                            "output": " ".join(rng.choices(WORDS, k=12)),
                            "score": 1.0 if ok else 0.0,
                            "passed": ok,
                            "details": [{"type": "contains", "passed": ok, "score": float(ok)}],
                            "error": None,
                            "latency_ms": rng.uniform(300, 1500),
                            "cost_usd": rng.uniform(1e-5, 1e-3),
                            "cached": False,
                            "call_id": None,
                        }
                    )
                runs.append(
                    {
                        "id": run_id,
                        "batch_id": batch,
                        "role": role,
                        "suite": f"{prompt}-regression",
                        "prompt_name": prompt,
                        "prompt_ref": prompt if role == "candidate" else f"{prompt}@production",
                        "prompt_version": version_id(prompt, index),
                        "git_commit": self.commits[(prompt, index)],
                        "model": "gpt-4o-mini",
                        "started_at": started,
                        "finished_at": started + timedelta(seconds=40),
                        "cases": 100,
                        "results": len(outcomes),
                        "passed": passed,
                        "pass_rate": passed / len(outcomes),
                        "cost_usd": rng.uniform(0.01, 0.2),
                        "cached": rng.randint(0, 50),
                    }
                )
        return runs, results


def seed(url: str, rows: int, now: datetime, spool: Path) -> dict[str, Any]:
    """Write the generated rows through the Writer; return counts and rates."""
    engine = create_engine(url)
    check_schema(engine)
    maker = RowMaker(rows, now)
    writer = Writer(lambda: engine, spool, batch_size=5000, queue_size=4 * CHUNK)
    counts = {"call": 0, "feedback": 0}
    started = time.perf_counter()
    put, stats = writer.put, writer.stats
    reported = 0
    for queued, (kind, row) in enumerate(maker.rows(), 1):
        put(kind, row)
        counts[kind] += 1
        if queued % 1000 == 0:
            while queued - stats.written > 2 * CHUNK:  # keep the queue from spilling
                time.sleep(0.005)
            if counts["call"] - reported >= 100_000:
                reported = counts["call"]
                elapsed = time.perf_counter() - started
                print(f"  {reported:,} calls in {elapsed:.0f} s", file=sys.stderr, flush=True)
    writer.close(timeout=None)
    seconds = time.perf_counter() - started
    if writer.stats.spooled or writer.stats.rejected:
        raise SystemExit(f"the writer spooled or rejected rows while seeding: {writer.stats}")
    with engine.begin() as connection:
        runs, results = maker.eval_runs()
        connection.execute(EVAL_RUNS.insert(), runs)
        connection.execute(EVAL_RESULTS.insert(), results)
        stored = connection.execute(sa.text("SELECT count(*) FROM llm_calls")).scalar_one()
        stored_fb = connection.execute(sa.text("SELECT count(*) FROM feedback")).scalar_one()
    engine.dispose()
    if stored != counts["call"] or stored_fb != counts["feedback"]:
        raise SystemExit(f"stored {stored} calls / {stored_fb} feedback, expected {counts}")
    total = counts["call"] + counts["feedback"]
    return {
        "now": now.isoformat(),
        "calls": counts["call"],
        "feedback": counts["feedback"],
        "seconds": round(seconds, 1),
        "rows_per_s": round(total / seconds),
    }


# -- bulk seeding -------------------------------------------------------------------------

BULK_ABOVE = 1_000_000  # --seed auto: through the Writer up to this many calls, bulk above
BULK_CHUNK = 100_000  # calls per transaction (SQLite) or per COPY (PostgreSQL)
VERSIONS = ROOT / "llmops" / "store" / "migrations" / "versions"
ROLLUP_TABLES = tuple(table.name for table in DAILY_ROLLUPS)  # kept by triggers
JSON_COLUMNS = ("tags", "metadata", "request", "usage_details", "params")
# what a bulk seed writes: the calls' metadata, their content (migration 0016), feedback
BULK_TABLES = {"call": "llm_calls", "content": "llm_call_content", "feedback": "feedback"}
BULK_COLUMNS = {
    "call": tuple(str(c.name) for c in CALLS.columns),
    "content": tuple(str(c.name) for c in CALL_CONTENT.columns),
    "feedback": COLUMNS["feedback"],
}


def migration(name: str) -> Any:
    """A migration module of llmops, imported from its file (its name starts with digits)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", VERSIONS / f"{name}.py")
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot import {VERSIONS / name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def backfill_statements(dialect: str) -> list[str]:
    """The statements with which the migrations fill the rollups and histograms from the
    stored calls and feedback: 0005 (daily rollups) with the user group rollup of 0011 and
    the key rollup of 0015, and 0010 (timing histograms) with the group histograms of 0013,
    then the busy user-days of 0021: the same SQL, from their modules."""
    keys, groups = migration("0015_key_rollup"), migration("0013_timing_groups")
    daily = keys.rollups_0005(keys=True)
    timing = groups.histograms_0010(groups=True)
    statements = [
        daily.dialect_sql(rollup.add_all("llm_calls", dialect), dialect)
        for rollup in daily.CALL_ROLLUPS
    ]
    statements.append(
        daily.upsert_feedback(daily.feedback_counts("feedback", "llm_calls", dialect))
    )
    statements += [timing.add_all(table, "llm_calls", dialect) for table in timing.TABLES]
    # 0021: the busy user-days, each filled by the trigger of its marker (left enabled)
    statements.append(migration("0021_busy_user_days").mark_busy_days(dialect))
    return statements


class BulkChain:
    """One table's hash chain, as one Writer keeps it (llmops.store.chain): each row gets
    the next chain_seq, its content digest and its row hash; the head goes to audit_chains."""

    def __init__(self, kind: str) -> None:
        self.kind, self.id, self.seq, self.last = kind, new_chain_id(), 0, GENESIS
        self.started = datetime.now(UTC)

    def seal(self, row: dict[str, Any]) -> None:
        digest, self.last = link(self.last, self.kind, row)
        self.seq += 1
        row.update(chain_id=self.id, chain_seq=self.seq, content_hash=digest, row_hash=self.last)

    def head(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "table_name": TABLE_OF[self.kind],
            "holder": f"{socket.gethostname()}:{os.getpid()}:bench-bulk"[:200],
            "started_at": self.started,
            "updated_at": datetime.now(UTC),
            "last_seq": self.seq,
            "last_hash": self.last,
        }


def sealed_rows(maker: RowMaker, chains: dict[str, BulkChain]) -> Iterator[tuple[str, dict]]:
    """The generated rows as the Writer stores them: every column (fitted to its table,
    llmops.store.records.fitted) and their place in the hash chain; a call's content
    follows it as a row of kind "content" (llmops.store.records.split_content)."""
    for kind, row in maker.rows():
        stored = fitted(kind, row)  # type: ignore[arg-type]
        chains[kind].seal(stored)
        if kind != "call":
            yield kind, stored
            continue
        (call,), content = split_content([stored])
        yield "call", call
        for item in content:
            yield "content", item


def sqlite_values(kind: str, row: dict[str, Any]) -> tuple[Any, ...]:
    """A row's values as SQLAlchemy binds them on SQLite (JSON as orjson text, times as
    naive UTC text with microseconds)."""
    values = []
    for name in BULK_COLUMNS[kind]:
        value = row[name]
        if value is not None:
            if name in JSON_COLUMNS:
                value = json_text(value)
            elif name == "created_at":
                value = value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
        values.append(value)
    return tuple(values)


def pg_values(kind: str, row: dict[str, Any]) -> tuple[Any, ...]:
    """A row's values for COPY (JSON as the engines' orjson text)."""
    return tuple(
        json_text(row[name]) if name in JSON_COLUMNS and row[name] is not None else row[name]
        for name in BULK_COLUMNS[kind]
    )


def progress(calls: int, started: float) -> None:
    if calls % 1_000_000 == 0:
        elapsed = time.perf_counter() - started
        print(f"  {calls:,} calls in {elapsed:.0f} s", file=sys.stderr, flush=True)


def backfill_progress(statement: str, began: float) -> None:
    table = statement.split()[2]
    seconds = time.perf_counter() - began
    print(f"  backfilled {table} in {seconds:.1f} s", file=sys.stderr, flush=True)


def bulk_sqlite(url: str, maker: RowMaker, chains: dict[str, BulkChain]) -> dict[str, Any]:
    """executemany in transactions of BULK_CHUNK calls, the llmops triggers dropped (their
    SQL saved from sqlite_master), then the migrations' backfill and the triggers again."""
    counts = {"call": 0, "content": 0, "feedback": 0}
    inserts = {
        kind: f"INSERT INTO {BULK_TABLES[kind]} ({', '.join(BULK_COLUMNS[kind])}) "
        f"VALUES ({', '.join('?' * len(BULK_COLUMNS[kind]))})"
        for kind in BULK_TABLES
    }
    connection = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
        connection.execute(f"PRAGMA {pragma}")
    triggers = connection.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
        "AND tbl_name IN ('llm_calls', 'feedback') ORDER BY name"
    ).fetchall()
    connection.execute("BEGIN")
    for name, _ in triggers:
        connection.execute(f"DROP TRIGGER {name}")
    connection.execute("COMMIT")
    started = time.perf_counter()
    try:
        pending: dict[str, list[tuple[Any, ...]]] = {kind: [] for kind in BULK_TABLES}

        def write() -> None:
            connection.execute("BEGIN")
            for kind in BULK_TABLES:  # calls first: feedback refers to them
                connection.executemany(inserts[kind], pending[kind])
                pending[kind].clear()
            connection.execute("COMMIT")

        for kind, row in sealed_rows(maker, chains):
            pending[kind].append(sqlite_values(kind, row))
            counts[kind] += 1
            if kind == "call" and counts["call"] % BULK_CHUNK == 0:
                write()
                progress(counts["call"], started)
        write()
        inserted = time.perf_counter() - started
        connection.execute("BEGIN")
        for statement in backfill_statements("sqlite"):
            began = time.perf_counter()
            connection.execute(statement)
            backfill_progress(statement, began)
        backfilled = time.perf_counter() - started - inserted
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        connection.execute("BEGIN")
        raise
    finally:  # the triggers again, in the backfill's transaction
        for _, sql in triggers:
            connection.execute(sql)
        connection.execute("COMMIT")
        connection.close()
    return {**counts, "insert_s": round(inserted, 1), "backfill_s": round(backfilled, 1)}


def copy_rows(connection: Any, rows: Iterator[tuple[str, dict]], counts: dict[str, int]) -> None:
    """COPY the calls of ``rows``, BULK_CHUNK at a time, each chunk's feedback after it, a
    transaction per chunk; the calls stream to the server while the next are generated."""
    copies = {
        kind: f"COPY {BULK_TABLES[kind]} ({', '.join(BULK_COLUMNS[kind])}) FROM STDIN"
        for kind in BULK_TABLES
    }
    started = time.perf_counter()
    later: dict[str, list[tuple[Any, ...]]] = {"content": [], "feedback": []}
    more = True
    while more:
        more = False
        with connection.cursor() as cursor:
            with cursor.copy(copies["call"]) as copy:
                for kind, row in rows:
                    counts[kind] += 1
                    if kind != "call":
                        later[kind].append(pg_values(kind, row))
                        continue
                    copy.write_row(pg_values(kind, row))
                    if counts["call"] % BULK_CHUNK == 0:
                        more = True
                        break
            # after their calls (a call's content or feedback may follow in the next chunk)
            for kind, waiting in later.items():
                if waiting:
                    with cursor.copy(copies[kind]) as copy:
                        for values in waiting:
                            copy.write_row(values)
                    waiting.clear()
        connection.commit()
        if more:
            progress(counts["call"], started)


def copy_part(url: str, rows: int, now: str, index: int, parts: int, out: Any) -> None:
    """One process of a parallel bulk seed (--bulk-processes): its share of the calls (a
    contiguous stretch of time, see RowMaker.segment), its own chains, its own COPYs."""
    import psycopg

    maker = RowMaker(rows, datetime.fromisoformat(now))
    maker.segment(index, parts)
    chains = {kind: BulkChain(kind) for kind in TABLE_OF}
    counts = {"call": 0, "content": 0, "feedback": 0}
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as connection:
        copy_rows(connection, sealed_rows(maker, chains), counts)
    out.put({**counts, "heads": [chain.head() for chain in chains.values() if chain.seq]})


def bulk_postgres(
    url: str, maker: RowMaker, chains: dict[str, BulkChain], parts: int = 1
) -> dict[str, Any]:
    """COPY of BULK_CHUNK calls at a time (their feedback after them), the llmops triggers
    disabled (DISABLE TRIGGER USER), then ANALYZE, the migrations' backfill and ENABLE.
    With ``parts`` > 1, that many processes generate and COPY a share each."""
    import psycopg

    from llmops.store.partitions import ensure_partitions, month_of, next_month

    months = [month_of(maker.start)]  # llm_calls is partitioned by month (migration 0012)
    while months[-1] < month_of(maker.now):
        months.append(next_month(months[-1]))
    engine = create_engine(url)
    ensure_partitions(engine, maker.now, months=months)
    engine.dispose()
    counts: dict[str, Any] = {"call": 0, "content": 0, "feedback": 0, "heads": []}
    connection = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
    for table in ("llm_calls", "feedback"):
        connection.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
    connection.commit()
    started = time.perf_counter()
    try:
        if parts == 1:
            copy_rows(connection, sealed_rows(maker, chains), counts)
        else:
            context = multiprocessing.get_context("spawn")
            out = context.Queue()
            children = [
                context.Process(
                    target=copy_part,
                    args=(url, len(maker.all_offsets), maker.now.isoformat(), i, parts, out),
                )
                for i in range(parts)
            ]
            for child in children:
                child.start()
            for _ in children:
                while True:
                    try:
                        part = out.get(timeout=5)
                        break
                    except queue.Empty:
                        if any(child.exitcode for child in children):
                            raise SystemExit("a seeding process failed") from None
                for key in ("call", "content", "feedback", "heads"):
                    counts[key] += part[key]
            for child in children:
                child.join()
                if child.exitcode:
                    raise SystemExit(f"a seeding process failed (exit {child.exitcode})")
        inserted = time.perf_counter() - started
        connection.execute("ANALYZE llm_calls")
        connection.execute("ANALYZE feedback")
        connection.execute("ANALYZE llm_call_content")
        connection.execute("SET work_mem = '256MB'")  # the backfill's sorts; this session only
        for statement in backfill_statements("postgresql"):
            began = time.perf_counter()
            connection.execute(statement)
            backfill_progress(statement, began)
        connection.execute("RESET work_mem")
        connection.commit()
        backfilled = time.perf_counter() - started - inserted
    finally:
        connection.rollback()
        for table in ("llm_calls", "feedback"):
            connection.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
        connection.commit()
        connection.close()
    return {**counts, "insert_s": round(inserted, 1), "backfill_s": round(backfilled, 1)}


def bulk_seed(url: str, rows: int, now: datetime, parts: int = 1) -> dict[str, Any]:
    """The same generated calls and feedback as `seed`, inserted directly (see the module
    docstring); then the chains' heads and the eval runs."""
    engine = create_engine(url)
    check_schema(engine)
    engine.dispose()
    maker = RowMaker(rows, now)
    chains = {kind: BulkChain(kind) for kind in TABLE_OF}
    started = time.perf_counter()
    if url.startswith("sqlite"):
        result = bulk_sqlite(url, maker, chains)
    else:
        result = bulk_postgres(url, maker, chains, parts)
    engine = create_engine(url)
    with engine.begin() as connection:
        heads = [chain.head() for chain in chains.values() if chain.seq]
        heads += result.get("heads", [])
        connection.execute(sa.insert(AUDIT_CHAINS), heads)
        runs, results = maker.eval_runs()
        connection.execute(EVAL_RUNS.insert(), runs)
        connection.execute(EVAL_RESULTS.insert(), results)
        stored = connection.execute(sa.text("SELECT count(*) FROM llm_calls")).scalar_one()
        stored_fb = connection.execute(sa.text("SELECT count(*) FROM feedback")).scalar_one()
    engine.dispose()
    seconds = time.perf_counter() - started
    if stored != result["call"] or stored_fb != result["feedback"]:
        raise SystemExit(f"stored {stored} calls / {stored_fb} feedback, expected {result}")
    return {
        "now": now.isoformat(),
        "calls": result["call"],
        "feedback": result["feedback"],
        "seconds": round(seconds, 1),
        "rows_per_s": round((result["call"] + result["feedback"]) / seconds),
        "seeded_by": "bulk" if parts == 1 else f"bulk, {parts} processes",
        "insert_s": result["insert_s"],
        "backfill_s": result["backfill_s"],
    }


def seed_with(method: str, url: str, rows: int, now: datetime, parts: int = 1) -> dict[str, Any]:
    """Seed through the Writer or in bulk (``auto``: bulk above BULK_ABOVE calls)."""
    if method == "bulk" or (method == "auto" and rows > BULK_ABOVE):
        return bulk_seed(url, rows, now, parts if url.startswith("postgresql") else 1)
    with tempfile.TemporaryDirectory(prefix="llmops-bench-spool-") as spool:
        return {**seed(url, rows, now, Path(spool)), "seeded_by": "Writer"}


def table_rows(url: str, table: str) -> list[tuple[Any, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            width = len(connection.exec_driver_sql(f"SELECT * FROM {table} LIMIT 0").keys())
            order = ", ".join(str(i + 1) for i in range(width))
            return [
                tuple(r)
                for r in connection.exec_driver_sql(f"SELECT * FROM {table} ORDER BY {order}")
            ]
    finally:
        engine.dispose()


def compare_seeds(label: str, writer_url: str, bulk_url: str) -> bool:
    """The rollup tables (and the calls and feedback, but for their chain) of a Writer seed
    and a bulk seed of the same rows, and the bulk seed's chains verified."""
    from llmops.audit.verify import verify

    ok = True
    chained = {"chain_id", "chain_seq", "row_hash"}  # each seed has its own chain
    compared = {
        "llm_calls": [c for c in BULK_COLUMNS["call"] if c not in chained],
        "llm_call_content": list(BULK_COLUMNS["content"]),
        "feedback": [c for c in COLUMNS["feedback"] if c not in chained],
    }
    for table in (*ROLLUP_TABLES, *compared):
        if table in compared:
            query = f"(SELECT {', '.join(compared[table])} FROM {table}) AS t"
        else:
            query = table
        a, b = table_rows(writer_url, query), table_rows(bulk_url, query)
        equal = same(a, b)
        ok &= equal
        print(
            f"  {label} {table}: Writer {len(a):,} rows, bulk {len(b):,} rows: "
            + ("identical" if equal else "DIFFERENT"),
            flush=True,
        )
    for name, url in (("Writer", writer_url), ("bulk", bulk_url)):
        engine = create_engine(url)
        try:
            result = verify(engine)
        finally:
            engine.dispose()
        ok &= result.ok
        print(
            f"  {label} llmops.audit.verify of the {name} seed: "
            + ("ok" if result.ok else f"FAILED {result.breaks[:2]}")
            + f" ({', '.join(f'{k} {v:,}' for k, v in result.checked.items())} rows checked)",
            flush=True,
        )
    return ok


def check_bulk(args: argparse.Namespace) -> int:
    """--check-bulk: seed the same rows through the Writer and in bulk; compare."""
    rows = args.rows if args.rows_given else 20_000
    now = datetime.now(UTC).replace(microsecond=0)
    ok = True
    with tempfile.TemporaryDirectory(prefix="llmops-bench-check-") as folder:
        if not args.no_sqlite:
            urls = {m: f"sqlite:///{folder}/{m}.db" for m in ("writer", "bulk")}
            for method, url in urls.items():
                meta = seed_with(method, url, rows, now)
                print(f"SQLite, {method}: {seeded(meta)}", flush=True)
            ok &= compare_seeds("SQLite", urls["writer"], urls["bulk"])
        if args.postgres:
            with throwaway_postgres() as server:
                urls = {m: server.new_database(f"check_{m}") for m in ("writer", "bulk")}
                for method, url in urls.items():
                    meta = seed_with(method, url, rows, now)
                    print(f"PostgreSQL, {method}: {seeded(meta)}", flush=True)
                ok &= compare_seeds("PostgreSQL", urls["writer"], urls["bulk"])
    print(
        f"\nBulk seed against Writer seed, {rows:,} calls: "
        + ("the same rollups and rows, chains verified" if ok else "DIFFERENT (see above)")
    )
    return 0 if ok else 1


def cached_sqlite(data_dir: Path, rows: int, method: str) -> tuple[str, dict[str, Any]]:
    """The seeded SQLite file for ``rows`` calls: reused when complete, else seeded now
    (through the Writer or in bulk, see `seed_with`)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / f"llmops-{rows}-v{DATA_FORMAT}.db"
    meta_path = path.with_suffix(".json")
    url = f"sqlite:///{path}"
    if path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        meta["reused"] = True
        engine = create_engine(url, busy_timeout_ms=600_000)
        with engine.connect() as connection:
            before = current_revision(connection)
        if before != HEAD_REVISION:  # seeded by an older llmops: migrate it, as users would
            started = time.perf_counter()
            upgrade(engine)
            seconds = time.perf_counter() - started
            print(
                f"Migrated the cached file from schema {before} to {HEAD_REVISION}: {seconds:.1f} s"
            )
        engine.dispose()
        return url, meta
    for suffix in ("", "-wal", "-shm", ".migrate-lock"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    now = datetime.now(UTC).replace(microsecond=0)
    print(f"Seeding {rows:,} calls into {path} ...", file=sys.stderr, flush=True)
    meta = seed_with(method, url, rows, now)
    engine = create_engine(url)
    with engine.connect() as connection:  # fold the WAL into the file before it is reused
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    meta["bytes"] = path.stat().st_size
    meta_path.write_text(json.dumps(meta, indent=2))
    meta["reused"] = False
    return url, meta


@contextlib.contextmanager
def postgres_cluster(
    data_dir: Path, rows: int, keep: bool
) -> Iterator[tuple[Any, dict[str, Any] | None, Path | None]]:
    """A throwaway PostgreSQL cluster, or with ``keep`` one that outlives the run: its
    folder is recorded in DATA_DIR/llmops-ROWS-vN-pg.json once seeded, and a later run
    with --keep-postgres starts it again instead of seeding (the server is stopped at the
    end, the folder kept). Yields the server, the recorded seeding (or None) and the path
    where it is to be recorded (None: throwaway)."""
    if not keep:
        with throwaway_postgres() as server:
            yield server, None, None
        return
    from tests.fixtures.postgres import PostgresServer, find_bindir

    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL server binaries (initdb, pg_ctl) not found")
    data_dir.mkdir(parents=True, exist_ok=True)
    meta_path = data_dir / f"llmops-{rows}-v{DATA_FORMAT}-pg.json"
    server, meta = PostgresServer(bindir), None
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        server.base_dir = Path(meta["base_dir"])
        if not (server.base_dir / "data").is_dir():
            server.base_dir, meta = None, None
    server.start()
    try:
        yield server, meta, meta_path
    finally:
        server.stop()
        if meta is None and not meta_path.exists():  # never seeded completely: not kept
            server.destroy()


def database_size(url: str, calls: int) -> str:
    """The database's size on disk and per call, and its largest relations (PostgreSQL)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            if engine.dialect.name == "sqlite":
                path = Path(url.removeprefix("sqlite:///"))
                size = sum(
                    Path(f"{path}{s}").stat().st_size
                    for s in ("", "-wal")
                    if Path(f"{path}{s}").exists()
                )
                return f"{size / 1e9:.2f} GB, {size / calls:,.0f} bytes per call"
            size = connection.exec_driver_sql("SELECT pg_database_size(current_database())")
            size = int(size.scalar_one())
            tables = connection.exec_driver_sql(
                "SELECT relname, pg_table_size(oid), pg_indexes_size(oid) FROM pg_class "
                "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace "
                "ORDER BY pg_total_relation_size(oid) DESC LIMIT 8"
            ).all()
    finally:
        engine.dispose()
    parts = ", ".join(f"{n} {t / 1e9:.2f} + indexes {i / 1e9:.2f} GB" for n, t, i in tables)
    return f"{size / 1e9:.2f} GB, {size / calls:,.0f} bytes per call ({parts})"


# -- timing -----------------------------------------------------------------------------


@dataclass
class View:
    name: str
    filters: q.Filters


Step = tuple[str, Callable[[], Any]]


def steps(engine: sa.Engine, view: View, now: datetime) -> dict[str, Step]:
    """Every query function a page calls, bound to the view; keys are display names."""
    f = view.filters
    detail_id = q.calls_page(engine, f, limit=1)[0][0]["id"]
    batch = q.eval_runs(engine, limit=1)[0].batch_id  # the Evals page opens the newest batch
    # the Prompts page compares the two newest versions of a prompt with two in use
    in_use: dict[str, list[str]] = {}
    for v in sorted(q.prompt_versions(engine, f), key=lambda v: v.last_seen, reverse=True):
        if v.prompt_version:
            in_use.setdefault(v.prompt_name, []).append(v.prompt_version)
    compared = next(
        ((name, tuple(found[:2])) for name, found in in_use.items() if len(found) > 1),
        ("", ()),
    )
    return {
        "spend_periods": ("spend_periods", lambda: q.spend_periods(engine, now)),
        **{
            f"daily_spend({by})": ("daily_spend", lambda by=by: q.daily_spend(engine, f, by, TOP))
            for by in ("model", "tag", "user", "key")
        },
        "daily_totals": ("daily_totals", lambda: q.daily_totals(engine, f, 50.0)),
        "overview": ("overview", lambda: q.overview(engine, f)),
        "filter_options": ("filter_options", lambda: q.filter_options(engine)),
        "prompt_versions": ("prompt_versions", lambda: q.prompt_versions(engine, f)),
        "calls_page(0)": ("calls_page", lambda: q.calls_page(engine, f)),
        f"calls_page({DEEP_OFFSET})": (
            "calls_page",
            lambda: q.calls_page(engine, f, offset=DEEP_OFFSET),
        ),
        **{
            f"calls_page(sort={order})": (
                "calls_page",
                lambda order=order: q.calls_page(engine, f, order=order),
            )
            for order in ("cost", "latency", "tokens")
        },
        "version_prompts": ("version_prompts", lambda: q.version_prompts(engine)),
        "compare_versions": (
            "compare_versions",
            lambda: q.compare_versions(engine, f, compared[0], compared[1]),
        ),
        "call_detail": ("call_detail", lambda: q.call_detail(engine, detail_id)),
        "feedback_distribution": (
            "feedback_distribution",
            lambda: q.feedback_distribution(engine, f),
        ),
        "feedback_trend": ("feedback_trend", lambda: q.feedback_trend(engine, f)),
        "feedback_comments": ("feedback_comments", lambda: q.feedback_comments(engine, f)),
        "eval_runs": ("eval_runs", lambda: q.eval_runs(engine)),
        "eval_comparisons": ("eval_comparisons", lambda: history.comparisons(engine, batch)),
        "budget_status(10)": ("budget_status", lambda: q.budget_status(engine, BUDGETS, now)),
    }


# Ten budgets of every kind, as a team might declare them (the Overview's Budgets table).
BUDGETS = [
    Budget(name="all-day", window="day", limit_usd=500),
    Budget(name="all-week", window="week", limit_usd=3000),
    Budget(name="all-month", window="month", limit_usd=10000),
    Budget(name="mini-day", window="day", limit_usd=50, scope={"model": "gpt-4o-mini"}),
    Budget(name="answer-month", window="month", limit_usd=900, scope={"prompt": "support/answer"}),
    Budget(name="eval-week", window="week", limit_usd=100, scope={"source": "eval"}),
    Budget(name="beta-month", window="month", limit_usd=200, scope={"tag": "beta"}),
    Budget(name="each-user-day", window="day", limit_usd=5, scope={"user": "each"}),
    Budget(name="each-user-month", window="month", limit_usd=50, scope={"user": "each"}),
    Budget(name="each-model-week", window="week", limit_usd=1000, scope={"model": "each"}),
]


# What each page of dashboard/ calls when it opens (every page shows the sidebar, whose
# filter choices come from filter_options; the month's budget comes from spend_periods).
OVERVIEW = ["filter_options", "spend_periods", "overview", "daily_totals"]
PAGES = {
    "Overview": [*OVERVIEW, "daily_spend(model)"],
    "Overview, split by tag": [*OVERVIEW, "daily_spend(tag)"],
    "Overview, split by user": [*OVERVIEW, "daily_spend(user)"],
    "Overview, split by key": [*OVERVIEW, "daily_spend(key)"],
    "Overview with 10 budgets": [*OVERVIEW, "daily_spend(model)", "budget_status(10)"],
    "Prompts": ["filter_options", "version_prompts", "prompt_versions", "compare_versions"],
    "Calls": ["filter_options", "version_prompts", "calls_page(0)", "call_detail"],
    **{
        f"Calls, sorted by {order}": [
            "filter_options", "version_prompts", f"calls_page(sort={order})", "call_detail",
        ]
        for order in ("cost", "latency", "tokens")
    },
    f"Calls, page at offset {DEEP_OFFSET:,}": [
        "filter_options", f"calls_page({DEEP_OFFSET})", "call_detail",
    ],
    "Feedback": [
        "filter_options", "feedback_distribution", "feedback_trend", "feedback_comments",
    ],
    "Evals": ["filter_options", "eval_runs", "eval_comparisons"],
}  # fmt: skip


@dataclass
class Timing:
    view: str
    functions: dict[str, float]  # display name -> median seconds
    pages: dict[str, float]  # page -> median of per-run sums
    in_view: int


def measure(engine: sa.Engine, view: View, now: datetime, runs: int) -> Timing:
    bound = steps(engine, view, now)
    times: dict[str, list[float]] = {name: [] for name in bound}
    for _ in range(runs):
        gc.collect()
        for name, (_, call) in bound.items():
            started = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - started)
    pages = {
        page: statistics.median(sum(times[n][i] for n in names) for i in range(runs))
        for page, names in PAGES.items()
    }
    in_view = q.calls_page(engine, view.filters, limit=1)[1]
    return Timing(
        view.name, {n: statistics.median(t) for n, t in times.items()}, pages, int(in_view)
    )


def views(now: datetime) -> list[View]:
    """The dashboard's default range and a filtered one, as its sidebar builds them: the
    last 30 whole UTC days, today included (``Filters.days``), as the CLI's ``--days``
    (``Filters.recent_days``, timed in ``cli_commands``)."""
    first, last = now.date() - timedelta(days=29), now.date()
    return [
        View("default (last 30 days)", q.Filters.days(first, last)),
        View(
            f"filtered ({FILTER_MODEL}, {FILTER_PROMPT})",
            q.Filters.days(first, last, models=(FILTER_MODEL,), prompts=(FILTER_PROMPT,)),
        ),
        # no histogram has users: the percentiles read this user's calls of the range
        View(f"one user ({FILTER_USER})", q.Filters.days(first, last, users=(FILTER_USER,))),
    ]


def print_timings(label: str, timings: list[Timing]) -> None:
    print(f"\n### {label}\n")
    header = " | ".join(t.view for t in timings)
    print(f"| page | {header} |")
    print("|---" * (len(timings) + 1) + "|")
    for page in PAGES:
        cells = []
        for t in timings:
            s = t.pages[page]
            cells.append(f"{s:.3f} s {'ok' if s < GOAL_S else '**over 1 s**'}")
        print(f"| {page} | {' | '.join(cells)} |")
    print(f"\nPer function, median s ({' / '.join(f'{t.in_view:,} calls' for t in timings)}):\n")
    print(f"| function | {header} |")
    print("|---" * (len(timings) + 1) + "|")
    for name in timings[0].functions:
        print(f"| `{name}` | {' | '.join(f'{t.functions[name]:.3f}' for t in timings)} |")
    sys.stdout.flush()


# -- explaining -------------------------------------------------------------------------


@contextlib.contextmanager
def recorded_statements(engine: sa.Engine) -> Iterator[list[dict[str, Any]]]:
    """Every statement the engine runs inside the block, with its parameters and time."""
    statements: list[dict[str, Any]] = []

    def before(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        conn.info["bench_started"] = time.perf_counter()

    def after(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        seconds = time.perf_counter() - conn.info.pop("bench_started")
        statements.append({"sql": statement, "params": parameters, "seconds": seconds})

    sa.event.listen(engine, "before_cursor_execute", before)
    sa.event.listen(engine, "after_cursor_execute", after)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", before)
        sa.event.remove(engine, "after_cursor_execute", after)


def explain(engine: sa.Engine, view: View, now: datetime, names: list[str]) -> None:
    """Each statement of the named functions: its time (after a warm-up) and its plan."""
    bound = steps(engine, view, now)
    explain_calls(engine, view.name, {name: bound[name][1] for name in names})


def explain_calls(engine: sa.Engine, label: str, calls: dict[str, Callable[[], Any]]) -> None:
    postgres = engine.dialect.name == "postgresql"
    for name, call in calls.items():
        call()  # warm the caches like the timed runs
        with recorded_statements(engine) as statements:
            call()
        print(f"\n#### `{name}`, {label}\n")
        for s in statements:
            if s["sql"].lstrip().upper().startswith(("PRAGMA", "SELECT PG_", "SHOW")):
                continue
            print(f"{s['seconds']:.3f} s:\n```sql\n{s['sql'].strip()}\n```")
            prefix = "EXPLAIN (ANALYZE, BUFFERS) " if postgres else "EXPLAIN QUERY PLAN "
            with engine.connect() as connection:
                plan = connection.exec_driver_sql(prefix + s["sql"], s["params"]).all()
            if postgres:
                lines = [row[0] for row in plan]
            else:
                lines = [f"{'  ' * depth(plan, row)}{row[-1]}" for row in plan]
            print("```\n" + "\n".join(lines) + "\n```")
    sys.stdout.flush()


def depth(plan: list[Any], row: Any) -> int:
    """Nesting level of an EXPLAIN QUERY PLAN row (rows are id, parent, notused, detail)."""
    parents = {r[0]: r[1] for r in plan}
    level, parent = 0, row[1]
    while parent:
        level += 1
        parent = parents.get(parent, 0)
    return level


def slow_functions(timings: list[Timing]) -> list[str]:
    """Functions of pages over the goal that take a tenth of the goal or more."""
    names: list[str] = []
    for t in timings:
        for page, seconds in t.pages.items():
            if seconds >= GOAL_S:
                for name in PAGES[page]:
                    if t.functions[name] >= GOAL_S / 10 and name not in names:
                        names.append(name)
    return names


# -- the CLI: llmops spend and llmops calls -----------------------------------------------

SPEND_BY = ("model", "prompt", "user", "tag", "source", "key")


def cli_commands(engine: sa.Engine, now: datetime) -> dict[str, Callable[[], Any]]:
    """The queries `llmops spend` and `llmops calls` run (llmops/cli/usage.py), as of the
    seeding moment; each command's schema check (check_schema) is timed apart."""
    user = FILTER_USER

    def spend(days: int, by: str) -> Callable[[], Any]:
        filters = q.Filters.recent_days(days, now.date())
        return lambda: (
            q.daily_spend(engine, filters, by=by, top=None),
            q.spend_total(engine, filters),
        )

    def calls(limit: int = 20, days: int = 7, **kwargs: Any) -> Callable[[], Any]:
        filters = q.Filters.recent_days(days, now.date(), **kwargs)
        return lambda: q.calls_page(engine, filters, limit=limit)

    commands: dict[str, Callable[[], Any]] = {
        "check_schema (every command)": lambda: check_schema(engine),
        **{f"llmops spend --by {by}": spend(30, by) for by in SPEND_BY},
        "llmops spend --days 90": spend(90, "model"),
        "llmops spend --days 90 --by user": spend(90, "user"),
        "llmops calls": calls(),
        "llmops calls --days 30": calls(days=30),
        "llmops calls --days 30 --limit 10000": calls(10_000, 30),
        f"llmops calls --days 30 --model {FILTER_MODEL} --prompt {FILTER_PROMPT}": calls(
            days=30, models=(FILTER_MODEL,), prompts=(FILTER_PROMPT,)
        ),
        f"llmops calls --days 30 --user {user}": calls(days=30, users=(user,)),
        "llmops calls --days 30 --status error": calls(days=30, statuses=("error",)),
        "llmops calls --days 90 --status cancelled --source eval": calls(
            days=90, statuses=("cancelled",), sources=("eval",)
        ),
    }
    return commands


def measure_cli(engine: sa.Engine, now: datetime, runs: int, label: str, explain: bool) -> None:
    commands = cli_commands(engine, now)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        gc.collect()
        for name, call in commands.items():
            started = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - started)
    print(f"\n### {label}: CLI queries, median of {runs} runs\n")
    print("| command | s |\n|---|---|")
    for name, values in times.items():
        seconds = statistics.median(values)
        print(f"| `{name}` | {seconds:.3f} {'' if seconds < GOAL_S else '**over 1 s**'} |")
    slow = {n: commands[n] for n, v in times.items() if statistics.median(v) >= GOAL_S}
    if explain and slow:
        explain_calls(engine, "CLI", slow)
    sys.stdout.flush()


# -- the baseline: every figure from the calls --------------------------------------------


@contextlib.contextmanager
def without_rollups() -> Iterator[None]:
    """Inside the block, queries sum the calls themselves, as before migration 0005."""
    rollups.READ_ROLLUPS = False
    try:
        yield
    finally:
        rollups.READ_ROLLUPS = True


def same(a: Any, b: Any) -> bool:
    """Equal, up to float rounding (sums in another order differ in the last bits)."""
    if isinstance(a, float | int) and isinstance(b, float | int):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if hasattr(a, "__dataclass_fields__") and type(a) is type(b):
        return all(same(getattr(a, k), getattr(b, k)) for k in a.__dataclass_fields__)
    return a == b


def rollup_differences(engine: sa.Engine, now: datetime) -> list[str]:
    """The functions whose figures differ with and without the rollups (should be none)."""
    differences = []
    for view in views(now):
        for name, (_, call) in steps(engine, view, now).items():
            with without_rollups():
                expected = call()
            if not same(call(), expected):
                differences.append(f"{name} ({view.name})")
    return differences


def ingest_cost(rows: int, spool: Path) -> str:
    """Writer rows/s into a fresh SQLite file with the schema llmops creates, and with the
    rollup triggers dropped, alternating."""
    rates: dict[bool, list[float]] = {False: [], True: []}
    now = datetime.now(UTC).replace(microsecond=0)
    with tempfile.TemporaryDirectory(prefix="llmops-bench-ingest-") as folder:
        for repetition in range(2):
            for triggers in (True, False) if repetition == 0 else (False, True):
                url = f"sqlite:///{folder}/ingest-{repetition}-{triggers}.db"
                engine = create_engine(url)
                check_schema(engine)
                if not triggers:
                    with engine.begin() as connection:
                        names = connection.exec_driver_sql(
                            "SELECT name FROM sqlite_master WHERE type = 'trigger'"
                        ).scalars()
                        for name in list(names):
                            connection.exec_driver_sql(f"DROP TRIGGER {name}")
                engine.dispose()
                rates[triggers].append(seed(url, rows, now, spool)["rows_per_s"])
    with_triggers, without = statistics.median(rates[True]), statistics.median(rates[False])
    return (
        f"Writer ingest into SQLite, {rows:,} calls and their feedback (median of 2 each): "
        f"{with_triggers:,.0f} rows/s with the rollup triggers, {without:,.0f} rows/s with "
        f"them dropped ({with_triggers / without - 1:+.0%})"
    )


# -- one backend ------------------------------------------------------------------------


def run_backend(label: str, url: str, now: datetime, args: argparse.Namespace) -> None:
    engine = create_engine(url)
    try:
        timings = [measure(engine, view, now, args.runs) for view in views(now)]
        print_timings(f"{label}: {args.rows:,} calls, median of {args.runs} runs", timings)
        print(f"Load average: {load()}", flush=True)
        if not args.no_cli:
            measure_cli(engine, now, args.runs, label, args.explain)
            print(f"Load average: {load()}", flush=True)
        if args.explain:
            for view in views(now):
                explain(engine, view, now, slow_functions(timings) or ["overview"])
        if not args.baseline:
            return
        with without_rollups():
            raw = [measure(engine, view, now, args.runs) for view in views(now)]
        print_timings(f"{label}, every figure from the calls (no rollups)", raw)
        differences = rollup_differences(engine, now)
        print(
            "\nWith and without the rollups, every function returns the same figures: "
            + ("yes" if not differences else f"NO, they differ in {', '.join(differences)}")
        )
    finally:
        engine.dispose()


APPTEST = """
import json, sys, time
started = time.perf_counter()
import streamlit as st
from streamlit.testing.v1 import AppTest
imported = time.perf_counter() - started
walls, metrics, errors = [], {}, []
for _ in range(int(sys.argv[2])):
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(sys.argv[1], default_timeout=120)
    started = time.perf_counter()
    at.run()
    walls.append(time.perf_counter() - started)
    errors = [str(e.value) for e in at.exception]
    metrics = {m.label: m.value for m in at.metric}
print(json.dumps({"imported": imported, "walls": walls, "errors": errors, "metrics": metrics}))
"""


def run_apptest(url: str, runs: int = 3) -> None:
    """Wall time of the overview page (the default page of dashboard/app.py) through
    AppTest, in a fresh process (the dashboard has its own `_common` module), with the
    Streamlit caches cleared before each run."""
    app = ROOT / "dashboard" / "app.py"
    overview_page = ROOT / "dashboard" / "pages" / "overview.py"
    if not (app.is_file() and overview_page.is_file()):
        print(f"\nAppTest: skipped, {app} or {overview_page} does not exist yet")
        return
    env = {**os.environ, "LLMOPS_DATABASE_URL": url}
    for name in ("LLMOPS_DAILY_BUDGET", "LLMOPS_MONTHLY_BUDGET", "LLMOPS_DASHBOARD_PASSWORD"):
        env.pop(name, None)
    result = subprocess.run(
        [sys.executable, "-c", APPTEST, str(app), str(runs)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if result.returncode != 0:
        print(f"\nAppTest: the process failed (exit {result.returncode}):\n{result.stderr}")
        return
    report = json.loads(result.stdout.strip().splitlines()[-1])
    walls = report["walls"]
    print(
        f"\nAppTest of dashboard/app.py (default page: Overview) on the SQLite file, in a fresh "
        f"process, caches cleared before each run: "
        f"{', '.join(f'{w:.2f}' for w in walls)} s (median {statistics.median(walls):.2f} s; "
        f"importing streamlit took {report['imported']:.2f} s before the first)"
    )
    if report["errors"]:
        print(f"  the page raised: {report['errors']}")
    print(f"  metrics shown: {report['metrics']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None, help="calls to seed (1,000,000)")
    parser.add_argument("--quick", action="store_true", help="100,000 calls")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per function")
    parser.add_argument(
        "--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "llmops-bench"
    )
    parser.add_argument("--postgres", action="store_true", help="also a throwaway PostgreSQL")
    parser.add_argument("--no-sqlite", action="store_true", help="skip SQLite (with --postgres)")
    parser.add_argument(
        "--keep-postgres",
        action="store_true",
        help="keep the seeded PostgreSQL cluster (and reuse it next time) instead of a throwaway",
    )
    parser.add_argument(
        "--seed",
        choices=("auto", "writer", "bulk"),
        default="auto",
        help=f"how to seed: the Writer, bulk, or auto (bulk above {BULK_ABOVE:,} calls)",
    )
    parser.add_argument(
        "--bulk-processes",
        type=int,
        default=1,
        help="PostgreSQL bulk seed: generate and COPY in N processes (other random streams)",
    )
    parser.add_argument(
        "--check-bulk",
        action="store_true",
        help="only check that bulk and Writer seeds of 20,000 calls (or --rows) agree",
    )
    parser.add_argument("--explain", action="store_true", help="plans of the slow functions")
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="also without the rollups (from the calls), and the triggers' ingest cost",
    )
    parser.add_argument(
        "--as-of",
        type=datetime.fromisoformat,
        default=None,
        help="time the views as of this UTC moment (not after the seeding's now) instead of "
        "the seeding's now: e.g. 23:59 of the day before, for a partial day of 24 hours",
    )
    parser.add_argument("--no-apptest", action="store_true", help="skip the AppTest run")
    parser.add_argument("--no-cli", action="store_true", help="skip the CLI queries")
    parser.add_argument(
        "--seed-only", action="store_true", help="seed (and keep) the databases, time nothing"
    )
    args = parser.parse_args()
    args.rows_given = args.rows is not None or args.quick
    args.rows = 100_000 if args.quick else args.rows or 1_000_000
    if args.check_bulk:
        return check_bulk(args)
    if args.no_sqlite and not args.postgres:
        parser.error("--no-sqlite needs --postgres")
    now = datetime.now(UTC).replace(microsecond=0)
    print(f"Load average before: {load()}")
    if not args.no_sqlite:
        url, meta = cached_sqlite(args.data_dir, args.rows, args.seed)
        now = datetime.fromisoformat(meta["now"])
        how = "reused" if meta["reused"] else "seeded now"
        print(
            f"SQLite file {url.removeprefix('sqlite:///')} ({how}): {meta['calls']:,} calls, "
            f"{meta['feedback']:,} feedback rows, {meta['bytes'] / 1e6:,.0f} MB; seeded "
            f"{seeding(meta)}; now = {meta['now']}"
        )
        print(f"SQLite size: {database_size(url, meta['calls'])}")
        print(f"Load average: {load()}", flush=True)
        if not args.seed_only:
            run_backend("SQLite", url, as_of(args, now), args)
        if args.baseline:
            with tempfile.TemporaryDirectory(prefix="llmops-bench-spool-") as spool:
                print(f"\n{ingest_cost(min(args.rows, 100_000), Path(spool))}")
        if not args.no_apptest and not args.seed_only:
            run_apptest(url)
    if args.postgres:
        with postgres_cluster(args.data_dir, args.rows, args.keep_postgres) as (
            server,
            kept,
            meta_path,
        ):
            pg_url = server.url_for("bench")
            if kept is not None:
                pg_meta = kept
                now = datetime.fromisoformat(pg_meta["now"])
                how = f"reused from {pg_meta['base_dir']}"
            else:
                pg_url = server.new_database("bench")
                print(f"\nSeeding {args.rows:,} calls into PostgreSQL ...", file=sys.stderr)
                pg_meta = seed_with(args.seed, pg_url, args.rows, now, args.bulk_processes)
                started = time.perf_counter()
                engine = create_engine(pg_url)
                with engine.connect() as connection:
                    connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                        "VACUUM ANALYZE"
                    )
                engine.dispose()
                pg_meta["vacuum_s"] = round(time.perf_counter() - started, 1)
                if meta_path is not None:
                    meta_path.write_text(
                        json.dumps({**pg_meta, "base_dir": str(server.base_dir)}, indent=2)
                    )
                how = "seeded now"
            print(
                f"\nPostgreSQL 15 (fsync off, default memory settings; {how}): "
                f"{pg_meta['calls']:,} calls, {pg_meta['feedback']:,} feedback rows seeded "
                f"{seeding(pg_meta)}, then VACUUM ANALYZE ({pg_meta['vacuum_s']} s); "
                f"now = {pg_meta['now']}"
            )
            print(f"PostgreSQL size: {database_size(pg_url, pg_meta['calls'])}")
            print(f"Load average: {load()}", flush=True)
            if not args.seed_only:
                run_backend("PostgreSQL", pg_url, as_of(args, now), args)
    print(f"\nLoad average after: {load()}")
    return 0


def as_of(args: argparse.Namespace, now: datetime) -> datetime:
    """The moment the views end: ``--as-of`` (checked against the seeding's now), else now."""
    if args.as_of is None:
        return now
    moment: datetime = args.as_of.replace(tzinfo=args.as_of.tzinfo or UTC)
    if moment > now:
        raise SystemExit(f"--as-of {moment.isoformat()} is after the seeding's now {now}")
    print(f"Views as of {moment.isoformat()} (--as-of; the seeding's now: {now.isoformat()})")
    return moment


def seeded(meta: dict[str, Any]) -> str:
    return f"{meta['calls']:,} calls, {meta['feedback']:,} feedback, {seeding(meta)}"


def seeding(meta: dict[str, Any]) -> str:
    """How a database was seeded, and how fast."""
    how = meta.get("seeded_by", "Writer")
    text = f"{how if how.startswith('bulk') else 'through the Writer'} in {meta['seconds']:,} s"
    text += f" = {meta['rows_per_s']:,} rows/s"
    if how.startswith("bulk"):
        text += f" (inserts {meta['insert_s']:,} s, rollup backfill {meta['backfill_s']:,} s)"
    return text


def load() -> str:
    """The 1, 5 and 15 minute load averages (2 cores here: above 2, something else runs)."""
    return " / ".join(f"{v:.2f}" for v in os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())
