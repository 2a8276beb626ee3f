"""The daily rollups in live code: one call's key and figures, as the triggers of migration
0005 sum them (the migration keeps its own frozen copy), and the rows a sum reads: rollup rows
for the whole UTC days of a range, the calls themselves for the partial days at its ends."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from llmops.store.queries.filters import Filters, _as_date, _day, midnight
from llmops.store.tables import (
    BUSY_USER_DAYS,
    CALL_DAYS,
    CALLS,
    FEEDBACK,
    FEEDBACK_DAYS,
    KEY_DAYS,
    TAG_DAYS,
    USER_CALL_DAYS,
    USER_FEEDBACK_DAYS,
    USER_TAG_DAYS,
)

_c = CALLS.c


FEEDBACK_SKEW = timedelta(days=1)  # how much older than its call feedback may be stamped
READ_ROLLUPS = True  # False: every figure from the raw rows (tests and benchmarks compare)


def _uses_rollups(filters: Filters, rollup: sa.Table) -> bool:
    """Whether ``rollup`` can answer for the filtered calls: it has every filtered column,
    or, for a filter on users, its table of the busy user-days has (migration 0021)."""
    if filters.users and "user_id" not in rollup.c:
        rollup = USER_TWINS.get(rollup, rollup)
    return READ_ROLLUPS and all(column in rollup.c for column, _ in _filtered(filters))


USER_TWINS = {
    CALL_DAYS: USER_CALL_DAYS,
    KEY_DAYS: USER_CALL_DAYS,
    TAG_DAYS: USER_TAG_DAYS,
    FEEDBACK_DAYS: USER_FEEDBACK_DAYS,
}
"""Rollup -> the table keeping the same per busy user-day: a filter on users sums it for the
users' busy days and reads the calls of their other days."""

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
    return conditions + _key_where(table, filters)


def _key_where(table: sa.Table, filters: Filters, users: bool = True) -> list[Any]:
    """The equality filters on ``table``'s key columns (but users unless ``users``)."""
    return [
        table.c[column].in_(values)
        for column, values in _filtered(filters)
        if users or column != "user_id"
    ]


def _filtered(filters: Filters) -> list[tuple[str, tuple[str, ...]]]:
    """The filtered key columns and their values."""
    return [
        (column, values)
        for column, values in (
            ("model", filters.models),
            ("prompt_name", filters.prompts),
            ("prompt_version", filters.versions),
            ("user_id", filters.users),
            ("status", filters.statuses),
            ("source", filters.sources),
        )
        if values
    ]


BusyDays = dict[str, list[date]]
"""User -> the busy days (migration 0021) of a range: their rows are rolled up by user."""


def busy_days(connection: sa.Connection, users: Sequence[str], days: tuple[date, date]) -> BusyDays:
    """The busy days of ``users`` among the whole days ``days`` [first, last)."""
    b = BUSY_USER_DAYS.c
    query = sa.select(b.user_id, b.day).where(
        b.user_id.in_(list(users)), b.day >= days[0], b.day < days[1]
    )
    found: BusyDays = {}
    for user, day in connection.execute(query.order_by(b.user_id, b.day)):
        found.setdefault(user, []).append(_as_date(day))
    return found


def _busy_where(twin: sa.Table, filters: Filters, busy: BusyDays) -> list[Any]:
    """The rows of ``twin`` for the users' busy days (as read: a day marked since is read
    from the calls) under the other filters."""
    days = [sa.and_(twin.c.user_id == u, twin.c.day.in_(d)) for u, d in busy.items()]
    return [sa.or_(*days), *_key_where(twin, filters, users=False)]


def _quiet_spans(filters: Filters, days: tuple[date, date], busy: BusyDays) -> list[Filters]:
    """The runs of the whole days ``days`` that are not busy, per user, as filters on the
    calls (users with the same runs together)."""
    runs: dict[tuple[tuple[date, date], ...], list[str]] = {}
    for user in filters.users:
        taken, spans, start = set(busy.get(user, ())), [], None
        day = days[0]
        while day <= days[1]:
            if day < days[1] and day not in taken:
                start = start or day
            elif start is not None:
                spans.append((start, day))
                start = None
            day += timedelta(days=1)
        runs.setdefault(tuple(spans), []).append(user)
    return [
        replace(filters, start=midnight(first), end=midnight(last), users=tuple(users))
        for spans, users in runs.items()
        for first, last in spans
    ]


QUIET_RUNS = 30
"""At most this many runs of the users' days that are not busy are read run by run (by
time range, so the database reads those calls only); more (many users, or busy days
scattered over a long range) are read in one pass over the users' calls of the range that
leaves the busy days out."""


