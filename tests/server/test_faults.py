"""``llmops serve`` when things go wrong: the provider fails or hangs, the request is not
JSON or too big, the database goes away during a burst, a client leaves mid-stream.

Most tests share one real ``llmops serve`` process and check its output for tracebacks;
the database outage runs the app in this process, on the session's PostgreSQL server,
which it stops and starts again."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import sqlalchemy as sa

from llmops.store.tables import CALLS
from llmops.testing import FakeLLMServer, Reply
from tests.server.test_cli_serve import (
    PRICES_YAML,
    UPSTREAM_KEY,
    ServeProcess,
    cost_of,
    start_serve,
)

pytestmark = pytest.mark.integration

MESSAGES = [{"role": "user", "content": "Hi"}]
NO_RETRIES = {"num_retries": 0}  # litellm would retry a 429/500 and maybe hide it


@pytest.fixture(scope="module", params=["--direct", "--via-litellm"])
def proc(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    llm_server: FakeLLMServer,
) -> Iterator[Any]:
    """One ``llmops serve`` per route to the upstream (the session's fake model server)."""
    served = start_serve(tmp_path_factory.mktemp("faults"), llm_server.base_url, request.param)
    # import litellm now (the first call does), so that no test pays for it in its timing
    served.client().chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    yield served
    served.stop()


@pytest.fixture
def served(proc: ServeProcess, server: FakeLLMServer) -> Iterator[ServeProcess]:
    """The module's server; after the test, its output since the test began holds no
    traceback, and it still answers."""
    start = len(proc.output())
    yield proc
    assert proc.alive(), proc.output()
    assert httpx.get(proc.url + "/health", timeout=10).status_code == 200
    since = proc.output()[start:]
    assert "Traceback" not in since and "Exception in ASGI" not in since, since


def _user() -> str:
    return f"u-{uuid.uuid4().hex[:8]}"


def _rows_of(served: ServeProcess, user: str, count: int = 1) -> list[dict[str, Any]]:
    return [
        r
        for r in served.wait_rows(lambda rows: sum(r["user_id"] == user for r in rows) >= count)
        if r["user_id"] == user
    ]


def _is_openai_error(body: Any) -> bool:
    error = body.get("error") if isinstance(body, dict) else None
    return isinstance(error, dict) and {"message", "type", "param", "code"} <= set(error)


# -- the provider fails -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "exception", "kind"),
    [(500, openai.InternalServerError, ("server_error", "api_error")),
     (429, openai.RateLimitError, ("rate_limit_error", "rate_limit_error")),
     (503, openai.InternalServerError, ("server_error", "api_error"))],
)  # fmt: skip
def test_a_provider_error_reaches_the_client_with_its_status(
    served: ServeProcess,
    server: FakeLLMServer,
    status: int,
    exception: type,
    kind: tuple[str, str],
) -> None:
    """``kind``: the error type the direct route passes on from the provider's body, and
    the one made from litellm's exception on the other route."""
    server.enqueue(Reply(status=status, text="upstream says no"))
    user = _user()
    with pytest.raises(exception) as caught:
        served.client().chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, user=user, extra_body=NO_RETRIES
        )
    assert caught.value.status_code == status
    body = caught.value.response.json()
    assert _is_openai_error(body), body
    expected = kind[0] if "--direct" in served.process.args else kind[1]
    assert body["error"]["type"] == expected and "upstream says no" in body["error"]["message"]
    assert len(server.requests) == 1  # no hidden retry
    (row,) = _rows_of(served, user)
    assert caught.value.response.headers["x-llmops-call-id"] == row["id"]
    assert row["status"] == "error" and row["error_type"]
    assert not row["cost_usd"]  # a failed call is not billed


def test_a_provider_that_hangs_past_the_timeout(served: ServeProcess, server) -> None:
    server.enqueue(Reply(text="too late", delay=3.0))
    user = _user()
    started = time.monotonic()
    answer = httpx.post(
        served.url + "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": MESSAGES, "user": user, "timeout": 0.5,
              **NO_RETRIES},
        timeout=30,
    )  # fmt: skip
    waited = time.monotonic() - started
    assert waited < 2.5, f"the server waited {waited:.1f} s for a 0.5 s timeout"
    assert answer.status_code == 504, answer.text  # Gateway Timeout: not the client's fault
    body = answer.json()
    assert _is_openai_error(body) and "timed out" in body["error"]["message"].lower()
    (row,) = _rows_of(served, user)
    assert row["status"] == "error" and "Timeout" in (row["error_type"] or "")


# -- bad requests -----------------------------------------------------------------------------

BAD_BODIES = {
    "malformed": (b'{"model": "gpt-4o-mini", "messages": [', 400),
    "not utf-8": (b'{"model": "\xff\xfe"}', 400),
    "empty": (b"", 400),
    "an array": (json.dumps([{"model": "gpt-4o-mini", "messages": MESSAGES}]).encode(), 400),
    "a string": (b'"hello"', 400),
    "nested 100k deep": (b'{"model": "gpt-4o-mini", "messages": ' + b"[" * 100_000, 400),
    "over 10 MB": (
        json.dumps(
            {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": "x" * (10 * 1024 * 1024 + 1)}],
            }
        ).encode(),
        413,
    ),
}


@pytest.mark.parametrize("name", list(BAD_BODIES))
def test_a_bad_body_is_a_4xx_without_traceback(served: ServeProcess, server, name: str) -> None:
    body, status = BAD_BODIES[name]
    answer = httpx.post(
        served.url + "/v1/chat/completions",
        content=body,
        headers={"content-type": "application/json"},
        timeout=60,
    )
    assert answer.status_code == status, answer.text[:300]
    assert _is_openai_error(answer.json())
    assert server.requests == []  # nothing reached the provider


