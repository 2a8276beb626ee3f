"""What the Prometheus exporter reads: all-time call totals per model, prompt, version,
source and status, and latency percentiles per model over a recent window.

The totals sum the daily rollup ``llm_calls_daily`` (over every day, or a range of whole
days), today included: its triggers update it in the same transaction as every stored call,
so the sums are exact to the last stored call without reading a single call (a few rows per
day and group, however many calls). ``rollup_signature`` sums the rollup rows of past days
without grouping them, so a caller can tell cheaply whether their totals changed. The
percentiles read the newest calls of the window only, at most
``MAX_RECENT_CALLS`` of them, newest first through ``ix_llm_calls_created_at``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from llmops.store.queries.filters import Filters, midnight
from llmops.store.queries.rollups import _call_rows, _none
from llmops.store.queries.spend import OTHER
from llmops.store.queries.timing import _driver_rows, _interpolate, measured_value
from llmops.store.tables import CALLS

_c = CALLS.c

ALL_TIME = Filters(datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC))
"""Every stored call (but one stamped on 31 December 9999, whose next midnight Python cannot
make): whole days only, so a sum reads the rollups and no call."""
MAX_RECENT_CALLS = 100_000
"""The most calls the percentiles of a window read (the newest ones)."""


@dataclass(frozen=True)
class CallTotals:
    """All-time figures of one model, prompt, version, source and status."""

    model: str
    prompt: str | None
    version: str | None
    source: str
    status: str
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float  # the known costs; unpriced calls add nothing
    unpriced_calls: int
    latency_ms_sum: float  # over the calls with a latency
    latency_calls: int
    recent_cost_usd: float  # the part of cost_usd from the days since ``recent``
    recent_calls: int


def call_totals(
    engine: Engine, recent: date, *, since: date | None = None, before: date | None = None
) -> list[CallTotals]:
    """The stored calls summed per model, prompt, version, source and status (from the daily
    rollups), with the cost and calls of the days from ``recent`` on (UTC): every call, or
    those of the UTC days from ``since`` and before ``before``."""
    rows = _call_rows(engine, _days(since, before))
    key = [rows.c.model, rows.c.prompt_name, rows.c.prompt_version, rows.c.source, rows.c.status]
    is_recent = rows.c.day >= recent

    def total(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        return sa.func.sum(column)

    query = sa.select(
        rows.c.model,
        _none(rows.c.prompt_name),
        _none(rows.c.prompt_version),
        rows.c.source,
        rows.c.status,
        total(rows.c.calls),
        total(rows.c.prompt_tokens),
        total(rows.c.completion_tokens),
        total(rows.c.cost_usd),
        total(rows.c.unpriced_calls),
        total(rows.c.latency_ms_sum),
        total(rows.c.latency_calls),
        total(sa.case((is_recent, rows.c.cost_usd), else_=0.0)),
        total(sa.case((is_recent, rows.c.calls), else_=0)),
    ).group_by(*key)
    with engine.connect() as connection:
        return [
            CallTotals(
                model=str(model),
                prompt=prompt,
                version=version,
                source=str(source),
                status=str(status),
                calls=int(calls or 0),
                prompt_tokens=int(prompt_tokens or 0),
                completion_tokens=int(completion_tokens or 0),
                cost_usd=float(cost or 0.0),
                unpriced_calls=int(unpriced or 0),
                latency_ms_sum=float(latency_sum or 0.0),
                latency_calls=int(latency_calls or 0),
                recent_cost_usd=float(recent_cost or 0.0),
                recent_calls=int(recent_calls or 0),
            )
            for (model, prompt, version, source, status, calls, prompt_tokens,
                 completion_tokens, cost, unpriced, latency_sum, latency_calls, recent_cost,
                 recent_calls) in connection.execute(query)
        ]  # fmt: skip


@dataclass(frozen=True)
class RecentLatency:
    """Percentiles of the successful calls of one model (or of "(other)") in a window."""

    model: str
    latency_calls: int  # calls with a latency
    latency_ms: tuple[float | None, ...]  # one per quantile asked for
    ttft_calls: int  # calls with a time to first token (streams)
    ttft_ms: tuple[float | None, ...]


def recent_latency(
    engine: Engine,
    start: datetime,
    end: datetime,
    quantiles: Sequence[float],
    models: Collection[str],
    limit: int = MAX_RECENT_CALLS,
) -> list[RecentLatency]:
    """Exact percentiles (linear interpolation) of latency and time to first token of the
    calls with status ``ok`` that started in [start, end), per model of ``models``; the
    calls of other models together as "(other)". Reads the newest ``limit`` calls of the
    window at most. Models without such calls are left out."""
    recent = (
        sa.select(
            _c.model,
            measured_value(_c.latency_ms).label("latency_ms"),
            measured_value(_c.ttft_ms).label("ttft_ms"),
        )
        .where(_c.created_at >= start, _c.created_at < end, _c.status == "ok")
        .order_by(_c.created_at.desc())
        .limit(limit)
        .subquery("recent")
    )
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            found = _postgres_percentiles(connection, recent, quantiles, sorted(models))
        else:
            found = _sqlite_percentiles(connection, recent, quantiles, set(models))
    found = [r for r in found if r.latency_calls or r.ttft_calls]
    return sorted(found, key=lambda r: (r.model == OTHER, r.model))


def _postgres_percentiles(
    connection: sa.Connection, recent: sa.Subquery, quantiles: Sequence[float], models: list[str]
) -> list[RecentLatency]:
    key: sa.ColumnElement[str] = sa.literal(OTHER)
    if models:
        key = sa.case((recent.c.model.in_(models), recent.c.model), else_=OTHER)
    key = key.label("key")
    query = sa.select(
        key,
        sa.func.count(recent.c.latency_ms),
        *(sa.func.percentile_cont(q).within_group(recent.c.latency_ms) for q in quantiles),
        sa.func.count(recent.c.ttft_ms),
        *(sa.func.percentile_cont(q).within_group(recent.c.ttft_ms) for q in quantiles),
    ).group_by(key)
    n = len(quantiles)
    found = []
    for row in connection.execute(query):
        latency = tuple(None if v is None else float(v) for v in row[2 : 2 + n])
        ttft = tuple(None if v is None else float(v) for v in row[3 + n : 3 + 2 * n])
        found.append(RecentLatency(str(row[0]), int(row[1]), latency, int(row[2 + n]), ttft))
    return found


def _sqlite_percentiles(
    connection: sa.Connection, recent: sa.Subquery, quantiles: Sequence[float], models: set[str]
) -> list[RecentLatency]:
    """SQLite has no percentile function: read the values (the covering index has them)
    and interpolate here, as spend.percentiles does."""
    latency: dict[str, list[float]] = {}
    ttft: dict[str, list[float]] = {}
    for model, latency_ms, ttft_ms in _driver_rows(connection, sa.select(recent)):
        key = model if model in models else OTHER
        if latency_ms is not None:
            latency.setdefault(key, []).append(float(latency_ms))
        if ttft_ms is not None:
            ttft.setdefault(key, []).append(float(ttft_ms))
    found = []
    for key in latency.keys() | ttft.keys():
        values, firsts = sorted(latency.get(key, [])), sorted(ttft.get(key, []))
        found.append(
            RecentLatency(
                key,
                len(values),
                tuple(_interpolate(values, q) for q in quantiles),
                len(firsts),
                tuple(_interpolate(firsts, q) for q in quantiles),
            )
        )
    return found


def rollup_signature(engine: Engine, before: date) -> tuple[float, ...]:
    """Sums over the stored calls of the UTC days before ``before`` (their rollup rows):
    calls, tokens, cost, unpriced calls, latencies. A call of those days added, deleted or
    re-priced changes them, so that ``call_totals(before=...)`` need only be read again
    when they change: they cost a quarter of it (no grouping)."""
    rows = _call_rows(engine, _days(None, before))
    query = sa.select(
        sa.func.count(),
        *(
            sa.func.coalesce(sa.func.sum(rows.c[name]), 0)
            for name in ("calls", "prompt_tokens", "completion_tokens", "cost_usd",
                         "unpriced_calls", "latency_calls", "latency_ms_sum")
        ),
    )  # fmt: skip
    with engine.connect() as connection:
        return tuple(float(v) for v in connection.execute(query).one())


def _days(since: date | None, before: date | None) -> Filters:
    """Whole UTC days [since, before), or from/to the ends of ALL_TIME."""
    start = ALL_TIME.start if since is None else midnight(since)
    end = ALL_TIME.end if before is None else midnight(before)
    return Filters(start, end)
