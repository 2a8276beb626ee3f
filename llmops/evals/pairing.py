"""Which baseline run each candidate run is compared with: the one owner of that rule.

A suite runs the candidate and the baseline prompt versions on each model; a candidate run
is compared with the baseline run of the same model, if there is one. Runs of a live
report (:class:`~llmops.evals.runner.RunResult`) and stored runs
(:class:`~llmops.store.queries.EvalRunRow`) both say their ``role`` and ``model``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar


class Run(Protocol):
    @property
    def role(self) -> str: ...

    @property
    def model(self) -> str: ...


R = TypeVar("R", bound=Run)


def baselines(runs: Sequence[R]) -> list[tuple[R, R]]:
    """``(candidate, baseline)`` for every candidate run that has a baseline run."""
    return [
        (candidate, baseline)
        for candidate in runs
        if candidate.role == "candidate"
        and (baseline := baseline_of(candidate.model, runs)) is not None
    ]


def baseline_of(model: str, runs: Sequence[R]) -> R | None:
    """The baseline run on ``model``, or None."""
    return next((r for r in runs if r.role == "baseline" and r.model == model), None)
