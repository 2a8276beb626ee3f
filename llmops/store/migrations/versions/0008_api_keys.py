"""Virtual keys of ``llmops serve``: ``api_keys`` (a hash of each key, never the key, with
its limits) and ``llm_calls.api_key``, the name of the key a call came with.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("revoked_at", UTC, nullable=True),
        sa.Column("models", JSON, nullable=True),
        sa.Column("rpm", sa.Integer(), nullable=True),
        sa.Column("tpm", sa.Integer(), nullable=True),
        sa.Column("budget_usd_month", sa.Float(), nullable=True),
    )
    op.create_index("ix_api_keys_prefix", "api_keys", ["prefix"])
    op.add_column("llm_calls", sa.Column("api_key", sa.String(100), nullable=True))
    op.create_index("ix_llm_calls_api_key", "llm_calls", ["api_key", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_llm_calls_api_key", "llm_calls")
    with op.batch_alter_table("llm_calls") as batch:
        batch.drop_column("api_key")
    op.drop_table("api_keys")
