"""What the fake server answers (:class:`Reply`), what it saw (:class:`RecordedRequest`).

Also the deterministic defaults: the echo answer and the token-count formula.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["RecordedRequest", "Reply"]


@dataclass(frozen=True)
class Reply:
    """One scripted answer of :class:`~llmops.testing.FakeLLMServer`.

    Every field has a default, so ``Reply()`` is a valid, deterministic answer.

    Content
        ``text``: the answer. ``None`` means the default answer, a deterministic function of
        the request: ``"Echo: " + <content of the last user message>`` (a content given as a
        list of parts contributes its ``text`` parts, joined by a space).
        For an error ``status``, ``text`` is the error message.

    Usage (token counts)
        ``prompt_tokens`` is always the **total** input, cached and cache-written tokens
        included. ``None`` means computed from the request::

            prompt_tokens = sum(words(message.content) + 3 for message in messages) + 3

        where ``words`` counts whitespace-separated words of the text (text parts only when
        the content is a list of parts; 0 for no content). On the Anthropic route a
        ``system`` prompt counts as one more message, so the same conversation gets the same
        count on both routes.

        ``completion_tokens`` is the total output, reasoning included. ``None`` means
        ``max(1, words(text))``.

        A computed count is raised when needed so that it is never smaller than the cache
        (``cached_tokens + cache_write_tokens``) or reasoning tokens it includes.

        ``cached_tokens``: prompt tokens read from a cache. OpenAI route:
        ``usage.prompt_tokens_details.cached_tokens`` (part of ``prompt_tokens``, as OpenAI
        reports it). Anthropic route: ``usage.cache_read_input_tokens``.

        ``cache_write_tokens``: prompt tokens written to a cache. Anthropic route:
        ``usage.cache_creation_input_tokens``. OpenAI has no such field: there they are
        simply part of ``prompt_tokens``.

        On the Anthropic route ``usage.input_tokens`` excludes both cache reads and writes,
        as Anthropic reports it: ``input_tokens = prompt_tokens - cached_tokens -
        cache_write_tokens``.

        ``reasoning_tokens``: OpenAI route: ``usage.completion_tokens_details.reasoning_tokens``
        (part of ``completion_tokens``). Not reported on the Anthropic route.

        ``include_usage=False`` sends no usage at all: no ``usage`` object in a response, no
        usage chunk in an OpenAI stream, no ``usage`` in Anthropic stream events. How
        litellm 1.110 takes it: an OpenAI response gets a usage of zeros; a stream (either
        route) asked with ``stream_options.include_usage`` gets a usage that litellm
        estimates with its own tokenizer; a non-streaming Anthropic response fails
        (``APIConnectionError: 'usage'``), since Anthropic always sends usage.

    Errors
        ``status``: an HTTP status of 400 or more sends an error body instead of an answer,
        OpenAI style ``{"error": {"message", "type", "code"}}`` or, on the Anthropic route,
        ``{"type": "error", "error": {"type", "message"}}``. A 429 also sends
        ``Retry-After: 0``.

    Timing
        ``delay``: seconds before anything is sent (the status line included).
        ``ttft``: for a stream, extra seconds after the response headers and before the
        first chunk (the role chunk is sent together with the first content chunk).
        ``chunk_delay``: seconds between two content chunks of a stream.
        ``chunks``: how many content chunks a stream splits ``text`` into. ``None``: one per
        word, each word keeping the whitespace that follows it, so that the chunks joined
        give ``text`` exactly. A number: that many chunks, cut at word boundaries when there
        are enough words and inside words otherwise (never more chunks than characters).

    Other
        ``model``: the model name reported in the response (default: the requested one).
        ``finish_reason``: OpenAI ``finish_reason``. On the Anthropic route it becomes
        ``stop_reason``: ``stop`` -> ``end_turn``, ``length`` -> ``max_tokens``,
        ``tool_calls`` -> ``tool_use``, ``content_filter`` -> ``refusal``; any other value is
        sent as it is.
    """

    text: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    include_usage: bool = True
    status: int = 200
    delay: float = 0.0
    ttft: float = 0.0
    chunk_delay: float = 0.0
    chunks: int | None = None
    model: str | None = None
    finish_reason: str = "stop"

    def __post_init__(self) -> None:
        for name in ("cached_tokens", "cache_write_tokens", "reasoning_tokens"):
            if getattr(self, name) < 0:
                raise ValueError(f"Reply.{name} must not be negative")
        for name in ("delay", "ttft", "chunk_delay"):
            if getattr(self, name) < 0:
                raise ValueError(f"Reply.{name} must not be negative")
        if self.prompt_tokens is not None and (
            self.prompt_tokens < self.cached_tokens + self.cache_write_tokens
        ):
            raise ValueError(
                "Reply.prompt_tokens is the total input and must include "
                "cached_tokens + cache_write_tokens"
            )
        if self.completion_tokens is not None and self.completion_tokens < self.reasoning_tokens:
            raise ValueError(
                "Reply.completion_tokens is the total output and must include reasoning_tokens"
            )
        if self.chunks is not None and self.chunks < 1:
            raise ValueError("Reply.chunks must be at least 1")
        if not 100 <= self.status <= 599:
            raise ValueError(f"Reply.status {self.status} is not an HTTP status")


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake server received.

    ``path``: the request path (query string included); ``headers``: the request headers
    with lower-case names; ``body``: the parsed JSON body (``None`` when the body was empty
    or not JSON); ``received_at``: ``time.time()`` when the request arrived; ``method``: the
    HTTP method.
    """

    path: str
    headers: dict[str, str]
    body: Any
    received_at: float
    method: str = "POST"


