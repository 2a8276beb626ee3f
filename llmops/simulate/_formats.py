"""Response bodies of the OpenAI, Anthropic, Gemini and Bedrock chat APIs (internal)."""

from __future__ import annotations

import binascii
import json
import struct
from typing import Any

from llmops.simulate._reply import Usage

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
    """An OpenAI ``usage`` object: cached, audio, image and video tokens inside prompt;
    reasoning, audio, image and video tokens inside completion; ``Reply.usage_fields`` last.
    ``image_tokens`` and
    ``video_tokens`` only when there are some; ``cached_tokens_details`` only when some cached
    tokens are audio or image; the cache writes with their 30m/12h split only when the 12-hour
    part is scripted."""
    prompt_details: dict[str, Any] = {
        "cached_tokens": usage.cached,
        "audio_tokens": usage.audio_input,
    }
    if usage.image_input:
        prompt_details["image_tokens"] = usage.image_input
    if usage.cache_type is not None:
        prompt_details["cache_type"] = usage.cache_type
    if usage.video_input:
        prompt_details["video_tokens"] = usage.video_input
    if usage.cached_audio or usage.cached_image:
        prompt_details["cached_tokens_details"] = {
            "text_tokens": usage.cached_text,
            "audio_tokens": usage.cached_audio,
            "image_tokens": usage.cached_image,
        }
    if usage.cache_write_12h is not None:
        prompt_details["cache_write_tokens"] = usage.cache_write
        prompt_details["cache_creation_token_details"] = {
            "ephemeral_30m_input_tokens": usage.cache_write_30m,
            "ephemeral_12h_input_tokens": usage.cache_write_12h,
        }
    completion_details: dict[str, Any] = {
        "reasoning_tokens": usage.reasoning,
        "audio_tokens": usage.audio_output,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    }
    if usage.image_output:
        completion_details["image_tokens"] = usage.image_output
    if usage.video_output:
        completion_details["video_tokens"] = usage.video_output
    sent = {
        "prompt_tokens": usage.prompt,
        "completion_tokens": usage.completion,
        "total_tokens": usage.prompt + usage.completion,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": completion_details,
        **dict(usage.fields),
    }
    return {name: value for name, value in sent.items() if value is not None}


def openai_completion(
    *,
    response_id: str,
    created: int,
    model: str,
    text: str,
    finish_reason: str,
    usage: Usage | None,
    service_tier: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    logprobs: list[float] | None = None,
    url_citations: list[str] | None = None,
) -> dict[str, Any]:
    """A non-streaming ``chat.completion`` object (``service_tier`` only when given)."""
    message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
    if url_citations is not None:
        message["annotations"] = openai_annotations(url_citations, text)
    if tool_calls:
        message["tool_calls"] = [
            {
                "id": call.get("id") or f"call_{index}",
                "type": "function",
                "function": {
                    "name": call["name"],
                    "arguments": call["arguments"]
                    if isinstance(call.get("arguments"), str)
                    else json.dumps(call.get("arguments") or {}),
                },
            }
            for index, call in enumerate(tool_calls)
        ]
        if not text:
            message["content"] = None
    token_logprobs: dict[str, Any] | None = (
        {
            "content": [
                {"token": f"t{i}", "logprob": value, "bytes": None, "top_logprobs": []}
                for i, value in enumerate(logprobs)
            ]
        }
        if logprobs is not None
        else None
    )
    body: dict[str, Any] = {
        "id": response_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": token_logprobs,
                "finish_reason": finish_reason,
            }
        ],
    }
    if service_tier is not None:
        body["service_tier"] = service_tier
    if usage is not None:
        body["usage"] = openai_usage(usage)
    return body


def openai_annotations(urls: list[str], text: str) -> list[dict[str, Any]]:
    """A search model's ``url_citation`` annotations, each over the whole text."""
    return [
        {"type": "url_citation",
         "url_citation": {"url": url, "title": url, "start_index": 0, "end_index": len(text)}}
        for url in urls
    ]  # fmt: skip


