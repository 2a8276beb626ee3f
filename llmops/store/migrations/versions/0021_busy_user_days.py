"""Rollups of the busy days of users, so that a filter on one heavy user sums days instead
of reading that user's calls (which can be a tenth of every call).

No rollup had users with timings, tags, keys or feedback: a view filtered on a user read
the user's rows of the range, 2-4 s per page for a user with 8% of 10 million calls on
PostgreSQL. Rolling up every user's days would cost about as many histogram rows as calls;
most user-days hold a handful of calls, which are quick to read. So the users' rollups keep
only the **busy** user-days, those that reached :data:`BUSY_CALLS` calls:

- ``llm_calls_busy_user_days``: (day, user) marked busy. A user-day is marked by the
  calls' insert trigger when the user's calls that UTC day (``llm_calls_daily_users``)
  reach :data:`BUSY_CALLS` (on SQLite at :data:`BUSY_CALLS` - 1 or :data:`BUSY_CALLS`,
  depending on which trigger runs first); a marked day stays marked. Inserting a marker
  by hand rolls that user-day up too (tests do).
- Marking fills the day's rows from its calls and feedback (a trigger on the markers);
  from then on the call and feedback triggers keep them exact on every insert, update and
  delete, like the other rollups:
  - ``llm_calls_daily_user_calls``: per day, user, model, prompt, version, commit, source,
    status and virtual key, what ``llm_calls_daily`` keeps;
  - ``llm_calls_daily_user_tags``: per day, user, tag and group, what
    ``llm_calls_daily_tags`` keeps;
  - ``feedback_daily_users``: per day, user, group, name and score, what
    ``feedback_daily`` keeps;
  - ``llm_calls_daily_user_timing``: per day, user, prompt and version, the latency and
    TTFT histograms (for the Prompts page's versions of a user; per model and status too
    they would be a row for every two calls).

The queries read these rows for a user's busy days and the calls for the user's other
days, which have fewer than :data:`BUSY_CALLS` calls each. The user key comes right after
the day in each table's key, so a user's days are a seek each.

PostgreSQL: the trigger that marks runs after the rollup trigger (triggers of one event
run by name), which has locked the user-day's row of ``llm_calls_daily_users``: a writer
adding calls to that user-day waits for the marking transaction and then sees the marker.
The feedback triggers lock the same rows first, the same way, so no feedback added, moved
or deleted is left out of a day being filled. On SQLite the writer is alone.

User ids over :data:`USER_BYTES` bytes are never marked (their views read the calls): the
users' rollups' keys must stay under PostgreSQL's limit for an index row.

Revision ID: 0021
Revises: 0020
"""

# ruff: noqa: S608  (the SQL here is built from constants, never from input)

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

BUSY_CALLS = 1000
"""Calls of one user in one UTC day that make the day busy (rolled up by user)."""
USER_BYTES = 128
"""Longer user ids (in UTF-8) are never marked: with the other key columns at their
longest, their keys would pass PostgreSQL's 2,704-byte limit for an index row (their
views read the calls)."""

MARKS = "llm_calls_busy_user_days"
USER_CALLS = "llm_calls_daily_user_calls"
USER_TAGS = "llm_calls_daily_user_tags"
USER_FEEDBACK = "feedback_daily_users"
USER_TIMING = "llm_calls_daily_user_timing"
TABLES = (MARKS, USER_CALLS, USER_TAGS, USER_FEEDBACK, USER_TIMING)


def _copy(filename: str) -> ModuleType:
    """A private copy of an earlier migration's module, to reuse its SQL builders."""
    spec = importlib.util.spec_from_file_location(
        f"llmops_migration_0021_{filename[:4]}", Path(__file__).with_name(filename)
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"migration {filename} is missing")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ROLLUPS = _copy("0005_daily_rollups.py")
ROLLUPS.GROUP["api_key"] = "coalesce({r}.api_key, '')"
HISTOGRAMS = _copy("0010_timing_histograms.py")
HISTOGRAMS.GROUP["user_id"] = "coalesce({r}.user_id, '')"
TIMING_KEY = ("user_id", "prompt_name", "prompt_version")
vars(HISTOGRAMS)["TABLES"] = {USER_TIMING: TIMING_KEY}

