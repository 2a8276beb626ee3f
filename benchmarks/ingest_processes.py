"""Ingest from several processes: calls per second that N Writers sustain into one database.

N OS processes (multiprocessing, spawn) each build their own call rows (benchmarks/ingest.py's
`build_rows`, a seed per process so that ids differ), open their own engine and their own
`llmops.store.writer.Writer`, constructed as the gateway constructs it (batch_size 1000,
queue 20,000, linger 0.2 s, retry 0.5 s, busy timeout 5 s, check_schema as its `prepare`),
then wait at a barrier. On "go" each puts its rows as fast as the Writer accepts them
(`put`, pausing while more than half a queue waits, so that no row takes the journal's
replay path) and calls `flush()`. The rate is all rows over the wall time from the first
put of any process to the last flush of any process (one monotonic clock). Then the
database must hold every row exactly once: count(*) = N x rows, one chain per process
with chain_seq 1..rows, llm_calls_daily summing to the same count, and (`--verify`)
`llmops.audit.verify` passing.

Arms (`--arms`, comma-separated):

  writer       the Writer into the full schema (llmops triggers on: rollups, histograms)
  notriggers   the Writer, with the llmops triggers disabled (PostgreSQL: DISABLE TRIGGER
               USER; SQLite: dropped): what the rollups and histograms cost
  executemany  a raw inserter per process: the same rows chained and serialized in the timed
               loop (ingest.py's RawChain), executemany + commit per 1,000 rows, triggers on
  copy         PostgreSQL only: the same, COPY per 1,000 rows (statement triggers fire once
               per COPY), triggers on

With `--stats` (PostgreSQL) the cluster loads pg_stat_statements (track = all, so the
statements run inside the trigger functions are counted apart) and the top statements by
execution time are printed per run, with each process's own CPU time (user + system, its
Writer thread included), to show where the time goes: Python or the database, and which
trigger statement.

PostgreSQL: a throwaway cluster (tests/fixtures/postgres.py, fsync off), a new database per
run. SQLite (`--sqlite`): one file per run, WAL, as `create_engine` opens it.

The rows' prompt versions and commits are few (ingest.build_rows: 3 versions per prompt, 2
commits), as in real traffic; `--distinct-keys` gives each call its own version and commit,
the rollups' worst case (each call then adds a row to five rollups). `--feedback N` has the
Writer arms put a feedback row (a thumbs-up) right after every Nth call: the writer checks
that each feedback's call is stored (PostgreSQL) and the feedback rollup counts it.
`--users N` spreads the calls over N users (500): with few, every user-day reaches 1,000
calls and is rolled up by user too (migration 0021), the user rollups' worst case.

Usage: python benchmarks/ingest_processes.py [--processes 1 2 4] [--rows N] [--reps R]
           [--arms writer,notriggers,executemany,copy] [--sqlite] [--no-postgres]
           [--stats] [--verify] [--distinct-keys] [--feedback N] [--users N]
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from _common import ROOT, median

from llmops.store.ids import time_ordered_id

ARMS = ("writer", "notriggers", "executemany", "copy")
BATCH = 1000
QUEUE = 20_000
GOAL = 10_000  # calls/s into PostgreSQL, issue 18


# -- the database ------------------------------------------------------------------------


def prepare_database(url: str, triggers: bool) -> None:
    """The full schema (check_schema), with the llmops triggers disabled when not ``triggers``."""
    from llmops.store.engine import check_schema, create_engine

    engine = create_engine(url)
    check_schema(engine)
    if not triggers:
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                for table in ("llm_calls", "feedback"):
                    connection.exec_driver_sql(f"ALTER TABLE {table} DISABLE TRIGGER USER")
            else:
                names = connection.exec_driver_sql(
                    "SELECT name FROM sqlite_master WHERE type = 'trigger' "
                    "AND tbl_name IN ('llm_calls', 'feedback')"
                ).scalars()
                for name in list(names):
                    connection.exec_driver_sql(f"DROP TRIGGER {name}")
    engine.dispose()


# -- one process --------------------------------------------------------------------------


class Outages(logging.Handler):
    """Counts the Writer's "database unavailable" warnings by their reason (a deadlock
    between two Writers' rollup upserts is one)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.reasons: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "unavailable" in message:
            reason = message.rsplit(": ", 2)[-2] if message.count(": ") >= 2 else message
            self.reasons[reason] = self.reasons.get(reason, 0) + 1


