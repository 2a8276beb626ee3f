"""The Anthropic Messages endpoint of ``llmops serve``: ``POST /v1/messages`` for Anthropic
SDK clients, answered by any model the Gateway reaches (so recording, pricing, budgets and
the journal all apply).

The request (``model``, ``system``, ``messages`` with text, image, tool_use and tool_result
blocks, ``tools``, ``tool_choice``, ``max_tokens``, ``stop_sequences``, ``temperature``,
``top_p``, ``top_k``, ``metadata.user_id``, ``stream``) becomes the OpenAI-shaped messages
and parameters the Gateway takes; the answer comes back as Anthropic's ``message`` object,
or as Anthropic's server-sent events with ``stream: true``. Errors have Anthropic's shape
``{"type": "error", "error": {"type", "message"}}``. ``model: "prompt:NAME@REF"`` renders a
prompt with the request's ``variables``, as on the OpenAI route. Virtual keys apply as on
the OpenAI route (the SDK's ``api_key`` arrives as ``x-api-key``). Other body fields go to
litellm when safe (``num_retries``, ``timeout``). Not translated: ``thinking`` (refused unless
``disabled``), server tools, document and other block types (refused), ``is_error`` of a
tool result (dropped: OpenAI's tool messages have no such flag). A stop sequence is reported
as ``stop_sequence`` when the text shows it (the answer is cut there); a provider that stopped
on one itself reports a plain stop through litellm, which becomes ``end_turn``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from llmops.errors import BudgetExceededError, ConfigError, LLMOpsError, ProviderError
from llmops.server.access import Access, Refused
from llmops.server.app import (
    CALL_ID_HEADER,
    PROMPT_PREFIX,
    ClientGone,
    JSONBody,
    RequestError,
    _attribution,
    _check_options,
    _dump,
    _json_body,
    _provider_error_body,
    model_params,
    provider_retry_after,
    unless_client_leaves,
)

if TYPE_CHECKING:
    from llmops.gateway import AsyncStream, Completion, Gateway
    from llmops.pricing.usage import Usage
    from llmops.store.keys import VirtualKey
    from llmops.store.records import RecordKind, Row

log = logging.getLogger("llmops.server")

MESSAGES_PATH = "/v1/messages"
ANTHROPIC_EXTRA_PARAMS = frozenset({"timeout", "num_retries", "service_tier"})
# body fields this route reads itself; of the others only ANTHROPIC_EXTRA_PARAMS go on
_OWN_FIELDS = frozenset(
    {
        "model", "messages", "system", "max_tokens", "stop_sequences", "temperature",
        "top_p", "top_k", "metadata", "stream", "tools", "tool_choice", "variables",
        "thinking",
    }
)  # fmt: skip
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_ANTHROPIC_ERROR = re.compile(r'\{\s*"type"\s*:\s*"error"')
"""Where an Anthropic error body starts inside litellm's message."""
_ERROR_STATUSES = {
    "invalid_request_error": 400, "authentication_error": 401, "billing_error": 402,
    "permission_error": 403, "not_found_error": 404, "request_too_large": 413,
    "rate_limit_error": 429, "api_error": 500, "overloaded_error": 529,
}  # fmt: skip
"""The status Anthropic answers each of its error types with."""
_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
# Anthropic stop reasons a provider may report as they are (litellm keeps refusal, pause_turn)
_ANTHROPIC_STOPS = frozenset(
    {"end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal",
     "model_context_window_exceeded"}
)  # fmt: skip
_DROPPED_BLOCKS = frozenset({"thinking", "redacted_thinking"})  # in assistant history

# The ids of the calls the Gateway recorded for the request being handled (set per request;
# filled by an observer of the recorder, which runs on the request's task).
_RECORDED: ContextVar[list[str] | None] = ContextVar("llmops_anthropic_recorded", default=None)


def anthropic_routes(gateway: Gateway, access: Access | None = None) -> list[Route]:
    """The routes of the Anthropic-compatible API over ``gateway``; ``access``: the virtual
    keys of the server (the SDK sends its ``api_key`` as ``x-api-key``)."""
    if _note_recorded not in gateway.recorder.observers:
        gateway.recorder.observers.append(_note_recorded)

    async def messages(request: Request) -> Response:
        recorded: list[str] = []
        token = _RECORDED.set(recorded)
        try:
            return await _messages(gateway, access, request, recorded)
        finally:
            _RECORDED.reset(token)

    return [Route(MESSAGES_PATH, messages, methods=["POST"])]