GROUP = ("model", "prompt_name", "prompt_version", "source", "status")
CALLS_ROLLUP = ROLLUPS.Rollup(
    USER_CALLS,
    ("user_id", "model", "prompt_name", "prompt_version", "git_commit", "source", "status",
     "api_key"),
    ROLLUPS.CALL_ROLLUPS[0].sums,
    bounds=True,
)  # fmt: skip
TAGS_ROLLUP = ROLLUPS.Rollup(USER_TAGS, ("user_id", "tag", *GROUP), ROLLUPS.SPEND, per_tag=True)
SPEND_ROLLUPS = (CALLS_ROLLUP, TAGS_ROLLUP)
FEEDBACK_KEY = ("user_id", *GROUP)
FEEDBACK_COLUMNS = ("day", *FEEDBACK_KEY, "name", "score", "feedback_count")
FEEDBACK_MOVES = ("created_at", "user_id", *GROUP)  # call columns that move its feedback
FEEDBACK_EMPTIED = f"DELETE FROM {USER_FEEDBACK} WHERE feedback_count <= 0"
# the columns of llm_calls these rollups read
READ = (*ROLLUPS.CALL_COLUMNS, "api_key", "ttft_ms")
DAY = ROLLUPS.DAY


def marked(r: str, dialect: str) -> str:
    """Whether call row ``r`` is in a busy user-day."""
    return (
        f"EXISTS (SELECT 1 FROM {MARKS} b WHERE b.day = {DAY[dialect].format(r=r)} "
        f"AND b.user_id = {r}.user_id)"
    )


def marked_rows(rows: str, dialect: str) -> str:
    """The calls of ``rows`` (a table) in busy user-days, as a table."""
    return f"(SELECT * FROM {rows} x WHERE {marked('x', dialect)})"


def day_of(user: str, day: str, dialect: str) -> str:
    """The calls of ``user`` on UTC day ``day`` (expressions), as a table."""
    if dialect == "sqlite":
        span = f"x.created_at >= {day} AND x.created_at < date({day}, '+1 day')"
    else:
        span = (
            f"x.created_at >= {day}::timestamp AT TIME ZONE 'UTC' "
            f"AND x.created_at < ({day} + 1)::timestamp AT TIME ZONE 'UTC'"
        )
    return f"(SELECT * FROM llm_calls x WHERE x.user_id = {user} AND {span})"


# -- feedback_daily_users -------------------------------------------------------------------


def feedback_key(c: str, dialect: str) -> list[str]:
    return [DAY[dialect].format(r=c)] + [ROLLUPS.GROUP[k].format(r=c) for k in FEEDBACK_KEY]


def upsert_feedback(select: str) -> str:
    return (
        f"INSERT INTO {USER_FEEDBACK} ({', '.join(FEEDBACK_COLUMNS)}) {select} "
        f"ON CONFLICT ({', '.join(FEEDBACK_COLUMNS[:-1])}) DO UPDATE SET "
        f"feedback_count = {USER_FEEDBACK}.feedback_count + excluded.feedback_count"
    )


def feedback_counts(source: str, dialect: str, sign: str = "") -> str:
    """The feedback rows ``f`` of ``source`` (with their call ``c``) whose call is in a busy
    user-day, counted by their call's key."""
    positions = ", ".join(str(i + 1) for i in range(len(FEEDBACK_COLUMNS) - 1))
    return (
        f"SELECT {', '.join(feedback_key('c', dialect))}, f.name, f.score, {sign}count(*) "
        f"FROM {source} WHERE {marked('c', dialect)} "
        f"GROUP BY {positions} ORDER BY {positions}"
    )