def openai_chunk(
    *,
    response_id: str,
    created: int,
    model: str,
    delta: dict[str, Any] | None,
    finish_reason: str | None = None,
    usage: Usage | None = None,
    service_tier: str | None = None,
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
    if service_tier is not None:
        chunk["service_tier"] = service_tier
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
    """An Anthropic ``usage`` object: ``input_tokens`` excludes cache reads and writes.

    ``cache_creation`` (the 5m/1h split), ``server_tool_use``, ``service_tier``,
    ``inference_geo`` and ``speed`` only when scripted.
    """
    body: dict[str, Any] = {
        "input_tokens": usage.anthropic_input,
        "output_tokens": usage.completion if output_tokens is None else output_tokens,
        "cache_creation_input_tokens": usage.cache_write,
        "cache_read_input_tokens": usage.cached,
    }
    if usage.cache_write_1h is not None:
        body["cache_creation"] = {
            "ephemeral_5m_input_tokens": usage.cache_write_5m,
            "ephemeral_1h_input_tokens": usage.cache_write_1h,
        }
    if usage.web_search_requests is not None:
        body["server_tool_use"] = {"web_search_requests": usage.web_search_requests}
    if usage.service_tier is not None:
        body["service_tier"] = usage.service_tier
    if usage.inference_geo is not None:
        body["inference_geo"] = usage.inference_geo
    if usage.speed is not None:
        body["speed"] = usage.speed
    return body


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


# --- Gemini (Google AI Studio generateContent) --------------------------------------------

_GEMINI_FINISH_REASONS = {
    "stop": "STOP",
    "length": "MAX_TOKENS",
    "content_filter": "SAFETY",
    "tool_calls": "STOP",
    "function_call": "STOP",
}

_GEMINI_ERROR_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def gemini_finish_reason(finish_reason: str) -> str:
    """The Gemini ``finishReason`` for an OpenAI ``finish_reason``."""
    return _GEMINI_FINISH_REASONS.get(finish_reason, finish_reason)


def _modalities(text: int, audio: int, image: int, video: int = 0) -> list[dict[str, Any]]:
    details = [{"modality": "TEXT", "tokenCount": text}]
    if audio:
        details.append({"modality": "AUDIO", "tokenCount": audio})
    if image:
        details.append({"modality": "IMAGE", "tokenCount": image})
    if video:
        details.append({"modality": "VIDEO", "tokenCount": video})
    return details


def gemini_usage(usage: Usage) -> dict[str, Any]:
    """A Gemini ``usageMetadata``.

    ``promptTokenCount`` is the whole input (cached included); ``candidatesTokenCount``
    excludes the thoughts (``thoughtsTokenCount``), and ``totalTokenCount`` is prompt +
    candidates + thoughts, as Gemini reports them. ``candidatesTokensDetails`` only when
    there is audio, image or video output; ``thoughtsTokenCount``, ``cachedContentTokenCount``
    (with ``cacheTokensDetails``, by modality) and ``trafficType`` only when there is something
    to report.
    """
    body: dict[str, Any] = {
        "promptTokenCount": usage.prompt,
        "candidatesTokenCount": usage.completion - usage.reasoning,
        "totalTokenCount": usage.prompt + usage.completion,
        "promptTokensDetails": _modalities(
            usage.text_input, usage.audio_input, usage.image_input, usage.video_input
        ),
    }
    if usage.audio_output or usage.image_output or usage.video_output:
        body["candidatesTokensDetails"] = _modalities(
            usage.text_output, usage.audio_output, usage.image_output, usage.video_output
        )
    if usage.reasoning:
        body["thoughtsTokenCount"] = usage.reasoning
    if usage.cached:
        body["cachedContentTokenCount"] = usage.cached
        body["cacheTokensDetails"] = _modalities(
            usage.cached_text, usage.cached_audio, usage.cached_image
        )
    if usage.traffic_type is not None:
        body["trafficType"] = usage.traffic_type
    return body


def gemini_grounding(usage: Usage) -> dict[str, Any] | None:
    """The candidate's ``groundingMetadata`` of scripted Google Search or Google Maps
    grounding: the queries, and one made-up web (or maps) grounding chunk. ``None``: none."""
    if usage.grounding_queries is not None:
        queries = usage.grounding_queries
        chunk = {"web": {"uri": "https://example.com/1", "title": "example"}}
    elif usage.maps_grounding_queries is not None:
        queries = usage.maps_grounding_queries
        chunk = {"maps": {"uri": "https://maps.example/1", "title": "place"}}
    else:
        return None
    return {"webSearchQueries": list(queries), "groundingChunks": [chunk]}


def gemini_response(
    *,
    response_id: str,
    model: str,
    text: str | None,
    finish_reason: str | None,
    usage: Usage | None,
) -> dict[str, Any]:
    """A ``GenerateContentResponse`` (one stream chunk too: ``finish_reason=None`` omits it).

    The scripted grounding (``groundingMetadata``) comes with the usage: in the last chunk of
    a stream."""
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text or ""}], "role": "model"}}
    if finish_reason is not None:
        candidate["finishReason"] = gemini_finish_reason(finish_reason)
    grounding = gemini_grounding(usage) if usage is not None else None
    if grounding is not None:
        candidate["groundingMetadata"] = grounding
    candidate["index"] = 0
    body: dict[str, Any] = {"candidates": [candidate]}
    if usage is not None:
        body["usageMetadata"] = gemini_usage(usage)
    body["modelVersion"] = model
    body["responseId"] = response_id
    return body


