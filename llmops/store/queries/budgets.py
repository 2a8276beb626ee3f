"""Budgets: spend so far in each budget's window, from the same ledger as every other figure
(the daily rollups, exact to the last stored call), with the share of the limit used and the
spend projected to the end of the window."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from llmops.config import EACH, Budget, Window
from llmops.store.queries.filters import Filters, midnight
from llmops.store.queries.rollups import _call_rows, _none, _spend_sums
from llmops.store.queries.spend import _spend_rows

MIN_PROJECTION_ELAPSED = timedelta(hours=1)  # earlier in a window a projection is noise
_COLUMN = {"prompt": "prompt_name", "user": "user_id", "key": "api_key"}


def window_span(window: Window, now: datetime) -> tuple[datetime, datetime]:
    """The calendar window (UTC) that holds ``now``: a day, an ISO week (Monday first), a
    month."""
    now = now.astimezone(UTC)
    day = midnight(now.date())
    if window == "day":
        return day, day + timedelta(days=1)
    if window == "week":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    start = day.replace(day=1)
    return start, (start + timedelta(days=32)).replace(day=1)


@dataclass(frozen=True)
class BudgetStatus:
    """One budget (or, for an ``each`` scope, one user/tag/... of it) in its current window."""

    budget: Budget
    key: str | None  # the user, tag, ... of an ``each`` scope; None otherwise
    window_start: datetime
    window_end: datetime
    spent_usd: float
    calls: int
    unpriced_calls: int  # calls without a price: their cost is not in spent_usd
    projected_usd: float | None  # at the current rate to the window's end; None in its 1st hour

    @property
    def limit_usd(self) -> float:
        return self.budget.limit_usd

    @property
    def used(self) -> float:
        """The share of the limit spent (1.0 = all of it)."""
        return self.spent_usd / self.budget.limit_usd

    @property
    def percent(self) -> float:
        return 100.0 * self.used

    @property
    def crossed(self) -> float | None:
        """The highest threshold (percent) the spend has reached, if any."""
        # float noise aside: $0.99 of $1.10 is 90%, though 100 * 0.99 / 1.1 is 89.99...
        reached = [t for t in self.budget.thresholds if self.percent >= t - 1e-9]
        return reached[-1] if reached else None

    @property
    def exhausted(self) -> bool:
        return self.spent_usd >= self.budget.limit_usd

    @property
    def state(self) -> str:
        """``over`` (the limit is reached), ``80% reached`` (the highest threshold), or ``ok``."""
        if self.exhausted:
            return "over"
        return "ok" if self.crossed is None else f"{self.crossed:g}% reached"


def budget_status(
    engine: Engine, budgets: Sequence[Budget], now: datetime | None = None, top: int = 20
) -> list[BudgetStatus]:
    """Every budget in its current window, in the order given; an ``each`` budget gives one
    row per key with spend in the window, the ``top`` highest first."""
    now = now or datetime.now(UTC)
    found: list[BudgetStatus] = []
    for budget in budgets:
        start, end = window_span(budget.window, now)
        for key, cost, calls, unpriced in _window_spend(engine, budget, start, end, top):
            elapsed = now - start
            projected = None
            if elapsed >= MIN_PROJECTION_ELAPSED:
                projected = cost * ((end - start) / elapsed)
            found.append(BudgetStatus(budget, key, start, end, cost, calls, unpriced, projected))
    return found


def _window_spend(
    engine: Engine, budget: Budget, start: datetime, end: datetime, top: int
) -> list[tuple[str | None, float, int, int]]:
    """``(key, cost, calls, unpriced calls)`` in [start, end) for the budget's scope."""
    with engine.connect() as connection:
        if budget.scope_value != EACH:
            return [(None, *_figures(connection, budget, None, start, end))]
        rows, figures = _scope_rows(engine, budget, start, end)
        key = _none(rows.c[_COLUMN.get(budget.scope_key or "", budget.scope_key or "")])
        query = (
            sa.select(key, *figures)
            .where(key.is_not(None))
            .group_by(key)
            .order_by(figures[0].desc(), key)
            .limit(top)
        )
        return [
            (str(k), float(cost), int(calls), int(unpriced))
            for k, cost, calls, unpriced in connection.execute(query)
        ]


def window_spend(
    engine: Engine, budget: Budget, key: str | None, start: datetime, end: datetime
) -> sa.ScalarSelect[Any]:
    """What the calls in ``budget``'s scope cost in [start, end) (for an ``each`` budget, the
    calls of one ``key``), as a scalar subquery: the ledger that blocking budgets grant
    leases against (:mod:`llmops.store.leases` reads it in the same statement as the
    leases, so that both come from one snapshot)."""
    return _figures_query(engine, budget, key, start, end, cost_only=True).scalar_subquery()


def _figures(
    connection: Connection, budget: Budget, key: str | None, start: datetime, end: datetime
) -> tuple[float, int, int]:
    """``(cost, calls, unpriced calls)`` of one value of the budget's scope in [start, end)."""
    query = _figures_query(connection.engine, budget, key, start, end)
    cost, calls, unpriced = connection.execute(query).one()
    return float(cost), int(calls), int(unpriced)


def _figures_query(
    engine: Engine,
    budget: Budget,
    key: str | None,
    start: datetime,
    end: datetime,
    *,
    cost_only: bool = False,
) -> sa.Select[Any]:
    rows, figures = _scope_rows(engine, budget, start, end)
    query = sa.select(*(figures[:1] if cost_only else figures))
    scope = budget.scope_key
    if scope is not None:
        value = key if budget.scope_value == EACH else budget.scope_value
        query = query.where(_none(rows.c[_COLUMN.get(scope, scope)]) == value)
    return query


def _scope_rows(
    engine: Engine, budget: Budget, start: datetime, end: datetime
) -> tuple[sa.Subquery, list[Any]]:
    """The rows to sum for the budget's scope in [start, end), and the sums."""
    filters = Filters(start=start, end=end)
    scope = budget.scope_key
    # the rollup of the scope (a virtual key's: migration 0015), which keeps pruned days
    rows = _call_rows(engine, filters) if scope is None else _spend_rows(engine, filters, scope)
    return rows, _spend_sums(rows)
