"""``llmops alerts check`` and ``llmops alerts list``: the alert rules of llmops.yaml."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from llmops.cli._options import DatabaseOption, database_url
from llmops.cli._output import emit_json, table
from llmops.text import printable

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from llmops.control.alerts import CheckResult
    from llmops.store.queries import AlertEventRow, AlertStateRow

app = typer.Typer(
    help="Alert rules (alerts: in llmops.yaml): check them, list what is firing.",
    no_args_is_help=True,
)

MAX_EVENTS = 10_000


def _engine(url: str | None, *, existing: bool = False) -> Engine:
    from llmops.store.engine import check_schema, create_engine

    engine = create_engine(database_url(url, existing=existing))
    check_schema(engine)
    return engine


@app.command("check")
def check(
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Evaluate and show what would fire or resolve; send nothing."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
    url: str | None = DatabaseOption,
) -> None:
    """Evaluate the alert rules now; notify what fired or resolved.

    Each crossing is notified once, however many processes check. Exit 0: nothing fired;
    1: an alert fired (with --dry-run: would fire) or a delivery failed; 2: bad
    configuration."""
    from llmops.config import Settings
    from llmops.control.alerts import AlertChecker

    settings = Settings.from_env()
    if not settings.alerts.rules:
        if as_json:
            emit_json({"fired": 0, "resolved": 0, "events": [], "conditions": []})
        else:
            typer.echo("No alert rules: declare them under alerts.rules in llmops.yaml.")
        return
    engine = _engine(url)
    checker = AlertChecker(engine, settings.alerts, settings.budgets)  # reads the channels' env
    result = checker.check(dry_run=dry_run)
    if as_json:
        emit_json(result.to_json())
    elif dry_run:
        _print_dry_run(result)
    else:
        _print_check(result)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


def _print_check(result: CheckResult) -> None:
    for t in result.transitions:
        c = t.condition
        where = ", ".join(t.delivered) if t.delivered else "nobody"
        if not t.notified:
            where = "not notified (send_resolved: false)"
        typer.echo(f"{t.event.upper()}  {c.rule}: {printable(c.message)}  -> {where}")
        for failure in t.failed:
            typer.echo(f"  delivery failed: {printable(failure)}")
    firing = sum(1 for c in result.conditions if c.status == "firing")
    typer.echo(
        f"Checked {len(result.conditions)} condition(s) at {result.at:%Y-%m-%d %H:%M:%S} UTC: "
        f"{len(result.fired)} fired, {len(result.resolved)} resolved, {firing} firing now."
    )


def _print_dry_run(result: CheckResult) -> None:
    from llmops.control.alerts import format_value

    would = {t.condition.key: t.event for t in result.transitions}
    extra = [t.condition for t in result.transitions if t.condition not in result.conditions]
    if not result.conditions and not extra:
        typer.echo("Nothing to evaluate yet (no calls, feedback or eval runs in the windows).")
    else:
        table(
            ["RULE", "SUBJECT", "STATUS", "VALUE", "THRESHOLD", "WOULD", "MESSAGE"],
            [
                [
                    c.rule,
                    c.subject,
                    c.status.replace("_", " "),
                    format_value(c.kind, c.value),
                    format_value(c.kind, c.threshold),
                    {"fired": "fire", "resolved": "resolve"}.get(would.get(c.key, ""), ""),
                    c.message,
                ]
                for c in [*result.conditions, *extra]
            ],
        )
    typer.echo(
        f"Dry run: {len(result.fired)} would fire, {len(result.resolved)} would resolve; "
        "nothing was sent or stored."
    )


@app.command("list")
def list_alerts(
    show_all: bool = typer.Option(False, "--all", help="Also the alerts that have resolved."),
    events: int = typer.Option(
        10, "--events", min=0, max=MAX_EVENTS, help="How many recent notifications to show."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
    url: str | None = DatabaseOption,
) -> None:
    """The alerts firing now and the latest notifications.

    --all also lists the alerts that have resolved; each notification shows the channels
    that delivered it and those that failed."""
    from llmops.control.alerts import format_value
    from llmops.store import queries

    engine = _engine(url, existing=True)  # only looks: makes nothing
    states = queries.alert_states(engine, firing_only=not show_all)
    recent = queries.alert_events(engine, limit=events) if events else []
    if as_json:
        emit_json(
            {
                "alerts": [_state_record(row) for row in states],
                "events": [_event_record(row) for row in recent],
            }
        )
        return
    if states:
        table(
            ["STATE", "RULE", "KIND", "SUBJECT", "VALUE", "THRESHOLD", "SINCE"],
            [
                [
                    row.state,
                    row.rule,
                    row.kind,
                    row.subject,
                    format_value(row.kind, row.value),
                    format_value(row.kind, row.threshold),
                    f"{row.fired_at if row.state == 'firing' else row.changed_at:%Y-%m-%d %H:%M}",
                ]
                for row in states
            ],
        )
    else:
        typer.echo("No alert is firing." if not show_all else "No alert has fired yet.")
    if recent:
        typer.echo("")
        table(
            ["AT", "EVENT", "RULE", "SUBJECT", "DELIVERED", "FAILED"],
            [
                [
                    f"{row.at:%Y-%m-%d %H:%M}",
                    row.event,
                    row.rule,
                    row.subject,
                    ", ".join(row.delivered),
                    "; ".join(row.failed),
                ]
                for row in recent
            ],
        )


def _state_record(row: AlertStateRow) -> dict[str, object]:
    return {
        "key": row.key,
        "rule": row.rule,
        "kind": row.kind,
        "subject": row.subject,
        "state": row.state,
        "value": row.value,
        "threshold": row.threshold,
        "message": row.message,
        "window_start": None if row.window_start is None else row.window_start.isoformat(),
        "fired_at": row.fired_at.isoformat(),
        "changed_at": row.changed_at.isoformat(),
        "resolved_at": None if row.resolved_at is None else row.resolved_at.isoformat(),
    }


def _event_record(row: AlertEventRow) -> dict[str, object]:
    return {
        "at": row.at.isoformat(),
        "event": row.event,
        "key": row.key,
        "rule": row.rule,
        "kind": row.kind,
        "subject": row.subject,
        "value": row.value,
        "threshold": row.threshold,
        "message": row.message,
        "delivered": row.delivered,
        "failed": row.failed,
    }
