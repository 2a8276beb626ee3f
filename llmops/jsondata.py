"""Data for JSON, which has no NaN or Infinity: what every JSON that llmops writes for
people and tools (``--json``, webhook bodies, the audit report) passes through."""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

__all__ = ["finite"]


def finite(value: Any, *, dates: bool = False) -> Any:
    """``value`` with every NaN or infinite float as None (null), through dicts, lists and
    tuples; with ``dates``, datetimes and dates as ISO strings and keys as strings too."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {
            (str(key) if dates else key): finite(item, dates=dates) for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [finite(item, dates=dates) for item in value]
    if dates and isinstance(value, datetime | date):
        return value.isoformat()
    return value
