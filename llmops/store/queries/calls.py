"""Single calls, feedback and the filter choices."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.sql.util import ClauseAdapter

from llmops.store.audit_log import utc
from llmops.store.queries.filters import Filters, _as_date
from llmops.store.queries.rollups import (
    _feedback_rows,
    _none,
)
from llmops.store.queries.spend import _spend_rows
from llmops.store.records import as_recorded, recorded_calls
from llmops.store.tables import (
    CALL_DAYS,
    CALLS,
    FEEDBACK,
)

_c = CALLS.c


CALL_LIST_COLUMNS = (
    "id", "created_at", "source", "model", "prompt_name", "prompt_version", "user_id",
    "status", "prompt_tokens", "completion_tokens", "cost_usd", "cost_status", "latency_ms",
    "api_key",
)  # fmt: skip


# The value each sort order puts first; migration 0017 indexes each per model.
SORT_KEYS: dict[str, sa.ColumnElement[Any]] = {
    "cost": _c.cost_usd,
    "latency": _c.latency_ms,
    # the very expression of the index: literal zeros, not bound parameters; bigint, as
    # two int4 counts may overflow int4
    "tokens": sa.cast(sa.func.coalesce(_c.prompt_tokens, sa.literal_column("0")), sa.BigInteger)
    + sa.cast(sa.func.coalesce(_c.completion_tokens, sa.literal_column("0")), sa.BigInteger),
}

# How a page of calls may be ordered: over every matching call, not within the page.
CALL_ORDERS: dict[str, tuple[sa.ColumnElement[Any], ...]] = {
    "newest": (_c.created_at.desc(),),
    "oldest": (_c.created_at.asc(),),
    **{order: (key.desc().nulls_last(), _c.created_at.desc()) for order, key in SORT_KEYS.items()},
}

# A page in a sort order is merged from each model's top calls of the range in that order
# (migration 0017 indexes each order per model: the cheapest model's dearest calls are at
# the top of its own part of the index, not deep under the dearer models' calls). With
# filters, each model's part is probed: its first calls of the range (PROBE_CALLS in all,
# at least PROBE_PAGES pages' worth each) are read and those that match kept. When they
# fill the page, the model's part is exact: every matching call not read ranks below them.
# When not (the filter picks calls from deep in the model's order: errors by cost), the
# matching calls of every such model are sorted instead, in one query through the filters'
# indexes. 10 million calls on PostgreSQL, 30 days, gpt-4o-mini and one prompt, by cost:
# 0.61 s -> 0.04 s (benchmarks/README.md, "Sort orders per model").
PROBE_CALLS = 10_000
PROBE_PAGES = 20


def calls_page(
    engine: Engine, filters: Filters, *, limit: int = 50, offset: int = 0, order: str = "newest"
) -> tuple[list[dict[str, Any]], int]:
    """One page of calls in ``order`` (one of :data:`CALL_ORDERS`: newest first by
    default; the dearest, slowest or largest first), and how many calls match in all."""
    if order not in CALL_ORDERS:
        raise ValueError(f"order {order!r}: expected one of {', '.join(CALL_ORDERS)}")
    # the count sums the daily rollups for the whole days (exact, as a count(*) of every
    # matching call would be, without reading them), which keep the calls a prune removed:
    # those are counted, and not listed
    counted = _spend_rows(engine, filters, "model")
    with engine.connect() as connection:
        total = connection.execute(
            sa.select(sa.func.coalesce(sa.func.sum(counted.c.calls), 0))
        ).scalar_one()
        if order not in SORT_KEYS:
            rows = _rows(connection, _page(filters, CALL_ORDERS[order], limit, offset))
        else:
            rows = _sorted(connection, filters, order, limit, offset, int(total))
    return rows, int(total)


def _page(
    filters: Filters, order_by: tuple[sa.ColumnElement[Any], ...], limit: int, offset: int
) -> sa.Select[Any]:
    columns = [CALLS.c[name] for name in CALL_LIST_COLUMNS]
    query = sa.select(*columns).where(*filters.where()).order_by(*order_by, _c.id)
    return query.limit(limit).offset(offset)


def _rows(connection: sa.Connection, query: sa.Select[Any]) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in connection.execute(query)]


def _sorted(
    connection: sa.Connection, filters: Filters, order: str, limit: int, offset: int, total: int
) -> list[dict[str, Any]]:
    """A page in a sort order: each model's top calls with a value to sort by
    (:func:`_model_top`), merged with a sort of the matching calls of the models whose probe
    did not fill the page; or a sort of all the matching calls when they are few, or when
    the page reaches the calls without a value (an unpriced model's, by cost: last in the
    order, and in a model's part of the index one tie as long as the model's calls)."""
    if total <= PROBE_CALLS:
        return _rows(connection, _matching(filters, order, limit, offset))
    models = _models_in_range(connection, filters)
    wanted = offset + limit
    probe = PROBE_PAGES * wanted
    tops, sorted_apart = [], []
    for model in models:
        top = _model_top(connection, filters, model, order, wanted, probe)
        if top is None:
            sorted_apart.append(model)
        else:
            tops.append(top)
    if sorted_apart:  # one sort for them all: as costly as for one
        apart = replace(filters, models=tuple(sorted_apart))
        tops.append(_part(_matching(apart, order, wanted, 0, SORT_KEYS[order].is_not(None))))
    rows: list[dict[str, Any]] = []
    if tops:
        merged = sa.union_all(*tops).subquery("merged")
        adapt = ClauseAdapter(merged).traverse
        page = (
            sa.select(*[merged.c[name] for name in CALL_LIST_COLUMNS])
            .order_by(*[adapt(key) for key in (*CALL_ORDERS[order], _c.id)])
            .limit(limit)
            .offset(offset)
        )
        rows = _rows(connection, page)
    if len(rows) == limit:
        return rows
    return _rows(connection, _matching(filters, order, limit, offset))


def _matching(
    filters: Filters, order: str, limit: int, offset: int, *where: sa.ColumnElement[bool]
) -> sa.Select[Any]:
    """The matching calls sorted, found through the filters' indexes: "+ 0" keeps the
    planner off the order's index, which it would read until enough calls match (for these
    filters perhaps most of it)."""
    unindexed = (SORT_KEYS[order] + 0).desc().nulls_last()
    return _page(filters, (unindexed, _c.created_at.desc()), limit, offset).where(*where)


def _model_top(
    connection: sa.Connection, filters: Filters, model: str, order: str, wanted: int, probe: int
) -> sa.Select[Any] | None:
    """A query of the ``wanted`` first matching calls of one model in ``order`` that have a
    value to sort by: the top of the model's part of the order's index, or of its first
    ``probe`` such calls of the range those that match, when they are enough (or are all
    of them). None when they are not: the model's matching calls are to be sorted."""
    columns = [CALLS.c[name] for name in CALL_LIST_COLUMNS]
    order_by = (*CALL_ORDERS[order], _c.id)
    valued = SORT_KEYS[order].is_not(None)
    top = sa.select(*columns).where(_c.model == model, valued, *_range(connection, filters))
    top = top.order_by(*order_by)
    others = replace(filters, models=()).equalities()
    if not others:
        return _part(top.limit(wanted))
    probed = top.limit(probe).subquery("probed")
    adapt = ClauseAdapter(probed).traverse
    matches = [adapt(condition) for condition in others]
    read, found = connection.execute(
        sa.select(sa.func.count(), sa.func.count().filter(sa.and_(*matches)))
    ).one()
    if found < wanted and read == probe:
        return None
    kept = sa.select(*[probed.c[name] for name in CALL_LIST_COLUMNS]).where(*matches)
    return _part(kept.order_by(*[adapt(key) for key in order_by]).limit(wanted))


