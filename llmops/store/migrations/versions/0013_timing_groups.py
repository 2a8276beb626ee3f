"""Latency and TTFT histograms per group too, so that filtered views merge histograms
instead of reading the calls.

``llm_calls_daily_timing_groups``: the histograms of migration 0010, per UTC day, model,
prompt, version, source and status (the dashboard's filters but users). A filter on a model
or a prompt then reads a few thousand bucket rows through the table's key instead of every
call of the range. It is filled from the calls, and the triggers of migration 0010 are
redefined to keep both histogram tables (same events, same transaction).

Days whose calls were pruned before this migration have no group histograms: their filtered
percentiles come from the remaining calls (none), as before; unfiltered figures still come
from ``llm_calls_daily_timing``.

Revision ID: 0013
Revises: 0012
"""

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

TABLE = "llm_calls_daily_timing_groups"
KEYS = ("model", "prompt_name", "prompt_version", "source", "status")
TRIGGERS = ("llm_calls_timing_insert", "llm_calls_timing_delete", "llm_calls_timing_update")
FUNCTIONS = ("llmops_timing_inserted", "llmops_timing_deleted", "llmops_timing_updated")


def histograms_0010(groups: bool) -> ModuleType:
    """A private copy of migration 0010's module, keeping the group table too when
    ``groups``: its builders then write the backfill and the triggers for both tables."""
    spec = importlib.util.spec_from_file_location(
        f"llmops_migration_0010_{groups}", Path(__file__).with_name("0010_timing_histograms.py")
    )
    if spec is None or spec.loader is None:
        raise ImportError("migration 0010 is missing")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if groups:
        vars(module)["TABLES"] = {**module.TABLES, TABLE: KEYS}
    return module


def replace_triggers(module: ModuleType, dialect: str) -> None:
    """SQLite: drop the histogram triggers and create them as ``module`` builds them.
    PostgreSQL: replace their functions (the triggers call them by name)."""
    if dialect == "sqlite":
        for name in TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        for statement in module.sqlite_triggers():
            op.execute(statement)
        return
    for statement in module.pg_statements():
        if any(f"CREATE FUNCTION {name}()" in statement for name in FUNCTIONS):
            op.execute(statement.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":  # no call may slip in between the backfill and the triggers
        op.execute("LOCK TABLE llm_calls IN SHARE ROW EXCLUSIVE MODE")
    module = histograms_0010(groups=True)
    op.create_table(TABLE, *module.key_columns(*KEYS))
    op.execute(module.add_all(TABLE, "llm_calls", dialect))
    replace_triggers(module, dialect)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("LOCK TABLE llm_calls IN SHARE ROW EXCLUSIVE MODE")
    replace_triggers(histograms_0010(groups=False), dialect)
    op.drop_table(TABLE)
