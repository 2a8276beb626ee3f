"""Money as people read it: the CLI and the dashboard show amounts the same way."""

from __future__ import annotations

import math

__all__ = ["DASH", "usd"]

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
    if decimals > 2:
        text = text.rstrip("0")
        whole, _, fraction = text.partition(".")
        text = f"{whole}.{fraction.ljust(2, '0')}"
    return f"-${text}" if value < 0 else f"${text}"
