"""Storage: bytes per stored call, with content="full" and with content="none".

Generates N call rows (default 100,000) with the dashboard benchmark's generator
(`dashboard_queries.RowMaker`: 90 days, 8 models, 6 prompts with 2-3 versions, 2,000 users,
0-2 tags, 3% errors, 0.4% cancelled, 8% eval calls; calls only, no feedback) and gives them
the content the gateway's recorder stores with content="full" (`stored_request`): a system
prompt per prompt version (about 450 characters, the same text for every call of that
version), the user's message (about 200), the prompt's variables (the question again, as
`stored_request` keeps them), the call parameters and a reply (about 400): about 1.5 KB of
content per successful call. The text is English sentences drawn from this repository's
README.md and docs/, so that compression figures are not those of random words.

The same rows, with the content a content="none" recorder stores (`stored_request(mode=
"none")`: request = {"messages": null, "params": ...}, no variables, response_text null), are
written a second time. Each configuration goes through `llmops.store.writer.Writer` (hash
chain, rollup triggers, every index) into a fresh database with the schema `check_schema`
creates: a SQLite file (then VACUUM and ANALYZE; sizes from the `dbstat` virtual table) and,
with `--postgres`, a throwaway PostgreSQL cluster (tests/fixtures/postgres.py; then VACUUM
ANALYZE; sizes from `pg_relation_size`, column sizes from `sum(pg_column_size(col))`).

Reported per configuration, in bytes per call: the whole database; the calls table's data
(PostgreSQL: heap, its TOAST and the free-space/visibility maps); its indexes (each one); the
content table (llm_call_content, migration 0016: the request's messages, variables and tool
calls, and the response) with its indexes; the rollup tables with their keys; the audit
columns (chain_id, chain_seq, content_hash, row_hash) and the chain index; the largest
columns of llm_calls. Also
the total as written and compacted (SQLite: the file before and after VACUUM; PostgreSQL:
after VACUUM ANALYZE and after VACUUM FULL), and what per-row zlib would make of the content.

Column bytes are what the values occupy in the row: on SQLite the record's value bytes plus
one or two bytes of header per value (estimated from each value's type and length, as the
record format stores it); on PostgreSQL `pg_column_size` (compressed size when TOAST
compressed it). The rest of a table (row headers, page free space) is in "row overhead".

Usage: python benchmarks/storage.py [--rows 100000] [--postgres]
"""

from __future__ import annotations

import argparse
import random
import re
import sqlite3
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from _common import ROOT, throwaway_postgres
from dashboard_queries import RowMaker

from llmops.store.engine import check_schema, create_engine
from llmops.store.tables import CALLS, DAILY_ROLLUPS
from llmops.store.writer import Writer

NOW = datetime(2026, 12, 1, tzinfo=UTC)  # fixed: the same rows on every run
CHUNK = 10_000
ROLLUPS = tuple(table.name for table in DAILY_ROLLUPS)  # kept by triggers
AUDIT_COLUMNS = ("chain_id", "chain_seq", "content_hash", "row_hash")
CHAIN_INDEX = "ix_llm_calls_chain"


# -- the rows ---------------------------------------------------------------------------


def sentences() -> list[str]:
    """English sentences from the repository's prose (README.md, docs/): no code blocks,
    tables or headings."""
    texts = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    found = []
    for path in texts:
        if not path.exists():
            continue
        prose = re.sub(r"```.*?```", " ", path.read_text(encoding="utf-8"), flags=re.S)
        lines = [ln for ln in prose.splitlines() if ln.strip() and ln[:1] not in "#|>-*<"]
        text = re.sub(r"[`*_\[\]]", "", " ".join(lines))
        text = re.sub(r"\(https?://[^)]*\)", "", text)
        found += [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if 20 <= len(s) <= 400]
    if len(found) < 50:
        raise SystemExit("not enough prose in README.md and docs/ to build the content")
    return found