def worker(
    arm: str,
    url: str,
    index: int,
    rows: int,
    shape: dict[str, Any],
    spool: str,
    ready: Any,
    go: Any,
    out: Any,
) -> None:
    """One process: build its rows, get ready, wait for go, insert, report."""
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from ingest import build_rows

    data = build_rows(
        rows,
        seed=1000 + index,
        distinct_keys=shape["distinct_keys"],
        ids=shape["ids"],
        users=shape["users"],
    )
    if arm in ("writer", "notriggers"):
        result = writer_arm(arm, url, data, shape["feedback"], Path(spool), ready, go)
    else:
        result = raw_arm(arm, url, data, Path(spool), ready, go)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out.put({**result, "index": index, "cpu": usage.ru_utime + usage.ru_stime})


def feedback_for(call: dict[str, Any]) -> dict[str, Any]:
    """A thumbs-up on ``call``, with an id of its own derived from the call's: of the same
    kind (version 7, in time order, or random version 4)."""
    called, derived = uuid.UUID(call["id"]), uuid.uuid5(uuid.NAMESPACE_URL, call["id"])
    own = time_ordered_id(called.int >> 80, derived.int) if called.version == 7 else str(derived)
    return {
        "id": own, "call_id": call["id"],
        "created_at": call["created_at"], "name": "thumbs", "score": 1.0, "comment": None,
        "user_id": call["user_id"],
    }  # fmt: skip


def writer_arm(
    arm: str,
    url: str,
    data: list[dict[str, Any]],
    feedback: int,
    spool: Path,
    ready: Any,
    go: Any,
) -> dict[str, Any]:
    from llmops.store.engine import check_schema, create_engine
    from llmops.store.writer import Writer

    engine = create_engine(url, busy_timeout_ms=5000)
    check_schema(engine)  # connects before the clock starts (the Writer's prepare repeats it)
    writer = Writer(
        lambda: engine, spool, batch_size=BATCH, queue_size=QUEUE, retry_min=0.5, linger=0.2,
        prepare=lambda e: check_schema(e),
    )  # fmt: skip
    put, stats = writer.put, writer.stats
    outages = Outages()
    logging.getLogger("llmops.writer").addHandler(outages)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    ready.wait()
    go.wait()
    started = time.monotonic()
    queued = 0  # rows put: calls and feedback
    for number, row in enumerate(data, 1):
        put("call", row)
        queued += 1
        if feedback and number % feedback == 0:
            put("feedback", feedback_for(row))
            queued += 1
        if number % 500 == 0:
            while queued - stats.written - stats.replayed > QUEUE // 2:
                time.sleep(0.002)
    flushed = writer.flush(timeout=1200)
    flush_returned = time.monotonic()
    # flush() also returns when rows wait in the journal (the database "away": a deadlock
    # counts as that); the run ends when this Writer's chain holds every row
    chains = writer.chains._chains  # the benchmark's own look (replaced at each commit)
    deadline = flush_returned + 1200
    rated = len(data) // feedback if feedback else 0
    while (chains["call"].seq, chains["feedback"].seq) < (len(data), rated) and (
        time.monotonic() < deadline
    ):
        writer.flush(timeout=1)
        time.sleep(0.01)
    ended = time.monotonic()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    writer.close(timeout=60)
    engine.dispose()
    return {
        "started": started, "ended": ended, "flushed": flushed, "rows": len(data),
        "spooled": stats.spooled, "replayed": stats.replayed, "rejected": stats.rejected,
        "errors": stats.errors, "batches": stats.batches, "outages": outages.reasons,
        "flush_returned": flush_returned,
        "cpu_run": (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime),
    }  # fmt: skip


