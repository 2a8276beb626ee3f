"""Text that apps and their end users chose (user ids, model names, tags, feedback names),
as every place that shows it must treat it."""

from __future__ import annotations

__all__ = ["INVISIBLE"]

INVISIBLE = frozenset(
    [*range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2060, 0x206A), 0xFEFF]
)
"""Code points that reorder or hide text where it is shown: bidirectional overrides and
isolates (U+202E shows "yan" as "nay" and turns the rest of a line around with it),
zero-width characters and joiners. The CLI escapes them, the dashboard leaves them out."""
