"""Daily rollups of calls and feedback, kept by triggers, so the dashboard sums days.

Four rollup tables, each per UTC day of the call:

- ``llm_calls_daily``: per (model, prompt, version, commit, source, status), the calls and
  the sums of their tokens, cost and latency, and the first and last call's time;
- ``llm_calls_daily_users``: per user, the calls, tokens and cost;
- ``llm_calls_daily_tags``: per tag (and model, prompt, version, source, status), the same;
- ``feedback_daily``: per (model, prompt, version, source, status) of the call and the
  feedback's name and score, how many feedback rows there are.

Triggers on ``llm_calls`` and ``feedback`` keep them exact on every insert, update and
delete, in the same transaction (per row on SQLite; per statement, over transition tables,
on PostgreSQL), so no code path can let them drift. '' stands for NULL (and for "no tag")
in their key columns. They are filled from the existing rows here.

Also: an index that covers the percentile queries, and one for the newest feedback.

Revision ID: 0005
Revises: 0004
"""

# ruff: noqa: S608  (the SQL here is built from this file's constants, never from input)

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

DAY = {
    "sqlite": "substr({r}.created_at, 1, 10)",
    "postgresql": "({r}.created_at AT TIME ZONE 'UTC')::date",
}
GROUP = {  # key columns (besides the day) -> their value for one call row {r}
    "model": "{r}.model",
    "prompt_name": "coalesce({r}.prompt_name, '')",
    "prompt_version": "coalesce({r}.prompt_version, '')",
    "git_commit": "coalesce({r}.git_commit, '')",
    "source": "{r}.source",
    "status": "{r}.status",
    "user_id": "coalesce({r}.user_id, '')",
    "tag": "t.value",
}
SPEND = {  # summed columns -> their value for one call row {r}
    "calls": "1",
    "prompt_tokens": "coalesce({r}.prompt_tokens, 0)",
    "completion_tokens": "coalesce({r}.completion_tokens, 0)",
    "cost_usd": "coalesce({r}.cost_usd, 0)",
    "unpriced_calls": "CASE WHEN {r}.cost_status = 'unpriced' THEN 1 ELSE 0 END",
}
TAGS = {  # one row per tag of call {r}; calls without tags count under ''
    "sqlite": "json_each(coalesce({r}.tags, '[\"\"]')) AS t",
    "postgresql": "jsonb_array_elements_text(coalesce({r}.tags, '[\"\"]'::jsonb)) AS t(value)",
}


