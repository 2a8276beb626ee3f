"""Ingest: call rows per second that the background Writer sustains, against a raw inserter.

The same pre-built row dicts go, in one run and in alternating repetitions, through
`Writer.put(...)` + `flush()` (timed from the first put to flush returning) and through a
hand-written raw inserter (timed from the first row serialized to the last commit) that does
what the Writer must: split each call into its llm_calls row and its llm_call_content row
(migration 0016), serialize the JSON columns (tags, metadata, params, request) with the
engines' serializer (orjson) and
the datetime to text on SQLite, then executemany + commit in batches of 1000 with INSERT OR
IGNORE, into a fresh database per repetition with the schema `check_schema` creates (WAL,
synchronous=NORMAL). With `--postgres` the same runs against a throwaway PostgreSQL cluster
(fsync off) with psycopg's executemany and ON CONFLICT DO NOTHING as the raw baseline.
Both inserters also chain each row (llmops.store.chain, migration 0009), as the Writer must.
After each repetition both databases must hold every row, with identical contents (the
content digests included; the Writer's chain is verified with llmops.audit.verify).
Goal: the Writer reaches at least 50% of the raw rate on SQLite.

The calls' prompt versions and commits are few (3 versions per prompt, 2 commits), as in an
app's real traffic; `--distinct-keys` gives each call its own (see `build_rows`).

Usage: python benchmarks/ingest.py [--rows N] [--reps R] [--postgres] [--distinct-keys]
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import random
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import median, throwaway_postgres

from llmops.store.ids import time_ordered_id

BATCH = 1000
GOAL = 0.5
JSON_COLUMNS = ("tags", "metadata", "request", "params", "usage_details")
CONTENT = "llm_call_content"
PROMPTS = ["support/answer", "support/triage", "sales/followup", "search/rewrite"]
VERSIONS = {
    p: [uuid.uuid5(uuid.NAMESPACE_URL, f"{p}@{i}").hex[:12] for i in range(3)] for p in PROMPTS
}
COMMITS = [hashlib.sha256(f"deploy {i}".encode()).hexdigest()[:40] for i in range(2)]
WORDS = ["parcel", "order", "refund", "router", "reset", "delivery", "invoice", "account"]


def build_rows(
    n: int, seed: int = 0, distinct_keys: bool = False, ids: str = "v7", users: int = 500
) -> list[dict[str, Any]]:
    """Call rows shaped like the gateway's (three short messages, params, a reply).

    Each prompt has three versions (VERSIONS) and the calls come from two deploys
    (COMMITS), as in an app's real traffic (a version is a content hash of the template).
    ``distinct_keys`` gives every call a version and a commit of its own instead: the worst
    case for the rollups, where each call adds a row to five of them (the shape these
    benchmarks used before 2026-12-03 evening). The calls start at this hour, 37 ms apart.
    Their ids are version 7 UUIDs as the gateway makes them (in time order), or, with
    ``ids='v4'``, random version 4 UUIDs as it made them before 2026-12-03, 23:00. The
    users are drawn from ``users`` (500)."""
    rng = random.Random(seed)
    # this hour: the calls land in the current month's partition on PostgreSQL, as an
    # app's do (a past month's would go to the DEFAULT partition)
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    rows = []
    for i in range(n):
        question = " ".join(rng.choices(WORDS, k=rng.randint(6, 14)))
        answer = " ".join(rng.choices(WORDS, k=rng.randint(15, 40)))
        prompt = rng.choice(PROMPTS)
        created = start + timedelta(milliseconds=37 * i)
        rows.append(
            {
                "id": (
                    str(uuid.UUID(int=rng.getrandbits(128), version=4))
                    if ids == "v4"
                    else time_ordered_id(int(created.timestamp() * 1000), rng.getrandbits(74))
                ),
                "created_at": created,
                "source": "app",
                "prompt_name": prompt,
                "prompt_version": (
                    f"{rng.getrandbits(48):012x}" if distinct_keys else rng.choice(VERSIONS[prompt])
                ),
                "git_commit": (
                    f"{rng.getrandbits(160):040x}" if distinct_keys else rng.choice(COMMITS)
                ),
                "model": "gpt-4o-mini",
                "provider": "openai",
                "status": "ok",
                "error_type": None,
                "error_message": None,
                "prompt_tokens": rng.randint(40, 400),
                "completion_tokens": rng.randint(5, 200),
                "cached_tokens": 0,
                "cache_write_tokens": 0,
                "reasoning_tokens": 0,
                "tokens_estimated": False,
                "cost_usd": rng.random() / 1000,
                "cost_status": "priced",
                "price_source": "litellm-1.110.2:bundled",
                "latency_ms": round(rng.uniform(200, 3000), 3),
                "ttft_ms": None,
                "user_id": f"user-{rng.randint(1, users)}",
                "session_id": f"session-{rng.randint(1, 5000)}",
                "tags": ["support", "web"],
                "metadata": {"tenant": f"t{rng.randint(1, 20)}", "ab": rng.choice("AB")},
                "request": {
                    "messages": [
                        {"role": "system", "content": "You answer questions about parcels."},
                        {"role": "assistant", "content": "Hello! How can I help?"},
                        {"role": "user", "content": question},
                    ],
                    "params": {"temperature": 0.2, "max_tokens": 300},
                },
                "response_text": answer,
            }
        )
    return rows


def stored_size(row: dict[str, Any]) -> int:
    """Bytes of column data, roughly as stored (JSON columns as text)."""
    return sum(
        len(json.dumps(value) if isinstance(value, dict | list) else str(value))
        for value in row.values()
        if value is not None
    )


def batches(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), BATCH):
        yield rows[start : start + BATCH]


# -- the candidate: llmops's Writer ----------------------------------------------------


def writer_run(url: str, rows: list[dict[str, Any]], spool: Path, queue_size: int) -> Any:
    """Seconds from the first put to flush() returning, and the Writer's stats."""
    import sqlalchemy as sa

    from llmops.store.engine import check_schema, create_engine
    from llmops.store.writer import Writer

    engine = create_engine(url)
    check_schema(engine)  # not timed, and its pooled connection is reused by the Writer
    writer = Writer(lambda: engine, spool, batch_size=BATCH, queue_size=queue_size)
    put = writer.put
    gc.collect()
    start = time.perf_counter()
    for row in rows:
        put("call", row)
    flushed = writer.flush(timeout=600)
    elapsed = time.perf_counter() - start
    if not flushed:
        raise SystemExit("FAIL: Writer.flush() timed out")
    with engine.connect() as connection:  # in the database when flush returned, not later
        stored = connection.execute(sa.text("SELECT count(*) FROM llm_calls")).scalar_one()
    writer.close()
    engine.dispose()
    if stored != len(rows):
        raise SystemExit(f"FAIL: {stored:,} of {len(rows):,} rows in the database at flush()")
    return elapsed, writer.stats


