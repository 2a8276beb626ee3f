"""Linked calls: the model calls an eval target makes are attributed to the eval run.

The eval runner calls an app's own function (a RAG pipeline, an agent) inside
:func:`linked`. Every call any :class:`~llmops.gateway.Gateway` makes in that context (the
same task or thread, and what it starts) is recorded with the scope's source, tags and
metadata, and the scope adds up what those calls cost.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Scope:
    """What the calls in a scope are recorded with, and what they added up to."""

    source: str
    tags: list[str]
    metadata: dict[str, Any]
    call_ids: list[str] = field(default_factory=list)
    cost_usd: float = 0.0
    unpriced: int = 0  # calls whose cost is unknown
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def note(self, call_id: str, cost_usd: float | None) -> None:
        """Count one recorded call (thread-safe: an app may call from worker threads)."""
        with self._lock:
            self.call_ids.append(call_id)
            if cost_usd is None:
                self.unpriced += 1
            else:
                self.cost_usd += cost_usd


_current: ContextVar[Scope | None] = ContextVar("llmops_scope", default=None)


def current() -> Scope | None:
    """The scope of the running code, if any."""
    return _current.get()


@contextmanager
def linked(
    metadata: dict[str, Any], tags: list[str] | None = None, source: str = "eval"
) -> Iterator[Scope]:
    """Record every model call made inside with ``source``, ``tags`` and ``metadata``."""
    scope = Scope(source, list(tags or []), dict(metadata))
    token = _current.set(scope)
    try:
        yield scope
    finally:
        _current.reset(token)
