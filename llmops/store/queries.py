"""Every figure the CLI and the dashboard show, aggregated in SQL. The one place that does
arithmetic on stored calls: callers format what these functions return.

All functions take an Engine and return small lists of dataclasses or dicts, never raw
tables. Dates are UTC. Queries are parameterized (SQLAlchemy Core); nothing user-supplied
is pasted into SQL.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from llmops.store.tables import CALLS, EVAL_RESULTS, EVAL_RUNS, FEEDBACK

GROUPINGS = ("model", "prompt", "user", "tag", "source")
_c = CALLS.c


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


def _day(engine: Engine) -> sa.ColumnElement[Any]:
    """The UTC calendar day of a call, as text YYYY-MM-DD on both databases."""
    if engine.dialect.name == "postgresql":
        return sa.func.to_char(sa.func.timezone("UTC", _c.created_at), "YYYY-MM-DD")
    return sa.func.substr(sa.cast(_c.created_at, sa.String), 1, 10)


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


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
    cost = sa.func.coalesce(_c.cost_usd, 0.0)
    columns = []
    for index, (start, end, prev_start, prev_end) in enumerate(spans.values()):
        current = sa.and_(_c.created_at >= start, _c.created_at <= end)
        before = sa.and_(_c.created_at >= prev_start, _c.created_at < prev_end)
        columns += [
            sa.func.coalesce(sa.func.sum(sa.case((current, cost), else_=0.0)), 0.0).label(
                f"c{index}"
            ),
            sa.func.coalesce(sa.func.sum(sa.case((before, cost), else_=0.0)), 0.0).label(
                f"p{index}"
            ),
            sa.func.coalesce(sa.func.sum(sa.case((current, 1), else_=0)), 0).label(f"n{index}"),
        ]
    earliest = min(prev_start for _, _, prev_start, _ in spans.values())
    query = sa.select(*columns).where(_c.created_at >= earliest, _c.created_at <= now)
    with engine.connect() as connection:
        row = connection.execute(query).one()
    return [
        Period(name, float(row[3 * i]), float(row[3 * i + 1]), int(row[3 * i + 2]))
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


def daily_spend(engine: Engine, filters: Filters, by: str = "model") -> list[SpendRow]:
    """Spend per UTC day and per model, prompt, user, tag or source."""
    if by not in GROUPINGS:
        raise ValueError(f"by must be one of {', '.join(GROUPINGS)}")
    day = _day(engine).label("day")
    from_clause: Any = CALLS
    if by == "tag":
        key, from_clause = _tag_key(engine)
    else:
        column = {
            "model": _c.model,
            "prompt": _c.prompt_name,
            "user": _c.user_id,
            "source": _c.source,
        }[by]
        key = sa.func.coalesce(column, "(none)")
    key = key.label("key")
    query = (
        sa.select(
            day,
            key,
            sa.func.count().label("calls"),
            sa.func.coalesce(sa.func.sum(_c.prompt_tokens), 0).label("prompt_tokens"),
            sa.func.coalesce(sa.func.sum(_c.completion_tokens), 0).label("completion_tokens"),
            sa.func.coalesce(sa.func.sum(_c.cost_usd), 0.0).label("cost_usd"),
            sa.func.sum(sa.case((_c.cost_status == "unpriced", 1), else_=0)).label("unpriced"),
        )
        .select_from(from_clause)
        .where(*filters.where())
        .group_by(day, key)
        .order_by(day, key)
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return [
        SpendRow(
            _as_date(r.day),
            str(r.key),
            int(r.calls),
            int(r.prompt_tokens),
            int(r.completion_tokens),
            float(r.cost_usd),
            int(r.unpriced or 0),
        )
        for r in rows
    ]


def _tag_key(engine: Engine) -> tuple[sa.ColumnElement[Any], Any]:
    """One row per tag of each call (calls without tags count under "(none)")."""
    if engine.dialect.name == "postgresql":
        tags = sa.func.jsonb_array_elements_text(
            sa.func.coalesce(_c.tags, sa.text("'[\"(none)\"]'::jsonb"))
        ).table_valued("value")
        return tags.c.value, CALLS.join(tags, sa.true())
    tags = sa.func.json_each(sa.func.coalesce(_c.tags, '["(none)"]')).table_valued("value")
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
    day = _day(engine).label("day")
    query = (
        sa.select(day, sa.func.coalesce(sa.func.sum(_c.cost_usd), 0.0), sa.func.count())
        .where(*filters.where())
        .group_by(day)
    )
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


def month_budget(
    engine: Engine, budget_usd: float | None, now: datetime | None = None
) -> MonthBudget:
    """Month-to-date spend against the monthly budget."""
    this_month = next(p for p in spend_periods(engine, now) if p.name == "this month")
    return MonthBudget(this_month.cost_usd, budget_usd)


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

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.calls if self.calls else None


def overview(engine: Engine, filters: Filters) -> Overview:
    """Calls, errors, cost, tokens, latency and TTFT percentiles, average feedback."""
    where = filters.where()
    totals = sa.select(
        sa.func.count(),
        sa.func.sum(sa.case((_c.status == "error", 1), else_=0)),
        sa.func.sum(sa.case((_c.status == "cancelled", 1), else_=0)),
        sa.func.coalesce(sa.func.sum(_c.cost_usd), 0.0),
        sa.func.coalesce(sa.func.sum(_c.prompt_tokens), 0),
        sa.func.coalesce(sa.func.sum(_c.completion_tokens), 0),
        sa.func.sum(sa.case((_c.cost_status == "unpriced", 1), else_=0)),
        sa.func.sum(sa.case((_c.tokens_estimated, 1), else_=0)),
    ).where(*where)
    feedback = (
        sa.select(sa.func.count(), sa.func.avg(FEEDBACK.c.score))
        .select_from(FEEDBACK.join(CALLS, FEEDBACK.c.call_id == _c.id))
        .where(*where)
    )
    unpriced = (
        sa.select(_c.model)
        .where(*where, _c.cost_status == "unpriced", _c.status == "ok")
        .distinct()
        .order_by(_c.model)
    )
    with engine.connect() as connection:
        t = connection.execute(totals).one()
        f = connection.execute(feedback).one()
        unpriced_models = tuple(connection.execute(unpriced).scalars())
        latency = percentiles(connection, _c.latency_ms, where, (0.5, 0.95, 0.99))
        ttft = percentiles(connection, _c.ttft_ms, where, (0.5, 0.95, 0.99))
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
        feedback_count=int(f[0] or 0),
        feedback_avg=float(f[1]) if f[1] is not None else None,
        unpriced_models=unpriced_models,
    )


def percentiles(
    connection: sa.Connection,
    column: sa.ColumnElement[Any],
    where: Sequence[sa.ColumnElement[bool]],
    quantiles: Sequence[float],
) -> list[float | None]:
    """Exact percentiles (linear interpolation, like numpy's default) of a column."""
    conditions = [*where, column.is_not(None)]
    if connection.dialect.name == "postgresql":
        query = sa.select(
            *(sa.func.percentile_cont(q).within_group(column) for q in quantiles)
        ).where(*conditions)
        row = connection.execute(query).one()
        return [float(v) if v is not None else None for v in row]
    count = connection.execute(sa.select(sa.func.count()).where(*conditions)).scalar_one()
    if not count:
        return [None for _ in quantiles]
    positions = {}
    for q in quantiles:
        exact = q * (count - 1)
        positions[q] = (math.floor(exact), math.ceil(exact), exact - math.floor(exact))
    wanted = sorted({p for lo, hi, _ in positions.values() for p in (lo, hi)})
    ranked = (
        sa.select(column.label("v"), sa.func.row_number().over(order_by=column).label("rn"))
        .where(*conditions)
        .subquery()
    )
    query = sa.select(ranked.c.rn, ranked.c.v).where(ranked.c.rn.in_([p + 1 for p in wanted]))
    values = {int(rn) - 1: float(v) for rn, v in connection.execute(query)}
    return [values[lo] + (values[hi] - values[lo]) * frac for lo, hi, frac in positions.values()]


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
    where = [*filters.where(), _c.prompt_name.is_not(None)]
    calls = (
        sa.select(
            _c.prompt_name,
            _c.prompt_version,
            sa.func.max(_c.git_commit).label("git_commit"),
            sa.func.count().label("calls"),
            sa.func.avg(_c.cost_usd).label("cost_per_call"),
            sa.func.avg(
                sa.func.coalesce(_c.prompt_tokens, 0) + sa.func.coalesce(_c.completion_tokens, 0)
            ).label("tokens_per_call"),
            sa.func.avg(_c.latency_ms).label("latency"),
            sa.func.sum(sa.case((_c.status == "error", 1), else_=0)).label("errors"),
            sa.func.min(_c.created_at).label("first_seen"),
            sa.func.max(_c.created_at).label("last_seen"),
        )
        .where(*where)
        .group_by(_c.prompt_name, _c.prompt_version)
    )
    feedback = (
        sa.select(
            _c.prompt_name,
            _c.prompt_version,
            sa.func.avg(FEEDBACK.c.score).label("avg"),
            sa.func.count().label("n"),
        )
        .select_from(FEEDBACK.join(CALLS, FEEDBACK.c.call_id == _c.id))
        .where(*where)
        .group_by(_c.prompt_name, _c.prompt_version)
    )
    with engine.connect() as connection:
        usage = connection.execute(calls).all()
        scores = {(r[0], r[1]): (r[2], r[3]) for r in connection.execute(feedback)}
        evals = latest_eval_by_version(connection)
    result = []
    for r in usage:
        avg, n = scores.get((r.prompt_name, r.prompt_version), (None, 0))
        rate, suite = evals.get((r.prompt_name, r.prompt_version), (None, None))
        result.append(
            VersionStats(
                r.prompt_name,
                r.prompt_version,
                r.git_commit,
                int(r.calls),
                float(r.cost_per_call) if r.cost_per_call is not None else None,
                float(r.tokens_per_call) if r.tokens_per_call is not None else None,
                float(r.latency) if r.latency is not None else None,
                int(r.errors or 0),
                float(avg) if avg is not None else None,
                int(n),
                r.first_seen,
                r.last_seen,
                rate,
                suite,
            )
        )
    return sorted(result, key=lambda v: (v.prompt_name, v.last_seen), reverse=False)


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
    direction: str  # "pass -> fail" or "fail -> pass"
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
                    results.output,
                )
                .where(results.run_id.in_([candidate.id, baseline.id]))
                .order_by(results.case_id, results.repeat_index)
            ).all()  # fmt: skip
            passes: dict[str, dict[str, list[bool]]] = {candidate.id: {}, baseline.id: {}}
            outputs: dict[tuple[str, str], str] = {}
            for run_id, case_id, _, passed, output in rows:
                passes[run_id].setdefault(case_id, []).append(bool(passed))
                outputs.setdefault((run_id, case_id), output or "")
            stats = compare(passes[candidate.id], passes[baseline.id])
            flipped = [
                FlippedCase(
                    case, direction, outputs[(candidate.id, case)], outputs[(baseline.id, case)]
                )
                for direction, cases in (
                    ("pass -> fail", stats.regressions),
                    ("fail -> pass", stats.improvements),
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


def _feedback_base(filters: Filters) -> Any:
    return FEEDBACK.join(CALLS, FEEDBACK.c.call_id == _c.id), [
        *filters.where(),
        _c.prompt_name.is_not(None),
    ]


def feedback_distribution(engine: Engine, filters: Filters) -> list[ScoreCount]:
    """How often each score was given, per prompt version and feedback name."""
    joined, where = _feedback_base(filters)
    f = FEEDBACK.c
    query = (
        sa.select(_c.prompt_name, _c.prompt_version, f.name, f.score, sa.func.count())
        .select_from(joined)
        .where(*where)
        .group_by(_c.prompt_name, _c.prompt_version, f.name, f.score)
        .order_by(_c.prompt_name, _c.prompt_version, f.name, f.score)
    )
    with engine.connect() as connection:
        return [
            ScoreCount(r[0], r[1], r[2], float(r[3]), int(r[4])) for r in connection.execute(query)
        ]


def feedback_trend(engine: Engine, filters: Filters) -> list[FeedbackDay]:
    """Average score per day, prompt version and feedback name (by the call's day)."""
    joined, where = _feedback_base(filters)
    f = FEEDBACK.c
    day = _day(engine).label("day")
    query = (
        sa.select(
            day, _c.prompt_name, _c.prompt_version, f.name, sa.func.avg(f.score), sa.func.count()
        )
        .select_from(joined)
        .where(*where)
        .group_by(day, _c.prompt_name, _c.prompt_version, f.name)
        .order_by(day)
    )
    with engine.connect() as connection:
        return [
            FeedbackDay(_as_date(r[0]), r[1], r[2], r[3], float(r[4]), int(r[5]))
            for r in connection.execute(query)
        ]


def feedback_comments(engine: Engine, filters: Filters, limit: int = 100) -> list[dict[str, Any]]:
    """The newest comments, with the call's prompt version."""
    joined, where = _feedback_base(filters)
    f = FEEDBACK.c
    query = (
        sa.select(
            f.created_at, _c.prompt_name, _c.prompt_version, f.name, f.score, f.comment,
            f.user_id, f.call_id,
        )
        .select_from(joined)
        .where(*where, f.comment.is_not(None))
        .order_by(f.created_at.desc())
        .limit(limit)
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
