"""Daily latency and time-to-first-token histograms, kept by triggers, so that percentiles
over weeks merge a few thousand bucket counts instead of reading every call.

Buckets are log-spaced: bucket ``b`` holds the values in ``[1.02**b, 1.02**(b+1))`` ms, i.e.
``b = floor(ln(ms) / ln(1.02))``, and stands for its geometric midpoint ``1.02**(b + 0.5)``,
which is within ``sqrt(1.02) - 1 = 0.995%`` of every value in it. Buckets run from
``b = -349`` (0.000997 ms) to ``b = 1046`` (1.0e9 ms, 11.6 days, and everything above it,
infinity included); the values below 1.02**-349 ms (zero, negatives) count in bucket -350,
which stands for 0; NULL (and NaN on PostgreSQL) are not counted, as percentiles leave them
out. The bounds are rows of ``timing_buckets`` (computed once, here, in Python), so that
both databases put a value in the same bucket and SQLite needs no math functions.

One histogram table, ``llm_calls_daily_timing``: per UTC day of the call, metric
(``latency`` or ``ttft``) and bucket, every call of the day (the unfiltered dashboard: a few
hundred rows a day whatever the traffic). Filtered views read the calls, as before: a table
per (model, prompt, version, source, status) was measured at 127 bytes per call and a
slower ingest, for at most 2x on filtered views at 11,000 calls a day.

Its own triggers on ``llm_calls`` (beside those of 0005: the same events, the same
transaction; per row on SQLite, per statement over transition tables on PostgreSQL) keep them
exact on every insert, update and delete. It is filled from the existing calls here, in one
set-based statement.

Revision ID: 0010
Revises: 0009
"""

# ruff: noqa: S608  (the SQL here is built from this file's constants, never from input)

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

GAMMA = 1.02
LOWEST, HIGHEST = -349, 1046  # the first and last log bucket
ZERO = LOWEST - 1  # values below GAMMA**LOWEST ms: zero, negatives

DAY = {
    "sqlite": "substr({r}.created_at, 1, 10)",
    "postgresql": "({r}.created_at AT TIME ZONE 'UTC')::date",
}
GROUP = {  # key columns (besides the day) -> their value for one call row {r}
    "model": "{r}.model",
    "prompt_name": "coalesce({r}.prompt_name, '')",
    "prompt_version": "coalesce({r}.prompt_version, '')",
    "source": "{r}.source",
    "status": "{r}.status",
}
METRICS = {"latency": "latency_ms", "ttft": "ttft_ms"}  # metric -> column of llm_calls
COUNTED = {  # a value the histograms count
    "sqlite": "{v} IS NOT NULL",  # SQLite stores NaN as NULL
    "postgresql": "{v} IS NOT NULL AND {v} <> 'NaN'::float8",
}
BUCKET = (
    "coalesce((SELECT b.bucket FROM timing_buckets b WHERE b.lower <= {v} "
    f"ORDER BY b.lower DESC LIMIT 1), {ZERO})"
)
TABLES: dict[str, tuple[str, ...]] = {  # histogram table -> its keys besides day, metric, bucket
    "llm_calls_daily_timing": (),
}
# PostgreSQL computes the bucket instead of looking it up (a lookup per value cost a fifth of
# its ingest): floor(ln(v) / ln 1.02), then moved by one where rounding put it across a
# bound, the bounds being power(1.02, b), the same C pow() as the table's Python 1.02**b.
_B0 = "floor(ln({v}) / ln(1.02))::int"
BUCKET_PG = (
    f"CASE WHEN {{v}} < power(1.02::float8, {LOWEST}) THEN {ZERO} "
    f"WHEN {{v}} >= power(1.02::float8, {HIGHEST}) THEN {HIGHEST} "
    f"ELSE {_B0} - ({{v}} < power(1.02::float8, {_B0}))::int "
    f"+ ({{v}} >= power(1.02::float8, {_B0} + 1))::int END"
)
UPDATED = ("created_at", *GROUP, *METRICS.values())  # the columns of llm_calls they read


def buckets() -> list[dict[str, Any]]:
    """The rows of timing_buckets: lower bound and the value each bucket stands for."""
    rows = [{"bucket": ZERO, "lower": None, "value": 0.0}]
    for b in range(LOWEST, HIGHEST + 1):
        rows.append({"bucket": b, "lower": GAMMA**b, "value": GAMMA ** (b + 0.5)})
    return rows


def columns(table: str) -> list[str]:
    return ["day", *TABLES[table], "metric", "bucket", "calls"]


def upsert(table: str, select: str) -> str:
    key = ", ".join(columns(table)[:-1])
    return (
        f"INSERT INTO {table} ({', '.join(columns(table))}) {select} "
        f"ON CONFLICT ({key}) DO UPDATE SET calls = {table}.calls + excluded.calls"
    )


def add_all(table: str, rows: str, dialect: str, sign: str = "") -> str:
    """Upsert the counts of every call in ``rows`` (a table), negated with sign '-'."""
    key = [f"{DAY[dialect].format(r='r')} AS day"] + [
        f"{GROUP[k].format(r='r')} AS {k}" for k in TABLES[table]
    ]
    value = "CASE WHEN m.metric = 'latency' THEN r.latency_ms ELSE r.ttft_ms END"
    metrics = " UNION ALL ".join(
        f"SELECT '{m}' AS metric" if i == 0 else f"SELECT '{m}'" for i, m in enumerate(METRICS)
    )
    values = f"SELECT {', '.join(key)}, m.metric, {value} AS v FROM {rows} r, ({metrics}) m"
    names = ", ".join(columns(table)[:-3])
    lookup = BUCKET_PG if dialect == "postgresql" else BUCKET
    bucketed = (
        f"SELECT {names}, metric, {lookup.format(v='x.v')} AS bucket FROM ({values}) x "
        f"WHERE {COUNTED[dialect].format(v='x.v')}"
    )
    positions = ", ".join(str(i + 1) for i in range(len(columns(table)) - 1))
    return upsert(
        table,
        f"SELECT {names}, metric, bucket, {sign}count(*) FROM ({bucketed}) y WHERE true "
        f"GROUP BY {positions} ORDER BY {positions}",
    )


