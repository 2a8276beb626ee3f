"""Re-price stored calls when prices change (``llmops costs recompute``).

A call is priced again from what was stored when it was recorded: its token columns and
``usage_details`` (1-hour cache writes, audio and image tokens, the model and service tier
that served it), so an unchanged price map reproduces every stored cost exactly. A call
the new prices cannot price keeps its cost unless ``allow_unpriced``: re-pricing never
drops a cost silently.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from llmops.money import amount
from llmops.pricing.prices import Price, PriceBook, price_details
from llmops.pricing.usage import Served, Usage
from llmops.store.audit_log import record_event, utc
from llmops.store.tables import CALLS

_BATCH = 2000
OVERRIDES = ("custom:argument", "custom:mapping")  # prices given in code, per call or gateway


@dataclass
class RepriceReport:
    """What a recompute changed."""

    examined: int = 0
    changed: int = 0
    unpriced: int = 0  # calls now without a price (only with allow_unpriced)
    kept: int = 0  # calls that kept their old cost: the new prices do not cover them
    kept_models: Counter[str] = field(default_factory=Counter)
    approximate: int = 0
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
    allow_unpriced: bool = False,
    dry_run: bool = False,
) -> RepriceReport:
    """Price every call in ``[since, until)`` again with ``prices``; update what changed.

    Calls priced by a price given in code (``price=`` or ``Gateway(prices=...)``) keep
    their cost unless ``include_overrides``. A priced call that ``prices`` cannot price
    keeps its cost (counted in ``kept``) unless ``allow_unpriced``.
    """
    c = CALLS.c
    query = sa.select(
        c.id, c.model, c.provider, c.prompt_tokens, c.completion_tokens, c.cached_tokens,
        c.cache_write_tokens, c.reasoning_tokens, c.tokens_estimated, c.cost_usd,
        c.cost_status, c.price_source, c.usage_details, c.created_at, c.latency_ms,
    )  # fmt: skip
    # calls with usage: their counts, or one too large for its column (kept in the details)
    reported = c.usage_details["out_of_range"].as_string()
    query = query.where(
        c.created_at >= since, sa.or_(c.prompt_tokens.is_not(None), reported.is_not(None))
    )
    if until is not None:
        query = query.where(c.created_at < until)
    if model is not None:
        query = query.where(c.model == model)
    if not include_overrides:
        query = query.where(sa.or_(c.price_source.is_(None), c.price_source.not_in(OVERRIDES)))
    report = RepriceReport()
    updates: list[dict[str, Any]] = []
    with engine.connect() as connection:
        rows = connection.execute(query.order_by(c.created_at)).mappings().all()
    for row in rows:
        report.examined += 1
        details = dict(row["usage_details"] or {})
        usage = Usage.from_columns(row, details)
        served = Served.from_details(details)
        billed = details.get("billed_usd")  # what the provider reported: still the bill
        price = prices.price(
            row["model"], usage, provider=row["provider"], served=served, at=_ended(row),
            billed=billed if isinstance(billed, int | float) and not isinstance(billed, bool)
            else None,
        )  # fmt: skip
        new_details = _details(row["model"], details, price)
        if price.cost_usd is None and row["cost_usd"] is not None and not allow_unpriced:
            report.kept += 1
            report.kept_models[row["model"]] += 1
            price = Price(row["cost_usd"], row["cost_status"], row["price_source"])
            new_details = details
        report.old_total_usd += row["cost_usd"] or 0.0
        report.new_total_usd += price.cost_usd or 0.0
        report.unpriced += price.cost_usd is None and row["cost_usd"] is not None
        report.approximate += price.status == "approximate"
        if (price.cost_usd, price.status, price.source, new_details or None) != (
            row["cost_usd"],
            row["cost_status"],
            row["price_source"],
            row["usage_details"] or None,
        ):
            report.changed += 1
            updates.append(
                {
                    "call_id": row["id"],
                    "new_cost": price.cost_usd,
                    "new_status": price.status,
                    "new_source": price.source,
                    "new_details": new_details or None,
                }
            )
    if updates and not dry_run:
        with engine.begin() as connection:
            for start in range(0, len(updates), _BATCH):
                _update_costs(connection, updates[start : start + _BATCH])
            # a legitimate change of stored rows: logged for `llmops audit verify`
            record_event(
                connection,
                "recompute",
                len(updates),
                {
                    "since": since.isoformat(),
                    "until": until.isoformat() if until else None,
                    "model": model,
                    "include_overrides": include_overrides,
                    "allow_unpriced": allow_unpriced,
                    "old_total_usd": amount(report.old_total_usd),
                    "new_total_usd": amount(report.new_total_usd),
                },
            )
    return report


def _details(model: str, old: dict[str, Any], price: Price) -> dict[str, Any]:
    """The usage details with the new price's entry and approximations."""
    details = {k: v for k, v in old.items() if k not in ("priced_as", "approximations")}
    return {**details, **price_details(model, price)}


def _update_costs(connection: sa.Connection, updates: list[dict[str, Any]]) -> None:
    """Store new costs. On PostgreSQL one UPDATE ... FROM (VALUES ...) per batch, so the
    rollup triggers (per statement there) run once per batch, not once per call."""
    c = CALLS.c
    if connection.dialect.name == "postgresql":
        import json

        from sqlalchemy.dialects.postgresql import JSONB

        new = sa.values(
            sa.column("call_id", sa.String),
            sa.column("new_cost", sa.Float),
            sa.column("new_status", sa.String),
            sa.column("new_source", sa.String),
            sa.column("new_details", sa.String),
            name="new",
        ).data(
            [
                (
                    u["call_id"],
                    u["new_cost"],
                    u["new_status"],
                    u["new_source"],
                    json.dumps(u["new_details"]) if u["new_details"] is not None else None,
                )
                for u in updates
            ]
        )
        statement = (
            CALLS.update()
            .where(c.id == new.c.call_id)
            .values(  # typed: a column of NULLs in VALUES would be text
                cost_usd=sa.cast(new.c.new_cost, sa.Float),
                cost_status=sa.cast(new.c.new_status, sa.String),
                price_source=sa.cast(new.c.new_source, sa.String),
                usage_details=sa.cast(new.c.new_details, JSONB),
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
            usage_details=sa.bindparam("new_details", type_=CALLS.c.usage_details.type),
        )
    )
    connection.execute(statement, updates)


def _ended(row: Any) -> datetime:
    """When a stored call ended (its start and latency), as the gateway priced it."""
    latency = row["latency_ms"]
    started = utc(row["created_at"])
    if isinstance(latency, int | float) and 0 <= latency < 86_400_000:
        return started + timedelta(milliseconds=latency)
    return started
