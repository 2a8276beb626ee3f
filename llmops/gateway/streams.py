"""Streams that record their call however they end.

litellm fires no callback for a stream the consumer abandons, so the gateway wraps the
stream itself: the call is recorded exactly once, when the stream is exhausted (``ok``),
raises (``error``), or is closed, garbage-collected or left by a ``break``
(``cancelled``). Usage comes from the provider's final usage chunk. Without one, tokens
are counted locally and marked as estimated: the gateway always asks for
``stream_options.include_usage``, and when a provider ignores it litellm makes up a usage
chunk from its own count, which the recorder tells apart by looking at the chunks litellm
received from the provider (``CustomStreamWrapper.chunks``). A stream that ends early
keeps what the provider had reported by then (the input's tokens, for Claude) and counts
only the output seen.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from llmops.gateway.recorder import Call, Completion, Recorder, provider_of, read_usage
from llmops.pricing.usage import (
    Served,
    Usage,
    message_cites_urls,
    served_by,
    tool_call_text,
)
from llmops.store.records import CallStatus


def chunk_hidden(chunk: Any) -> dict[str, Any]:
    hidden = getattr(chunk, "_hidden_params", None)
    return hidden if isinstance(hidden, dict) else {}


def _part(item: Any, key: str) -> Any:
    """``item[key]`` or ``item.key`` (litellm's deltas are objects, the direct route's
    dicts)."""
    if isinstance(item, dict):
        return item.get(key)
    return getattr(item, key, None)


def _chunk_usage(chunk: Any) -> Any:
    getter = getattr(chunk, "get", None)  # litellm's responses are also mappings
    return getter("usage", None) if callable(getter) else getattr(chunk, "usage", None)


class _Tracker:
    """What a stream has seen so far, and the one-time recording of its call."""

    def __init__(self, recorder: Recorder, call: Call, response: Any) -> None:
        self.recorder = recorder
        self.call = call
        self.response = response
        self.parts: list[str] = []
        self.usage: Usage | None = None
        self.raw_usage: Any = None  # the last usage as a chunk had it
        hidden = getattr(response, "_hidden_params", None) or {}
        asked = call.params.get("custom_llm_provider")
        # not the stream's own custom_llm_provider first: litellm names the handler there,
        # "openai" for some OpenAI-compatible providers (Perplexity, DashScope)
        self.provider: str | None = (
            hidden.get("custom_llm_provider")
            or (asked if isinstance(asked, str) and asked else None)
            or provider_of(call.model)
            or getattr(response, "custom_llm_provider", None)
        )
        self.served = Served()
        self.cited = False  # a delta cited URLs (a search model's answer)
        self.tool_calls: list[str] = []  # names and arguments of streamed tool calls
        self.assembled: dict[int, dict[str, Any]] = {}  # the tool calls, put together
        self.finish_reason: str | None = None
        self.ttft_ms: float | None = None
        self.result: Completion | None = None

    @property
    def done(self) -> bool:
        return self.result is not None

    def absorb(self, chunk: Any) -> str:
        """Take one chunk; return its text (may be empty)."""
        raw_usage = getattr(chunk, "usage", None)
        usage = read_usage(raw_usage, self.provider)
        if usage is not None:
            self.usage, self.raw_usage = usage, raw_usage
        served = served_by(chunk, raw_usage or (chunk_hidden(chunk).get("usage")))
        self.served = self.served.merged(served, asked=self.call.model)
        choice = _first_choice(chunk)  # with n > 1, chunks of the other choices interleave
        delta = getattr(choice, "delta", None)
        text = getattr(delta, "content", None) or ""
        if not isinstance(text, str):
            text = ""
        self.cited = self.cited or message_cites_urls(delta)
        calls = getattr(delta, "tool_calls", None)
        if calls:
            self.tool_calls.append(tool_call_text(calls))
            self._assemble(calls)
        self.finish_reason = getattr(choice, "finish_reason", None) or self.finish_reason
        if (text or calls) and self.ttft_ms is None:  # a tool call's first piece is a token too
            self.ttft_ms = (time.perf_counter() - self.call.started) * 1000
        if text:
            self.parts.append(text)
        return text

    def _assemble(self, deltas: Any) -> None:
        """Put streamed tool calls together: the first piece of each (by ``index``) has
        its id and name, the next ones more of its arguments."""
        for position, delta in enumerate(deltas if isinstance(deltas, list) else []):
            index = _part(delta, "index")
            entry = self.assembled.setdefault(
                index if isinstance(index, int) else position,
                {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
            )
            if isinstance(_part(delta, "id"), str):
                entry["id"] = _part(delta, "id")
            function = _part(delta, "function")
            for key in ("name", "arguments"):
                piece = _part(function, key)
                if isinstance(piece, str):
                    entry["function"][key] += piece

    def _provider_usage(self) -> tuple[bool, Usage | None, Any]:
        """Whether the provider sent usage (litellm makes up a final one from its own count
        when it did not; it keeps the provider's chunks in ``chunks``: without that list,
        the usage is trusted), and the latest it sent, read and as sent: for a stream that
        ended before its final usage, Anthropic's ``message_start`` has the input's tokens,
        with the cache reads and writes, which a local count cannot tell; and litellm's
        final usage drops a provider's own fields (Perplexity's searches and citations)."""
        chunks = getattr(self.response, "chunks", None)
        if not isinstance(chunks, list):
            return True, None, None
        for chunk in reversed(chunks):
            raw = _chunk_usage(chunk)
            if raw is not None:
                return True, read_usage(raw, self.provider), raw
        return False, None, None

    def finish(self, status: CallStatus, error: BaseException | None = None) -> None:
        if self.done:
            return
        latency_ms = (time.perf_counter() - self.call.started) * 1000
        text = "".join(self.parts)
        recorder, call = self.recorder, self.call
        sent, reported, raw = self._provider_usage()
        usage = self.usage if self.usage is not None and sent else None
        if usage is not None and reported is not None:  # what litellm's usage dropped
            usage = usage.filled(reported)
            self.served = self.served.merged(served_by(None, raw), asked=call.model)
        usage, price, provider = recorder.account(
            call,
            usage,
            text,
            self.provider,
            self.served,
            "".join(self.tool_calls),
            reported=None if usage is not None else reported,
            cited=self.cited,
            # the provider's own usage first; none when litellm made one up
            raw_usage=raw if raw is not None else self.raw_usage if sent else None,
        )
        calls = [self.assembled[index] for index in sorted(self.assembled)]
        recorder.record(
            call,
            status,
            usage,
            price,
            latency_ms,
            text,
            provider=provider,
            ttft_ms=self.ttft_ms,
            error=error,
            tool_calls=calls,
        )
        self.result = Completion.of(
            call, text, usage, price, latency_ms, self.response, self.ttft_ms, calls
        )
        self.result.finish_reason = self.finish_reason


class _StreamBase:
    """What both stream kinds share: the recorder and the finished call."""

    def __init__(self, recorder: Recorder, call: Call, response: Any) -> None:
        self._recorder = _Tracker(recorder, call, response)

    @property
    def call_id(self) -> str:
        return self._recorder.call.id

    @property
    def text(self) -> str:
        """The text received so far."""
        return "".join(self._recorder.parts)

    @property
    def result(self) -> Completion | None:
        """The finished call (usage, cost, latency), once the stream has ended."""
        return self._recorder.result

    def __del__(self) -> None:
        recorder = getattr(self, "_recorder", None)
        if recorder is not None and not recorder.done:
            recorder.finish("cancelled")


class Stream(_StreamBase):
    """An iterator of text chunks that records its call when it ends, in any way."""

    def __init__(self, recorder: Recorder, call: Call, response: Any) -> None:
        super().__init__(recorder, call, response)
        self._iterator = iter(response)

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> str:
        if self._recorder.done:
            raise StopIteration
        try:
            while True:
                text = self._recorder.absorb(next(self._iterator))
                if text:
                    return text
        except StopIteration:
            self._recorder.finish("ok")
            raise
        except BaseException as exc:
            cancelled = isinstance(exc, KeyboardInterrupt)
            self._recorder.finish("cancelled" if cancelled else "error", exc)
            raise

    def close(self) -> None:
        """Stop reading; the call is recorded as cancelled (if it had not ended)."""
        if self._recorder.done:
            return
        self._recorder.finish("cancelled")
        close = getattr(self._recorder.response, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):  # the connection is going away anyway
                close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncStream(_StreamBase):
    """The async twin of :class:`Stream`: ``async for chunk in stream``."""

    def __init__(self, recorder: Recorder, call: Call, response: Any) -> None:
        super().__init__(recorder, call, response)
        self._iterator = response.__aiter__()

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> str:
        if self._recorder.done:
            raise StopAsyncIteration
        try:
            while True:
                text = self._recorder.absorb(await self._iterator.__anext__())
                if text:
                    return text
        except StopAsyncIteration:
            self._recorder.finish("ok")
            raise
        except BaseException as exc:
            import asyncio

            cancelled = isinstance(exc, asyncio.CancelledError | KeyboardInterrupt)
            self._recorder.finish("cancelled" if cancelled else "error", exc)
            raise

    async def chunks(self) -> AsyncIterator[Any]:
        """The provider's chunks as litellm gives them (OpenAI-shaped, with tool-call
        deltas and the final usage chunk), in place of the text: for a proxy that passes
        them on. The call is recorded as iteration does; a consumer that stops early (a
        client that went away) records it as cancelled, with the tokens seen."""
        import asyncio

        if self._recorder.done:
            return
        try:
            while True:
                try:
                    chunk = await self._iterator.__anext__()
                except StopAsyncIteration:
                    self._recorder.finish("ok")
                    return
                self._recorder.absorb(chunk)
                yield chunk
        except BaseException as exc:
            if not self._recorder.done:
                if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | GeneratorExit):
                    self._recorder.finish("cancelled")
                    _close_later(self._recorder.response)  # stop the provider's generation
                else:
                    self._recorder.finish("error", exc)
            raise

    async def aclose(self) -> None:
        """Stop reading; the call is recorded as cancelled (if it had not ended)."""
        if self._recorder.done:
            return
        self._recorder.finish("cancelled")
        for name in ("aclose", "close"):
            closer = getattr(self._recorder.response, name, None)
            if callable(closer):
                with contextlib.suppress(Exception):  # the connection is going away anyway
                    result = closer()
                    if hasattr(result, "__await__"):
                        await result
                break

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


_CLOSING: set[Any] = set()  # tasks closing abandoned streams (kept until they are done)


def _close_later(response: Any) -> None:
    """Close an abandoned async stream's connection in a task of its own: the consumer was
    cancelled (a client went away), so awaiting here would be cancelled too."""
    import asyncio

    closer = getattr(response, "aclose", None)
    if not callable(closer):
        return
    try:
        task = asyncio.get_running_loop().create_task(_quietly(closer))
    except RuntimeError:  # no running loop: the connection goes with the garbage
        return
    _CLOSING.add(task)
    task.add_done_callback(_CLOSING.discard)


async def _quietly(closer: Any) -> None:
    with contextlib.suppress(Exception):
        result = closer()
        if hasattr(result, "__await__"):
            await result


def _first_choice(chunk: Any) -> Any:
    """The chunk's part of the first choice (``index`` 0), or None: a call with ``n`` > 1
    is recorded by its first answer, streamed or not."""
    choices = getattr(chunk, "choices", None)
    if not isinstance(choices, list | tuple):
        return None
    for choice in choices:  # one per chunk, but for the usage chunk's none
        if getattr(choice, "index", 0) in (0, None):
            return choice
    return None
