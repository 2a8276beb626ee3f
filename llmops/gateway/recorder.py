"""The recorder: what becomes of a finished (or failed) call.

Usage (counted locally when the provider sent none) -> price -> a typed row for the
background writer, with what the content mode lets through and never a credential. The
Gateway and its streams share one Recorder; neither reaches into the other. Recording
never raises into the app and never waits for the database.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from llmops import litellm_loader
from llmops.credentials import scrub
from llmops.gateway.content import scrub_error, stored_request, stored_response
from llmops.gateway.scope import Scope
from llmops.pricing.prices import ModelPrice, Price, PriceBook, price_details
from llmops.pricing.usage import (
    Served,
    Usage,
    billed_cost,
    endpoint_of,
    estimate_usage,
    response_cites_urls,
    served_by,
    tool_call_text,
    tools_of,
    usage_from_response,
    with_cited_search,
)
from llmops.prompts import Prompt
from llmops.store.records import CallRow, CallStatus, CostStatus, RecordKind, Row

log = logging.getLogger("llmops.gateway")

NOT_BILLED = "not billed: the call failed"

TIMEOUTS = frozenset({"Timeout", "APITimeoutError", "ProviderTimeoutError", "TimeoutError"})
"""The errors of a call that timed out: litellm's, the OpenAI SDK's, the direct route's."""


def raised_as(exc: BaseException, names: frozenset[str], *, causes: bool = False) -> bool:
    """Whether ``exc`` is of a class named in ``names`` (by name, anywhere in its MRO:
    litellm's, the SDKs' and llmops' errors are not one hierarchy), or, with ``causes``,
    was raised from one (``__cause__``/``__context__``, a few links deep)."""
    seen: BaseException | None = exc
    for _ in range(8 if causes else 1):
        if seen is None:
            return False
        if any(kind.__name__ in names for kind in type(seen).__mro__):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def timed_out(exc: BaseException) -> bool:
    """Whether ``exc`` says the call timed out."""
    return raised_as(exc, TIMEOUTS)


RECENT_IDS = 100_000  # call ids remembered for feedback checks without a query


@dataclass
class Completion:
    """The result of one call."""

    text: str
    call_id: str
    usage: Usage
    cost_usd: float | None
    cost_status: CostStatus
    latency_ms: float
    model: str
    raw: Any = field(repr=False, default=None)
    ttft_ms: float | None = None
    prompt: Prompt | None = field(repr=False, default=None)
    #: The tool calls the model answered with, as OpenAI writes them: ``{"id", "type":
    #: "function", "function": {"name", "arguments"}}`` (``arguments`` is a JSON text).
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str | None = None  # stop, length, tool_calls, content_filter, ...
    #: The log-probability of each output token, when the call asked for ``logprobs``.
    logprobs: list[float] | None = field(repr=False, default=None)

    @classmethod
    def of(
        cls,
        call: Call,
        text: str,
        usage: Usage | None,
        price: Price,
        latency_ms: float,
        raw: Any,
        ttft_ms: float | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
    ) -> Completion:
        """What the app gets back for a recorded call."""
        return cls(
            text=text,
            call_id=call.id,
            usage=usage or Usage(),
            cost_usd=price.cost_usd,
            cost_status=price.status,
            latency_ms=latency_ms,
            model=call.model,
            raw=raw,
            ttft_ms=ttft_ms,
            prompt=call.prompt,
            tool_calls=tool_calls or [],
            finish_reason=finish_reason_of(raw),
            logprobs=logprobs_of(raw),
        )


@dataclass
class Embedding:
    """The result of one embeddings call: a vector per input, in order."""

    vectors: list[list[float]]
    call_id: str
    usage: Usage
    cost_usd: float | None
    cost_status: CostStatus
    latency_ms: float
    model: str
    raw: Any = field(repr=False, default=None)


@dataclass
class Call:
    """Everything known about a call before it is sent."""

    id: str
    model: str
    messages: list[dict[str, Any]]
    params: dict[str, Any]
    prompt: Prompt | None
    user: str | None
    session: str | None
    tags: list[str] | None
    metadata: dict[str, Any] | None
    price: ModelPrice | None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started: float = field(default_factory=time.perf_counter)
    served: Served = field(default_factory=Served)  # what the provider says answered
    key_name: str | None = None  # the virtual key it came with (llmops serve)
    operation: str = "chat"  # or "embeddings" (kept in usage_details)
    variables: dict[str, Any] | None = None  # the prompt's variables (stored as content)
    scope: Scope | None = None  # an eval target's scope the call is linked to
    token_input: list[list[int]] | None = None  # embeddings input given as token ids
    billed_usd: float | None = None  # what the provider reported the call cost

    def embedding_input(self) -> list[str] | list[list[int]]:
        """What an embeddings call sends as ``input``: its token ids as given, or its texts."""
        if self.token_input is not None:
            return self.token_input
        return [m["content"] for m in self.messages]