def _note_recorded(kind: RecordKind, row: Row) -> None:
    recorded = _RECORDED.get()
    if recorded is not None and kind == "call":
        recorded.append(row["id"])


@dataclass
class Translated:
    """An Anthropic Messages request as the Gateway's arguments."""

    model: str | None
    prompt: str | None = None
    variables: dict[str, Any] | None = None
    messages: list[dict[str, Any]] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    stream: bool = False
    stop_sequences: list[str] = field(default_factory=list)
    user: str | None = None


async def _messages(
    gateway: Gateway, access: Access | None, request: Request, recorded: list[str]
) -> Response:
    try:
        key = await access.aadmit(request) if access is not None else None
        body = await _json_body(request)
        asked = translate_request(body)
        if access is not None and key is not None:
            await _check_model(gateway, access, key, asked)
        options = _attribution(request, {"user": asked.user})
    except Refused as exc:
        return error_response(exc.status, exc.message, headers=exc.headers)
    except RequestError as exc:
        return error_response(exc.status, exc.message)
    if key is not None:
        options["api_key_name"] = key.name

    try:
        if asked.stream:
            handle = await unless_client_leaves(
                request,
                gateway.astream(
                    asked.prompt, asked.variables, model=asked.model, messages=asked.messages,
                    **options, **asked.params,
                ),
            )  # fmt: skip
            return StreamingResponse(
                _events(handle, asked),
                media_type="text/event-stream",
                headers={CALL_ID_HEADER: handle.call_id, "cache-control": "no-cache"},
            )
        result = await unless_client_leaves(
            request,
            gateway.acomplete(
                asked.prompt, asked.variables, model=asked.model, messages=asked.messages,
                **options, **asked.params,
            ),
        )  # fmt: skip
    except ClientGone:  # never read: the connection is closed; the call is cancelled
        return Response(status_code=499)
    except BudgetExceededError as exc:
        headers = {"x-should-retry": "false", "retry-after": str(_seconds_until(exc.window_end))}
        return error_response(
            429, f"budget_exceeded: {exc}", "rate_limit_error", _last(recorded), headers
        )
    except ConfigError as exc:
        return error_response(400, str(exc), call_id=_last(recorded))
    except ProviderError as exc:  # the provider's error on the direct route, recorded
        status, kind, message = provider_error(exc)
        return error_response(status, message, kind, _last(recorded), _retry_after(exc))
    except LLMOpsError as exc:
        return error_response(500, str(exc), "api_error", _last(recorded))
    except Exception as exc:  # the provider's error, recorded by the gateway
        status, kind, message = provider_error(exc)
        return error_response(status, message, kind, _last(recorded), _retry_after(exc))
    return JSONBody(message_body(result, asked), headers={CALL_ID_HEADER: result.call_id})


def _retry_after(exc: BaseException) -> dict[str, str] | None:
    value = provider_retry_after(exc)
    return None if value is None else {"retry-after": value}


async def _check_model(
    gateway: Gateway, access: Access, key: VirtualKey, asked: Translated
) -> None:
    """Refuse (403) a model, or a prompt's model, that the key may not use."""
    if key.models is None:
        return
    if asked.prompt is None:
        access.check_model(key, asked.model)
        return
    try:
        model = (await gateway.aprompt(asked.prompt)).model
    except ConfigError as exc:
        raise RequestError(400, str(exc)) from None
    access.check_model(key, model, f"{PROMPT_PREFIX}{asked.prompt.partition('@')[0]}")


