"""``llmops db``: create, upgrade and inspect the calls database."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from llmops.cli._options import DatabaseOption, database_url
from llmops.cli._output import emit_json, table
from llmops.config import Settings
from llmops.errors import ConfigError, DatabaseError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from llmops.store.queries.sizes import DatabaseSize

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
    from llmops.store.partitions import ensure_partitions

    created = ensure_partitions(engine)  # PostgreSQL: the months ahead (nothing on SQLite)
    if created:
        typer.echo(f"{where}: created partitions {', '.join(created)}.")


@app.command()
def partitions(
    months_ahead: int = typer.Option(
        2, "--months-ahead", min=0, max=120, help="Months after the current one to create."
    ),
    url: str | None = DatabaseOption,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """PostgreSQL: create the monthly partitions of llm_calls and llm_call_content ahead of
    time (writers do it when they start and once a day; run it from cron when nothing
    writes for long), and list them."""
    import sqlalchemy as sa

    from llmops.store.engine import check_schema, create_engine, display_url
    from llmops.store.partitions import PARENTS, ensure_partitions, list_partitions

    target = database_url(url, existing=True)  # a database to change, not to make
    engine = create_engine(target)
    check_schema(engine, create=False)
    if engine.dialect.name != "postgresql":
        typer.echo(f"{display_url(target)}: SQLite has no partitions; nothing to do.")
        return
    created = ensure_partitions(engine, months_ahead=months_ahead)
    with engine.connect() as connection:
        found = [p for parent in PARENTS for p in list_partitions(connection, parent)]
        estimates: dict[str, int] = dict(
            connection.execute(
                sa.text(
                    "SELECT c.relname, c.reltuples::bigint FROM pg_inherits i "
                    "JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent IN (to_regclass('llm_calls'), "
                    "to_regclass('llm_call_content'))"
                )
            ).all()
        )
    if as_json:
        emit_json(
            {
                "database": display_url(target),
                "created": created,
                "partitions": [
                    {"name": p.name, "bound": p.bound, "rows_estimate": estimates.get(p.name)}
                    for p in found
                ],
            }
        )
        return
    if created:
        typer.echo(f"created: {', '.join(created)}")
    table(
        ["PARTITION", "RANGE", "ROWS (ESTIMATE)"],
        [[p.name, p.bound, _estimate(estimates.get(p.name))] for p in found],
        right={2},
    )


def _estimate(rows: int | None) -> str:
    """PostgreSQL's row estimate (reltuples), or ? before the partition was analysed."""
    return f"{rows:,}" if rows is not None and rows >= 0 else "?"


@app.command()
def status(
    url: str | None = DatabaseOption,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
    sizes: bool = typer.Option(
        False,
        "--sizes",
        help="Also the disk each table takes (rows, indexes) and the bytes per call "
        "(on SQLite this reads every page of the file).",
    ),
) -> None:
    """Show the schema revision, the rows of every table and what waits in the journal;
    exit 2 when the schema needs an upgrade."""
    from llmops.errors import SchemaOutdatedError
    from llmops.store.engine import HEAD_REVISION, create_engine, current_revision, display_url
    from llmops.store.journal import Journal
    from llmops.store.queries.sizes import database_size

    target = database_url(url, existing=True)
    engine = create_engine(target)
    from llmops.store.partitions import list_partitions

    with engine.connect() as connection:
        revision = current_revision(connection)
        rows = table_rows(connection) if revision is not None else {}
        partitions = [p.name for p in list_partitions(connection)]
        size = database_size(connection, rows) if sizes and rows else None
    spool = Settings.from_env().home / "spool"
    waiting = Journal(spool).summary()
    if as_json:
        emit_json(
            {
                "database": display_url(target),
                "schema": revision,
                "schema_of_this_llmops": HEAD_REVISION,
                "tables": rows,
                "partitions": partitions,
                "journal": {
                    "folder": str(spool),
                    "records": waiting.records,
                    "files": waiting.files,
                    "live_files": waiting.live_files,
                    "rejected": waiting.rejected,
                },
                **_sizes_json(size, rows, sizes),
            }
        )
    else:
        typer.echo(f"database: {display_url(target)}")
        typer.echo(f"schema:   {revision or '(none)'} (this llmops: {HEAD_REVISION})")
        if partitions:
            typer.echo(
                f"partitions: {len(partitions)} of llm_calls ({partitions[0]} ... "
                f"{partitions[-1]}; `llmops db partitions` lists them)"
            )
        if rows:
            typer.echo("")
            _rows_table(rows, size)
            typer.echo("")
            if sizes:
                typer.echo(_sizes_line(size, rows.get("llm_calls")))
        typer.echo(
            f"journal:  {waiting.records} records in {waiting.files} files waiting for a replay"
            f" ({spool}; {waiting.live_files} files held by running processes)"
        )
        if waiting.rejected:
            typer.echo(f"rejected: {waiting.rejected} records in {spool / 'rejected.log'}")
    if revision != HEAD_REVISION:
        raise SchemaOutdatedError("the schema is not current: run `llmops db upgrade`")


def _rows_table(rows: dict[str, int | None], size: DatabaseSize | None) -> None:
    """The TABLE/ROWS block; with sizes, each table's DATA and INDEXES too."""
    if size is None:
        shown = [[name, "(missing)" if n is None else n] for name, n in rows.items()]
        table(["TABLE", "ROWS"], shown, right={1})
        return
    lines: list[list[object]] = []
    for name, n in rows.items():
        part = size.tables.get(name)
        data, indexes = (bytes_(part.data), bytes_(part.indexes)) if part else ("", "")
        lines.append([name, "(missing)" if n is None else n, data, indexes])
    table(["TABLE", "ROWS", "DATA", "INDEXES"], lines, right={1, 2, 3})


