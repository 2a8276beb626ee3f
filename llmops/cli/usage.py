"""``llmops spend``, ``llmops calls`` and ``llmops feedback``: recorded calls in a terminal."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any

import typer

from llmops.cli._options import MAX_TOP, DatabaseOption, check_choices, database_url
from llmops.cli._output import emit_csv, emit_json, table
from llmops.money import amount, usd

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


class By(StrEnum):
    model = "model"
    prompt = "prompt"
    user = "user"
    tag = "tag"
    source = "source"
    key = "key"


def _engine(url: str | None) -> Engine:
    from llmops.store.engine import check_schema, create_engine

    engine = create_engine(database_url(url, existing=True))  # only looks: makes nothing
    check_schema(engine)
    return engine


def _days_option(default: int) -> Any:
    """``--days N``: the dashboard's ranges, the N whole UTC days that end with today."""
    return typer.Option(
        default,
        "--days",
        min=1,
        max=3660,
        help="The last N UTC days, today included (as the dashboard's ranges).",
    )


def spend(
    days: int = _days_option(30),
    by: By = typer.Option(
        By.model, "--by", help="Group by model, prompt, user, tag, source or key (of llmops serve)."
    ),
    top: int | None = typer.Option(
        None,
        "--top",
        min=1,
        max=MAX_TOP,
        help='Keep the N keys that cost most; sum the rest as "(other)".',
    ),
    output: Format = typer.Option(Format.table, "--format", help="table, csv or json."),
    url: str | None = DatabaseOption,
) -> None:
    """Daily spend, grouped (the same figures as the dashboard)."""
    from llmops.store import queries

    engine = _engine(url)
    filters = queries.Filters.recent_days(days)
    rows = queries.daily_spend(engine, filters, by=by.value, top=top)
    records = [
        {
            "date": r.date.isoformat(),
            by.value: r.key,
            "calls": r.calls,
            "prompt_tokens": r.prompt_tokens,
            "completion_tokens": r.completion_tokens,
            "cost_usd": amount(r.cost_usd),
            "unpriced_calls": r.unpriced_calls,
        }
        for r in (rows if output is not Format.table else ())
    ]
    if output is Format.json:
        emit_json(records)
        return
    if output is Format.csv:
        fields = ["date", by.value, "calls", "prompt_tokens", "completion_tokens", "cost_usd",
                  "unpriced_calls"]  # fmt: skip
        emit_csv(fields, records)
        return
    if not rows:
        typer.echo(f"No calls in the last {days} day(s).")
        return
    table(
        ["DATE", by.value.upper(), "CALLS", "IN TOKENS", "OUT TOKENS", "COST", "UNPRICED"],
        [
            [r.date.isoformat(), r.key, r.calls, r.prompt_tokens, r.completion_tokens,
             usd(r.cost_usd), r.unpriced_calls or ""]
            for r in rows
        ],
    )  # fmt: skip
    total = queries.spend_total(engine, filters)
    note = f" ({total.unpriced_calls} unpriced calls not included)" if total.unpriced_calls else ""
    typer.echo(f"Total: {total.calls} calls, {usd(total.cost_usd)}{note}")


