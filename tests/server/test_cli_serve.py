"""``llmops serve`` as a real process: the official OpenAI SDK against it, two workers,
refused hosts and ports, and a SIGTERM that keeps every answered call.

The helpers at the top (:func:`start_serve`, :class:`ServeProcess`) are shared with the
fault and load tests of this folder: a server process with its own SQLite file, its own
``LLMOPS_HOME`` and the fake model server as its upstream (``OPENAI_BASE_URL``)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import sqlalchemy as sa

from llmops.store.queries import stored_calls
from llmops.testing import Reply
from tests.server.conftest import free_port

pytestmark = pytest.mark.integration

UPSTREAM_KEY = "sk-upstream-key"  # the server's provider key; clients send another one
PRICES_YAML = "models:\n  gpt-4o-mini:\n    input_per_million: 1000\n    output_per_million: 2000\n"
START_TIMEOUT = 60.0  # seconds until /health answers (CLI start-up and the Gateway)
STOP_TIMEOUT = 60.0
MESSAGES = [{"role": "user", "content": "Capital of France?"}]
PUBLIC_HOST = "0.0.0.0"  # noqa: S104 (only ever refused here)


def cost_of(prompt_tokens: int, completion_tokens: int) -> float:
    """What PRICES_YAML charges for a call."""
    return prompt_tokens * 1000 / 1e6 + completion_tokens * 2000 / 1e6


@dataclass
class ServeProcess:
    """One ``llmops serve`` process; its output (stdout and stderr) goes to ``log``."""

    process: subprocess.Popen[bytes]
    port: int
    home: Path
    database: Path
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.database}"

    def client(self, **kwargs: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key="sk-client", max_retries=0,
                             **kwargs)  # fmt: skip

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        """Send ``sig`` and wait for the exit; the exit code (negative: killed by a signal)."""
        if self.alive():
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise AssertionError(
                f"llmops serve did not stop in {timeout} s:\n{self.output()}"
            ) from None

    def rows(self) -> list[dict[str, Any]]:
        """Every stored call, oldest first (read from the SQLite file, as another app would)."""
        engine = sa.create_engine(self.database_url)
        try:
            with engine.connect() as connection:
                return stored_calls(connection)
        finally:
            engine.dispose()

    def wait_rows(
        self, check: Callable[[list[dict[str, Any]]], bool], timeout: float = 20.0
    ) -> list[dict[str, Any]]:
        """Poll the database until ``check(rows)`` holds (the writer batches every 0.2 s)."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.rows()
            if check(rows):
                return rows
            assert time.monotonic() < deadline, f"rows never matched: {rows}\n{self.output()}"
            time.sleep(0.1)

    def worker_pids(self) -> set[int]:
        """The pids of this process's children that journaled calls (``--workers N``)."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        pids = {int(p) for p in children.read_text().split()}
        journaled = set()
        for path in (self.home / "spool").glob("*.jsonl"):
            parts = path.name.split("-")  # <host>-<pid>-<random>-<n>.jsonl
            if len(parts) >= 4 and parts[-3].isdigit():
                journaled.add(int(parts[-3]))
        return pids & journaled

    def peak_rss_mb(self) -> float:
        """VmHWM of the process (and of its children, summed), in MB."""
        pids = [self.process.pid]
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        if children.exists():
            pids += [int(p) for p in children.read_text().split()]
        total = 0
        for pid in pids:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        return total / 1024


def serve_env(folder: Path, upstream: str, **extra: str) -> dict[str, str]:
    """The server's environment: its own database, home, prompts and prices; no LLMOPS_*
    variable of the developer's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMOPS_")}
    (folder / "prompts").mkdir(parents=True, exist_ok=True)
    (folder / "prices.yaml").write_text(PRICES_YAML, encoding="utf-8")
    env.update(
        LLMOPS_HOME=str(folder / "home"),
        LLMOPS_DATABASE_URL=f"sqlite:///{folder / 'db' / 'llmops.db'}",
        LLMOPS_PROMPTS_DIR=str(folder / "prompts"),
        LLMOPS_PRICES=str(folder / "prices.yaml"),
        OPENAI_BASE_URL=upstream,
        OPENAI_API_KEY=UPSTREAM_KEY,
        PYTHONUNBUFFERED="1",
        NO_COLOR="1",
        **extra,
    )
    return env


