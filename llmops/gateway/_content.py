"""What of a call's text is stored: everything, a redacted copy, or nothing.

API keys and auth headers are never stored, whatever the mode.
"""

from __future__ import annotations

import functools
import re
from typing import Any

# litellm arguments that carry credentials or live objects: never stored.
_SECRET_KEY = re.compile(
    r"key$|_token$|^token$|secret|password|passwd|credential|auth|headers|cookie|^aws_", re.I
)
_NOT_STORED = {"client", "http_client", "litellm_logging_obj", "logger_fn"}

_REDACTIONS = [
    (re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_\-]{8,}"), "[API_KEY]"),
    (re.compile(r"\bBearer\s+[A-Za-z0-9._\-]{8,}", re.I), "Bearer [TOKEN]"),
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "[EMAIL]"),
    (re.compile(r"\b(?:\d[ -]?){13,19}\b"), "[CARD_NUMBER]"),
    (re.compile(r"\+?\d[\d ()-]{7,}\d"), "[PHONE]"),
]


@functools.lru_cache(maxsize=1024)
def _stored(key: str) -> bool:
    return key not in _NOT_STORED and not _SECRET_KEY.search(key)


def safe_params(params: dict[str, Any]) -> dict[str, Any]:
    """The call parameters worth storing: no credentials, no live objects."""
    return {key: value for key, value in params.items() if _stored(key)}


def redact(text: str) -> str:
    """Mask e-mail addresses, phone and card numbers, and API keys in ``text``."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


def _redact_content(content: Any) -> Any:
    if isinstance(content, str):
        return redact(content)
    if isinstance(content, list):
        return [
            {**part, "text": redact(part["text"])}
            if isinstance(part, dict) and isinstance(part.get("text"), str)
            else part
            for part in content
        ]
    return content


def stored_request(
    mode: str, messages: list[dict[str, Any]], params: dict[str, Any]
) -> dict[str, Any]:
    """The ``request`` column: messages (per ``mode``) and the safe parameters."""
    params = safe_params(params)
    if mode == "full":
        return {"messages": messages, "params": params}
    if mode == "redact":
        return {
            "messages": [
                {**m, "content": _redact_content(m.get("content"))} if isinstance(m, dict) else m
                for m in messages
            ],
            "params": params,
        }
    return {"messages": None, "params": params}


def stored_response(mode: str, text: str | None) -> str | None:
    """The ``response_text`` column per ``mode``."""
    if text is None or mode == "none":
        return None
    return redact(text) if mode == "redact" else text
