"""The statistics, against values computed independently (R / SciPy-published figures)."""

from __future__ import annotations

import math
import random

import pytest

from llmops.evals.stats import (
    adjust,
    binomial_two_sided,
    compare,
    holm,
    label,
    min_regressions,
    pass_fraction,
    wilson,
)


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


def test_labels_of_repeats() -> None:
    assert label(pass_fraction([True, True])) == "pass"
    assert label(pass_fraction([False])) == "fail"
    assert label(pass_fraction([True, False, True])) == "flaky"
    assert label(pass_fraction([None, None])) == "error"
    assert pass_fraction([True, None, False]) == 0.5  # over the completed repeats


def test_comparison_finds_a_significant_regression() -> None:
    baseline = {f"c{i}": [True] for i in range(20)}
    candidate = {f"c{i}": [i >= 7] for i in range(20)}  # c0..c6 now fail
    result = compare(candidate, baseline)
    assert result.regressions == [f"c{i}" for i in range(7)]
    assert result.improvements == []
    assert result.p_value == pytest.approx(0.0078125)  # one-sided: 0.5 ** 7
    assert result.significant_regression and result.verdict == "significant regression"
    assert result.candidate.rate == pytest.approx(13 / 20)


def test_few_flips_are_not_significant() -> None:
    baseline = {f"c{i}": [True] for i in range(20)}
    candidate = {**baseline, "c1": [False], "c2": [False], "c3": [True]}
    baseline = {**baseline, "c3": [False]}
    result = compare(candidate, baseline)
    assert (len(result.regressions), len(result.improvements)) == (2, 1)
    assert result.p_value == pytest.approx(0.5)  # P(X >= 2 | n = 3)
    assert not result.significant_regression
    assert result.verdict == "no significant difference"


def test_pass_to_flaky_is_a_regression() -> None:
    """Issue: 50 cases that always passed, now failing 2 of 3 repeats, gave p = 1."""
    baseline = {f"c{i}": [True, True, True] for i in range(50)}
    candidate = {f"c{i}": [False, True, False] for i in range(50)}
    result = compare(candidate, baseline)
    assert len(result.regressions) == 50 and result.flaky == sorted(baseline)
    assert result.p_value == pytest.approx(0.5**50)
    assert result.significant_regression


def test_repeats_do_not_inflate_the_number_of_cases() -> None:
    """Issue: 10 cases x 10 identical repeats gave an interval as if 100 cases."""
    results = {f"c{i}": [i < 5] * 10 for i in range(10)}
    interval = compare(results, results).candidate
    assert interval.n == 10
    assert (interval.low, interval.high) == (
        pytest.approx(0.2366, abs=1e-4),
        pytest.approx(0.7634, abs=1e-4),
    )


def test_errored_cases_are_left_out_never_failures() -> None:
    """Issue: a provider outage (every candidate call 503) was a significant regression."""
    baseline = {f"c{i}": [True] for i in range(12)}
    outage = {f"c{i}": [None] for i in range(12)}
    result = compare(outage, baseline)
    assert result.errored == sorted(baseline) and result.paired == 0
    assert not result.significant_regression and result.verdict == "no difference"
    assert result.candidate.n == 0
    partial = compare({**baseline, "c0": [None], "c1": [False]}, baseline)
    assert partial.errored == ["c0"] and partial.regressions == ["c1"] and partial.paired == 11


def test_the_fewest_regressions_that_can_gate() -> None:
    """Issue: 5 of 5 pass -> fail gives p = 0.0625 and nobody is told."""
    assert min_regressions(0.025) == 6  # 0.5**6 = 0.0156 < 0.025 <= 0.5**5
    assert min_regressions(0.05) == 5
    assert min_regressions(0.025, tests=10) == 9  # Holm's first step: alpha / 10
    five = compare({f"c{i}": [False] for i in range(5)}, {f"c{i}": [True] for i in range(5)})
    assert five.p_value == 0.5**5 and not five.significant_regression and not five.can_gate
    six = compare({f"c{i}": [False] for i in range(6)}, {f"c{i}": [True] for i in range(6)})
    assert six.significant_regression and six.can_gate


def test_holm() -> None:
    # sorted 0.005 (x4), 0.01 (x3), 0.03 (x2), 0.04 (x1, but never below the step before)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([]) == [] and holm([0.9, 0.8]) == [1.0, 1.0]


def test_many_suites_do_not_add_up_to_false_alarms() -> None:
    """Issue: with no true difference, 20 suites gave a false regression in 21% of runs.
    Simulated here: 20 suites of 40 cases whose outcomes are fair coins in both versions;
    with Holm's correction a run has a false regression in at most alpha of the runs."""
    rng = random.Random(7)
    runs, false_alarms, uncorrected = 2000, 0, 0
    for _ in range(runs):
        comparisons = []
        for _ in range(20):
            baseline = {f"c{i}": [rng.random() < 0.5] for i in range(40)}
            candidate = {f"c{i}": [rng.random() < 0.5] for i in range(40)}
            comparisons.append(compare(candidate, baseline))
        uncorrected += any(c.significant_regression for c in comparisons)
        adjust(comparisons)
        false_alarms += any(c.significant_regression for c in comparisons)
    assert uncorrected / runs > 0.15  # what the issue saw
    assert false_alarms / runs <= 0.025 + 0.01  # alpha, with the simulation's noise
