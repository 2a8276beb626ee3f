"""The HTTP protocol of ``llmops serve``: uvicorn's httptools protocol with the two limits a
server that faces the network needs and uvicorn's lacks (nginx has both by default).

- **Head size**: a request's line and headers may hold at most :data:`MAX_HEAD_BYTES`;
  httptools keeps a header whole until it ends, so a client sending one endless header held
  its size in memory, before any key was checked (3 connections of 50 MB: 143 MB). Over the
  limit the answer is 431 and the connection is closed.
- **Head time**: once a request's first byte arrives, its headers must be complete within
  the header timeout (``--header-timeout``, by default
  :data:`llmops.server.HEAD_TIMEOUT_SECONDS`), or the answer is 408 and the connection is
  closed: a client trickling a byte at a time held a connection and its task for ever.
  Idle keep-alive connections are uvicorn's to close.

uvicorn imports this class by name in every worker (``http="llmops.server.protocol:..."``).
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from llmops.server import HEAD_TIMEOUT_ENV, HEAD_TIMEOUT_SECONDS

__all__ = ["MAX_HEAD_BYTES", "BoundedHttpToolsProtocol", "head_timeout"]

MAX_HEAD_BYTES = 64 * 1024
"""The most bytes a request's line and headers may take (nginx: 4 x 8 KB per header line)."""


def head_timeout() -> float:
    """The header timeout the server was started with (seconds)."""
    try:
        value = float(os.environ.get(HEAD_TIMEOUT_ENV, HEAD_TIMEOUT_SECONDS))
    except ValueError:
        return HEAD_TIMEOUT_SECONDS
    return value if value > 0 else HEAD_TIMEOUT_SECONDS


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a bounded request head (size and time)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading_head = True  # between requests, or inside one's line and headers
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_seconds = head_timeout()

    def data_received(self, data: bytes) -> None:
        if self._reading_head:
            self._head_bytes += len(data)
            if self._head_timer is None and not self.transport.is_closing():
                self._head_timer = self.loop.call_later(self._head_seconds, self._head_late)
        super().data_received(data)  # may complete the head: see on_headers_complete
        if self._reading_head and self._head_bytes > MAX_HEAD_BYTES:
            self._refuse(431, f"the request's headers are over {MAX_HEAD_BYTES} bytes")

    def on_headers_complete(self) -> None:
        self._head_done()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._reading_head, self._head_bytes = True, 0  # the next request's head, if any

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_done()
        super().connection_lost(exc)

    def _head_done(self) -> None:
        self._reading_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if self._reading_head and not self.transport.is_closing():
            self._refuse(408, f"the request's headers took over {self._head_seconds:g} s")

    def _refuse(self, status: int, message: str) -> None:
        """Answer ``status`` (OpenAI's error shape) and close the connection."""
        self._head_done()
        reason = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}[status]
        error = {"message": message, "type": "invalid_request_error", "param": None, "code": None}
        body = json.dumps({"error": error}).encode()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, reason, len(body), body)
        )
        self.transport.close()
