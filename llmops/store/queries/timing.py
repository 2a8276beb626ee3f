"""Latency and time-to-first-token percentiles: exact from the calls, or, over ranges of
whole UTC days, merged from the daily histograms of migration 0010.

The approximation: a value in histogram bucket ``b`` (``[1.02**b, 1.02**(b+1))`` ms, i.e.
``b = floor(ln(ms) / ln(1.02))``) stands for the bucket's geometric midpoint
``1.02**(b + 0.5)``, at most ``sqrt(1.02) - 1 = 0.995%`` away from it. Moving every value by
at most that factor moves every order statistic, and every linear interpolation between two
of them, by at most the same factor: each percentile read from the merged buckets is within
**1% (relative)** of the exact one, for values from 0.001 ms to 1e9 ms. Values below 0.001 ms
(zero, negatives) count as 0; above 1e9 ms, as 1e9 ms; NaN (PostgreSQL) is left out, as NULL.
The exact readings leave out NaN and infinities (:func:`measured`), which the Writer stores
as NULL: only SQL writes them, and an infinite latency counts as 1e9 ms in the histograms.

:func:`timing_percentiles` reads the histogram rows of the whole days of a range (one
histogram of every call of a day; under a filter on models, prompts, versions, sources or
statuses, the histograms per group of migration 0013; under a filter on users, with prompts
and versions or not, the users' histograms of their busy days, migration 0021, and the
calls of their other days) and the calls themselves for the partial days at its ends (exact
values), sums the counts per value in SQL and walks the cumulative counts there, with a
window. A range without a whole day is therefore exact, and so is a range filtered on users
and on a model, status or source (no histogram has those with users): then
:func:`percentiles` reads every call of the range, as before migration 0010.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from llmops.store.queries.filters import Filters
from llmops.store.queries.rollups import (
    _not_busy,
    _rollup_where,
    _uses_rollups,
    user_days,
)
from llmops.store.tables import (
    CALLS,
    TIMING_BUCKETS,
    TIMING_DAYS,
    TIMING_GROUP_DAYS,
    USER_TIMING_DAYS,
)

_c = CALLS.c

GAMMA = 1.02
"""Ratio between the bounds of consecutive histogram buckets."""
RELATIVE_ERROR = math.sqrt(GAMMA) - 1
"""Most a percentile merged from the histograms is off, relative to the exact one: 0.995%."""
LOWEST_MS = GAMMA**-349
"""The lowest bucket's lower bound (0.000997 ms); below it, values count as 0."""
HIGHEST_MS = GAMMA**1046
"""The highest bucket's lower bound (1.0e9 ms); above it, values count in that bucket."""

SORT_MEMORY = "32MB"
"""PostgreSQL's work_mem for merging the histograms with the partial days' values."""

METRICS: dict[str, sa.Column[Any]] = {"latency": _c.latency_ms, "ttft": _c.ttft_ms}
"""The histograms' metric names and the columns of llm_calls they count."""


