"""The Gateway: call models through litellm and record every call.

One call's journey: resolve the prompt and render it -> ``litellm.completion`` ->
usage (counted locally when missing) -> cost -> a row handed to the background writer.
Recording never raises into the app and never waits for the database.
"""

from __future__ import annotations

import logging
import math
import numbers
import random as _random
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops.config import CONTENT_MODES, Settings
from llmops.errors import ConfigError, InvalidFeedbackError, UnknownCallError
from llmops.gateway import _litellm
from llmops.gateway._content import scrub, scrub_error, stored_request, stored_response
from llmops.gateway.accounting import ModelPrice, Price, PriceBook, model_price, price_details
from llmops.gateway.usage import (
    Served,
    Usage,
    estimate_usage,
    served_by,
    tool_call_text,
    tools_of,
    usage_from_response,
)
from llmops.prompts import Prompt, PromptRegistry
from llmops.store.records import CallRow, CallStatus, FeedbackRow

if TYPE_CHECKING:
    from llmops.gateway.streams import AsyncStream, Stream

log = logging.getLogger("llmops.gateway")

NOT_BILLED = "not billed: the call failed"
_RECENT_IDS = 100_000  # call ids remembered for feedback checks without a query
_LIVE: weakref.WeakSet[Gateway] = weakref.WeakSet()


@dataclass
class Completion:
    """The result of one call."""

    text: str
    call_id: str
    usage: Usage
    cost_usd: float | None
    cost_status: str
    latency_ms: float
    model: str
    raw: Any = field(repr=False, default=None)
    ttft_ms: float | None = None
    prompt: Prompt | None = field(repr=False, default=None)


@dataclass
class _Call:
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


