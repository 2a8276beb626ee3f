"""Fixtures of the server tests: the app of ``llmops serve`` on a real uvicorn server in
this process."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def serve_in_thread() -> Iterator[Callable[[Any], str]]:
    """``serve_in_thread(gateway)``: the app over ``gateway`` on a real uvicorn server in a
    thread of this process, started (lifespan on); returns its URL. Stopped after the test."""
    import uvicorn

    from llmops.server.app import create_app

    servers: list[tuple[Any, threading.Thread]] = []

    def start(gateway: Any) -> str:
        port = free_port()
        config = uvicorn.Config(
            create_app(gateway), host="127.0.0.1", port=port, log_level="warning",
            lifespan="on",
        )  # fmt: skip
        uv = uvicorn.Server(config)
        thread = threading.Thread(target=uv.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not uv.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        servers.append((uv, thread))
        return f"http://127.0.0.1:{port}"

    yield start
    for uv, thread in servers:
        uv.should_exit = True
        thread.join(10)


@pytest.fixture(params=["direct", "litellm"])
def direct(request: pytest.FixtureRequest) -> bool:
    """Both routes of the server to an OpenAI-compatible upstream: direct, or via litellm
    (``Gateway(direct=...)``): a test that takes it runs on each."""
    return bool(request.param == "direct")
