"""Blocking budgets, enforced in the gateway before the model is called.

Every budget with ``action: block`` that a call falls under (its scope: every call, or one
user, tag, prompt, model or source, or each of them) must admit the call's **estimate**: the
most it can cost, from the dearest input and output rates of its model (``upper_rates``),
an upper bound of its prompt tokens (one token per UTF-8 byte of the messages, plus a
fixed allowance per image) and its ``max_tokens`` (else the model's output cap, else
:data:`DEFAULT_MAX_OUTPUT`). A call that any budget refuses is not sent: it raises
:class:`~llmops.errors.BudgetExceededError` and is recorded with status ``blocked``, cost 0.

Admitting a call costs no database round trip. Each process holds a **lease** per budget
window (:mod:`llmops.store.leases`): money the database granted it, under the budget's
lock, out of ``limit - stored spend - what other live leases hold``. Calls are admitted
against the lease in memory; a lease that runs short is extended in one short transaction
(which also adds :data:`LEASE_SHARE` of what is left, so that round trips stay rare). When
a call is recorded its estimate is replaced by its real cost; the writer's transaction that
stores it also counts it as committed in its leases, so the ledger never counts a call twice
(and a call is never refused because of a count in flight). A background thread publishes
the figures that changed every :data:`REFRESH_EVERY` seconds (the others every
:data:`KEEP_ALIVE_EVERY`, keeping the leases alive), without holding up calls, and gives
back what a lease idle for :data:`IDLE_AFTER` seconds does not use.

**The bound.** Between all processes that enforce a budget, the stored spend of a window
never passes its limit by more than what admitted calls cost beyond their estimates. The
estimate is an upper bound for text calls of a priced model with ``max_tokens`` set; it can
be short for images, audio, provider-side tools (web search) and a model without a price
(estimate 0). Three cases add to that, all documented in the README: a process killed
while holding a lease stops counting :data:`~llmops.store.leases.LEASE_TTL` after its last
renewal, and its unstored calls count again only once its journal is replayed; calls
recorded by processes that do not enforce the budget (another config) count once stored;
calls cancelled before any usage came back are unpriced (the provider may have billed them
in full, or not at all): each keeps its estimate in its process's leases, and so counts in
full while its lease lives (its process's leases of the window), but not in the stored
spend, nor once that process has stopped.
The price of the bound: a call may be refused while other processes' leases hold money they
will not use (each at most a share of what was left when it was granted, given back after
:data:`IDLE_AFTER` seconds idle), and estimates are pessimistic.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection, Engine

from llmops.config import EACH, Budget
from llmops.errors import BudgetExceededError, ConfigError
from llmops.gateway.recorder import Call, provider_of
from llmops.money import usd
from llmops.pricing.prices import PriceBook
from llmops.pricing.usage import endpoint_of
from llmops.store import leases as ledger
from llmops.store.leases import LEASE_TTL, Lease
from llmops.store.queries.budgets import window_span
from llmops.store.records import RecordKind, Row

log = logging.getLogger("llmops.budgets")

LEASE_SHARE = 0.1  # an extension adds this share of what is left after the call's need
REFRESH_EVERY = 1.0  # seconds between publications of this process's leases that changed
KEEP_ALIVE_EVERY = LEASE_TTL.total_seconds() / 3  # seconds between those of the others
IDLE_AFTER = 5.0  # seconds without a call after which a lease gives back what it holds unused
DEFAULT_MAX_OUTPUT = 4096  # output tokens assumed when neither the call nor the map says
IMAGE_TOKENS = 2000  # prompt tokens assumed per image part
MESSAGE_TOKENS = 4  # per message, plus REPLY_TOKENS: the chat format's own tokens
REPLY_TOKENS = 3
PRUNE_AFTER = timedelta(days=2)  # expired leases kept this long (for a look after an incident)
MAX_UNSTORED = 100_000  # calls remembered until the writer stores them
_RENEW_MARGIN = LEASE_TTL.total_seconds() / 2  # renew on the call path if the thread stalled
_IMAGE_PARTS = frozenset({"image_url", "input_image", "image"})


class MustWait(Exception):
    """``admit(call, wait=False)`` would wait: for the database (a lease to extend) or for
    another thread that is extending one. Call ``admit(call)`` off the event loop."""


@dataclass
class _Reserved:
    """A call in flight: its estimate, held in each lease it falls under."""

    leases: list[Lease]
    estimate_usd: float


class BudgetGuard:
    """Admits or refuses calls against the blocking budgets of ``budgets``; see the module
    docstring. Thread-safe; one per Gateway."""

    def __init__(
        self,
        budgets: Sequence[Budget],
        engine: Callable[[], Engine],
        prices: PriceBook,
        *,
        source: str,
    ) -> None:
        self.budgets = _blocking(budgets)
        self._engine = engine
        self.prices = prices
        self.source = source
        self.holder = f"{socket.gethostname()[:100]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._lock = threading.RLock()  # the leases, and every database write of them
        self._leases: dict[tuple[str, str], Lease] = {}
        self._renew_by: dict[str, float] = {}  # lease id -> monotonic deadline
        self._used_at: dict[str, float] = {}  # lease id -> last admission (monotonic)
        # lease id -> when (monotonic) and what (granted, consumed) was last published
        self._published: dict[str, tuple[float, float, float]] = {}
        self._stamped: datetime | None = None  # the latest time leases were written at
        self._exhausted: set[str] = set()  # leases refused since their last grant
        self._reserved: dict[str, _Reserved] = {}  # call id -> estimate held
        # what recorded calls' real costs change in their leases, not applied yet: settle
        # never waits for the lock, which an extension holds while it waits for the database
        self._settled: deque[tuple[list[Lease], float]] = deque()
        # call id -> the leases it is held in, until the writer has stored it (a call never
        # stored stays counted in its leases; at most MAX_UNSTORED are remembered)
        self._lease_ids: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self._unpriced_warned: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __bool__(self) -> bool:
        return bool(self.budgets)

    def set_budgets(self, budgets: Sequence[Budget]) -> None:
        """Enforce these budgets from now on (``llmops serve`` adds its keys' budgets); a
        lease of a budget that stays keeps what it holds."""
        with self._lock:
            self.budgets = _blocking(budgets)

    # -- the call path ----------------------------------------------------------------

    def admit(self, call: Call, *, wait: bool = True) -> BudgetExceededError | None:
        """Hold the call's estimate in every blocking budget it falls under; the error to
        raise (after recording the call as blocked) when one of them refuses it.

        ``wait=False`` (an event loop's call) decides from the leases held in memory only,
        and raises :class:`MustWait`, having held nothing, when it would have to wait for
        the database or for the thread that is extending a lease."""
        scopes = [(b, key) for b in self.budgets for key in _keys(b, call, self.source)]
        if not scopes:
            return None
        estimate = self.estimate(call)
        now = time.monotonic()
        if not self._lock.acquire(blocking=wait):
            raise MustWait
        try:
            self._apply_settled()
            held = []
            for budget, key in scopes:
                lease = self._lease(budget, key, call.created_at)
                # a lease once refused asks the ledger again, whatever the estimate: an
                # unpriced model's calls (estimate 0) "fitted" the spent lease
                short = lease.consumed_usd + estimate > lease.granted_usd
                short = short or lease.id in self._exhausted
                if short or now > self._renew_by.get(lease.id, 0.0):
                    if not wait:
                        raise MustWait
                    refusal = self._extend(lease, estimate)
                    if refusal is not None:
                        return refusal
                held.append(lease)
            for lease in held:
                lease.consumed_usd += estimate
                self._used_at[lease.id] = now
            self._reserved[call.id] = _Reserved(held, estimate)
            self._lease_ids[call.id] = tuple(lease.id for lease in held)
            while len(self._lease_ids) > MAX_UNSTORED:
                self._lease_ids.popitem(last=False)
        finally:
            self._lock.release()
        self._start()
        return None

    def estimate(self, call: Call) -> float:
        """The most ``call`` can cost (USD); 0 for a model without a price (warned once)."""
        params = call.params
        rates = self.prices.upper_rates(
            call.model,
            override=call.price,
            tier=_text(params.get("service_tier")),
            where=lambda: endpoint_of(provider_of(call.model), call.model, params),
        )
        if rates is None:
            if call.model not in self._unpriced_warned:
                self._unpriced_warned.add(call.model)
                log.warning(
                    "llmops: %s has no price: blocking budgets cannot reserve its calls",
                    call.model,
                )
            return 0.0
        # extra_body is merged over the request the provider gets: its values are sent
        extra = params.get("extra_body")
        sent = {**params, **extra} if isinstance(extra, Mapping) else params
        output = _positive(sent.get("max_completion_tokens")) or _positive(sent.get("max_tokens"))
        output = output or rates.max_output_tokens or DEFAULT_MAX_OUTPUT
        choices = _positive(sent.get("n")) or 1
        prompt = prompt_token_bound(call.messages, *(sent.get(name) for name in SCHEMA_PARAMS))
        return prompt * rates.input_usd + output * choices * rates.output_usd + rates.per_call_usd

    # -- recording (observers of the recorder and the writer) ---------------------------

    def settle(self, kind: RecordKind, row: Row) -> None:
        """A call was recorded: its real cost replaces its estimate. A call without a
        cost (unpriced: cancelled before any usage came back, which the provider may have
        billed in full, or a price that could not be worked out) keeps its estimate in its
        leases for as long as they live."""
        if kind != "call" or not self._reserved:
            return
        reserved = self._reserved.pop(str(row["id"]), None)  # one step: no lock needed
        if reserved is None:
            return
        cost = row.get("cost_usd")
        actual = float(cost) if isinstance(cost, int | float) else reserved.estimate_usd
        self._settled.append((reserved.leases, actual - reserved.estimate_usd))
        # applied now if the lock is free, else by whoever holds it next: a call's
        # recording (on an event loop, too) never waits for an extension's database
        if self._lock.acquire(blocking=False):
            try:
                self._apply_settled()
            finally:
                self._lock.release()

    def _apply_settled(self) -> None:
        """Apply the recorded calls' real costs to their leases (under the lock)."""
        while self._settled:
            leases, change = self._settled.popleft()
            for lease in leases:
                lease.consumed_usd += change

    def commit(self, rows: list[dict[str, Any]]) -> Callable[[Connection], None] | None:
        """What counts these calls in their leases, to run inside the writer's transaction
        that stores them; None when none of them is in a lease.

        Takes no lock: the writer holds the database's write lock then, and an extension
        takes this guard's lock before the database's (the other order would deadlock).
        Reading a dict is atomic."""
        if not self._lease_ids:
            return None
        costs: dict[str, float] = {}
        for row in rows:
            lease_ids = self._lease_ids.get(str(row["id"]), ())
            cost = row.get("cost_usd")
            actual = float(cost) if isinstance(cost, int | float) else 0.0
            for lease_id in lease_ids:
                costs[lease_id] = costs.get(lease_id, 0.0) + actual
        if not costs:
            return None
        return lambda connection: ledger.commit_costs(connection, costs)

    def stored(self, call_ids: list[str]) -> None:
        """After the commit: forget the calls stored."""
        if not self._lease_ids:
            return
        with self._lock:
            for call_id in call_ids:
                self._lease_ids.pop(call_id, None)

    # -- leases -----------------------------------------------------------------------

    def _lease(self, budget: Budget, key: str, at: datetime) -> Lease:
        lease = self._leases.get((budget.name, key))
        if lease is None or not lease.window_start <= at < lease.window_end:
            if lease is not None:
                self._exhausted.discard(lease.id)  # its window is over
            start, end = window_span(budget.window, at)
            lease = Lease(str(uuid.uuid4()), budget, key, start, end, self.holder)
            self._leases[(budget.name, key)] = lease
        return lease

    def _extend(self, lease: Lease, need: float) -> BudgetExceededError | None:
        budget = lease.budget
        try:
            grant = ledger.grant(self._engine(), lease, need, LEASE_SHARE, self._stamp())
        except Exception as exc:
            if budget.unreachable == "block" or lease.id in self._exhausted:
                # a budget this process saw spent stays closed while its ledger is away
                return self._refusal(lease, need, None, f"its ledger cannot be read ({exc})")
            log.warning(
                "llmops: budget %r: ledger not readable (%s); letting calls through",
                budget.name,
                exc,
            )
            lease.granted_usd = max(lease.granted_usd, lease.consumed_usd + need)
            self._renew_by[lease.id] = time.monotonic() + REFRESH_EVERY
            return None
        self._renew_by[lease.id] = time.monotonic() + _RENEW_MARGIN
        if grant.granted:
            self._exhausted.discard(lease.id)
            return None
        self._exhausted.add(lease.id)
        return self._refusal(lease, need, grant, None)

    def _refusal(
        self, lease: Lease, need: float, grant: ledger.Grant | None, why: str | None
    ) -> BudgetExceededError:
        budget = lease.budget
        scope = budget.describe_scope() if not lease.key else f"{budget.scope_key} {lease.key}"
        window = f"{budget.window} from {lease.window_start:%Y-%m-%d} UTC"
        if grant is None:
            detail = why or "refused"
            spent = held = 0.0
        else:
            spent, held = grant.spent_usd, grant.held_usd
            detail = f"{usd(spent)} spent"
            if held > 0:
                detail += f" + {usd(held)} held by calls not stored yet"
            detail += f" of {usd(budget.limit_usd)}; this call could cost up to {usd(need)}"
        return BudgetExceededError(
            f"budget {budget.name!r} ({scope}, {window}) refused the call: {detail}",
            budget=budget.name,
            key=lease.key or None,
            window=budget.window,
            window_start=lease.window_start,
            window_end=lease.window_end,
            spent_usd=spent,
            held_usd=held,
            limit_usd=budget.limit_usd,
            needed_usd=need,
        )

    # -- the background thread --------------------------------------------------------

    def _start(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="llmops-budgets", daemon=True
                    )
                    self._thread.start()

    def _run(self) -> None:
        try:  # once per process: leases of dead processes and past windows go
            ledger.prune(self._engine(), _utc_now() - PRUNE_AFTER)
        except Exception as exc:
            log.warning("llmops: could not prune old budget leases (%s)", exc)
        while not self._stop.wait(REFRESH_EVERY):
            try:
                self.publish()
            except Exception as exc:
                log.warning("llmops: could not publish budget leases (%s)", exc)

    def publish(self, *, final: bool = False) -> None:
        """Store the figures of this process's leases that changed (keeping them alive;
        the others every :data:`KEEP_ALIVE_EVERY` seconds); give back what idle leases (or,
        ``final``, all leases) hold unused; forget leases of past windows.

        The figures are taken under the guard's lock and written after it, so calls are
        admitted meanwhile (one lease per user of an ``each: user`` budget: thousands). A
        lease a call extends meanwhile keeps what its grant wrote (:func:`ledger.publish`);
        a new lease is inserted under the lock, as a grant would insert it."""
        now = time.monotonic()
        engine = self._engine()
        with self._lock:
            self._apply_settled()
            wall = self._stamp()
            due: list[Lease] = []
            for lease in self._leases.values():
                idle = now - self._used_at.get(lease.id, 0.0) > IDLE_AFTER
                if (final or idle) and lease.granted_usd > lease.consumed_usd:
                    lease.granted_usd = lease.consumed_usd
                shown = (lease.granted_usd, lease.consumed_usd)
                last = self._published.get(lease.id)
                if final or last is None or last[1:] != shown or now - last[0] >= KEEP_ALIVE_EVERY:
                    due.append(lease)
            ledger.save(engine, [lease for lease in due if not lease.stored], wall)
            published = [ledger.Figures(lease.id, lease.granted_usd, lease.consumed_usd)
                         for lease in due]  # fmt: skip
        ledger.publish(engine, published, wall)
        with self._lock:
            for figures in published:
                self._renew_by[figures.lease_id] = now + _RENEW_MARGIN
                self._published[figures.lease_id] = (now, figures.granted_usd, figures.consumed_usd)
            for lease in list(self._leases.values()):
                if lease.window_end + LEASE_TTL < wall and not self._holds(lease):
                    del self._leases[(lease.budget.name, lease.key)]
                    for kept in (self._renew_by, self._used_at, self._published):
                        kept.pop(lease.id, None)

    def _stamp(self) -> datetime:
        """The time (UTC) a lease is written at, under the lock: never earlier than one
        given before, so a grant is stamped after the figures a publication took even when
        the clock is set back meanwhile (:func:`ledger.publish` keeps what it wrote)."""
        stamp = _utc_now()
        if self._stamped is not None and stamp <= self._stamped:
            stamp = self._stamped + timedelta(microseconds=1)
        self._stamped = stamp
        return stamp

    def _holds(self, lease: Lease) -> bool:
        return any(lease in r.leases for r in self._reserved.values())

    def close(self) -> None:
        """Stop the thread and give back what the leases hold unused (call after the
        writer has stored what it could)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._leases:
            try:
                self.publish(final=True)
            except Exception as exc:
                log.warning("llmops: could not give back budget leases (%s)", exc)


def _blocking(budgets: Sequence[Budget]) -> tuple[Budget, ...]:
    """The blocking ones of ``budgets``; two budgets of one name would share their leases
    (each admitting what fits the other, or counting calls twice): a ConfigError."""
    seen: set[str] = set()
    for budget in budgets:
        if budget.name in seen:
            raise ConfigError(f"two budgets are named {budget.name!r}: give each its own name")
        seen.add(budget.name)
    return tuple(b for b in budgets if b.action == "block")


def _keys(budget: Budget, call: Call, source: str) -> list[str]:
    """The keys ('' for a budget over all calls or one value) under which ``call`` counts
    against ``budget``; none when it is outside the budget's scope."""
    scope, value = budget.scope_key, budget.scope_value
    if scope is None:
        return [""]
    if scope == "tag":
        found = list(dict.fromkeys(call.tags or ()))
    else:
        one = {
            "user": call.user,
            "prompt": call.prompt.name if call.prompt else None,
            "model": call.model,
            "source": source,
            "key": call.key_name,
        }[scope]
        found = [one] if one else []
    if value == EACH:
        return found
    return [""] if value in found else []


SCHEMA_PARAMS = ("tools", "functions", "response_format")
"""The parameters whose definitions the provider adds to the prompt (and bills)."""

SCHEMA_TOKENS = 16
"""Tokens of the provider's own wrapping of each tool, function or response format."""


def prompt_token_bound(messages: Sequence[Mapping[str, Any]], *schemas: Any) -> int:
    """At most how many prompt tokens ``messages`` (and the ``schemas``: tools, functions,
    a response format) make: a token is at least one UTF-8 byte; images count
    :data:`IMAGE_TOKENS` each."""
    total = REPLY_TOKENS + MESSAGE_TOKENS * len(messages)
    for message in messages:
        total += _bytes(message)
    for schema in schemas:
        if schema:
            total += _schema_bytes(schema)
    return total


def _schema_bytes(value: Any) -> int:
    """A definition's bytes as JSON, its names and keys included (a tool of 2,000 property
    names is mostly keys), and :data:`SCHEMA_TOKENS` for each definition in it."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):  # not JSON (a cycle): its values, at least
        return _bytes(value)
    count = len(value) if isinstance(value, list | tuple) else 1
    return len(text.encode("utf-8", "replace")) + SCHEMA_TOKENS * count


def _bytes(value: Any) -> int:
    if isinstance(value, str):
        return len(value) if value.isascii() else len(value.encode("utf-8", "replace"))
    if isinstance(value, Mapping):
        if value.get("type") in _IMAGE_PARTS:
            return IMAGE_TOKENS
        return sum(_bytes(v) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(_bytes(v) for v in value)
    if value is None or isinstance(value, bool | int | float):
        return 4
    return len(str(value))


def _positive(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _utc_now() -> datetime:
    return datetime.now(UTC)
