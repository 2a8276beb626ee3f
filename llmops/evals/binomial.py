"""Tails of the fair-coin binomial distribution, fast and to nearly full float precision.

X ~ Binomial(n, 1/2) counts the ``b`` flips among the n discordant pairs of the exact
McNemar (sign) test: :func:`two_sided` is its two-sided p-value, :func:`tail_at_least` and
:func:`tail_at_most` the one-sided tails. Standard library only.

By symmetry every tail is either the smaller tail P(X <= j), j < n / 2, or one minus it
(then at least 1/2, so nothing cancels). The smaller tail takes one of two routes:

* exact, when n <= ``EXACT_N`` or j <= ``EXACT_J``: the sum of C(n, i) over i <= j as one
  Python integer, divided by 2**n. Python rounds an integer ratio correctly, subnormals
  included, so this is the correctly rounded value, the very float that the old quadratic
  ``sum(math.comb(n, i) ...) / 2**n`` gives. It costs j big-integer steps of n bits (0.6 ms
  at n = 2,000), and nothing when j is tiny (past n ~ 1,500 such a tail is below 2**-1075
  and comes out as 0.0 without building 2**n).
* saddle point, otherwise. The largest term t_j = C(n, j) / 2**n comes from Loader (2000),
  "Fast and accurate computation of binomial probabilities", specialised to p = 1/2:

      log t_j = -n K(d) - log(2 pi j (n - j) / n) / 2 + s(n) - s(j) - s(n - j)

  with d = (n - 2j) / n, n K(d) = j log(2j / n) + (n - j) log(2 (n - j) / n) (n times the
  Kullback-Leibler divergence of j / n from 1/2) and s(m) = log(m!) - log(sqrt(2 pi m)
  (m / e)**m), Stirling's error, from six terms of its series (m > 30: error below 1e-21).
  Unlike ``lgamma`` differences, no two large logarithms cancel. n K(d) is summed exactly in
  80-bit fixed point from its series of positive terms, sum over k of
  (n - 2j)**2k / (2k (2k - 1) n**(2k - 1)), or for d > 0.75 taken from the closed form in
  40-digit ``decimal``; either way it comes out as an exact integer plus a fraction, and
  e**-integer as 2**-q e**(q ln 2 - integer), so that no float ever holds a large exponent
  (a double near -690 alone carries 6e-14). Then the terms t_{i-1} = t_i * i / (n - i + 1)
  are summed outwards (compensated) until they no longer change the sum: about 4.5 sqrt(n)
  terms from the centre, a handful in a far tail.

Accuracy, measured against exact integer sums (tests/evals/test_binomial.py, and
``python benchmarks/mcnemar.py --accuracy [--big-n 1000000]``): the exact route rounds
correctly; the saddle-point route stays within 2.5e-15 relative (the largest error measured,
over ~1,000 points with n from 63 to 1,000,000, from the centre down to 2.2e-308, the
smallest normal float). In the subnormal range the error is that or a few units of 2**-1074,
and a true value below 2**-1075 (~2.5e-324) comes out as 0.0, as it does from the exact
division. Time: O(sqrt(n)) float steps, about 0.1 ms at n = 10,000, 1.5 ms at 1,000,000.
"""

from __future__ import annotations

import math
import operator

__all__ = ["EXACT_J", "EXACT_N", "tail_at_least", "tail_at_most", "two_sided"]

EXACT_N = 2000
"""Up to this n every tail is computed exactly (correctly rounded)."""
EXACT_J = 30
"""A smaller tail of at most this many + 1 terms is computed exactly, whatever n."""

_LOG_2PI = math.log(2 * math.pi)
_LN2 = math.log(2.0)
_LN2_HI = 6.93147180369123816490e-01  # ln 2 to 32 bits (fdlibm): q * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10  # ln 2 - _LN2_HI
_FIXED_BITS = 80  # binary places of the fixed-point sum of n K(d)
# Stirling's series: s(m) = sum_k B_2k / (2k (2k - 1) m**(2k - 1)); the next term after
# these six is 1/156 / m**13, below 1e-21 for m > 30.
_STIRLING = (1 / 12, -1 / 360, 1 / 1260, -1 / 1680, 1 / 1188, -691 / 360360)


def tail_at_least(k: int, n: int) -> float:
    """P(X >= k) for X ~ Binomial(n, 1/2): 1.0 for k <= 0, 0.0 for k > n."""
    k, n = _check(k, n)
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    return _cdf(n - k, n)  # X >= k  <=>  n - X <= n - k, and n - X has the same law


