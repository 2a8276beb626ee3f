"""Governance: the hash chain over stored calls and feedback (``chain_id``, ``chain_seq``,
``content_hash``, ``row_hash``), the chains' heads (``audit_chains``) and the append-only
``audit_events``, whose first event records how many rows were stored before the chain
began (those stay unchained; ``llmops audit verify`` expects exactly that many).

Revision ID: 0009
Revises: 0008
"""

import getpass
import hashlib
import json
import socket
import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
TIME = sa.DateTime(timezone=True)
GENESIS = "0" * 64


def chain_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("chain_id", sa.String(36), nullable=True),
        sa.Column("chain_seq", sa.BigInteger(), nullable=True),
        sa.Column("content_hash", sa.String(64), nullable=True),
        sa.Column("row_hash", sa.String(64), nullable=True),
    ]


def event_hash(prev: str, event: dict[str, Any]) -> str:
    """A frozen copy of llmops.store.audit_log.event_hash (migrations do not import llmops)."""
    text = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{prev}\n{text}".encode()).hexdigest()


def upgrade() -> None:
    for column in chain_columns():
        op.add_column("llm_calls", column)
    for column in chain_columns():
        op.add_column("feedback", column)
    op.create_index("ix_llm_calls_chain", "llm_calls", ["chain_id", "chain_seq"])
    op.create_index("ix_feedback_chain", "feedback", ["chain_id", "chain_seq"])
    op.create_table(
        "audit_chains",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("table_name", sa.String(32), nullable=False),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("started_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
    )
    events = op.create_table(
        "audit_events",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("id", sa.String(36), nullable=False, unique=True),
        sa.Column("at", TIME, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("command", sa.Text(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("details", JSON, nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("event_hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_events_at", "audit_events", ["at"])

    connection = op.get_bind()
    calls = connection.execute(sa.text("SELECT count(*) FROM llm_calls")).scalar_one()
    feedback = connection.execute(sa.text("SELECT count(*) FROM feedback")).scalar_one()
    try:
        actor = f"{getpass.getuser()}@{socket.gethostname()}"
    except Exception:  # no user name in some containers
        actor = f"?@{socket.gethostname()}"
    at = datetime.now(UTC)
    event: dict[str, Any] = {
        "seq": 1,
        "id": str(uuid.uuid4()),
        "at": at.isoformat(),
        "kind": "chain_start",
        "actor": actor[:200],
        "command": "llmops db upgrade (migration 0009)",
        "rows": int(calls) + int(feedback),
        "details": {"unchained": {"llm_calls": int(calls), "feedback": int(feedback)}},
    }
    digest = event_hash(GENESIS, event)
    row = {**event, "at": at, "prev_hash": GENESIS}
    op.bulk_insert(events, [{**row, "event_hash": digest}])


def downgrade() -> None:
    op.drop_table("audit_events")
    op.drop_table("audit_chains")
    op.drop_index("ix_feedback_chain", "feedback")
    op.drop_index("ix_llm_calls_chain", "llm_calls")
    for table in ("feedback", "llm_calls"):
        with op.batch_alter_table(table) as batch:
            for column in ("row_hash", "content_hash", "chain_seq", "chain_id"):
                batch.drop_column(column)