class Text:
    """Runs of consecutive sentences of about a given length."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.sentences = sentences()

    def about(self, chars: int) -> str:
        start = self.rng.randrange(len(self.sentences))
        out: list[str] = []
        size = 0
        i = start
        while size < chars:
            sentence = self.sentences[i % len(self.sentences)]
            out.append(sentence)
            size += len(sentence) + 1
            i += 1
        return " ".join(out)[: int(chars * 1.2)]


def calls(n: int, content: str) -> Iterator[dict[str, Any]]:
    """The N call rows, the same on every call of this function; content 'full' or 'none'."""
    maker = RowMaker(n, NOW)
    text = Text(random.Random(1))
    system: dict[tuple[str | None, str | None], str] = {}
    for kind, row in maker.rows():
        if kind != "call":
            continue
        key = (row["prompt_name"], row["prompt_version"])
        if key not in system:
            system[key] = text.about(450)
        question = text.about(rng_size(text.rng, 180))
        params = row["request"]["params"]
        reply = text.about(rng_size(text.rng, 400)) if row["response_text"] else None
        if content == "none":
            row["request"] = {"messages": None, "params": params}
            row["response_text"] = None
        else:
            request: dict[str, Any] = {
                "params": params,
                "messages": [
                    {"role": "system", "content": system[key]},
                    {"role": "user", "content": f"Customer question: {question}"},
                ],
            }
            if row["prompt_name"]:
                request["variables"] = {"question": question}
            row["request"] = request
            row["response_text"] = reply
        yield row


def rng_size(rng: random.Random, mean: int) -> int:
    return max(20, int(rng.lognormvariate(0, 0.4) * mean))


def content_bytes(row: dict[str, Any]) -> tuple[int, int, int]:
    """Bytes of the request JSON and the response text, and of both zlib-compressed (level
    6, one row at a time, as a per-value compression such as TOAST's would)."""
    request = orjson.dumps(row["request"]) if row["request"] is not None else b""
    response = (row["response_text"] or "").encode()
    return len(request), len(response), len(zlib.compress(request + response, 6))


def write(url: str, n: int, content: str, spool: Path) -> dict[str, Any]:
    """Write the rows through the Writer; return the row count, seconds and content sizes."""
    engine = create_engine(url)
    check_schema(engine)
    writer = Writer(lambda: engine, spool, batch_size=1000, queue_size=4 * CHUNK)
    put, stats = writer.put, writer.stats
    sizes = [0, 0, 0]
    started = time.perf_counter()
    count = 0
    for count, row in enumerate(calls(n, content), 1):
        for i, size in enumerate(content_bytes(row)):
            sizes[i] += size
        put("call", row)
        if count % 1000 == 0:
            while count - stats.written > 2 * CHUNK:  # keep the queue from spilling
                time.sleep(0.005)
    writer.close(timeout=None)
    seconds = time.perf_counter() - started
    if writer.stats.spooled or writer.stats.rejected:
        raise SystemExit(f"the writer spooled or rejected rows: {writer.stats}")
    with engine.connect() as connection:
        stored = connection.execute(sa.text("SELECT count(*) FROM llm_calls")).scalar_one()
    engine.dispose()
    if stored != count:
        raise SystemExit(f"FAIL: {stored:,} of {count:,} rows stored")
    return {
        "rows": count,
        "seconds": seconds,
        "request": sizes[0],
        "response": sizes[1],
        "zlib": sizes[2],
    }


# -- measuring --------------------------------------------------------------------------


@dataclass
class Sizes:
    """Bytes of one database, by part."""

    total: int = 0
    as_written: int = 0  # SQLite: before VACUUM; PostgreSQL: after VACUUM ANALYZE
    compacted: int = 0  # SQLite: after VACUUM; PostgreSQL: after VACUUM FULL
    rollups_compacted: int = 0
    calls_data: int = 0
    calls_indexes: dict[str, int] = field(default_factory=dict)
    rollups: int = 0
    rollup_rows: int = 0
    free: int | None = None  # unused bytes in llm_calls's pages, when known
    content_data: int = 0  # llm_call_content (PostgreSQL: heap, TOAST, maps)
    content_indexes: int = 0
    content_rows: int = 0
    other: int = 0
    columns: dict[str, int] = field(default_factory=dict)


def sqlite_column_expr(name: str) -> str:
    """Bytes a value takes in a SQLite record: serial-type header byte(s) plus value bytes."""
    c = f'"{name}"'
    return (
        f"CASE typeof({c}) WHEN 'null' THEN 1 "
        f"WHEN 'integer' THEN 1 + CASE WHEN {c} IN (0, 1) THEN 0 "
        f"WHEN {c} BETWEEN -128 AND 127 THEN 1 WHEN {c} BETWEEN -32768 AND 32767 THEN 2 "
        f"WHEN {c} BETWEEN -8388608 AND 8388607 THEN 3 "
        f"WHEN {c} BETWEEN -2147483648 AND 2147483647 THEN 4 "
        f"WHEN {c} BETWEEN -140737488355328 AND 140737488355327 THEN 6 ELSE 8 END "
        f"WHEN 'real' THEN 9 "
        f"ELSE length(CAST({c} AS BLOB)) + CASE WHEN length(CAST({c} AS BLOB)) < 57 THEN 1 "
        f"WHEN length(CAST({c} AS BLOB)) < 8185 THEN 2 ELSE 3 END END"
    )


def measure_sqlite(path: Path) -> Sizes:
    sizes = Sizes()
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        sizes.as_written = path.stat().st_size
        connection.execute("VACUUM")
        connection.execute("ANALYZE")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        sizes.total = sizes.compacted = path.stat().st_size
        owner = dict(connection.execute("SELECT name, tbl_name FROM sqlite_schema"))
        for name, pages, unused in connection.execute(
            "SELECT name, sum(pgsize), sum(unused) FROM dbstat GROUP BY name"
        ):
            table = owner.get(name, name)
            if name == "llm_calls":
                sizes.calls_data += pages
                sizes.free = unused
            elif table == "llm_calls":
                label = "primary key (id)" if name.startswith("sqlite_autoindex") else name
                sizes.calls_indexes[label] = pages
            elif name == "llm_call_content":
                sizes.content_data += pages
            elif table == "llm_call_content":
                sizes.content_indexes += pages
            elif table in ROLLUPS:
                sizes.rollups += pages
            else:
                sizes.other += pages
        sizes.rollups_compacted = sizes.rollups
        sizes.content_rows = connection.execute("SELECT count(*) FROM llm_call_content").fetchone()[
            0
        ]
        sizes.rollup_rows = sum(
            connection.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ROLLUPS
        )
        names = [column.name for column in CALLS.columns]
        exprs = ", ".join(f"sum({sqlite_column_expr(n)})" for n in names)
        values = connection.execute(f"SELECT {exprs} FROM llm_calls").fetchone()
        sizes.columns = dict(zip(names, (int(v or 0) for v in values), strict=True))
    finally:
        connection.close()
    return sizes


def measure_postgres(url: str) -> Sizes:
    import psycopg

    sizes = Sizes()
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")

        def one(query: str, *args: Any) -> Any:
            return connection.execute(query, args).fetchone()[0]  # type: ignore[index]

        tables = [
            r[0]
            for r in connection.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            )
        ]
        sizes.total = sum(one("SELECT pg_total_relation_size(%s::regclass)", t) for t in tables)
        sizes.as_written = sizes.total
        # llm_calls is partitioned by month (migration 0012): sum its partitions, and each
        # index over the partitions' indexes (a plain table is its own partition tree)
        sizes.calls_data = one(  # heap, TOAST, maps
            "SELECT sum(pg_table_size(relid)) FROM pg_partition_tree('llm_calls')"
        )
        for name, size in connection.execute(
            "SELECT c.relname, (SELECT sum(pg_relation_size(t.relid)) "
            "FROM pg_partition_tree(c.oid) t) FROM pg_index x "
            "JOIN pg_class c ON c.oid = x.indexrelid WHERE x.indrelid = 'llm_calls'::regclass"
        ):
            label = "primary key (id, created_at)" if name == "llm_calls_pkey" else name
            sizes.calls_indexes[label] = size
        # llm_call_content is partitioned like llm_calls (migration 0016)
        sizes.content_data = one(
            "SELECT coalesce(sum(pg_table_size(relid)), 0) "
            "FROM pg_partition_tree('llm_call_content')"
        )
        sizes.content_indexes = one(
            "SELECT coalesce(sum(pg_relation_size(t.relid)), 0) FROM pg_index x, "
            "pg_partition_tree(x.indexrelid) t WHERE x.indrelid = 'llm_call_content'::regclass"
        )
        sizes.content_rows = one("SELECT count(*) FROM llm_call_content")
        sizes.rollups = sum(one("SELECT pg_total_relation_size(%s::regclass)", t) for t in ROLLUPS)
        sizes.rollup_rows = sum(one(f"SELECT count(*) FROM {t}") for t in ROLLUPS)
        sizes.other = sizes.total - sizes.calls_data - sum(sizes.calls_indexes.values())
        sizes.other -= sizes.rollups + sizes.content_data + sizes.content_indexes
        names = [column.name for column in CALLS.columns]
        exprs = ", ".join(f'coalesce(sum(pg_column_size("{n}")), 0)' for n in names)
        values = connection.execute(f"SELECT {exprs} FROM llm_calls").fetchone()
        assert values is not None
        sizes.columns = dict(zip(names, (int(v) for v in values), strict=True))
        try:
            connection.execute("CREATE EXTENSION IF NOT EXISTS pgstattuple")
            sizes.free = one(
                "SELECT sum((pgstattuple(relid)).free_space) "
                "FROM pg_partition_tree('llm_calls') WHERE isleaf"
            )
        except psycopg.Error:
            pass  # contrib not installed: free space stays unknown
        connection.execute("VACUUM FULL")
        sizes.compacted = sum(one("SELECT pg_total_relation_size(%s::regclass)", t) for t in tables)
        sizes.rollups_compacted = sum(
            one("SELECT pg_total_relation_size(%s::regclass)", t) for t in ROLLUPS
        )
    return sizes


