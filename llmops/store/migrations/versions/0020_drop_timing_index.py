"""``ix_llm_calls_timing`` goes: 114-138 bytes per call that no page needs any more.

The covering index (created_at, latency, ttft, model, prompt, version, user, source,
status) of migration 0005 let the percentiles of a range read the calls' timings without
their rows. Since then the percentiles of whole UTC days come from the daily histograms
(migrations 0010 and 0013), and the dashboard's and the CLI's ranges are whole days, so
the index served only what reads few calls: a user's percentiles (their calls, found by
``ix_llm_calls_user``), the newest calls of an alert's or the Prometheus exporter's window
and the partial days of a range set by hand (found by ``ix_llm_calls_created_at``). On
10 million calls on PostgreSQL it was the largest index of ``llm_calls`` (a tenth of the
database per call); without it no page is measurably slower and every CLI query stays
far under a second
(benchmarks/README.md, "Without the timing index, and one user's view").

The downgrade builds it again: on PostgreSQL on every partition while ``llm_calls`` is
held, as migration 0005 did.

Revision ID: 0020
Revises: 0019
"""

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

COLUMNS = [
    "created_at", "latency_ms", "ttft_ms", "model", "prompt_name", "prompt_version",
    "user_id", "source", "status",
]  # fmt: skip


def upgrade() -> None:
    op.drop_index("ix_llm_calls_timing", "llm_calls")


def downgrade() -> None:
    op.create_index("ix_llm_calls_timing", "llm_calls", COLUMNS)