@dataclass(frozen=True)
class Rollup:
    table: str
    key: tuple[str, ...]  # after the day
    sums: dict[str, str]
    per_tag: bool = False
    bounds: bool = False  # keeps first_at and last_at, the times of its first and last call
    columns: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        bounds = ("first_at", "last_at") if self.bounds else ()
        object.__setattr__(self, "columns", ("day", *self.key, *self.sums, *bounds))

    def values(self, r: str, dialect: str, sign: str = "") -> list[str]:
        """The rollup columns for call row ``r``, its figures negated with sign '-'."""
        key = [DAY[dialect].format(r=r)] + [GROUP[k].format(r=r) for k in self.key]
        sums = [f"{sign}({v.format(r=r)})" for v in self.sums.values()]
        return key + sums + ([f"{r}.created_at"] * 2 if self.bounds else [])

    def add_one(self, r: str, sign: str = "") -> str:
        """SQLite: upsert the figures of call row ``r`` (NEW or OLD)."""
        tags = f" FROM {TAGS['sqlite'].format(r=r)}" if self.per_tag else ""
        return self.upsert(f"SELECT {', '.join(self.values(r, 'sqlite', sign))}{tags} WHERE true")

    def add_all(self, rows: str, dialect: str, sign: str = "") -> str:
        """Upsert the summed figures of every call in ``rows`` (a table)."""
        values = self.values("r", dialect, sign)
        width = 1 + len(self.key)
        figures = [f"sum({v})" for v in values[width : width + len(self.sums)]]
        if self.bounds:
            figures += ["min(r.created_at)", "max(r.created_at)"]
        tags = ""
        if self.per_tag:
            tags = (", " if dialect == "sqlite" else " CROSS JOIN LATERAL ") + TAGS[dialect].format(
                r="r"
            )
        positions = ", ".join(str(i + 1) for i in range(width))
        return self.upsert(
            f"SELECT {', '.join(values[:width] + figures)} FROM {rows} r{tags} WHERE true "
            f"GROUP BY {positions} ORDER BY {positions}"
        )

    def upsert(self, select: str) -> str:
        t = self.table
        updates = [f"{c} = {t}.{c} + excluded.{c}" for c in self.sums]
        if self.bounds:
            updates += [
                f"first_at = {{least}}({t}.first_at, excluded.first_at)",
                f"last_at = {{greatest}}({t}.last_at, excluded.last_at)",
            ]
        return (
            f"INSERT INTO {t} ({', '.join(self.columns)}) {select} ON CONFLICT "
            f"(day, {', '.join(self.key)}) DO UPDATE SET {', '.join(updates)}"
        )

    def remove_one(self, r: str) -> list[str]:
        """SQLite: take call row ``r`` out (negated upsert, drop emptied rows, bounds)."""
        day = DAY["sqlite"].format(r=r)
        statements = [
            self.add_one(r, "-"),
            f"DELETE FROM {self.table} WHERE day = {day} AND calls <= 0",
        ]
        if self.bounds:
            key = self.values(r, "sqlite")[: 1 + len(self.key)]
            where = " AND ".join(f"{c} = {v}" for c, v in zip(self.columns, key, strict=False))
            calls = " AND ".join(
                [f"c.created_at >= {day}", f"c.created_at < date({day}, '+1 day')"]
                + [f"{GROUP[k].format(r='c')} = {GROUP[k].format(r=r)}" for k in self.key]
            )
            statements.append(
                f"UPDATE {self.table} SET "
                f"first_at = (SELECT min(c.created_at) FROM llm_calls c WHERE {calls}), "
                f"last_at = (SELECT max(c.created_at) FROM llm_calls c WHERE {calls}) "
                f"WHERE {where} AND (first_at = {r}.created_at OR last_at = {r}.created_at)"
            )
        return statements

    def remove_all(self, rows: str) -> list[str]:
        """PostgreSQL: take the calls in ``rows`` out."""
        day = DAY["postgresql"].format(r="r")
        statements = [
            self.add_all(rows, "postgresql", "-"),
            f"DELETE FROM {self.table} d WHERE d.calls <= 0 "
            f"AND d.day IN (SELECT DISTINCT {day} FROM {rows} r)",
        ]
        if self.bounds:
            calls = " AND ".join(
                [
                    "c.created_at >= d.day::timestamp AT TIME ZONE 'UTC'",
                    "c.created_at < (d.day + 1)::timestamp AT TIME ZONE 'UTC'",
                ]
                + [f"{GROUP[k].format(r='c')} = d.{k}" for k in self.key]
            )
            touched = " AND ".join(
                [f"d.day = {day}"] + [f"d.{k} = {GROUP[k].format(r='r')}" for k in self.key]
            )
            statements.append(
                f"UPDATE {self.table} d SET "
                f"first_at = (SELECT min(c.created_at) FROM llm_calls c WHERE {calls}), "
                f"last_at = (SELECT max(c.created_at) FROM llm_calls c WHERE {calls}) "
                f"WHERE EXISTS (SELECT 1 FROM {rows} r WHERE {touched} "
                "AND (r.created_at = d.first_at OR r.created_at = d.last_at))"
            )
        return statements


