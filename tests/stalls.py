"""A watch on the running event loop: how long it went, at most, without running a task
(a call that held it up). Importable from a test's subprocess too (``tests.stalls``)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

TICK = 0.01  # seconds between the watch's wake-ups


class Stalls:
    """``async with Stalls() as stalls: ...``, then ``stalls.longest`` (seconds the loop
    was late to wake the watch, at most)."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _watch(self) -> None:
        last = time.perf_counter()
        while not self._done.is_set():
            await asyncio.sleep(TICK)
            now = time.perf_counter()
            self.longest = max(self.longest, now - last - TICK)
            last = now

    async def __aenter__(self) -> Stalls:
        self._task = asyncio.create_task(self._watch())
        await asyncio.sleep(0.05)  # the watch is running
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        self._done.set()
        assert self._task is not None
        await self._task
