"""What of a call's text is stored: everything, a redacted copy, or nothing.

API keys and auth headers are never stored, whatever the mode.
"""

from __future__ import annotations

import os
from typing import Any

from llmops.credentials import REDACTED, scrub, scrub_url, secret_name
from llmops.gateway.redaction import redact, scrub_secrets

# litellm arguments that are live objects, not settings: never stored.
_NOT_STORED = {"client", "http_client", "litellm_logging_obj", "logger_fn"}


def safe_params(params: dict[str, Any]) -> dict[str, Any]:
    """The call parameters worth storing: no credentials (dropped at the top level, masked
    deeper, e.g. in ``extra_body``), no live objects, no passwords in URLs."""
    return {
        key: scrub(value)
        for key, value in params.items()
        if key not in _NOT_STORED and not secret_name(key)
    }


def secret_values(params: dict[str, Any]) -> list[str]:
    """The credential values in a call's parameters and in the environment (``*_API_KEY``
    and the like), longest first: an error message that echoes one must not store it."""
    found: set[str] = set()

    def collect(value: Any, depth: int = 0) -> None:
        if isinstance(value, dict) and depth < 8:
            for key, item in value.items():
                if isinstance(key, str) and secret_name(key) and isinstance(item, str):
                    found.add(item)
                else:
                    collect(item, depth + 1)

    collect(params)
    found.update(v for k, v in os.environ.items() if secret_name(k))
    return sorted((v for v in found if len(v) >= 8), key=len, reverse=True)


def scrub_error(message: str, params: dict[str, Any]) -> str:
    """A provider error message without the credentials it may echo."""
    for value in secret_values(params):
        if value in message:
            message = message.replace(value, REDACTED)
    return scrub_secrets(scrub_url(message))


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
    mode: str,
    messages: list[dict[str, Any]],
    params: dict[str, Any],
    variables: dict[str, Any] | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The ``request`` column: messages, the prompt's variables and the tool calls the model
    answered with (per ``mode``: all, redacted or none of them), and the safe parameters."""
    params = safe_params(params)
    if mode == "none":
        return {"messages": None, "params": params}
    stored: dict[str, Any] = {"params": params}
    if mode == "full":
        stored["messages"] = messages
    else:
        stored["messages"] = [
            {**m, "content": _redact_content(m.get("content"))} if isinstance(m, dict) else m
            for m in messages
        ]
    if variables:
        stored["variables"] = scrub(variables) if mode == "full" else _redact_deep(variables)
    if tool_calls:
        stored["tool_calls"] = tool_calls if mode == "full" else _redact_deep(tool_calls)
    return stored


def _redact_deep(value: Any, depth: int = 0) -> Any:
    """Every text in ``value`` (dicts and lists, to a bounded depth) redacted; credentials
    under secret names masked."""
    if isinstance(value, str):
        return redact(value)
    if depth > 32:
        return "[too deep]"
    if isinstance(value, dict):
        return {
            key: REDACTED
            if isinstance(key, str) and secret_name(key)
            else _redact_deep(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact_deep(v, depth + 1) for v in value]
    return value


def stored_response(mode: str, text: str | None) -> str | None:
    """The ``response_text`` column per ``mode``."""
    if text is None or mode == "none":
        return None
    return redact(text) if mode == "redact" else text