def gemini_error(status: int, message: str | None) -> dict[str, Any]:
    """``{"error": {"code", "message", "status"}}`` for an HTTP error status."""
    return {
        "error": {
            "code": status,
            "message": message if message is not None else f"Fake error (HTTP {status})",
            "status": _GEMINI_ERROR_STATUSES.get(
                status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT"
            ),
        }
    }


# --- Bedrock (Converse API) ----------------------------------------------------------------

_BEDROCK_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "content_filtered",
}

_BEDROCK_ERROR_TYPES = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    503: "ServiceUnavailableException",
}


def bedrock_stop_reason(finish_reason: str) -> str:
    """The Converse ``stopReason`` for an OpenAI ``finish_reason``."""
    return _BEDROCK_STOP_REASONS.get(finish_reason, finish_reason)


def bedrock_usage(usage: Usage) -> dict[str, Any]:
    """A Converse ``usage``: ``inputTokens`` excludes cache reads and writes (as Anthropic's
    ``input_tokens``); ``totalTokens`` counts everything. ``cacheDetails`` (the 5m/1h split
    of the writes) only when scripted."""
    body: dict[str, Any] = {
        "inputTokens": usage.anthropic_input,
        "outputTokens": usage.completion,
        "totalTokens": usage.prompt + usage.completion,
        "cacheReadInputTokens": usage.cached,
        "cacheWriteInputTokens": usage.cache_write,
    }
    if usage.cache_write_1h is not None:
        details = []
        if usage.cache_write_5m:
            details.append({"ttl": "5m", "inputTokens": usage.cache_write_5m})
        if usage.cache_write_1h:
            details.append({"ttl": "1h", "inputTokens": usage.cache_write_1h})
        body["cacheDetails"] = details
    return body


def bedrock_converse(
    *, text: str, finish_reason: str, usage: Usage, service_tier: str | None, latency_ms: int
) -> dict[str, Any]:
    """A Converse response (``serviceTier`` only when given)."""
    body: dict[str, Any] = {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": bedrock_stop_reason(finish_reason),
        "usage": bedrock_usage(usage),
        "metrics": {"latencyMs": latency_ms},
    }
    if service_tier is not None:
        body["serviceTier"] = {"type": service_tier}
    return body


def bedrock_error(status: int, message: str | None) -> tuple[dict[str, Any], str]:
    """The Bedrock error body ``{"message"}`` and its ``x-amzn-ErrorType``."""
    error_type = _BEDROCK_ERROR_TYPES.get(
        status, "InternalServerException" if status >= 500 else "ValidationException"
    )
    text = message if message is not None else f"Fake error (HTTP {status})"
    return {"message": text}, error_type


def _event_header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    # name length, name, type 7 (string), value length, value
    return (
        struct.pack("!B", len(raw_name))
        + raw_name
        + struct.pack("!BH", 7, len(raw_value))
        + raw_value
    )


def event_stream_message(event_type: str, payload: Any) -> bytes:
    """One AWS event-stream message (``application/vnd.amazon.eventstream``) of an event.

    Prelude (total length, headers length, CRC32 of both), the ``:event-type``,
    ``:content-type`` and ``:message-type`` headers, the JSON payload, and the CRC32 of all
    that.
    """
    headers = (
        _event_header(":event-type", event_type)
        + _event_header(":content-type", "application/json")
        + _event_header(":message-type", "event")
    )
    body = json.dumps(payload, separators=(",", ":")).encode()
    total = 12 + len(headers) + len(body) + 4
    prelude = struct.pack("!II", total, len(headers))
    prelude += struct.pack("!I", binascii.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + headers + body
    return message + struct.pack("!I", binascii.crc32(message) & 0xFFFFFFFF)
