"""Alerts: the figures alert rules compare (spend in spans of time, error rates, p95
latencies, feedback averages, the newest eval runs) and the alert state itself.

The state (``alert_state``) changes only by compare-and-set, each in its own transaction:
:func:`claim_alert_state` succeeds for exactly one of several processes that try the same
change at the same moment, so that each change is notified once."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from llmops.store.queries.timing import _driver_rows, _interpolate, measured
from llmops.store.tables import ALERT_EVENTS, ALERT_STATE, CALLS, EVAL_RUNS, FEEDBACK

_c = CALLS.c
Grouping = Literal["model", "prompt", "all"]
_KEYS_PER_QUERY = 500  # keys in one IN (...) list


# -- figures ----------------------------------------------------------------------------


def spend_in_spans(engine: Engine, spans: Sequence[tuple[datetime, datetime]]) -> list[float]:
    """What the calls in each [start, end) span cost (USD; unpriced calls count 0)."""
    total = sa.func.coalesce(sa.func.sum(_c.cost_usd), 0.0)
    with engine.connect() as connection:
        return [
            float(
                connection.execute(
                    sa.select(total).where(_c.created_at >= start, _c.created_at < end)
                ).scalar_one()
            )
            for start, end in spans
        ]


@dataclass(frozen=True)
class ErrorCount:
    """Calls and failed calls of one group (``subject`` None: every call, or no prompt)."""

    subject: str | None
    calls: int
    errors: int

    @property
    def rate(self) -> float:
        return self.errors / self.calls if self.calls else 0.0


def _grouped(by: Grouping, *figures: Any) -> sa.Select[Any]:
    """``SELECT group, figures...`` grouped by model or prompt; one row (group NULL) for
    ``all``."""
    if by == "all":
        return sa.select(sa.null(), *figures)
    column = _c.model if by == "model" else _c.prompt_name
    return sa.select(column, *figures).group_by(column)


def _scope(start: datetime, end: datetime, source: str | None) -> list[sa.ColumnElement[bool]]:
    where = [_c.created_at >= start, _c.created_at < end]
    if source is not None:
        where.append(_c.source == source)
    return where


def error_counts(
    engine: Engine, start: datetime, end: datetime, by: Grouping, source: str | None
) -> list[ErrorCount]:
    """Calls and calls with status ``error`` in [start, end), per model, per prompt or in
    all. Calls a budget refused (``blocked``) never reached a model and are left out."""
    errors = sa.func.sum(sa.case((_c.status == "error", 1), else_=0))
    query = _grouped(by, sa.func.count(), errors).where(
        *_scope(start, end, source), _c.status != "blocked"
    )
    with engine.connect() as connection:
        return [
            ErrorCount(None if key is None else str(key), int(n), int(e or 0))
            for key, n, e in connection.execute(query)
            if n
        ]


@dataclass(frozen=True)
class LatencyP95:
    subject: str | None
    calls: int  # completed calls with a latency (at least one)
    p95_ms: float


def latency_p95(
    engine: Engine, start: datetime, end: datetime, by: Grouping, source: str | None
) -> dict[str | None, LatencyP95]:
    """The p95 latency of the completed calls (status ``ok``) in [start, end), per model,
    per prompt or in all; exact (linear interpolation, as :func:`percentiles`)."""
    where = [*_scope(start, end, source), _c.status == "ok", measured(_c.latency_ms)]
    found: dict[str | None, LatencyP95] = {}
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            percentile = sa.func.percentile_cont(0.95).within_group(_c.latency_ms)
            query = _grouped(by, sa.func.count(), percentile).where(*where)
            for key, n, value in connection.execute(query):
                if n:
                    subject = None if key is None else str(key)
                    found[subject] = LatencyP95(subject, int(n), float(value))
            return found
        # SQLite has no percentile function: read the values and interpolate here.
        values: dict[str | None, list[float]] = {}
        group: Any = sa.null() if by == "all" else _c.model if by == "model" else _c.prompt_name
        query = sa.select(group, _c.latency_ms).where(*where)
        for key, latency in _driver_rows(connection, query):
            values.setdefault(None if key is None else str(key), []).append(float(latency))
    for subject, latencies in values.items():
        latencies.sort()
        p95 = _interpolate(latencies, 0.95)
        if p95 is not None:
            found[subject] = LatencyP95(subject, len(latencies), p95)
    return found


@dataclass(frozen=True)
class FeedbackAverage:
    prompt_name: str
    prompt_version: str
    count: int
    average: float


def feedback_averages(
    engine: Engine, name: str, start: datetime, end: datetime, source: str | None
) -> dict[tuple[str, str], FeedbackAverage]:
    """Per prompt version: how many ``name`` scores were given in [start, end) (by the
    feedback's own time) and their average, over the calls of ``source`` (None: all)."""
    f = FEEDBACK.c
    # Only the feedback is filtered in SQL, so that the database reads the feedback of the
    # range (ix_feedback_created_at) and looks up its calls, not the other way round.
    group = (_c.prompt_name, _c.prompt_version, _c.source)
    query = (
        sa.select(*group, sa.func.count(), sa.func.sum(f.score))
        .select_from(FEEDBACK.join(CALLS, f.call_id == _c.id))
        .where(f.name == name, f.created_at >= start, f.created_at < end)
        .group_by(*group)
    )
    sums: dict[tuple[str, str], tuple[int, float]] = {}
    with engine.connect() as connection:
        for prompt, version, call_source, n, total in connection.execute(query):
            if prompt is None or version is None or source not in (None, call_source):
                continue
            count, score = sums.get((prompt, version), (0, 0.0))
            sums[(prompt, version)] = (count + int(n), score + float(total))
    return {
        key: FeedbackAverage(key[0], key[1], count, score / count)
        for key, (count, score) in sums.items()
    }


@dataclass(frozen=True)
class EvalRunPoint:
    id: str
    started_at: datetime
    pass_rate: float


@dataclass(frozen=True)
class EvalSeries:
    """The newest finished run of one suite, prompt reference and model, and the one
    before it (None when there is only one)."""

    suite: str
    prompt_name: str
    prompt_ref: str
    model: str
    newest: EvalRunPoint
    previous: EvalRunPoint | None


def eval_series(
    engine: Engine, suite: str | None = None, label: str | None = None
) -> list[EvalSeries]:
    """Every series of finished eval runs with a pass rate (a suite, a prompt as referenced,
    a model), optionally of one suite or one prompt reference (``label``: ``production``)."""
    r = EVAL_RUNS.c
    series = (r.suite, r.prompt_name, r.prompt_ref, r.model)
    rank = sa.func.row_number().over(partition_by=series, order_by=(r.started_at.desc(), r.id))
    where: list[sa.ColumnElement[bool]] = [r.finished_at.is_not(None), r.pass_rate.is_not(None)]
    if suite is not None:
        where.append(r.suite == suite)
    if label is not None:
        where.append(r.prompt_ref == label)
    ranked = sa.select(*series, r.id, r.started_at, r.pass_rate, rank.label("n")).where(*where)
    ranked_rows = ranked.subquery("ranked")
    query = (
        sa.select(ranked_rows)
        .where(ranked_rows.c.n <= 2)
        .order_by(*(ranked_rows.c[c.name] for c in series), ranked_rows.c.n)
    )
    found: dict[tuple[str, str, str, str], EvalSeries] = {}
    with engine.connect() as connection:
        for row in connection.execute(query):
            key = (row.suite, row.prompt_name, row.prompt_ref, row.model)
            point = EvalRunPoint(row.id, row.started_at, float(row.pass_rate))
            if key not in found:
                found[key] = EvalSeries(*key, newest=point, previous=None)
            else:
                found[key] = EvalSeries(*key, newest=found[key].newest, previous=point)
    return list(found.values())


# -- state ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertStateRow:
    """One row of ``alert_state``: what has been notified about one alert."""

    key: str
    rule: str
    kind: str
    subject: str
    state: str  # firing or resolved
    fired_at: datetime
    changed_at: datetime
    window_start: datetime | None = None
    value: float | None = None
    threshold: float | None = None
    message: str | None = None
    resolved_at: datetime | None = None


def alert_states(
    engine: Engine,
    rules: Sequence[str] | None = None,
    *,
    keys: Sequence[str] | None = None,
    firing_only: bool = False,
) -> list[AlertStateRow]:
    """Alert states (of some rules, of some keys, only the firing ones), firing first, then
    the most recently changed."""
    s = ALERT_STATE.c
    query = sa.select(ALERT_STATE).order_by(
        sa.case((s.state == "firing", 0), else_=1), s.changed_at.desc(), s.key
    )
    if rules is not None:
        query = query.where(s.rule.in_(list(rules)))
    if firing_only:
        query = query.where(s.state == "firing")
    chunks = [query]
    if keys is not None:
        wanted = list(keys)
        chunks = [
            query.where(s.key.in_(wanted[i : i + _KEYS_PER_QUERY]))
            for i in range(0, len(wanted), _KEYS_PER_QUERY)
        ]
    with engine.connect() as connection:
        return [
            AlertStateRow(**row._asdict()) for chunk in chunks for row in connection.execute(chunk)
        ]


def claim_alert_state(engine: Engine, expected: AlertStateRow | None, new: AlertStateRow) -> bool:
    """Compare-and-set: write ``new`` if the row of its key is still ``expected`` (None: there
    is no row yet). Exactly one of the processes that try the same change wins (True); the
    others find the row changed and leave it (False)."""
    values = _state_values(new)
    key = ALERT_STATE.c.key
    statement: Any
    if expected is None:
        dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(ALERT_STATE).values(**values)
        statement = statement.on_conflict_do_nothing(index_elements=["key"])
    else:
        statement = ALERT_STATE.update().where(*_version(expected)).values(**values)
    with engine.begin() as connection:  # RETURNING: rowcount is not reliable on every driver
        return connection.execute(statement.returning(key)).first() is not None


def remove_alert_state(engine: Engine, expected: AlertStateRow) -> bool:
    """Compare-and-delete: remove the row of ``expected.key`` if it is still ``expected``."""
    statement = ALERT_STATE.delete().where(*_version(expected)).returning(ALERT_STATE.c.key)
    with engine.begin() as connection:
        return connection.execute(statement).first() is not None


def _version(row: AlertStateRow) -> list[sa.ColumnElement[bool]]:
    s = ALERT_STATE.c
    return [
        s.key == row.key,
        s.state == row.state,
        s.changed_at == row.changed_at,
        s.threshold.is_not_distinct_from(row.threshold),
    ]


def _state_values(row: AlertStateRow) -> dict[str, Any]:
    return {column.name: getattr(row, column.name) for column in ALERT_STATE.columns}


@dataclass(frozen=True)
class AlertEventRow:
    """One row of ``alert_events``: a notification sent or attempted."""

    key: str
    rule: str
    kind: str
    subject: str
    event: str  # fired or resolved
    at: datetime
    value: float | None = None
    threshold: float | None = None
    message: str | None = None
    delivered: list[str] = field(default_factory=list)  # channel names
    failed: list[str] = field(default_factory=list)  # "channel: reason"
    id: str = field(default_factory=lambda: str(uuid.uuid4()))


def record_alert_event(engine: Engine, event: AlertEventRow) -> None:
    values = {column.name: getattr(event, column.name) for column in ALERT_EVENTS.columns}
    with engine.begin() as connection:
        connection.execute(ALERT_EVENTS.insert().values(**values))


def alert_events(engine: Engine, limit: int = 20, *, key: str | None = None) -> list[AlertEventRow]:
    """The newest alert events first, optionally of one alert."""
    e = ALERT_EVENTS.c
    query = sa.select(ALERT_EVENTS).order_by(e.at.desc(), e.id).limit(limit)
    if key is not None:
        query = query.where(e.key == key)
    with engine.connect() as connection:
        rows = []
        for row in connection.execute(query):
            data = row._asdict()
            data["delivered"] = list(data["delivered"] or [])
            data["failed"] = list(data["failed"] or [])
            rows.append(AlertEventRow(**data))
        return rows
