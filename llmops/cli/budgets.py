"""``llmops budgets``: every budget of the config file with its spend in the current window."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from llmops.cli._options import MAX_TOP, DatabaseOption, database_url
from llmops.cli._output import emit_json, table
from llmops.money import amount, usd

if TYPE_CHECKING:
    from llmops.store.queries import BudgetStatus


def budgets(
    top: int = typer.Option(
        20, "--top", min=1, max=MAX_TOP, help="Rows per 'each' budget, highest spend first."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    url: str | None = DatabaseOption,
) -> None:
    """Budgets (budgets.limits in llmops.yaml): spend in the current window, the share of the
    limit, and the spend projected to the window's end at the current rate."""
    from llmops.config import Settings
    from llmops.store import queries
    from llmops.store.engine import check_schema, create_engine

    declared = Settings.from_env().budgets
    if not declared:
        typer.echo("No budgets: declare them under budgets.limits in llmops.yaml (see README).")
        return
    engine = create_engine(database_url(url, existing=True))  # only looks: makes nothing
    check_schema(engine)
    rows = queries.budget_status(engine, declared, top=top)
    if as_json:
        emit_json([_record(row) for row in rows])
        return
    table(
        ["BUDGET", "SCOPE", "WINDOW", "ACTION", "SPENT", "LIMIT", "USED", "PROJECTED", "STATE"],
        [
            [
                row.budget.name,
                row.key if row.key is not None else row.budget.describe_scope(),
                f"{row.budget.window} from {row.window_start:%Y-%m-%d}",
                row.budget.action,
                usd(row.spent_usd),
                usd(row.limit_usd),
                _percent(row.percent),
                "" if row.projected_usd is None else usd(row.projected_usd),
                row.state,
            ]
            for row in rows
        ],
    )
    unpriced = sum(row.unpriced_calls for row in rows)
    if unpriced:
        typer.echo(f"{unpriced} unpriced call(s) are not in these figures (llmops costs).")


def _percent(value: float) -> str:
    return "<0.1%" if 0 < value < 0.05 else f"{value:.1f}%"


def _record(row: BudgetStatus) -> dict[str, object]:
    return {
        "budget": row.budget.name,
        "scope": row.budget.scope or None,
        "key": row.key,
        "window": row.budget.window,
        "window_start": row.window_start.isoformat(),
        "window_end": row.window_end.isoformat(),
        "action": row.budget.action,
        "limit_usd": row.limit_usd,
        "spent_usd": amount(row.spent_usd),
        "percent": round(row.percent, 4),
        "projected_usd": amount(row.projected_usd),
        "threshold_reached": row.crossed,
        "calls": row.calls,
        "unpriced_calls": row.unpriced_calls,
        "state": row.state,
    }