def _part(query: sa.Select[Any]) -> sa.Select[Any]:
    """``query`` (ordered and limited) as a part of a UNION ALL: SQLite refuses ORDER BY
    and LIMIT in a compound's parts, but not in a subquery's."""
    part = query.subquery()
    return sa.select(*part.c)


def _models_in_range(connection: sa.Connection, filters: Filters) -> list[str]:
    """The models with calls on the days of the range (from the daily rollup), among the
    filter's models if any."""
    days = CALL_DAYS.c
    query = (
        sa.select(days.model)
        .distinct()
        .where(days.day >= utc(filters.start).date(), days.day <= utc(filters.end).date())
    )
    if filters.models:
        query = query.where(days.model.in_(filters.models))
    return sorted(connection.execute(query).scalars())


def _range(connection: sa.Connection, filters: Filters) -> tuple[sa.ColumnElement[bool], ...]:
    """The range, for reading a sort order's index. On SQLite as conditions no index serves
    ("+created_at"): SQLite guesses that any range holds 1/64 of the calls, and would read
    every call of the range through the index on created_at to sort them."""
    created_at: sa.ColumnElement[Any] = _c.created_at
    if connection.dialect.name == "sqlite":
        created_at = sa.type_coerce(sa.literal_column("+llm_calls.created_at"), _c.created_at.type)
    return created_at >= filters.start, created_at < filters.end


def stored_calls(connection: sa.Connection, *where: sa.ColumnElement[bool]) -> list[dict[str, Any]]:
    """The calls matching ``where``, oldest first, each as the writer got it: every column of
    ``llm_calls`` with its ``request`` (parameters included) and ``response_text``."""
    query = recorded_calls().where(*where).order_by(_c.created_at, _c.id)
    return [as_recorded(row) for row in connection.execute(query).mappings()]


def call_detail(engine: Engine, call_id: str) -> dict[str, Any] | None:
    """Everything stored about one call, with its feedback."""
    with engine.connect() as connection:
        found = stored_calls(connection, _c.id == call_id)
        if not found:
            return None
        detail = found[0]
        feedback = connection.execute(
            sa.select(FEEDBACK).where(FEEDBACK.c.call_id == call_id).order_by(FEEDBACK.c.created_at)
        )
        detail["feedback"] = [dict(f._mapping) for f in feedback]
    return detail


# -- feedback ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreCount:
    prompt_name: str
    prompt_version: str
    name: str
    score: float
    count: int


