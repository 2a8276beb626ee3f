"""FakeLLMServer through real HTTP: litellm as the client, plus raw HTTP for the wire format."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from llmops.testing import FakeLLMServer, RecordedRequest, Reply
from llmops.testing._reply import split_chunks

OPENAI_MODEL = "openai/gpt-4o-mini"
ANTHROPIC_MODEL = "anthropic/claude-haiku-4-5"
# system: 3 words, user: 6 words -> (3 + 3) + (6 + 3) + 3 = 18 prompt tokens by default.
MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is the capital of France?"},
]
DEFAULT_PROMPT_TOKENS = 18
DEFAULT_TEXT = "Echo: What is the capital of France?"  # 7 words -> 7 completion tokens


@pytest.fixture(scope="module")
def shared_server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


@pytest.fixture
def server(shared_server: FakeLLMServer) -> FakeLLMServer:
    shared_server.reset()
    return shared_server


def openai_call(litellm: ModuleType, server: FakeLLMServer, **kwargs: Any) -> Any:
    params: dict[str, Any] = {
        "model": OPENAI_MODEL,
        "api_base": server.base_url,
        "api_key": "sk-test",
        "messages": MESSAGES,
        **kwargs,
    }
    return litellm.completion(**params)


def anthropic_call(litellm: ModuleType, server: FakeLLMServer, **kwargs: Any) -> Any:
    anthropic = {"model": ANTHROPIC_MODEL, "api_base": server.anthropic_base_url}
    return openai_call(litellm, server, **anthropic, api_key="sk-ant-test", **kwargs)


def raw_request(
    server: FakeLLMServer, method: str, path: str, body: Any = None
) -> tuple[int, dict[str, str], bytes]:
    """One request with the standard library client: status, lower-case headers, body."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        payload = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def sse_data(raw: bytes) -> list[str]:
    """The ``data:`` payloads of an SSE body, in order."""
    return [
        line.removeprefix("data: ")
        for line in raw.decode().split("\n")
        if line.startswith("data: ")
    ]


# --- OpenAI, non-streaming -----------------------------------------------------------------


def test_non_streaming_reply_text_usage_and_recorded_request(
    litellm: ModuleType, server: FakeLLMServer
) -> None:
    server.enqueue(
        Reply(
            text="Paris.",
            prompt_tokens=120,
            completion_tokens=30,
            cached_tokens=100,
            reasoning_tokens=12,
        )
    )
    before = time.time()
    response = openai_call(litellm, server, temperature=0.2)
    after = time.time()

    assert response.choices[0].message.content == "Paris."
    assert response.choices[0].finish_reason == "stop"
    assert response.model == "gpt-4o-mini"
    assert response.id.startswith("chatcmpl-")
    assert response.id.removeprefix("chatcmpl-").isdigit()
    usage = response.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (120, 30, 150)
    assert usage.prompt_tokens_details.cached_tokens == 100
    assert usage.completion_tokens_details.reasoning_tokens == 12

    [request] = server.requests
    assert isinstance(request, RecordedRequest)
    assert request.method == "POST"
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test"
    assert request.headers["content-type"] == "application/json"
    assert request.body["model"] == "gpt-4o-mini"
    assert request.body["messages"] == MESSAGES
    assert request.body["temperature"] == 0.2
    assert before <= request.received_at <= after


def test_default_reply_echoes_last_user_message_and_counts_words(
    litellm: ModuleType, server: FakeLLMServer
) -> None:
    response = openai_call(litellm, server)
    assert response.choices[0].message.content == DEFAULT_TEXT
    assert response.usage.prompt_tokens == DEFAULT_PROMPT_TOKENS
    assert response.usage.completion_tokens == 7
    assert response.usage.prompt_tokens_details.cached_tokens == 0

    # Content as a list of parts: the text parts count, joined by a space.
    parts = [
        {"role": "user", "content": "earlier question here"},
        {"role": "assistant", "content": "an answer"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "Describe"}, {"type": "text", "text": "it"}],
        },
    ]
    response = openai_call(litellm, server, messages=parts)
    assert response.choices[0].message.content == "Echo: Describe it"
    assert response.usage.prompt_tokens == (3 + 3) + (2 + 3) + (2 + 3) + 3
    assert response.usage.completion_tokens == 3


