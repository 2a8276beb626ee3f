"""The Gateway: call models through litellm and record every call.

One call's journey: resolve the prompt and render it -> ``litellm.completion`` ->
usage (counted locally when missing) -> cost -> a row handed to the background writer.
Recording never raises into the app and never waits for the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import numbers
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmops import litellm_loader
from llmops.config import CONTENT_MODES, Budget, Settings
from llmops.control.otel import exporter_from_env
from llmops.errors import (
    BudgetExceededError,
    ConfigError,
    InvalidFeedbackError,
    UnknownCallError,
)
from llmops.gateway.budgets import BudgetGuard, MustWait
from llmops.gateway.direct import DirectRoute
from llmops.gateway.recorder import Call, Completion, Embedding, Recorder
from llmops.gateway.scope import current as current_scope
from llmops.pricing.prices import ModelPrice, Price, PriceBook, model_price
from llmops.pricing.usage import decode_tokens
from llmops.prompts import Prompt, PromptRegistry
from llmops.store.audit_log import utc
from llmops.store.ids import new_id
from llmops.store.records import FeedbackRow, stored_key, stored_tags

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from llmops.gateway.streams import AsyncStream, Stream
    from llmops.store.writer import Writer

EmbeddingInput = str | Sequence[str] | Sequence[int] | Sequence[Sequence[int]]
"""What :meth:`Gateway.embed` takes: a text, texts, token ids, or lists of token ids."""

log = logging.getLogger("llmops.gateway")

MAX_SCORE = 1e12
"""The largest feedback score, either sign: far past any rating, and sums of them stay
finite (two scores of 1e308 made every average of their prompt version infinite)."""
NOT_SENT = "not billed: never sent (its caller left before it was)"

_LIVE: weakref.WeakSet[Gateway] = weakref.WeakSet()


class Gateway:
    """Calls models through litellm and records each call to SQLite or Postgres.

    ``database_url`` defaults to ``LLMOPS_DATABASE_URL`` (else a SQLite file under
    ``LLMOPS_HOME``); ``prompts`` is the prompt folder (or a PromptRegistry); ``content``
    is ``full``, ``redact`` or ``none``; ``prices`` is a prices file or a mapping of
    model -> ModelPrice that wins over litellm's price map. ``clock`` returns the time
    to record calls at (for backfills, simulations and tests; default: now; a time without
    a time zone is taken as UTC). ``budgets``
    are the spend limits to enforce (default: ``budgets.limits`` of ``llmops.yaml``); those
    with ``action: block`` refuse calls that could take spend past them
    (:class:`~llmops.errors.BudgetExceededError`, see :mod:`llmops.gateway.budgets`).
    ``direct=True`` sends calls to OpenAI-compatible upstreams with httpx instead of litellm
    (much less overhead; their answers are the provider's JSON as
    :class:`~llmops.gateway.direct.JSONObject`, their errors
    :class:`~llmops.errors.ProviderError`; see :mod:`llmops.gateway.direct`).
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
        budgets: Sequence[Budget] | None = None,
        direct: bool = False,
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
        self._engine: Engine | None = None
        self._engine_lock = threading.Lock()

        def engine() -> Engine:
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
        self.recorder = Recorder(
            self._writer, self.prices, content=self.content, source=self.source
        )
        self.budgets = BudgetGuard(
            settings.budgets if budgets is None else budgets,
            engine,
            self.prices,
            source=self.source,
        )
        self.telemetry = exporter_from_env()  # LLMOPS_OTEL=1: each call as an OTel span
        if self.telemetry is not None:
            self.recorder.observers.append(self.telemetry)
        # attached even without blocking budgets: a server may add its keys' budgets later
        self.recorder.observers.append(self.budgets.settle)
        self._writer.transaction_hooks.append(self.budgets.commit)
        self._writer.stored_observers.append(self.budgets.stored)
        self.direct = DirectRoute(_route_of) if direct else None
        _LIVE.add(self)

    # -- preparing a call -----------------------------------------------------------

    def prompt(self, ref: str) -> Prompt:
        """Load a prompt by reference, cached until its file or ``labels.yaml`` changes."""
        stamp, cached = self._cached(ref)
        if cached is not None:
            return cached
        prompt = self.registry.load(ref)
        self._prompts[ref] = (stamp, prompt)
        return prompt

    def _cached(self, ref: str) -> tuple[tuple[float, float], Prompt | None]:
        """The files' stamp, and the prompt loaded for ``ref`` if they have not changed."""
        path = self.registry.path_of(ref.partition("@")[0])
        stamp = (_mtime(path), _mtime(self.registry.root / "labels.yaml"))
        cached = self._prompts.get(ref)
        return stamp, cached[1] if cached is not None and cached[0] == stamp else None

    async def aprompt(self, ref: str) -> Prompt:
        """:meth:`prompt` on an event loop: a load (which reads git) in a thread."""
        cached = self._cached(ref)[1]
        return cached if cached is not None else await asyncio.to_thread(self.prompt, ref)

    async def _aprepare(self, prompt: str | Prompt | None, *args: Any) -> Call:
        """:meth:`_prepare` on an event loop, which a slow prompt holds up for its call only,
        not for every call and stream of the loop: a load (it reads git) and the render of
        a template that is not plain (a loop, a filter, ...: a client's variables may make
        it take up to the sandbox's MAX_RENDER_SECONDS) run in a thread."""
        if isinstance(prompt, str):
            prompt = await self.aprompt(prompt)
        if prompt is None or prompt.plain:  # microseconds: no thread to hop to
            return self._prepare(prompt, *args)
        return await asyncio.to_thread(self._prepare, prompt, *args)

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
        key_name: str | None = None,
    ) -> Call:
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
        linked_to = current_scope()
        if linked_to is not None:  # an eval target's call: the run's tags and metadata too
            tags = [*linked_to.tags, *(t for t in tags or [] if t not in linked_to.tags)]
            metadata = {**(metadata or {}), **linked_to.metadata}
        # as the row will store them (cut with a digest, no NUL): budgets per user or tag
        # count a call under the key its spend is stored with
        if isinstance(user, str):
            user = stored_key(user, "user_id")
        if isinstance(session, str):
            session = stored_key(session, "session_id")
        tags = stored_tags(tags) if tags else None
        return Call(
            id=new_id(),
            model=model,
            messages=list(messages),
            params=params,
            prompt=loaded,
            user=user,
            session=session,
            tags=tags,
            metadata=dict(metadata) if metadata else None,
            price=price,
            created_at=utc(self.clock()),
            key_name=key_name,
            variables=dict(variables) if loaded is not None and variables else None,
            scope=linked_to,
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
        api_key_name: str | None = None,
        **litellm_kwargs: Any,
    ) -> Completion:
        """Call a model (a registry prompt, or raw ``model=`` and ``messages=``) and record it.

        Extra keyword arguments go to ``litellm.completion``. Errors from the model call are
        recorded and re-raised unchanged. ``api_key_name`` is the name of the virtual key the
        call came with (``llmops serve`` sets it; it is recorded, never a provider key).
        """
        call = self._prepare(
            prompt, variables, model, messages, user, session, tags, metadata, price,
            litellm_kwargs, api_key_name,
        )  # fmt: skip
        self._admit(call)
        response = self._send(call)
        return self.recorder.record_response(call, response)

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
        api_key_name: str | None = None,
        **litellm_kwargs: Any,
    ) -> Completion:
        """The async twin of :meth:`complete` (``litellm.acompletion``)."""
        call = await self._aprepare(
            prompt, variables, model, messages, user, session, tags, metadata, price,
            litellm_kwargs, api_key_name,
        )  # fmt: skip
        await self._aadmit(call)
        response = await self._asend(call)
        return self.recorder.record_response(call, response)

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
        api_key_name: str | None = None,
        **litellm_kwargs: Any,
    ) -> Stream:
        """Stream a call's text chunks. The call is recorded when the stream ends, fails,
        or is abandoned (closed, garbage-collected, or the loop breaks out)."""
        from llmops.gateway.streams import Stream

        call = self._prepare(
            prompt, variables, model, messages, user, session, tags, metadata, price,
            _streaming(litellm_kwargs), api_key_name,
        )  # fmt: skip
        self._admit(call)
        response = self._send(call)
        return Stream(self.recorder, call, response)

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
        api_key_name: str | None = None,
        **litellm_kwargs: Any,
    ) -> AsyncStream:
        """The async twin of :meth:`stream`: ``async for chunk in await gw.astream(...)``."""
        from llmops.gateway.streams import AsyncStream

        call = await self._aprepare(
            prompt, variables, model, messages, user, session, tags, metadata, price,
            _streaming(litellm_kwargs), api_key_name,
        )  # fmt: skip
        await self._aadmit(call)
        response = await self._asend(call)
        return AsyncStream(self.recorder, call, response)

    def embed(
        self,
        input: EmbeddingInput,
        *,
        model: str,
        user: str | None = None,
        session: str | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        price: ModelPrice | dict[str, Any] | None = None,
        api_key_name: str | None = None,
        **litellm_kwargs: Any,
    ) -> Embedding:
        """Embed one text or a list of texts with ``model`` (``litellm.embedding``) and
        record the call: its tokens and cost, the texts as the content mode says, operation
        ``embeddings`` in ``usage_details``. Blocking budgets apply. ``input`` may also be
        token ids, as OpenAI takes them (one list of ints, or a list of such lists): they
        are sent as given and stored as their text in the model's tiktoken encoding."""
        call = self._embedding_call(
            input, model, user, session, tags, metadata, price, litellm_kwargs, api_key_name
        )
        self._admit(call)
        return self.recorder.record_embedding(call, self._send(call))

    async def aembed(
        self,
        input: EmbeddingInput,
        *,
        model: str,
        user: str | None = None,
        session: str | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        price: ModelPrice | dict[str, Any] | None = None,
        api_key_name: str | None = None,
        **litellm_kwargs: Any,
    ) -> Embedding:
        """The async twin of :meth:`embed` (``litellm.aembedding``)."""
        call = self._embedding_call(
            input, model, user, session, tags, metadata, price, litellm_kwargs, api_key_name
        )
        await self._aadmit(call)
        return self.recorder.record_embedding(call, await self._asend(call))

    def _embedding_call(
        self,
        input: EmbeddingInput,
        model: str,
        user: str | None,
        session: str | None,
        tags: list[str] | None,
        metadata: dict[str, Any] | None,
        price: ModelPrice | dict[str, Any] | None,
        kwargs: dict[str, Any],
        key_name: str | None,
    ) -> Call:
        texts, token_input = _embedding_texts(input, model)
        messages = [{"role": "user", "content": text} for text in texts]  # stored, estimated
        call = self._prepare(
            None, None, model, messages, user, session, tags, metadata, price, kwargs, key_name
        )
        call.operation = "embeddings"
        call.token_input = token_input
        return call

    def _admit(self, call: Call) -> None:
        """Refuse the call, before the model is called, when a blocking budget says so: it
        is recorded as ``blocked`` (cost 0) and BudgetExceededError is raised."""
        if self.budgets:
            self._refuse(call, self.budgets.admit(call))

    async def _aadmit(self, call: Call) -> None:
        """:meth:`_admit` on an event loop: decided from the leases in memory, or, when a
        lease must be extended in the database, in a thread, so that a slow or locked
        database holds this call only, not every call and stream of the loop."""
        if not self.budgets:
            return
        try:
            refusal = self.budgets.admit(call, wait=False)
        except MustWait:
            admission = _Admission()

            def admit() -> BudgetExceededError | None:
                decided = self.budgets.admit(call)
                with admission.lock:
                    admission.decided, admission.refusal = True, decided
                    left = admission.left
                if left:  # nobody awaits it any more (even the loop may have ended)
                    self._left_waiting(call, decided)
                return decided

            try:
                refusal = await asyncio.to_thread(admit)
            except asyncio.CancelledError:  # the thread decides all the same
                with admission.lock:
                    admission.left = True
                    decided = admission.decided
                if decided:
                    self._left_waiting(call, admission.refusal)
                raise
        self._refuse(call, refusal)

    def _left_waiting(self, call: Call, refusal: BudgetExceededError | None) -> None:
        """A call whose caller left while its budget waited for the ledger: recorded
        ``cancelled`` at cost 0 once admitted (it was never sent; the cost gives its
        estimate back to the leases), or ``blocked`` when refused."""
        if refusal is not None:
            with contextlib.suppress(BudgetExceededError):
                self._refuse(call, refusal)
            return
        self._record_unsent(
            call, asyncio.CancelledError("the caller left while its budget was checked")
        )

    def _record_unsent(self, call: Call, error: BaseException) -> None:
        """Record a call its caller left before it was sent: ``cancelled`` at cost 0 (which
        gives its budget estimate back to the leases)."""
        latency_ms = (time.perf_counter() - call.started) * 1000
        unsent = Price(0.0, "priced", NOT_SENT)
        self.recorder.record(call, "cancelled", None, unsent, latency_ms, None, error=error)

    def _refuse(self, call: Call, refusal: BudgetExceededError | None) -> None:
        """Record the refused call as ``blocked`` and raise the refusal, if there is one."""
        if refusal is not None:
            blocked = Price(0.0, "priced", None)
            self.recorder.record(call, "blocked", None, blocked, None, None, error=refusal)
            _mark(refusal, call.id)
            raise refusal

    def _send(self, call: Call) -> Any:
        """Call the model (chat, or embeddings for an embeddings call, whose texts are its
        messages): on the direct route when it takes the call (without importing litellm),
        else through litellm; a failure is recorded, then re-raised unchanged."""
        direct = self.direct if self.direct is not None and self.direct.accepts(call) else None
        litellm: Any = None if direct else self._litellm()
        call.started = time.perf_counter()
        try:
            if direct is not None:
                return direct.send(call)
            if call.operation == "embeddings":
                return litellm.embedding(
                    model=call.model, input=call.embedding_input(), **call.params
                )
            return litellm.completion(model=call.model, messages=call.messages, **call.params)
        except BaseException as exc:
            self.recorder.record_failure(call, exc)
            _mark(exc, call.id)
            raise

    async def _asend(self, call: Call) -> Any:
        """The async twin of :meth:`_send`."""
        direct = self.direct if self.direct is not None and self.direct.accepts(call) else None
        litellm: Any = None
        if direct is None:
            try:
                litellm = await self._alitellm()
            except asyncio.CancelledError as exc:  # never sent: cancelled at cost 0
                self._record_unsent(call, exc)
                raise
        call.started = time.perf_counter()
        try:
            if direct is not None:
                return await direct.asend(call)
            if call.operation == "embeddings":
                return await litellm.aembedding(
                    model=call.model, input=call.embedding_input(), **call.params
                )
            return await litellm.acompletion(
                model=call.model, messages=call.messages, **call.params
            )
        except BaseException as exc:
            self.recorder.record_failure(call, exc)
            _mark(exc, call.id)
            raise

    def _litellm(self) -> Any:
        """litellm, imported and warmed up (its first call's lazy imports done)."""
        litellm = litellm_loader.load(remote_price_map=self.prices.remote_price_map)
        warm_up(litellm)
        return litellm

    async def _alitellm(self) -> Any:
        """:meth:`_litellm` on an event loop: the first import (about 4 s) and warm-up run in
        a thread, so that they hold this call only, not every call and stream of the loop."""
        litellm = litellm_loader.imported()
        if litellm is not None and _WARM.is_set():
            return litellm
        return await asyncio.to_thread(self._litellm)

    # -- recording ------------------------------------------------------------------

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
        try:
            finite = isinstance(score, numbers.Real) and abs(float(score)) <= MAX_SCORE
        except OverflowError:  # an integer too large for a float
            finite = False
        if not finite:  # NaN too
            shown = repr(score) if len(repr(score)) <= 40 else f"{repr(score)[:37]}..."
            raise InvalidFeedbackError(
                f"feedback for call {call_id}: score must be a finite number from "
                f"{-MAX_SCORE:g} to {MAX_SCORE:g}, got {shown}"
            )
        if not isinstance(name, str) or not name.strip():
            raise InvalidFeedbackError(f"feedback for call {call_id}: name must be a word")
        for field, value in (("comment", comment), ("user", user)):
            if value is not None and not isinstance(value, str):  # the database refuses it
                raise InvalidFeedbackError(
                    f"feedback for call {call_id}: {field} must be a text, got a "
                    f"{type(value).__name__}"
                )
        try:
            uuid.UUID(str(call_id))
        except ValueError:
            raise UnknownCallError(
                f"feedback: {call_id!r} is not a call id", call_id=str(call_id)
            ) from None
        if not self.recorder.knows(call_id) and not self._call_exists(call_id):
            raise UnknownCallError(f"feedback: no call {call_id} was recorded", call_id=call_id)
        feedback_id = new_id()
        row: FeedbackRow = {
            "id": feedback_id,
            "call_id": call_id,
            "created_at": utc(self.clock()),
            "name": name,
            "score": float(score),
            "comment": comment,
            "user_id": user,
        }
        self.recorder.put("feedback", row)
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
        """Flush and stop the writer; give back what budget leases hold unused."""
        self._writer.close()
        self.budgets.close()
        if self.direct is not None:
            self.direct.close()
        if self.telemetry is not None:
            self.telemetry.shutdown()
        _LIVE.discard(self)

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine of the calls database."""
        return self._engine_factory()

    @property
    def writer(self) -> Writer:
        """The background writer (its ``stats`` and ``healthy`` are useful in tests)."""
        return self._writer


@dataclasses.dataclass
class _Admission:
    """An admission decided in a thread for an async call: whether it is decided, and
    whether its caller left meanwhile (whoever learns both records the call)."""

    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    decided: bool = False
    left: bool = False
    refusal: BudgetExceededError | None = None


_WARM = threading.Event()
_WARMING = threading.Lock()


def warm_up(litellm: Any) -> None:
    """Run litellm's first call once per process, answered by litellm itself (a mock: no
    network, no recording): litellm imports a hundred modules lazily on its first call
    (1.4 s here), which would otherwise land inside the first call's latency and
    time-to-first-token."""
    if _WARM.is_set():
        return
    with _WARMING:
        if _WARM.is_set():
            return
        try:
            messages = [{"role": "user", "content": "warm-up"}]
            litellm.completion(model="gpt-4o-mini", messages=messages, mock_response="ok")
            for _ in litellm.completion(
                model="gpt-4o-mini", messages=messages, mock_response="ok", stream=True
            ):
                pass
        except Exception:  # a warm-up that fails costs nothing: the call will import it
            log.debug("llmops: litellm warm-up failed", exc_info=True)
        _WARM.set()


def _route_of(model: str) -> tuple[str, str | None]:
    """litellm's routing of a model name: (the provider's name for it, the provider);
    OpenAI's models without importing litellm (:func:`litellm_loader.openai_route`)."""
    light = litellm_loader.openai_route(model)
    if light is not None:
        return light
    routed = litellm_loader.load().get_llm_provider(model)
    return routed[0], routed[1]