def start_serve(
    folder: Path, upstream: str, *args: str, env: dict[str, str] | None = None
) -> ServeProcess:
    """``python -m llmops serve --port P ARGS`` in ``folder``; returns once /health answers."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "db").mkdir(exist_ok=True)
    port = free_port()
    log = folder / f"serve-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "llmops", "serve", "--port", str(port), *args],
            cwd=folder,
            env=env or serve_env(folder, upstream),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    served = ServeProcess(process, port, folder / "home", folder / "db" / "llmops.db", log)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if not served.alive():
            raise AssertionError(
                f"llmops serve exited with {process.returncode}:\n{served.output()}"
            )
        try:
            if httpx.get(served.url + "/health", timeout=2).status_code == 200:
                return served
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            served.stop(signal.SIGKILL)
            raise AssertionError(f"llmops serve did not answer /health:\n{served.output()}")
        time.sleep(0.05)


@pytest.fixture
def serve(tmp_path: Path, llm_server: Any) -> Iterator[Callable[..., ServeProcess]]:
    """Start ``llmops serve`` processes (upstream: the session's fake model server); every
    one still running is stopped after the test."""
    started: list[ServeProcess] = []

    def start(*args: str, folder: Path | None = None) -> ServeProcess:
        where = folder or tmp_path / f"serve{len(started)}"
        served = start_serve(where, llm_server.base_url, *args)
        started.append(served)
        return served

    yield start
    for served in started:
        if served.alive():
            served.stop(signal.SIGKILL)


@pytest.fixture(scope="module")
def one_worker(
    tmp_path_factory: pytest.TempPathFactory, llm_server: Any
) -> Iterator[Callable[[], ServeProcess]]:
    """One ``llmops serve`` (one worker) shared by the module's tests; a test that stopped
    it gets a new one."""
    current: list[ServeProcess] = []

    def get() -> ServeProcess:
        if not current or not current[-1].alive():
            folder = tmp_path_factory.mktemp("one-worker")
            current.append(start_serve(folder, llm_server.base_url))
        return current[-1]

    yield get
    for served in current:
        if served.alive():
            served.stop(signal.SIGKILL)


def assert_clean(output: str) -> None:
    assert "Traceback" not in output and "Exception in ASGI" not in output, output


# -- a call, recorded -------------------------------------------------------------------------


def test_a_chat_call_with_the_openai_sdk_is_recorded(one_worker, server) -> None:
    served = one_worker()
    server.enqueue(Reply(text="Paris.", prompt_tokens=20, completion_tokens=2))
    raw = served.client().chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, user="ann", temperature=0.3,
        extra_headers={"x-llmops-tags": "geo,quiz", "x-llmops-session": "s-9"},
    )  # fmt: skip
    completion = raw.parse()
    assert completion.choices[0].message.content == "Paris."
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (20, 2)
    call_id = raw.headers["x-llmops-call-id"]
    rows = served.wait_rows(lambda rows: any(r["id"] == call_id for r in rows))
    (row,) = [r for r in rows if r["id"] == call_id]
    assert (row["status"], row["model"], row["provider"]) == ("ok", "gpt-4o-mini", "openai")
    assert (row["prompt_tokens"], row["completion_tokens"]) == (20, 2)
    assert row["cost_usd"] == pytest.approx(cost_of(20, 2))
    assert (row["user_id"], row["tags"], row["session_id"]) == ("ann", ["geo", "quiz"], "s-9")
    assert row["response_text"] == "Paris."
    sent = server.requests[-1]
    assert sent.body["temperature"] == 0.3 and sent.body["messages"] == MESSAGES
    # the server's key goes upstream, never the client's
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert_clean(served.output())


def test_sigterm_stops_it_with_exit_0_and_keeps_every_answered_call(one_worker, server) -> None:
    served = one_worker()
    served.client().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # warm
    server.route("gpt-4o-mini", Reply(text="slow", prompt_tokens=4, completion_tokens=1,
                                      delay=1.0))  # fmt: skip
    before = len(server.requests)

    def call(i: int) -> str | None:
        try:
            raw = served.client(timeout=30).chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": f"n{i}"}]
            )
        except openai.APIError:
            return None
        return raw.headers["x-llmops-call-id"]

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(call, i) for i in range(6)]
        deadline = time.monotonic() + 20
        while len(server.requests) < before + 6:  # every call is in flight upstream
            assert time.monotonic() < deadline, "the calls did not reach the upstream"
            time.sleep(0.02)
        code = served.stop(signal.SIGTERM)
        answered = [f.result() for f in futures]
    assert all(answered), "in-flight calls were dropped at shutdown"
    stored = {r["id"]: r for r in served.rows()}
    assert set(answered) <= set(stored)
    assert all(stored[i]["status"] == "ok" for i in answered if i)
    assert_clean(served.output())
    # uvicorn (>= 0.29) re-raises the SIGTERM it caught once it has shut down gracefully,
    # so a single-worker server dies of the signal (-15, shell status 143) unless
    # `llmops serve` handles it; supervisors and `docker stop` expect 0
    assert code == 0, f"exit {code} after SIGTERM:\n{served.output()}"


# -- two workers ------------------------------------------------------------------------------


def test_two_workers_both_serve_and_record(serve, server) -> None:
    served = serve("--workers", "2")
    answered: list[str] = []

    def call(i: int) -> str:
        # a new connection per call, so that the kernel hands calls to either worker
        with httpx.Client(timeout=60) as client:
            answer = client.post(
                served.url + "/v1/chat/completions",
                json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"n{i}"}]},
            )
        assert answer.status_code == 200, answer.text
        return answer.headers["x-llmops-call-id"]

    deadline = time.monotonic() + 60
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        while len(served.worker_pids()) < 2 or len(answered) < 20:
            assert time.monotonic() < deadline, f"one worker never recorded:\n{served.output()}"
            answered += pool.map(call, range(len(answered), len(answered) + 16))
    assert len(served.worker_pids()) == 2
    rows = served.wait_rows(lambda rows: len(rows) >= len(answered))
    assert sorted(r["id"] for r in rows) == sorted(answered)
    assert {r["status"] for r in rows} == {"ok"}
    code = served.stop(signal.SIGTERM)
    assert code == 0, served.output()
    assert len(served.rows()) == len(answered)
    assert_clean(served.output())


def _scrape(client: httpx.Client) -> tuple[float, float]:
    """(when the exporter read the database, llmops_calls_total) of one /metrics answer."""
    from prometheus_client.parser import text_string_to_metric_families

    answer = client.get("/metrics", timeout=30)
    assert answer.status_code == 200, answer.text
    read, calls = 0.0, 0.0
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            if sample.name == "llmops_exporter_last_refresh_timestamp_seconds":
                read = sample.value
            elif sample.name == "llmops_calls_total":
                calls += sample.value
    return read, calls


def test_two_workers_serve_one_series_of_metrics(serve, server, tmp_path: Path) -> None:
    """Each worker made its own exporter: its own first read, series and 5 s cache. One
    scrape target, its scrapes landing on either worker, saw llmops_calls_total go 1, 4,
    1, which Prometheus takes for a counter reset (increase() counts the whole total
    again). Every worker now serves the figures of one exporter, the supervisor's, which
    reads the budgets of llmops.yaml in the folder the server started in, as they do."""
    folder = tmp_path / "budgets"
    folder.mkdir()
    (folder / "llmops.yaml").write_text(
        "budgets:\n  limits:\n    - {name: daily-cap, window: day, limit_usd: 7}\n"
    )
    served = serve("--workers", "2", folder=folder)

    def calls(n: int) -> None:
        for _ in range(n):
            served.client().chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
            )

    calls(1)
    served.wait_rows(lambda rows: len(rows) == 1)
    with httpx.Client(base_url=served.url) as kept:  # one connection: one worker
        seen = [_scrape(kept)]
        calls(3)
        served.wait_rows(lambda rows: len(rows) == 4)
        for _ in range(12):  # new connections, which either worker may accept
            with httpx.Client(base_url=served.url) as fresh:
                seen.append(_scrape(fresh))
            seen.append(_scrape(kept))
    assert seen == sorted(seen), f"(read at, calls) scrape after scrape: {seen}"
    assert seen[0][1] == 1
    budget = 'llmops_budget_limit_usd{budget="daily-cap",key="",window="day"} 7.0'
    assert budget in httpx.get(served.url + "/metrics", timeout=30).text


def test_metrics_keep_the_config_the_server_started_with(serve, server) -> None:
    """/metrics read llmops.yaml on its first scrape: a file broken since the server
    started made every scrape a bare 500 with a traceback in the server's output."""
    served = serve()
    (served.home.parent / "llmops.yaml").write_text(
        "budgets:\n  limits:\n    - {name: x, window: year, limit_usd: 1}\n"
    )
    answer = httpx.get(served.url + "/metrics", timeout=30)
    assert answer.status_code == 200, answer.text
    assert "llmops_calls_total" in answer.text or "llmops_database_up" in answer.text
    assert "Traceback" not in served.output(), served.output()


# -- refused before it starts -----------------------------------------------------------------


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_a_public_host_without_allow_anonymous_is_refused(real_cli, tmp_path) -> None:
    result = real_cli("serve", "--host", PUBLIC_HOST, "--port", str(free_port()), cwd=tmp_path)
    assert result.code == 2
    line = _one_error_line(result.stderr)
    assert PUBLIC_HOST in line and "--allow-anonymous" in line


def test_a_port_in_use_is_refused(real_cli, tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = real_cli("serve", "--port", str(port), cwd=tmp_path)
        assert result.code == 2
        assert f"127.0.0.1:{port}" in _one_error_line(result.stderr)
        # --allow-anonymous lets a public host through to the port check, no further
        public = real_cli("serve", "--host", PUBLIC_HOST, "--allow-anonymous", "--port", str(port),
                          cwd=tmp_path)  # fmt: skip
    assert public.code == 2
    assert f"{PUBLIC_HOST}:{port}" in _one_error_line(public.stderr)


# -- a bounded request head -----------------------------------------------------------------


def _raw(served: ServeProcess, head: bytes, wait: float = 0.0) -> bytes:
    """Send ``head`` on a new connection (after ``wait`` s, nothing more) and read the
    answer until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", served.port), timeout=30) as sock:
        with contextlib.suppress(OSError):  # the server may close before all is sent
            sock.sendall(head)
        time.sleep(wait)
        answer = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                answer += chunk
    return answer


def test_headers_over_64_kb_are_refused_before_they_are_kept(serve) -> None:
    """uvicorn's httptools protocol kept a header whole until it ended: three connections
    sending 50 MB headers took 143 MB of the server before any key was checked."""
    served = serve()
    big = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n"
    answer = _raw(served, big)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"over 65536 bytes" in answer
    near = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 60_000 + b"\r\n\r\n"
    last = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    assert _raw(served, near + near + last).count(b"HTTP/1.1 200 ") == 3  # pipelined
    assert httpx.get(served.url + "/health", headers={"x-a": "b" * 60_000}).status_code == 200
    assert served.alive()
    assert_clean(served.output())


def test_headers_trickling_past_the_header_timeout_are_refused(serve) -> None:
    served = serve("--header-timeout", "1")
    started = time.monotonic()
    answer = _raw(served, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: a", wait=0)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert 0.9 <= time.monotonic() - started < 10
    # a kept-alive connection idle between requests is not cut (uvicorn's keep-alive is)
    with httpx.Client(base_url=served.url, timeout=30) as client:
        assert client.get("/health").status_code == 200
        time.sleep(1.5)
        assert client.get("/health").status_code == 200
        assert client.get("/health", headers={"x-b": "c" * 1000}).status_code == 200
    assert_clean(served.output())
