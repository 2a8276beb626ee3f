"""Spend control: ``budget_leases`` (the shares of a budget that gateway processes hold, so
that blocking budgets hold across processes), ``alert_state`` (what has fired, so that every
process and cron job fires an alert once per crossing) and ``alert_events`` (every
notification, append-only). Calls refused by a budget are stored with status ``blocked``:
``status`` is a plain string column, so that needs no change here.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "budget_leases",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("budget", sa.String(100), nullable=False),
        sa.Column("scope_value", sa.String(200), nullable=False),
        sa.Column("window_start", UTC, nullable=False),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("granted_usd", sa.Float(), nullable=False),
        sa.Column("consumed_usd", sa.Float(), nullable=False),
        sa.Column("committed_usd", sa.Float(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.Column("expires_at", UTC, nullable=False),
    )
    op.create_index(
        "ix_budget_leases_window", "budget_leases", ["budget", "scope_value", "window_start"]
    )
    op.create_table(
        "alert_state",
        sa.Column("key", sa.String(400), primary_key=True),
        sa.Column("rule", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("window_start", UTC, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("fired_at", UTC, nullable=False),
        sa.Column("changed_at", UTC, nullable=False),
        sa.Column("resolved_at", UTC, nullable=True),
    )
    op.create_table(
        "alert_events",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("key", sa.String(400), nullable=False),
        sa.Column("rule", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("at", UTC, nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("delivered", JSON, nullable=True),
        sa.Column("failed", JSON, nullable=True),
    )
    op.create_index("ix_alert_events_key", "alert_events", ["key"])
    op.create_index("ix_alert_events_at", "alert_events", ["at"])


def downgrade() -> None:
    op.drop_table("alert_events")
    op.drop_table("alert_state")
    op.drop_table("budget_leases")
