"""The direct route (``Gateway(direct=True)``): OpenAI-compatible upstreams called with
httpx. The same replies through both routes must record the same rows; errors, retries,
timeouts, broken streams and abandoned streams are recorded as on the litellm route."""

from __future__ import annotations

import asyncio
import gc
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from llmops import Gateway
from llmops.errors import (
    ConfigError,
    ProviderError,
    ProviderRateLimitError,
    ProviderTimeoutError,
    ProviderUnreachableError,
)
from llmops.gateway.direct import JSONObject
from llmops.store.queries import stored_calls
from llmops.store.tables import CALLS
from llmops.testing import Reply

SECRET = "sk-direct-DO-NOT-STORE-0123456789"
USER_MSG = [{"role": "user", "content": "Where is my parcel?"}]
PRICES = {
    "gpt-4o-mini": {"input_per_million": 150, "output_per_million": 600,
                    "cached_input_per_million": 75},
    "o3-mini": {"input_per_million": 1100, "output_per_million": 4400},
    "text-embedding-3-small": {"input_per_million": 20, "output_per_million": 0},
}  # fmt: skip
# Row columns both routes must agree on (ids, times and latencies differ by nature).
SAME = ("model", "provider", "status", "prompt_tokens", "completion_tokens", "cached_tokens",
        "cache_write_tokens", "reasoning_tokens", "tokens_estimated", "cost_usd", "cost_status",
        "price_source", "user_id", "tags", "metadata", "request", "response_text",
        "usage_details", "error_type")  # fmt: skip


def http(server: Any, **extra: Any) -> dict[str, Any]:
    return {"api_base": server.base_url, "api_key": SECRET, "num_retries": 0, **extra}


@pytest.fixture
def gateways(tmp_path: Path) -> Iterator[Callable[..., Gateway]]:
    """``gateways(direct)``: Gateways on one SQLite file (closed after the test)."""
    made: list[Gateway] = []
    url = f"sqlite:///{tmp_path / 'db' / 'llmops.db'}"

    def make(direct: bool = True, **kwargs: Any) -> Gateway:
        kwargs.setdefault("prices", PRICES)
        gateway = Gateway(url, home=tmp_path / f"home-{len(made)}", prompts=tmp_path / "none",
                          retry_interval=0.05, direct=direct, **kwargs)  # fmt: skip
        made.append(gateway)
        return gateway

    yield make
    for gateway in made:
        gateway.close()


def stored(gateway: Gateway, call_id: str) -> dict[str, Any]:
    assert gateway.flush(10)
    with gateway.engine.connect() as connection:
        (row,) = stored_calls(connection, CALLS.c.id == call_id)
    return row


def both(gateways: Callable[..., Gateway]) -> tuple[Gateway, Gateway]:
    return gateways(True), gateways(False)


# -- the same rows on both routes ----------------------------------------------------------

REPLIES = {
    "plain": Reply(text="It left the depot.", prompt_tokens=40, completion_tokens=5),
    "cached": Reply(text="Cached answer.", prompt_tokens=2000, completion_tokens=3,
                    cached_tokens=1024, service_tier="default"),
    "counted": Reply(text="The provider sent no usage.", include_usage=False),
}  # fmt: skip


def _complete(gw: Gateway, server: Any, **kw: Any) -> tuple[str, str, Any]:
    done = gw.complete(model="gpt-4o-mini", messages=USER_MSG, **http(server), **kw)
    return done.call_id, done.text, done.raw


def _acomplete(gw: Gateway, server: Any, **kw: Any) -> tuple[str, str, Any]:
    async def run() -> Any:
        return await gw.acomplete(model="gpt-4o-mini", messages=USER_MSG, **http(server), **kw)

    done = asyncio.run(run())
    return done.call_id, done.text, done.raw