def provider_error(exc: BaseException) -> tuple[int, str, str]:
    """Status, Anthropic error type and message for a provider's error. An Anthropic
    provider's own error body inside litellm's message is passed on as it is (litellm turns
    Anthropic's 529 ``overloaded_error`` into a 500)."""
    status, openai_body = _provider_error_body(exc)
    message = str(openai_body["error"]["message"])
    found = _ANTHROPIC_ERROR.search(message)
    if found:  # followed by litellm's words, or inside a bytes repr (streams): b'{...}'
        with contextlib.suppress(ValueError):
            inner, _ = json.JSONDecoder().raw_decode(message, found.start())
            error = inner.get("error") if isinstance(inner, dict) else None
            if isinstance(error, dict) and isinstance(error.get("type"), str):
                kind = error["type"]
                status = _ERROR_STATUSES.get(kind, status)  # litellm's is its own guess
                return status, kind, str(error.get("message") or message)
    return status, _ERROR_TYPES.get(status, "api_error"), message


def _last(recorded: list[str]) -> str | None:
    return recorded[-1] if recorded else None


def _seconds_until(moment: datetime) -> int:
    return max(1, math.ceil((moment - datetime.now(UTC)).total_seconds()))


def error_response(
    status: int,
    message: str,
    kind: str | None = None,
    call_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """Anthropic's error body; the type follows the status unless given."""
    error_type = kind or _ERROR_TYPES.get(status, "api_error")
    all_headers = dict(headers or {})
    if call_id:
        all_headers[CALL_ID_HEADER] = call_id
    body = {"type": "error", "error": {"type": error_type, "message": message}}
    return JSONBody(body, status_code=status, headers=all_headers)


# -- the request ----------------------------------------------------------------------


def translate_request(body: dict[str, Any]) -> Translated:
    """The Gateway's arguments for an Anthropic Messages request (RequestError: 400)."""
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise RequestError(400, "model: a model name is required")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise RequestError(400, "max_tokens: a positive integer is required")
    thinking = body.get("thinking")
    if thinking is not None and not (
        isinstance(thinking, dict) and thinking.get("type") == "disabled"
    ):
        raise RequestError(400, "thinking: extended thinking is not supported by this server")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestError(400, "stream: must be true or false")
    asked = Translated(model=model, stream=stream, user=_user_id(body.get("metadata")))
    system, messages = body.get("system"), body.get("messages")
    if model.startswith(PROMPT_PREFIX):
        asked.prompt, asked.model = model[len(PROMPT_PREFIX) :], None
        if not asked.prompt:
            raise RequestError(400, "model: give prompt:NAME or prompt:NAME@REF")
        variables = body.get("variables") or {}
        if not isinstance(variables, dict):
            raise RequestError(400, "variables: must be an object")
        if messages or system:
            raise RequestError(
                400, "messages, system: a prompt model renders its own messages; give variables"
            )
        asked.variables = variables
    else:
        if not isinstance(messages, list) or not messages:
            raise RequestError(400, "messages: a non-empty list is required")
        asked.messages = [*_system(system), *_conversation(messages)]
    # only safe fields pass on (never api_base, api_key, extra_headers, ...: they would send
    # the server's provider keys where a client says)
    params = model_params(
        {k: v for k, v in body.items() if k not in _OWN_FIELDS}, ANTHROPIC_EXTRA_PARAMS
    )
    _check_options(params)
    params["max_tokens"] = max_tokens
    asked.stop_sequences = _stop_sequences(body.get("stop_sequences"))
    if asked.stop_sequences:
        params["stop"] = asked.stop_sequences
    for name, kinds in (("temperature", (int, float)), ("top_p", (int, float)), ("top_k", int)):
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, kinds) or isinstance(value, bool):
            raise RequestError(400, f"{name}: must be a number")
        params[name] = value
    if body.get("tools") is not None:
        params["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        params.update(_tool_choice(body["tool_choice"]))
    asked.params = params
    return asked


def _user_id(metadata: Any) -> str | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise RequestError(400, "metadata: must be an object")
    user = metadata.get("user_id")
    if user is not None and not isinstance(user, str):
        raise RequestError(400, "metadata.user_id: must be a string")
    return user or None


def _stop_sequences(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(s, str) and s for s in value):
        raise RequestError(400, "stop_sequences: must be a list of non-empty strings")
    return list(value)


def _system(system: Any) -> list[dict[str, Any]]:
    if system is None or system == "" or system == []:
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}]
    if not isinstance(system, list):
        raise RequestError(400, "system: must be a string or a list of text blocks")
    parts = []
    for i, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise RequestError(400, f"system[{i}]: only text blocks are supported")
        parts.append(_text_part(block, f"system[{i}]"))
    return [{"role": "system", "content": parts}]


