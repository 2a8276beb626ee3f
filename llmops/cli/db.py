"""``llmops db``: create, upgrade and inspect the calls database."""

from __future__ import annotations

import typer

from llmops.cli._options import DatabaseOption, database_url
from llmops.config import Settings
from llmops.errors import DatabaseError

app = typer.Typer(help="The calls database (SQLite or Postgres).", no_args_is_help=True)


@app.command()
def upgrade(url: str | None = DatabaseOption) -> None:
    """Create the database, or upgrade its schema to this llmops version."""
    from llmops.store.engine import create_engine, current_revision, display_url
    from llmops.store.engine import upgrade as run_upgrade

    target = database_url(url)
    engine = create_engine(target)
    with engine.connect() as connection:
        before = current_revision(connection)
    after = run_upgrade(engine)
    where = display_url(target)
    if before == after:
        typer.echo(f"{where}: already at schema {after}.")
    else:
        typer.echo(f"{where}: schema {before or '(none)'} -> {after}.")


@app.command()
def status(url: str | None = DatabaseOption) -> None:
    """Show the schema revision and row counts; exit 2 when the schema needs an upgrade."""
    import sqlalchemy as sa

    from llmops.errors import SchemaOutdatedError
    from llmops.store.engine import HEAD_REVISION, create_engine, current_revision, display_url
    from llmops.store.tables import CALLS, FEEDBACK

    target = database_url(url)
    engine = create_engine(target)
    with engine.connect() as connection:
        revision = current_revision(connection)
        typer.echo(f"database: {display_url(target)}")
        typer.echo(f"schema:   {revision or '(none)'} (this llmops: {HEAD_REVISION})")
        if revision is not None:
            for table in (CALLS, FEEDBACK):
                rows = connection.execute(sa.select(sa.func.count()).select_from(table))
                typer.echo(f"{table.name + ':':<10}{rows.scalar_one()} rows")
    from llmops.store.journal import Journal

    spool = Settings.from_env().home / "spool"
    waiting = Journal(spool).summary()
    typer.echo(
        f"journal:  {waiting.records} records in {waiting.files} files waiting for a replay"
        f" ({spool}; {waiting.live_files} files held by running processes)"
    )
    if waiting.rejected:
        typer.echo(f"rejected: {waiting.rejected} records in {spool / 'rejected.log'}")
    if revision != HEAD_REVISION:
        raise SchemaOutdatedError("the schema is not current: run `llmops db upgrade`")


@app.command()
def replay(url: str | None = DatabaseOption) -> None:
    """Store what dead processes left in the journal ($LLMOPS_HOME/spool) now; any
    process that records calls does this too, within a second of starting."""
    from llmops.store.engine import check_schema, create_engine, display_url
    from llmops.store.journal import Journal
    from llmops.store.writer import Writer

    target = database_url(url)
    engine = create_engine(target)
    check_schema(engine)
    spool = Settings.from_env().home / "spool"
    writer = Writer(lambda: engine, spool)
    stored = writer.flush(timeout=None)
    writer.close()
    stats = writer.stats
    left = Journal(spool).summary()
    typer.echo(
        f"{display_url(target)}: {stats.replayed} records replayed, {stats.repaired} repaired,"
        f" {stats.rejected} rejected; {left.records} records in {left.files} files still"
        " waiting"
    )
    if not stored or writer.last_error:
        raise DatabaseError(f"the database did not take every record: {writer.last_error}")