def test_computed_counts_never_undercut_cache_or_reasoning(
    litellm: ModuleType, server: FakeLLMServer
) -> None:
    server.enqueue(Reply(text="ok", cached_tokens=500, reasoning_tokens=40))
    usage = openai_call(litellm, server).usage
    assert usage.prompt_tokens == 500
    assert usage.prompt_tokens_details.cached_tokens == 500
    assert usage.completion_tokens == 40
    assert usage.completion_tokens_details.reasoning_tokens == 40


def test_reply_model_and_finish_reason(litellm: ModuleType, server: FakeLLMServer) -> None:
    server.enqueue(Reply(text="cut", model="gpt-4o-2024-08-06", finish_reason="length"))
    response = openai_call(litellm, server)
    assert response.model == "gpt-4o-2024-08-06"
    assert response.choices[0].finish_reason == "length"


def test_reply_without_usage_sends_no_usage_object(
    litellm: ModuleType, server: FakeLLMServer
) -> None:
    server.enqueue(Reply(text="no usage", include_usage=False))
    status, _, raw = raw_request(
        server, "POST", "/v1/chat/completions", {"model": "m", "messages": MESSAGES}
    )
    assert status == 200
    body = json.loads(raw)
    assert "usage" not in body
    assert body["choices"][0]["message"]["content"] == "no usage"

    # litellm turns a missing usage into zeros.
    server.enqueue(Reply(text="no usage", include_usage=False))
    usage = openai_call(litellm, server).usage
    assert (usage.prompt_tokens, usage.completion_tokens) == (0, 0)


# --- OpenAI, streaming ---------------------------------------------------------------------


def test_stream_chunks_join_to_text_and_usage_arrives(
    litellm: ModuleType, server: FakeLLMServer
) -> None:
    text = "  The capital\nof France is  Paris. "
    server.enqueue(
        Reply(
            text=text, prompt_tokens=50, completion_tokens=9, cached_tokens=20, reasoning_tokens=2
        )
    )
    chunks = list(openai_call(litellm, server, stream=True, stream_options={"include_usage": True}))
    contents = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta]
    assert "".join(piece or "" for piece in contents) == text
    assert [piece for piece in contents if piece] == split_chunks(text, None)
    assert len(split_chunks(text, None)) == 6  # one chunk per word
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    usages = [c.usage for c in chunks if getattr(c, "usage", None) is not None]
    assert len(usages) == 1
    assert (usages[0].prompt_tokens, usages[0].completion_tokens) == (50, 9)
    assert usages[0].prompt_tokens_details.cached_tokens == 20
    assert usages[0].completion_tokens_details.reasoning_tokens == 2
    assert server.requests[0].body["stream"] is True


def test_stream_with_chunk_count(litellm: ModuleType, server: FakeLLMServer) -> None:
    server.enqueue(Reply(text="one two three four five", chunks=2))
    chunks = list(openai_call(litellm, server, stream=True))
    contents = [c.choices[0].delta.content for c in chunks if c.choices]
    assert [piece for piece in contents if piece] == ["one two ", "three four five"]


