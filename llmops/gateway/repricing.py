"""Re-price stored calls when prices change (``llmops costs recompute``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from llmops.gateway.accounting import PriceBook, Usage
from llmops.store.tables import CALLS

_BATCH = 2000


@dataclass
class RepriceReport:
    """What a recompute changed."""

    examined: int = 0
    changed: int = 0
    unpriced: int = 0
    old_total_usd: float = 0.0
    new_total_usd: float = 0.0


def recompute_costs(
    engine: Engine,
    prices: PriceBook,
    *,
    since: datetime,
    until: datetime | None = None,
    model: str | None = None,
    include_overrides: bool = False,
    dry_run: bool = False,
) -> RepriceReport:
    """Price every call in ``[since, until)`` again with ``prices``; update what changed.

    Calls priced by a per-call price argument keep their cost unless ``include_overrides``.
    """
    c = CALLS.c
    query = sa.select(
        c.id, c.model, c.provider, c.prompt_tokens, c.completion_tokens, c.cached_tokens,
        c.cache_write_tokens, c.reasoning_tokens, c.cost_usd, c.cost_status, c.price_source,
    ).where(c.created_at >= since, c.prompt_tokens.is_not(None))  # fmt: skip
    if until is not None:
        query = query.where(c.created_at < until)
    if model is not None:
        query = query.where(c.model == model)
    if not include_overrides:
        query = query.where(sa.or_(c.price_source.is_(None), c.price_source != "custom:argument"))
    report = RepriceReport()
    updates: list[dict[str, object]] = []
    with engine.connect() as connection:
        rows = connection.execute(query.order_by(c.created_at)).all()
    for row in rows:
        report.examined += 1
        usage = Usage(
            row.prompt_tokens or 0,
            row.completion_tokens or 0,
            row.cached_tokens or 0,
            row.cache_write_tokens or 0,
            row.reasoning_tokens or 0,
        )
        price = prices.price(row.model, usage, provider=row.provider)
        report.old_total_usd += row.cost_usd or 0.0
        report.new_total_usd += price.cost_usd or 0.0
        report.unpriced += price.cost_usd is None
        if (price.cost_usd, price.status, price.source) != (
            row.cost_usd,
            row.cost_status,
            row.price_source,
        ):
            report.changed += 1
            updates.append(
                {
                    "call_id": row.id,
                    "new_cost": price.cost_usd,
                    "new_status": price.status,
                    "new_source": price.source,
                }
            )
    if updates and not dry_run:
        with engine.begin() as connection:
            for start in range(0, len(updates), _BATCH):
                _update_costs(connection, updates[start : start + _BATCH])
    return report


def _update_costs(connection: sa.Connection, updates: list[dict[str, object]]) -> None:
    """Store new costs. On PostgreSQL one UPDATE ... FROM (VALUES ...) per batch, so the
    rollup triggers (per statement there) run once per batch, not once per call."""
    c = CALLS.c
    if connection.dialect.name == "postgresql":
        new = sa.values(
            sa.column("call_id", sa.String),
            sa.column("new_cost", sa.Float),
            sa.column("new_status", sa.String),
            sa.column("new_source", sa.String),
            name="new",
        ).data([tuple(u.values()) for u in updates])
        statement = (
            CALLS.update()
            .where(c.id == new.c.call_id)
            .values(  # typed: a column of NULLs in VALUES would be text
                cost_usd=sa.cast(new.c.new_cost, sa.Float),
                cost_status=sa.cast(new.c.new_status, sa.String),
                price_source=sa.cast(new.c.new_source, sa.String),
            )
        )
        connection.execute(statement)
        return
    statement = (
        CALLS.update()
        .where(c.id == sa.bindparam("call_id"))
        .values(
            cost_usd=sa.bindparam("new_cost"),
            cost_status=sa.bindparam("new_status"),
            price_source=sa.bindparam("new_source"),
        )
    )
    connection.execute(statement, updates)