def test_the_servers_key_never_goes_to_a_host_the_client_names(served: ServeProcess) -> None:
    """litellm takes `api_base` (and `base_url`) per call: a client must not be able to
    point the call, with the server's provider key, at a host of its choosing."""
    with FakeLLMServer() as elsewhere:
        where = elsewhere.url
        for field in ("api_base", "base_url"):
            httpx.post(
                served.url + "/v1/chat/completions",
                json={"model": "gpt-4o-mini", "messages": MESSAGES, field: elsewhere.base_url},
                timeout=30,
            )
        leaked = [r.headers.get("authorization") for r in elsewhere.requests]
    assert f"Bearer {UPSTREAM_KEY}" not in leaked, f"the provider key went to {where}"


# -- a client leaves mid-stream --------------------------------------------------------------


def test_a_client_that_leaves_mid_stream_is_cancelled_with_the_tokens_seen(
    served: ServeProcess, server
) -> None:
    words = 400
    server.enqueue(Reply(text="word " * words, prompt_tokens=30, completion_tokens=words,
                         chunk_delay=0.02))  # fmt: skip
    user = _user()
    seen: list[str] = []
    with (
        httpx.Client(timeout=30) as client,
        client.stream(
            "POST",
            served.url + "/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True, "user": user},
        ) as answer,
    ):
        assert answer.status_code == 200
        call_id = answer.headers["x-llmops-call-id"]
        for line in answer.iter_lines():
            if line.startswith("data: {"):
                delta = json.loads(line[6:])["choices"][0]["delta"]
                if delta.get("content"):
                    seen.append(delta["content"])
            if len(seen) == 10:
                break  # leaving the block closes the connection
    left = time.monotonic()
    (row,) = _rows_of(served, user)
    assert row["id"] == call_id and row["status"] == "cancelled"
    # the server noticed the client leave: it did not read the whole 8 s stream first
    assert time.monotonic() - left < words * 0.02 - 2, row
    # the tokens seen, counted locally: at least what the client got, less than the whole
    assert row["tokens_estimated"]
    assert len(seen) <= row["completion_tokens"] < words
    assert row["response_text"].startswith("".join(seen))
    assert row["prompt_tokens"] > 0
    assert row["cost_usd"] == pytest.approx(cost_of(row["prompt_tokens"], row["completion_tokens"]))


# -- the database goes away during a burst ----------------------------------------------------


@pytest.fixture
def in_thread(
    tmp_path: Path, server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch, serve_in_thread
):
    """Start the app on a real uvicorn server in this process, over a given database (the
    server closes its gateway when it stops)."""
    from llmops import Gateway

    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", UPSTREAM_KEY)
    (tmp_path / "prices.yaml").write_text(PRICES_YAML, encoding="utf-8")

    def start(database_url: str) -> tuple[Any, str]:
        gateway = Gateway(database_url, prompts=tmp_path / "prompts", home=tmp_path / "home",
                          prices=tmp_path / "prices.yaml", retry_interval=0.05,
                          direct=True)  # fmt: skip
        return gateway, serve_in_thread(gateway)

    return start


def _count(url: str, ids: list[str]) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            query = sa.select(sa.func.count()).where(CALLS.c.id.in_(ids), CALLS.c.status == "ok")
            return int(connection.execute(query).scalar_one())
    finally:
        engine.dispose()


OUTAGE_SECONDS = 6.0  # longer than anything the server caches from the database (5 s keys)


def test_the_database_down_during_a_burst(
    in_thread: Callable[[str], tuple[Any, str]], postgres_url: str, postgres_server: Any
) -> None:
    """Every call of a burst is answered while PostgreSQL is stopped for a few seconds, and
    every one is stored once it is back."""
    gateway, url = in_thread(postgres_url)
    concurrency, before_outage = 8, 16
    failures: list[str] = []

    async def burst() -> list[str]:
        client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="sk-client", max_retries=0)
        done: list[str] = []
        until = [float("inf")]

        async def worker() -> None:
            while time.monotonic() < until[0] and len(failures) < 20:
                try:
                    raw = await client.chat.completions.with_raw_response.create(
                        model="gpt-4o-mini", messages=MESSAGES
                    )
                except openai.APIError as exc:
                    failures.append(f"{type(exc).__name__}: {exc}"[:300])
                    continue
                done.append(raw.headers["x-llmops-call-id"])

        workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
        while len(done) < before_outage and len(failures) < 20:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(postgres_server.stop)  # the calls go on meanwhile
        until[0] = time.monotonic() + OUTAGE_SECONDS
        await asyncio.gather(*workers)
        await client.close()
        return done

    try:
        ids = asyncio.run(burst())
        assert failures == [], f"{len(failures)} calls failed with the database down"
        assert len(set(ids)) == len(ids) > before_outage
        assert _count_or_none(postgres_url, ids) is None  # really down
        assert gateway.flush(timeout=30)  # in the journal, fsynced
        health = httpx.get(url + "/health", timeout=10).json()
        assert health["database"] == "unreachable: calls are journaled", health
    finally:
        postgres_server.start()
    deadline = time.monotonic() + 30
    while (stored := _count(postgres_url, ids)) < len(ids):
        assert time.monotonic() < deadline, f"{stored} of {len(ids)} stored after the outage"
        gateway.flush(timeout=5)
        time.sleep(0.2)
    assert stored == len(ids)
    assert gateway.writer.stats.spooled > 0  # the outage really left calls in the journal


def _count_or_none(url: str, ids: list[str]) -> int | None:
    with contextlib.suppress(sa.exc.OperationalError):
        return _count(url, ids)
    return None