def _stream(gw: Gateway, server: Any, **kw: Any) -> tuple[str, str, Any]:
    stream = gw.stream(model="gpt-4o-mini", messages=USER_MSG, **http(server), **kw)
    text = "".join(stream)
    assert stream.result is not None
    return stream.call_id, text, stream._recorder.response


def _astream(gw: Gateway, server: Any, **kw: Any) -> tuple[str, str, Any]:
    async def run() -> tuple[str, str, Any]:
        stream = await gw.astream(model="gpt-4o-mini", messages=USER_MSG, **http(server), **kw)
        text = "".join([part async for part in stream])
        return stream.call_id, text, stream._recorder.response

    return asyncio.run(run())


CALLERS = {"complete": _complete, "acomplete": _acomplete, "stream": _stream,
           "astream": _astream}  # fmt: skip


@pytest.mark.parametrize("reply", list(REPLIES))
@pytest.mark.parametrize("how", list(CALLERS))
def test_both_routes_record_the_same_row(gateways, server, reply: str, how: str) -> None:
    direct, via_litellm = both(gateways)
    call = CALLERS[how]
    attribution = {"user": "ann", "tags": ["t"], "metadata": {"ticket": 7}, "temperature": 0.2}
    server.enqueue(REPLIES[reply], REPLIES[reply])
    direct_id, direct_text, direct_raw = call(direct, server, **attribution)
    litellm_id, litellm_text, litellm_raw = call(via_litellm, server, **attribution)
    # the first went direct (the provider's JSON), the second through litellm
    assert how.endswith("stream") or isinstance(direct_raw, JSONObject)
    assert not isinstance(litellm_raw, JSONObject)
    assert direct_text == litellm_text != ""
    first, second = server.requests[-2].body, server.requests[-1].body
    assert first["messages"] == second["messages"] and first["temperature"] == 0.2
    assert server.requests[-2].headers["authorization"] == f"Bearer {SECRET}"
    row, twin = stored(direct, direct_id), stored(via_litellm, litellm_id)
    assert {k: row[k] for k in SAME} == {k: twin[k] for k in SAME}
    assert row["status"] == "ok" and row["cost_status"] == "custom" and row["cost_usd"] > 0
    assert SECRET not in repr(row)  # the provider key reaches the provider, never a row
    if how.endswith("stream"):
        assert row["ttft_ms"] is not None and row["ttft_ms"] <= row["latency_ms"]


def test_embeddings_go_direct_and_are_recorded_alike(gateways, server) -> None:
    direct, via_litellm = both(gateways)
    texts = ["first text", "second text here"]
    a = direct.embed(texts, model="text-embedding-3-small", **http(server))
    b = via_litellm.embed(texts, model="text-embedding-3-small", **http(server))
    assert isinstance(a.raw, JSONObject) and not isinstance(b.raw, JSONObject)
    assert a.vectors == b.vectors and len(a.vectors) == 2
    row, twin = stored(direct, a.call_id), stored(via_litellm, b.call_id)
    assert {k: row[k] for k in SAME} == {k: twin[k] for k in SAME}
    assert row["usage_details"]["operation"] == "embeddings" and row["cost_usd"] > 0


@pytest.mark.parametrize("given", [[9906, 1917], [[9906, 1917], [15339, 100300]]])
def test_token_ids_are_sent_as_given_on_both_routes(gateways, server, given) -> None:
    """OpenAI takes token ids as embeddings input (LangChain's OpenAIEmbeddings sends
    them): they reach the provider unchanged, and are stored as their text (ids the
    model's encoding does not hold, as themselves)."""
    direct, via_litellm = both(gateways)
    arrays = given if isinstance(given[0], list) else [given]
    texts = ["Hello world", "[15339, 100300]"][: len(arrays)]  # 100300: not in cl100k
    rows = []
    for gw in (direct, via_litellm):
        done = gw.embed(given, model="text-embedding-3-small", **http(server))
        assert server.requests[-1].body["input"] in (given, arrays)  # one list or nested
        assert len(done.vectors) == len(arrays)
        assert done.usage.prompt_tokens == sum(len(a) for a in arrays)
        rows.append(stored(gw, done.call_id))
    assert [m["content"] for m in rows[0]["request"]["messages"]] == texts
    assert {k: rows[0][k] for k in SAME} == {k: rows[1][k] for k in SAME}