def raw_arm(
    arm: str, url: str, data: list[dict[str, Any]], spool: Path, ready: Any, go: Any
) -> dict[str, Any]:
    """executemany (or COPY) per 1,000 rows of the rows chained and serialized as the
    Writer would (ingest.py's RawChain; JSON as orjson text)."""
    from ingest import RawChain, encoded, libpq_dsn, make_path, merged, sqlite_text, table_columns

    from llmops.store.records import json_text

    names = table_columns()
    chain = RawChain()
    json_columns = ("tags", "metadata", "request", "params", "usage_details")
    sqlite = url.startswith("sqlite")

    def encode(name: str, value: Any) -> Any:
        if value is not None and name in json_columns:
            return json_text(value)
        if value is not None and sqlite and name == "created_at":
            return sqlite_text(value)
        return value

    mark = "?" if sqlite else "%s"
    sql = {
        table: f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join([mark] * len(cols))})"
        for table, cols in names.items()
    }
    copy_sql = {
        table: f"COPY {table} ({', '.join(cols)}) FROM STDIN" for table, cols in names.items()
    }
    if sqlite:
        import sqlite3

        connection: Any = sqlite3.connect(make_path(url), timeout=30, isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
            connection.execute(f"PRAGMA {pragma}")
    else:
        import psycopg

        connection = psycopg.connect(libpq_dsn(url))
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    ready.wait()
    go.wait()
    started = time.monotonic()
    retries: dict[str, int] = {}
    for start in range(0, len(data), BATCH):
        batch = merged(
            encoded(names, chain.seal(row), encode) for row in data[start : start + BATCH]
        )
        if sqlite:
            connection.execute("BEGIN IMMEDIATE")
            for table, rows in batch.items():
                connection.executemany(sql[table], rows)
            connection.execute("COMMIT")
            continue
        while True:
            try:
                with connection.cursor() as cursor:
                    for table, rows in batch.items():
                        if not rows:
                            continue
                        if arm == "copy":
                            with cursor.copy(copy_sql[table]) as copy:
                                for row in rows:
                                    copy.write_row(row)
                        else:
                            cursor.executemany(sql[table], rows)
                connection.commit()
                break
            except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure) as exc:
                connection.rollback()  # the batch again, as the Writer would (without back-off)
                name = type(exc).__name__
                retries[name] = retries.get(name, 0) + 1
    ended = time.monotonic()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    connection.close()
    # the chain's head, as the Writer keeps it (untimed), so that audit verify passes
    from datetime import UTC, datetime

    import sqlalchemy as sa

    from llmops.store.engine import create_engine
    from llmops.store.tables import AUDIT_CHAINS

    engine = create_engine(url, busy_timeout_ms=60_000)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(AUDIT_CHAINS),
            [{"id": chain.id, "table_name": "llm_calls", "holder": f"raw-{arm}",
              "started_at": now, "updated_at": now, "last_seq": chain.seq,
              "last_hash": chain.last}],
        )  # fmt: skip
    engine.dispose()
    return {
        "started": started, "ended": ended, "flushed": True, "rows": len(data), "spooled": 0,
        "replayed": 0, "rejected": 0, "errors": 0, "batches": len(data) // BATCH,
        "outages": retries, "flush_returned": ended,
        "cpu_run": (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime),
    }  # fmt: skip


# -- one run ------------------------------------------------------------------------------


def run(
    arm: str, url: str, processes: int, rows: int, shape: dict[str, Any], spool: Path
) -> dict[str, Any]:
    context = mp.get_context("spawn")
    ready = context.Barrier(processes + 1)
    go = context.Event()
    out = context.Queue()
    children = [
        context.Process(
            target=worker,
            args=(arm, url, i, rows, shape, str(spool / f"p{i}"), ready, go, out),
            daemon=True,
        )
        for i in range(processes)
    ]
    for child in children:
        child.start()
    ready.wait(timeout=600)  # every process has its rows and a connected Writer
    go.set()
    results = [out.get(timeout=3600) for _ in children]
    for child in children:
        child.join(timeout=120)
    first = min(r["started"] for r in results)
    last = max(r["ended"] for r in results)
    total = sum(r["rows"] for r in results)
    return {
        "rate": total / (last - first),
        "seconds": last - first,
        "total": total,
        "results": sorted(results, key=lambda r: r["index"]),
    }


