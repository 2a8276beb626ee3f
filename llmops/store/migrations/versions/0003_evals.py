"""Eval runs and their per-case results.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "eval_runs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("batch_id", sa.String(36), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("suite", sa.String(200), nullable=False),
        sa.Column("prompt_name", sa.String(200), nullable=False),
        sa.Column("prompt_ref", sa.String(200), nullable=False),
        sa.Column("prompt_version", sa.String(12), nullable=False),
        sa.Column("git_commit", sa.String(40)),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("cases", sa.Integer, nullable=False),
        sa.Column("results", sa.Integer, nullable=False),
        sa.Column("passed", sa.Integer, nullable=False),
        sa.Column("pass_rate", sa.Float),
        sa.Column("cost_usd", sa.Float),
        sa.Column("cached", sa.Integer, nullable=False),
    )
    op.create_index("ix_eval_runs_batch_id", "eval_runs", ["batch_id"])
    op.create_index("ix_eval_runs_suite", "eval_runs", ["suite", "started_at"])
    op.create_table(
        "eval_results",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("run_id", sa.String(36), sa.ForeignKey("eval_runs.id"), nullable=False),
        sa.Column("case_id", sa.String(200), nullable=False),
        sa.Column("repeat_index", sa.Integer, nullable=False),
        sa.Column("output", sa.Text),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("details", JSON),
        sa.Column("error", sa.Text),
        sa.Column("latency_ms", sa.Float),
        sa.Column("cost_usd", sa.Float),
        sa.Column("cached", sa.Boolean, nullable=False),
        sa.Column("call_id", sa.String(36)),
    )
    op.create_index("ix_eval_results_run_id", "eval_results", ["run_id"])


def downgrade() -> None:
    op.drop_table("eval_results")
    op.drop_table("eval_runs")