@pytest.mark.parametrize(
    "bad", [[], [[]], [1, "a"], [-1], [True], [[1.5]], [2**31], [[1], 2], [None]]
)
def test_embeddings_input_that_is_neither_texts_nor_token_ids_is_refused(gateways, bad) -> None:
    with pytest.raises(ConfigError, match="token ids"):
        gateways().embed(bad, model="text-embedding-3-small")


# -- which calls go direct -----------------------------------------------------------------


def test_only_openai_models_with_openais_parameters_go_direct(gateways, server) -> None:
    gw = gateways()
    done = gw.complete(model="openai/gpt-4o-mini", messages=USER_MSG, **http(server))
    assert isinstance(done.raw, JSONObject)
    assert server.requests[-1].body["model"] == "gpt-4o-mini"  # the provider's name for it
    # a litellm option: litellm's route
    mocked = gw.complete(model="gpt-4o-mini", messages=USER_MSG, mock_response="mocked")
    assert mocked.text == "mocked" and not isinstance(mocked.raw, JSONObject)
    # another provider: litellm's route
    anthropic = gw.complete(
        model="anthropic/claude-3-5-haiku-20241022", messages=USER_MSG,
        api_base=server.anthropic_base_url, api_key=SECRET, num_retries=0,
    )  # fmt: skip
    assert not isinstance(anthropic.raw, JSONObject)
    assert server.requests[-1].path.endswith("/v1/messages")


def test_reasoning_models_get_max_completion_tokens(gateways, server) -> None:
    gw = gateways()
    gw.complete(model="o3-mini", messages=USER_MSG, max_tokens=50, **http(server))
    sent = server.requests[-1].body
    assert sent["max_completion_tokens"] == 50 and "max_tokens" not in sent
    gw.complete(model="gpt-4o-mini", messages=USER_MSG, max_tokens=50, **http(server))
    assert server.requests[-1].body["max_tokens"] == 50