def tail_at_most(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2): 0.0 for k < 0, 1.0 for k >= n."""
    k, n = _check(k, n)
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    return _cdf(k, n)


def two_sided(k: int, n: int) -> float:
    """Exact two-sided p-value of k successes in n fair coin flips (McNemar / sign test).

    ``min(1, 2 * min(P(X <= k), P(X >= k)))``, 1.0 for n = 0: the definition of the old
    quadratic ``stats.binomial_two_sided``, and the very same float for n <= ``EXACT_N``.
    Unlike it, a k outside 0..n is a ValueError (it returned 0.0).
    """
    k, n = _check(k, n)
    if not 0 <= k <= n:
        raise ValueError(f"k must be between 0 and n = {n}, got {k}")
    if n == 0:
        return 1.0
    tail = _cdf(min(k, n - k), n)  # P(X <= min(k, n - k)) is the smaller tail
    return min(1.0, 2 * tail)


def _check(k: int, n: int) -> tuple[int, int]:
    k, n = operator.index(k), operator.index(n)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return k, n


def _cdf(k: int, n: int) -> float:
    """P(X <= k) for 0 <= k < n."""
    if 2 * k + 1 == n:
        return 0.5  # the centre of an odd n: exactly half, by symmetry
    j = min(k, n - 1 - k)  # the smaller tail: P(X <= j) = P(X >= n - j) and j < n / 2
    if n <= EXACT_N or j <= EXACT_J:
        return _cdf_exact(k, n)
    if j == k:
        return _lower(j, n)
    return 1.0 - _lower(j, n)  # P(X <= k) = 1 - P(X >= k + 1) = 1 - P(X <= n - 1 - k)


def _cdf_exact(k: int, n: int) -> float:
    """P(X <= k) for 0 <= k < n, correctly rounded, from integers (cheap when n or the
    smaller tail is small)."""
    j = min(k, n - 1 - k)
    term = total = 1
    for i in range(j):
        term = term * (n - i) // (i + 1)  # C(n, i + 1), exactly
        total += term
    # total / 2**n < 2**(bit_length - n): decide the far cases without building 2**n,
    # which matters when n is huge and j tiny.
    if j == k:
        if total.bit_length() - n < -1077:
            return 0.0  # below 2**-1077: rounds to zero, as the exact division does
        return total / (1 << n)
    if total.bit_length() - n < -60:
        return 1.0  # 1 - (something below 2**-60) rounds to 1.0
    power = 1 << n
    return (power - total) / power


def _lower(j: int, n: int) -> float:
    """P(X <= j) for EXACT_J < j < n / 2, from the saddle-point form of t_j (see the module
    docstring) and the ratio recurrence towards i = 0."""
    whole, fraction = _n_kl(j, n)  # n K(d) = whole + fraction, whole an exact integer
    rest = (  # log t_j = rest - whole, |rest| < 0.5 log(n) + 1
        -fraction
        - 0.5 * (_LOG_2PI + math.log(j) + math.log1p(-j / n))
        + _stirling_error(n)
        - _stirling_error(j)
        - _stirling_error(n - j)
    )
    # Terms shrink outwards at least geometrically (the ratio i / (n - i + 1) falls with i),
    # so the tail is at most t_j / (1 - r_j): give up early when even that underflows.
    if rest - whole - math.log1p(-j / (n - j + 1)) < -746.0:
        return 0.0
    total = 1.0  # sum of t_i / t_j, from i = j outwards
    compensation = 0.0  # Neumaier's compensated summation (total >= 1 > term)
    term = 1.0
    i = j
    while i > 0:
        term *= i / (n - i + 1)
        new = total + term
        compensation += (total - new) + term
        total = new
        i -= 1
        # what is left is below term * r / (1 - r), r = the next ratio
        r = i / (n - i + 1)
        if term * r < 2.0**-60 * total * (1.0 - r):
            break
    total += compensation
    # e**-whole = 2**-q * e**(q ln 2 - whole), with q ln 2 - whole exact to ~1e-16 (Cody and
    # Waite's split of ln 2); ldexp is exact, or rounds once into the subnormals.
    q = round(whole / _LN2)
    reduced = (q * _LN2_HI - whole) + q * _LN2_LO
    return math.ldexp(math.exp(reduced + rest) * total, -q)


def _n_kl(j: int, n: int) -> tuple[int, float]:
    """n K(d), d = (n - 2j) / n (n times the divergence of j / n from 1/2), as an integer
    plus a float in [0, 1) good to ~1e-16 (absolute)."""
    m = n - 2 * j
    if 4 * m > 3 * n:
        # d > 0.75 (j < n / 8), where the series converges slowly: the closed form, which
        # cancels by up to 3x, in 40 decimal digits (~60 us; past n ~ 2,400 such a tail
        # underflows and _lower returns 0.0).
        from decimal import Context

        context = Context(prec=40)
        value = context.add(
            context.multiply(j, context.ln(context.divide(2 * j, n))),
            context.multiply(n - j, context.ln(context.divide(2 * (n - j), n))),
        )
        whole = int(value)
        return whole, float(context.subtract(value, whole))
    # n K(d) = sum over k >= 1 of m**2k / (2k (2k - 1) n**(2k - 1)): positive terms, each
    # taken exactly to _FIXED_BITS binary places (d**2 <= 9/16: <= ~110 terms, ~50 us).
    m2, n2 = m * m, n * n
    numerator, denominator = m2, n
    total = 0
    k = 1
    while True:
        term = (numerator << _FIXED_BITS) // (denominator * (2 * k) * (2 * k - 1))
        if term == 0:
            break
        total += term
        numerator *= m2
        denominator *= n2
        k += 1
    whole = total >> _FIXED_BITS
    return whole, (total - (whole << _FIXED_BITS)) / (1 << _FIXED_BITS)


def _stirling_error(m: int) -> float:
    """log(m!) - log(sqrt(2 pi m) (m / e)**m) for m > 30, to ~1e-21 absolute."""
    x = 1.0 / m
    x2 = x * x
    total = 0.0
    for coefficient in reversed(_STIRLING):
        total = total * x2 + coefficient
    return total * x
