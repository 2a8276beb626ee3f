"""Prompt versions side by side: calls, cost, latency, feedback and their latest eval."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from llmops.intervals import mean_interval
from llmops.store.queries.filters import Filters
from llmops.store.queries.rollups import (
    FeedbackScore,
    _call_rows,
    _feedback_by_name,
    _feedback_rows,
    _none,
    _score,
)
from llmops.store.tables import (
    CALLS,
    EVAL_RUNS,
)

_c = CALLS.c


@dataclass(frozen=True)
class VersionStats:
    prompt_name: str
    prompt_version: str | None  # None: calls that named a prompt but no version
    git_commit: str | None
    calls: int
    cost_per_call: float | None
    tokens_per_call: float | None
    latency_avg_ms: float | None
    errors: int
    feedback: tuple[FeedbackScore, ...]  # per name, most scores first
    feedback_count: int  # every name's
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
    feedback = _feedback_by_name(scores, scores.c.prompt_name, scores.c.prompt_version).where(
        scores.c.prompt_name != ""
    )
    with engine.connect() as connection:
        found = connection.execute(usage).all()
        feedback_by_version: dict[tuple[str, str], list[FeedbackScore]] = {}
        for prompt, version_key, *score in connection.execute(feedback):
            if score[1]:
                feedback_by_version.setdefault((prompt, version_key), []).append(_score(*score))
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
        scored = tuple(feedback_by_version.get((name, version_id or ""), ()))
        rate, suite = evals.get((name, version_id), (None, None)) if version_id else (None, None)
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
                scored,
                sum(score.count for score in scored),
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


@dataclass(frozen=True)
class FeedbackInterval:
    """One feedback name's average for a version, with its 95% interval (Wilson for 0/1
    scores, else the normal approximation): each name on its own scale."""

    name: str
    count: int
    average: float
    low: float
    high: float


@dataclass(frozen=True)
class VersionSide:
    """One version of a prompt in use, for comparing two side by side."""

    stats: VersionStats
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    feedback: tuple[FeedbackInterval, ...]


def compare_versions(
    engine: Engine, filters: Filters, prompt_name: str, versions: Sequence[str]
) -> list[VersionSide]:
    """``versions`` of ``prompt_name`` in use in the range, in that order (a version with
    no call in the range is left out): usage, error rate, cost, latency percentiles,
    feedback per name with intervals and the latest eval (from :func:`prompt_versions`)."""
    from llmops.store.queries.timing import timing_percentiles

    found = {
        v.prompt_version: v
        for v in prompt_versions(engine, filters)
        if v.prompt_name == prompt_name
    }
    scores = _feedback_rows(engine, filters)
    counts = (
        sa.select(scores.c.prompt_version, scores.c.name, scores.c.score, sa.func.sum(scores.c.n))
        .where(scores.c.prompt_name == prompt_name, scores.c.prompt_version.in_(list(versions)))
        .group_by(scores.c.prompt_version, scores.c.name, scores.c.score)
    )
    result = []
    with engine.connect() as connection:
        by_name: dict[tuple[str, str], list[tuple[float, int]]] = {}
        for version, name, score, n in connection.execute(counts):
            by_name.setdefault((str(version), str(name)), []).append((float(score), int(n)))
        for version in versions:
            if version not in found:
                continue
            # the version's calls among the filtered ones (found: it has calls there)
            one = replace(filters, prompts=(prompt_name,), versions=(version,))
            ((p50, p95),) = timing_percentiles(connection, one, (0.5, 0.95), ("latency",))
            named = sorted(
                (
                    (name, mean_interval(pairs))
                    for (v, name), pairs in by_name.items()
                    if v == version
                ),
                key=lambda item: (-item[1].n, item[0]),
            )
            feedback = tuple(
                FeedbackInterval(name, i.n, i.rate, i.low, i.high) for name, i in named
            )
            result.append(VersionSide(found[version], p50, p95, feedback))
    return result