MAX_TOKEN_ID = 2**31 - 1
"""The largest token id an embeddings call takes (no tokenizer comes near it)."""


def _embedding_texts(input: EmbeddingInput, model: str) -> tuple[list[str], list[list[int]] | None]:
    """The texts of an embeddings call's ``input`` (stored, and counted when the provider
    sends no usage) and, when it is given as token ids, the ids to send as they are: their
    text is their decoding in the model's tiktoken encoding, or the ids themselves written
    out when that encoding does not hold them."""
    if isinstance(input, str):
        return [input], None
    items = list(input) if isinstance(input, list | tuple) else []
    if items and all(isinstance(t, str) for t in items):
        return items, None
    if items and all(_token_id(t) for t in items):
        arrays = [list(items)]
    elif items and all(isinstance(a, list) and a and all(_token_id(t) for t in a) for a in items):
        arrays = [list(a) for a in items]
    else:
        raise ConfigError(
            "embed: input must be a text, a non-empty list of texts, a list of token ids or "
            "a list of such lists (ids from 0 to 2147483647)"
        )
    texts = []
    for ids in arrays:
        text = decode_tokens(model, ids)
        texts.append(text if text is not None else json.dumps(ids))
    return texts, arrays


def _token_id(value: Any) -> bool:
    return type(value) is int and 0 <= value <= MAX_TOKEN_ID


def _mark(exc: BaseException, call_id: str) -> None:
    """Tell whoever catches ``exc`` which recorded call it ended (``llmops_call_id``)."""
    with contextlib.suppress(Exception):  # an exception type may refuse new attributes
        exc.llmops_call_id = call_id  # type: ignore[attr-defined]


def _streaming(kwargs: dict[str, Any]) -> dict[str, Any]:
    params = {**kwargs, "stream": True}
    params.setdefault("stream_options", {"include_usage": True})
    return params


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