@dataclass(frozen=True)
class Usage:
    """Resolved token counts of one answer (internal). ``prompt``/``completion`` are totals."""

    prompt: int
    completion: int
    cached: int
    cache_write: int
    reasoning: int

    @property
    def anthropic_input(self) -> int:
        """Anthropic ``input_tokens``: the prompt without cache reads and writes."""
        return self.prompt - self.cached - self.cache_write


def count_words(text: str) -> int:
    """The number of whitespace-separated words of ``text``."""
    return len(text.split())


def content_text(content: Any) -> str:
    """The text of a message content: a string, or a list of parts (text parts joined)."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        texts = [
            part["text"]
            for part in content
            if isinstance(part, Mapping)
            and part.get("type", "text") == "text"
            and isinstance(part.get("text"), str)
        ]
        return " ".join(texts)
    return ""


def conversation(body: Any, *, anthropic: bool) -> list[Mapping[str, Any]]:
    """The messages of a request body; Anthropic's ``system`` comes first as a message."""
    if not isinstance(body, Mapping):
        return []
    messages = [m for m in body.get("messages") or [] if isinstance(m, Mapping)]
    system = body.get("system") if anthropic else None
    if system:
        messages.insert(0, {"role": "system", "content": system})
    return messages


def default_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """``"Echo: "`` + the content of the last user message."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return "Echo: " + content_text(message.get("content"))
    return "Echo: "


def default_prompt_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """``sum(words(content) + 3 for each message) + 3``."""
    return sum(count_words(content_text(m.get("content"))) + 3 for m in messages) + 3


def resolve(reply: Reply, body: Any, *, anthropic: bool) -> tuple[str, Usage]:
    """The answer text and token counts that ``reply`` gives to the request ``body``."""
    messages = conversation(body, anthropic=anthropic)
    text = reply.text if reply.text is not None else default_text(messages)
    prompt = reply.prompt_tokens
    if prompt is None:
        prompt = max(
            default_prompt_tokens(messages), reply.cached_tokens + reply.cache_write_tokens
        )
    completion = reply.completion_tokens
    if completion is None:
        completion = max(1, count_words(text), reply.reasoning_tokens)
    usage = Usage(
        prompt=prompt,
        completion=completion,
        cached=reply.cached_tokens,
        cache_write=reply.cache_write_tokens,
        reasoning=reply.reasoning_tokens,
    )
    return text, usage


_WORD = re.compile(r"\s*\S+\s*")


def split_chunks(text: str, chunks: int | None) -> list[str]:
    """Cut ``text`` into stream pieces whose concatenation is exactly ``text``.

    ``None``: one piece per word (with the whitespace after it; leading whitespace goes with
    the first word). A number ``n``: ``n`` pieces, cut between words when there are at least
    ``n`` words, else cut evenly by characters (at most ``len(text)`` pieces).
    """
    if not text:
        return []
    words = _WORD.findall(text) or [text]
    if chunks is None:
        return words
    if chunks <= len(words):
        return [
            "".join(words[len(words) * i // chunks : len(words) * (i + 1) // chunks])
            for i in range(chunks)
        ]
    n = min(chunks, len(text))
    return [text[len(text) * i // n : len(text) * (i + 1) // n] for i in range(n)]
