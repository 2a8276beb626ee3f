"""A per-user rollup keyed by the other filters too, so that a split by user and a filter on
users sum days instead of reading calls, whatever other filter is set.

``llm_calls_daily_user_groups``: per UTC day, user, model, prompt, version, source and
status (the keys of ``llm_calls_daily_tags``), the calls, tokens, cost and unpriced calls.
``llm_calls_daily_users`` (per day and user) stays: an unfiltered split by user sums it,
a few rows per user and day instead of one per user, model and prompt. The new table is
filled from the calls, and the triggers of migration 0005 that keep the rollups are
redefined to keep it too (they sum every call rollup in one trigger per event).

Days whose calls were pruned (``llmops db prune``) before this migration have per-user totals
but no calls to split them by: what ``llm_calls_daily_users`` holds beyond the remaining
calls of each (day, user) is kept under model, prompt, version, source and status ''
(unknown). Totals by user stay what they were; a filter on a model leaves those out.

Revision ID: 0011
Revises: 0010
"""

# ruff: noqa: S608  (the SQL here is built from constants, never from input)

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# the user last: a filter on a model or prompt seeks within a day; a filter on users alone
# reads llm_calls_daily_users
KEY = ("model", "prompt_name", "prompt_version", "source", "status", "user_id")
SUMS = ("calls", "prompt_tokens", "completion_tokens", "cost_usd", "unpriced_calls")
TABLE = "llm_calls_daily_user_groups"
USERS = "llm_calls_daily_users"
CALL_TRIGGERS = ("llm_calls_rollups_insert", "llm_calls_rollups_delete", "llm_calls_rollups_update")
CALL_FUNCTIONS = ("llmops_calls_inserted", "llmops_calls_deleted", "llmops_calls_updated")


def rollups_0005(groups: bool) -> ModuleType:
    """A private copy of migration 0005's module, with the user group rollup among its call
    rollups when ``groups``: its builders then write the triggers and the backfill for it
    (0005 itself is unchanged)."""
    spec = importlib.util.spec_from_file_location(
        f"llmops_migration_0005_{groups}", Path(__file__).with_name("0005_daily_rollups.py")
    )
    if spec is None or spec.loader is None:
        raise ImportError("migration 0005 is missing")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if groups:
        daily, users, tags = module.CALL_ROLLUPS
        by_group = module.Rollup(TABLE, KEY, module.SPEND)
        vars(module)["CALL_ROLLUPS"] = (daily, users, by_group, tags)
    return module


def drop_triggers(dialect: str) -> None:
    """SQLite: drop the call rollup triggers (they are created again as they now are).
    PostgreSQL's trigger functions are replaced instead."""
    if dialect == "sqlite":
        for name in CALL_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")


def create_triggers(module: ModuleType, dialect: str) -> None:
    """Create the call rollup triggers (SQLite) or replace their functions (PostgreSQL) as
    ``module`` builds them; the feedback triggers are left alone."""
    if dialect == "sqlite":
        for statement in module.sqlite_triggers():
            if any(f"CREATE TRIGGER {name} " in statement for name in CALL_TRIGGERS):
                op.execute(statement)
        return
    for statement in module.pg_statements():
        if any(f"CREATE FUNCTION {name}()" in statement for name in CALL_FUNCTIONS):
            op.execute(statement.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":  # no call may slip in between the backfill and the triggers
        op.execute("LOCK TABLE llm_calls IN SHARE ROW EXCLUSIVE MODE")
    drop_triggers(dialect)
    module = rollups_0005(groups=True)
    op.create_table(TABLE, *module.key_columns(*KEY), *module.spend_columns())
    op.execute(module.dialect_sql(module.CALL_ROLLUPS[2].add_all("llm_calls", dialect), dialect))
    sums = ", ".join(SUMS)
    beyond = ", ".join(f"o.{s} - coalesce(n.{s}, 0)" for s in SUMS)
    keys = ", ".join("o.user_id" if k == "user_id" else "''" for k in KEY)  # '' for unknown
    op.execute(  # what the per-user rollup holds beyond the calls still stored: pruned days
        f"INSERT INTO {TABLE} (day, {', '.join(KEY)}, {sums}) "
        f"SELECT o.day, {keys}, {beyond} FROM {USERS} o "
        f"LEFT JOIN (SELECT day, user_id, {', '.join(f'sum({s}) AS {s}' for s in SUMS)} "
        f"FROM {TABLE} GROUP BY day, user_id) n ON n.day = o.day AND n.user_id = o.user_id "
        "WHERE o.calls > coalesce(n.calls, 0)"
    )
    create_triggers(module, dialect)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("LOCK TABLE llm_calls IN SHARE ROW EXCLUSIVE MODE")
    drop_triggers(dialect)
    create_triggers(rollups_0005(groups=False), dialect)
    op.drop_table(TABLE)
