"""Which baseline run each candidate run is compared with: the one owner of that rule.

A suite runs the candidate and the baseline prompt versions on each model; a candidate run
is compared with the baseline run of the same model, if there is one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def baselines(
    runs: Sequence[T], *, role: Callable[[T], str], model: Callable[[T], str]
) -> list[tuple[T, T]]:
    """``(candidate, baseline)`` for every candidate run that has a baseline run."""
    return [
        (candidate, baseline)
        for candidate in runs
        if role(candidate) == "candidate"
        and (baseline := baseline_of(candidate, runs, role=role, model=model)) is not None
    ]


def baseline_of(
    candidate: T, runs: Sequence[T], *, role: Callable[[T], str], model: Callable[[T], str]
) -> T | None:
    """The baseline run on ``candidate``'s model, or None."""
    return next((r for r in runs if role(r) == "baseline" and model(r) == model(candidate)), None)
