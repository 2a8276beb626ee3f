"""PostgreSQL: the feedback rollup triggers find each feedback row's call by its key.

``feedback_daily`` counts feedback under its call's day, model, prompt, version, source and
status. The statement triggers of migration 0005 joined the new (or old) feedback rows to
``llm_calls`` on ``id``: on a partition that autovacuum has not analyzed yet (a new month,
the DEFAULT partition, or one filled faster than autovacuum follows), PostgreSQL planned
that join as a hash join over a read of every call of the partition. 44 ms for a batch of
142 feedback rows at 200,000 calls, growing with the partition, against 1 ms with the
partition analyzed. Each feedback row now looks its call up in a LATERAL subquery, which
PostgreSQL plans as a probe of each partition's primary key whatever its statistics
(``OFFSET 0`` keeps the planner from turning it back into a join), as the writer's own
look-ups do (llmops/store/writer.py, ``_probe``).

SQLite is unchanged: its feedback triggers run per row and read the call by its key.

Revision ID: 0018
Revises: 0017
"""

# ruff: noqa: S608  (the SQL here is built from constants, never from input)

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

PG = "postgresql"
CALL_COLUMNS = ("created_at", "model", "prompt_name", "prompt_version", "source", "status")
"""What the feedback rollup reads of a feedback row's call (its day and key)."""


def rollups_0005() -> ModuleType:
    """A private copy of migration 0005's module, whose builders write the feedback
    triggers' functions."""
    spec = importlib.util.spec_from_file_location(
        "llmops_migration_0005_feedback", Path(__file__).with_name("0005_daily_rollups.py")
    )
    if spec is None or spec.loader is None:
        raise ImportError("migration 0005 is missing")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def probed_counts(module: ModuleType, feedback: str, sign: str = "") -> str:
    """Feedback rows of transition table ``feedback`` counted under their call's key, each
    call found by a probe of ``llm_calls``'s key."""
    positions = ", ".join(str(i + 1) for i in range(len(module.FEEDBACK_COLUMNS) - 1))
    call = (
        f"SELECT {', '.join(CALL_COLUMNS)} FROM llm_calls WHERE llm_calls.id = f.call_id OFFSET 0"
    )
    return (
        f"SELECT {', '.join(module.feedback_key('c', PG))}, f.name, f.score, {sign}count(*) "
        f"FROM {feedback} f CROSS JOIN LATERAL ({call}) AS c "
        f"GROUP BY {positions} ORDER BY {positions}"
    )


def functions(module: ModuleType, probed: bool) -> dict[str, list[str]]:
    """The feedback triggers' functions: with probes, or as migration 0005 wrote them."""

    def counts(feedback: str, sign: str = "") -> str:
        if probed:
            return probed_counts(module, feedback, sign)
        return str(module.feedback_counts(feedback, "llm_calls", PG, sign))

    upsert, emptied = module.upsert_feedback, module.FEEDBACK_EMPTIED
    return {
        "llmops_feedback_inserted": [upsert(counts("new_rows"))],
        "llmops_feedback_deleted": [upsert(counts("old_rows", "-")), emptied],
        "llmops_feedback_updated": [
            upsert(counts("old_rows", "-")), emptied, upsert(counts("new_rows")),
        ],
    }  # fmt: skip


def replace_functions(probed: bool) -> None:
    if op.get_bind().dialect.name != PG:
        return
    module = rollups_0005()
    for name, body in functions(module, probed).items():
        statement = module.pg_function(name, body)
        op.execute(statement.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))


def upgrade() -> None:
    replace_functions(probed=True)


def downgrade() -> None:
    replace_functions(probed=False)
