"""McNemar p-values: the old quadratic exact sum against `llmops.evals.binomial.two_sided`.

The old `llmops.evals.stats.binomial_two_sided(k, n)` (copied here as `quadratic_two_sided`,
since stats now calls the new module) sums `math.comb(n, i)` over i <= min(k, n - k) and
divides by 2**n: exact, but quadratic (3 to 8 s a call at n = 10,000 discordant pairs;
n = 50,000 does not finish). `llmops.evals.binomial.two_sided` computes the same p-value in
O(sqrt(n)) float steps (exactly, with integers, up to n = 2,000).

Timing: for n = 1e3, 3e3, 1e4, 1e5 and 1e6 discordant pairs and two k each, k at the 1%
two-sided tail (n/2 - 2.576 sqrt(n)/2) and next to the centre (n/2 - 1), both functions run
in turn, `--repeats` times (default 3), and the table shows medians per call, the speed-up
and the relative difference between the two p-values. The old function runs only up to
`--old-max-n` (default 10,000; larger n are skipped with a note). The new one runs in a loop
of at least 20 ms per repeat, so that its small times are measurable.

`--accuracy` measures instead, against exact integer arithmetic (C(n, i) summed as Python
integers, exact up to n = 20,000; beyond, stopped once what is left is below 2**-100 of the
sum), the relative error of `tail_at_most` (and of its complement) and of the saddle-point
route alone (`_lower`, also for n <= 2,000 where the public functions are exact) on a seeded
sample: about 50 n from 63 to 20,000 (and `--big-n`, default 100,000), each at the centre,
the 1% tail, 5, 10 and 18 standard deviations out, where the tail meets 1e-295 ... 1e-324
(the bottom of the float range), and three random k. It reports the largest error by band of
true value: >= 1e-300, normal below 1e-300, subnormal (error in units of 2**-1074) and
"rounds to zero" (the result should be 0.0). About 5 s; `--big-n 1000000` adds about 20 s.

Usage: python benchmarks/mcnemar.py [--repeats R] [--old-max-n N]
       python benchmarks/mcnemar.py --accuracy [--seed S] [--big-n N [N ...]]
"""

from __future__ import annotations

import argparse
import math
import random
import time
from collections.abc import Callable
from fractions import Fraction

from _common import median

from llmops.evals import binomial
from llmops.evals.binomial import tail_at_most, two_sided

SIZES = (1_000, 3_000, 10_000, 100_000, 1_000_000)
SMALLEST_NORMAL = 2.2250738585072014e-308


def quadratic_two_sided(k: int, n: int) -> float:
    """The old llmops.evals.stats.binomial_two_sided, verbatim."""
    if n == 0:
        return 1.0
    k = min(k, n - k)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def timed(call: Callable[[], float], repeats: int, min_seconds: float) -> tuple[float, float]:
    """(median seconds per call, result): each repeat loops until min_seconds have passed."""
    times, result = [], math.nan
    for _ in range(repeats):
        calls, start = 0, time.perf_counter()
        while True:
            result = call()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                break
        times.append(elapsed / calls)
    return median(times), result