def test_the_upstream_and_key_come_from_the_environment(
    gateways, server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("OPENAI_ORGANIZATION", "org-7")
    gw = gateways()
    done = gw.complete(model="gpt-4o-mini", messages=USER_MSG)
    assert isinstance(done.raw, JSONObject)
    headers = server.requests[-1].headers
    assert headers["authorization"] == f"Bearer {SECRET}"
    assert headers["openai-organization"] == "org-7"
    assert headers["user-agent"].startswith("llmops/")
    assert SECRET not in repr(stored(gw, done.call_id))


# -- errors --------------------------------------------------------------------------------


def test_a_rate_limit_is_a_typed_error_with_the_call_recorded(gateways, server) -> None:
    gw = gateways()
    server.enqueue(Reply(status=429, text="slow down"))
    with pytest.raises(ProviderRateLimitError) as caught:
        gw.complete(model="gpt-4o-mini", messages=USER_MSG, **http(server))
    error = caught.value
    assert error.status_code == 429 and error.retry_after == 0
    assert error.body is not None and error.body["error"]["message"] == "slow down"
    assert "slow down" in str(error)
    row = stored(gw, error.llmops_call_id)  # type: ignore[attr-defined]
    assert (row["status"], row["error_type"], row["cost_usd"]) == (
        "error", "ProviderRateLimitError", 0.0)  # fmt: skip
    assert row["provider"] == "openai" and "slow down" in row["error_message"]


def test_retries_when_asked_and_only_then(gateways, server) -> None:
    gw = gateways()
    server.enqueue(Reply(status=500, text="blip"), Reply(status=503), Reply(text="third time"))
    done = gw.complete(model="gpt-4o-mini", messages=USER_MSG, **http(server, num_retries=2))
    assert done.text == "third time" and len(server.requests) == 3
    assert stored(gw, done.call_id)["status"] == "ok"
    server.enqueue(Reply(status=500, text="once"))
    with pytest.raises(ProviderError) as caught:
        gw.complete(model="gpt-4o-mini", messages=USER_MSG, **http(server))
    assert caught.value.status_code == 500 and len(server.requests) == 4  # no retry unasked
    server.enqueue(Reply(status=400, text="bad request"), Reply(text="never sent"))
    with pytest.raises(ProviderError):  # a 400 is not retried, even when asked
        gw.complete(model="gpt-4o-mini", messages=USER_MSG, **http(server, num_retries=3))
    assert len(server.requests) == 5


def test_a_provider_past_the_timeout(gateways, server) -> None:
    gw = gateways()
    server.enqueue(Reply(text="too late", delay=2.0))
    started = time.monotonic()
    with pytest.raises(ProviderTimeoutError) as caught:
        gw.complete(model="gpt-4o-mini", messages=USER_MSG, timeout=0.3, **http(server))
    assert time.monotonic() - started < 1.5 and caught.value.status_code == 504
    row = stored(gw, caught.value.llmops_call_id)  # type: ignore[attr-defined]
    assert row["status"] == "error" and row["error_type"] == "ProviderTimeoutError"
    # the provider had the request and may bill it: unknown, not "not billed" (cost 0)
    assert (row["cost_usd"], row["cost_status"]) == (None, "unpriced")


def test_a_timeout_through_litellm_is_unpriced_too(gateways, server) -> None:
    import litellm

    gw = gateways(direct=False)
    server.enqueue(Reply(text="too late", delay=2.0))
    with pytest.raises(litellm.Timeout) as caught:
        gw.complete(model="gpt-4o-mini", messages=USER_MSG, timeout=0.3, **http(server))
    row = stored(gw, caught.value.llmops_call_id)  # type: ignore[attr-defined]
    assert (row["status"], row["cost_usd"], row["cost_status"]) == ("error", None, "unpriced")


def test_json_nested_past_pythons_parser_is_malformed_json() -> None:
    """A provider's error body nested 5,000 levels raised RecursionError, which no caller
    expected: the server answered 502 "RecursionError" for the provider's 400."""
    from llmops.gateway.direct import loads

    with pytest.raises(ValueError, match="nested too deeply"):
        loads('{"error": ' + "[" * 5000 + "]" * 5000 + "}")


def test_an_unreachable_provider(gateways) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nobody listens there
    gw = gateways()
    with pytest.raises(ProviderUnreachableError) as caught:
        gw.complete(model="gpt-4o-mini", messages=USER_MSG,
                    api_base=f"http://127.0.0.1:{port}/v1", api_key=SECRET)  # fmt: skip
    assert caught.value.status_code == 502
    assert stored(gw, caught.value.llmops_call_id)["status"] == "error"  # type: ignore[attr-defined]


class RawProvider:
    """A provider that sends fixed bytes for every request, then closes the connection:
    a broken answer, or a stream cut in the middle."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.base_url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            with connection:
                connection.recv(65536)
                connection.sendall(self.raw)

    def close(self) -> None:
        self.sock.close()


def _head(content_type: str, length: int | None = None) -> bytes:
    size = f"content-length: {length}\r\n" if length is not None else ""
    return f"HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\n{size}\r\n".encode()


def test_an_answer_that_is_not_json_is_an_error_not_a_crash(gateways) -> None:
    body = b"<html>proxy error</html>"
    upstream = RawProvider(_head("text/html", len(body)) + body)
    gw = gateways()
    try:
        with pytest.raises(ProviderError) as caught:
            gw.complete(model="gpt-4o-mini", messages=USER_MSG, api_base=upstream.base_url,
                        api_key=SECRET)  # fmt: skip
    finally:
        upstream.close()
    assert caught.value.status_code == 502 and "not JSON" in str(caught.value)


CHUNK = (
    b'data: {"id":"c","object":"chat.completion.chunk","created":0,"model":"gpt-4o-mini",'
    b'"choices":[{"index":0,"delta":{"content":"half an"},"finish_reason":null}]}\n\n'
)
CUTS = {
    # the connection closes where the body would go on: a body delimited by the close
    "at a chunk boundary": _head("text/event-stream") + CHUNK,
    # ... or in the middle of a chunk of a chunked body
    "inside a chunk": b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
    + f"{len(CHUNK):x}\r\n".encode()
    + CHUNK
    + b"\r\n400\r\ndata: {",
}


@pytest.mark.parametrize("cut", list(CUTS))
def test_a_stream_cut_in_the_middle_keeps_what_was_seen(gateways, cut: str) -> None:
    upstream = RawProvider(CUTS[cut])  # then the connection closes
    gw = gateways()
    stream = gw.stream(model="gpt-4o-mini", messages=USER_MSG, api_base=upstream.base_url,
                       api_key=SECRET)  # fmt: skip
    seen: list[str] = []
    try:
        with pytest.raises(ProviderError):
            for part in stream:
                seen.append(part)
    finally:
        upstream.close()
    assert seen == ["half an"]
    row = stored(gw, stream.call_id)
    assert row["status"] == "error" and row["response_text"] == "half an"
    assert row["completion_tokens"] > 0 and row["tokens_estimated"] in (True, 1)


def test_an_error_event_in_a_stream_is_an_error(gateways) -> None:
    event = b'data: {"error": {"message": "overloaded", "type": "server_error"}}\n\n'
    upstream = RawProvider(_head("text/event-stream") + event)
    gw = gateways()
    try:
        with pytest.raises(ProviderError, match="overloaded"):
            list(gw.stream(model="gpt-4o-mini", messages=USER_MSG, api_base=upstream.base_url,
                           api_key=SECRET))  # fmt: skip
    finally:
        upstream.close()


# -- abandoned streams -----------------------------------------------------------------------


@pytest.mark.parametrize("how", ["break", "close", "garbage"])
def test_an_abandoned_stream_is_cancelled_and_its_connection_closed(
    gateways, server, how: str
) -> None:
    gw = gateways()
    server.enqueue(Reply(text="alpha beta gamma delta epsilon zeta", chunk_delay=0.05))
    before = server.disconnects
    stream = gw.stream(model="gpt-4o-mini", messages=USER_MSG, **http(server))
    call_id = stream.call_id
    first = next(stream)
    if how == "close":
        stream.close()
    elif how == "break":
        for _ in stream:
            break
        stream.close()
    del stream
    gc.collect()
    row = stored(gw, call_id)
    assert row["status"] == "cancelled" and row["response_text"].startswith(first)
    deadline = time.monotonic() + 5
    while server.disconnects == before:  # the provider sees the connection go
        assert time.monotonic() < deadline, "the upstream connection was left open"
        time.sleep(0.02)


def test_an_async_consumer_that_is_cancelled_closes_the_upstream(gateways, server) -> None:
    gw = gateways()
    server.enqueue(Reply(text=" ".join(["word"] * 40), chunk_delay=0.05))
    before = server.disconnects

    async def run() -> str:
        stream = await gw.astream(model="gpt-4o-mini", messages=USER_MSG, **http(server))

        async def consume() -> None:
            async for _ in stream.chunks():
                pass

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.2)
        task.cancel()  # as a server's task is when its client goes away
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.2)  # the closing task runs
        return stream.call_id

    call_id = asyncio.run(run())
    assert stored(gw, call_id)["status"] == "cancelled"
    deadline = time.monotonic() + 5
    while server.disconnects == before:
        assert time.monotonic() < deadline, "the upstream connection was left open"
        time.sleep(0.02)


def test_model_names_remembered_are_bounded() -> None:
    """A server's clients choose model names: the routes remembered cannot grow forever."""
    from llmops.gateway.direct import MAX_ROUTES, DirectRoute
    from llmops.gateway.recorder import Call

    route = DirectRoute(lambda model: (model, "openai" if model.startswith("gpt") else None))

    def call(model: str, **params: Any) -> Call:
        return Call(id="x", model=model, messages=[], params=params, prompt=None, user=None,
                    session=None, tags=None, metadata=None, price=None)  # fmt: skip

    for i in range(MAX_ROUTES + 50):
        assert not route.accepts(call(f"m-{i}"))
    assert len(route._routes) <= MAX_ROUTES
    gpt = call("gpt-4o-mini", temperature=0)
    assert route.accepts(gpt)
    gpt.params["mock_response"] = "x"
    assert not route.accepts(gpt)


def test_reasoning_models_drop_sampling_settings_when_asked(gateways, server) -> None:
    gw = gateways()
    gw.complete(model="o3-mini", messages=USER_MSG, temperature=0, drop_params=True,
                **http(server))  # fmt: skip
    sent = server.requests[-1].body
    assert "temperature" not in sent and "drop_params" not in sent
    gw.complete(model="gpt-4o-mini", messages=USER_MSG, temperature=0, drop_params=True,
                **http(server))  # fmt: skip
    assert server.requests[-1].body["temperature"] == 0


def test_openai_names_route_as_litellm_routes_them_without_importing_it() -> None:
    """Every name the bundled map lists under openai, with and without ``openai/``, that
    the light route takes goes where litellm's get_llm_provider sends it."""
    from llmops import litellm_loader

    cost = litellm_loader.bundled_model_cost() or {}
    names = [name for name, entry in cost.items() if entry.get("litellm_provider") == "openai"]
    names += [f"openai/{name}" for name in names] + ["openai/my-own-finetune"]
    taken = {name: litellm_loader.bundled_openai_route(name) for name in names}
    assert sum(route is not None for route in taken.values()) > 300
    litellm = litellm_loader.load()
    for name, route in taken.items():
        if route is not None:
            assert tuple(litellm.get_llm_provider(name)[:2]) == route, name
    others = [
        "claude-3-5-haiku-20241022",
        "gemini/gemini-2.0-flash",
        "azure/gpt-4o",
        "mistral/mistral-large-latest",
        "gpt-mini-latest",
        "ft:o4-mini-2025-04-16",
    ]
    assert all(litellm_loader.bundled_openai_route(name) is None for name in others)


NO_LITELLM = """
import json, sys
from llmops import Gateway
gw = Gateway(sys.argv[1], home=sys.argv[2], prompts=sys.argv[2], direct=True)
done = gw.complete(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                   api_base=sys.argv[3], api_key="sk-x", num_retries=0)
gw.close()
print(json.dumps({"litellm": "litellm" in sys.modules, "cost": done.cost_usd,
                  "status": done.cost_status}))
"""


def test_a_direct_call_never_imports_litellm(tmp_path, server) -> None:
    """An OpenAI call on the direct route is sent, priced and recorded without litellm
    (a 4 s import): the eval runner's calls are, in a real process."""
    import json
    import subprocess
    import sys

    server.enqueue(Reply(text="hello", prompt_tokens=1000, completion_tokens=100))
    url = f"sqlite:///{tmp_path / 'calls.db'}"
    done = subprocess.run(
        [sys.executable, "-c", NO_LITELLM, url, str(tmp_path), server.base_url],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["litellm"] is False
    assert seen["status"] == "priced"
    assert seen["cost"] == pytest.approx((1000 * 0.15 + 100 * 0.60) / 1_000_000, rel=1e-9)
    with sa.create_engine(url).connect() as connection:
        row = connection.execute(sa.select(CALLS.c.provider, CALLS.c.cost_usd)).one()
    assert row.provider == "openai" and row.cost_usd == pytest.approx(seen["cost"])