CALL_ROLLUPS = (
    Rollup(
        "llm_calls_daily",
        ("model", "prompt_name", "prompt_version", "git_commit", "source", "status"),
        {
            **SPEND,
            "priced_calls": "CASE WHEN {r}.cost_usd IS NULL THEN 0 ELSE 1 END",
            "estimated_calls": "CASE WHEN {r}.tokens_estimated THEN 1 ELSE 0 END",
            "latency_ms_sum": "coalesce({r}.latency_ms, 0)",
            "latency_calls": "CASE WHEN {r}.latency_ms IS NULL THEN 0 ELSE 1 END",
        },
        bounds=True,
    ),
    Rollup("llm_calls_daily_users", ("user_id",), SPEND),
    Rollup(
        "llm_calls_daily_tags",
        ("tag", "model", "prompt_name", "prompt_version", "source", "status"),
        SPEND,
        per_tag=True,
    ),
)
# the columns of llm_calls that the call rollups read
CALL_COLUMNS = (
    "created_at", "model", "prompt_name", "prompt_version", "git_commit", "source", "status",
    "user_id", "tags", "prompt_tokens", "completion_tokens", "cost_usd", "cost_status",
    "tokens_estimated", "latency_ms",
)  # fmt: skip
FEEDBACK_KEY = ("model", "prompt_name", "prompt_version", "source", "status")
FEEDBACK_COLUMNS = ("day", *FEEDBACK_KEY, "name", "score", "feedback_count")
FEEDBACK_MOVES = ("created_at", "model", "prompt_name", "prompt_version", "source", "status")
FEEDBACK_EMPTIED = "DELETE FROM feedback_daily WHERE feedback_count <= 0"


def dialect_sql(statement: str, dialect: str) -> str:
    least, greatest = ("min", "max") if dialect == "sqlite" else ("least", "greatest")
    return statement.replace("{least}", least).replace("{greatest}", greatest)


# -- feedback_daily -----------------------------------------------------------------------


def feedback_key(c: str, dialect: str) -> list[str]:
    return [DAY[dialect].format(r=c)] + [GROUP[k].format(r=c) for k in FEEDBACK_KEY]


def upsert_feedback(select: str) -> str:
    return (
        f"INSERT INTO feedback_daily ({', '.join(FEEDBACK_COLUMNS)}) {select} "
        f"ON CONFLICT ({', '.join(FEEDBACK_COLUMNS[:-1])}) DO UPDATE SET "
        "feedback_count = feedback_daily.feedback_count + excluded.feedback_count"
    )


def feedback_counts(feedback: str, calls: str, dialect: str, sign: str = "") -> str:
    """Feedback rows of ``feedback`` counted by the key of their call in ``calls``."""
    positions = ", ".join(str(i + 1) for i in range(len(FEEDBACK_COLUMNS) - 1))
    return (
        f"SELECT {', '.join(feedback_key('c', dialect))}, f.name, f.score, {sign}count(*) "
        f"FROM {feedback} f JOIN {calls} c ON c.id = f.call_id WHERE true "
        f"GROUP BY {positions} ORDER BY {positions}"
    )


def sqlite_feedback_of_call(r: str, sign: str = "") -> list[str]:
    """Count the feedback of call row ``r`` in, or out (sign '-'), under r's key."""
    select = (
        f"SELECT {', '.join(feedback_key(r, 'sqlite'))}, f.name, f.score, {sign}count(*) "
        f"FROM feedback f WHERE f.call_id = {r}.id GROUP BY f.name, f.score"
    )
    return [upsert_feedback(select)] + ([FEEDBACK_EMPTIED] if sign else [])


def sqlite_feedback_row(f: str, sign: str = "") -> list[str]:
    """Count feedback row ``f`` in, or out (sign '-'), under its call's key."""
    select = (
        f"SELECT {', '.join(feedback_key('c', 'sqlite'))}, {f}.name, {f}.score, {sign}1 "
        f"FROM llm_calls c WHERE c.id = {f}.call_id"
    )
    return [upsert_feedback(select)] + ([FEEDBACK_EMPTIED] if sign else [])


