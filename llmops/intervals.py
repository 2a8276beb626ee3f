"""Confidence intervals for figures people compare: a pass rate or a share of thumbs up
(Wilson), the mean of scores on a scale (normal approximation). Pure arithmetic, used by
the evals' statistics and by the store's queries alike."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Z95", "Interval", "mean_interval", "wilson"]

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Interval:
    """A proportion (or a mean) with its 95% confidence interval."""

    rate: float
    low: float
    high: float
    n: int


def wilson(successes: float, n: int, z: float = Z95) -> Interval:
    """The Wilson score interval of ``successes`` out of ``n`` (a sum of per-case pass
    fractions is fine); with n = 0 the rate is unknown (nan) and the interval [0, 1]."""
    if n == 0:
        return Interval(math.nan, 0.0, 1.0, 0)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(max(p * (1 - p), 0.0) / n + z * z / (4 * n * n)) / denominator
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half), n)


def mean_interval(counts: Iterable[tuple[float, int]], z: float = Z95) -> Interval:
    """The mean of scores given as (score, how many times) with its 95% interval: Wilson's
    when every score is 0 or 1 (thumbs), else the normal approximation with the sample
    variance, kept within the lowest and highest score given (stars 1-5)."""
    pairs = [(float(score), int(n)) for score, n in counts if n > 0]
    n = sum(k for _, k in pairs)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    if all(score in (0.0, 1.0) for score, _ in pairs):
        return wilson(sum(score * k for score, k in pairs), n, z)
    mean = sum(score * k for score, k in pairs) / n
    variance = sum(k * (score - mean) ** 2 for score, k in pairs) / (n - 1) if n > 1 else math.inf
    half = z * math.sqrt(variance / n)
    lowest, highest = min(s for s, _ in pairs), max(s for s, _ in pairs)
    return Interval(mean, max(lowest, mean - half), min(highest, mean + half), n)
