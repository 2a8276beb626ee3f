"""Response bodies of the OpenAI Chat Completions and Anthropic Messages APIs (internal)."""

from __future__ import annotations

from typing import Any

from llmops.testing._reply import Usage

SYSTEM_FINGERPRINT = "fp_llmops_fake"

_OPENAI_ERROR_TYPES = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", "permission_denied"),
    404: ("invalid_request_error", "model_not_found"),
    408: ("timeout_error", "timeout"),
    409: ("conflict_error", "conflict"),
    422: ("invalid_request_error", "unprocessable_entity"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    503: ("server_error", "service_unavailable"),
}

_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}

_ANTHROPIC_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


# --- OpenAI -------------------------------------------------------------------------------


def openai_usage(usage: Usage) -> dict[str, Any]:
    """An OpenAI ``usage`` object: cached tokens inside prompt, reasoning inside completion."""
    return {
        "prompt_tokens": usage.prompt,
        "completion_tokens": usage.completion,
        "total_tokens": usage.prompt + usage.completion,
        "prompt_tokens_details": {"cached_tokens": usage.cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": usage.reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def openai_completion(
    *,
    response_id: str,
    created: int,
    model: str,
    text: str,
    finish_reason: str,
    usage: Usage | None,
) -> dict[str, Any]:
    """A non-streaming ``chat.completion`` object."""
    body: dict[str, Any] = {
        "id": response_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
    }
    if usage is not None:
        body["usage"] = openai_usage(usage)
    return body


def openai_chunk(
    *,
    response_id: str,
    created: int,
    model: str,
    delta: dict[str, Any] | None,
    finish_reason: str | None = None,
    usage: Usage | None = None,
) -> dict[str, Any]:
    """A ``chat.completion.chunk``; ``delta=None`` makes the final usage chunk (no choices)."""
    chunk: dict[str, Any] = {
        "id": response_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": []
        if delta is None
        else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }
    if usage is not None:
        chunk["usage"] = openai_usage(usage)
    return chunk


def openai_error(status: int, message: str | None) -> dict[str, Any]:
    """``{"error": {"message", "type", "code", "param"}}`` for an HTTP error status."""
    error_type, code = _OPENAI_ERROR_TYPES.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None)
    )
    return {
        "error": {
            "message": message if message is not None else f"Fake error (HTTP {status})",
            "type": error_type,
            "param": None,
            "code": code,
        }
    }


# --- Anthropic ----------------------------------------------------------------------------


def anthropic_stop_reason(finish_reason: str) -> str:
    """The Anthropic ``stop_reason`` for an OpenAI ``finish_reason``."""
    return _ANTHROPIC_STOP_REASONS.get(finish_reason, finish_reason)


def anthropic_usage(usage: Usage, *, output_tokens: int | None = None) -> dict[str, Any]:
    """An Anthropic ``usage`` object: ``input_tokens`` excludes cache reads and writes."""
    return {
        "input_tokens": usage.anthropic_input,
        "output_tokens": usage.completion if output_tokens is None else output_tokens,
        "cache_creation_input_tokens": usage.cache_write,
        "cache_read_input_tokens": usage.cached,
    }


def anthropic_message(
    *,
    message_id: str,
    model: str,
    text: str | None,
    finish_reason: str | None,
    usage: Usage | None,
) -> dict[str, Any]:
    """A ``message`` object; ``text=None`` gives the empty message of ``message_start``."""
    body: dict[str, Any] = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [] if text is None else [{"type": "text", "text": text}],
        "stop_reason": None if finish_reason is None else anthropic_stop_reason(finish_reason),
        "stop_sequence": None,
    }
    if usage is not None:
        body["usage"] = anthropic_usage(usage)
    return body


def anthropic_error(status: int, message: str | None) -> dict[str, Any]:
    """``{"type": "error", "error": {"type", "message"}}`` for an HTTP error status."""
    error_type = _ANTHROPIC_ERROR_TYPES.get(
        status, "api_error" if status >= 500 else "invalid_request_error"
    )
    return {
        "type": "error",
        "error": {
            "type": error_type,
            "message": message if message is not None else f"Fake error (HTTP {status})",
        },
    }