class Gateway:
    """Calls models through litellm and records each call to SQLite or Postgres.

    ``database_url`` defaults to ``LLMOPS_DATABASE_URL`` (else a SQLite file under
    ``LLMOPS_HOME``); ``prompts`` is the prompt folder (or a PromptRegistry); ``content``
    is ``full``, ``redact`` or ``none``; ``prices`` is a prices file or a mapping of
    model -> ModelPrice that wins over litellm's price map. ``clock`` returns the UTC time
    to record calls at (for backfills, simulations and tests; default: now).
    """

    def __init__(
        self,
        database_url: str | None = None,
        prompts: str | Path | PromptRegistry | None = None,
        content: str | None = None,
        *,
        prices: str | Path | Mapping[str, ModelPrice | dict[str, Any]] | None = None,
        source: str = "app",
        home: str | Path | None = None,
        batch_size: int = 1000,
        batch_interval: float = 0.2,
        queue_size: int = 20_000,
        retry_interval: float = 0.5,
        busy_timeout_ms: int = 5000,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        from llmops.store.engine import check_schema, create_engine, normalize_url
        from llmops.store.writer import Writer

        settings = Settings.from_env()
        self.home = Path(home) if home is not None else settings.home
        self.database_url = database_url or (
            settings.database_url if home is None else f"sqlite:///{self.home / 'llmops.db'}"
        )
        normalize_url(self.database_url)  # a bad URL is a clear error now, not later
        self.content = (content or settings.content).lower()
        if self.content not in CONTENT_MODES:
            raise ConfigError(f"content={content!r}: expected one of {', '.join(CONTENT_MODES)}")
        if isinstance(prompts, PromptRegistry):
            self.registry = prompts
        else:
            self.registry = PromptRegistry(prompts if prompts is not None else settings.prompts_dir)
        self.source = source
        self.clock = clock or _utc_now
        self.prices = _price_book(prices, settings)
        self._prompts: dict[str, tuple[tuple[float, float], Prompt]] = {}
        self._recent: dict[str, None] = {}
        self._engine = None
        self._engine_lock = threading.Lock()

        def engine():  # type: ignore[no-untyped-def]
            with self._engine_lock:
                if self._engine is None:
                    self._engine = create_engine(self.database_url, busy_timeout_ms=busy_timeout_ms)
                return self._engine

        self._engine_factory = engine
        try:
            check_schema(engine())  # a new database is created; an old one is refused
        except ConfigError:
            raise
        except Exception as exc:  # unreachable now: the writer spools and retries
            log.warning("llmops: database not reachable yet (%s); spooling calls", exc)
        self._writer = Writer(
            engine,
            self.home / "spool",
            batch_size=batch_size,
            queue_size=queue_size,
            retry_min=retry_interval,
            linger=batch_interval,
            prepare=lambda e: check_schema(e),
        )
        _LIVE.add(self)

    # -- preparing a call -----------------------------------------------------------

    def prompt(self, ref: str) -> Prompt:
        """Load a prompt by reference, cached until its file or ``labels.yaml`` changes."""
        name = ref.partition("@")[0]
        path = self.registry.path_of(name)
        stamp = (_mtime(path), _mtime(self.registry.root / "labels.yaml"))
        cached = self._prompts.get(ref)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        prompt = self.registry.load(ref)
        self._prompts[ref] = (stamp, prompt)
        return prompt

    def _prepare(
        self,
        prompt: str | Prompt | None,
        variables: Mapping[str, Any] | None,
        model: str | None,
        messages: list[dict[str, Any]] | None,
        user: str | None,
        session: str | None,
        tags: list[str] | None,
        metadata: dict[str, Any] | None,
        price: ModelPrice | dict[str, Any] | None,
        kwargs: dict[str, Any],
    ) -> _Call:
        loaded: Prompt | None = None
        params: dict[str, Any] = {}
        if prompt is not None:
            if messages is not None:
                raise ConfigError("give either prompt= (with variables=) or messages=, not both")
            loaded = self.prompt(prompt) if isinstance(prompt, str) else prompt
            messages = loaded.render(variables or {})
            params.update(loaded.params)
            model = model or loaded.model
        elif messages is None:
            raise ConfigError("give prompt='name@label' (with variables=) or messages=[...]")
        if not model:
            where = f"prompt '{loaded.name}' has no model and" if loaded else ""
            raise ConfigError(f"{where} no model= was given".strip())
        params.update(kwargs)
        if isinstance(price, dict):
            price = model_price(price, "price=")
        return _Call(
            id=_new_id(),
            model=model,
            messages=list(messages),
            params=params,
            prompt=loaded,
            user=user,
            session=session,
            tags=list(tags) if tags else None,
            metadata=dict(metadata) if metadata else None,
            price=price,
            created_at=self.clock(),
        )

    # -- calling --------------------------------------------------------------------

    def complete(
        self,
        prompt: str | Prompt | None = None,
        variables: Mapping[str, Any] | None = None,
        *,
        model: str | None = None,
        messages: list[dict[str, Any]] | None = None,
        user: str | None = None,
        session: str | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        price: ModelPrice | dict[str, Any] | None = None,
        **litellm_kwargs: Any,
    ) -> Completion:
        """Call a model (a registry prompt, or raw ``model=`` and ``messages=``) and record it.

        Extra keyword arguments go to ``litellm.completion``. Errors from the model call are
        recorded and re-raised unchanged.
        """
        call = self._prepare(
            prompt, variables, model, messages, user, session, tags, metadata, price,
            litellm_kwargs,
        )  # fmt: skip
        response = self._send(call)
        return self._record_response(call, response, (time.perf_counter() - call.started) * 1000)

    async def acomplete(
        self,
        prompt: str | Prompt | None = None,
        variables: Mapping[str, Any] | None = None,
        *,
        model: str | None = None,
        messages: list[dict[str, Any]] | None = None,
        user: str | None = None,
        session: str | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        price: ModelPrice | dict[str, Any] | None = None,
        **litellm_kwargs: Any,
    ) -> Completion:
        """The async twin of :meth:`complete` (``litellm.acompletion``)."""
        call = self._prepare(
            prompt, variables, model, messages, user, session, tags, metadata, price,
            litellm_kwargs,
        )  # fmt: skip
        response = await self._asend(call)
        return self._record_response(call, response, (time.perf_counter() - call.started) * 1000)

    def stream(
        self,
        prompt: str | Prompt | None = None,
        variables: Mapping[str, Any] | None = None,
        *,
        model: str | None = None,
        messages: list[dict[str, Any]] | None = None,
        user: str | None = None,
        session: str | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        price: ModelPrice | dict[str, Any] | None = None,
        **litellm_kwargs: Any,
    ) -> Stream:
        """Stream a call's text chunks. The call is recorded when the stream ends, fails,
        or is abandoned (closed, garbage-collected, or the loop breaks out)."""
        from llmops.gateway.streams import Stream

        call = self._prepare(
            prompt, variables, model, messages, user, session, tags, metadata, price,
            _streaming(litellm_kwargs),
        )  # fmt: skip
        response = self._send(call)
        return Stream(self, call, response)

    async def astream(
        self,
        prompt: str | Prompt | None = None,
        variables: Mapping[str, Any] | None = None,
        *,
        model: str | None = None,
        messages: list[dict[str, Any]] | None = None,
        user: str | None = None,
        session: str | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        price: ModelPrice | dict[str, Any] | None = None,
        **litellm_kwargs: Any,
    ) -> AsyncStream:
        """The async twin of :meth:`stream`: ``async for chunk in await gw.astream(...)``."""
        from llmops.gateway.streams import AsyncStream

        call = self._prepare(
            prompt, variables, model, messages, user, session, tags, metadata, price,
            _streaming(litellm_kwargs),
        )  # fmt: skip
        response = await self._asend(call)
        return AsyncStream(self, call, response)

    def _send(self, call: _Call) -> Any:
        """Call litellm; a failure is recorded, then re-raised unchanged."""
        litellm = _litellm.load(remote_price_map=self.prices.remote_price_map)
        call.started = time.perf_counter()
        try:
            return litellm.completion(model=call.model, messages=call.messages, **call.params)
        except BaseException as exc:
            self._record_failure(call, exc)
            raise

    async def _asend(self, call: _Call) -> Any:
        """The async twin of :meth:`_send`."""
        litellm = _litellm.load(remote_price_map=self.prices.remote_price_map)
        call.started = time.perf_counter()
        try:
            return await litellm.acompletion(
                model=call.model, messages=call.messages, **call.params
            )
        except BaseException as exc:
            self._record_failure(call, exc)
            raise

    # -- recording ------------------------------------------------------------------

    def _record_response(self, call: _Call, response: Any, latency_ms: float) -> Completion:
        text = _response_text(response)
        hidden = getattr(response, "_hidden_params", None) or {}
        raw_usage = getattr(response, "usage", None)
        usage, price, provider = self._account(
            call,
            usage_from_response(raw_usage),
            text,
            hidden.get("custom_llm_provider"),
            served_by(response, raw_usage),
            tool_call_text(_response_tool_calls(response)),
        )
        self._record(call, "ok", usage, price, latency_ms, text, provider=provider)
        return Completion(
            text=text,
            call_id=call.id,
            usage=usage or Usage(),
            cost_usd=price.cost_usd,
            cost_status=price.status,
            latency_ms=latency_ms,
            model=call.model,
            raw=response,
            prompt=call.prompt,
        )

    def _account(
        self,
        call: _Call,
        usage: Usage | None,
        text: str,
        provider: str | None,
        served: Served,
        tool_calls: str = "",
    ) -> tuple[Usage | None, Price, str | None]:
        """Usage (counted locally when the provider sent none), price and provider of a
        finished call. Never raises: a call that cannot be priced is recorded unpriced."""
        call.served = served
        try:
            if usage is None:
                usage = estimate_usage(
                    call.model,
                    call.messages,
                    text,
                    tools=tools_of(call.params),
                    completion_tool_calls=tool_calls,
                )
            provider = provider or _provider_of(call.model)
            return usage, self._price(call, usage, provider, served), provider
        except Exception as exc:  # accounting must never break the app's call or lose it
            log.exception("llmops: could not price call %s; recording it unpriced", call.id)
            return usage, Price(None, "unpriced", f"pricing failed: {type(exc).__name__}"), provider

    def _record_failure(self, call: _Call, exc: BaseException) -> None:
        latency_ms = (time.perf_counter() - call.started) * 1000
        import asyncio

        cancelled = isinstance(exc, KeyboardInterrupt | asyncio.CancelledError | GeneratorExit)
        # A failed request is not billed; an interrupted one may have been: unknown.
        price = Price(None, "unpriced", None) if cancelled else Price(0.0, "priced", NOT_BILLED)
        provider = getattr(exc, "llm_provider", None)
        self._record(
            call,
            "cancelled" if cancelled else "error",
            None,
            price,
            latency_ms,
            None,
            provider=provider if isinstance(provider, str) else _provider_of(call.model),
            error=exc,
        )

    def _price(self, call: _Call, usage: Usage, provider: str | None, served: Served) -> Price:
        if usage.total_tokens == 0 and call.price is None:
            return Price(0.0, "priced", None)  # nothing was used, nothing is billed
        return self.prices.price(
            call.model, usage, provider=provider, served=served, override=call.price
        )

    def _record(
        self,
        call: _Call,
        status: CallStatus,
        usage: Usage | None,
        price: Price,
        latency_ms: float,
        text: str | None,
        *,
        provider: str | None = None,
        ttft_ms: float | None = None,
        error: BaseException | None = None,
    ) -> None:
        """Hand the call's row to the writer. Never raises: a row that cannot be built in
        full is recorded with what is known (and the reason in ``error_message``)."""
        try:
            row = self._row(call, status, usage, price, latency_ms, text, provider, ttft_ms, error)
        except Exception as exc:
            log.exception("llmops: could not build the row of call %s", call.id)
            row = self._row(call, status, None, Price(None, "unpriced", None), latency_ms,
                            None, None, ttft_ms, exc, minimal=True)  # fmt: skip
        self._remember(call.id)
        self._writer.put("call", row)

    def _row(
        self,
        call: _Call,
        status: CallStatus,
        usage: Usage | None,
        price: Price,
        latency_ms: float,
        text: str | None,
        provider: str | None,
        ttft_ms: float | None,
        error: BaseException | None,
        *,
        minimal: bool = False,
    ) -> CallRow:
        prompt = call.prompt
        row: CallRow = {
            "id": call.id,
            "created_at": call.created_at,
            "source": self.source,
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
            "cost_status": price.status,  # type: ignore[typeddict-item]
            "price_source": price.source,
            "latency_ms": round(latency_ms, 3),
            "ttft_ms": round(ttft_ms, 3) if ttft_ms is not None else None,
            "user_id": call.user,
            "session_id": call.session,
            "tags": call.tags,
            "metadata": None,
            "request": None,
            "response_text": None,
            "usage_details": None,
        }
        if not minimal:
            row["usage_details"] = _usage_details(call, usage, price)
            row["metadata"] = scrub(call.metadata) if call.metadata else None
            row["request"] = stored_request(self.content, call.messages, call.params)
            row["response_text"] = stored_response(self.content, text)
        return row

    def _remember(self, call_id: str) -> None:
        self._recent[call_id] = None
        if len(self._recent) > _RECENT_IDS:
            self._recent.pop(next(iter(self._recent)))

    # -- feedback -------------------------------------------------------------------

    def feedback(
        self,
        call_id: str,
        score: float | int | bool,
        name: str = "rating",
        comment: str | None = None,
        user: str | None = None,
    ) -> str:
        """Attach a numeric score to a recorded call; returns the feedback id.

        Thumbs up/down are 1/0, stars 1-5, and so on; a call may have many scores.
        """
        if isinstance(score, bool):
            score = int(score)
        if not isinstance(score, numbers.Real) or not math.isfinite(float(score)):
            raise InvalidFeedbackError(
                f"feedback for call {call_id}: score must be a finite number, got {score!r}"
            )
        if not isinstance(name, str) or not name.strip():
            raise InvalidFeedbackError(f"feedback for call {call_id}: name must be a word")
        try:
            uuid.UUID(str(call_id))
        except ValueError:
            raise UnknownCallError(
                f"feedback: {call_id!r} is not a call id", call_id=str(call_id)
            ) from None
        if call_id not in self._recent and not self._call_exists(call_id):
            raise UnknownCallError(f"feedback: no call {call_id} was recorded", call_id=call_id)
        feedback_id = str(uuid.uuid4())
        row: FeedbackRow = {
            "id": feedback_id,
            "call_id": call_id,
            "created_at": self.clock(),
            "name": name,
            "score": float(score),
            "comment": comment,
            "user_id": user,
        }
        self._writer.put("feedback", row)
        return feedback_id

    def _call_exists(self, call_id: str) -> bool:
        import sqlalchemy as sa

        from llmops.store.tables import CALLS

        try:
            with self._engine_factory().connect() as connection:
                found = connection.execute(
                    sa.select(CALLS.c.id).where(CALLS.c.id == call_id)
                ).first()
        except Exception as exc:  # database away: accept it, the writer keeps it safe
            log.warning("llmops: cannot check call %s (%s); keeping the feedback", call_id, exc)
            return True
        return found is not None

    # -- lifecycle ------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Block until everything recorded so far is in the database or in the spool."""
        return self._writer.flush(timeout)

    def close(self) -> None:
        """Flush and stop the writer."""
        self._writer.close()
        _LIVE.discard(self)

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def engine(self) -> Any:
        """The SQLAlchemy engine of the calls database."""
        return self._engine_factory()

    @property
    def writer(self) -> Any:
        """The background writer (its ``stats`` and ``healthy`` are useful in tests)."""
        return self._writer


def _streaming(kwargs: dict[str, Any]) -> dict[str, Any]:
    params = {**kwargs, "stream": True}
    params.setdefault("stream_options", {"include_usage": True})
    return params


_PROVIDERS: dict[str, str | None] = {}


def _provider_of(model: str) -> str | None:
    """The provider litellm routes ``model`` to (cached: it is asked once per model)."""
    if model not in _PROVIDERS:
        try:
            _PROVIDERS[model] = _litellm.load().get_llm_provider(model)[1]
        except Exception:
            _PROVIDERS[model] = None
    return _PROVIDERS[model]


def _usage_details(call: _Call, usage: Usage | None, price: Price) -> dict[str, Any] | None:
    """The ``usage_details`` column: the usage parts without a column, who served the call,
    the price entry used and why a price is approximate; None when there is nothing."""
    details: dict[str, Any] = usage.details() if usage is not None else {}
    served = call.served
    if served.model and served.model != call.model:
        details["served_model"] = served.model
    if served.service_tier:
        details["service_tier"] = served.service_tier
    details.update(price_details(call.model, price))
    return details or None


def _response_tool_calls(response: Any) -> Any:
    try:
        return response.choices[0].message.tool_calls
    except (AttributeError, IndexError, TypeError):
        return None


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


def _new_id() -> str:
    """A random (version 4) UUID. Unlike uuid4(), getrandbits does not release the GIL
    (os.urandom does), which lets the writer thread cut into the app's call."""
    return str(uuid.UUID(int=_random.getrandbits(128), version=4))


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return -1.0


def _price_book(prices: Any, settings: Settings) -> PriceBook:
    remote = settings.remote_price_map
    if prices is None:
        return PriceBook.from_file(settings.prices_file, remote_price_map=remote)
    if isinstance(prices, str | Path):
        return PriceBook.from_file(Path(prices), remote_price_map=remote)
    custom = {name: model_price(p, f"Gateway(prices=...)[{name!r}]") for name, p in prices.items()}
    return PriceBook(custom, custom_source="custom:mapping", remote_price_map=remote)


def close_all() -> None:
    """Flush and close every open gateway (runs at interpreter exit)."""
    for gateway in list(_LIVE):
        try:
            gateway.close()
        except Exception:
            log.exception("llmops: could not close a gateway at exit")