@dataclass(frozen=True)
class UserDays:
    """How the whole days of a range filtered on users are read: the rows of the users'
    busy days from their rollup (``rolled_up``: its conditions; none when no day is busy),
    the calls of the other days run by run (``spans``), or, with too many runs, in one pass
    (``rest``: the whole days, whose calls in busy days are to be left out)."""

    rolled_up: list[Any]
    spans: list[Filters]
    rest: Filters | None = None


def user_days(
    connection: sa.Connection, filters: Filters, days: tuple[date, date], rollup: sa.Table
) -> UserDays:
    """Split the whole ``days`` of a range filtered on users between ``rollup`` (a table of
    the busy user-days) and the calls. The busy days are read here first, so a day marked
    since is read from the calls, not twice; in one pass, the statement reads the markers
    as they are when it runs."""
    busy = busy_days(connection, filters.users, days)
    spans = _quiet_spans(filters, days, busy)
    if len(spans) <= QUIET_RUNS:
        return UserDays(_busy_where(rollup, filters, busy) if busy else [], spans)
    whole = replace(filters, start=midnight(days[0]), end=midnight(days[1]))
    return UserDays(_rollup_where(rollup, filters, days), [], whole)


def _not_busy(engine: Engine) -> sa.ColumnElement[bool]:
    """The call is not in a busy user-day."""
    b = BUSY_USER_DAYS.c
    return ~sa.exists().where(b.day == _day(engine), b.user_id == _c.user_id)


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


def _call_figures() -> list[sa.ColumnElement[Any]]:
    """One call's figures, as llm_calls_daily sums them (besides its first and last)."""
    return [
        *_spend_figures(),
        _one_if(_c.cost_usd.is_not(None)).label("priced_calls"),
        _one_if(_c.tokens_estimated).label("estimated_calls"),
        sa.func.coalesce(_c.latency_ms, 0.0).label("latency_ms_sum"),
        _one_if(_c.latency_ms.is_not(None)).label("latency_calls"),
    ]


def _call_rows(engine: Engine, filters: Filters) -> sa.Subquery:
    """Rows shaped like llm_calls_daily covering exactly the filtered calls: rollup rows for
    the whole days, one row per call for the partial days (or for everything, when the
    rollups cannot answer). Sum its columns, never count its rows."""
    raw = [
        *_call_key(engine),
        *_call_figures(),
        _c.created_at.label("first_at"),
        _c.created_at.label("last_at"),
    ]
    return _rows(engine, filters, raw, CALLS, CALL_DAYS, lambda t: [t.c[c.name] for c in raw])


@dataclass(frozen=True)
class RollupDisagreement:
    """A daily rollup row that the stored rows of its day do not sum to: an edit made around
    the triggers (its figures are what the dashboard, ``llmops spend`` and the audit report
    show for whole days)."""

    table: str  # llm_calls_daily or feedback_daily
    day: date
    group: tuple[str, ...]  # the rest of the row's key ('' for none)
    rolled_up: dict[str, float]  # its figures (zeros: no such row)
    stored: dict[str, float]  # what the stored rows give (zeros: none)


@dataclass(frozen=True)
class RollupCheck:
    days: int  # days with rollup rows or stored rows, compared
    disagreements: list[RollupDisagreement]


def rollup_disagreements(connection: sa.Connection, first: date, last: date) -> RollupCheck:
    """The rows of ``llm_calls_daily`` and ``feedback_daily`` for the UTC days ``first`` to
    ``last`` (both included) that the stored calls and feedback of those days do not sum to
    (counts exactly, sums of costs and latencies within float rounding), each group's
    figures side by side. A day whose calls a prune removed keeps its rollups: leave it
    out."""
    engine = connection.engine
    key = _call_key(engine)
    figures = _call_figures()
    in_days = [_c.created_at >= midnight(first)]
    if last < date.max:
        in_days.append(_c.created_at < midnight(last + timedelta(days=1)))
    calls = sa.select(*key, *(sa.func.sum(f).label(f.name) for f in figures)).where(*in_days)
    seen: set[date] = set()
    found = _disagreements(
        connection,
        CALL_DAYS,
        calls.group_by(*key),
        [c.name for c in key],
        [f.name for f in figures],
        (first, last),
        seen,
    )
    f = FEEDBACK.c
    feedback_key = [*(c for c in key if c.name != "git_commit"), f.name.label("name"),
                    f.score.label("score")]  # fmt: skip
    given = (
        sa.select(*feedback_key, sa.func.count().label("feedback_count"))
        .select_from(FEEDBACK.join(CALLS, f.call_id == _c.id))
        .where(*in_days)
        .group_by(*feedback_key)
    )
    names = [c.name for c in feedback_key]
    found += _disagreements(
        connection, FEEDBACK_DAYS, given, names, ["feedback_count"], (first, last), seen
    )
    return RollupCheck(len(seen), found)


