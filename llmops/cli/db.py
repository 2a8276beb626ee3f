"""``llmops db``: create, upgrade and inspect the calls database."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from llmops.cli._options import DatabaseOption, database_url
from llmops.cli._output import emit_json, table
from llmops.config import Settings
from llmops.errors import DatabaseError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

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
def status(
    url: str | None = DatabaseOption,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Show the schema revision, the rows of every table and what waits in the journal;
    exit 2 when the schema needs an upgrade."""
    from llmops.errors import SchemaOutdatedError
    from llmops.store.engine import HEAD_REVISION, create_engine, current_revision, display_url
    from llmops.store.journal import Journal

    target = database_url(url)
    engine = create_engine(target)
    with engine.connect() as connection:
        revision = current_revision(connection)
        rows = table_rows(connection) if revision is not None else {}
    spool = Settings.from_env().home / "spool"
    waiting = Journal(spool).summary()
    if as_json:
        emit_json(
            {
                "database": display_url(target),
                "schema": revision,
                "schema_of_this_llmops": HEAD_REVISION,
                "tables": rows,
                "journal": {
                    "folder": str(spool),
                    "records": waiting.records,
                    "files": waiting.files,
                    "live_files": waiting.live_files,
                    "rejected": waiting.rejected,
                },
            }
        )
    else:
        typer.echo(f"database: {display_url(target)}")
        typer.echo(f"schema:   {revision or '(none)'} (this llmops: {HEAD_REVISION})")
        if rows:
            typer.echo("")
            shown = [[name, "(missing)" if n is None else n] for name, n in rows.items()]
            table(["TABLE", "ROWS"], shown, right={1})
            typer.echo("")
        typer.echo(
            f"journal:  {waiting.records} records in {waiting.files} files waiting for a replay"
            f" ({spool}; {waiting.live_files} files held by running processes)"
        )
        if waiting.rejected:
            typer.echo(f"rejected: {waiting.rejected} records in {spool / 'rejected.log'}")
    if revision != HEAD_REVISION:
        raise SchemaOutdatedError("the schema is not current: run `llmops db upgrade`")


def table_rows(connection: Connection) -> dict[str, int | None]:
    """The row count of every table of the llmops schema, in the schema's order (calls,
    feedback, daily rollups, evals, budgets, alerts, keys); None for a table the database
    does not have (an older schema)."""
    import sqlalchemy as sa

    from llmops.store.tables import CALLS

    present = set(sa.inspect(connection).get_table_names())
    counts: dict[str, int | None] = {}
    for name, schema_table in CALLS.metadata.tables.items():
        if name not in present:
            counts[name] = None
            continue
        query = sa.select(sa.func.count()).select_from(schema_table)
        counts[name] = int(connection.execute(query).scalar_one())
    return counts


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
