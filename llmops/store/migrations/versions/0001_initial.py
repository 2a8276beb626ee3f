"""The initial schema: llm_calls and feedback.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "llm_calls",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("prompt_name", sa.String(200)),
        sa.Column("prompt_version", sa.String(12)),
        sa.Column("git_commit", sa.String(40)),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("provider", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error_type", sa.String(200)),
        sa.Column("error_message", sa.Text),
        sa.Column("prompt_tokens", sa.Integer),
        sa.Column("completion_tokens", sa.Integer),
        sa.Column("cached_tokens", sa.Integer),
        sa.Column("reasoning_tokens", sa.Integer),
        sa.Column("tokens_estimated", sa.Boolean, nullable=False),
        sa.Column("cost_usd", sa.Float),
        sa.Column("cost_status", sa.String(16), nullable=False),
        sa.Column("latency_ms", sa.Float),
        sa.Column("ttft_ms", sa.Float),
        sa.Column("user_id", sa.String(200)),
        sa.Column("session_id", sa.String(200)),
        sa.Column("tags", JSON),
        sa.Column("metadata", JSON),
        sa.Column("request", JSON),
        sa.Column("response_text", sa.Text),
    )
    op.create_index("ix_llm_calls_created_at", "llm_calls", ["created_at"])
    op.create_index(
        "ix_llm_calls_prompt", "llm_calls", ["prompt_name", "prompt_version", "created_at"]
    )
    op.create_index("ix_llm_calls_model", "llm_calls", ["model", "created_at"])
    op.create_index("ix_llm_calls_user", "llm_calls", ["user_id", "created_at"])
    op.create_table(
        "feedback",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("call_id", sa.String(36), sa.ForeignKey("llm_calls.id"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("comment", sa.Text),
        sa.Column("user_id", sa.String(200)),
    )
    op.create_index("ix_feedback_call_id", "feedback", ["call_id"])


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_table("llm_calls")
