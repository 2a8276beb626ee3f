"""Stored eval runs compared again: what the dashboard shows of a past ``llmops eval run``.

The same statistics as the run's own report (:mod:`llmops.evals.stats`), over the results
in ``eval_results``; the same pairing of each candidate run with its baseline
(:func:`llmops.evals.pairing.baselines`). Holm's adjustment is the run's (over every
comparison it made) and is not recomputed here: the p-values shown are per comparison.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from llmops.evals.nway import NWay, compare_all
from llmops.evals.pairing import baselines
from llmops.evals.stats import Comparison, compare
from llmops.store.queries import EvalRunRow, eval_results, eval_runs


@dataclass
class FlippedCase:
    case_id: str
    direction: str  # "worse" or "better" (pass fraction over the repeats)
    candidate_output: str
    baseline_output: str
    candidate_failed: tuple[str, ...] = ()  # the assertions that failed ("type: reason")
    baseline_failed: tuple[str, ...] = ()


@dataclass
class BatchComparison:
    """A stored candidate-vs-baseline comparison."""

    candidate: EvalRunRow
    baseline: EvalRunRow
    comparison: Comparison
    flipped: list[FlippedCase] = field(default_factory=list)


def comparisons(engine: Engine, batch_id: str) -> list[BatchComparison]:
    """Candidate against baseline, per model, for one ``llmops eval run`` batch."""
    runs = eval_runs(engine, limit=None, batch_id=batch_id)
    found = []
    for candidate, baseline in baselines(runs):
        passes: dict[str, dict[str, list[bool | None]]] = {candidate.id: {}, baseline.id: {}}
        outputs: dict[tuple[str, str], str] = {}
        failed: dict[tuple[str, str], tuple[str, ...]] = {}
        for result in eval_results(engine, [candidate.id, baseline.id]):
            outcome = None if result.error is not None else result.passed
            passes[result.run_id].setdefault(result.case_id, []).append(outcome)
            outputs.setdefault((result.run_id, result.case_id), result.output)
            failed.setdefault((result.run_id, result.case_id), result.failed_checks)
        stats = compare(passes[candidate.id], passes[baseline.id])
        flipped = [
            FlippedCase(
                case,
                direction,
                outputs[(candidate.id, case)],
                outputs[(baseline.id, case)],
                failed[(candidate.id, case)],
                failed[(baseline.id, case)],
            )
            for direction, cases in (("worse", stats.regressions), ("better", stats.improvements))
            for case in cases
        ]
        found.append(BatchComparison(candidate, baseline, stats, flipped))
    return found


def version_comparisons(
    engine: Engine, batch_id: str, suite: str, alpha: float = 0.05
) -> dict[str, NWay]:
    """The N-way comparison of one suite of a stored batch, model -> every pair, as the run's
    report made it (:func:`llmops.evals.runner.compare_versions`; two-sided ``alpha``).
    Versions are named by reference, or ``name@ref`` when the runs are of several prompts."""
    from llmops.evals.suite import WORKING  # the suite format: not needed by the dashboard

    runs = [r for r in eval_runs(engine, limit=None, batch_id=batch_id) if r.suite == suite]
    runs.sort(key=lambda r: (_ROLES.get(r.role, len(_ROLES)), r.started_at))
    several = len({r.prompt_name for r in runs}) > 1
    passes: dict[str, dict[str, list[bool | None]]] = {r.id: {} for r in runs}
    for result in eval_results(engine, [r.id for r in runs]):
        outcome = None if result.error is not None else result.passed
        passes[result.run_id].setdefault(result.case_id, []).append(outcome)
    groups: dict[str, dict[str, dict[str, list[bool | None]]]] = {}
    for run in runs:
        name = run.prompt_ref
        if several:
            name = run.prompt_name if run.prompt_ref == WORKING else f"{run.prompt_name}@{name}"
        groups.setdefault(run.model, {})[name] = passes[run.id]
    kept = {model: versions for model, versions in groups.items() if len(versions) >= 3}
    return compare_all(kept, alpha) if kept else {}


_ROLES = {"candidate": 0, "baseline": 1}