class Sink(Protocol):
    """Where rows go: the background writer."""

    def put(self, kind: RecordKind, row: Row) -> None: ...


class Recorder:
    """Turns finished calls into rows for ``writer`` (see the module docstring)."""

    def __init__(self, writer: Sink, prices: PriceBook, *, content: str, source: str) -> None:
        self.writer = writer
        self.prices = prices
        self.content = content
        self.source = source
        self.recent: dict[str, None] = {}  # ids of calls recorded lately (feedback checks)
        # Called with every row handed to the writer, on the app's call path: an observer
        # must be cheap (queue the row for its own thread) and must not change the row.
        self.observers: list[Callable[[RecordKind, Row], None]] = []

    def knows(self, call_id: str) -> bool:
        """Whether this recorder recorded ``call_id`` lately."""
        return call_id in self.recent

    def record_response(self, call: Call, response: Any) -> Completion:
        """Record a call that answered; the Completion the app gets."""
        latency_ms = (time.perf_counter() - call.started) * 1000
        text = _response_text(response)
        hidden = getattr(response, "_hidden_params", None) or {}
        raw_usage = getattr(response, "usage", None)
        raw_calls = _response_tool_calls(response)
        usage, price, provider = self.account(
            call,
            read_usage(raw_usage, hidden.get("custom_llm_provider")),
            text,
            hidden.get("custom_llm_provider"),
            served_by(response, raw_usage),
            tool_call_text(raw_calls),
            cited=response_cites_urls(response),
            raw_usage=raw_usage,
        )
        calls = tool_calls_of(raw_calls)
        self.record(call, "ok", usage, price, latency_ms, text, provider=provider, tool_calls=calls)
        return Completion.of(call, text, usage, price, latency_ms, response, tool_calls=calls)

    def record_embedding(self, call: Call, response: Any) -> Embedding:
        """Record an embeddings call that answered; the vectors the app gets."""
        latency_ms = (time.perf_counter() - call.started) * 1000
        hidden = getattr(response, "_hidden_params", None) or {}
        raw_usage = getattr(response, "usage", None)
        usage, price, provider = self.account(
            call,
            read_usage(raw_usage),
            "",
            hidden.get("custom_llm_provider"),
            served_by(response, raw_usage),
            raw_usage=raw_usage,
        )
        self.record(call, "ok", usage, price, latency_ms, None, provider=provider)
        vectors = [_vector(item) for item in getattr(response, "data", None) or []]
        return Embedding(
            vectors=vectors,
            call_id=call.id,
            usage=usage or Usage(),
            cost_usd=price.cost_usd,
            cost_status=price.status,
            latency_ms=latency_ms,
            model=call.model,
            raw=response,
        )

    def account(
        self,
        call: Call,
        usage: Usage | None,
        text: str,
        provider: str | None,
        served: Served,
        tool_calls: str = "",
        *,
        reported: Usage | None = None,
        cited: bool = False,
        raw_usage: Any = None,
    ) -> tuple[Usage | None, Price, str | None]:
        """Usage (counted locally when the provider sent none), price and provider of a
        finished call. ``reported``: what the provider reported of a call that ended before
        its usage did (a stream's input tokens, with cache reads): kept, and its output
        tokens at least as many as the output seen. ``cited``: the answer cites URLs (a
        search model's: one web search call). ``raw_usage``: the provider's usage as sent,
        for the cost it reports (:func:`billed_cost`). Never raises: a call that cannot be
        priced is recorded unpriced."""
        call.served = served
        try:
            provider = provider or provider_of(call.model)
            call.billed_usd = billed_cost(raw_usage, provider)
            call.served = served = endpoint_of(provider, call.model, call.params).merged(served)
            asked = call.params.get("service_tier")
            if not served.service_tier and isinstance(asked, str) and asked:
                # priced at that tier's rates, approximate (Bedrock's streams say none)
                call.served = served = replace(served, asked_tier=asked.lower())
            if usage is None:
                usage = estimate_usage(
                    call.model,
                    call.messages,
                    text,
                    tools=tools_of(call.params),
                    completion_tool_calls=tool_calls,
                )
                if reported is not None:
                    seen = max(reported.completion_tokens, usage.completion_tokens)
                    usage = replace(reported, completion_tokens=seen, estimated=True)
            usage = with_cited_search(usage, cited)
            return usage, self.price(call, usage, provider, served), provider
        except Exception as exc:  # accounting must never break the app's call or lose it
            log.exception("llmops: could not price call %s; recording it unpriced", call.id)
            return usage, Price(None, "unpriced", f"pricing failed: {type(exc).__name__}"), provider

    def record_failure(self, call: Call, exc: BaseException) -> None:
        latency_ms = (time.perf_counter() - call.started) * 1000
        cancelled = isinstance(exc, KeyboardInterrupt | asyncio.CancelledError | GeneratorExit)
        # A failed request is not billed; an interrupted one, or one that timed out (the
        # provider had it, and may have answered and billed it after we stopped waiting),
        # may have been: unknown.
        unknown = cancelled or timed_out(exc)
        price = Price(None, "unpriced", None) if unknown else Price(0.0, "priced", NOT_BILLED)
        provider = getattr(exc, "llm_provider", None)
        self.record(
            call,
            "cancelled" if cancelled else "error",
            None,
            price,
            latency_ms,
            None,
            provider=provider if isinstance(provider, str) else provider_of(call.model),
            error=exc,
        )

    def price(self, call: Call, usage: Usage, provider: str | None, served: Served) -> Price:
        """The call's price, at the rates of when it ended (off-peak rates: DeepSeek)."""
        if not usage.used and call.price is None and call.billed_usd is None:
            return Price(0.0, "priced", None)  # nothing was used, nothing is billed
        ended = call.created_at + timedelta(seconds=time.perf_counter() - call.started)
        return self.prices.price(call.model, usage, provider=provider, served=served,
                                 override=call.price, at=ended, billed=call.billed_usd)  # fmt: skip

    def record(
        self,
        call: Call,
        status: CallStatus,
        usage: Usage | None,
        price: Price,
        latency_ms: float | None,
        text: str | None,
        *,
        provider: str | None = None,
        ttft_ms: float | None = None,
        error: BaseException | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
    ) -> None:
        """Hand the call's row to the writer. Never raises: a row that cannot be built in
        full is recorded with what is known (and the reason in ``error_message``)."""
        try:
            row = self._row(
                call, status, usage, price, latency_ms, text, provider, ttft_ms, error, tool_calls
            )
        except Exception as exc:
            log.exception("llmops: could not build the row of call %s", call.id)
            row = self._row(call, status, None, Price(None, "unpriced", None), latency_ms,
                            None, None, ttft_ms, exc, minimal=True)  # fmt: skip
        self.remember(call.id)
        if call.scope is not None:
            call.scope.note(call.id, price.cost_usd)
        self.put("call", row)

    def put(self, kind: RecordKind, row: Row) -> None:
        """Hand a row to the writer, then show it to the observers (which never raise into
        the app: a failing observer is logged)."""
        self.writer.put(kind, row)
        for observer in self.observers:
            try:
                observer(kind, row)
            except Exception:
                log.exception("llmops: an observer of recorded rows failed")

    def _row(
        self,
        call: Call,
        status: CallStatus,
        usage: Usage | None,
        price: Price,
        latency_ms: float | None,
        text: str | None,
        provider: str | None,
        ttft_ms: float | None,
        error: BaseException | None,
        tool_calls: list[dict[str, Any]] | None = None,
        *,
        minimal: bool = False,
    ) -> CallRow:
        prompt = call.prompt
        row: CallRow = {
            "id": call.id,
            "created_at": call.created_at,
            "source": call.scope.source if call.scope else self.source,
            "prompt_name": prompt.name if prompt else None,
            "prompt_version": prompt.version if prompt else None,
            "git_commit": prompt.commit if prompt else None,
            "model": call.model,
            "provider": provider,
            "status": status,
            "error_type": type(error).__name__ if error is not None else None,
            "error_message": _error_message(error, call.params),
            "prompt_tokens": usage.prompt_tokens if usage else None,
            "completion_tokens": usage.completion_tokens if usage else None,
            "cached_tokens": usage.cached_tokens if usage else None,
            "cache_write_tokens": usage.cache_write_tokens if usage else None,
            "reasoning_tokens": usage.reasoning_tokens if usage else None,
            "tokens_estimated": bool(usage and usage.estimated),
            "cost_usd": price.cost_usd,
            "cost_status": price.status,
            "price_source": price.source,
            "latency_ms": round(latency_ms, 3) if latency_ms is not None else None,
            "ttft_ms": round(ttft_ms, 3) if ttft_ms is not None else None,
            "user_id": call.user,
            "session_id": call.session,
            "tags": call.tags,
            "metadata": None,
            "request": None,
            "response_text": None,
            "usage_details": None,
            "api_key": call.key_name,
        }
        if not minimal:
            row["usage_details"] = _usage_details(call, usage, price)
            row["metadata"] = scrub(call.metadata) if call.metadata else None
            row["request"] = stored_request(
                self.content, call.messages, call.params, call.variables, tool_calls
            )
            row["response_text"] = stored_response(self.content, text)
        return row

    def remember(self, call_id: str) -> None:
        self.recent[call_id] = None
        if len(self.recent) > RECENT_IDS:
            self.recent.pop(next(iter(self.recent)))


