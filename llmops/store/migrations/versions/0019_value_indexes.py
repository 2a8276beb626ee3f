"""PostgreSQL: the filter indexes of ``llm_calls`` hold each value once.

The indexes that find a filter's calls (model, status, prompt and version, version, user,
session, virtual key) were (value, created_at): an entry per call, 31-82 bytes each at 10
million calls. Without ``created_at`` each index holds a value once with the list of its
calls' row addresses (B-tree deduplication, PostgreSQL 13 and later): 6-14 bytes per call,
about 200-230 bytes per call less in all (benchmarks/README.md, "Value indexes"). The range
is still pruned to the months' partitions, and within them:

- a filter that picks few calls (a user, a session, a key) reads them through its index
  and sorts them, or the range newest first through ``ix_llm_calls_timing`` (which holds
  each call's model, prompt, version, user, source and status), whichever the planner
  estimates cheaper from the columns' statistics: the newest page of one user of 2,000 at
  10 million calls took 0.05-0.06 s either way;
- a filter that picks many (a model, the "ok" status) is read newest first through an
  index that starts with ``created_at`` until a page is full;
- the Calls page's sort orders keep their per-model indexes, the percentiles their
  covering ``ix_llm_calls_timing``, and the counts and totals come from the daily
  rollups, as before.

SQLite keeps (value, created_at): its indexes have no deduplication (an entry per call
either way), and without partitions a value's index would hold its calls of every month,
all of them to be read for a range.

Each index is built on every partition while ``llm_calls`` is held (writers keep their
calls in the journal meanwhile): 34 s at 10 million calls.

Revision ID: 0019
Revises: 0018
"""

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

INDEXES = {
    # name: (the values, the column whose calls without a value are left out, or None)
    "ix_llm_calls_model": ("model", None),
    "ix_llm_calls_status": ("status", None),
    "ix_llm_calls_prompt": ("prompt_name, prompt_version", "prompt_name"),
    "ix_llm_calls_version": ("prompt_version", "prompt_version"),
    "ix_llm_calls_user": ("user_id", "user_id"),
    "ix_llm_calls_session": ("session_id", "session_id"),
    "ix_llm_calls_api_key": ("api_key", "api_key"),
}
"""The indexes this migration changes on PostgreSQL; :data:`llmops.store.tables` declares
them as SQLite has them, with ``created_at``."""


def _rebuild(with_time: bool) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, (values, present) in INDEXES.items():
        columns = f"{values}, created_at" if with_time else values
        where = f" WHERE {present} IS NOT NULL" if present else ""
        op.execute(f"DROP INDEX {name}")
        op.execute(f"CREATE INDEX {name} ON llm_calls ({columns}){where}")


def upgrade() -> None:
    _rebuild(with_time=False)


def downgrade() -> None:
    _rebuild(with_time=True)
