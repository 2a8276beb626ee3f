"""``llm_calls.usage_details``: what pricing needs besides the token columns.

A JSON object with the parts of the usage that have no column (1-hour cache writes, audio
and image tokens), the model and service tier that served the call, the price entry used
and, for an approximate price, why. ``llmops costs recompute`` reads it to reproduce a
price exactly before applying new prices.

Also a partial index of the calls priced approximately (few), so that the dashboard counts
them in any range without reading the calls.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    op.add_column("llm_calls", sa.Column("usage_details", JSON, nullable=True))
    op.create_index(
        "ix_llm_calls_approximate",
        "llm_calls",
        ["created_at", "model"],
        sqlite_where=sa.text("cost_status = 'approximate'"),
        postgresql_where=sa.text("cost_status = 'approximate'"),
    )


def downgrade() -> None:
    op.drop_index("ix_llm_calls_approximate", "llm_calls")
    with op.batch_alter_table("llm_calls") as batch:
        batch.drop_column("usage_details")
