"""Who may call the server: virtual keys, the models each may use, its rate limits, and its
monthly budget (a blocking budget named ``key-NAME`` the Gateway enforces).

Keys are read from the database at most every :data:`KEY_CACHE_SECONDS`: a key created or
revoked with ``llmops keys`` takes effect within that time. The server never reads them on
its event loop (:meth:`Access.aadmit`): a read runs in a thread, and a request waits for it
at most :data:`STALE_WAIT_SECONDS` once keys were read (then the keys last read hold while
it finishes), so a slow or unreachable database holds up neither the other requests and
streams nor, for long, the request itself. As long as no key was ever
created, requests need none (``llmops serve`` then listens on loopback only, unless told
``--allow-anonymous``); once one exists, every request must present an active key, as
``Authorization: Bearer KEY`` or ``x-api-key: KEY``. Rate limits are counted per server
process (with ``--workers N``, a key may get up to N times its limit).
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.requests import Request

from llmops.config import KEY_BUDGET_PREFIX, Budget

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from llmops.gateway.budgets import BudgetGuard
    from llmops.store.keys import VirtualKey
    from llmops.store.records import RecordKind, Row

log = logging.getLogger("llmops.server")

KEY_CACHE_SECONDS = 5.0
STALE_WAIT_SECONDS = 0.5  # how long a request waits for the keys to be read again
WINDOW_SECONDS = 60.0  # rpm and tpm count the last minute


class Refused(Exception):
    """A request the keys refuse: status, OpenAI-shaped type and code, extra headers."""

    def __init__(
        self, status: int, message: str, kind: str, code: str, headers: dict[str, str] | None
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.code = status, message, kind, code
        self.headers = headers or {}


@dataclass
class _Usage:
    """One key's requests and tokens in the last minute (this process)."""

    requests: deque[float] = field(default_factory=deque)
    tokens: deque[tuple[float, int]] = field(default_factory=deque)

    def trim(self, now: float) -> None:
        while self.requests and self.requests[0] <= now - WINDOW_SECONDS:
            self.requests.popleft()
        while self.tokens and self.tokens[0][0] <= now - WINDOW_SECONDS:
            self.tokens.popleft()


