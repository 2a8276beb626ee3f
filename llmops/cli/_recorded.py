"""The options that pick recorded calls of a prompt (``eval cases from-calls`` and
``score``), checked before any work is done."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import typer

from llmops.cli._options import check_choices, database_url, parse_when
from llmops.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from llmops.store.queries.recorded import CallSelection, FeedbackCondition

SinceHelp = "From when: 2026-11-01, an ISO time, or a span back from now (7d, 12h)."
UntilHelp = "Until when (same forms) [default: now]."
ModelOption = typer.Option([], "--model", help="Only calls to this model (repeatable).")
VersionOption = typer.Option([], "--version", help="Only this prompt version (repeatable).")
TagOption = typer.Option([], "--tag", help="Only calls with this tag (repeatable: any of them).")
MinCostOption = typer.Option(
    None, "--min-cost", min=0, max=1e9, help="Only calls that cost at least this (USD)."
)
IncludeEvalOption = typer.Option(
    False, "--include-eval", help="Include calls made by evals (source eval) too."
)
SeedOption = typer.Option(
    0, "--seed", min=0, max=2**63 - 1, help="The sample's seed: the same seed picks the same calls."
)


def selection(
    *,
    prompt: str,
    since: str,
    until: str | None,
    models: list[str],
    versions: list[str],
    tags: list[str],
    statuses: Sequence[str] = (),
    min_cost: float | None = None,
    feedback: tuple[FeedbackCondition, ...] = (),
    include_eval: bool = False,
) -> CallSelection:
    """The calls of ``prompt`` in [since, until) that the options allow."""
    from llmops.store.queries.filters import Filters
    from llmops.store.queries.recorded import CallSelection
    from llmops.store.tables import CALL_STATUSES

    if not prompt.strip() or "@" in prompt:
        raise ConfigError(f"--prompt {prompt!r}: expected a prompt name (support/answer)")
    check_choices("--status", statuses, CALL_STATUSES)
    if min_cost is not None and not math.isfinite(min_cost):
        raise ConfigError("--min-cost: expected a finite number")
    start = parse_when(since, "--since")
    end = parse_when(until, "--until") if until else datetime.now(UTC)
    if end <= start:
        raise ConfigError(f"--until {until or 'now'} is not after --since {since}")
    filters = Filters(
        start=start,
        end=end,
        models=tuple(models),
        prompts=(prompt,),
        versions=tuple(versions),
        statuses=tuple(statuses),
        sources=() if include_eval else ("app",),
    )
    return CallSelection(filters, tuple(tags), min_cost, feedback)


def engine(url: str | None) -> Engine:
    from llmops.store.engine import check_schema, create_engine

    found = create_engine(database_url(url, existing=True))  # only reads calls: makes nothing
    check_schema(found)
    return found


def span(selected: CallSelection) -> str:
    """``2026-11-01 10:00 to 2026-12-01 10:00 UTC``."""
    start, end = selected.filters.start, selected.filters.end
    return f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"


def plural(count: int, one: str, many: str) -> str:
    """``1 call``, ``2 calls``."""
    return f"{count} {one if count == 1 else many}"
