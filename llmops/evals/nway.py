"""Several prompt versions side by side: every pair tested, for information.

The same unit and test as the candidate-vs-baseline gate (:mod:`llmops.evals.stats`), made
two-sided because no version is "the new one":

- For a pair (A, B) on one model, among the cases both completed, ``a`` cases have a higher
  pass fraction with A and ``b`` with B. The exact two-sided sign test (McNemar's test
  without repeats) gives ``p = min(1, 2 P(X <= min(a, b)))``, X ~ Binomial(a + b, 1/2).
- The p-values are Holm-adjusted over every pair of one suite (all its models), so a
  five-version table does not make ten chances of a false "differs".
- A pair *differs* when the adjusted p is below ``alpha``, two-sided (0.05 by default: twice
  the suite's one-sided regression alpha); otherwise the two are indistinguishable with
  these cases.

Nothing here gates: the exit code is the candidate-vs-baseline rule's alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from llmops.evals.binomial import two_sided
from llmops.evals.stats import Interval, holm, pass_fraction, rate

#: Per-case pass flags (one per repeat, None for an errored repeat) of one version.
Results = Mapping[str, Sequence[bool | None]]


@dataclass
class Pair:
    """Two versions on one model, case by case."""

    first: str
    second: str
    first_better: list[str] = field(default_factory=list)  # higher pass fraction with first
    second_better: list[str] = field(default_factory=list)
    paired: int = 0  # cases both completed
    errored: list[str] = field(default_factory=list)  # no completed repeat in either
    p_value: float = 1.0  # exact, two-sided
    alpha: float = 0.05  # two-sided
    adjusted_p: float | None = None  # Holm over the suite's pairs
    tests: int = 1  # pairs in Holm's family

    @property
    def holm_p(self) -> float:
        return self.p_value if self.adjusted_p is None else self.adjusted_p

    @property
    def significant(self) -> bool:
        return len(self.first_better) != len(self.second_better) and self.holm_p < self.alpha

    @property
    def better(self) -> str | None:
        """The version that is significantly better, or None."""
        if not self.significant:
            return None
        return self.first if len(self.first_better) > len(self.second_better) else self.second

    @property
    def verdict(self) -> str:
        if self.better is not None:
            worse = self.second if self.better == self.first else self.first
            return f"{self.better} better than {worse}"
        return "indistinguishable"


@dataclass
class Ranked:
    """One version in the ranking: its pass rate and the versions it differs from."""

    key: str
    interval: Interval
    better_than: list[str] = field(default_factory=list)
    worse_than: list[str] = field(default_factory=list)
    same_as: list[str] = field(default_factory=list)  # indistinguishable


@dataclass
class NWay:
    """Every version of one suite on one model: pass rates and every pair."""

    model: str
    intervals: dict[str, Interval]  # version key -> pass rate over cases
    pairs: list[Pair]

    def ranking(self) -> list[Ranked]:
        """Versions by pass rate, best first (ties in the suite's order; no rate last)."""
        order = sorted(
            self.intervals,
            key=lambda k: -self.intervals[k].rate if not math.isnan(self.intervals[k].rate) else 2,
        )
        ranked = {key: Ranked(key, self.intervals[key]) for key in order}
        for pair in self.pairs:
            winner = pair.better
            if winner is None:
                ranked[pair.first].same_as.append(pair.second)
                ranked[pair.second].same_as.append(pair.first)
                continue
            loser = pair.second if winner == pair.first else pair.first
            ranked[winner].better_than.append(loser)
            ranked[loser].worse_than.append(winner)
        return [ranked[key] for key in order]


def pair(
    first: str, first_results: Results, second: str, second_results: Results, alpha: float
) -> Pair:
    """The two-sided exact sign test of two versions over the cases both completed."""
    found = Pair(first, second, alpha=alpha)
    for case in sorted(set(first_results) & set(second_results)):
        a, b = pass_fraction(first_results[case]), pass_fraction(second_results[case])
        if a is None or b is None:
            found.errored.append(case)
            continue
        found.paired += 1
        if a > b:
            found.first_better.append(case)
        elif b > a:
            found.second_better.append(case)
    a_count, b_count = len(found.first_better), len(found.second_better)
    found.p_value = two_sided(a_count, a_count + b_count)
    return found


def compare_all(groups: Mapping[str, Mapping[str, Results]], alpha: float) -> dict[str, NWay]:
    """Model -> the N-way comparison of its versions (version key -> per-case results, in
    the suite's order): every pair, Holm-adjusted over all pairs of all models."""
    found = {}
    for model, versions in groups.items():
        keys = list(versions)
        pairs = [
            pair(keys[i], versions[keys[i]], keys[j], versions[keys[j]], alpha)
            for i in range(len(keys))
            for j in range(i + 1, len(keys))
        ]
        found[model] = NWay(model, {k: rate(versions[k]) for k in keys}, pairs)
    every = [p for nway in found.values() for p in nway.pairs]
    for each, adjusted in zip(every, holm([p.p_value for p in every]), strict=True):
        each.adjusted_p = adjusted
        each.tests = len(every)
    return found