# -- reporting --------------------------------------------------------------------------


def report(label: str, n: int, sizes: Sizes, written: dict[str, Any], backend: str) -> list[str]:
    def per(value: float) -> str:
        return f"{value / n:,.0f}"

    indexes = sum(sizes.calls_indexes.values())
    columns = sum(sizes.columns.values())
    overhead = sizes.calls_data - columns
    audit = sum(sizes.columns[c] for c in AUDIT_COLUMNS)
    chain_index = sizes.calls_indexes.get(CHAIN_INDEX, 0)
    lines = [
        f"\n{label}: {n:,} calls written in {written['seconds']:.1f} s "
        f"({n / written['seconds']:,.0f} calls/s); content as generated: request JSON "
        f"{per(written['request'])} B, response {per(written['response'])} B, both zlib'd "
        f"per row {per(written['zlib'])} B",
        f"  {'part':<44} {'bytes/call':>10} {'share':>6}",
    ]

    def line(name: str, value: float) -> None:
        lines.append(f"  {name:<44} {per(value):>10} {value / sizes.total:>6.1%}")

    state = "VACUUM ANALYZE" if backend == "PostgreSQL" else "VACUUM, ANALYZE"
    line(f"whole database (after {state})", sizes.total)
    line("  llm_calls data", sizes.calls_data)
    line("    column values", columns)
    line("      of which params", sizes.columns["params"])
    line("      of which audit (chain_id/seq, hashes)", audit)
    line("    row overhead (headers, page free space)", overhead)
    if sizes.free is not None:
        line("      of which free space in the pages", sizes.free)
    line(f"  llm_calls indexes ({len(sizes.calls_indexes)})", indexes)
    for name, value in sorted(sizes.calls_indexes.items(), key=lambda kv: -kv[1]):
        line(f"    {name}", value)
    line(f"  llm_call_content data ({sizes.content_rows:,} rows)", sizes.content_data)
    line("  llm_call_content indexes (2)", sizes.content_indexes)
    line(f"  rollups ({sizes.rollup_rows:,} rows)", sizes.rollups)
    line("  everything else (schema, other tables)", sizes.other)
    line("audit: columns + ix_llm_calls_chain", audit + chain_index)
    lines.append(f"  {'whole database as written':<44} {per(sizes.as_written):>10}")
    lines.append(f"  {'whole database compacted':<44} {per(sizes.compacted):>10}")
    lines.append(f"  {'rollups compacted':<44} {per(sizes.rollups_compacted):>10}")
    lines.append(f"  {'largest columns':<44} {'bytes/call':>10}")
    for name, value in sorted(sizes.columns.items(), key=lambda kv: -kv[1])[:10]:
        lines.append(f"    {name:<42} {per(value):>10} {value / columns:>6.1%} of values")
    return lines


