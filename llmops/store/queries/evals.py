"""Stored eval runs and their results."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from llmops.store.tables import (
    CALLS,
    EVAL_RESULTS,
    EVAL_RUNS,
)

_c = CALLS.c


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


def eval_runs(
    engine: Engine,
    suite: str | None = None,
    limit: int | None = 500,
    *,
    batch_id: str | None = None,
) -> list[EvalRunRow]:
    """Eval runs, newest first, optionally of one suite or one ``llmops eval run`` batch
    (``limit=None``: all of them)."""
    runs = EVAL_RUNS.c
    query = sa.select(
        runs.id, runs.batch_id, runs.role, runs.suite, runs.prompt_name, runs.prompt_ref,
        runs.prompt_version, runs.model, runs.started_at, runs.results, runs.passed,
        runs.pass_rate, runs.cost_usd, runs.cached,
    ).order_by(runs.started_at.desc()).limit(limit)  # fmt: skip
    if suite is not None:
        query = query.where(runs.suite == suite)
    if batch_id is not None:
        query = query.where(runs.batch_id == batch_id)
    with engine.connect() as connection:
        return [EvalRunRow(**row._asdict()) for row in connection.execute(query)]


@dataclass(frozen=True)
class EvalResultRow:
    run_id: str
    case_id: str
    repeat: int
    passed: bool
    output: str
    error: str | None  # the model, judge or check failed: no result
    failed_checks: tuple[str, ...] = ()  # "type: reason" of each assertion that failed


def _failed_checks(details: Any) -> tuple[str, ...]:
    if isinstance(details, str):  # a JSON column read as text
        try:
            details = json.loads(details)
        except ValueError:
            return ()
    if not isinstance(details, list):
        return ()
    return tuple(
        f"{d.get('type')}: {d.get('reason')}"
        for d in details
        if isinstance(d, dict) and d.get("passed") is False and not d.get("error")
    )


def eval_results(engine: Engine, run_ids: list[str]) -> list[EvalResultRow]:
    """Every result of some eval runs, by case and repeat."""
    results = EVAL_RESULTS.c
    query = (
        sa.select(
            results.run_id, results.case_id, results.repeat_index, results.passed,
            results.output, results.error, results.details,
        )
        .where(results.run_id.in_(run_ids))
        .order_by(results.case_id, results.repeat_index)
    )  # fmt: skip
    with engine.connect() as connection:
        return [
            EvalResultRow(
                run, case, repeat, bool(passed), output or "", error, _failed_checks(details)
            )
            for run, case, repeat, passed, output, error, details in connection.execute(query)
        ]