def test_stream_wire_format(server: FakeLLMServer) -> None:
    request = {
        "model": "gpt-4o-mini",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    server.enqueue(Reply(text="a b", prompt_tokens=10, completion_tokens=2))
    status, headers, raw = raw_request(server, "POST", "/v1/chat/completions", request)
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    data = sse_data(raw)
    assert data[-1] == "[DONE]"
    events = [json.loads(d) for d in data[:-1]]
    assert {e["object"] for e in events} == {"chat.completion.chunk"}
    assert len({e["id"] for e in events}) == 1
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert [e["choices"][0]["delta"].get("content") for e in events[1:3]] == ["a ", "b"]
    assert events[3]["choices"][0]["finish_reason"] == "stop"
    assert events[4]["choices"] == []
    assert events[4]["usage"]["total_tokens"] == 12
    assert len(events) == 5

    # Without stream_options.include_usage: no usage chunk, no usage key.
    del request["stream_options"]
    server.enqueue(Reply(text="a b"))
    _, _, raw = raw_request(server, "POST", "/v1/chat/completions", request)
    data = sse_data(raw)
    assert data[-1] == "[DONE]"
    assert all("usage" not in json.loads(d) for d in data[:-1])
    assert all(json.loads(d)["choices"] for d in data[:-1])


def test_stream_reply_without_usage(litellm: ModuleType, server: FakeLLMServer) -> None:
    request = {
        "model": "gpt-4o-mini",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    server.enqueue(Reply(text="a b", include_usage=False))
    _, _, raw = raw_request(server, "POST", "/v1/chat/completions", request)
    events = [json.loads(d) for d in sse_data(raw)[:-1]]
    assert all(e["choices"] for e in events)
    assert all(e.get("usage") is None for e in events)

    # Through litellm: none of the server's numbers arrive. (litellm 1.110 then estimates a
    # usage itself with its tokenizer when include_usage was asked for; that is not ours.)
    server.enqueue(Reply(text="a b", prompt_tokens=777, completion_tokens=55, include_usage=False))
    chunks = list(openai_call(litellm, server, stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "a b"
    for chunk in chunks:
        usage = getattr(chunk, "usage", None)
        assert usage is None or (usage.prompt_tokens, usage.completion_tokens) != (777, 55)


# --- async ---------------------------------------------------------------------------------


def test_acompletion_and_async_stream(litellm: ModuleType, server: FakeLLMServer) -> None:
    server.enqueue(
        Reply(text="async answer", prompt_tokens=11, completion_tokens=2),
        Reply(text="async stream here", prompt_tokens=12, completion_tokens=3),
    )
    common: dict[str, Any] = {
        "model": OPENAI_MODEL,
        "api_base": server.base_url,
        "api_key": "sk-test",
        "messages": MESSAGES,
    }

    async def main() -> tuple[Any, list[Any]]:
        response = await litellm.acompletion(**common)
        stream = await litellm.acompletion(
            **common, stream=True, stream_options={"include_usage": True}
        )
        return response, [chunk async for chunk in stream]

    response, chunks = asyncio.run(main())
    assert response.choices[0].message.content == "async answer"
    assert response.usage.prompt_tokens == 11
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "async stream here"
    )
    usages = [c.usage for c in chunks if getattr(c, "usage", None) is not None]
    assert [(u.prompt_tokens, u.completion_tokens) for u in usages] == [(12, 3)]
    assert len(server.requests) == 2


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_name"), [(429, "RateLimitError"), (500, "InternalServerError")]
)
def test_error_status_raises_litellm_error(
    litellm: ModuleType, server: FakeLLMServer, status: int, error_name: str
) -> None:
    server.enqueue(Reply(status=status, text="scripted failure"), Reply(text="after"))
    with pytest.raises(getattr(litellm, error_name)) as caught:
        openai_call(litellm, server, num_retries=0, max_retries=0)
    assert "scripted failure" in str(caught.value)
    assert len(server.requests) == 1
    # The error consumed its queue slot; the next call gets the next reply.
    assert openai_call(litellm, server).choices[0].message.content == "after"


def test_error_wire_format(server: FakeLLMServer) -> None:
    request = {"model": "m", "messages": MESSAGES}
    server.enqueue(Reply(status=429), Reply(status=500), Reply(status=429))
    status, headers, raw = raw_request(server, "POST", "/v1/chat/completions", request)
    assert status == 429
    assert headers["retry-after"] == "0"
    error = json.loads(raw)["error"]
    assert error["type"] == "rate_limit_error"
    assert error["code"] == "rate_limit_exceeded"
    assert error["message"]

    status, headers, raw = raw_request(server, "POST", "/v1/chat/completions", request)
    assert status == 500
    assert "retry-after" not in headers
    assert json.loads(raw)["error"]["type"] == "server_error"

    status, headers, raw = raw_request(server, "POST", "/v1/messages", request)
    assert status == 429
    assert headers["retry-after"] == "0"
    assert json.loads(raw) == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "Fake error (HTTP 429)"},
    }


