"""Load: 200 concurrent streaming clients against one ``llmops serve`` process (one worker)
for a bounded time. No call may fail, every call must be stored once, and the figures
(calls/s, latency, time to first token, the server's peak RSS) are printed (``-s``).

``LLMOPS_LOAD_SECONDS`` (default 10) sets how long the clients keep calling."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.server.test_cli_serve import ServeProcess, start_serve

pytestmark = pytest.mark.integration

CLIENTS = 200
SECONDS = float(os.environ.get("LLMOPS_LOAD_SECONDS", "10"))
TEXT = "one two three four five"
PROMPT_TOKENS, COMPLETION_TOKENS = 12, 5
CHUNK_DELAY = 0.01


@dataclass
class Tally:
    ids: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def _one(client: httpx.AsyncClient, url: str, tally: Tally, n: int) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"n{n}"}],
            "stream": True, "stream_options": {"include_usage": True}}  # fmt: skip
    started = time.perf_counter()
    first: float | None = None
    text, usage, done = "", None, False
    async with client.stream("POST", url, json=body) as answer:
        if answer.status_code != 200:
            tally.errors.append(f"HTTP {answer.status_code}: {(await answer.aread())[:200]!r}")
            return
        call_id = answer.headers["x-llmops-call-id"]
        async for line in answer.aiter_lines():
            if line == "data: [DONE]":
                done = True
            elif line.startswith("data: "):
                chunk = json.loads(line[6:])
                if "error" in chunk:
                    tally.errors.append(f"stream error: {chunk['error']}")
                    return
                if chunk.get("choices"):
                    piece = chunk["choices"][0]["delta"].get("content") or ""
                    if piece and first is None:
                        first = time.perf_counter()
                    text += piece
                if chunk.get("usage"):
                    usage = chunk["usage"]
    if not done or text != TEXT or not usage:
        tally.errors.append(f"incomplete stream: done={done} text={text!r} usage={usage}")
        return
    tally.ids.append(call_id)
    tally.latencies.append(time.perf_counter() - started)
    tally.ttfts.append((first or started) - started)


async def _load(url: str, clients: int, seconds: float) -> tuple[Tally, float]:
    tally = Tally()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        deadline = time.monotonic() + seconds
        counter = iter(range(10**9))

        async def user() -> None:
            while time.monotonic() < deadline:
                try:
                    await _one(client, url, tally, next(counter))
                except httpx.HTTPError as exc:
                    tally.errors.append(f"{type(exc).__name__}: {exc}")

        started = time.monotonic()
        await asyncio.gather(*(user() for _ in range(clients)))
        return tally, time.monotonic() - started


def _ms(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000 if len(values) > 1 else 0.0


# The upstream runs in a process of its own (the GIL of this one is the clients'), with a
# listen backlog that 200 connections at once do not overflow (socketserver's default is 5:
# the kernel drops the extra SYNs and the client retries after 1 s, then 3 s).
UPSTREAM = """
import json, socketserver, sys
socketserver.TCPServer.request_queue_size = 1024
from llmops.testing import FakeLLMServer, Reply
with FakeLLMServer() as server:
    server.route("gpt-4o-mini", Reply(**json.loads(sys.argv[1])))
    print(server.base_url, flush=True)
    sys.stdin.read()  # until the test closes stdin
"""


@pytest.fixture
def upstream() -> Iterator[str]:
    reply = {"text": TEXT, "prompt_tokens": PROMPT_TOKENS,
             "completion_tokens": COMPLETION_TOKENS, "chunk_delay": CHUNK_DELAY}  # fmt: skip
    child = subprocess.Popen([sys.executable, "-c", UPSTREAM, json.dumps(reply)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert child.stdin is not None and child.stdout is not None
    base_url = child.stdout.readline().strip()
    assert base_url.startswith("http://"), "the upstream did not start"
    yield base_url
    child.stdin.close()
    child.wait(10)


def test_200_concurrent_streaming_clients(tmp_path, upstream, capsys) -> None:
    served: ServeProcess = start_serve(tmp_path, upstream)
    try:
        _run(served, capsys)
    finally:
        if served.alive():
            served.stop(signal.SIGKILL)


def _run(served: ServeProcess, capsys: pytest.CaptureFixture[str]) -> None:
    url = served.url + "/v1/chat/completions"
    warm, _ = asyncio.run(_load(url, 1, 0.01))  # imports litellm in the server
    assert warm.errors == [] and len(warm.ids) == 1
    cpu_before, here_before = _cpu_seconds(served.process.pid), time.process_time()
    tally, wall = asyncio.run(_load(url, CLIENTS, SECONDS))
    cpu = _cpu_seconds(served.process.pid) - cpu_before
    here = time.process_time() - here_before
    peak_mb = served.peak_rss_mb()
    served.stop()  # stores what is queued (the exit code is test_cli_serve's business)
    rows = served.rows()

    calls = len(tally.ids)
    figures = (
        f"\nload: {CLIENTS} streaming clients for {wall:.1f} s, one worker; upstream "
        f"{COMPLETION_TOKENS} chunks {CHUNK_DELAY * 1000:.0f} ms apart\n"
        f"  calls {calls}  errors {len(tally.errors)}  calls/s {calls / wall:.0f}\n"
        f"  latency ms p50 {_ms(tally.latencies, 50):.0f}  p95 {_ms(tally.latencies, 95):.0f}"
        f"  p99 {_ms(tally.latencies, 99):.0f}\n"
        f"  first token ms p50 {_ms(tally.ttfts, 50):.0f}  p95 {_ms(tally.ttfts, 95):.0f}\n"
        f"  server CPU {cpu:.1f} s = {cpu / max(calls, 1) * 1000:.1f} ms per call;"
        f" peak RSS {peak_mb:.0f} MB\n"
        f"  this process (clients and upstream) CPU {here:.1f} s\n"
        f"  rows stored {len(rows)}"
    )
    with capsys.disabled():
        print(figures)
    assert tally.errors == [], f"{len(tally.errors)} errors, first: {tally.errors[:3]}"
    assert calls >= CLIENTS, figures  # every client finished at least one call
    # one stored row per call (plus the warm-up), each complete
    assert sorted(r["id"] for r in rows) == sorted([*warm.ids, *tally.ids])
    assert {r["status"] for r in rows} == {"ok"}
    assert {(r["prompt_tokens"], r["completion_tokens"]) for r in rows} == {
        (PROMPT_TOKENS, COMPLETION_TOKENS)
    }


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
