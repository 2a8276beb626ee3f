"""Text that apps and their end users chose (user ids, model names, tags, feedback names),
as every place that shows it must treat it."""

from __future__ import annotations

__all__ = ["CONTROL", "INVISIBLE", "printable"]

INVISIBLE = frozenset(
    [*range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2060, 0x206A), 0xFEFF]
)
"""Code points that reorder or hide text where it is shown: bidirectional overrides and
isolates (U+202E shows "yan" as "nay" and turns the rest of a line around with it),
zero-width characters and joiners. Tables show them escaped (:func:`printable`); the
dashboard's markdown leaves them out."""

CONTROL = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0)) if code != 0x09}
"""Control characters (but the tab) -> their escape, for ``str.translate``."""

_UNPRINTABLE = {**CONTROL, 0x09: "\\t", **{code: f"\\u{code:04x}" for code in INVISIBLE}}


def printable(text: str) -> str:
    """A value apps or end users chose (a user id, a model name) as a terminal or a table
    can show it: control characters, bidirectional overrides and zero-width marks escaped
    (``\\x1b``, ``\\u202e``), so that none clears the screen, forges a row or reorders
    text, and each can be seen."""
    return text.translate(_UNPRINTABLE)
