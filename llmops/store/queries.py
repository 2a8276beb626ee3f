"""Every figure the CLI and the dashboard show, aggregated in SQL. The one place that does
arithmetic on stored calls: callers format what these functions return.

All functions take an Engine and return small lists of dataclasses or dicts, never raw
tables. Dates are UTC. Queries are parameterized (SQLAlchemy Core); nothing user-supplied
is pasted into SQL.

Sums over a time range read the daily rollups (``llm_calls_daily``, ``feedback_daily``,
kept exact by triggers) for the whole UTC days of the range and the calls themselves only
for the partial days at its ends, so that 30 days of a million calls sum a few thousand
rows. A filter on users, a split by user or tag, and percentiles read the calls.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from llmops.store.tables import (
    CALL_DAYS,
    CALLS,
    EVAL_RESULTS,
    EVAL_RUNS,
    FEEDBACK,
    FEEDBACK_DAYS,
    TAG_DAYS,
    USER_DAYS,
)

GROUPINGS = ("model", "prompt", "user", "tag", "source")
OTHER = "(other)"  # the keys outside the top ones of a split
_c = CALLS.c
READ_ROLLUPS = True  # False: every figure from the raw rows (tests and benchmarks compare)


@dataclass(frozen=True)
class Filters:
    """Which calls a figure covers: a time range [start, end) and optional equality filters."""

    start: datetime
    end: datetime
    models: tuple[str, ...] = ()
    prompts: tuple[str, ...] = ()
    versions: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()

    @classmethod
    def last_days(cls, days: int, now: datetime | None = None, **kwargs: Any) -> Filters:
        """The last ``days`` whole UTC days, today included."""
        now = now or datetime.now(UTC)
        first = datetime.combine(now.date() - timedelta(days=days - 1), datetime.min.time(), UTC)
        return cls(start=first, end=now + timedelta(seconds=1), **kwargs)

    def where(self) -> list[sa.ColumnElement[bool]]:
        conditions: list[sa.ColumnElement[bool]] = [
            _c.created_at >= self.start,
            _c.created_at < self.end,
        ]
        for column, values in (
            (_c.model, self.models),
            (_c.prompt_name, self.prompts),
            (_c.prompt_version, self.versions),
            (_c.user_id, self.users),
            (_c.status, self.statuses),
            (_c.source, self.sources),
        ):
            if values:
                conditions.append(column.in_(values))
        return conditions

    def whole_days(self) -> tuple[date, date] | None:
        """The whole UTC days [first, last) inside the range, if any."""
        start, end = _utc(self.start), _utc(self.end)
        first = datetime.combine(start.date(), datetime.min.time(), UTC)
        if first < start:
            first += timedelta(days=1)
        last = datetime.combine(end.date(), datetime.min.time(), UTC)
        return (first.date(), last.date()) if first < last else None

    def edges(self) -> list[Filters]:
        """The partial days at both ends of the range that ``whole_days`` leaves out."""
        days = self.whole_days()
        if days is None:
            return [self]
        first, last = (datetime.combine(d, datetime.min.time(), UTC) for d in days)
        spans = [(_utc(self.start), first), (last, _utc(self.end))]
        return [replace(self, start=lo, end=hi) for lo, hi in spans if lo < hi]


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _day(engine: Engine) -> sa.ColumnElement[date]:
    """The UTC calendar day of a call, as a date on both databases."""
    if engine.dialect.name == "postgresql":
        return sa.cast(sa.func.timezone("UTC", _c.created_at), sa.Date)
    return sa.type_coerce(sa.func.substr(sa.cast(_c.created_at, sa.String), 1, 10), sa.Date)


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _uses_rollups(filters: Filters) -> bool:
    return READ_ROLLUPS and not filters.users


def _rollup_where(table: sa.Table, filters: Filters, days: tuple[date, date]) -> list[Any]:
    conditions: list[Any] = [table.c.day >= days[0], table.c.day < days[1]]
    for column, values in (
        ("model", filters.models),
        ("prompt_name", filters.prompts),
        ("prompt_version", filters.versions),
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
    usable: bool = True,
) -> sa.Subquery:
    """``raw`` (columns over ``from_clause``, one row per call) for the partial days at the
    ends of the range, and ``rolled_up`` (the same columns from ``rollup``) for its whole
    days; ``raw`` for the whole range when the rollup cannot answer."""
    if not (usable and _uses_rollups(filters)):
        return sa.select(*raw).select_from(from_clause).where(*filters.where()).subquery("rows")
    parts = [sa.select(*raw).select_from(from_clause).where(*e.where()) for e in filters.edges()]
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


def _feedback_rows(engine: Engine, filters: Filters) -> sa.Subquery:
    """Rows shaped like feedback_daily covering the feedback of exactly the filtered calls."""
    f = FEEDBACK.c
    key = [column for column in _call_key(engine) if column.name != "git_commit"]
    raw = [*key, f.name.label("name"), f.score.label("score"), sa.literal(1).label("n")]
    rollup = FEEDBACK_DAYS.c
    rolled_up = [rollup[c.name] for c in raw[:-1]] + [rollup.feedback_count.label("n")]
    joined = FEEDBACK.join(CALLS, f.call_id == _c.id)
    return _rows(filters, raw, joined, FEEDBACK_DAYS, rolled_up)


def _none(column: sa.ColumnElement[str]) -> sa.ColumnElement[str | None]:
    """'' (the rollups' NULL) back to NULL."""
    return sa.func.nullif(column, "")


# -- spend ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """Spend in a period and in the one before it."""

    name: str
    cost_usd: float
    previous_usd: float
    calls: int

    @property
    def change(self) -> float | None:
        """Relative change against the previous period; None when there was nothing before."""
        if self.previous_usd == 0:
            return None
        return (self.cost_usd - self.previous_usd) / self.previous_usd


def period_spans(now: datetime) -> dict[str, tuple[datetime, datetime, datetime, datetime]]:
    """Period name -> (start, now, previous start, previous end): today, this week (from
    Monday) and this month, in UTC."""
    today = datetime.combine(now.date(), datetime.min.time(), UTC)
    week = today - timedelta(days=today.weekday())
    month = today.replace(day=1)
    previous_month = (month - timedelta(days=1)).replace(day=1)
    return {
        "today": (today, now, today - timedelta(days=1), today),
        "this week": (week, now, week - timedelta(days=7), week),
        "this month": (month, now, previous_month, month),
    }


def spend_periods(engine: Engine, now: datetime | None = None) -> list[Period]:
    """Spend today, this week (from Monday) and this month, each against the period before."""
    now = now or datetime.now(UTC)
    spans = period_spans(now)
    ranges = []
    for start, end, previous_start, previous_end in spans.values():
        ranges += [
            Filters(start, end + timedelta(microseconds=1)),
            Filters(previous_start, previous_end),
        ]
    with engine.connect() as connection:
        sums = []
        for filters in ranges:
            rows = _call_rows(engine, filters)
            query = sa.select(
                sa.func.coalesce(sa.func.sum(rows.c.cost_usd), 0.0),
                sa.func.coalesce(sa.func.sum(rows.c.calls), 0),
            )
            sums.append(connection.execute(query).one())
    return [
        Period(name, float(sums[2 * i][0]), float(sums[2 * i + 1][0]), int(sums[2 * i][1]))
        for i, name in enumerate(spans)
    ]


@dataclass(frozen=True)
class SpendRow:
    date: date
    key: str
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    unpriced_calls: int


def daily_spend(
    engine: Engine, filters: Filters, by: str = "model", top: int | None = None
) -> list[SpendRow]:
    """Spend per UTC day and per model, prompt, user, tag or source. With ``top``, only the
    ``top`` keys that cost most over the range keep their name; the rest sum as "(other)"."""
    if by not in GROUPINGS:
        raise ValueError(f"by must be one of {', '.join(GROUPINGS)}")
    rows = _spend_rows(engine, filters, by)
    column = {"prompt": "prompt_name", "user": "user_id"}.get(by, by)
    key: sa.ColumnElement[str] = sa.func.coalesce(_none(rows.c[column]), "(none)")
    if top is not None:
        leaders = (
            sa.select(key)
            .group_by(key)
            .order_by(sa.func.sum(rows.c.cost_usd).desc(), key)
            .limit(top)
            .correlate(None)
        )
        key = sa.case((key.in_(leaders), key), else_=OTHER)
    key = key.label("key")
    query = (
        sa.select(
            rows.c.day,
            key,
            sa.func.sum(rows.c.calls),
            sa.func.sum(rows.c.prompt_tokens),
            sa.func.sum(rows.c.completion_tokens),
            sa.func.sum(rows.c.cost_usd),
            sa.func.sum(rows.c.unpriced_calls),
        )
        .group_by(rows.c.day, key)
        .order_by(rows.c.day, key)
    )
    with engine.connect() as connection:
        return [
            SpendRow(
                _as_date(d),
                str(k),
                int(n),
                int(pt or 0),
                int(ct or 0),
                float(cost or 0),
                int(u or 0),
            )
            for d, k, n, pt, ct, cost, u in connection.execute(query)
        ]


def _spend_rows(engine: Engine, filters: Filters, by: str) -> sa.Subquery:
    """The rows to sum for a split: llm_calls_daily, or the tag rollup, or the user rollup,
    which answers only when no other filter is set (it has no other key)."""
    if by not in ("user", "tag"):
        return _call_rows(engine, filters)
    raw = [*(c.label(c.name) for c in _call_key(engine)), *_spend_figures()]
    from_clause: Any = CALLS
    if by == "user":
        raw.append(sa.func.coalesce(_c.user_id, "").label("user_id"))
        rollup = USER_DAYS
    else:
        tag, from_clause = _tag_key(engine)
        raw.append(tag.label("tag"))
        rollup = TAG_DAYS
    rolled_up = [
        rollup.c[c.name] if c.name in rollup.c else sa.literal("").label(c.name) for c in raw
    ]
    others = (filters.models, filters.prompts, filters.versions, filters.statuses, filters.sources)
    usable = by == "tag" or not any(others)
    return _rows(filters, raw, from_clause, rollup, rolled_up, usable)


def _tag_key(engine: Engine) -> tuple[sa.ColumnElement[Any], Any]:
    """One row per tag of each call (calls without tags count under '', as in the rollup)."""
    if engine.dialect.name == "postgresql":
        tags = sa.func.jsonb_array_elements_text(
            sa.func.coalesce(_c.tags, sa.text("'[\"\"]'::jsonb"))
        ).table_valued("value")
        return tags.c.value, CALLS.join(tags, sa.true())
    tags = sa.func.json_each(sa.func.coalesce(_c.tags, '[""]')).table_valued("value")
    return tags.c.value, CALLS.join(tags, sa.true())


@dataclass(frozen=True)
class DayTotal:
    date: date
    cost_usd: float
    calls: int
    over_budget: bool


def daily_totals(
    engine: Engine, filters: Filters, daily_budget_usd: float | None = None
) -> list[DayTotal]:
    """Total spend per day, every day of the range (zeros included), flagged over budget."""
    rows = _call_rows(engine, filters)
    query = sa.select(rows.c.day, sa.func.sum(rows.c.cost_usd), sa.func.sum(rows.c.calls))
    query = query.group_by(rows.c.day)
    with engine.connect() as connection:
        found = {_as_date(d): (float(cost), int(n)) for d, cost, n in connection.execute(query)}
    days = []
    current = filters.start.date()
    last = (filters.end - timedelta(microseconds=1)).date()
    while current <= last:
        cost, calls = found.get(current, (0.0, 0))
        over = daily_budget_usd is not None and cost > daily_budget_usd
        days.append(DayTotal(current, cost, calls, over))
        current += timedelta(days=1)
    return days


@dataclass(frozen=True)
class MonthBudget:
    month_to_date_usd: float
    budget_usd: float | None

    @property
    def used(self) -> float | None:
        return self.month_to_date_usd / self.budget_usd if self.budget_usd else None

    @property
    def over(self) -> bool:
        return self.budget_usd is not None and self.month_to_date_usd > self.budget_usd

    @classmethod
    def of(cls, periods: Sequence[Period], budget_usd: float | None) -> MonthBudget:
        """From the periods ``spend_periods`` returned (no query)."""
        this_month = next(p for p in periods if p.name == "this month")
        return cls(this_month.cost_usd, budget_usd)


def month_budget(
    engine: Engine, budget_usd: float | None, now: datetime | None = None
) -> MonthBudget:
    """Month-to-date spend against the monthly budget."""
    return MonthBudget.of(spend_periods(engine, now), budget_usd)


# -- overview ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Overview:
    calls: int
    errors: int
    cancelled: int
    cost_usd: float
    prompt_tokens: int
    completion_tokens: int
    unpriced_calls: int
    estimated_calls: int
    latency_p50: float | None
    latency_p95: float | None
    latency_p99: float | None
    ttft_p50: float | None
    ttft_p95: float | None
    ttft_p99: float | None
    feedback_count: int
    feedback_avg: float | None
    unpriced_models: tuple[str, ...] = ()  # models of completed calls with no known price
    approximate_calls: int = 0  # priced, but the price map lacked a rate they used
    approximate_models: tuple[str, ...] = ()

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.calls if self.calls else None


def overview(engine: Engine, filters: Filters) -> Overview:
    """Calls, errors, cost, tokens, latency and TTFT percentiles, average feedback."""
    rows = _call_rows(engine, filters)

    def calls_with(status: str) -> sa.ColumnElement[Any]:
        return sa.func.sum(sa.case((rows.c.status == status, rows.c.calls), else_=0))

    totals = sa.select(
        sa.func.sum(rows.c.calls),
        calls_with("error"),
        calls_with("cancelled"),
        sa.func.sum(rows.c.cost_usd),
        sa.func.sum(rows.c.prompt_tokens),
        sa.func.sum(rows.c.completion_tokens),
        sa.func.sum(rows.c.unpriced_calls),
        sa.func.sum(rows.c.estimated_calls),
    )
    unpriced = (
        sa.select(rows.c.model)
        .where(rows.c.status == "ok")
        .group_by(rows.c.model)
        .having(sa.func.sum(rows.c.unpriced_calls) > 0)
        .order_by(rows.c.model)
    )
    approximate = _approximate_calls(engine, filters)
    scores = _feedback_rows(engine, filters)
    feedback = sa.select(sa.func.sum(scores.c.n), sa.func.sum(scores.c.score * scores.c.n))
    with engine.connect() as connection:
        approximated = connection.execute(approximate).all()
        t = connection.execute(totals).one()
        feedback_count, score_sum = connection.execute(feedback).one()
        unpriced_models = tuple(connection.execute(unpriced).scalars())
        latency, ttft = percentiles(
            connection, (_c.latency_ms, _c.ttft_ms), filters.where(), (0.5, 0.95, 0.99)
        )
    return Overview(
        calls=int(t[0] or 0),
        errors=int(t[1] or 0),
        cancelled=int(t[2] or 0),
        cost_usd=float(t[3] or 0.0),
        prompt_tokens=int(t[4] or 0),
        completion_tokens=int(t[5] or 0),
        unpriced_calls=int(t[6] or 0),
        estimated_calls=int(t[7] or 0),
        latency_p50=latency[0],
        latency_p95=latency[1],
        latency_p99=latency[2],
        ttft_p50=ttft[0],
        ttft_p95=ttft[1],
        ttft_p99=ttft[2],
        feedback_count=int(feedback_count or 0),
        feedback_avg=float(score_sum) / int(feedback_count) if feedback_count else None,
        unpriced_models=unpriced_models,
        approximate_calls=sum(int(n) for _, n in approximated),
        approximate_models=tuple(model for model, _ in approximated),
    )


def _approximate_calls(engine: Engine, filters: Filters) -> sa.Select[Any]:
    """Approximately priced calls per model, read from their partial index (few rows
    whatever the range). Its condition is a literal, not a parameter, so the planners can
    use it; SQLite is told to, since without statistics it would rather read every call
    through an index that groups by model."""
    conditions = [_c.cost_status == sa.literal_column("'approximate'"), *filters.where()]
    if engine.dialect.name != "sqlite":
        model: Any = _c.model
        source: Any = CALLS
    else:
        conditions = [_unqualified(condition) for condition in conditions]
        model = sa.column("model")
        source = sa.text("llm_calls INDEXED BY ix_llm_calls_approximate")
    return (
        sa.select(model, sa.func.count())
        .select_from(source)
        .where(*conditions)
        .group_by(model)
        .order_by(model)
    )


def _unqualified(condition: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """``condition`` with llm_calls' columns by bare name (for a FROM given as text)."""

    def bare(element: Any) -> Any:
        if isinstance(element, sa.Column) and element.table is CALLS:
            return sa.column(element.name, element.type)
        return None

    return sa.sql.visitors.replacement_traverse(condition, {}, bare)


def percentiles(
    connection: sa.Connection,
    columns: Sequence[sa.ColumnElement[Any]],
    where: Sequence[sa.ColumnElement[bool]],
    quantiles: Sequence[float],
) -> list[list[float | None]]:
    """Exact percentiles (linear interpolation, like numpy's default) of each column, NULLs
    left out, from one pass over the rows."""
    if connection.dialect.name == "postgresql":
        query = sa.select(
            *(sa.func.percentile_cont(q).within_group(c) for c in columns for q in quantiles)
        ).where(*where)
        row = [float(v) if v is not None else None for v in connection.execute(query).one()]
        return [row[i : i + len(quantiles)] for i in range(0, len(row), len(quantiles))]
    # SQLite has no percentile function: read the values (ix_llm_calls_timing covers them)
    # and interpolate here; ranking them with a window over a sort is three times slower.
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
        return cursor.execute(compiled.string, values).fetchall()
    finally:
        cursor.close()


def _interpolate(ordered: list[float], quantile: float) -> float | None:
    if not ordered:
        return None
    exact = quantile * (len(ordered) - 1)
    low, high = math.floor(exact), math.ceil(exact)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (exact - low))


# -- prompts ----------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionStats:
    prompt_name: str
    prompt_version: str
    git_commit: str | None
    calls: int
    cost_per_call: float | None
    tokens_per_call: float | None
    latency_avg_ms: float | None
    errors: int
    feedback_avg: float | None
    feedback_count: int
    first_seen: datetime
    last_seen: datetime
    eval_pass_rate: float | None
    eval_suite: str | None

    @property
    def error_rate(self) -> float:
        return self.errors / self.calls if self.calls else 0.0


def prompt_versions(engine: Engine, filters: Filters) -> list[VersionStats]:
    """Every prompt version seen in the range with its usage, feedback and latest eval."""
    rows = _call_rows(engine, filters)
    version = (rows.c.prompt_name, rows.c.prompt_version)
    usage = (
        sa.select(
            *version,
            sa.func.max(_none(rows.c.git_commit)),
            sa.func.sum(rows.c.calls),
            sa.func.sum(rows.c.cost_usd),
            sa.func.sum(rows.c.priced_calls),
            sa.func.sum(rows.c.prompt_tokens) + sa.func.sum(rows.c.completion_tokens),
            sa.func.sum(rows.c.latency_ms_sum),
            sa.func.sum(rows.c.latency_calls),
            sa.func.sum(sa.case((rows.c.status == "error", rows.c.calls), else_=0)),
            sa.func.min(rows.c.first_at),
            sa.func.max(rows.c.last_at),
        )
        .where(rows.c.prompt_name != "")
        .group_by(*version)
    )
    scores = _feedback_rows(engine, filters)
    feedback = (
        sa.select(
            scores.c.prompt_name,
            scores.c.prompt_version,
            sa.func.sum(scores.c.score * scores.c.n),
            sa.func.sum(scores.c.n),
        )
        .where(scores.c.prompt_name != "")
        .group_by(scores.c.prompt_name, scores.c.prompt_version)
    )
    with engine.connect() as connection:
        found = connection.execute(usage).all()
        feedback_by_version = {(r[0], r[1]): (r[2], r[3]) for r in connection.execute(feedback)}
        evals = latest_eval_by_version(connection)
    result = []
    for (
        name,
        version_id,
        commit,
        calls,
        cost,
        priced,
        tokens,
        latency,
        timed,
        errors,
        *seen,
    ) in found:
        version_id = version_id or None
        score_sum, rated = feedback_by_version.get((name, version_id or ""), (None, 0))
        rate, suite = evals.get((name, version_id), (None, None))
        result.append(
            VersionStats(
                name,
                version_id,
                commit,
                int(calls),
                float(cost) / int(priced) if priced else None,
                int(tokens or 0) / int(calls),
                float(latency) / int(timed) if timed else None,
                int(errors or 0),
                float(score_sum) / int(rated) if rated else None,
                int(rated or 0),
                _as_datetime(seen[0]),
                _as_datetime(seen[1]),
                rate,
                suite,
            )
        )
    return sorted(result, key=lambda v: (v.prompt_name, v.last_seen), reverse=False)


def _as_datetime(value: Any) -> datetime:
    """A timestamp read back through a UNION, where SQLite may return it as text."""
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def latest_eval_by_version(
    connection: sa.Connection,
) -> dict[tuple[str, str], tuple[float | None, str]]:
    """(prompt, version) -> (pass rate, suite) of the newest eval run of that version."""
    runs = EVAL_RUNS.c
    newest = (
        sa.select(
            runs.prompt_name,
            runs.prompt_version,
            runs.pass_rate,
            runs.suite,
            sa.func.row_number()
            .over(
                partition_by=(runs.prompt_name, runs.prompt_version),
                order_by=runs.started_at.desc(),
            )
            .label("rn"),
        )
    ).subquery()
    query = sa.select(
        newest.c.prompt_name, newest.c.prompt_version, newest.c.pass_rate, newest.c.suite
    ).where(newest.c.rn == 1)
    return {(r[0], r[1]): (r[2], r[3]) for r in connection.execute(query)}


# -- evals ------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalRunRow:
    id: str
    batch_id: str
    role: str
    suite: str
    prompt_name: str
    prompt_ref: str
    prompt_version: str
    model: str
    started_at: datetime
    results: int
    passed: int
    pass_rate: float | None
    cost_usd: float | None
    cached: int


def eval_runs(engine: Engine, suite: str | None = None, limit: int = 500) -> list[EvalRunRow]:
    """Eval runs, newest first, optionally of one suite."""
    runs = EVAL_RUNS.c
    query = sa.select(
        runs.id, runs.batch_id, runs.role, runs.suite, runs.prompt_name, runs.prompt_ref,
        runs.prompt_version, runs.model, runs.started_at, runs.results, runs.passed,
        runs.pass_rate, runs.cost_usd, runs.cached,
    ).order_by(runs.started_at.desc()).limit(limit)  # fmt: skip
    if suite is not None:
        query = query.where(runs.suite == suite)
    with engine.connect() as connection:
        return [EvalRunRow(*row) for row in connection.execute(query)]


@dataclass
class FlippedCase:
    case_id: str
    direction: str  # "worse" or "better" (pass fraction over the repeats)
    candidate_output: str
    baseline_output: str


@dataclass
class BatchComparison:
    """A stored candidate-vs-baseline comparison, with the statistics of llmops.evals.stats."""

    candidate: EvalRunRow
    baseline: EvalRunRow
    comparison: Any  # llmops.evals.stats.Comparison
    flipped: list[FlippedCase] = field(default_factory=list)


def eval_comparisons(engine: Engine, batch_id: str) -> list[BatchComparison]:
    """Candidate against baseline, per model, for one `llmops eval run` batch."""
    from llmops.evals.stats import compare

    runs = [r for r in eval_runs(engine, limit=10_000) if r.batch_id == batch_id]
    results = EVAL_RESULTS.c
    comparisons = []
    with engine.connect() as connection:
        for candidate in (r for r in runs if r.role == "candidate"):
            baseline = next(
                (r for r in runs if r.role == "baseline" and r.model == candidate.model), None
            )
            if baseline is None:
                continue
            rows = connection.execute(
                sa.select(
                    results.run_id, results.case_id, results.repeat_index, results.passed,
                    results.output, results.error,
                )
                .where(results.run_id.in_([candidate.id, baseline.id]))
                .order_by(results.case_id, results.repeat_index)
            ).all()  # fmt: skip
            passes: dict[str, dict[str, list[bool | None]]] = {candidate.id: {}, baseline.id: {}}
            outputs: dict[tuple[str, str], str] = {}
            for run_id, case_id, _, passed, output, error in rows:
                passes[run_id].setdefault(case_id, []).append(
                    None if error is not None else bool(passed)
                )
                outputs.setdefault((run_id, case_id), output or "")
            stats = compare(passes[candidate.id], passes[baseline.id])
            flipped = [
                FlippedCase(
                    case, direction, outputs[(candidate.id, case)], outputs[(baseline.id, case)]
                )
                for direction, cases in (
                    ("worse", stats.regressions),
                    ("better", stats.improvements),
                )
                for case in cases
            ]
            comparisons.append(BatchComparison(candidate, baseline, stats, flipped))
    return comparisons


# -- calls ------------------------------------------------------------------------------

CALL_LIST_COLUMNS = (
    "id", "created_at", "source", "model", "prompt_name", "prompt_version", "user_id",
    "status", "prompt_tokens", "completion_tokens", "cost_usd", "cost_status", "latency_ms",
)  # fmt: skip


def calls_page(
    engine: Engine, filters: Filters, *, limit: int = 50, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """One page of calls, newest first, and how many calls match in all."""
    columns = [CALLS.c[name] for name in CALL_LIST_COLUMNS]
    query = (
        sa.select(*columns)
        .where(*filters.where())
        .order_by(_c.created_at.desc(), _c.id)
        .limit(limit)
        .offset(offset)
    )
    with engine.connect() as connection:
        rows = [dict(r._mapping) for r in connection.execute(query)]
        total = connection.execute(sa.select(sa.func.count()).where(*filters.where())).scalar_one()
    return rows, int(total)


def call_detail(engine: Engine, call_id: str) -> dict[str, Any] | None:
    """Everything stored about one call, with its feedback."""
    with engine.connect() as connection:
        row = connection.execute(sa.select(CALLS).where(_c.id == call_id)).first()
        if row is None:
            return None
        detail = dict(row._mapping)
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
    """Distinct values for the dashboard's filters: one index seek per value, not a scan."""
    options: dict[str, list[str]] = {}
    with engine.connect() as connection:
        for name, column in (
            ("models", _c.model),
            ("prompts", _c.prompt_name),
            ("versions", _c.prompt_version),
            ("users", _c.user_id),
            ("sources", _c.source),
            ("statuses", _c.status),
        ):
            query = _loose_distinct(column, limit)
            options[name] = [str(v) for v in connection.execute(query).scalars()]
    return options


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