# -- SQLite: row triggers -----------------------------------------------------------------


def sqlite_trigger(name: str, event: str, table: str, body: list[str], when: str = "") -> str:
    statements = "".join(f"  {dialect_sql(s, 'sqlite')};\n" for s in body)
    condition = f" WHEN {when}" if when else ""
    return f"CREATE TRIGGER {name} AFTER {event} ON {table}{condition}\nBEGIN\n{statements}END"


def sqlite_triggers() -> list[str]:
    added = [rollup.add_one("NEW") for rollup in CALL_ROLLUPS]
    removed = [s for rollup in CALL_ROLLUPS for s in rollup.remove_one("OLD")]
    moved = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in FEEDBACK_MOVES)
    return [
        sqlite_trigger("llm_calls_rollups_insert", "INSERT", "llm_calls", added),
        sqlite_trigger("llm_calls_rollups_delete", "DELETE", "llm_calls", removed),
        sqlite_trigger(
            "llm_calls_rollups_update",
            f"UPDATE OF {', '.join(CALL_COLUMNS)}",
            "llm_calls",
            removed + added,
        ),
        sqlite_trigger(
            "llm_calls_feedback_move",
            f"UPDATE OF {', '.join(FEEDBACK_MOVES)}",
            "llm_calls",
            sqlite_feedback_of_call("OLD", "-") + sqlite_feedback_of_call("NEW"),
            when=moved,
        ),
        sqlite_trigger("feedback_daily_insert", "INSERT", "feedback", sqlite_feedback_row("NEW")),
        sqlite_trigger(
            "feedback_daily_delete", "DELETE", "feedback", sqlite_feedback_row("OLD", "-")
        ),
        sqlite_trigger(
            "feedback_daily_update",
            "UPDATE OF call_id, name, score",
            "feedback",
            sqlite_feedback_row("OLD", "-") + sqlite_feedback_row("NEW"),
        ),
    ]


SQLITE_TRIGGERS = (
    "llm_calls_rollups_insert", "llm_calls_rollups_delete", "llm_calls_rollups_update",
    "llm_calls_feedback_move", "feedback_daily_insert", "feedback_daily_delete",
    "feedback_daily_update",
)  # fmt: skip


# -- PostgreSQL: statement triggers over transition tables --------------------------------


def pg_function(name: str, body: list[str]) -> str:
    statements = "".join(f"  {dialect_sql(s, 'postgresql')};\n" for s in body)
    return (
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n"
        f"{statements}  RETURN NULL;\nEND $$"
    )


