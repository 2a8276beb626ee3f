"""The gateway: model calls through litellm, each one recorded with tokens and cost."""

from __future__ import annotations

import atexit
import threading
from typing import Any

from llmops.gateway.gateway import Gateway, close_all
from llmops.gateway.recorder import Completion, Embedding, provider_of
from llmops.gateway.scope import Scope, linked
from llmops.gateway.streams import AsyncStream, Stream
from llmops.pricing.prices import ModelPrice
from llmops.pricing.usage import Usage

__all__ = [
    "AsyncStream",
    "Completion",
    "Embedding",
    "Gateway",
    "ModelPrice",
    "Scope",
    "Stream",
    "Usage",
    "default_gateway",
    "linked",
    "provider_of",
]

_default: Gateway | None = None
_default_lock = threading.Lock()


def default_gateway() -> Gateway:
    """The process-wide Gateway configured from the environment, created on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Gateway()
        return _default


def _reset_default() -> None:
    """Close and forget the default gateway (tests change the environment between uses)."""
    global _default
    with _default_lock:
        if _default is not None:
            _default.close()
        _default = None


atexit.register(close_all)


def complete(*args: Any, **kwargs: Any) -> Completion:
    """``Gateway.complete`` on the default gateway."""
    return default_gateway().complete(*args, **kwargs)


async def acomplete(*args: Any, **kwargs: Any) -> Completion:
    """``Gateway.acomplete`` on the default gateway."""
    return await default_gateway().acomplete(*args, **kwargs)


def stream(*args: Any, **kwargs: Any) -> Stream:
    """``Gateway.stream`` on the default gateway."""
    return default_gateway().stream(*args, **kwargs)


async def astream(*args: Any, **kwargs: Any) -> AsyncStream:
    """``Gateway.astream`` on the default gateway."""
    return await default_gateway().astream(*args, **kwargs)


def feedback(call_id: str, score: float, **kwargs: Any) -> str:
    """``Gateway.feedback`` on the default gateway."""
    return default_gateway().feedback(call_id, score, **kwargs)