def probed(feedback: str) -> str:
    """PostgreSQL: the feedback rows of ``feedback`` (a transition table), each with its
    call found by a probe of the calls' key whatever the partitions' statistics (as
    migration 0018 does for ``feedback_daily``)."""
    columns = ", ".join(("id", "created_at", "user_id", *GROUP))
    call = f"SELECT {columns} FROM llm_calls WHERE llm_calls.id = f.call_id OFFSET 0"
    return f"{feedback} f CROSS JOIN LATERAL ({call}) AS c"


# -- SQLite: row triggers -------------------------------------------------------------------


def sqlite_added(r: str, guarded: bool) -> list[str]:
    """SQLite: count call row ``r`` in; when ``guarded``, each statement only if ``r`` is in
    a busy user-day."""
    busy = marked(r, "sqlite")
    statements = []
    for rollup in SPEND_ROLLUPS:
        statement = rollup.add_one(r)
        statements.append(_guard(statement, " WHERE true", f" WHERE {busy}", guarded))
    for metric in HISTOGRAMS.METRICS:
        (statement,) = HISTOGRAMS.sqlite_one(USER_TIMING, r, metric)
        counted = "WHERE " + HISTOGRAMS.COUNTED["sqlite"].format(
            v=f"{r}.{HISTOGRAMS.METRICS[metric]}"
        )
        statements.append(_guard(statement, counted, f"{counted} AND {busy}", guarded))
    return statements


def _guard(statement: str, where: str, guarded_where: str, guarded: bool) -> str:
    if where not in statement:  # the builders of 0005 and 0010 changed
        raise ValueError(f"no {where!r} to guard in {statement}")
    return statement.replace(where, guarded_where, 1) if guarded else statement


def sqlite_removed(r: str) -> list[str]:
    statements = [s for rollup in SPEND_ROLLUPS for s in rollup.remove_one(r)]
    for metric in HISTOGRAMS.METRICS:
        statements += HISTOGRAMS.sqlite_one(USER_TIMING, r, metric, "-")
    return statements


def sqlite_mark(r: str) -> str:
    """SQLite: mark call row ``r``'s user-day busy when it reaches BUSY_CALLS calls. The
    rollup trigger may or may not have counted ``r`` yet: either count will do."""
    day = DAY["sqlite"].format(r=r)
    return (
        f"INSERT INTO {MARKS} (day, user_id) SELECT {day}, {r}.user_id "
        f"WHERE {r}.user_id <> '' AND length(CAST({r}.user_id AS BLOB)) <= {USER_BYTES} "
        f"AND NOT {marked(r, 'sqlite')} "
        f"AND coalesce((SELECT u.calls FROM llm_calls_daily_users u WHERE u.day = {day} "
        f"AND u.user_id = {r}.user_id), 0) >= {BUSY_CALLS - 1}"
    )


def sqlite_feedback_of_call(r: str, sign: str = "") -> list[str]:
    select = (
        f"SELECT {', '.join(feedback_key(r, 'sqlite'))}, f.name, f.score, {sign}count(*) "
        f"FROM feedback f WHERE f.call_id = {r}.id AND {marked(r, 'sqlite')} "
        "GROUP BY f.name, f.score"
    )
    return [upsert_feedback(select)] + ([FEEDBACK_EMPTIED] if sign else [])


def sqlite_feedback_row(f: str, sign: str = "") -> list[str]:
    select = (
        f"SELECT {', '.join(feedback_key('c', 'sqlite'))}, {f}.name, {f}.score, {sign}1 "
        f"FROM llm_calls c WHERE c.id = {f}.call_id AND {marked('c', 'sqlite')}"
    )
    return [upsert_feedback(select)] + ([FEEDBACK_EMPTIED] if sign else [])


