"""The figures of ``llmops audit report`` that no other query module has: one prompt's eval
runs in a period, error types, blocked calls per day, feedback per name and per day over
every version, alert events in a period and the oldest call stored.

Everything else the report shows comes from the existing queries (``overview``,
``daily_spend``, ``prompt_versions``, ``eval_results``), so that the report and the
dashboard cannot disagree on a figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from llmops.intervals import mean_interval
from llmops.store.audit_log import utc
from llmops.store.queries.alerts import AlertEventRow
from llmops.store.queries.filters import Filters, _as_date
from llmops.store.queries.rollups import _feedback_rows
from llmops.store.queries.spend import _spend_rows
from llmops.store.tables import ALERT_EVENTS, CALLS, EVAL_RUNS

__all__ = [
    "AuditEvalRun",
    "BlockedDay",
    "ErrorTypeCount",
    "FeedbackDayAverage",
    "FeedbackSummary",
    "StoredCalls",
    "alert_events_between",
    "blocked_by_day",
    "error_types",
    "eval_runs_of_prompt",
    "feedback_by_day",
    "feedback_summaries",
    "stored_calls",
]

_c = CALLS.c
NO_ERROR_TYPE = "(unknown)"


@dataclass(frozen=True)
class AuditEvalRun:
    """One stored eval run, with what an auditor needs to find it again (batch, commit)."""

    id: str
    batch_id: str
    role: str
    suite: str
    prompt_ref: str
    prompt_version: str
    git_commit: str | None
    model: str
    started_at: datetime
    finished_at: datetime | None
    cases: int
    results: int
    passed: int
    pass_rate: float | None


def eval_runs_of_prompt(
    engine: Engine,
    prompt: str,
    start: datetime | None,
    end: datetime | None,
    versions: Sequence[str] | None = None,
) -> list[AuditEvalRun]:
    """Every eval run of ``prompt`` (optionally of some versions) that started in
    ``[start, end)``, oldest first. ``start=None``: from the beginning (a promotion's
    evidence may predate the report's period)."""
    r = EVAL_RUNS.c
    query = (
        sa.select(
            r.id,
            r.batch_id,
            r.role,
            r.suite,
            r.prompt_ref,
            r.prompt_version,
            r.git_commit,
            r.model,
            r.started_at,
            r.finished_at,
            r.cases,
            r.results,
            r.passed,
            r.pass_rate,
        )
        .where(r.prompt_name == prompt)
        .order_by(r.started_at, r.id)
    )
    if start is not None:
        query = query.where(r.started_at >= start)
    if end is not None:
        query = query.where(r.started_at < end)
    if versions is not None:
        query = query.where(r.prompt_version.in_(list(versions)))
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return [
        AuditEvalRun(
            id=row.id,
            batch_id=row.batch_id,
            role=row.role,
            suite=row.suite,
            prompt_ref=row.prompt_ref,
            prompt_version=row.prompt_version,
            git_commit=row.git_commit,
            model=row.model,
            started_at=utc(row.started_at),
            finished_at=utc(row.finished_at) if row.finished_at is not None else None,
            cases=int(row.cases),
            results=int(row.results),
            passed=int(row.passed),
            pass_rate=None if row.pass_rate is None else float(row.pass_rate),
        )
        for row in rows
    ]


@dataclass(frozen=True)
class ErrorTypeCount:
    error_type: str
    calls: int


def error_types(engine: Engine, filters: Filters) -> list[ErrorTypeCount]:
    """Failed calls (status ``error``) per error type, most frequent first."""
    kind = sa.func.coalesce(_c.error_type, NO_ERROR_TYPE).label("kind")
    query = (
        sa.select(kind, sa.func.count())
        .where(*filters.where(), _c.status == "error")
        .group_by(kind)
        .order_by(sa.func.count().desc(), kind)
    )
    with engine.connect() as connection:
        return [ErrorTypeCount(str(k), int(n)) for k, n in connection.execute(query)]


@dataclass(frozen=True)
class BlockedDay:
    date: date
    calls: int


def blocked_by_day(engine: Engine, filters: Filters) -> list[BlockedDay]:
    """Calls a blocking budget refused (status ``blocked``), per UTC day (days without one
    left out). Under a filter on users, from the user rollups (as the overview's count), which
    keep the days a prune removed."""
    rows = _spend_rows(engine, filters, "model")
    query = (
        sa.select(rows.c.day, sa.func.sum(rows.c.calls))
        .where(rows.c.status == "blocked")
        .group_by(rows.c.day)
        .order_by(rows.c.day)
    )
    with engine.connect() as connection:
        return [BlockedDay(_as_date(d), int(n)) for d, n in connection.execute(query)]


@dataclass(frozen=True)
class FeedbackSummary:
    """One feedback name over the period, on its own scale, with its 95% interval."""

    name: str
    count: int
    average: float
    low: float
    high: float
    lowest: float
    highest: float


def feedback_summaries(engine: Engine, filters: Filters) -> list[FeedbackSummary]:
    """Per feedback name: count, average with its interval (Wilson for 0/1 scores, else the
    normal approximation: :func:`llmops.intervals.mean_interval`) and the scores' range.
    Feedback counts by its call's time, as everywhere else."""
    rows = _feedback_rows(engine, filters)
    query = (
        sa.select(rows.c.name, rows.c.score, sa.func.sum(rows.c.n))
        .group_by(rows.c.name, rows.c.score)
        .order_by(rows.c.name, rows.c.score)
    )
    counts: dict[str, list[tuple[float, int]]] = {}
    with engine.connect() as connection:
        for name, score, n in connection.execute(query):
            counts.setdefault(str(name), []).append((float(score), int(n)))
    summaries = []
    for name, pairs in counts.items():
        interval = mean_interval(pairs)
        scores = [score for score, _ in pairs]
        summaries.append(
            FeedbackSummary(
                name,
                interval.n,
                interval.rate,
                interval.low,
                interval.high,
                min(scores),
                max(scores),
            )
        )
    return sorted(summaries, key=lambda s: (-s.count, s.name))


@dataclass(frozen=True)
class FeedbackDayAverage:
    date: date
    name: str
    count: int
    average: float


def feedback_by_day(engine: Engine, filters: Filters) -> list[FeedbackDayAverage]:
    """Average score per UTC day (of the call) and feedback name, over every version."""
    rows = _feedback_rows(engine, filters)
    query = (
        sa.select(
            rows.c.day, rows.c.name, sa.func.sum(rows.c.n), sa.func.sum(rows.c.score * rows.c.n)
        )
        .group_by(rows.c.day, rows.c.name)
        .order_by(rows.c.name, rows.c.day)
    )
    with engine.connect() as connection:
        return [
            FeedbackDayAverage(_as_date(d), str(name), int(n), float(total) / int(n))
            for d, name, n, total in connection.execute(query)
            if n
        ]


def alert_events_between(engine: Engine, start: datetime, end: datetime) -> list[AlertEventRow]:
    """Every alert event (fired or resolved) of ``[start, end)``, oldest first."""
    e = ALERT_EVENTS.c
    query = sa.select(ALERT_EVENTS).where(e.at >= start, e.at < end).order_by(e.at, e.id)
    with engine.connect() as connection:
        events = []
        for row in connection.execute(query):
            data = row._asdict()
            data["at"] = utc(data["at"])
            data["delivered"] = list(data["delivered"] or [])
            data["failed"] = list(data["failed"] or [])
            events.append(AlertEventRow(**data))
    return events


@dataclass(frozen=True)
class StoredCalls:
    """What the calls table holds now, whatever the period: for the retention evidence."""

    calls: int
    oldest: datetime | None
    newest: datetime | None


def stored_calls(engine: Engine) -> StoredCalls:
    """How many calls are stored and the oldest and newest of them (index on created_at)."""
    query = sa.select(sa.func.count(), sa.func.min(_c.created_at), sa.func.max(_c.created_at))
    with engine.connect() as connection:
        count, oldest, newest = connection.execute(query).one()
    return StoredCalls(
        int(count),
        utc(oldest) if oldest is not None else None,
        utc(newest) if newest is not None else None,
    )