def test_other_endpoints(server: FakeLLMServer) -> None:
    status, _, raw = raw_request(server, "GET", "/health")
    assert (status, raw) == (200, b"ok")
    assert server.requests == []  # readiness probes are not recorded

    server.route("my-model", Reply())
    status, _, raw = raw_request(server, "GET", "/v1/models")
    assert status == 200
    ids = [model["id"] for model in json.loads(raw)["data"]]
    assert "gpt-4o-mini" in ids
    assert "my-model" in ids

    status, _, raw = raw_request(server, "POST", "/v1/completions", {"model": "m"})
    assert status == 404
    assert "/v1/completions" in json.loads(raw)["error"]["message"]
    status, _, _ = raw_request(server, "GET", "/nowhere")
    assert status == 404
    assert [r.path for r in server.requests] == ["/v1/models", "/v1/completions", "/nowhere"]

    server.enqueue(Reply(text="kept"))
    status, _, raw = raw_request(server, "POST", "/v1/chat/completions", b"{not json")
    assert status == 400
    assert json.loads(raw)["error"]["type"] == "invalid_request_error"
    assert server.requests[-1].body is None
    # A rejected request does not use up a queued reply.
    status, _, raw = raw_request(
        server, "POST", "/v1/chat/completions", {"model": "m", "messages": MESSAGES}
    )
    assert json.loads(raw)["choices"][0]["message"]["content"] == "kept"


# --- timing --------------------------------------------------------------------------------


def test_delay_holds_the_whole_response(litellm: ModuleType, server: FakeLLMServer) -> None:
    server.enqueue(Reply(text="late", delay=0.2))
    start = time.time()
    response = openai_call(litellm, server)
    elapsed = time.time() - start
    assert response.choices[0].message.content == "late"
    assert 0.2 <= elapsed < 1.5
    # The request is recorded when it arrives, before the delay.
    assert server.requests[0].received_at - start < 0.15


def test_ttft_and_chunk_delay_are_measurable(litellm: ModuleType, server: FakeLLMServer) -> None:
    server.enqueue(Reply(text="one two three", ttft=0.2, chunk_delay=0.05))
    start = time.perf_counter()
    stream = openai_call(litellm, server, stream=True)
    arrivals = []
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.perf_counter() - start)
    assert len(arrivals) == 3
    assert 0.2 <= arrivals[0] < 1.0
    assert arrivals[1] - arrivals[0] >= 0.04
    assert arrivals[2] - arrivals[1] >= 0.04

    # Without timing options the same stream is immediate.
    server.enqueue(Reply(text="one two three"))
    start = time.perf_counter()
    list(openai_call(litellm, server, stream=True))
    assert time.perf_counter() - start < 0.15