class Access:
    """The server's view of the keys, refreshed from the database."""

    def __init__(
        self,
        engine: Callable[[], Engine],
        guard: BudgetGuard,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._guard = guard
        self._base_budgets = guard.budgets  # the config file's blocking budgets
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: list[VirtualKey] = []
        self._loaded_at = -math.inf
        self._reading: asyncio.Future[list[VirtualKey]] | None = None  # a read under way
        self._reading_since = -math.inf  # when it began
        self._usage: dict[str, _Usage] = {}

    def keys(self) -> list[VirtualKey]:
        """Every key (active and revoked), read again when the cache is older than
        :data:`KEY_CACHE_SECONDS`."""
        now = self._clock()
        if now - self._loaded_at >= KEY_CACHE_SECONDS:
            from llmops.store.keys import list_keys

            try:
                keys = list_keys(self._engine())
            except Exception as exc:  # the database is away: the keys last read still hold
                if self._loaded_at == -math.inf:
                    raise Refused(
                        503, "the server cannot read its keys yet; try again", "api_error",
                        "keys_unavailable", {"retry-after": "5"},
                    ) from exc  # fmt: skip
                log.warning("llmops: cannot read the keys (%s); using the last ones read", exc)
                self._loaded_at = now  # try again after another KEY_CACHE_SECONDS
                return self._keys
            budgets = [
                Budget(
                    name=f"{KEY_BUDGET_PREFIX}{k.name}",
                    window="month",
                    limit_usd=k.budget_usd_month,
                    action="block",
                    scope={"key": k.name},
                )
                for k in keys
                if k.active and k.budget_usd_month
            ]
            with self._lock:
                if now >= self._loaded_at:  # a read begun earlier that ended later is older
                    self._keys, self._loaded_at = keys, now
            self._guard.set_budgets([*self._base_budgets, *budgets])
        return self._keys

    async def akeys(self) -> list[VirtualKey]:
        """:meth:`keys` for the event loop, read in a thread (one read at a time, which
        every request waiting for the keys shares, if it began recently enough for it: a
        key revoked before this request is not read as active). The first read is waited
        for (a database that cannot answer is a 503, as there); a later one for at most
        :data:`STALE_WAIT_SECONDS`, after which the keys last read hold."""
        now = self._clock()
        if now - self._loaded_at < KEY_CACHE_SECONDS:
            return self._keys
        reading = self._reading
        if reading is None or reading.done() or now - self._reading_since > KEY_CACHE_SECONDS:
            reading = self._reading = asyncio.ensure_future(asyncio.to_thread(self.keys))
            self._reading_since = now
        if self._loaded_at == -math.inf:
            return await asyncio.shield(reading)
        try:
            return await asyncio.wait_for(asyncio.shield(reading), STALE_WAIT_SECONDS)
        except TimeoutError:
            return self._keys

    async def aadmit(self, request: Request, *, metered: bool = True) -> VirtualKey | None:
        """The key of ``request`` (None when no key was ever created), from the keys of
        :meth:`akeys`; refuses a missing, unknown or revoked key (401) and, for a model
        call (``metered``), a key over its rate (429 with Retry-After): feedback and the
        model list do not use it up."""
        from llmops.store.keys import match

        keys = await self.akeys()
        if not keys:
            return None
        presented = _presented(request)
        key = match(keys, presented) if presented else None
        if key is None:
            what = "no API key" if not presented else "an invalid or revoked API key"
            raise Refused(401, f"{what}: send Authorization: Bearer <key>",
                          "invalid_request_error", "invalid_api_key", None)  # fmt: skip
        if metered:
            self._rate(key)
        return key

    def check_model(self, key: VirtualKey | None, *names: str | None) -> None:
        """Refuse (403) a model the key may not use; any of ``names`` (the model, or a
        prompt reference and the prompt's model) being allowed is enough."""
        if key is None or key.models is None:
            return
        if not any(n in key.models for n in names if n):
            shown = next((n for n in names if n), "?")
            raise Refused(403, f"key {key.name!r} may not use {shown!r}", "permission_error",
                          "model_not_allowed", None)  # fmt: skip

    def count_recorded(self, kind: RecordKind, row: Row) -> None:
        """A recorder observer: a call of a key was recorded; its tokens (prompt and
        completion) count in the key's tokens per minute however it ended (answered,
        failed, or a stream the client left: those used tokens too)."""
        name = row.get("api_key") if kind == "call" else None
        if not name:
            return
        tokens = sum(
            value for value in (row.get("prompt_tokens"), row.get("completion_tokens"))
            if isinstance(value, int) and value > 0
        )  # fmt: skip
        key = next((k for k in self._keys if k.name == name), None)
        if key is not None and key.tpm and tokens > 0:
            with self._lock:
                self._usage.setdefault(key.id, _Usage()).tokens.append((self._clock(), tokens))

    def _rate(self, key: VirtualKey) -> None:
        if not key.rpm and not key.tpm:
            return
        now = self._clock()
        with self._lock:
            usage = self._usage.setdefault(key.id, _Usage())
            usage.trim(now)
            wait = 0.0
            if key.rpm and len(usage.requests) >= key.rpm:
                wait = usage.requests[0] + WINDOW_SECONDS - now
                what = f"{key.rpm} requests per minute"
            elif key.tpm and sum(t for _, t in usage.tokens) >= key.tpm:
                wait = usage.tokens[0][0] + WINDOW_SECONDS - now
                what = f"{key.tpm} tokens per minute"
            if wait > 0:
                retry = str(max(1, math.ceil(wait)))
                raise Refused(429, f"key {key.name!r} is over its limit of {what}",
                              "rate_limit_error", "rate_limit_exceeded",
                              {"retry-after": retry})  # fmt: skip
            usage.requests.append(now)


def _presented(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.headers.get("x-api-key") or None
