"""Record which price map priced a call, Anthropic cache-write tokens, and a session index.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("llm_calls") as batch:
        batch.add_column(sa.Column("cache_write_tokens", sa.Integer))
        batch.add_column(sa.Column("price_source", sa.String(100)))
    op.create_index("ix_llm_calls_session", "llm_calls", ["session_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_llm_calls_session", "llm_calls")
    with op.batch_alter_table("llm_calls") as batch:
        batch.drop_column("price_source")
        batch.drop_column("cache_write_tokens")