def test_calls_are_fast(litellm: ModuleType, server: FakeLLMServer) -> None:
    # About 5 ms each here; a response written in pieces with Nagle on stalls ~40 ms.
    openai_call(litellm, server)
    timings = []
    for _ in range(15):
        start = time.perf_counter()
        openai_call(litellm, server)
        timings.append(time.perf_counter() - start)
    assert sorted(timings)[len(timings) // 2] < 0.03


# --- scripting -----------------------------------------------------------------------------


def test_routes_take_precedence_over_the_queue(litellm: ModuleType, server: FakeLLMServer) -> None:
    server.enqueue(Reply(text="first"), Reply(text="second"))
    server.route("gpt-4o", Reply(text="routed"))

    def answer(model: str) -> str:
        return openai_call(litellm, server, model=model).choices[0].message.content

    assert answer("openai/gpt-4o") == "routed"
    assert answer("openai/gpt-4o-mini") == "first"
    assert answer("openai/gpt-4o") == "routed"
    assert answer("openai/gpt-4o-mini") == "second"
    assert answer("openai/gpt-4o-mini") == DEFAULT_TEXT  # queue empty: the default reply
    server.route("gpt-4o", Reply(text="rerouted"))
    assert answer("openai/gpt-4o") == "rerouted"
    assert [r.body["model"] for r in server.requests] == [
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4o-mini",
        "gpt-4o",
    ]


def test_reset_clears_queue_routes_and_requests(litellm: ModuleType, server: FakeLLMServer) -> None:
    server.enqueue(Reply(text="queued"))
    server.route("gpt-4o-mini", Reply(text="routed"))
    assert openai_call(litellm, server).choices[0].message.content == "routed"
    assert len(server.requests) == 1
    server.reset()
    assert server.requests == []
    assert openai_call(litellm, server).choices[0].message.content == DEFAULT_TEXT
    assert len(server.requests) == 1


def test_enqueue_and_route_reject_non_replies(server: FakeLLMServer) -> None:
    with pytest.raises(TypeError):
        server.enqueue("hello")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        server.route("m", {"text": "hello"})  # type: ignore[arg-type]


# --- responder -----------------------------------------------------------------------------


def test_responder_comes_after_routes_and_queue_and_before_the_echo(
    litellm: ModuleType,
) -> None:
    seen: list[RecordedRequest] = []

    def responder(request: RecordedRequest) -> Reply | None:
        seen.append(request)
        # (Anthropic-route bodies may carry the content as a list of parts.)
        if "France" in json.dumps(request.body["messages"][-1]):
            return Reply(text="Paris (responder).", prompt_tokens=5, completion_tokens=3)
        return None  # falls through to the echo

    with FakeLLMServer(responder=responder) as fake:
        assert fake.responder is responder
        fake.route("gpt-4o", Reply(text="routed"))
        fake.enqueue(Reply(text="queued"))

        def answer(
            model: str = OPENAI_MODEL, question: str = "What is the capital of France?"
        ) -> Any:
            messages = [{"role": "user", "content": question}]
            return openai_call(litellm, fake, model=model, messages=messages)

        assert answer("openai/gpt-4o").choices[0].message.content == "routed"
        assert answer().choices[0].message.content == "queued"
        assert seen == []  # routes and the queue answered: the responder was not asked
        response = answer()
        assert response.choices[0].message.content == "Paris (responder)."
        assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (5, 3)
        assert answer(question="And of Spain?").choices[0].message.content == "Echo: And of Spain?"

        # The responder gets the recorded request, the same object the server keeps.
        assert len(seen) == 2
        assert seen[0] is fake.requests[2]
        assert seen[0].path == "/v1/chat/completions"
        assert seen[0].body["model"] == "gpt-4o-mini"

        # Anthropic route, streamed: the responder answers there too.
        stream = anthropic_call(litellm, fake, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in stream) == "Paris (responder)."
        assert seen[-1].path == "/v1/messages"


def test_set_responder_replaces_and_removes_it_and_reset_keeps_it(
    litellm: ModuleType, server: FakeLLMServer
) -> None:
    try:
        server.set_responder(lambda request: Reply(text="one"))
        assert openai_call(litellm, server).choices[0].message.content == "one"
        server.set_responder(lambda request: Reply(text="two"))
        server.reset()  # forgets requests, queue and routes, not the responder
        assert openai_call(litellm, server).choices[0].message.content == "two"
        assert len(server.requests) == 1
        server.set_responder(None)
        assert server.responder is None
        assert openai_call(litellm, server).choices[0].message.content == DEFAULT_TEXT
    finally:
        server.set_responder(None)


def test_failing_responder_gives_http_500(
    litellm: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(request: RecordedRequest) -> Reply:
        raise KeyError("no such prompt")

    with FakeLLMServer(responder=broken) as fake:
        status, _, raw = raw_request(fake, "POST", "/v1/chat/completions", {"messages": MESSAGES})
        assert status == 500
        assert "KeyError" in json.loads(raw)["error"]["message"]
        with pytest.raises(litellm.InternalServerError, match="no such prompt"):
            openai_call(litellm, fake, num_retries=0, max_retries=0)
        assert len(fake.requests) == 2  # the requests are still recorded

        fake.set_responder(lambda request: "not a reply")
        status, _, raw = raw_request(fake, "POST", "/v1/chat/completions", {"messages": MESSAGES})
        assert status == 500
        assert "must return a Reply or None, got str" in json.loads(raw)["error"]["message"]

        # The server keeps working.
        fake.set_responder(None)
        assert openai_call(litellm, fake).choices[0].message.content == DEFAULT_TEXT
    assert "KeyError" in capsys.readouterr().err


def test_responder_must_be_callable() -> None:
    with pytest.raises(TypeError, match="callable"):
        FakeLLMServer(responder="echo")  # type: ignore[arg-type]
    fake = FakeLLMServer()
    with pytest.raises(TypeError, match="callable"):
        fake.set_responder(42)  # type: ignore[arg-type]


# --- Anthropic -----------------------------------------------------------------------------


def test_anthropic_usage_mapping_in_litellm(litellm: ModuleType, server: FakeLLMServer) -> None:
    server.enqueue(
        Reply(
            text="Bonjour.",
            prompt_tokens=1000,
            cached_tokens=600,
            cache_write_tokens=200,
            completion_tokens=50,
        )
    )
    response = anthropic_call(litellm, server)
    assert response.choices[0].message.content == "Bonjour."
    assert response.choices[0].finish_reason == "stop"

    # On the wire (Anthropic style) input_tokens excludes cache reads and writes: 200.
    # litellm 1.110.2 maps it back to a total:
    #   usage.prompt_tokens = input_tokens + cache_read + cache_creation  (= 1000: includes both)
    #   usage.prompt_tokens_details.cached_tokens = cache_read_input_tokens (600)
    #   usage.cache_read_input_tokens = 600, usage.cache_creation_input_tokens = 200
    #   usage.prompt_tokens_details.cache_creation_tokens = 200 (also .cache_write_tokens)
    #   usage.prompt_tokens_details.text_tokens = input_tokens (200)
    #   usage.completion_tokens = output_tokens (50)
    usage = response.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (1000, 50, 1050)
    assert usage.prompt_tokens_details.cached_tokens == 600
    assert usage.cache_read_input_tokens == 600
    assert usage.cache_creation_input_tokens == 200
    assert usage.prompt_tokens_details.cache_creation_tokens == 200
    assert usage.prompt_tokens_details.text_tokens == 200

    [request] = server.requests
    assert request.path == "/v1/messages"
    assert request.headers["x-api-key"] == "sk-ant-test"
    assert "anthropic-version" in request.headers
    assert request.body["model"] == "claude-haiku-4-5"
    assert request.body["messages"][-1]["role"] == "user"


def test_anthropic_wire_format(server: FakeLLMServer) -> None:
    server.enqueue(Reply(text="hi", prompt_tokens=1000, cached_tokens=600, cache_write_tokens=200))
    request = {"model": "claude-haiku-4-5", "max_tokens": 10, "messages": MESSAGES[1:]}
    status, _, raw = raw_request(server, "POST", "/v1/messages", request)
    assert status == 200
    body = json.loads(raw)
    assert body["type"] == "message"
    assert body["role"] == "assistant"
    assert body["model"] == "claude-haiku-4-5"
    assert body["content"] == [{"type": "text", "text": "hi"}]
    assert body["stop_reason"] == "end_turn"
    assert body["usage"] == {
        "input_tokens": 200,
        "output_tokens": 1,
        "cache_creation_input_tokens": 200,
        "cache_read_input_tokens": 600,
    }


def test_anthropic_default_counts_match_openai_route(
    litellm: ModuleType, server: FakeLLMServer
) -> None:
    # litellm moves the system message into Anthropic's `system`; it still counts as one.
    response = anthropic_call(litellm, server)
    assert response.choices[0].message.content == DEFAULT_TEXT
    assert response.usage.prompt_tokens == DEFAULT_PROMPT_TOKENS
    assert response.usage.completion_tokens == 7
    assert "system" in server.requests[0].body


def test_anthropic_stream(litellm: ModuleType, server: FakeLLMServer) -> None:
    text = "Le ciel est bleu."
    server.enqueue(
        Reply(
            text=text,
            prompt_tokens=1000,
            cached_tokens=600,
            cache_write_tokens=200,
            completion_tokens=50,
            finish_reason="length",
        )
    )
    chunks = list(
        anthropic_call(litellm, server, stream=True, stream_options={"include_usage": True})
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    usages = [c.usage for c in chunks if getattr(c, "usage", None) is not None]
    assert len(usages) == 1
    assert (usages[0].prompt_tokens, usages[0].completion_tokens) == (1000, 50)
    assert usages[0].cache_read_input_tokens == 600
    assert usages[0].cache_creation_input_tokens == 200
    assert server.requests[0].body["stream"] is True


def test_anthropic_stream_wire_events(server: FakeLLMServer) -> None:
    request = {"model": "claude-x", "max_tokens": 10, "messages": MESSAGES[1:], "stream": True}
    server.enqueue(Reply(text="a b", prompt_tokens=30, cached_tokens=10, completion_tokens=2))
    status, headers, raw = raw_request(server, "POST", "/v1/messages", request)
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    names = [line.removeprefix("event: ") for line in raw.decode().split("\n") if "event:" in line]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    events = [json.loads(d) for d in sse_data(raw)]
    assert [e["type"] for e in events] == names
    assert events[0]["message"]["usage"]["input_tokens"] == 20
    assert events[0]["message"]["usage"]["cache_read_input_tokens"] == 10
    assert [e["delta"]["text"] for e in events[3:5]] == ["a ", "b"]
    assert events[6]["usage"] == {"output_tokens": 2}
    assert events[6]["delta"]["stop_reason"] == "end_turn"


def test_anthropic_errors(litellm: ModuleType, server: FakeLLMServer) -> None:
    server.enqueue(Reply(status=429), Reply(status=500))
    with pytest.raises(litellm.RateLimitError):
        anthropic_call(litellm, server, num_retries=0, max_retries=0)
    with pytest.raises(litellm.InternalServerError):
        anthropic_call(litellm, server, num_retries=0, max_retries=0)
    assert len(server.requests) == 2


# --- robustness and lifecycle --------------------------------------------------------------


def test_abandoned_stream_does_not_break_the_server(
    litellm: ModuleType, server: FakeLLMServer, capfd: pytest.CaptureFixture[str]
) -> None:
    words = " ".join(f"w{i}" for i in range(200))
    server.enqueue(Reply(text=words, chunk_delay=0.005))
    stream = openai_call(litellm, server, stream=True)
    received = [next(stream), next(stream)]
    assert received[1].choices[0].delta.content == "w0 "
    stream.close()

    deadline = time.monotonic() + 3
    while server._disconnects == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server._disconnects >= 1  # the server saw the client go and stopped writing

    server.enqueue(Reply(text="still alive"))
    assert openai_call(litellm, server).choices[0].message.content == "still alive"
    assert len(server.requests) == 2
    assert capfd.readouterr().err == ""


def test_raw_client_disconnect_mid_stream(server: FakeLLMServer) -> None:
    server.enqueue(Reply(text=" ".join(["x"] * 100), ttft=0.05, chunk_delay=0.005))
    before = server._disconnects
    body = json.dumps({"model": "m", "messages": MESSAGES, "stream": True}).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        assert sock.recv(100).startswith(b"HTTP/1.1 200")
    deadline = time.monotonic() + 3
    while server._disconnects == before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server._disconnects == before + 1
    status, _, _ = raw_request(server, "GET", "/health")
    assert status == 200


def test_lifecycle(litellm: ModuleType) -> None:
    server = FakeLLMServer()
    with pytest.raises(RuntimeError):
        _ = server.base_url
    server.start()
    try:
        port = server.port
        assert port > 0
        assert server.base_url == f"http://127.0.0.1:{port}/v1"
        assert server.anthropic_base_url == f"http://127.0.0.1:{port}"
        with pytest.raises(RuntimeError):
            server.start()
        # A second server gets another free port.
        with FakeLLMServer() as other:
            assert other.port != port
        assert openai_call(litellm, server).choices[0].message.content == DEFAULT_TEXT
    finally:
        server.stop()
    server.stop()  # idempotent
    assert "stopped" in repr(server)
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_reply_validation() -> None:
    with pytest.raises(ValueError, match="total input"):
        Reply(prompt_tokens=10, cached_tokens=8, cache_write_tokens=3)
    with pytest.raises(ValueError, match="reasoning"):
        Reply(completion_tokens=5, reasoning_tokens=6)
    with pytest.raises(ValueError):
        Reply(chunks=0)
    with pytest.raises(ValueError):
        Reply(delay=-1)
    with pytest.raises(ValueError):
        Reply(status=42)
    with pytest.raises(AttributeError):
        Reply().text = "frozen"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "chunks", "expected"),
    [
        ("a b c", None, ["a ", "b ", "c"]),
        ("  a  b\n", None, ["  a  ", "b\n"]),
        ("a b c d", 2, ["a b ", "c d"]),
        ("a b c", 3, ["a ", "b ", "c"]),
        ("abc", 5, ["a", "b", "c"]),
        ("ab cd", 4, ["a", "b", " ", "cd"]),
        ("", None, []),
        ("   ", None, ["   "]),
    ],
)
def test_split_chunks(text: str, chunks: int | None, expected: list[str]) -> None:
    pieces = split_chunks(text, chunks)
    assert pieces == expected
    assert "".join(pieces) == text
