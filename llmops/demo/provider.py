"""The demo's simulated provider in a process of its own.

A month of traffic is tens of thousands of HTTP requests. Answering them (parsing each
request, simulating the answer, writing the response) takes about as much CPU as making and
recording them, so :class:`ProviderProcess` runs the :class:`~llmops.simulate.FakeLLMServer`
with :func:`~llmops.demo.model.demo_model` in a child process: the app and the provider then
use two cores. The calls still go over real HTTP to a real FakeLLMServer; the child forgets
the requests it recorded every second (a month of them would fill the memory), and stops
when its standard input closes, so it never outlives the demo.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
from dataclasses import dataclass
from types import TracebackType
from typing import Self

__all__ = ["Address", "Addresses", "ProviderProcess"]

FORGET_EVERY = 1.0  # seconds between two resets of the child's recorded requests
START_TIMEOUT = 60.0


def serve() -> None:  # pragma: no cover - runs in the child process
    """The child: print the server's URL, serve until stdin closes."""
    from llmops.demo.model import demo_model
    from llmops.simulate import FakeLLMServer

    with FakeLLMServer(responder=demo_model()) as server:
        print(server.url, flush=True)
        while True:
            ready, _, _ = select.select([sys.stdin], [], [], FORGET_EVERY)
            if ready and not os.read(sys.stdin.fileno(), 1024):
                break  # the parent closed our stdin (or exited)
            server.reset()


class Addresses:
    """The ``api_base`` values of a simulated provider known by its root URL
    (``http://127.0.0.1:PORT``)."""

    url: str

    @property
    def base_url(self) -> str:
        """The ``api_base`` of OpenAI-style models."""
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """The ``api_base`` of ``anthropic/`` models."""
        return self.url


@dataclass(frozen=True)
class Address(Addresses):
    """A simulated provider that runs elsewhere (another process's), by its root URL."""

    url: str


class ProviderProcess(Addresses):
    """A FakeLLMServer answering with the demo's model, in a child process::

    with ProviderProcess() as provider:
        gateway.complete(..., api_base=provider.base_url)
    """

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> Self:
        process = subprocess.Popen(
            [sys.executable, "-m", "llmops.demo.provider"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        output = process.stdout
        ready = output is not None and select.select([output], [], [], START_TIMEOUT)[0]
        line = output.readline().decode().strip() if output is not None and ready else ""
        if not line.startswith("http://"):
            process.kill()
            process.wait()
            raise RuntimeError("the demo's simulated provider did not start")
        self._process, self.url = process, line
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


if __name__ == "__main__":  # pragma: no cover
    serve()
