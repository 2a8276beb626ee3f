"""Tails of the fair-coin binomial distribution, fast and to nearly full float precision.

X ~ Binomial(n, 1/2) is the number of ``b`` flips among the n discordant pairs of the exact
McNemar (sign) test. :func:`two_sided` is its two-sided p-value; :func:`tail_at_least` and
:func:`tail_at_most` are the one-sided tails. Standard library only.

How a tail is computed. By symmetry every tail is the smaller tail P(X <= j) with j < n / 2,
or one minus it (which is at least 1/2, so nothing cancels). Two routes:

* exact, when n <= ``EXACT_N`` or j <= ``EXACT_J``: the sum of C(n, i) over i <= j as one
  Python integer, divided by 2**n. Python rounds an integer ratio correctly, subnormals
  included, so the result is the correctly rounded float of the exact value, identical to
  the old quadratic ``sum(math.comb(...)) / 2**n``. It costs j big-integer steps of about
  n bits: ~1 ms at n = 2,000, and nothing at all when j is tiny (for n beyond ~1,500 and
  j <= ``EXACT_J`` the tail is below 2**-1075 and comes out as 0.0 without dividing).
* saddle point, otherwise: the largest term of the tail, t_j = C(n, j) / 2**n, in the form of
  Loader (2000), "Fast and accurate computation of binomial probabilities", specialised to
  p = 1/2 (no cancellation between large logarithms, unlike ``lgamma``):

      log t_j = -n K(d) - log(2 pi j (n - j) / n) / 2 + s(n) - s(j) - s(n - j)

  where d = (n - 2j) / n, K(d) = ((1+d) log1p(d) + (1-d) log1p(-d)) / 2 = n-scaled
  Kullback-Leibler divergence of j/n from 1/2 (a sum of positive terms d**2k / (2k(2k-1))),
  and s(m) = log(m!) - log(sqrt(2 pi m) (m/e)**m) is Stirling's error, from its asymptotic
  series (m > 30 here, where six terms are exact to 1e-19). n K(d) is evaluated as
  (n - 2j)**2 / (2n) (an exact integer ratio, rounded once) times 1 + d**2/6 + d**4/15 +
  ..., so log t_j carries an absolute error of a few units of 1e-16 times |log t_j|: at
  most ~2e-13 relative in t_j for any t_j above the float range's bottom (|log t_j| < 745).
  Then t_{i-1} = t_i * i / (n - i + 1) walks outwards, the terms shrinking, until they no
  longer change the sum in double precision: O(sqrt(n)) terms near the centre (about
  4.5 sqrt(n)), a handful in a far tail. Each step rounds once, so a term k steps out carries
  at most k rounding errors; weighted by the terms that is about sqrt(n) / 2 * 1.1e-16 at
  worst near the centre (5e-14 at n = 1e6), far less in practice (errors average out).

Accuracy (measured against exact rationals by tests/evals/test_binomial.py and by the
sampling in benchmarks/mcnemar.py --accuracy): relative error below 1e-13 wherever the true
value is at least 2.2e-308 (the smallest normal float). Below that, in the subnormal range,
the result is within a couple of units of 2**-1074 of the true value (the old exact
function gives the correctly rounded subnormal), and a true value below 2**-1075 ~ 2.5e-324
comes out as 0.0, as it does from the exact division. Running time: O(1) + O(sqrt(n)) float
steps, about 1 ms at n = 1,000,000 near the centre.
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
_SCALE = 128  # extra binary exponent used to keep exp() normal near the bottom of the range
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

    ``min(1, 2 * min(P(X <= k), P(X >= k)))``, 1.0 for n = 0; the same definition as
    ``llmops.evals.stats.binomial_two_sided``, and the same float for n <= ``EXACT_N``.
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
    whole, rest = _n_kl(j, n)  # n K(d) = whole + rest, whole an integer
    # log t_j = -whole + rest_of_log: the large integer part is kept apart and exact
    rest_of_log = (
        -rest
        - 0.5 * (_LOG_2PI + math.log(j) + math.log1p(-j / n))
        + _stirling_error(n)
        - _stirling_error(j)
        - _stirling_error(n - j)
    )
    # Terms shrink outwards at least geometrically (the ratio i / (n - i + 1) falls with i),
    # so the tail is at most t_j / (1 - r_j): give up early when even that underflows.
    ratio = j / (n - j + 1)
    if rest_of_log - whole - math.log1p(-ratio) < -746.0:
        return 0.0
    total = 1.0  # sum of t_i / t_j, from i = j outwards
    compensation = 0.0  # Neumaier's compensated summation
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
    if rest_of_log - whole > -700.0:
        # exp of an exact integer and of a moderate number: each within an ulp or so
        return math.exp(-whole) * (math.exp(rest_of_log) * total)
    # near or below the smallest normal float: scale up, then round once into the subnormals
    scaled = math.exp((rest_of_log - whole) + _SCALE * _LN2) * total
    return math.ldexp(scaled, -_SCALE)


def _n_kl(j: int, n: int) -> tuple[int, float]:
    """n K(d), d = (n - 2j) / n (n times the divergence of j / n from 1/2), as an integer
    plus a float, so that the float's rounding error is relative to the smaller part."""
    m = n - 2 * j
    if 4 * m > 3 * n:
        # d > 0.75 (j < n / 8): the series converges slowly, and the closed form
        # j log(2j / n) + (n - j) log(2 (n - j) / n) cancels by up to 3x, which in floats
        # costs ~4e-13 near the bottom of the range; 40 decimal digits cost ~60 us.
        from decimal import Context

        context = Context(prec=40)
        value = context.add(
            context.multiply(j, context.ln(context.divide(2 * j, n))),
            context.multiply(n - j, context.ln(context.divide(2 * (n - j), n))),
        )
        whole = int(value)
        return whole, float(context.subtract(value, whole))
    # n K(d) = m**2 / (2n) * (1 + d**2 / 6 + d**4 / 15 + ...), the bracket's k-th term being
    # 2 d**(2k - 2) / (2k (2k - 1)): all positive; m**2 / (2n) is split exactly.
    d2 = (m * m) / (n * n)
    power = d2
    correction = 0.0
    k = 2
    while True:
        step = 2.0 * power / (2 * k * (2 * k - 1))
        if correction + step == correction:
            break
        correction += step
        power *= d2
        k += 1
    whole, remainder = divmod(m * m, 2 * n)
    return whole, remainder / (2 * n) + (m * m / (2 * n)) * correction


def _stirling_error(m: int) -> float:
    """log(m!) - log(sqrt(2 pi m) (m / e)**m) for m > 30, to ~1e-21 absolute."""
    x = 1.0 / m
    x2 = x * x
    total = 0.0
    for coefficient in reversed(_STIRLING):
        total = total * x2 + coefficient
    return total * x