def _sizes_line(size: DatabaseSize | None, calls: int | None) -> str:
    if size is None:
        return "size:     unknown (this SQLite has no dbstat table)"
    line = f"size:     {bytes_(size.database)} in all"
    per = size.per_call(calls or 0)
    if per:
        line += (
            f"; per call {per['database']:,.0f} B: llm_calls {per['llm_calls']:,.0f} "
            f"(rows {per['llm_calls_rows']:,.0f}, indexes {per['llm_calls_indexes']:,.0f}), "
            f"content {per['content']:,.0f}, rollups {per['rollups']:,.0f}"
        )
    return line


def _sizes_json(
    size: DatabaseSize | None, rows: dict[str, int | None], asked: bool
) -> dict[str, object]:
    if not asked:
        return {}
    if size is None:
        return {"sizes": None, "bytes_per_call": None}
    return {
        "sizes": {
            "database_bytes": size.database,
            "tables": {
                t.table: {"data_bytes": t.data, "index_bytes": t.indexes}
                for t in size.tables.values()
            },
        },
        "bytes_per_call": size.per_call(rows.get("llm_calls") or 0) or None,
    }


def bytes_(value: int) -> str:
    """``812 B``, ``3.4 MB``, ``1.25 GB``: a size in powers of 1,024."""
    if value < 1024:
        return f"{value:,} B"
    size = value / 1024
    for unit in ("KB", "MB"):
        if size < 1024:
            return f"{size:,.1f} {unit}"
        size /= 1024
    return f"{size:,.2f} GB"


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

    target = database_url(url, existing=True)  # records go to a database that is there
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


def _days(value: str | None, option: str) -> int | None:
    """``30d`` (or ``30``, or ``8w``) as days."""
    import re

    if value is None:
        return None
    found = re.fullmatch(r"\s*([0-9]{1,6})\s*([dw]?)\s*", value)
    if not found:
        raise ConfigError(f"{option} {value!r}: expected days such as 30d (or weeks: 8w)")
    days = int(found[1]) * (7 if found[2] == "w" else 1)
    if not 1 <= days <= 36_600:
        raise ConfigError(f"{option} {value!r}: between 1 day and 100 years")
    return days


@app.command()
def prune(
    content_older_than: str | None = typer.Option(
        None,
        "--content-older-than",
        help="Drop prompts, responses and feedback comments older than this (30d) "
        "[default: retention.content_days in llmops.yaml].",
    ),
    calls_older_than: str | None = typer.Option(
        None,
        "--calls-older-than",
        help="Delete calls (and their feedback) of the UTC days older than this (400d), "
        "keeping the daily rollups [default: retention.calls_days].",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count what would go; change nothing."),
    force: bool = typer.Option(
        False,
        "--force",
        help="Delete calls younger than retention.minimum_days (default 183: the AI Act's six "
        "months).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
    url: str | None = DatabaseOption,
) -> None:
    """Retention: drop stored content sooner than call metadata, and old calls; recorded
    as an audit event that `llmops audit verify` accounts for."""
    from llmops.audit.retention import check_ages
    from llmops.audit.retention import prune as run_prune
    from llmops.store.engine import check_schema, create_engine, display_url

    settings = Settings.from_env()
    retention = settings.retention
    content_days = _days(content_older_than, "--content-older-than") or retention.content_days
    calls_days = _days(calls_older_than, "--calls-older-than") or retention.calls_days
    check_ages(content_days, calls_days, retention.minimum_days, force=force)
    target = database_url(url, existing=True)  # a database to change, not to make
    engine = create_engine(target)
    check_schema(engine, create=False)
    report = run_prune(
        engine,
        content_days=content_days,
        calls_days=calls_days,
        minimum_days=retention.minimum_days,
        force=force,
        dry_run=dry_run,
    )
    if as_json:
        emit_json(
            {
                "database": display_url(target),
                "dry_run": dry_run,
                "content_before": report.content_before.isoformat()
                if report.content_before
                else None,
                "calls_before": report.calls_before.isoformat() if report.calls_before else None,
                "content_calls": report.content_calls,
                "content_feedback": report.content_feedback,
                "calls_removed": report.calls_removed,
                "feedback_removed": report.feedback_removed,
                "partitions_dropped": report.partitions_dropped,
                "event": report.event.seq if report.event else None,
            }
        )
        return
    verb = "would" if dry_run else "did"
    if report.content_before is not None:
        typer.echo(
            f"content before {report.content_before:%Y-%m-%d %H:%M} UTC: {verb} drop it from "
            f"{report.content_calls:,} calls and {report.content_feedback:,} feedback comments"
        )
    if report.calls_before is not None:
        typer.echo(
            f"calls before {report.calls_before:%Y-%m-%d} UTC: {verb} delete "
            f"{report.calls_removed:,} calls and {report.feedback_removed:,} feedback rows "
            "(the daily rollups stay)"
        )
    if report.partitions_dropped:
        typer.echo(
            f"dropped the monthly partitions {', '.join(report.partitions_dropped)} "
            "(whole months, instead of deleting their rows)"
        )
    if report.event is not None:
        typer.echo(f"recorded as audit event {report.event.seq} (llmops audit verify).")
