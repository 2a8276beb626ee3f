"""The daily rollups in live code: one call's key and figures, as the triggers of migration
0005 sum them (the migration keeps its own frozen copy), and the rows a sum reads: rollup rows
for the whole UTC days of a range, the calls themselves for the partial days at its ends."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from llmops.store.queries.filters import Filters, _day
from llmops.store.tables import (
    CALL_DAYS,
    CALLS,
    FEEDBACK,
    FEEDBACK_DAYS,
)

_c = CALLS.c


FEEDBACK_SKEW = timedelta(days=1)  # how much older than its call feedback may be stamped
READ_ROLLUPS = True  # False: every figure from the raw rows (tests and benchmarks compare)


def _uses_rollups(filters: Filters, rollup: sa.Table) -> bool:
    """Whether ``rollup`` can answer for the filtered calls: only the user rollup has users."""
    return READ_ROLLUPS and (not filters.users or "user_id" in rollup.c)


# A filtered sum over at most this many whole days names each day: "day IN (...)" lets the
# database seek to (day, model, prompt, ...) in a rollup's primary key for each day, where a
# range of days reads every row of the range to find the filtered ones (PostgreSQL 15 and
# SQLite do not skip along an index).
SEEK_DAYS = 400


def _rollup_where(table: sa.Table, filters: Filters, days: tuple[date, date]) -> list[Any]:
    count = (days[1] - days[0]).days
    conditions: list[Any] = [table.c.day >= days[0], table.c.day < days[1]]
    if filters.equalities() and count <= SEEK_DAYS:
        conditions = [table.c.day.in_([days[0] + timedelta(days=i) for i in range(count)])]
    for column, values in (
        ("model", filters.models),
        ("prompt_name", filters.prompts),
        ("prompt_version", filters.versions),
        ("user_id", filters.users),
        ("status", filters.statuses),
        ("source", filters.sources),
    ):
        if values:
            conditions.append(table.c[column].in_(values))
    return conditions


def _call_key(engine: Engine) -> list[sa.ColumnElement[Any]]:
    """A call's rollup key ('' for NULL), as llm_calls_daily stores it."""
    return [
        _day(engine).label("day"),
        _c.model.label("model"),
        sa.func.coalesce(_c.prompt_name, "").label("prompt_name"),
        sa.func.coalesce(_c.prompt_version, "").label("prompt_version"),
        sa.func.coalesce(_c.git_commit, "").label("git_commit"),
        _c.source.label("source"),
        _c.status.label("status"),
    ]


