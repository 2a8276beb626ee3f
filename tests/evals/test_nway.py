"""The N-way comparison: every pair of versions, two-sided exact sign tests, Holm over the
suite's pairs; figures worked out by hand."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from llmops.evals.nway import compare_all, pair

# 13 cases of three versions A, B, C (pass flags), counted by pattern (A, B, C):
#   100 x3, 101 x5, 110 x1, 001 x1, 111 x2, 000 x1
PATTERNS = [(1, 0, 0)] * 3 + [(1, 0, 1)] * 5 + [(1, 1, 0)] + [(0, 0, 1)] + [(1, 1, 1)] * 2
PATTERNS += [(0, 0, 0)]


def three_versions() -> dict[str, dict[str, list[bool | None]]]:
    versions: dict[str, dict[str, list[bool | None]]] = {"A": {}, "B": {}, "C": {}}
    for index, flags in enumerate(PATTERNS):
        for name, flag in zip("ABC", flags, strict=True):
            versions[name][f"c{index:02d}"] = [bool(flag)]
    return versions


def exact_two_sided(a: int, b: int) -> float:
    """min(1, 2 P(X <= min(a, b))), X ~ Binomial(a + b, 1/2), as an exact fraction."""
    n = a + b
    tail = Fraction(sum(math.comb(n, i) for i in range(min(a, b) + 1)), 2**n)
    return float(min(Fraction(1), 2 * tail))


def test_three_versions_by_hand() -> None:
    (nway,) = compare_all({"gpt-4o": three_versions()}, alpha=0.05).values()
    ab, ac, bc = nway.pairs
    # discordant cases: A>B 100+101 = 8, B>A 010+011 = 0; A>C 100+110 = 4, C>A 001+011 = 1;
    # B>C 010+110 = 1, C>B 001+101 = 6
    assert [(p.first, p.second) for p in nway.pairs] == [("A", "B"), ("A", "C"), ("B", "C")]
    assert (len(ab.first_better), len(ab.second_better)) == (8, 0)
    assert (len(ac.first_better), len(ac.second_better)) == (4, 1)
    assert (len(bc.first_better), len(bc.second_better)) == (1, 6)
    assert ab.paired == ac.paired == bc.paired == 13
    # exact two-sided p: 2 / 2**8; 2 (1 + 5) / 2**5; 2 (1 + 7) / 2**7
    assert ab.p_value == 2 / 256 == exact_two_sided(8, 0)
    assert ac.p_value == 12 / 32 == exact_two_sided(4, 1)
    assert bc.p_value == 16 / 128 == exact_two_sided(1, 6)
    # Holm over 3: 3 x 0.0078125, then max(that, 2 x 0.125), then max(that, 1 x 0.375)
    assert ab.adjusted_p == pytest.approx(0.0234375, abs=1e-15)
    assert bc.adjusted_p == pytest.approx(0.25, abs=1e-15)
    assert ac.adjusted_p == pytest.approx(0.375, abs=1e-15)
    assert {p.tests for p in nway.pairs} == {3}
    assert (ab.better, ac.better, bc.better) == ("A", None, None)
    assert ab.verdict == "A better than B" and bc.verdict == "indistinguishable"
    # pass rates 11/13, 3/13, 8/13: ranked A, C, B
    ranking = nway.ranking()
    assert [(r.key, r.interval.rate) for r in ranking] == [
        ("A", 11 / 13),
        ("C", 8 / 13),
        ("B", 3 / 13),
    ]
    by_key = {r.key: r for r in ranking}
    assert by_key["A"].better_than == ["B"] and by_key["A"].same_as == ["C"]
    assert by_key["B"].worse_than == ["A"] and by_key["B"].same_as == ["C"]
    assert by_key["C"].better_than == [] and sorted(by_key["C"].same_as) == ["A", "B"]


def test_a_stricter_alpha_makes_them_all_indistinguishable() -> None:
    (nway,) = compare_all({"m": three_versions()}, alpha=0.02).values()
    assert [p.significant for p in nway.pairs] == [False, False, False]  # 0.0234 >= 0.02


def test_holm_counts_every_pair_of_every_model() -> None:
    """Two models of three versions: a family of six pairs, so A vs B is 6 x 2/256."""
    found = compare_all({"m1": three_versions(), "m2": three_versions()}, alpha=0.05)
    pairs = [p for nway in found.values() for p in nway.pairs]
    assert len(pairs) == 6 and {p.tests for p in pairs} == {6}
    # sorted: 0.0078125 x2, 0.125 x2, 0.375 x2 -> 6x, 5x, then 4 x 0.125, 3 x 0.125, ...
    ab1, ab2 = found["m1"].pairs[0], found["m2"].pairs[0]
    assert ab1.adjusted_p == pytest.approx(6 * 2 / 256) and ab2.adjusted_p == pytest.approx(
        6 * 2 / 256
    )
    assert found["m1"].pairs[2].adjusted_p == pytest.approx(4 * 0.125)
    assert found["m1"].pairs[1].adjusted_p == pytest.approx(max(2 * 0.375, 4 * 0.125))
    assert all(p.significant for p in (ab1, ab2))  # 0.046875 < 0.05


def test_repeats_compare_by_fraction_and_errors_are_left_out() -> None:
    first: dict[str, list[bool | None]] = {
        "steady": [True, True, True],
        "wobbly": [True, False, True],  # 2/3
        "broken": [None, None],  # errored: left out
        "same": [False],
    }
    second: dict[str, list[bool | None]] = {
        "steady": [True, False, None],  # 1/2: worse than 1
        "wobbly": [True, True],  # 1 > 2/3
        "broken": [True],
        "same": [False],
    }
    found = pair("x", first, "y", second, alpha=0.05)
    assert found.first_better == ["steady"] and found.second_better == ["wobbly"]
    assert found.errored == ["broken"] and found.paired == 3
    assert found.p_value == 1.0 and not found.significant


def test_no_discordant_case_is_p_one() -> None:
    same: dict[str, list[bool | None]] = {"a": [True], "b": [False]}
    found = pair("x", same, "y", same, alpha=0.05)
    assert found.p_value == 1.0 and found.better is None


def test_a_version_with_no_completed_case_ranks_last() -> None:
    versions: dict[str, dict[str, list[bool | None]]] = {
        "dead": {"a": [None]},
        "low": {"a": [False]},
        "high": {"a": [True]},
    }
    (nway,) = compare_all({"m": versions}, alpha=0.05).values()
    assert [r.key for r in nway.ranking()] == ["high", "low", "dead"]
    assert math.isnan(nway.intervals["dead"].rate)