def filled(rows: str, dialect: str) -> list[str]:
    """Fill the users' rollups from the calls of ``rows`` (one busy user-day) and their
    feedback."""
    statements = [
        ROLLUPS.dialect_sql(rollup.add_all(rows, dialect), dialect) for rollup in SPEND_ROLLUPS
    ]
    statements.append(HISTOGRAMS.add_all(USER_TIMING, rows, dialect))
    positions = ", ".join(str(i + 1) for i in range(len(FEEDBACK_COLUMNS) - 1))
    statements.append(
        upsert_feedback(
            f"SELECT {', '.join(feedback_key('c', dialect))}, f.name, f.score, count(*) "
            f"FROM feedback f JOIN {rows} c ON c.id = f.call_id WHERE true "
            f"GROUP BY {positions} ORDER BY {positions}"
        )
    )
    return statements


def sqlite_triggers() -> list[str]:
    trigger = ROLLUPS.sqlite_trigger
    moved = " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in FEEDBACK_MOVES)
    return [
        # one trigger, in this order: a day marked by this very call is filled from the
        # calls, this one included, and must not count it twice
        trigger(
            "llm_calls_user_rollups_insert",
            "INSERT",
            "llm_calls",
            [*sqlite_added("NEW", guarded=True), sqlite_mark("NEW")],
        ),
        trigger(
            "llm_calls_user_rollups_delete",
            "DELETE",
            "llm_calls",
            sqlite_removed("OLD"),
            when=marked("OLD", "sqlite"),
        ),
        trigger(
            "llm_calls_user_rollups_update_old",
            f"UPDATE OF {', '.join(READ)}",
            "llm_calls",
            sqlite_removed("OLD"),
            when=marked("OLD", "sqlite"),
        ),
        trigger(
            "llm_calls_user_rollups_update_new",
            f"UPDATE OF {', '.join(READ)}",
            "llm_calls",
            sqlite_added("NEW", guarded=False),
            when=marked("NEW", "sqlite"),
        ),
        trigger(
            "llm_calls_user_feedback_move",
            f"UPDATE OF {', '.join(FEEDBACK_MOVES)}",
            "llm_calls",
            sqlite_feedback_of_call("OLD", "-") + sqlite_feedback_of_call("NEW"),
            when=moved,
        ),
        trigger("feedback_users_insert", "INSERT", "feedback", sqlite_feedback_row("NEW")),
        trigger("feedback_users_delete", "DELETE", "feedback", sqlite_feedback_row("OLD", "-")),
        trigger(
            "feedback_users_update",
            "UPDATE OF call_id, name, score",
            "feedback",
            sqlite_feedback_row("OLD", "-") + sqlite_feedback_row("NEW"),
        ),
        trigger(f"{MARKS}_insert", "INSERT", MARKS, filled(day_of("NEW.user_id", "NEW.day",
                                                                  "sqlite"), "sqlite")),
    ]  # fmt: skip


SQLITE_TRIGGERS = (
    "llm_calls_user_rollups_insert", "llm_calls_user_rollups_delete",
    "llm_calls_user_rollups_update_old", "llm_calls_user_rollups_update_new",
    "llm_calls_user_feedback_move", "feedback_users_insert", "feedback_users_delete",
    "feedback_users_update", f"{MARKS}_insert",
)  # fmt: skip


# -- PostgreSQL: statement triggers over transition tables ----------------------------------


def pg_added(rows: str) -> list[str]:
    pg = "postgresql"
    busy = marked_rows(rows, pg)
    return [rollup.add_all(busy, pg) for rollup in SPEND_ROLLUPS] + [
        HISTOGRAMS.add_all(USER_TIMING, busy, pg)
    ]


def pg_removed(rows: str) -> list[str]:
    pg = "postgresql"
    busy = marked_rows(rows, pg)
    statements = [s for rollup in SPEND_ROLLUPS for s in rollup.remove_all(busy)]
    return [
        *statements,
        HISTOGRAMS.add_all(USER_TIMING, busy, pg, "-"),
        f"DELETE FROM {USER_TIMING} d WHERE d.calls <= 0 "
        f"AND d.day IN (SELECT DISTINCT {DAY[pg].format(r='r')} FROM {busy} r)",
    ]


