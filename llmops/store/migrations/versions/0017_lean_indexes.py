"""Leaner indexes on ``llm_calls``, and the sort orders indexed per model.

- The Calls page's sort orders (migration 0014) are indexed per model: (model, cost_usd
  DESC), (model, latency_ms DESC), (model, tokens DESC). A page in a sort order merges each
  model's top, so that a filter on a cheap or fast model reads the top of that model's
  part of the index instead of sorting every matching call of the range (1.1 s for the
  last 30 days of 10 million calls on PostgreSQL, gpt-4o-mini and one prompt).
- ``ix_llm_calls_source`` goes: two or three values, which ``ix_llm_calls_timing`` holds
  too (with the time: a range's calls of one source) and the daily rollups list (the
  dashboard's filter choices). ``ix_llm_calls_created_at`` stays, though
  ``ix_llm_calls_timing`` starts with ``created_at`` too: without it PostgreSQL read the
  partial day at the end of a range (the spend and totals of today) by scanning the month's
  partition, and the default 30-day overview at 10 million calls took 0.2 s more.
- The indexes of columns that are often empty hold only the calls that have a value
  (``WHERE ... IS NOT NULL``): user, session, virtual key, prompt and version. Every
  query on them looks for values (``=``, ``IN``, ``IS NOT NULL``), which both databases
  match to these partial indexes.

On PostgreSQL each index is built on every partition while ``llm_calls`` is held (writers
keep their calls in the journal meanwhile; see benchmarks/README.md for the time at 10
million calls).

Revision ID: 0017
Revises: 0016
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

# bigint: two int4 counts near 2**31 would overflow, and the call be refused
TOKENS = (
    "(CAST(coalesce(prompt_tokens, 0) AS BIGINT) + CAST(coalesce(completion_tokens, 0) AS BIGINT))"
)
SORTS = {"cost": "cost_usd DESC", "latency": "latency_ms DESC", "tokens": f"{TOKENS} DESC"}
PARTIAL = {
    "ix_llm_calls_user": ("user_id, created_at", "user_id"),
    "ix_llm_calls_session": ("session_id, created_at", "session_id"),
    "ix_llm_calls_api_key": ("api_key, created_at", "api_key"),
    "ix_llm_calls_prompt": ("prompt_name, prompt_version, created_at", "prompt_name"),
    "ix_llm_calls_version": ("prompt_version, created_at", "prompt_version"),
}
DROPPED = {"ix_llm_calls_source": "source, created_at"}


def upgrade() -> None:
    # NULLs last, as the page sorts (SQLite puts them last in DESC order)
    nulls = " NULLS LAST" if op.get_bind().dialect.name == "postgresql" else ""
    for order, column in SORTS.items():
        op.execute(f"DROP INDEX ix_llm_calls_{order}")
        op.execute(f"CREATE INDEX ix_llm_calls_model_{order} ON llm_calls (model, {column}{nulls})")
    for name in DROPPED:
        op.execute(f"DROP INDEX {name}")
    for name, (columns, column) in PARTIAL.items():
        op.execute(f"DROP INDEX {name}")
        op.execute(f"CREATE INDEX {name} ON llm_calls ({columns}) WHERE {column} IS NOT NULL")


def downgrade() -> None:
    nulls = " NULLS LAST" if op.get_bind().dialect.name == "postgresql" else ""
    for name, (columns, _column) in PARTIAL.items():
        op.execute(f"DROP INDEX {name}")
        op.execute(f"CREATE INDEX {name} ON llm_calls ({columns})")
    for name, columns in DROPPED.items():
        op.execute(f"CREATE INDEX {name} ON llm_calls ({columns})")
    for order, column in SORTS.items():
        op.execute(f"DROP INDEX ix_llm_calls_model_{order}")
        op.execute(f"CREATE INDEX ix_llm_calls_{order} ON llm_calls ({column}{nulls})")
