"""Money as people read it: the CLI and the dashboard show amounts the same way."""

from __future__ import annotations

import math

__all__ = ["DASH", "amount", "axis_format", "usd"]

DASH = "—"  # no value


def usd(value: float | None) -> str:
    """``$1,234.56``; small amounts keep two significant digits (``$0.0042``)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return DASH
    if value == 0:
        return "$0.00"
    size = abs(value)
    decimals = 2 if size >= 0.1 else min(10, 1 - math.floor(math.log10(size)))
    text = f"{size:,.{decimals}f}"
    if not text.strip("0.,"):  # rounds to nothing: a sum's float residue, not "-$0.00"
        return "$0.00"
    if decimals > 2:
        text = text.rstrip("0")
        whole, _, fraction = text.partition(".")
        text = f"{whole}.{fraction.ljust(2, '0')}"
    return f"-${text}" if value < 0 else f"${text}"


def amount(value: float | None) -> float | None:
    """A sum of money for JSON and CSV: rounded to 1e-10 USD, so that the noise of summing
    floats (``0.0009251000000000001``) does not show; far below any price's resolution."""
    return None if value is None else round(value, 10) + 0.0  # never -0.0


def axis_format(largest: float | None) -> str:
    """A d3 format for a USD axis whose values go up to ``largest``: enough decimals that
    ticks are told apart (``$,.2f`` from $1, ``$,.4f`` for fractions of a cent, ...)."""
    if largest is None or not math.isfinite(largest) or abs(largest) >= 1:
        return "$,.2f"
    size = abs(largest)
    if size == 0:
        return "$,.2f"
    # ticks are about a fifth of the largest value apart: two significant digits of that
    decimals = min(10, max(2, 1 - math.floor(math.log10(size / 5))))
    return f"$,.{decimals}f"