PG_MARK = (  # after the adding: the days it marks are filled from the calls, new ones too
    f"INSERT INTO {MARKS} (day, user_id) SELECT u.day, u.user_id FROM llm_calls_daily_users u "
    f"WHERE (u.day, u.user_id) IN (SELECT {DAY['postgresql'].format(r='r')}, r.user_id "
    f"FROM new_rows r WHERE r.user_id <> '' AND octet_length(r.user_id) <= {USER_BYTES}) "
    f"AND u.calls >= {BUSY_CALLS} "
    f"AND NOT EXISTS (SELECT 1 FROM {MARKS} b WHERE b.day = u.day AND b.user_id = u.user_id) "
    "ORDER BY 1, 2 ON CONFLICT DO NOTHING"
)


def pg_lock_days(*feedback: str) -> str:
    """Lock the user-days of the calls of the rows of ``feedback`` (transition tables) as
    adding calls to them does: a day being marked by another transaction is then filled
    with this change of feedback, or this change waits and sees the marker. The lock is
    the calls' own (an UPDATE's), not a share lock: a transaction that adds feedback and
    then calls of the same day would otherwise deadlock with another doing the same."""
    day = DAY["postgresql"].format(r="c")
    days = " UNION ".join(
        f"SELECT {day}, c.user_id FROM {probed(rows)} WHERE c.user_id <> ''" for rows in feedback
    )
    return (
        f"PERFORM 1 FROM llm_calls_daily_users u WHERE (u.day, u.user_id) IN ({days}) "
        "ORDER BY u.day, u.user_id FOR NO KEY UPDATE OF u"
    )


