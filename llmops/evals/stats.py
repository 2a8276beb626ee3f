"""Statistics for comparing prompt versions: the rule the CI gate applies, exactly.

- **Unit of analysis: the case.** A case's result for a version is its pass fraction over
  its completed repeats (1 or 0 without ``--repeat``). Intervals and tests count cases,
  never repeats: ten cases repeated ten times are ten observations.
- **Errors are not failures.** A repeat whose model call (or judge call, or check) failed
  has no result; a case with no completed repeat is *errored* for that version and left
  out of the comparison, and counted apart (the run's exit code says so).
- **Flaky** (0 < pass fraction < 1) is a label, not an amnesty: the comparison uses the
  fractions, so a case that always passed and now fails two repeats of three got worse.
- **The paired test**: among the cases both versions completed, ``worse`` lost pass
  fraction and ``better`` gained some. Under "no difference" either is equally likely, so
  the one-sided exact sign test (McNemar's test without repeats) gives
  ``p = P(X >= worse)``, X ~ Binomial(worse + better, 1/2).
- **The gate**: a significant regression is ``worse > better`` and ``p < alpha`` (one-sided,
  ``alpha`` 0.025 by default, the same as a two-sided test at 0.05), where ``p`` is
  Holm-adjusted across every comparison of one run (suites x models), so that many suites
  do not add up to many false alarms.
- A comparison of ``n`` informative cases can only be significant when
  ``0.5 ** worse < alpha``: :func:`min_regressions` says how many regressions that takes,
  and a suite with fewer paired cases than that can never gate (the report says so).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from llmops.evals.binomial import tail_at_least, two_sided
from llmops.intervals import Interval, wilson

ALPHA = 0.025  # one-sided: the same as a two-sided test at 0.05

__all__ = [
    "ALPHA",
    "Comparison",
    "Interval",
    "binomial_two_sided",
    "compare",
    "holm",
    "min_regressions",
    "pass_fraction",
    "wilson",
]


def binomial_two_sided(k: int, n: int) -> float:
    """Exact two-sided p-value of k successes in n fair coin flips (O(n))."""
    return two_sided(k, n)


def pass_fraction(passes: Sequence[bool | None]) -> float | None:
    """A case's pass fraction over its completed repeats (``None`` = errored repeat);
    None when no repeat completed."""
    done = [p for p in passes if p is not None]
    return sum(done) / len(done) if done else None


def label(fraction: float | None) -> str:
    """``pass``, ``fail``, ``flaky`` or ``error`` for a case's pass fraction."""
    if fraction is None:
        return "error"
    return "pass" if fraction == 1 else "fail" if fraction == 0 else "flaky"


def rate(results: Mapping[str, Sequence[bool | None]]) -> Interval:
    """A version's pass rate: the mean pass fraction of its completed cases, with a Wilson
    interval over cases."""
    fractions = [f for f in map(pass_fraction, results.values()) if f is not None]
    return wilson(sum(fractions), len(fractions))


def min_regressions(alpha: float = ALPHA, tests: int = 1) -> int:
    """The fewest regressions (with no improvement) that can be significant: the smallest
    k with 0.5**k < alpha / tests (Holm's first step over ``tests`` comparisons)."""
    return math.floor(math.log2(tests / alpha)) + 1


@dataclass
class Comparison:
    """A candidate against a baseline, case by case (see the module docstring)."""

    candidate: Interval
    baseline: Interval
    regressions: list[str] = field(default_factory=list)  # lost pass fraction
    improvements: list[str] = field(default_factory=list)  # gained pass fraction
    flaky: list[str] = field(default_factory=list)  # flaky in either version (a label)
    errored: list[str] = field(default_factory=list)  # no completed repeat in either
    paired: int = 0  # cases both versions completed
    p_value: float = 1.0  # one-sided: the candidate is worse
    p_improvement: float = 1.0  # one-sided: the candidate is better
    alpha: float = ALPHA
    adjusted_p: float | None = None  # Holm-adjusted over the run's comparisons
    tests: int = 1  # comparisons in the run (Holm's family)

    @property
    def gate_p(self) -> float:
        return self.p_value if self.adjusted_p is None else self.adjusted_p

    @property
    def significant_regression(self) -> bool:
        """More cases got worse than better, and unlikely to be chance (Holm-adjusted)."""
        return len(self.regressions) > len(self.improvements) and self.gate_p < self.alpha

    @property
    def significant_improvement(self) -> bool:
        return len(self.improvements) > len(self.regressions) and self.p_improvement < self.alpha

    @property
    def min_regressions(self) -> int:
        return min_regressions(self.alpha, self.tests)

    @property
    def can_gate(self) -> bool:
        """Whether this many paired cases could ever show a significant regression."""
        return self.paired >= self.min_regressions

    @property
    def verdict(self) -> str:
        if self.significant_regression:
            return "significant regression"
        if self.significant_improvement:
            return "significant improvement"
        if self.regressions or self.improvements:
            return "no significant difference"
        return "no difference"


def compare(
    candidate: Mapping[str, Sequence[bool | None]],
    baseline: Mapping[str, Sequence[bool | None]],
    alpha: float = ALPHA,
) -> Comparison:
    """Compare per-case results (one pass flag per repeat, None for an errored repeat)."""
    comparison = Comparison(rate(candidate), rate(baseline), alpha=alpha)
    for case in sorted(set(candidate) & set(baseline)):
        new, old = pass_fraction(candidate[case]), pass_fraction(baseline[case])
        if new is None or old is None:
            comparison.errored.append(case)
            continue
        comparison.paired += 1
        if "flaky" in (label(new), label(old)):
            comparison.flaky.append(case)
        if new < old:
            comparison.regressions.append(case)
        elif new > old:
            comparison.improvements.append(case)
    worse, better = len(comparison.regressions), len(comparison.improvements)
    comparison.p_value = tail_at_least(worse, worse + better)
    comparison.p_improvement = tail_at_least(better, worse + better)
    return comparison


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (monotone, at most 1), in the input's order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def adjust(comparisons: Sequence[Comparison]) -> None:
    """Holm-adjust the regression p-values of one run's comparisons, in place."""
    adjusted = holm([c.p_value for c in comparisons])
    for comparison, p in zip(comparisons, adjusted, strict=True):
        comparison.adjusted_p = p
        comparison.tests = len(comparisons)
