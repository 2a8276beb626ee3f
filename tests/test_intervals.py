"""Confidence intervals (no database)."""

from __future__ import annotations

import math
import statistics

import pytest

from llmops.intervals import mean_interval, wilson


def test_thumbs_get_wilsons_interval() -> None:
    got = mean_interval([(1.0, 7), (0.0, 3)])
    assert got == wilson(7, 10)
    assert got.rate == 0.7 and 0.39 < got.low < 0.40 and 0.89 < got.high < 0.90


def test_stars_get_the_means_interval_within_the_scale() -> None:
    counts = [(5.0, 6), (4.0, 3), (1.0, 1)]
    values = [5.0] * 6 + [4.0] * 3 + [1.0]
    got = mean_interval(counts)
    half = 1.959963984540054 * statistics.stdev(values) / math.sqrt(len(values))
    assert got.rate == pytest.approx(statistics.mean(values))
    assert (got.low, got.high) == pytest.approx((got.rate - half, min(5.0, got.rate + half)))
    assert got.high <= 5.0 and got.n == 10
    assert mean_interval([(4.0, 1)]).low == mean_interval([(4.0, 1)]).high == 4.0  # one score
    assert math.isnan(mean_interval([]).rate)