@dataclass(frozen=True)
class FeedbackDay:
    date: date
    prompt_name: str
    prompt_version: str
    name: str
    average: float
    count: int


def feedback_distribution(engine: Engine, filters: Filters) -> list[ScoreCount]:
    """How often each score was given, per prompt version and feedback name."""
    rows = _feedback_rows(engine, filters)
    group = (rows.c.prompt_name, _none(rows.c.prompt_version), rows.c.name, rows.c.score)
    query = (
        sa.select(*group, sa.func.sum(rows.c.n))
        .where(rows.c.prompt_name != "")
        .group_by(*group)
        .order_by(*group)
    )
    with engine.connect() as connection:
        return [
            ScoreCount(r[0], r[1], r[2], float(r[3]), int(r[4])) for r in connection.execute(query)
        ]


def feedback_trend(engine: Engine, filters: Filters) -> list[FeedbackDay]:
    """Average score per day, prompt version and feedback name (by the call's day)."""
    rows = _feedback_rows(engine, filters)
    group = (rows.c.day, rows.c.prompt_name, _none(rows.c.prompt_version), rows.c.name)
    query = (
        sa.select(*group, sa.func.sum(rows.c.score * rows.c.n), sa.func.sum(rows.c.n))
        .where(rows.c.prompt_name != "")
        .group_by(*group)
        .order_by(*group)
    )
    with engine.connect() as connection:
        return [
            FeedbackDay(_as_date(r[0]), r[1], r[2], r[3], float(r[4]) / int(r[5]), int(r[5]))
            for r in connection.execute(query)
        ]


def feedback_comments(engine: Engine, filters: Filters, limit: int = 100) -> list[dict[str, Any]]:
    """The newest comments, with the call's prompt version: the newest commented feedback
    rows whose call matches, so the database starts from the feedback, not the calls."""
    f = FEEDBACK.c
    newest = FEEDBACK.alias("newest")
    matching = sa.exists().where(
        _c.id == newest.c.call_id, *filters.where(), _c.prompt_name.is_not(None)
    )
    picked = (
        sa.select(newest.c.id)
        .where(newest.c.comment.is_not(None), matching)
        .order_by(newest.c.created_at.desc())
        .limit(limit)
    )
    query = (
        sa.select(
            f.created_at, _c.prompt_name, _c.prompt_version, f.name, f.score, f.comment,
            f.user_id, f.call_id,
        )
        .select_from(FEEDBACK.join(CALLS, f.call_id == _c.id))
        .where(f.id.in_(picked))
        .order_by(f.created_at.desc(), f.id)
    )  # fmt: skip
    with engine.connect() as connection:
        return [dict(r._mapping) for r in connection.execute(query)]


# -- filter choices ---------------------------------------------------------------------


def filter_options(engine: Engine, limit: int = 500) -> dict[str, list[str]]:
    """Distinct values for the dashboard's filters: one index seek per value, not a scan;
    the sources (two or three values, no index of their own since migration 0017) from
    the daily rollup."""
    days = CALL_DAYS.c
    sources = sa.select(days.source).where(days.source != "").distinct().order_by(days.source)
    queries = {
        "models": _loose_distinct(_c.model, limit),
        "prompts": _loose_distinct(_c.prompt_name, limit),
        "versions": _loose_distinct(_c.prompt_version, limit),
        "users": _loose_distinct(_c.user_id, limit),
        "sources": sources.limit(limit),
        "statuses": _loose_distinct(_c.status, limit),
    }
    with engine.connect() as connection:
        return {
            name: [str(v) for v in connection.execute(query).scalars()]
            for name, query in queries.items()
        }


def version_prompts(engine: Engine, limit: int = 2000) -> dict[str, str]:
    """Prompt version id -> the prompt's name (names joined by ", " when two prompts share
    an id), from the daily rollups: for showing versions as ``name@id``."""
    days = CALL_DAYS.c
    query = (
        sa.select(days.prompt_version, days.prompt_name)
        .where(days.prompt_version != "", days.prompt_name != "")
        .distinct()
        .order_by(days.prompt_version, days.prompt_name)
        .limit(limit)
    )
    names: dict[str, list[str]] = {}
    with engine.connect() as connection:
        for version, name in connection.execute(query):
            names.setdefault(str(version), []).append(str(name))
    return {version: ", ".join(found) for version, found in names.items()}


def _loose_distinct(column: sa.ColumnElement[Any], limit: int) -> sa.Select[Any]:
    """Distinct non-null values of an indexed column, in order, as a recursive query that
    seeks the next value each step (a loose index scan): on 1M rows 1.3 s -> 0.01 s."""

    def following(previous: Any = None) -> sa.ScalarSelect[Any]:
        query = sa.select(column).where(column.is_not(None)).order_by(column).limit(1)
        if previous is not None:
            query = query.where(column > previous)
        return query.scalar_subquery()

    seen = sa.select(following().label("v")).cte("seen", recursive=True)
    seen = seen.union_all(sa.select(following(seen.c.v)).where(seen.c.v.is_not(None)))
    return sa.select(seen.c.v).where(seen.c.v.is_not(None)).limit(limit)
