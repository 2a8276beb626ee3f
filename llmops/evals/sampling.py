"""Reproducible samples of recorded calls: ``--sample 50`` or ``--sample 5%`` with a seed.

Each call gets a pseudo-random key from the seed and its id (the first 8 bytes of a
SHA-256, as a number in [0, 1)). ``--sample N`` keeps the N calls with the smallest keys;
``--sample P%`` keeps each call whose key is below P/100. Because the key depends on the
call alone, not on the order or the other calls, the same seed picks the same calls every
time, overlapping time ranges agree on the calls they share, and distinct ids make every
call equally likely (through SHA-256, even for ids in time order): a uniform sample, in
memory of N keys at most.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from llmops.errors import ConfigError

T = TypeVar("T")

MAX_SAMPLE = 1_000_000
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(%?)\s*")


@dataclass(frozen=True)
class SampleSize:
    """``count`` calls, or a ``fraction`` (0, 1] of them."""

    count: int | None = None
    fraction: float | None = None

    def __str__(self) -> str:
        if self.count is not None:
            return str(self.count)
        return f"{(self.fraction or 0) * 100:g}%"


def parse_sample(text: str, option: str = "--sample") -> SampleSize:
    """``50`` (a number of calls, 1 to 1,000,000) or ``5%`` (more than 0, at most 100)."""
    match = _SIZE.fullmatch(text)
    if match is None:
        raise ConfigError(f"{option} {text!r}: expected a number of calls (50) or a share (5%)")
    number, percent = float(match[1]), bool(match[2])
    if percent:
        if not 0 < number <= 100:
            raise ConfigError(f"{option} {text!r}: a share must be more than 0% and at most 100%")
        return SampleSize(fraction=number / 100)
    if number != int(number) or not 1 <= number <= MAX_SAMPLE:
        raise ConfigError(
            f"{option} {text!r}: expected a whole number of calls, 1 to {MAX_SAMPLE:,}"
        )
    return SampleSize(count=int(number))


def sample_key(seed: int, call_id: str) -> float:
    """The call's place in the seed's random order: a number in [0, 1)."""
    digest = hashlib.sha256(f"{seed}:{call_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def sample(
    items: Iterable[tuple[str, T]], size: SampleSize | None, seed: int
) -> Iterator[tuple[str, T]]:
    """The sampled ``(id, item)`` pairs (all of them without a size), in their input order
    for a share and in key order for a count."""
    if size is None:
        yield from items
        return
    if size.fraction is not None:
        threshold = size.fraction
        for call_id, item in items:
            if threshold >= 1 or sample_key(seed, call_id) < threshold:
                yield call_id, item
        return
    count = size.count or 0
    heap: list[tuple[float, str, int]] = []  # (-key, id, position): the `count` smallest keys
    kept: dict[int, tuple[str, T]] = {}
    for position, (call_id, item) in enumerate(items):
        entry = (-sample_key(seed, call_id), call_id, position)
        if len(heap) < count:
            heapq.heappush(heap, entry)
            kept[position] = (call_id, item)
        elif entry > heap[0]:
            _, _, dropped = heapq.heapreplace(heap, entry)
            del kept[dropped]
            kept[position] = (call_id, item)
    for _, _, position in sorted(heap, key=lambda e: (-e[0], e[1])):
        yield kept[position]


def share_of(total: int, size: SampleSize | None) -> int:
    """About how many of ``total`` calls a sample keeps (for a dry run's estimate)."""
    if size is None:
        return total
    if size.count is not None:
        return min(total, size.count)
    return math.ceil(total * (size.fraction or 0))