def measured(column: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    """Whether ``column`` holds a number: not NULL, NaN (PostgreSQL sorts it above every
    number) or infinite. The Writer stores those as NULL; a value written by SQL would make
    an interpolated percentile ``nan`` (``inf - inf``)."""
    return column.between(-sys.float_info.max, sys.float_info.max)


def measured_value(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """``column`` where it is :func:`measured`, else NULL (which percentiles leave out)."""
    return sa.case((measured(column), column))


def timing_percentiles(
    connection: sa.Connection,
    filters: Filters,
    quantiles: Sequence[float],
    metrics: Sequence[str] = ("latency", "ttft"),
) -> list[list[float | None]]:
    """Percentiles (``quantiles`` in [0, 1], linear interpolation like numpy's default) of
    each of ``metrics`` (``latency``, ``ttft``) over the calls ``filters`` selects, NULLs left
    out: merged from the daily histograms for the whole UTC days of the range, within
    :data:`RELATIVE_ERROR` of the exact figure, and exact from the calls for the partial days
    at its ends; exact from the calls altogether when the histograms cannot answer (users
    and a model, status or source). A filter on models, prompts, versions, sources or
    statuses reads the histograms per group; one on users (with prompts and versions or
    not), the users' histograms of their busy days and the calls of their other days. One
    row of figures per metric, in order; None where no call has a value."""
    table = TIMING_GROUP_DAYS if _filtered(filters) else TIMING_DAYS
    if filters.users:
        table = USER_TIMING_DAYS
    if not _uses_rollups(filters, table):  # the histograms cannot answer
        columns = [METRICS[m] for m in metrics]
        return percentiles(connection, columns, filters.where(), quantiles)
    rows, exact = _timing_rows(connection, filters, metrics, table)
    merged = (
        sa.select(rows.c.metric, rows.c.value, sa.func.sum(rows.c.n).label("n"))
        .group_by(rows.c.metric, rows.c.value)
        .subquery("merged")
    )
    cumulative = sa.select(
        merged.c.metric,
        merged.c.value,
        sa.func.sum(merged.c.n)
        .over(partition_by=merged.c.metric, order_by=merged.c.value, rows=(None, 0))
        .label("upto"),
        sa.func.sum(merged.c.n).over(partition_by=merged.c.metric).label("total"),
    ).subquery("cumulative")
    upto, total, value = cumulative.c.upto, cumulative.c.total, cumulative.c.value
    walked: list[sa.ColumnElement[Any]] = []
    for q in quantiles:
        # 0-based rank h = q * (total - 1); the values at ranks floor(h) and ceil(h) are the
        # first whose cumulative count passes h, and h + 1 or more
        rank = sa.cast(sa.literal(float(q), sa.Float), sa.Float) * (total - 1)
        walked.append(sa.func.min(sa.case((upto > rank, value))))
        walked.append(sa.func.min(sa.case((upto >= rank + 1, value))))
    query = sa.select(cumulative.c.metric, sa.func.max(total), *walked).group_by(
        cumulative.c.metric
    )
    if connection.dialect.name == "postgresql" and exact:
        # the exact values of the partial days are tens of thousands of rows to sort:
        # in memory (the default 4 MB spilled them to disk), for this transaction only
        connection.execute(sa.text(f"SET LOCAL work_mem = '{SORT_MEMORY}'"))
    found = {row[0]: row[1:] for row in connection.execute(query)}
    result: list[list[float | None]] = []
    for metric in metrics:
        if metric not in found:
            result.append([None] * len(quantiles))
            continue
        n, *values = found[metric]
        figures: list[float | None] = []
        for i, q in enumerate(quantiles):
            low, high = float(values[2 * i]), float(values[2 * i + 1])
            h = float(q) * (int(n) - 1)
            figures.append(low + (high - low) * (h - math.floor(h)))
        result.append(figures)
    return result


def _timing_rows(
    connection: sa.Connection, filters: Filters, metrics: Sequence[str], table: sa.Table
) -> tuple[sa.Subquery, bool]:
    """(metric, value, n): rows of histogram ``table`` for the whole days of the range (the
    bucket's value, its count), one row per call for the partial days (the exact value, 1);
    under a filter on users, the users' histograms of their busy days and the calls of their
    other days. Also whether any calls are read."""
    parts: list[sa.Select[Any]] = []
    exact = filters.edges()
    rest: Filters | None = None
    days = filters.whole_days()
    if days is not None:
        if table is USER_TIMING_DAYS:
            split = user_days(connection, filters, days, table)
            where, exact, rest = split.rolled_up, exact + split.spans, split.rest
        else:
            where = _rollup_where(table, filters, days)
        if where:
            parts.append(
                sa.select(
                    table.c.metric.label("metric"),
                    TIMING_BUCKETS.c.value.label("value"),
                    table.c.calls.label("n"),
                )
                .join_from(table, TIMING_BUCKETS, TIMING_BUCKETS.c.bucket == table.c.bucket)
                .where(*where, table.c.metric.in_(list(metrics)))
            )
    reads: list[tuple[Filters, list[sa.ColumnElement[bool]]]] = [(part, []) for part in exact]
    if rest is not None:
        reads.append((rest, [_not_busy(connection.engine)]))
    for part, more in reads:
        for metric in metrics:
            column = METRICS[metric]
            counted = [measured(column), *more]
            parts.append(
                sa.select(
                    sa.literal(metric, sa.String).label("metric"),
                    column.label("value"),
                    sa.literal(1, sa.Integer).label("n"),
                ).where(*part.where(), *counted)
            )
    subquery = parts[0] if len(parts) == 1 else sa.union_all(*parts)
    return subquery.subquery("timing"), bool(reads)


def _filtered(filters: Filters) -> bool:
    """Whether a filter on a group key is set: then the histograms per group answer."""
    return any(
        (filters.models, filters.prompts, filters.versions, filters.statuses, filters.sources)
    )


def percentiles(
    connection: sa.Connection,
    columns: Sequence[sa.ColumnElement[Any]],
    where: Sequence[sa.ColumnElement[bool]],
    quantiles: Sequence[float],
) -> list[list[float | None]]:
    """Exact percentiles (linear interpolation, like numpy's default) of each column, NULLs,
    NaN and infinities left out (:func:`measured`), from one pass over the rows."""
    columns = [measured_value(c) for c in columns]
    if connection.dialect.name == "postgresql":
        query = sa.select(
            *(sa.func.percentile_cont(q).within_group(c) for c in columns for q in quantiles)
        ).where(*where)
        row = [float(v) if v is not None else None for v in connection.execute(query).one()]
        return [row[i : i + len(quantiles)] for i in range(0, len(row), len(quantiles))]
    # SQLite has no percentile function: read the values and interpolate here; ranking
    # them with a window over a sort is three times slower.
    rows = _driver_rows(connection, sa.select(*columns).where(*where))
    result = []
    for i in range(len(columns)):
        values = sorted(row[i] for row in rows if row[i] is not None)
        result.append([_interpolate(values, q) for q in quantiles])
    return result


def _driver_rows(connection: sa.Connection, query: sa.Select[Any]) -> list[tuple[Any, ...]]:
    """The rows of a query on llm_calls as plain tuples from the driver: SQLAlchemy's row
    objects double the time of reading the 400,000 values of a month of calls. The bound
    values go through their column types, as SQLAlchemy would send them."""
    dialect = connection.dialect
    compiled = query.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.construct_params()
    to_db = _c.created_at.type.dialect_impl(dialect).bind_processor(dialect)
    values = [params[name] for name in compiled.positiontup or ()]
    if to_db is not None:
        values = [to_db(v) if isinstance(v, datetime) else v for v in values]
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        rows: list[tuple[Any, ...]] = cursor.execute(compiled.string, values).fetchall()
        return rows
    finally:
        cursor.close()


def _interpolate(ordered: list[float], quantile: float) -> float | None:
    if not ordered:
        return None
    exact = quantile * (len(ordered) - 1)
    low, high = math.floor(exact), math.ceil(exact)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (exact - low))
