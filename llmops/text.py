"""Text that apps and their end users chose (user ids, model names, tags, feedback names),
as every place that shows it must treat it."""

from __future__ import annotations

__all__ = ["CONTROL", "INVISIBLE", "NONCHARACTERS", "escaped", "printable"]

INVISIBLE = frozenset(
    [*range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2060, 0x206A), 0xFEFF,
     0x061C, 0x180E, *range(0xE0000, 0xE0080)]
)  # fmt: skip
"""Code points that reorder or hide text where it is shown: bidirectional overrides,
isolates and marks (U+202E shows "yan" as "nay" and turns the rest of a line around with
it; U+061C), zero-width characters and joiners (U+180E too), and the tag characters
(U+E0000-U+E007F: invisible ASCII a model reads). Tables show them escaped
(:func:`printable`); the dashboard's markdown leaves them out."""

CONTROL = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0)) if code != 0x09}
"""Control characters (but the tab) -> their escape, for ``str.translate``."""


def escaped(code: int) -> str:
    """A code point as Python writes it in a string: ``\\u202e``, ``\\U000e0041``."""
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


NONCHARACTERS = frozenset(
    [
        *range(0xFDD0, 0xFDF0),
        *(p + e for p in range(0, 0x110000, 0x10000) for e in (0xFFFE, 0xFFFF)),
    ]
)
"""Code points Unicode keeps out of text (U+FFFE, U+1FFFF, ...), which HTML forbids."""

_UNPRINTABLE = {
    **CONTROL,
    0x09: "\\t",
    **{code: escaped(code) for code in INVISIBLE | NONCHARACTERS},
}
_IN_LINES = {code: text for code, text in _UNPRINTABLE.items() if code not in (0x09, 0x0A)}


def printable(text: str, *, lines: bool = False) -> str:
    """A value apps or end users chose (a user id, a model name) as a terminal or a table
    can show it: control characters, bidirectional overrides, zero-width marks and
    non-characters escaped (``\\x1b``, ``\\u202e``), so that none clears the screen, forges a
    row or reorders text, and each can be seen. ``lines``: line breaks and tabs kept (a
    prompt's text, a diff)."""
    return text.translate(_IN_LINES if lines else _UNPRINTABLE)