_PROVIDERS: dict[str, str | None] = {}


def read_usage(raw: Any, provider: str | None = None) -> Usage | None:
    """:func:`usage_from_response`, which must never break the app's call: a usage it
    cannot read is logged, and the call's tokens are counted locally."""
    try:
        return usage_from_response(raw, provider)
    except Exception:
        log.exception("llmops: could not read a usage of %s; counting locally", provider)
        return None


def provider_of(model: str) -> str | None:
    """The provider litellm routes ``model`` to (cached: it is asked once per model)."""
    if model not in _PROVIDERS:
        if len(_PROVIDERS) >= 10_000:  # model names may come from a server's clients
            _PROVIDERS.clear()
        light = litellm_loader.openai_route(model)
        if light is not None:  # litellm answers the same for these names
            _PROVIDERS[model] = light[1]
            return light[1]
        try:
            _PROVIDERS[model] = litellm_loader.load().get_llm_provider(model)[1]
        except Exception:
            _PROVIDERS[model] = None
    return _PROVIDERS[model]


def _usage_details(call: Call, usage: Usage | None, price: Price) -> dict[str, Any] | None:
    """The ``usage_details`` column: the usage parts without a column, who served the call,
    the price entry used and why a price is approximate; None when there is nothing."""
    details: dict[str, Any] = usage.details() if usage is not None else {}
    served = call.served
    if served.model and served.model != call.model:
        details["served_model"] = served.model
    if served.service_tier:
        details["service_tier"] = served.service_tier
    details.update(served.details())
    details.update(price_details(call.model, price))
    if call.billed_usd is not None:  # kept whatever priced the call: re-pricing reads it
        details["billed_usd"] = call.billed_usd
    if call.operation != "chat":
        details["operation"] = call.operation
    return details or None