def pg_statements() -> list[str]:
    pg = "postgresql"
    moved = " OR ".join(f"o.{c} IS DISTINCT FROM n.{c}" for c in FEEDBACK_MOVES)
    pairs = f"old_rows o JOIN new_rows n ON n.id = o.id WHERE {moved}"

    def moved_feedback(side: str) -> str:  # the feedback of calls whose key changed
        return f"feedback f JOIN (SELECT {side}.* FROM {pairs}) c ON c.id = f.call_id"

    functions = {
        "llmops_user_calls_inserted": [*pg_added("new_rows"), PG_MARK],
        "llmops_user_calls_deleted": pg_removed("old_rows"),
        "llmops_user_calls_updated": [
            *pg_removed("old_rows"),
            *pg_added("new_rows"),
            upsert_feedback(feedback_counts(moved_feedback("o"), pg, "-")),
            FEEDBACK_EMPTIED,
            upsert_feedback(feedback_counts(moved_feedback("n"), pg)),
        ],
        "llmops_user_feedback_inserted": [
            pg_lock_days("new_rows"),
            upsert_feedback(feedback_counts(probed("new_rows"), pg)),
        ],
        "llmops_user_feedback_deleted": [
            pg_lock_days("old_rows"),
            upsert_feedback(feedback_counts(probed("old_rows"), pg, "-")),
            FEEDBACK_EMPTIED,
        ],
        "llmops_user_feedback_updated": [
            pg_lock_days("old_rows", "new_rows"),
            upsert_feedback(feedback_counts(probed("old_rows"), pg, "-")),
            FEEDBACK_EMPTIED,
            upsert_feedback(feedback_counts(probed("new_rows"), pg)),
        ],
        "llmops_busy_user_day_marked": filled(day_of("NEW.user_id", "NEW.day", pg), pg),
    }
    statements = [ROLLUPS.pg_function(name, body) for name, body in functions.items()]
    # PostgreSQL runs the triggers of one event by name. The calls' run after
    # llm_calls_rollups_*, which has locked the user-days; the feedback's before
    # feedback_rollups_*, so that the user-days are locked before feedback_daily's rows, in
    # the order of a transaction that adds calls and then their feedback (no deadlock).
    for trigger, table, prefix in (
        ("llm_calls_user_rollups", "llm_calls", "llmops_user_calls"),
        ("feedback_busy_rollups", "feedback", "llmops_user_feedback"),
    ):
        for event, past, tables in (
            ("INSERT", "inserted", "NEW TABLE AS new_rows"),
            ("UPDATE", "updated", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
            ("DELETE", "deleted", "OLD TABLE AS old_rows"),
        ):
            statements.append(
                f"CREATE TRIGGER {trigger}_{event.lower()} AFTER {event} ON {table} "
                f"REFERENCING {tables} FOR EACH STATEMENT EXECUTE FUNCTION {prefix}_{past}()"
            )
    statements.append(
        f"CREATE TRIGGER {MARKS}_insert AFTER INSERT ON {MARKS} "
        "FOR EACH ROW EXECUTE FUNCTION llmops_busy_user_day_marked()"
    )
    return statements


PG_FUNCTIONS = (
    "llmops_user_calls_inserted", "llmops_user_calls_deleted", "llmops_user_calls_updated",
    "llmops_user_feedback_inserted", "llmops_user_feedback_deleted",
    "llmops_user_feedback_updated", "llmops_busy_user_day_marked",
)  # fmt: skip


def mark_busy_days(dialect: str) -> str:
    """The busy days so far: each marker fills its day through its trigger."""
    size = "length(CAST(user_id AS BLOB))" if dialect == "sqlite" else "octet_length(user_id)"
    return (
        f"INSERT INTO {MARKS} (day, user_id) SELECT day, user_id FROM llm_calls_daily_users "
        f"WHERE user_id <> '' AND {size} <= {USER_BYTES} AND calls >= {BUSY_CALLS} "
        "ORDER BY day, user_id"
    )


# -- tables ---------------------------------------------------------------------------------


def key_columns(*names: str) -> list[sa.Column[Any]]:
    key: list[sa.Column[Any]] = ROLLUPS.key_columns(*(n for n in names if n != "api_key"))
    if "api_key" in names:  # as llm_calls.api_key
        key.append(sa.Column("api_key", sa.String(100), primary_key=True))
    return key


def create_tables() -> None:
    op.create_table(MARKS, *key_columns("user_id"))
    op.create_table(
        USER_CALLS,
        *key_columns(*CALLS_ROLLUP.key),
        *ROLLUPS.spend_columns(),
        sa.Column("priced_calls", sa.Integer, nullable=False),
        sa.Column("estimated_calls", sa.Integer, nullable=False),
        sa.Column("latency_ms_sum", sa.Float, nullable=False),
        sa.Column("latency_calls", sa.Integer, nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(USER_TAGS, *key_columns(*TAGS_ROLLUP.key), *ROLLUPS.spend_columns())
    op.create_table(
        USER_FEEDBACK,
        *key_columns(*FEEDBACK_KEY, "name"),
        sa.Column("score", sa.Float, primary_key=True),
        sa.Column("feedback_count", sa.Integer, nullable=False),
    )
    op.create_table(
        USER_TIMING,
        *key_columns(*TIMING_KEY),
        *HISTOGRAMS.key_columns()[1:],  # metric, bucket, calls (after 0010's day)
    )


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":  # no call may slip in between the marking and the triggers
        op.execute("LOCK TABLE llm_calls, feedback IN SHARE ROW EXCLUSIVE MODE")
    create_tables()
    for statement in sqlite_triggers() if dialect == "sqlite" else pg_statements():
        op.execute(statement)
    op.execute(mark_busy_days(dialect))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    else:
        for trigger, table in (
            ("llm_calls_user_rollups", "llm_calls"),
            ("feedback_busy_rollups", "feedback"),
        ):
            for event in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {trigger}_{event} ON {table}")
        op.execute(f"DROP TRIGGER IF EXISTS {MARKS}_insert ON {MARKS}")
        for name in PG_FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    for table in reversed(TABLES):
        op.drop_table(table)
