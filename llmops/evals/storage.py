"""Store a suite report in the ``eval_runs`` and ``eval_results`` tables."""

from __future__ import annotations

import math
import uuid

from sqlalchemy.engine import Engine

from llmops.evals.runner import SuiteReport
from llmops.store.tables import EVAL_RESULTS, EVAL_RUNS


def save_report(engine: Engine, report: SuiteReport) -> None:
    """Insert every run and result of ``report`` in one transaction."""
    runs, results = [], []
    for run in report.runs:
        target = run.target
        runs.append(
            {
                "id": run.id,
                "batch_id": report.batch_id,
                "role": target.role,
                "suite": report.suite.name,
                "prompt_name": target.name,
                "prompt_ref": target.ref,
                "prompt_version": target.version,
                "git_commit": target.commit,
                "model": target.model_label,  # the suite's label for a model entry
                "started_at": run.started_at,
                "finished_at": run.finished_at,
                "cases": len({r.case_id for r in run.results}),
                "results": len(run.results),
                "passed": run.passed,
                # per case (the mean pass fraction of completed cases), as the gate reads it
                "pass_rate": None if math.isnan(run.interval.rate) else run.interval.rate,
                "cost_usd": run.cost_usd,
                "cached": run.cached,
            }
        )
        for result in run.results:
            results.append(
                {
                    "id": str(uuid.uuid4()),
                    "run_id": run.id,
                    "case_id": result.case_id,
                    "repeat_index": result.repeat,
                    "output": result.output,
                    "score": result.score,
                    "passed": result.passed,
                    "details": [o.to_dict() for o in result.outcomes],
                    "error": result.error_reason,  # the model, judge or a check failed
                    "latency_ms": result.latency_ms,
                    "cost_usd": result.cost_usd,
                    "cached": result.cached,
                    "call_id": result.call_id,
                }
            )
    with engine.begin() as connection:
        if runs:
            connection.execute(EVAL_RUNS.insert(), runs)
        if results:
            connection.execute(EVAL_RESULTS.insert(), results)