def sqlite_one(table: str, r: str, metric: str, sign: str = "") -> list[str]:
    """SQLite: count call row ``r``'s ``metric`` in, or out (sign '-')."""
    v = f"{r}.{METRICS[metric]}"
    key = [DAY["sqlite"].format(r=r)] + [GROUP[k].format(r=r) for k in TABLES[table]]
    bucket = BUCKET.format(v=v)
    statements = [
        upsert(
            table,
            f"SELECT {', '.join(key)}, '{metric}', {bucket}, {sign}1 "
            f"WHERE {COUNTED['sqlite'].format(v=v)}",
        )
    ]
    if sign:
        names = columns(table)[:-1]
        where = " AND ".join(
            f"{c} = {e}" for c, e in zip(names, [*key, f"'{metric}'", bucket], strict=True)
        )
        statements.append(f"DELETE FROM {table} WHERE {where} AND calls <= 0")
    return statements


def sqlite_trigger(name: str, event: str, body: list[str]) -> str:
    statements = "".join(f"  {s};\n" for s in body)
    return f"CREATE TRIGGER {name} AFTER {event} ON llm_calls\nBEGIN\n{statements}END"


def sqlite_triggers() -> list[str]:
    added = [s for t in TABLES for m in METRICS for s in sqlite_one(t, "NEW", m)]
    removed = [s for t in TABLES for m in METRICS for s in sqlite_one(t, "OLD", m, "-")]
    changed = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in UPDATED)
    return [
        sqlite_trigger("llm_calls_timing_insert", "INSERT", added),
        sqlite_trigger("llm_calls_timing_delete", "DELETE", removed),
        sqlite_trigger(
            "llm_calls_timing_update", f"UPDATE OF {', '.join(UPDATED)}", removed + added
        ).replace("\nBEGIN", f" WHEN {changed}\nBEGIN", 1),
    ]


SQLITE_TRIGGERS = ("llm_calls_timing_insert", "llm_calls_timing_delete", "llm_calls_timing_update")


def pg_statements() -> list[str]:
    pg = "postgresql"
    added = [add_all(t, "new_rows", pg) for t in TABLES]
    removed = []
    for t in TABLES:
        removed += [
            add_all(t, "old_rows", pg, "-"),
            f"DELETE FROM {t} d WHERE d.calls <= 0 "
            f"AND d.day IN (SELECT DISTINCT {DAY[pg].format(r='r')} FROM old_rows r)",
        ]
    functions = {
        "llmops_timing_inserted": added,
        "llmops_timing_deleted": removed,
        "llmops_timing_updated": removed + added,
    }
    statements = [
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n"
        + "".join(f"  {s};\n" for s in body)
        + "  RETURN NULL;\nEND $$"
        for name, body in functions.items()
    ]
    for event, past, tables in (
        ("INSERT", "inserted", "NEW TABLE AS new_rows"),
        ("UPDATE", "updated", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
        ("DELETE", "deleted", "OLD TABLE AS old_rows"),
    ):
        statements.append(
            f"CREATE TRIGGER llm_calls_timing_{event.lower()} AFTER {event} ON llm_calls "
            f"REFERENCING {tables} FOR EACH STATEMENT EXECUTE FUNCTION llmops_timing_{past}()"
        )
    return statements


PG_FUNCTIONS = ("llmops_timing_inserted", "llmops_timing_deleted", "llmops_timing_updated")


def key_columns(*names: str) -> list[sa.Column[Any]]:
    lengths = {"model": 200, "prompt_name": 200, "prompt_version": 12, "source": 16, "status": 16}
    return [
        sa.Column("day", sa.Date, primary_key=True),
        *(sa.Column(n, sa.String(lengths[n]), primary_key=True) for n in names),
        sa.Column("metric", sa.String(8), primary_key=True),
        sa.Column("bucket", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("calls", sa.Integer, nullable=False),
    ]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":  # no call may slip in between the backfill and the triggers
        op.execute("LOCK TABLE llm_calls IN SHARE ROW EXCLUSIVE MODE")
    table = op.create_table(
        "timing_buckets",
        sa.Column("bucket", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("lower", sa.Float, nullable=True),
        sa.Column("value", sa.Float, nullable=False),
    )
    op.create_index("ix_timing_buckets_lower", "timing_buckets", ["lower"], unique=True)
    op.bulk_insert(table, buckets())
    for name, keys in TABLES.items():
        op.create_table(name, *key_columns(*keys))
        op.execute(add_all(name, "llm_calls", dialect))
    for statement in sqlite_triggers() if dialect == "sqlite" else pg_statements():
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    else:
        for event in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS llm_calls_timing_{event} ON llm_calls")
        for name in PG_FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    for name in TABLES:
        op.drop_table(name)
    op.drop_index("ix_timing_buckets_lower", "timing_buckets")
    op.drop_table("timing_buckets")
