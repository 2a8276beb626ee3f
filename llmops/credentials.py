"""Credentials: recognise them by name and in URLs, and mask them in any structure.

llmops never stores a credential: not in a column, a journal line, a log message or an
error. This module is the one place that knows what a credential looks like by its key
(``api_key``, ``x-api-key``, ``access_token``, ``password``, ``Authorization``, ...) or in a
URL (``https://user:password@host``, ``?key=...``). Free-text scanning for keys and personal
data is :mod:`llmops.gateway.redaction`.
"""

from __future__ import annotations

import functools
import re
from typing import Any

REDACTED = "[REDACTED]"

# Argument and metadata keys that name a credential (compared without case, "_" or "-"):
# their values are never stored, at any depth.
_SECRET_NAME = re.compile(
    r"apikey|secret|passw|passphrase|pwd$|credential|privatekey|accesskey|sessionkey|"
    r"token$|authorization|^auth$|^authheader|cookie|signature$|^headers$|^extraheaders$"
)
REDACTED = "[REDACTED]"
# user:password@ in URLs, and credentials in query strings (?key=..., &access_token=...)
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)([^\s/@:?#]*):[^\s/@?#]*@")
_URL_QUERY_SECRET = re.compile(
    r"(?i)([?&](?:api[_-]?key|key|token|access[_-]?token|secret|password|sig|signature)=)"
    r"[^&#\s\"']+"
)


@functools.lru_cache(maxsize=4096)
def secret_name(key: str) -> bool:
    """Whether a parameter or metadata key names a credential (``api_key``, ``x-api-key``,
    ``access_token``, ``password``, ``Authorization``, ...); ``max_tokens`` does not."""
    return bool(_SECRET_NAME.search(key.lower().replace("_", "").replace("-", "")))


def scrub_url(text: str) -> str:
    """``text`` with passwords in URLs and credentials in query strings masked."""
    if len(text) <= 512:  # api_base and the like: the same few strings on every call
        return _scrub_short_url(text)
    return _scrub_url(text)


@functools.lru_cache(maxsize=4096)
def _scrub_short_url(text: str) -> str:
    return _scrub_url(text)


def _scrub_url(text: str) -> str:
    if "://" in text:
        text = _URL_PASSWORD.sub(rf"\1\2:{REDACTED}@", text)
    if "=" in text and ("?" in text or "&" in text):
        text = _URL_QUERY_SECRET.sub(rf"\1{REDACTED}", text)
    return text


def scrub(value: Any, *, _seen: frozenset[int] = frozenset()) -> Any:
    """A copy of ``value`` with the values of secret-named keys (at any depth) and the
    credentials in URLs masked. Objects other than dicts, lists and strings pass as they are
    (the writer makes them JSON)."""
    if isinstance(value, str):
        return scrub_url(value)
    if not isinstance(value, dict | list | tuple):
        return value
    if id(value) in _seen or len(_seen) > 64:
        return "[circular]" if id(value) in _seen else "[too deep]"
    seen = _seen | {id(value)}
    if isinstance(value, dict):
        return {
            key: (REDACTED if item is not None else None)
            if isinstance(key, str) and secret_name(key)
            else scrub(item, _seen=seen)
            for key, item in value.items()
        }
    return [scrub(item, _seen=seen) for item in value]