def rollup_days(connection: sa.Connection, first: date, last: date) -> int:
    """How many of the UTC days ``first`` to ``last`` have rows in ``llm_calls_daily``."""
    days = CALL_DAYS.c.day
    query = sa.select(sa.func.count(sa.distinct(days))).where(days >= first, days <= last)
    return int(connection.execute(query).scalar_one())


def _disagreements(
    connection: sa.Connection,
    rollup: sa.Table,
    stored: sa.Select[Any],
    key: list[str],
    figures: list[str],
    days: tuple[date, date],
    seen: set[date],
) -> list[RollupDisagreement]:
    def read(query: sa.Select[Any]) -> dict[tuple[Any, ...], dict[str, float]]:
        out = {}
        for row in connection.execute(query).mappings():
            group = (_as_date(row["day"]), *(_key_text(row[name]) for name in key[1:]))
            out[group] = {name: float(row[name] or 0) for name in figures}
        return out

    in_days = [rollup.c.day >= days[0], rollup.c.day <= days[1]]
    rolled = read(sa.select(*(rollup.c[n] for n in key + figures)).where(*in_days))
    summed = read(stored)
    zeros = dict.fromkeys(figures, 0.0)
    seen.update(group[0] for group in rolled.keys() | summed.keys())
    found = []
    for group in sorted(rolled.keys() | summed.keys(), key=str):
        ours, theirs = rolled.get(group, zeros), summed.get(group, zeros)
        if not all(_same(ours[name], theirs[name]) for name in figures):
            found.append(RollupDisagreement(rollup.name, group[0], group[1:], ours, theirs))
    return found


def _key_text(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _same(a: float, b: float) -> bool:
    """Equal, but for the float rounding of a sum (the rollups add -old + new)."""
    return a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def _rows(
    engine: Engine,
    filters: Filters,
    raw: list[sa.ColumnElement[Any]],
    from_clause: Any,
    rollup: sa.Table,
    rolled_up: Callable[[sa.Table], list[sa.ColumnElement[Any]]],
    also: Callable[[Filters], list[sa.ColumnElement[bool]]] = lambda _: [],
) -> sa.Subquery:
    """``raw`` (columns over ``from_clause``, one row per call, with the conditions ``also``
    gives for a range) for the partial days at the ends of the range, and ``rolled_up`` (the
    same columns from ``rollup``, or from its :data:`USER_TWINS` table) for its whole days;
    ``raw`` for the whole range when the rollup cannot answer. Under a filter on users that
    ``rollup`` lacks, the users' busy days come from the twin, their other days from
    ``raw``."""

    def calls(part: Filters) -> sa.Select[Any]:
        return sa.select(*raw).select_from(from_clause).where(*part.where(), *also(part))

    if not _uses_rollups(filters, rollup):
        return calls(filters).subquery("rows")
    parts = [calls(e) for e in filters.edges()]
    days = filters.whole_days()
    if days is not None and filters.users and "user_id" not in rollup.c:
        twin = USER_TWINS[rollup]
        with engine.connect() as connection:
            split = user_days(connection, filters, days, twin)
        if split.rolled_up:
            parts.insert(0, sa.select(*rolled_up(twin)).where(*split.rolled_up))
        parts += [calls(span) for span in split.spans]
        if split.rest is not None:
            parts.append(calls(split.rest).where(_not_busy(engine)))
    elif days is not None:
        parts.insert(0, sa.select(*rolled_up(rollup)).where(*_rollup_where(rollup, filters, days)))
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

    def rolled_up(table: sa.Table) -> list[sa.ColumnElement[Any]]:
        return [table.c[c.name] for c in raw[:-1]] + [table.c.feedback_count.label("n")]

    joined = FEEDBACK.join(CALLS, f.call_id == _c.id)

    def given_since(part: Filters) -> list[sa.ColumnElement[bool]]:
        # feedback is given after its call (a day's clock skew allowed): a bound on the
        # feedback's own time lets PostgreSQL read the feedback of those days by index
        # instead of every feedback row
        return [f.created_at >= part.start - FEEDBACK_SKEW]

    return _rows(engine, filters, raw, joined, FEEDBACK_DAYS, rolled_up, given_since)


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
