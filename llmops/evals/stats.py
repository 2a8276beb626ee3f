"""Statistics for comparing prompt versions: Wilson intervals, the exact McNemar test,
flipped and flaky cases.

A case's outcome for one version is ``pass`` when every repeat passed, ``fail`` when every
repeat failed, and ``flaky`` when repeats disagree. Flaky cases are reported, never counted
as regressions. The paired test uses the cases both versions ran with a definite outcome:
``b`` cases went pass -> fail, ``c`` went fail -> pass; under "no difference" each
discordant case is a fair coin, so the exact two-sided p-value is a binomial tail.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Interval:
    """A proportion with its Wilson 95% confidence interval."""

    rate: float
    low: float
    high: float
    n: int


def wilson(successes: int, n: int, z: float = Z95) -> Interval:
    """The Wilson score interval; with n = 0 the rate is unknown (nan) and the interval [0, 1]."""
    if n == 0:
        return Interval(math.nan, 0.0, 1.0, 0)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half), n)


def binomial_two_sided(k: int, n: int) -> float:
    """Exact two-sided p-value of k successes in n fair coin flips (McNemar / sign test)."""
    if n == 0:
        return 1.0
    k = min(k, n - k)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def outcome(passes: list[bool]) -> str:
    """``pass``, ``fail`` or ``flaky`` for a case's repeats."""
    if all(passes):
        return "pass"
    if not any(passes):
        return "fail"
    return "flaky"


@dataclass
class Comparison:
    """A candidate against a baseline on the cases both ran."""

    candidate: Interval
    baseline: Interval
    regressions: list[str] = field(default_factory=list)  # pass -> fail
    improvements: list[str] = field(default_factory=list)  # fail -> pass
    flaky: list[str] = field(default_factory=list)  # flaky in either version
    paired: int = 0  # cases with a definite outcome in both
    p_value: float = 1.0
    alpha: float = 0.05

    @property
    def significant_regression(self) -> bool:
        """More pass->fail than fail->pass flips, and unlikely to be chance."""
        return len(self.regressions) > len(self.improvements) and self.p_value < self.alpha

    @property
    def verdict(self) -> str:
        if self.significant_regression:
            return "significant regression"
        if len(self.improvements) > len(self.regressions) and self.p_value < self.alpha:
            return "significant improvement"
        if self.regressions or self.improvements:
            return "no significant difference"
        return "no difference"


def compare(
    candidate: dict[str, list[bool]], baseline: dict[str, list[bool]], alpha: float = 0.05
) -> Comparison:
    """Compare per-case pass lists (one bool per repeat) of two versions."""

    def rate(results: dict[str, list[bool]]) -> Interval:
        flat = [p for passes in results.values() for p in passes]
        return wilson(sum(flat), len(flat))

    comparison = Comparison(rate(candidate), rate(baseline), alpha=alpha)
    for case in sorted(set(candidate) & set(baseline)):
        new, old = outcome(candidate[case]), outcome(baseline[case])
        if "flaky" in (new, old):
            comparison.flaky.append(case)
            continue
        comparison.paired += 1
        if old == "pass" and new == "fail":
            comparison.regressions.append(case)
        elif old == "fail" and new == "pass":
            comparison.improvements.append(case)
    b, c = len(comparison.regressions), len(comparison.improvements)
    comparison.p_value = binomial_two_sided(b, b + c)
    return comparison