def _vector(item: Any) -> list[float]:
    if isinstance(item, dict):
        embedding = item.get("embedding")
    else:
        embedding = getattr(item, "embedding", None)
    return list(embedding) if isinstance(embedding, list) else []


def _response_tool_calls(response: Any) -> Any:
    try:
        return response.choices[0].message.tool_calls
    except (AttributeError, IndexError, TypeError):
        return None


def tool_calls_of(raw: Any) -> list[dict[str, Any]]:
    """A response's tool calls as plain OpenAI dicts (from litellm's objects or JSON)."""
    calls = []
    for item in raw or []:
        get = item.get if isinstance(item, dict) else lambda key, i=item: getattr(i, key, None)
        function = get("function")
        fget = (
            function.get
            if isinstance(function, dict)
            else lambda key, f=function: getattr(f, key, None)
        )
        arguments = fget("arguments")
        if arguments is not None and not isinstance(arguments, str):
            arguments = json.dumps(arguments)
        calls.append(
            {
                "id": get("id"),
                "type": get("type") or "function",
                "function": {"name": fget("name"), "arguments": arguments or ""},
            }
        )
    return calls


def finish_reason_of(response: Any) -> str | None:
    """Why the model stopped (``stop``, ``length``, ``tool_calls``, ...), if it said."""
    try:
        reason = response.choices[0].finish_reason
    except (AttributeError, IndexError, TypeError, KeyError):
        return None
    return str(reason) if reason else None


def logprobs_of(response: Any) -> list[float] | None:
    """The output tokens' log-probabilities, when the response carries them."""
    try:
        content = response.choices[0].logprobs
        content = content["content"] if isinstance(content, dict) else content.content
    except (AttributeError, IndexError, TypeError, KeyError):
        return None
    values = []
    for token in content or []:
        value = token.get("logprob") if isinstance(token, dict) else getattr(token, "logprob", None)
        if isinstance(value, int | float):
            values.append(float(value))
    return values or None


def _error_message(error: BaseException | None, params: dict[str, Any]) -> str | None:
    """An exception's message without the credentials it may echo."""
    if error is None:
        return None
    try:
        message = str(error)
    except Exception:
        message = f"<{type(error).__name__}: message unavailable>"
    return scrub_error(message[:4000], params)


def _response_text(response: Any) -> str:
    try:
        content = response.choices[0].message.content
    except (AttributeError, IndexError, TypeError):
        return ""
    return content or ""