# -- the baselines: hand-written inserters ----------------------------------------------


def columns() -> list[str]:
    from llmops.store.tables import CALLS

    return [column.name for column in CALLS.columns]


def table_columns() -> dict[str, list[str]]:
    """The tables a call is stored in (calls first) and their columns."""
    from llmops.store.tables import CALL_CONTENT

    return {"llm_calls": columns(), CONTENT: [c.name for c in CALL_CONTENT.columns]}


def stored_parts(row: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """A sealed call as the Writer stores it: its row of llm_calls and, when it has content,
    its row of llm_call_content (llmops.store.records.split_content)."""
    from llmops.store.records import split_content

    calls, content = split_content([row])
    return {"llm_calls": calls, CONTENT: content}


def encoded(
    names: dict[str, list[str]], row: dict[str, Any], encode: Callable[[str, Any], Any]
) -> dict[str, list[tuple[Any, ...]]]:
    """The values of each table's rows for one call, each value through ``encode``."""
    return {
        table: [tuple(encode(name, part.get(name)) for name in names[table]) for part in parts]
        for table, parts in stored_parts(row).items()
    }


def sqlite_text(value: datetime) -> str:
    """What SQLAlchemy stores for a UTC datetime on SQLite: naive UTC, microseconds."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


class RawChain:
    """What the Writer must do besides inserting (migration 0009): each row's place in a
    hash chain, with the same functions (llmops.store.chain)."""

    def __init__(self) -> None:
        from llmops.store.chain import new_chain_id

        self.id, self.seq, self.last = new_chain_id(), 0, "0" * 64

    def seal(self, row: dict[str, Any]) -> dict[str, Any]:
        from llmops.store.chain import link

        digest, self.last = link(self.last, "call", row)
        self.seq += 1
        return {**row, "chain_id": self.id, "chain_seq": self.seq, "content_hash": digest,
                "row_hash": self.last}  # fmt: skip


def raw_sqlite_run(url: str, rows: list[dict[str, Any]]) -> float:
    from llmops.store.engine import check_schema, create_engine

    engine = create_engine(url)
    check_schema(engine)
    engine.dispose()
    from llmops.store.records import json_text

    names = table_columns()
    sql = {
        table: f"INSERT OR IGNORE INTO {table} ({', '.join(cols)}) "
        f"VALUES ({', '.join('?' * len(cols))})"
        for table, cols in names.items()
    }
    dumps = json_text  # the serializer the Writer's engine uses (orjson)

    chain = RawChain()

    def encode(name: str, value: Any) -> Any:
        if value is not None and name in JSON_COLUMNS:
            return dumps(value)
        if value is not None and name == "created_at":
            return sqlite_text(value)
        return value

    connection = sqlite3.connect(make_path(url), timeout=5)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
        connection.execute(f"PRAGMA {pragma}")
    gc.collect()
    start = time.perf_counter()
    for batch in batches(rows):
        values = merged(encoded(names, chain.seal(row), encode) for row in batch)
        with connection:  # BEGIN ... COMMIT per batch, like the Writer
            for table, table_rows in values.items():
                connection.executemany(sql[table], table_rows)
    elapsed = time.perf_counter() - start
    connection.close()
    return elapsed


def raw_postgres_run(url: str, rows: list[dict[str, Any]]) -> float:
    import psycopg
    from psycopg.types.json import Jsonb

    from llmops.store.engine import check_schema, create_engine

    engine = create_engine(url)
    check_schema(engine)
    engine.dispose()
    names = table_columns()
    sql = {
        table: f"INSERT INTO {table} ({', '.join(cols)}) "
        f"VALUES ({', '.join(['%s'] * len(cols))}) ON CONFLICT DO NOTHING"
        for table, cols in names.items()
    }

    chain = RawChain()

    def encode(name: str, value: Any) -> Any:
        return Jsonb(value) if name in JSON_COLUMNS and value is not None else value

    connection = psycopg.connect(libpq_dsn(url))
    gc.collect()
    start = time.perf_counter()
    for batch in batches(rows):
        values = merged(encoded(names, chain.seal(row), encode) for row in batch)
        with connection.cursor() as cursor:
            for table, table_rows in values.items():
                cursor.executemany(sql[table], table_rows)
        connection.commit()
    elapsed = time.perf_counter() - start
    connection.close()
    return elapsed


def merged(
    parts: Iterator[dict[str, list[tuple[Any, ...]]]],
) -> dict[str, list[tuple[Any, ...]]]:
    """The rows of a batch's calls, per table (calls first)."""
    out: dict[str, list[tuple[Any, ...]]] = {"llm_calls": [], CONTENT: []}
    for part in parts:
        for table, rows in part.items():
            out[table] += rows
    return out


def make_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


def libpq_dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


# -- verification -------------------------------------------------------------------------


def fetch_all(url: str) -> list[tuple[Any, ...]]:
    # every column but the chain's: each inserter has its own chain, and the Writer's order
    # may differ (rows past its queue go through the journal); its chain is verified apart
    chained = ("chain_id", "chain_seq", "row_hash")
    compared = [f"l.{name}" for name in columns() if name not in chained]
    query = (
        f"SELECT {', '.join(compared)}, c.request, c.response_text FROM llm_calls l "
        f"LEFT JOIN {CONTENT} c ON c.call_id = l.id ORDER BY l.id"
    )
    if url.startswith("sqlite"):
        with sqlite3.connect(make_path(url)) as connection:
            return connection.execute(query).fetchall()
    import psycopg

    with psycopg.connect(libpq_dsn(url)) as connection:
        return connection.execute(query).fetchall()


def verify(expected: int, writer_url: str, raw_url: str) -> str | None:
    """None when both hold exactly `expected` rows with identical contents, else why not."""
    stored, raw = fetch_all(writer_url), fetch_all(raw_url)
    if len(stored) != expected or len(raw) != expected:
        return f"row counts: Writer {len(stored)}, raw {len(raw)}, expected {expected}"
    if stored != raw:
        differing = sum(a != b for a, b in zip(stored, raw, strict=True))
        return f"{differing} rows differ between the Writer's and the raw database"
    from llmops.audit.verify import verify as verify_chains
    from llmops.store.engine import create_engine

    engine = create_engine(writer_url)
    try:
        chains = verify_chains(engine)
    finally:
        engine.dispose()
    if not chains.ok or chains.checked["llm_calls"] != expected:
        return f"the Writer's hash chain does not verify: {chains.breaks[:1]}"
    return None


# -- the run ------------------------------------------------------------------------------


def run_backend(
    name: str,
    rows: list[dict[str, Any]],
    reps: int,
    new_url: Callable[[str], str],
    drop: Callable[[str], None],
    raw_run: Callable[[str, list[dict[str, Any]]], float],
    spool_root: Path,
    queue_size: int,
) -> dict[str, Any]:
    rates: dict[str, list[float]] = {"Writer": [], "raw": []}
    spooled = 0
    for rep in range(reps):
        writer_url, raw_url = new_url(f"w{rep}"), new_url(f"r{rep}")
        for arm in ("Writer", "raw") if rep % 2 == 0 else ("raw", "Writer"):
            if arm == "Writer":
                seconds, stats = writer_run(writer_url, rows, spool_root / f"{rep}", queue_size)
                spooled += stats.spooled
            else:
                seconds = raw_run(raw_url, rows)
            rates[arm].append(len(rows) / seconds)
        problem = verify(len(rows), writer_url, raw_url)
        drop(writer_url)
        drop(raw_url)
        print(
            f"  {name} rep {rep + 1}/{reps}: Writer {rates['Writer'][-1]:>7,.0f} rows/s, "
            f"raw {rates['raw'][-1]:>7,.0f} rows/s"
            + (f"  FAIL: {problem}" if problem else f"  ({len(rows):,} rows each, identical)"),
            flush=True,
        )
        if problem:
            raise SystemExit(f"FAIL: {name} rep {rep + 1}: {problem}")
    return {"rates": rates, "spooled": spooled}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000, help="rows per repetition")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--postgres", action="store_true", help="also a throwaway PostgreSQL")
    parser.add_argument(
        "--queue-size",
        type=int,
        default=0,
        help="Writer queue size (default: --rows, so that no row takes the spool path)",
    )
    parser.add_argument(
        "--distinct-keys",
        action="store_true",
        help="every call its own prompt version and commit (the rollups' worst case)",
    )
    args = parser.parse_args()
    queue_size = args.queue_size or args.rows
    rows = build_rows(args.rows, distinct_keys=args.distinct_keys)
    size = sum(stored_size(row) for row in rows[:1000]) / 1000
    print(
        f"{args.reps} reps x {args.rows:,} call rows (~{size:.0f} bytes of column data each), "
        f"Writer batch_size={BATCH} queue_size={queue_size:,}; raw: same rows, "
        f"json.dumps + datetime-to-text done in the timed loop, executemany per {BATCH}",
        flush=True,
    )
    results = {}
    with tempfile.TemporaryDirectory(prefix="llmops-ingest-") as folder:
        base = Path(folder)

        def sqlite_url(name: str) -> str:
            return f"sqlite:///{base / name}.db"

        def sqlite_drop(url: str) -> None:
            for suffix in ("", "-wal", "-shm", ".migrate-lock"):
                Path(make_path(url) + suffix).unlink(missing_ok=True)

        results["SQLite"] = run_backend(
            "SQLite", rows, args.reps, sqlite_url, sqlite_drop, raw_sqlite_run,
            base / "spool", queue_size,
        )  # fmt: skip
        if args.postgres:
            with throwaway_postgres() as server:
                results["PostgreSQL"] = run_backend(
                    "PostgreSQL", rows, args.reps, lambda n: server.new_database(f"bench_{n}"),
                    server.drop_database, raw_postgres_run, base / "spool-pg", queue_size,
                )  # fmt: skip

    raw_names = {"SQLite": "raw sqlite3.executemany", "PostgreSQL": "raw psycopg executemany"}
    print(
        f"\n{'database':<11} {'inserter':<26} {'median rows/s':>13} {'min..max':>17} {'x raw':>6}"
    )
    verdict = ""
    for backend, result in results.items():
        writer, raw = result["rates"]["Writer"], result["rates"]["raw"]
        ratio = median(writer) / median(raw)
        for label, values in (("llmops Writer", writer), (raw_names[backend], raw)):
            spread = f"{min(values):,.0f}..{max(values):,.0f}"
            share = ratio if label == "llmops Writer" else 1.0
            print(f"{backend:<11} {label:<26} {median(values):>13,.0f} {spread:>17} {share:>6.2f}")
        if result["spooled"]:
            print(f"{'':<11} ({result['spooled']:,} rows took the spool path: queue overflow)")
        if backend == "SQLite":
            met = ratio >= GOAL
            verdict = (
                f"Goal: Writer >= {GOAL:.0%} of raw on SQLite: {ratio:.0%}, "
                f"{'met' if met else 'NOT MET'}"
            )
    print(
        "\nHonest baseline: the raw inserter gets the same row dicts and serializes them in the "
        "timed loop\n(orjson of tags/metadata/request, as the engines serialize them; "
        "datetime to text on SQLite; psycopg "
        "Jsonb on Postgres),\nand its database must end up identical to the Writer's, row for row."
    )
    print(verdict)
    return 0


if __name__ == "__main__":
    sys.exit(main())