def _one_if(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    return sa.case((condition, 1), else_=0)


def _call_rows(engine: Engine, filters: Filters) -> sa.Subquery:
    """Rows shaped like llm_calls_daily covering exactly the filtered calls: rollup rows for
    the whole days, one row per call for the partial days (or for everything, when the
    rollups cannot answer). Sum its columns, never count its rows."""
    raw = [
        *_call_key(engine),
        *_spend_figures(),
        _one_if(_c.cost_usd.is_not(None)).label("priced_calls"),
        _one_if(_c.tokens_estimated).label("estimated_calls"),
        sa.func.coalesce(_c.latency_ms, 0.0).label("latency_ms_sum"),
        _one_if(_c.latency_ms.is_not(None)).label("latency_calls"),
        _c.created_at.label("first_at"),
        _c.created_at.label("last_at"),
    ]
    return _rows(filters, raw, CALLS, CALL_DAYS, [CALL_DAYS.c[c.name] for c in raw])


def _rows(
    filters: Filters,
    raw: list[sa.ColumnElement[Any]],
    from_clause: Any,
    rollup: sa.Table,
    rolled_up: list[sa.ColumnElement[Any]],
    also: Callable[[Filters], list[sa.ColumnElement[bool]]] = lambda _: [],
) -> sa.Subquery:
    """``raw`` (columns over ``from_clause``, one row per call, with the conditions ``also``
    gives for a range) for the partial days at the ends of the range, and ``rolled_up`` (the
    same columns from ``rollup``) for its whole days; ``raw`` for the whole range when the
    rollup cannot answer."""

    def calls(part: Filters) -> sa.Select[Any]:
        return sa.select(*raw).select_from(from_clause).where(*part.where(), *also(part))

    if not _uses_rollups(filters, rollup):
        return calls(filters).subquery("rows")
    parts = [calls(e) for e in filters.edges()]
    days = filters.whole_days()
    if days is not None:
        parts.insert(0, sa.select(*rolled_up).where(*_rollup_where(rollup, filters, days)))
    return (parts[0] if len(parts) == 1 else sa.union_all(*parts)).subquery("rows")


def _spend_figures() -> list[sa.ColumnElement[Any]]:
    """One call's figures, as the rollups sum them."""
    return [
        sa.literal(1).label("calls"),
        sa.func.coalesce(_c.prompt_tokens, 0).label("prompt_tokens"),
        sa.func.coalesce(_c.completion_tokens, 0).label("completion_tokens"),
        sa.func.coalesce(_c.cost_usd, 0.0).label("cost_usd"),
        _one_if(_c.cost_status == "unpriced").label("unpriced_calls"),
    ]


def _summed(column: sa.ColumnElement[Any]) -> sa.ColumnElement[int]:
    """The sum of a count column as an integer, 0 over no rows (PostgreSQL sums bigints as
    numeric, which the driver decodes as Decimal)."""
    return sa.cast(sa.func.coalesce(sa.func.sum(column), 0), sa.BigInteger)


def _spend_sums(rows: sa.Subquery) -> list[sa.ColumnElement[Any]]:
    """The known cost, the calls and the unpriced calls summed over spend rows (those of
    :func:`_call_rows` and its kin), 0 when there are none."""
    return [
        sa.func.coalesce(sa.func.sum(rows.c.cost_usd), 0.0),
        _summed(rows.c.calls),
        _summed(rows.c.unpriced_calls),
    ]


def _feedback_rows(engine: Engine, filters: Filters) -> sa.Subquery:
    """Rows shaped like feedback_daily covering the feedback of exactly the filtered calls."""
    f = FEEDBACK.c
    key = [column for column in _call_key(engine) if column.name != "git_commit"]
    raw = [*key, f.name.label("name"), f.score.label("score"), sa.literal(1).label("n")]
    rollup = FEEDBACK_DAYS.c
    rolled_up = [rollup[c.name] for c in raw[:-1]] + [rollup.feedback_count.label("n")]
    joined = FEEDBACK.join(CALLS, f.call_id == _c.id)

    def given_since(part: Filters) -> list[sa.ColumnElement[bool]]:
        # feedback is given after its call (a day's clock skew allowed): a bound on the
        # feedback's own time lets PostgreSQL read the feedback of those days by index
        # instead of every feedback row
        return [f.created_at >= part.start - FEEDBACK_SKEW]

    return _rows(filters, raw, joined, FEEDBACK_DAYS, rolled_up, given_since)


def _none(column: sa.ColumnElement[str]) -> sa.ColumnElement[str | None]:
    """'' (the rollups' NULL) back to NULL."""
    return sa.func.nullif(column, "")


@dataclass(frozen=True)
class FeedbackScore:
    """One feedback name's scores: each name has its own scale (thumbs 0/1, stars 1-5, ...),
    so they are never averaged together."""

    name: str
    count: int
    average: float


def _feedback_by_name(scores: sa.Subquery, *keys: sa.ColumnElement[Any]) -> sa.Select[Any]:
    """(keys..., name, count, sum of scores) per feedback name of ``scores``."""
    return (
        sa.select(
            *keys, scores.c.name, sa.func.sum(scores.c.n), sa.func.sum(scores.c.score * scores.c.n)
        )
        .group_by(*keys, scores.c.name)
        .order_by(*keys, sa.func.sum(scores.c.n).desc(), scores.c.name)
    )


def _score(name: str, count: Any, total: Any) -> FeedbackScore:
    return FeedbackScore(str(name), int(count), float(total) / int(count))
