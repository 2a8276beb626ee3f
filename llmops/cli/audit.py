"""``llmops audit``: verify the hash chains of stored calls; the evidence report."""

from __future__ import annotations

from typing import Any

import typer

from llmops.cli import audit_report
from llmops.cli._options import DatabaseOption, database_url, parse_when
from llmops.cli._output import emit_json

app = typer.Typer(
    help="Tamper evidence and AI Act evidence: verify the call log, write the report.",
    no_args_is_help=True,
)
app.command("report")(audit_report.report)


@app.command()
def verify(
    since: str | None = typer.Option(
        None, "--since", help="Only rows created from then: 2026-11-01, an ISO time, or 7d."
    ),
    until: str | None = typer.Option(None, "--until", help="Only rows created before then."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
    url: str | None = DatabaseOption,
) -> None:
    """Walk the hash chains of the stored calls and feedback; report the first broken
    links (an edited, deleted or inserted row) and the changes accounted for (re-pricing,
    pruning). Exit 0 when intact, 1 when something is broken."""
    from llmops.audit.verify import verify as run_verify
    from llmops.errors import ConfigError
    from llmops.store.engine import check_schema, create_engine, display_url

    start = parse_when(since, "--since") if since else None
    end = parse_when(until, "--until") if until else None
    if start is not None and end is not None and end <= start:
        raise ConfigError(f"--until {until!r} is not after --since {since!r}")
    target = database_url(url, existing=True)  # only looks: makes nothing
    engine = create_engine(target)
    check_schema(engine, create=False)
    result = run_verify(engine, since=start, until=end)
    if as_json:
        emit_json(_as_json(result, display_url(target)))
    else:
        _print(result, display_url(target))
    if not result.ok:
        raise typer.Exit(1)


def _as_json(result: Any, where: str) -> dict[str, Any]:
    return {
        "database": where,
        "ok": result.ok,
        "since": result.since.isoformat() if result.since else None,
        "until": result.until.isoformat() if result.until else None,
        "checked": result.checked,
        "chains": result.chains,
        "unchained": result.unchained,
        "expected_unchained": result.expected_unchained,
        "broken": result.broken,
        "rollup_days": result.rollup_days,
        "rollup_days_pruned": result.rollup_days_pruned,
        "breaks": [
            {"table": b.table, "chain_id": b.chain_id, "seq": b.seq, "row_id": b.row_id,
             "created_at": b.created_at.isoformat() if b.created_at else None,
             "problem": b.problem}
            for b in result.breaks
        ],
        "events": [
            {"seq": e.seq, "at": e.at.isoformat(), "kind": e.kind, "actor": e.actor,
             "command": e.command, "rows": e.rows}
            for e in result.events
        ],
        "heads": [
            {"chain_id": h.chain_id, "table": h.table, "last_seq": h.last_seq,
             "last_hash": h.last_hash}
            for h in result.heads
        ],
        "seconds": round(result.seconds, 3),
    }  # fmt: skip


def _print(result: Any, where: str) -> None:
    rows = sum(result.checked.values())
    window = ""
    if result.since or result.until:
        window = f" created {result.since or '...'} to {result.until or 'now'}"
    typer.echo(
        f"{where}: {rows:,} rows{window} checked in {result.chains} chain(s), "
        f"{result.seconds:.1f} s."
    )
    if result.rollup_days or result.rollup_days_pruned:
        pruned = result.rollup_days_pruned
        typer.echo(
            f"daily rollups of {result.rollup_days:,} day(s) checked against their rows"
            + (f" ({pruned:,} day(s) before a prune's cutoff not checked)." if pruned else ".")
        )
    unchained = sum(result.unchained.values())
    if unchained:
        expected = sum(result.expected_unchained.values())
        typer.echo(f"{unchained:,} rows without a chain ({expected:,} stored before it began).")
    for event in result.events:
        typer.echo(
            f"accounted for: {event.kind} of {event.rows:,} rows on {event.at:%Y-%m-%d %H:%M} "
            f"UTC by {event.actor}: {event.command}"
        )
    if result.ok:
        typer.echo(
            "intact: no row was edited, deleted or inserted outside llmops, and no daily "
            "rollup checked was edited."
        )
        return
    typer.echo(f"BROKEN: {result.broken:,} problem(s); the first:")
    for item in result.breaks[:20]:
        where_ = f"{item.table}"
        if item.chain_id:
            where_ += f" chain {item.chain_id[:8]} #{item.seq}"
        if item.row_id:
            where_ += f" row {item.row_id}"
        typer.echo(f"  {where_}: {item.problem}")
