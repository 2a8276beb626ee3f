"""Fair-coin binomial tails (llmops.evals.binomial) against exact rational arithmetic."""

from __future__ import annotations

import functools
import itertools
import math
import random
from fractions import Fraction

import pytest

from llmops.evals import binomial
from llmops.evals.binomial import EXACT_J, EXACT_N, tail_at_least, tail_at_most, two_sided


def old_two_sided(k: int, n: int) -> float:
    """The quadratic exact p-value that llmops.evals.stats used before this module."""
    if n == 0:
        return 1.0
    k = min(k, n - k)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


SMALLEST_NORMAL = Fraction(2.2250738585072014e-308)
UNIT = Fraction(2) ** -1074  # the smallest subnormal
# The saddle-point route measures about 2e-15 (tests below and benchmarks/mcnemar.py
# --accuracy); the bound asked of it is 1e-12.
TOLERANCE = 1e-14


@functools.cache
def exact_at_most(k: int, n: int) -> Fraction:
    """P(X <= k), X ~ Binomial(n, 1/2), as a Fraction: the smaller tail summed outwards from
    its largest term, C(n, i - 1) = C(n, i) * i / (n - i + 1). Exact for n <= 5,000; beyond,
    the sum stops once what is left (at most i times the last term) is below 2**-100 of it."""
    if k < 0:
        return Fraction(0)
    if k >= n:
        return Fraction(1)
    if 2 * k >= n:
        return 1 - exact_at_most(n - k - 1, n)
    term = total = math.comb(n, k)
    for i in range(k, 0, -1):
        term = term * i // (n - i + 1)
        total += term
        if n > 5000 and term * i < total >> 100:
            break
    return Fraction(total, 2**n)


def assert_close(value: float, exact: Fraction, tolerance: float = TOLERANCE) -> None:
    """Relative error within tolerance for normal values; in the subnormal range, that or
    one unit of 2**-1074, whichever is larger; 0.0 where the true value rounds to zero."""
    if exact <= UNIT / 2:
        assert value == 0.0, (value, float(exact))
    elif exact < SMALLEST_NORMAL:
        error = abs(Fraction(value) - exact)
        assert error <= max(UNIT, tolerance * exact), (value, float(exact), float(error / UNIT))
    else:
        error = abs(Fraction(value) - exact) / exact
        assert error <= tolerance, (value, float(exact), float(error))


def deep_tail_points(n: int) -> list[int]:
    """j where P(X = j) is near 1e-295 ... 1e-325 (the bottom of the float range)."""
    points = []
    for exponent in (-295, -300, -305, -308, -310, -315, -320, -323, -324.4):
        target = exponent * math.log(10)
        low, high = 0, n // 2
        while low < high:  # log P(X = j) rises with j up to n / 2
            mid = (low + high) // 2
            log_term = (
                math.lgamma(n + 1) - math.lgamma(mid + 1) - math.lgamma(n - mid + 1)
            ) - n * math.log(2)
            low, high = (mid + 1, high) if log_term < target else (low, mid)
        points.append(low)
    return points


@pytest.mark.parametrize(
    ("function", "k", "n", "expected"),
    [
        (tail_at_least, 5, 5, 1 / 32),
        (tail_at_least, 0, 5, 1.0),
        (tail_at_most, 4, 5, 31 / 32),
        (tail_at_most, 0, 1, 0.5),
        (tail_at_least, 1, 1, 0.5),
        # R: binom.test(k, n)$p.value
        (two_sided, 0, 5, 0.0625),
        (two_sided, 1, 6, 0.21875),
        (two_sided, 0, 6, 0.03125),
        (two_sided, 2, 10, 0.109375),
        (two_sided, 8, 10, 0.109375),
        (two_sided, 5, 10, 1.0),
        (two_sided, 0, 0, 1.0),
        (two_sided, 1, 20, 4.005432e-05),
        (two_sided, 40, 100, 0.05688793),
        # R: pbinom(40, 100, 0.5)
        (tail_at_most, 40, 100, 0.02844397),
        (tail_at_least, 60, 100, 0.02844397),
    ],
)
def test_published_values(function, k: int, n: int, expected: float) -> None:
    assert function(k, n) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("m", [500_000, 5_000_000])
def test_centre_of_a_large_n(m: int) -> None:
    # P(X <= m) for n = 2m is 1/2 + C(2m, m) / 2**(2m + 1), and C(2m, m) / 4**m has the
    # asymptotic series 1 / sqrt(pi m) * (1 - 1/(8m) + 1/(128 m^2) + 5/(1024 m^3) - ...)
    central = (1 - 1 / (8 * m) + 1 / (128 * m**2) + 5 / (1024 * m**3)) / math.sqrt(math.pi * m)
    assert tail_at_most(m, 2 * m) == pytest.approx(0.5 + central / 2, rel=1e-14)
    assert tail_at_least(m + 1, 2 * m) == pytest.approx(0.5 - central / 2, rel=1e-14)
    assert tail_at_most(m, 2 * m + 1) == 0.5


def test_two_sided_is_the_old_quadratic_sum() -> None:
    for n in range(201):
        for k in range(n + 1):
            assert two_sided(k, n) == old_two_sided(k, n), (k, n)


