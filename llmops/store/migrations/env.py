"""Alembic environment: llmops runs migrations on a connection it passes in."""

from alembic import context
from sqlmodel import SQLModel

import llmops.store.tables  # noqa: F401  (registers the tables in SQLModel.metadata)
from llmops.store.engine import VERSION_TABLE

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