def summary(results: list[tuple[str, int, Sizes]]) -> list[str]:
    head = f"{'configuration':<28} {'total':>7} {'data':>6} {'indexes':>7} {'rollups':>7}"
    head += f" {'content':>7} {'audit':>6} {'as written':>10} {'compacted':>9}"
    lines = ["\nBytes per call", head]
    for label, n, s in results:
        audit = sum(s.columns[c] for c in AUDIT_COLUMNS) + s.calls_indexes.get(CHAIN_INDEX, 0)
        content = s.content_data + s.content_indexes
        lines.append(
            f"{label:<28} {s.total / n:>7,.0f} {s.calls_data / n:>6,.0f} "
            f"{sum(s.calls_indexes.values()) / n:>7,.0f} {s.rollups / n:>7,.0f} "
            f"{content / n:>7,.0f} {audit / n:>6,.0f} {s.as_written / n:>10,.0f} "
            f"{s.compacted / n:>9,.0f}"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--postgres", action="store_true", help="also a throwaway PostgreSQL")
    args = parser.parse_args()
    n = args.rows
    print(f"{n:,} calls per configuration, through llmops.store.writer.Writer", flush=True)
    results: list[tuple[str, int, Sizes]] = []
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="llmops-storage-") as folder:
        base = Path(folder)
        for content in ("full", "none"):
            path = base / f"{content}.db"
            written = write(f"sqlite:///{path}", n, content, base / f"spool-{content}")
            sizes = measure_sqlite(path)
            label = f"SQLite, content={content}"
            results.append((label, n, sizes))
            lines += report(label, n, sizes, written, "SQLite")
            print(f"  {label}: done", flush=True)
        if args.postgres:
            with throwaway_postgres() as server:
                for content in ("full", "none"):
                    url = server.new_database(f"storage_{content}")
                    written = write(url, n, content, base / f"spool-pg-{content}")
                    sizes = measure_postgres(url)
                    label = f"PostgreSQL, content={content}"
                    results.append((label, n, sizes))
                    lines += report(label, n, sizes, written, "PostgreSQL")
                    print(f"  {label}: done", flush=True)
                    server.drop_database(url)
    print("\n".join(lines))
    print("\n".join(summary(results)))
    print(
        "\ncontent = llm_call_content (migration 0016), its rows and indexes; audit = chain_id, "
        "chain_seq, content_hash, row_hash values + ix_llm_calls_chain;\nas written: "
        "SQLite before VACUUM, PostgreSQL after VACUUM ANALYZE; compacted: SQLite after "
        "VACUUM, PostgreSQL after VACUUM FULL.\nThe other figures: SQLite compacted, "
        "PostgreSQL as written."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