def calls(
    limit: int = typer.Option(20, "--limit", min=1, max=10_000),
    days: int = _days_option(7),
    model: list[str] = typer.Option([], "--model", help="Only this model (repeatable)."),
    prompt: list[str] = typer.Option([], "--prompt", help="Only this prompt (repeatable)."),
    version: list[str] = typer.Option([], "--version", help="Only this prompt version."),
    user: list[str] = typer.Option([], "--user", help="Only this user (repeatable)."),
    status: list[str] = typer.Option(
        [], "--status", help="ok, error, cancelled or blocked (repeatable)."
    ),
    source: list[str] = typer.Option([], "--source", help="app or eval."),
    output: Format = typer.Option(Format.table, "--format", help="table, csv or json."),
    url: str | None = DatabaseOption,
) -> None:
    """The latest calls, newest first."""
    from llmops.store import queries
    from llmops.store.tables import CALL_STATUSES

    check_choices("--status", status, CALL_STATUSES)
    filters = queries.Filters.recent_days(
        days,
        models=tuple(model),
        prompts=tuple(prompt),
        versions=tuple(version),
        users=tuple(user),
        statuses=tuple(status),
        sources=tuple(source),
    )
    rows, total = queries.calls_page(_engine(url), filters, limit=limit)
    for row in rows:
        row["cost_usd"] = amount(row["cost_usd"])
    if output is Format.json:
        emit_json(rows)
        return
    if output is Format.csv:
        emit_csv(list(queries.CALL_LIST_COLUMNS), rows)
        return
    if not rows:
        typer.echo("No calls match.")
        return
    table(
        ["TIME (UTC)", "ID", "MODEL", "PROMPT", "USER", "STATUS", "TOKENS", "COST", "LATENCY"],
        [
            [
                r["created_at"].strftime("%Y-%m-%d %H:%M:%S"),
                r["id"],
                r["model"],
                f"{r['prompt_name']}@{r['prompt_version']}" if r["prompt_name"] else "",
                r["user_id"] or "",
                r["status"],
                f"{r['prompt_tokens'] or 0}+{r['completion_tokens'] or 0}",
                "unpriced" if r["cost_usd"] is None else usd(r["cost_usd"]),
                f"{r['latency_ms']:.0f} ms" if r["latency_ms"] is not None else "",
            ]
            for r in rows
        ],
    )
    typer.echo(f"{len(rows)} of {total} call(s) in the last {days} day(s).")


def feedback(
    call_id: str = typer.Argument(
        ..., metavar="CALL_ID", help="The call's id (`llmops calls` lists them)."
    ),
    score: str = typer.Argument(
        ..., metavar="SCORE", help="A number: 1/0 for thumbs, 1-5 for stars, ..."
    ),
    comment: str | None = typer.Option(None, "--comment", help="Free text."),
    name: str = typer.Option("rating", "--name", help="What is scored."),
    user: str | None = typer.Option(None, "--user", help="Who gave it."),
    url: str | None = DatabaseOption,
) -> None:
    """Attach a score to a recorded call."""
    import math
    import uuid

    from llmops.errors import InvalidFeedbackError, UnknownCallError
    from llmops.gateway.gateway import MAX_SCORE

    try:
        value = float(score)
    except ValueError:
        raise InvalidFeedbackError(
            f"feedback for call {call_id}: score must be a number, got {score!r}"
        ) from None
    if not math.isfinite(value):  # the gateway says so too, and checks the bounds
        raise InvalidFeedbackError(
            f"feedback for call {call_id}: score must be a finite number from "
            f"{-MAX_SCORE:g} to {MAX_SCORE:g}, got {score!r}"
        )
    try:
        uuid.UUID(call_id)
    except ValueError:
        raise UnknownCallError(f"feedback: {call_id!r} is not a call id", call_id=call_id) from None
    for option, text, longest in (("--name", name, 100), ("--user", user, 200)):
        if text is not None and not 0 < len(text) <= longest:
            raise InvalidFeedbackError(f"feedback: {option} must be 1 to {longest} characters")
    target = database_url(url, existing=True)  # a score for a call: in a database that is there
    from llmops.gateway import Gateway

    gateway = Gateway(database_url=target)
    try:
        feedback_id = gateway.feedback(call_id, value, name=name, comment=comment, user=user)
    finally:
        gateway.close()
    if not gateway.writer.healthy:  # a database that is away, or read-only (a replica)
        typer.echo(
            f"Feedback {feedback_id} for call {call_id} is in the journal "
            f"({gateway.writer.journal.folder}), not in the database, which did not take it"
            f" ({gateway.writer.last_error}): the next llmops process with this journal "
            "writes it once its database takes it.",
            err=True,
        )
        return
    typer.echo(f"Feedback {feedback_id} recorded for call {call_id}.")