def pg_statements() -> list[str]:
    pg = "postgresql"
    added = [rollup.add_all("new_rows", pg) for rollup in CALL_ROLLUPS]
    removed = [s for rollup in CALL_ROLLUPS for s in rollup.remove_all("old_rows")]
    moved = " OR ".join(f"o.{c} IS DISTINCT FROM n.{c}" for c in FEEDBACK_MOVES)
    pairs = f"old_rows o JOIN new_rows n ON n.id = o.id WHERE {moved}"
    functions = {
        "llmops_calls_inserted": added,
        "llmops_calls_deleted": removed,
        "llmops_calls_updated": [
            *removed,
            *added,
            upsert_feedback(feedback_counts("feedback", f"(SELECT o.* FROM {pairs})", pg, "-")),
            FEEDBACK_EMPTIED,
            upsert_feedback(feedback_counts("feedback", f"(SELECT n.* FROM {pairs})", pg)),
        ],
        "llmops_feedback_inserted": [upsert_feedback(feedback_counts("new_rows", "llm_calls", pg))],
        "llmops_feedback_deleted": [
            upsert_feedback(feedback_counts("old_rows", "llm_calls", pg, "-")),
            FEEDBACK_EMPTIED,
        ],
        "llmops_feedback_updated": [
            upsert_feedback(feedback_counts("old_rows", "llm_calls", pg, "-")),
            FEEDBACK_EMPTIED,
            upsert_feedback(feedback_counts("new_rows", "llm_calls", pg)),
        ],
    }
    statements = [pg_function(name, body) for name, body in functions.items()]
    for table, prefix in (("llm_calls", "llmops_calls"), ("feedback", "llmops_feedback")):
        for event, past, tables in (
            ("INSERT", "inserted", "NEW TABLE AS new_rows"),
            ("UPDATE", "updated", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
            ("DELETE", "deleted", "OLD TABLE AS old_rows"),
        ):
            statements.append(
                f"CREATE TRIGGER {table}_rollups_{event.lower()} AFTER {event} ON {table} "
                f"REFERENCING {tables} FOR EACH STATEMENT EXECUTE FUNCTION {prefix}_{past}()"
            )
    return statements


PG_FUNCTIONS = (
    "llmops_calls_inserted", "llmops_calls_deleted", "llmops_calls_updated",
    "llmops_feedback_inserted", "llmops_feedback_deleted", "llmops_feedback_updated",
)  # fmt: skip


# -- tables -------------------------------------------------------------------------------


def key_columns(*names: str) -> list[sa.Column[Any]]:
    lengths = {
        "model": 200, "prompt_name": 200, "prompt_version": 12, "git_commit": 40,
        "source": 16, "status": 16, "user_id": 200, "tag": 200, "name": 100,
    }  # fmt: skip
    return [sa.Column("day", sa.Date, primary_key=True)] + [
        sa.Column(n, sa.String(lengths[n]), primary_key=True) for n in names
    ]


def spend_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("calls", sa.Integer, nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger, nullable=False),
        sa.Column("completion_tokens", sa.BigInteger, nullable=False),
        sa.Column("cost_usd", sa.Float, nullable=False),
        sa.Column("unpriced_calls", sa.Integer, nullable=False),
    ]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":  # no call may slip in between the backfill and the triggers
        op.execute("LOCK TABLE llm_calls, feedback IN SHARE ROW EXCLUSIVE MODE")
    op.create_table(
        "llm_calls_daily",
        *key_columns(*CALL_ROLLUPS[0].key),
        *spend_columns(),
        sa.Column("priced_calls", sa.Integer, nullable=False),
        sa.Column("estimated_calls", sa.Integer, nullable=False),
        sa.Column("latency_ms_sum", sa.Float, nullable=False),
        sa.Column("latency_calls", sa.Integer, nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table("llm_calls_daily_users", *key_columns("user_id"), *spend_columns())
    op.create_table("llm_calls_daily_tags", *key_columns(*CALL_ROLLUPS[2].key), *spend_columns())
    op.create_table(
        "feedback_daily",
        *key_columns(*FEEDBACK_KEY, "name"),
        sa.Column("score", sa.Float, primary_key=True),
        sa.Column("feedback_count", sa.Integer, nullable=False),
    )
    for rollup in CALL_ROLLUPS:
        op.execute(dialect_sql(rollup.add_all("llm_calls", dialect), dialect))
    op.execute(upsert_feedback(feedback_counts("feedback", "llm_calls", dialect)))
    for statement in sqlite_triggers() if dialect == "sqlite" else pg_statements():
        op.execute(statement)
    op.create_index(
        "ix_llm_calls_timing",
        "llm_calls",
        ["created_at", "latency_ms", "ttft_ms", "model", "prompt_name", "prompt_version",
         "user_id", "source", "status"],
    )  # fmt: skip
    op.create_index("ix_feedback_created_at", "feedback", ["created_at"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    else:
        for table in ("llm_calls", "feedback"):
            for event in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_rollups_{event} ON {table}")
        for name in PG_FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    op.drop_index("ix_feedback_created_at", "feedback")
    op.drop_index("ix_llm_calls_timing", "llm_calls")
    for table in ("feedback_daily", "llm_calls_daily_tags", "llm_calls_daily_users"):
        op.drop_table(table)
    op.drop_table("llm_calls_daily")