def _conversation(messages: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise RequestError(400, f"{where}: must be an object")
        role, content = message.get("role"), message.get("content")
        if role not in ("user", "assistant"):
            raise RequestError(400, f"{where}.role: must be user or assistant")
        prefill = role == "assistant" and i == len(messages) - 1
        blank = content == [] or (isinstance(content, str) and not content.strip())
        if blank and not prefill:
            # as Anthropic answers: litellm sent a placeholder text instead, which was billed
            raise RequestError(
                400, f"{where}.content: must be non-empty (only a final assistant turn may be)"
            )
        if isinstance(content, str):
            out.append({"role": role, "content": content})
        elif not isinstance(content, list):
            raise RequestError(400, f"{where}.content: must be a string or a list of blocks")
        elif role == "user":
            out.extend(_user_turn(content, where))
        else:
            out.append(_assistant_turn(content, where))
    return out


def _user_turn(blocks: list[Any], where: str) -> list[dict[str, Any]]:
    """Tool results become ``tool`` messages (first: OpenAI wants them right after the
    assistant's tool calls); the other blocks one ``user`` message."""
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        at = f"{where}.content[{j}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append(_text_part(block, at))
        elif kind == "image":
            parts.append(_image_part(block, at))
        elif kind == "tool_result":
            results.append(_tool_message(block, at))
        else:
            raise RequestError(400, f"{at}: block type {kind!r} is not supported in a user turn")
    return [*results, *([{"role": "user", "content": parts}] if parts else [])]


def _assistant_turn(blocks: list[Any], where: str) -> dict[str, Any]:
    texts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(blocks):
        at = f"{where}.content[{j}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(_text_part(block, at))
        elif kind == "tool_use":
            calls.append(_tool_call(block, at))
        elif kind in _DROPPED_BLOCKS:
            continue
        else:
            raise RequestError(
                400, f"{at}: block type {kind!r} is not supported in an assistant turn"
            )
    message: dict[str, Any] = {"role": "assistant"}
    if any("cache_control" in part for part in texts):
        message["content"] = texts
    else:
        message["content"] = "".join(part["text"] for part in texts) or (None if calls else "")
    if calls:
        message["tool_calls"] = calls
    return message


def _text_part(block: dict[str, Any], at: str) -> dict[str, Any]:
    text = block.get("text")
    if not isinstance(text, str):
        raise RequestError(400, f"{at}.text: must be a string")
    if not text.strip():
        raise RequestError(400, f"{at}.text: text blocks must hold non-whitespace text")
    return _cached({"type": "text", "text": text}, block)


def _image_part(block: dict[str, Any], at: str) -> dict[str, Any]:
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64" and isinstance(source, dict):
        media, data = source.get("media_type"), source.get("data")
        if not isinstance(media, str) or not isinstance(data, str):
            raise RequestError(400, f"{at}.source: base64 needs media_type and data strings")
        url = f"data:{media};base64,{data}"
    elif kind == "url" and isinstance(source, dict) and isinstance(source.get("url"), str):
        url = source["url"]
    else:
        raise RequestError(400, f"{at}.source: give a base64 or url image source")
    return _cached({"type": "image_url", "image_url": {"url": url}}, block)


def _tool_message(block: dict[str, Any], at: str) -> dict[str, Any]:
    tool_use_id = block.get("tool_use_id")
    if not isinstance(tool_use_id, str) or not tool_use_id:
        raise RequestError(400, f"{at}.tool_use_id: a string is required")
    content = block.get("content", "")
    if content is None:
        content = ""
    if isinstance(content, list):
        parts = []
        for k, inner in enumerate(content):
            kind = inner.get("type") if isinstance(inner, dict) else None
            if kind == "text":
                parts.append(_text_part(inner, f"{at}.content[{k}]"))
            elif kind == "image":
                parts.append(_image_part(inner, f"{at}.content[{k}]"))
            else:
                raise RequestError(
                    400, f"{at}.content[{k}]: block type {kind!r} is not supported here"
                )
        content = parts
    elif not isinstance(content, str):
        raise RequestError(400, f"{at}.content: must be a string or a list of blocks")
    return _cached({"role": "tool", "tool_call_id": tool_use_id, "content": content}, block)


def _tool_call(block: dict[str, Any], at: str) -> dict[str, Any]:
    call_id, name, arguments = block.get("id"), block.get("name"), block.get("input", {})
    if not isinstance(call_id, str) or not isinstance(name, str):
        raise RequestError(400, f"{at}: tool_use needs id and name strings")
    if not isinstance(arguments, dict):
        raise RequestError(400, f"{at}.input: must be an object")
    function = {"name": name, "arguments": json.dumps(arguments, ensure_ascii=False)}
    return {"id": call_id, "type": "function", "function": function}


def _cached(part: dict[str, Any], block: dict[str, Any]) -> dict[str, Any]:
    """``part`` with the block's ``cache_control`` (litellm passes it to Anthropic)."""
    if block.get("cache_control") is not None:
        part["cache_control"] = block["cache_control"]
    return part


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise RequestError(400, "tools: must be a list")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise RequestError(400, f"tools[{i}]: must be an object")
        if tool.get("type") not in (None, "custom"):
            raise RequestError(
                400, f"tools[{i}]: tool type {tool['type']!r} is not supported by this server"
            )
        name, schema = tool.get("name"), tool.get("input_schema")
        if not isinstance(name, str) or not name:
            raise RequestError(400, f"tools[{i}].name: a string is required")
        if not isinstance(schema, dict):
            raise RequestError(400, f"tools[{i}].input_schema: an object is required")
        function: dict[str, Any] = {"name": name, "parameters": schema}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        out.append(_cached({"type": "function", "function": function}, tool))
    return out


def _tool_choice(choice: Any) -> dict[str, Any]:
    kind = choice.get("type") if isinstance(choice, dict) else None
    params: dict[str, Any] = {}
    if kind == "auto":
        params["tool_choice"] = "auto"
    elif kind == "any":
        params["tool_choice"] = "required"
    elif kind == "none":
        params["tool_choice"] = "none"
    elif kind == "tool" and isinstance(choice, dict) and isinstance(choice.get("name"), str):
        params["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        raise RequestError(400, "tool_choice: type must be auto, any, tool (with name) or none")
    if isinstance(choice, dict) and choice.get("disable_parallel_tool_use") is True:
        params["parallel_tool_calls"] = False
    return params


# -- the answer -----------------------------------------------------------------------


def message_id(call_id: str) -> str:
    """The Anthropic message id of a call: ``msg_`` and the call id's hex digits."""
    return "msg_" + call_id.replace("-", "")


def message_body(result: Completion, asked: Translated) -> dict[str, Any]:
    """Anthropic's ``message`` object for a finished call."""
    raw = _dump(result.raw) if result.raw is not None else {}
    choices = raw.get("choices") or [{}]
    choice, message = choices[0], choices[0].get("message") or {}
    text: str = message["content"] if isinstance(message.get("content"), str) else ""
    calls = list(message.get("tool_calls") or [])
    matched = None
    hit = first_stop(text, asked.stop_sequences)
    if hit is not None:  # the provider did not stop there: cut as Anthropic would have
        text, matched, calls = text[: hit[0]], hit[1], []
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    content.extend(_tool_use(call, result.call_id) for call in calls)
    stop = stop_reason(
        choice.get("finish_reason"), bool(calls), message.get("provider_specific_fields"), matched
    )
    refusal = message.get("refusal")
    if not content and isinstance(refusal, str) and refusal:
        content, stop = [{"type": "text", "text": refusal}], "refusal"
    return {
        "id": message_id(result.call_id),
        "type": "message",
        "role": "assistant",
        "model": raw.get("model") or result.model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": matched,
        "usage": usage_body(result.usage),
    }


def _tool_use(call: dict[str, Any], call_id: str) -> dict[str, Any]:
    function = call.get("function") or {}
    arguments = function.get("arguments") or ""
    try:
        parsed = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        log.warning("llmops: call %s: tool arguments are not a JSON object: %r", call_id, arguments)
        parsed = {}
    return {
        "type": "tool_use",
        "id": call.get("id") or _tool_use_id(),
        "name": function.get("name") or "",
        "input": parsed,
    }


def _tool_use_id() -> str:
    return "toolu_" + uuid.uuid4().hex


def stop_reason(
    finish_reason: Any, tool_calls: bool, provider_fields: Any, matched: str | None
) -> str:
    """Anthropic's ``stop_reason`` for an OpenAI ``finish_reason``."""
    if matched is not None:
        return "stop_sequence"
    raw = provider_fields.get("stop_reason") if isinstance(provider_fields, dict) else None
    if raw in _ANTHROPIC_STOPS:
        return str(raw)
    if tool_calls and finish_reason not in ("length", "max_tokens"):
        return "tool_use"  # a tool call cut by max_tokens is not one to run: as Anthropic says
    if finish_reason in _ANTHROPIC_STOPS:
        return str(finish_reason)
    return _STOP_REASONS.get(str(finish_reason), "end_turn")


def usage_body(usage: Usage | None) -> dict[str, Any]:
    """Anthropic's ``usage``: ``input_tokens`` without the cache reads and writes."""
    if usage is None:
        return {
            "input_tokens": 0, "output_tokens": 0,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
        }  # fmt: skip
    read, written = usage.cached_tokens, usage.cache_write_tokens
    body: dict[str, Any] = {
        "input_tokens": max(usage.prompt_tokens - read - written, 0),
        "output_tokens": usage.completion_tokens,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": read,
    }
    if written:
        hour = min(usage.cache_write_1h_tokens, written)
        body["cache_creation"] = {
            "ephemeral_5m_input_tokens": written - hour,
            "ephemeral_1h_input_tokens": hour,
        }
    if usage.web_search_requests:
        body["server_tool_use"] = {"web_search_requests": usage.web_search_requests}
    return body


def first_stop(text: str, sequences: Sequence[str]) -> tuple[int, str] | None:
    """Where the first of ``sequences`` starts in ``text`` (and which), or None."""
    best: tuple[int, str] | None = None
    for sequence in sequences:
        at = text.find(sequence)
        if at >= 0 and (best is None or at < best[0]):
            best = (at, sequence)
    return best


class StopScanner:
    """Finds stop sequences in streamed text: holds back the tail that could start one."""

    def __init__(self, sequences: Iterable[str]) -> None:
        self.sequences = [s for s in sequences if s]
        self.pending = ""

    def feed(self, text: str) -> tuple[str, str | None]:
        """The text that can be sent now, and the stop sequence found (then stop)."""
        buffer = self.pending + text
        hit = first_stop(buffer, self.sequences)
        if hit is not None:
            self.pending = ""
            return buffer[: hit[0]], hit[1]
        held = self._held(buffer)
        self.pending = buffer[len(buffer) - held :] if held else ""
        return buffer[: len(buffer) - held], None

    def flush(self) -> str:
        """What is held back, once no stop sequence can follow."""
        rest, self.pending = self.pending, ""
        return rest

    def _held(self, buffer: str) -> int:
        longest = max((len(s) for s in self.sequences), default=1) - 1
        for size in range(min(longest, len(buffer)), 0, -1):
            tail = buffer[-size:]
            if any(s.startswith(tail) for s in self.sequences):
                return size
        return 0


def _sse(event: dict[str, Any]) -> bytes:
    data = json.dumps(event, separators=(",", ":"))  # ASCII: half a surrogate pair too
    return f"event: {event['type']}\ndata: {data}\n\n".encode()


async def _events(handle: AsyncStream, asked: Translated) -> AsyncIterator[bytes]:
    """Anthropic's server-sent events for the provider's OpenAI-shaped chunks."""
    events = EventTranslator(message_id(handle.call_id), asked.model or "", asked.stop_sequences)
    chunks = handle.chunks()
    try:
        async for chunk in chunks:
            for event in events.take(_dump(chunk)):
                yield _sse(event)
    except Exception as exc:  # the provider failed mid-stream: recorded; tell the client
        _, error_type, message = provider_error(exc)
        yield _sse({"type": "error", "error": {"type": error_type, "message": message}})
        return
    finally:  # a client that went away: the call is recorded as cancelled now, not at GC
        closer = getattr(chunks, "aclose", None)
        if callable(closer):
            await closer()
    result = handle.result
    for event in events.finish(result.usage if result is not None else None):
        yield _sse(event)


class EventTranslator:
    """OpenAI-shaped stream chunks in, Anthropic stream events out.

    Text and tool calls become content blocks in the order they arrive (a block is stopped
    when the next one starts); a tool call's argument fragments become ``input_json_delta``
    events. ``message_start`` carries zero usage (OpenAI-shaped streams report usage at the
    end); ``message_delta`` carries the whole usage of the call, as recorded.
    """

    def __init__(self, message_id: str, model: str, stop_sequences: Sequence[str]) -> None:
        self.message_id, self.model = message_id, model
        self.started = False
        self.index = -1  # the index of the last block started
        self.open: str | None = None  # the kind of the block not stopped yet
        self.tools: dict[int, int] = {}  # OpenAI tool-call index -> block index
        self.finish_reason: Any = None
        self.provider_fields: Any = None
        self.matched: str | None = None
        self.scanner = StopScanner(stop_sequences) if stop_sequences else None

    def take(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        events = self._start(chunk.get("model"))
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            self.finish_reason = choice.get("finish_reason") or self.finish_reason
            self.provider_fields = delta.get("provider_specific_fields") or self.provider_fields
            if self.matched is not None:
                continue  # cut at a stop sequence: the rest is read (and recorded), not sent
            text = delta.get("content")
            if isinstance(text, str) and text:
                events += self._text(text)
            for call in delta.get("tool_calls") or []:
                if self.matched is None:
                    events += self._tool(call)
        return events

    def finish(self, usage: Usage | None) -> list[dict[str, Any]]:
        events = self._start(None)
        if self.scanner is not None and self.matched is None:
            events += self._send_text(self.scanner.flush())
        events += self._stop_block()
        stop = stop_reason(self.finish_reason, bool(self.tools), self.provider_fields, self.matched)
        events.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": self.matched},
                "usage": usage_body(usage),
            }
        )
        events.append({"type": "message_stop"})
        return events

    def _start(self, model: Any) -> list[dict[str, Any]]:
        if self.started:
            return []
        self.started = True
        message: dict[str, Any] = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": model if isinstance(model, str) and model else self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage_body(None),
        }
        return [{"type": "message_start", "message": message}]

    def _text(self, text: str) -> list[dict[str, Any]]:
        if self.scanner is None:
            return self._send_text(text)
        sendable, matched = self.scanner.feed(text)
        events = self._send_text(sendable)
        if matched is not None:
            self.matched = matched
            events += self._stop_block()
        return events

    def _send_text(self, text: str) -> list[dict[str, Any]]:
        if not text:
            return []
        events = []
        if self.open != "text":
            events += self._stop_block()
            events.append(self._block({"type": "text", "text": ""}, "text"))
        delta = {"type": "text_delta", "text": text}
        events.append({"type": "content_block_delta", "index": self.index, "delta": delta})
        return events

    def _tool(self, call: dict[str, Any]) -> list[dict[str, Any]]:
        number = call.get("index", 0)
        function = call.get("function") or {}
        events: list[dict[str, Any]] = []
        if number not in self.tools:
            if self.scanner is not None:
                events += self._send_text(self.scanner.flush())
            events += self._stop_block()
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": call.get("id") or _tool_use_id(),
                "name": function.get("name") or "",
                "input": {},
            }
            events.append(self._block(block, "tool"))
            self.tools[number] = self.index
        elif self.tools[number] != self.index:
            log.warning("llmops: interleaved tool-call fragments cannot be streamed; dropped")
            return events
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            delta = {"type": "input_json_delta", "partial_json": arguments}
            events.append({"type": "content_block_delta", "index": self.index, "delta": delta})
        return events

    def _block(self, block: dict[str, Any], kind: str) -> dict[str, Any]:
        self.index += 1
        self.open = kind
        return {"type": "content_block_start", "index": self.index, "content_block": block}

    def _stop_block(self) -> list[dict[str, Any]]:
        if self.open is None:
            return []
        self.open = None
        return [{"type": "content_block_stop", "index": self.index}]
