"""The demo's simulated provider: :func:`llmops.simulate.simulate` in the Acme world, with
realistic usage for retrieval-augmented prompts, reasoning models and per-model latency.

:func:`demo_model` is a :class:`~llmops.simulate.FakeLLMServer` responder:

- **Answers** come from :func:`~llmops.simulate.simulate`, which reads the instructions and
  the question. The retrieved articles (the system message that starts with
  :data:`~llmops.demo.workspace.CONTEXT_HEADER`) are left out of what it reads: its world
  already knows them, and reading 10 KB of context with regular expressions on every
  request would cost milliseconds.
- **Usage** counts every message, articles included, at about 4 characters per token (the
  usual estimate for English text): ``prompt_tokens = sum(ceil(chars / 4) + 3 per
  message) + 3``; ``completion_tokens = ceil(chars of the answer / 4)`` plus, for reasoning
  models (``o1``/``o3``/``o4``/``gpt-5`` families), reasoning tokens drawn per request
  (o3: 3,000-9,000; o4-mini: 400-1,400; gpt-5: 500-2,000).
- **Latency** is a few tens of milliseconds, longer for larger models, answers and
  reasoning (real time: the whole month is simulated in well under a minute); streams come
  in 6 chunks.

:func:`failing_model` is the responder of a provider that is down (HTTP 503, 1 in 4 a 500)
or rate-limiting (429): the demo's app sends calls there during its outage hour and for its
occasional errors. Everything is deterministic: choices come from hashes of the request.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from llmops.demo.knowledge import ACME
from llmops.demo.workspace import CONTEXT_HEADER
from llmops.simulate import RecordedRequest, Reply, World, simulate

__all__ = ["demo_model", "estimate_tokens", "failing_model"]

#: (low, high) reasoning tokens per model family; others do not reason.
REASONING = (
    (re.compile(r"^o3(?!-mini)"), (3000, 9000)),
    (re.compile(r"^o\d"), (400, 1400)),
    (re.compile(r"^gpt-5"), (500, 2000)),
)
#: (seconds before the answer, seconds per 1,000 output tokens) per model family.
LATENCY = (
    (re.compile(r"mini|nano|haiku"), (0.006, 0.010)),
    (re.compile(r"^o\d|^gpt-5"), (0.020, 0.008)),
    (re.compile(r".*"), (0.012, 0.030)),
)
STREAM_CHUNKS = 6


def estimate_tokens(text: str) -> int:
    """About 4 characters per token, the usual estimate for English text."""
    return math.ceil(len(text) / 4)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts, an Anthropic system given as blocks
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return ""


def _is_context(message: Any) -> bool:
    return (
        isinstance(message, Mapping)
        and message.get("role") == "system"
        and _text(message.get("content")).startswith(CONTEXT_HEADER)
    )


def _fraction(*parts: str) -> float:
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def demo_model(world: World = ACME) -> Callable[[RecordedRequest], Reply | None]:
    """The responder of the demo's simulated provider (see the module docstring)."""

    def respond(request: RecordedRequest) -> Reply | None:
        body = request.body
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return None
        anthropic = request.path.split("?", 1)[0].rstrip("/") == "/v1/messages"
        messages = body["messages"]
        read = {**body, "messages": [m for m in messages if not _is_context(m)]}
        reply = simulate(read, anthropic=anthropic, world=world)
        texts = [_text(m.get("content")) for m in messages if isinstance(m, Mapping)]
        if anthropic and body.get("system"):
            texts.append(_text(body["system"]))
        prompt = sum(estimate_tokens(text) + 3 for text in texts) + 3
        model = str(body.get("model") or "").rsplit("/", 1)[-1]
        answer = reply.text or ""
        key = texts[-1] if texts else ""
        reasoning = 0
        for pattern, (low, high) in REASONING:
            if pattern.search(model):
                reasoning = low + int((high - low) * _fraction("reasoning", model, key))
                break
        completion = estimate_tokens(answer) + reasoning
        wait, per_thousand = next(v for p, v in LATENCY if p.search(model))
        delay = (wait + per_thousand * completion / 1000) * (0.7 + 0.6 * _fraction(key))
        stream = bool(body.get("stream"))
        return dataclasses.replace(
            reply,
            prompt_tokens=max(prompt, reply.cached_tokens),
            completion_tokens=completion,
            reasoning_tokens=reasoning,
            delay=delay * 0.4 if stream else delay,
            ttft=delay * 0.2 if stream else 0.0,
            chunk_delay=delay * 0.4 / STREAM_CHUNKS if stream else 0.0,
            chunks=STREAM_CHUNKS,
        )

    return respond


def failing_model(status: int | None = None) -> Callable[[RecordedRequest], Reply]:
    """A provider in trouble: ``status`` for every call (e.g. 429), or by default 503 with
    1 call in 4 a 500."""

    def respond(request: RecordedRequest) -> Reply:
        code = status
        if code is None:
            code = 500 if _fraction("failing", repr(request.body)) < 0.25 else 503
        messages = {
            429: "Rate limit reached for requests per minute. Please try again later.",
            500: "The server had an error while processing your request.",
            503: "The engine is currently overloaded, please try again later.",
        }
        return Reply(status=code, text=messages.get(code, "Upstream error"), delay=0.002)

    return respond