def check(url: str, processes: int, rows: int, feedback: int, deep: bool) -> str | None:
    """None when every row is stored once, in one chain per process; else what is wrong."""
    import sqlalchemy as sa

    from llmops.store.engine import create_engine

    engine = create_engine(url, busy_timeout_ms=60_000)
    try:
        with engine.connect() as connection:
            count, distinct = connection.execute(
                sa.text("SELECT count(*), count(DISTINCT id) FROM llm_calls")
            ).one()
            chains = connection.execute(
                sa.text(
                    "SELECT chain_id, count(*), min(chain_seq), max(chain_seq) FROM llm_calls "
                    "GROUP BY chain_id"
                )
            ).all()
            daily = connection.execute(sa.text("SELECT sum(calls) FROM llm_calls_daily")).scalar()
            feedback_rows = connection.execute(
                sa.text(
                    "SELECT count(DISTINCT id), "
                    "(SELECT sum(feedback_count) FROM feedback_daily) FROM feedback"
                )
            ).one()
        expected = processes * rows
        wanted = processes * (rows // feedback) if feedback else 0
        stored, counted = (int(n or 0) for n in feedback_rows)
        if (stored, counted) != (wanted, wanted):
            return f"feedback: {stored:,} rows, feedback_daily {counted:,}, expected {wanted:,}"
        if count != expected or distinct != expected:
            return f"{count:,} rows ({distinct:,} distinct ids), expected {expected:,}"
        if len(chains) != processes or any(
            (n, lo, hi) != (rows, 1, rows) for _, n, lo, hi in chains
        ):
            return f"chains: {[tuple(c[1:]) for c in chains]}"
        if daily is not None and int(daily) != expected:
            return f"llm_calls_daily counts {daily:,} calls, expected {expected:,}"
        if deep:
            from llmops.audit.verify import verify

            result = verify(engine)
            if not result.ok:
                return f"audit verify: {result.breaks[:2]}"
    finally:
        engine.dispose()
    return None


STATS_SQL = """
SELECT total_exec_time / 1000 AS seconds, calls, rows, toplevel,
       regexp_replace(left(query, 110), '\\s+', ' ', 'g') AS query
FROM pg_stat_statements
WHERE query NOT LIKE '%pg_stat_statements%'
ORDER BY total_exec_time DESC LIMIT 12
"""


def statements(url: str, reset: bool) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(
        url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
    ) as c:
        if reset:
            c.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            c.execute("SELECT pg_stat_statements_reset()")
            return []
        return c.execute(STATS_SQL).fetchall()


def load() -> str:
    import os

    return " / ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--rows", type=int, default=50_000, help="rows per process")
    parser.add_argument("--reps", type=int, default=2, help="repetitions of each run")
    parser.add_argument("--arms", default="writer,notriggers,copy", help=", ".join(ARMS))
    parser.add_argument("--sqlite", action="store_true", help="also SQLite (one file, WAL)")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--stats", action="store_true", help="pg_stat_statements per run")
    parser.add_argument("--verify", action="store_true", help="also llmops.audit.verify")
    parser.add_argument(
        "--distinct-keys",
        action="store_true",
        help="every call its own prompt version and commit (the rollups' worst case)",
    )
    parser.add_argument(
        "--feedback",
        type=int,
        default=0,
        metavar="N",
        help="Writer arms: a feedback row after every Nth call (0: none)",
    )
    parser.add_argument(
        "--ids",
        choices=("v7", "v4"),
        default="v7",
        help="call ids: version 7 UUIDs in time order, as the gateway makes them (default), "
        "or random version 4 ones, as it made them before",
    )
    parser.add_argument(
        "--users",
        type=int,
        default=500,
        help="calls spread over this many users (500); few users make every user-day busy "
        "(1,000 calls or more: migration 0021's user rollups)",
    )
    args = parser.parse_args()
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    if unknown := set(arms) - set(ARMS):
        parser.error(f"unknown arms: {unknown}")
    rates: dict[tuple[str, str, int], list[float]] = {}
    shape = {
        "distinct_keys": args.distinct_keys,
        "feedback": args.feedback,
        "ids": args.ids,
        "users": args.users,
    }
    print(
        f"{args.rows:,} rows per process, processes {args.processes}, arms {arms}, "
        f"{args.reps} reps, "
        f"{'distinct versions and commits' if args.distinct_keys else 'few versions and commits'}"
        f"{f', feedback on every {args.feedback}th call' if args.feedback else ''}"
        f", {args.ids} ids, {args.users:,} users"
        f"; load average {load()}",
        flush=True,
    )

    def measure(backend: str, new_url: Any, drop: Any, server: Any = None) -> None:
        for rep in range(args.reps):
            for processes in args.processes:
                for arm in arms if rep % 2 == 0 else arms[::-1]:
                    if arm == "copy" and backend == "SQLite":
                        continue
                    url = new_url(f"{arm}_{processes}_{rep}")
                    prepare_database(url, triggers=arm != "notriggers")
                    if args.stats and server is not None:
                        statements(url, reset=True)
                    with tempfile.TemporaryDirectory(prefix="llmops-ingest-spool-") as spool:
                        result = run(arm, url, processes, args.rows, shape, Path(spool))
                    rated = args.feedback if arm in ("writer", "notriggers") else 0
                    problem = check(url, processes, args.rows, rated, args.verify)
                    rates.setdefault((backend, arm, processes), []).append(result["rate"])
                    cpu = [r["cpu_run"] for r in result["results"]]
                    odd = [
                        f"p{r['index']}: spooled {r['spooled']}, replayed {r['replayed']}, "
                        f"rejected {r['rejected']}, errors {r['errors']}, outages or retries "
                        f"{r['outages']}, flush returned {r['flush_returned'] - r['started']:.1f}"
                        f" s after its first put, its last row stored after "
                        f"{r['ended'] - r['started']:.1f} s"
                        for r in result["results"]
                        if r["spooled"] or r["rejected"] or r["errors"] or r["outages"]
                    ]
                    print(
                        f"  {backend} {arm:<11} x{processes} rep {rep + 1}: "
                        f"{result['rate']:>7,.0f} calls/s ({result['total']:,} in "
                        f"{result['seconds']:.1f} s; process CPU "
                        f"{', '.join(f'{c:.1f}' for c in cpu)} s; load {load()})"
                        + (f"  FAIL: {problem}" if problem else "  all rows, once")
                        + (f"  [{'; '.join(odd)}]" if odd else ""),
                        flush=True,
                    )
                    if args.stats and server is not None:
                        total = result["seconds"]
                        for seconds, calls, rows, top, query in statements(url, False):
                            print(
                                f"      {seconds:7.2f} s ({seconds / total:4.0%} of wall) "
                                f"{calls:>6} calls {rows:>8} rows {'top' if top else 'nested'}: "
                                f"{query}"
                            )
                    drop(url)
                    if problem:
                        raise SystemExit(f"FAIL: {problem}")

    if not args.no_postgres:
        from _common import throwaway_postgres

        from tests.fixtures import postgres as fixture

        if args.stats:
            fixture.SERVER_SETTINGS["shared_preload_libraries"] = "pg_stat_statements"
            fixture.SERVER_SETTINGS["pg_stat_statements.track"] = "all"
        with throwaway_postgres() as server:
            measure(
                "PostgreSQL",
                lambda name: server.new_database(f"ingest_{name}"),
                server.drop_database,
                server,
            )
    if args.sqlite:
        with tempfile.TemporaryDirectory(prefix="llmops-ingest-") as folder:

            def sqlite_url(name: str) -> str:
                return f"sqlite:///{folder}/{name}.db"

            def sqlite_drop(url: str) -> None:
                for suffix in ("", "-wal", "-shm", ".migrate-lock"):
                    Path(url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)

            measure("SQLite", sqlite_url, sqlite_drop)

    print("\n| database | inserter | processes | calls/s (median) | runs | x one process |")
    print("|---|---|---|---|---|---|")
    for (backend, arm, processes), values in sorted(rates.items()):
        one = rates.get((backend, arm, 1))
        scale = f"{median(values) / median(one):.2f}" if one else ""
        runs = ", ".join(f"{v:,.0f}" for v in values)
        print(f"| {backend} | {arm} | {processes} | {median(values):,.0f} | {runs} | {scale} |")
    print(f"\nLoad average after: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
