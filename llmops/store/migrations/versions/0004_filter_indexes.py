"""Indexes that let the dashboard's filters list distinct values with index seeks.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_llm_calls_status", "llm_calls", ["status", "created_at"])
    op.create_index("ix_llm_calls_source", "llm_calls", ["source", "created_at"])
    op.create_index("ix_llm_calls_version", "llm_calls", ["prompt_version", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_llm_calls_version", "llm_calls")
    op.drop_index("ix_llm_calls_source", "llm_calls")
    op.drop_index("ix_llm_calls_status", "llm_calls")
