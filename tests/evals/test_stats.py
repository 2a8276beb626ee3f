"""The statistics, against values computed independently (R / SciPy-published figures)."""

from __future__ import annotations

import math

import pytest

from llmops.evals.stats import binomial_two_sided, compare, outcome, wilson


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        # Wilson score intervals (no continuity correction), z = 1.959964; e.g. R's
        # prop.test(..., correct = FALSE)$conf.int and statsmodels'
        # proportion_confint(method="wilson")
        (8, 10, 0.4901625, 0.9433178),
        (0, 10, 0.0, 0.2775328),
        (10, 10, 0.7224672, 1.0),
        (1, 2, 0.0945312, 0.9054688),
    ],
)
def test_wilson_interval(successes: int, n: int, low: float, high: float) -> None:
    interval = wilson(successes, n)
    assert interval.rate == pytest.approx(successes / n)
    assert interval.low == pytest.approx(low, abs=1e-6)
    assert interval.high == pytest.approx(high, abs=1e-6)


@pytest.mark.parametrize(("successes", "n"), [(45, 50), (3, 7), (120, 400)])
def test_wilson_bounds_solve_the_score_equation(successes: int, n: int) -> None:
    # The Wilson bounds are the roots p of (p_hat - p)^2 = z^2 p (1 - p) / n, solved here
    # with the quadratic formula: an independent derivation of the same interval.
    z, p_hat = 1.959963984540054, successes / n
    a, b, c = 1 + z * z / n, -(2 * p_hat + z * z / n), p_hat * p_hat
    root = math.sqrt(b * b - 4 * a * c)
    interval = wilson(successes, n)
    assert interval.low == pytest.approx((-b - root) / (2 * a), abs=1e-12)
    assert interval.high == pytest.approx((-b + root) / (2 * a), abs=1e-12)


def test_wilson_with_no_data() -> None:
    interval = wilson(0, 0)
    assert math.isnan(interval.rate) and (interval.low, interval.high) == (0.0, 1.0)


@pytest.mark.parametrize(
    ("k", "n", "p"),
    [
        # exact binomial test, two-sided, p = 0.5: R's binom.test(k, n)$p.value
        (0, 5, 0.0625),
        (1, 6, 0.21875),
        (0, 6, 0.03125),
        (2, 10, 0.109375),
        (8, 10, 0.109375),
        (5, 10, 1.0),
        (0, 0, 1.0),
        (1, 20, 4.005432e-05),
    ],
)
def test_exact_mcnemar_p_values(k: int, n: int, p: float) -> None:
    assert binomial_two_sided(k, n) == pytest.approx(p, rel=1e-6)


def test_outcome_of_repeats() -> None:
    assert outcome([True, True]) == "pass"
    assert outcome([False]) == "fail"
    assert outcome([True, False, True]) == "flaky"


def test_comparison_finds_a_significant_regression() -> None:
    baseline = {f"c{i}": [True] for i in range(20)}
    candidate = {f"c{i}": [i >= 7] for i in range(20)}  # c0..c6 now fail
    result = compare(candidate, baseline)
    assert result.regressions == [f"c{i}" for i in range(7)]
    assert result.improvements == []
    assert result.p_value == pytest.approx(0.015625)  # binom.test(0, 7)
    assert result.significant_regression and result.verdict == "significant regression"
    assert result.candidate.rate == pytest.approx(13 / 20)


def test_few_flips_are_not_significant() -> None:
    baseline = {f"c{i}": [True] for i in range(20)}
    candidate = {**baseline, "c1": [False], "c2": [False], "c3": [True]}
    candidate["c3"] = [True]
    baseline = {**baseline, "c3": [False]}
    result = compare(candidate, baseline)
    assert (len(result.regressions), len(result.improvements)) == (2, 1)
    assert result.p_value == pytest.approx(1.0)
    assert not result.significant_regression
    assert result.verdict == "no significant difference"


def test_flaky_cases_are_flagged_not_counted() -> None:
    baseline = {"a": [True, True], "b": [True, True], "c": [True, False]}
    candidate = {"a": [True, False], "b": [False, False], "c": [False, False]}
    result = compare(candidate, baseline)
    assert result.flaky == ["a", "c"]
    assert result.regressions == ["b"] and result.paired == 1
    assert not result.significant_regression  # one flip proves nothing (p = 1)