@pytest.mark.parametrize(
    ("k", "n"),
    [(2999 // 2, 2999), (1200, 3000), (1400, 3000), (900, 3000), (500, 10_000), (60, 10_000)],
)
def test_two_sided_agrees_with_the_old_sum_past_the_exact_range(k: int, n: int) -> None:
    assert_close(two_sided(k, n), Fraction(old_two_sided(k, n)))


@pytest.mark.parametrize(
    "n", [0, 1, 2, 3, 10, 61, 200, EXACT_N - 1, EXACT_N, EXACT_N + 1, 2501, 5000, 12_345, 20_000]
)
def test_grid_against_exact(n: int) -> None:
    sd = math.sqrt(n) / 2
    ks = {-1, 0, 1, 2, EXACT_J, EXACT_J + 1, EXACT_J + 2, n // 2 - 1, n // 2, n // 2 + 1}
    ks |= {n - 2, n - 1, n, n + 1, n - EXACT_J - 1, n - EXACT_J - 2}
    ks |= {round(n / 2 + z * sd) for z in (-2.576, -1.96, 1.96, 2.576, -10, 10, -18)}
    ks |= set(deep_tail_points(n)) if n > 100 else set()
    for k in sorted(ks):
        exact = exact_at_most(k, n)
        at_most = tail_at_most(k, n)
        assert_close(at_most, exact)
        assert_close(tail_at_least(k + 1, n), 1 - exact)
        if n <= EXACT_N or min(k, n - 1 - k) <= EXACT_J:
            assert at_most == float(exact)  # the exact route rounds correctly
        if 0 <= k <= n:
            smaller = exact_at_most(min(k, n - k), n)
            assert_close(two_sided(k, n), min(Fraction(1), 2 * smaller))


@pytest.mark.parametrize(("z", "n"), [(-2.576, 100_000), (-10.0, 100_000)])
def test_a_large_n_against_exact(z: float, n: int) -> None:
    k = round(n / 2 + z * math.sqrt(n) / 2)
    assert_close(tail_at_most(k, n), exact_at_most(k, n))


def test_saddle_point_route_randomized() -> None:
    # _lower directly, also where the public functions would take the exact route
    rng = random.Random(20260)
    for _ in range(150):
        n = round(math.exp(rng.uniform(math.log(2 * EXACT_J + 3), math.log(6000))))
        j = rng.randrange(EXACT_J + 1, (n + 1) // 2)
        assert_close(binomial._lower(j, n), exact_at_most(j, n))


def test_public_functions_randomized() -> None:
    rng = random.Random(7)
    for _ in range(150):
        n = rng.choice([rng.randrange(0, 60), rng.randrange(60, 2500), rng.randrange(2500, 8000)])
        k = rng.randrange(-1, n + 2)
        exact = exact_at_most(k, n)
        assert_close(tail_at_most(k, n), exact)
        assert_close(tail_at_least(k, n), 1 - exact_at_most(k - 1, n))


@pytest.mark.parametrize("n", [3001, 9000])
def test_bottom_of_the_float_range(n: int) -> None:
    # from 1e-295 down through the subnormals to values that round to zero
    for j in deep_tail_points(n):
        assert_close(binomial._lower(j, n), exact_at_most(j, n))


def test_underflow_gives_zero_like_the_exact_division() -> None:
    assert two_sided(0, 1074) == old_two_sided(0, 1074) == 2.0**-1073
    assert two_sided(0, 1075) == old_two_sided(0, 1075) == 0.0  # 2**-1075 rounds to 0
    assert tail_at_most(1, 1080) == float(Fraction(1081, 2**1080))  # a subnormal
    assert tail_at_most(10, 5000) == tail_at_least(4990, 5000) == 0.0
    assert tail_at_most(1000, 10**6) == 0.0
    assert tail_at_least(1000, 10**6) == 1.0
    assert two_sided(3, 10**9) == 0.0


def some_ks(n: int) -> list[int]:
    """Every k for a small n; for a larger one, every k near the centre and a stride."""
    if n <= 300:
        return list(range(-1, n + 2))
    width = 40 if n <= 10_000 else 10
    centre = range(n // 2 - width, n // 2 + width + 1)
    return sorted({-1, 0, 1, n - 1, n, n + 1, *range(0, n + 1, max(1, n // 100)), *centre})


@pytest.mark.parametrize("n", [1, 2, 7, 64, 300, 1001, 2000, 2001, 5000, 100_001, 1_000_000])
def test_symmetry(n: int) -> None:
    for k in some_ks(n):
        assert tail_at_least(k, n) == tail_at_most(n - k, n)
        if 0 <= k <= n:
            assert two_sided(k, n) == two_sided(n - k, n)
            # the two tails of one split cover everything once
            assert tail_at_most(k, n) + tail_at_least(k + 1, n) == pytest.approx(1, abs=1e-15)


@pytest.mark.parametrize("n", [1, 2, 7, 300, 2000, 2001, 5000, 100_000, 1_000_000])
def test_monotonic_in_k(n: int) -> None:
    ks = some_ks(n)
    at_least = [tail_at_least(k, n) for k in ks]
    at_most = [tail_at_most(k, n) for k in ks]
    assert all(a >= b for a, b in itertools.pairwise(at_least))
    assert all(a <= b for a, b in itertools.pairwise(at_most))
    assert all(0.0 <= p <= 1.0 for p in at_least + at_most)


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="k must be between"):
        two_sided(6, 5)
    with pytest.raises(ValueError, match="k must be between"):
        two_sided(-1, 5)
    with pytest.raises(ValueError, match="n must be"):
        tail_at_least(0, -1)
    with pytest.raises(TypeError):
        tail_at_most(1.5, 3)  # type: ignore[arg-type]
    assert (tail_at_least(0, 3), tail_at_least(4, 3), tail_at_most(-1, 3), tail_at_most(3, 3)) == (
        1.0,
        0.0,
        0.0,
        1.0,
    )