def run_timing(repeats: int, old_max_n: int) -> None:
    print(f"median of {repeats} repeats per cell; old = quadratic_two_sided (the "
          "old stats.binomial_two_sided), new = binomial.two_sided")  # fmt: skip
    header = (
        f"{'n':>9} {'k':>8} {'k is':<10} {'old s/call':>11} {'new ms/call':>12} "
        f"{'speed-up':>9} {'p-value (new)':>14} {'rel. diff':>10}"
    )
    print(header)
    print("-" * len(header))
    largest, skipped = 0.0, []
    for n in SIZES:
        for label, k in (
            ("1% tail", round(n / 2 - 2.576 * math.sqrt(n) / 2)),
            ("centre-1", n // 2 - 1),
        ):
            new_s, new_p = timed(lambda k=k, n=n: two_sided(k, n), repeats, 0.02)
            if n <= old_max_n:
                old_s, old_p = timed(lambda k=k, n=n: quadratic_two_sided(k, n), repeats, 0.0)
                diff = abs(new_p - old_p) / old_p
                largest = max(largest, diff)
                old_text, ratio, diff_text = f"{old_s:.4f}", f"{old_s / new_s:,.0f}x", f"{diff:.1e}"
            else:
                old_text, ratio, diff_text = "skipped", "", ""
                skipped.append(n)
            print(
                f"{n:>9,} {k:>8,} {label:<10} {old_text:>11} {new_s * 1e3:>12.3f} {ratio:>9} "
                f"{new_p:>14.6g} {diff_text:>10}"
            )
    print(f"\nlargest relative difference new vs old where both ran: {largest:.2e}")
    if skipped:
        sizes = ", ".join(f"{n:,}" for n in sorted(set(skipped)))
        print(f"old function skipped at n = {sizes}: quadratic (seconds a call at 1e4, "
              "n = 5e4 does not finish); --old-max-n to force")  # fmt: skip


# --- accuracy --------------------------------------------------------------------------


def _primes(limit: int) -> list[int]:
    sieve = bytearray([1]) * (limit + 1)
    sieve[:2] = b"\0\0"
    for p in range(2, math.isqrt(limit) + 1):
        if sieve[p]:
            sieve[p * p :: p] = bytes(len(range(p * p, limit + 1, p)))
    return [i for i in range(limit + 1) if sieve[i]]


def exact_comb(n: int, k: int) -> int:
    """C(n, k) from its prime factorisation (Legendre) and a product tree: 0.3 s at
    n = 1e6, k = n/2, where Python 3.11's math.comb takes about 11 s."""
    if k < 2_000:
        return math.comb(n, k)
    factors = []
    for p in _primes(n):
        exponent, power = 0, p
        while power <= n:
            exponent += n // power - k // power - (n - k) // power
            power *= p
        if exponent:
            factors.append(p**exponent)
    while len(factors) > 1:
        factors = [math.prod(factors[i : i + 2]) for i in range(0, len(factors), 2)]
    return factors[0] if factors else 1


def exact_lower(j: int, n: int) -> int:
    """S with P(X <= j) = S / 2**n (exact for n <= 20,000; beyond, to 2**-100 relative)."""
    term = total = exact_comb(n, j)
    for i in range(j, 0, -1):
        term = term * i // (n - i + 1)
        total += term
        if n > 20_000 and term * i < total >> 100:  # what is left is below term * i
            break
    return total


def relative_error(value: float, numerator: int, n: int) -> float:
    """|value - numerator / 2**n| / (numerator / 2**n), without building big Fractions."""
    a, b = value.as_integer_ratio()  # b is a power of two
    return abs((a << n) - numerator * b) / (numerator * b)


def band(exact: float) -> str:
    """The band of a true value, from its correctly rounded float."""
    if exact == 0.0:
        return "rounds to zero"  # the true value is at most 2**-1075
    if exact >= 1e-300:
        return ">= 1e-300"
    return "normal < 1e-300" if exact >= SMALLEST_NORMAL else "subnormal"


def sample_points(n: int, rng: random.Random) -> list[int]:
    sd = math.sqrt(n) / 2
    points = {(n - 1) // 2, n // 2 - 1}
    points |= {round(n / 2 - z * sd) for z in (2.576, 5, 10, 18)}
    for exponent in (-295, -300, -305, -308, -310, -315, -320, -323, -324.4):
        target, low, high = exponent * math.log(10), 0, n // 2
        while low < high:  # log P(X = j) rises with j up to n / 2 (lgamma is plenty here)
            mid = (low + high) // 2
            log_term = math.lgamma(n + 1) - math.lgamma(mid + 1) - math.lgamma(n - mid + 1)
            low, high = (mid + 1, high) if log_term - n * math.log(2) < target else (low, mid)
        points.add(low)
    points |= {rng.randrange(binomial.EXACT_J + 1, (n + 1) // 2) for _ in range(3)}
    return sorted(j for j in points if j > binomial.EXACT_J and 2 * j < n)


def run_accuracy(seed: int, big: list[int]) -> None:
    rng = random.Random(seed)
    sizes = [63, 100, 500, 1_000, 2_000, 2_001, 2_500, 3_001, 5_000, 10_000, 20_000]
    sizes += [round(math.exp(rng.uniform(math.log(63), math.log(20_000)))) for _ in range(40)]
    worst: dict[tuple[str, str], tuple[float, int, int, float]] = {}
    count: dict[tuple[str, str], int] = {}

    def record(route: str, kind: str, error: float, k: int, n: int, value: float) -> None:
        key = (route, kind)
        count[key] = count.get(key, 0) + 1
        if error > worst.get(key, (-1.0,))[0]:
            worst[key] = (error, k, n, value)

    start = time.perf_counter()
    for n in sorted(set(sizes)) + big:
        for j in sample_points(n, rng):
            numerator = exact_lower(j, n)
            kind = band(numerator / (1 << n))  # Python rounds an integer ratio correctly
            for route, value in (
                ("tail_at_most", tail_at_most(j, n)),
                ("saddle point (_lower)", binomial._lower(j, n)),
            ):
                if kind == "rounds to zero":
                    error = 0.0 if value == 0.0 else math.inf
                elif kind == "subnormal":  # in units of 2**-1074
                    error = float(abs(Fraction(value) - Fraction(numerator, 1 << n)) * 2**1074)
                else:
                    error = relative_error(value, numerator, n)
                record(route, kind, error, j, n, value)
            # the complement P(X <= n - 1 - j) = 1 - P(X <= j), by the public function
            complement = tail_at_most(n - 1 - j, n)
            error = relative_error(complement, (1 << n) - numerator, n)
            record("tail_at_most, complement", ">= 1e-300", error, n - 1 - j, n, complement)
    print(f"{len(set(sizes)) + len(big)} values of n up to {max(sizes + big):,}, "
          f"{time.perf_counter() - start:.1f} s")  # fmt: skip
    print(f"{'route':<26} {'true value':<16} {'points':>6} {'max error':>10}  where (k, n, value)")
    for (route, kind), (error, k, n, value) in sorted(worst.items()):
        print(
            f"{route:<26} {kind:<16} {count[route, kind]:>6} {error:>10.2e}  "
            f"k={k:,} n={n:,} value={value:.4g}"
        )
    print("relative errors, except: subnormal, in units of 2**-1074 (4.9e-324); rounds to "
          "zero, 0 when the result is 0.0")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--old-max-n", type=int, default=10_000)
    parser.add_argument("--accuracy", action="store_true", help="errors against exact sums")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--big-n", type=int, nargs="*", default=[100_000])
    args = parser.parse_args()
    if args.accuracy:
        run_accuracy(args.seed, args.big_n)
    else:
        run_timing(args.repeats, args.old_max_n)


if __name__ == "__main__":
    main()
