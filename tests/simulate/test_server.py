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

from llmops.simulate import FakeLLMServer, RecordedRequest, Reply
from llmops.simulate._reply import resolve, split_chunks

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


def test_usage_fields_are_sent_as_they_are_and_usage_unasked_ends_a_stream(
    litellm: ModuleType, server: FakeLLMServer
) -> None:
    """Perplexity's usage shape: its own fields beside the standard ones, no details
    objects, and a usage chunk in a stream that did not ask for one."""
    fields = {"citation_tokens": 70, "num_search_queries": 3, "reasoning_tokens": 500,
              "prompt_tokens_details": None, "completion_tokens_details": None}  # fmt: skip
    request = {"model": "sonar", "messages": MESSAGES}
    server.enqueue(Reply(text="a b", prompt_tokens=10, completion_tokens=2, usage_fields=fields))
    _, _, raw = raw_request(server, "POST", "/v1/chat/completions", request)
    assert json.loads(raw)["usage"] == {
        "prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12,
        "citation_tokens": 70, "num_search_queries": 3, "reasoning_tokens": 500,
    }  # fmt: skip
    server.enqueue(Reply(text="a b", prompt_tokens=10, completion_tokens=2, usage_fields=fields,
                         usage_unasked=True))  # fmt: skip
    _, _, raw = raw_request(server, "POST", "/v1/chat/completions", {**request, "stream": True})
    events = [json.loads(d) for d in sse_data(raw)[:-1]]
    assert events[-1]["choices"] == [] and events[-1]["usage"]["num_search_queries"] == 3

    # Through litellm (Perplexity, which is sent no stream_options): the extras of usage,
    # reasoning moved into the details and not added to completion_tokens
    model, base = "perplexity/sonar-deep-research", server.base_url
    server.enqueue(Reply(text="a b", prompt_tokens=10, completion_tokens=2, usage_fields=fields))
    response = litellm.completion(model=model, api_base=base, api_key="k", messages=MESSAGES)
    usage = response.usage
    assert (usage.completion_tokens, usage.completion_tokens_details.reasoning_tokens) == (2, 500)
    assert (usage.citation_tokens, usage.num_search_queries) == (70, 3)
    server.enqueue(Reply(text="a b", prompt_tokens=10, completion_tokens=2, usage_fields=fields,
                         usage_unasked=True))  # fmt: skip
    stream = litellm.completion(model=model, api_base=base, api_key="k", messages=MESSAGES,
                                stream=True)  # fmt: skip
    list(stream)
    assert "stream_options" not in server.requests[-1].body
    sent = [chunk.usage for chunk in stream.chunks if getattr(chunk, "usage", None)]
    assert [(u.completion_tokens, u.citation_tokens) for u in sent] == [(2, 70)]
    with pytest.raises(ValueError, match="usage_fields"):
        Reply(usage_fields=["citation_tokens"])  # type: ignore[arg-type]


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
    # chunk k leaves the server at ttft + k * chunk_delay at the earliest; the gaps the
    # client sees may be shorter (a late first chunk), never the arrivals earlier
    assert arrivals[1] >= 0.25 - 0.002 and arrivals[2] >= 0.30 - 0.002, arrivals

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


# --- billing dimensions: OpenAI --------------------------------------------------------------


def test_openai_service_tier_modalities_and_served_model(
    litellm: ModuleType, server: FakeLLMServer
) -> None:
    server.enqueue(
        Reply(
            text="Bonjour.",
            prompt_tokens=1000,
            cached_tokens=100,
            audio_input_tokens=300,
            image_input_tokens=50,
            completion_tokens=500,
            reasoning_tokens=100,
            audio_output_tokens=200,
            image_output_tokens=10,
            service_tier="flex",
            model="gpt-4o-mini-2024-07-18",
        )
    )
    response = openai_call(litellm, server, service_tier="flex")
    assert response.model == "gpt-4o-mini-2024-07-18"  # what served the call
    assert response.service_tier == "flex"
    usage = response.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (1000, 500, 1500)
    assert usage.prompt_tokens_details.cached_tokens == 100
    assert usage.prompt_tokens_details.audio_tokens == 300
    assert usage.prompt_tokens_details.image_tokens == 50
    assert usage.completion_tokens_details.reasoning_tokens == 100
    assert usage.completion_tokens_details.audio_tokens == 200
    assert usage.completion_tokens_details.image_tokens == 10
    # The requested tier reaches the server as OpenAI's `service_tier` parameter.
    assert server.requests[0].body["service_tier"] == "flex"


def test_openai_stream_service_tier_and_modalities(
    litellm: ModuleType, server: FakeLLMServer
) -> None:
    server.enqueue(
        Reply(
            text="a b c",
            prompt_tokens=900,
            audio_input_tokens=400,
            completion_tokens=300,
            audio_output_tokens=250,
            service_tier="priority",
        )
    )
    chunks = list(openai_call(litellm, server, stream=True, stream_options={"include_usage": True}))
    assert {chunk.service_tier for chunk in chunks} == {"priority"}
    assert litellm.stream_chunk_builder(chunks).service_tier == "priority"
    [usage] = [c.usage for c in chunks if getattr(c, "usage", None) is not None]
    assert (usage.prompt_tokens, usage.completion_tokens) == (900, 300)
    assert usage.prompt_tokens_details.audio_tokens == 400
    assert usage.prompt_tokens_details.image_tokens is None
    assert usage.completion_tokens_details.audio_tokens == 250


def test_openai_wire_format_of_billing_fields(server: FakeLLMServer) -> None:
    request = {"model": "gpt-4o-audio-preview", "messages": MESSAGES}
    # Defaults: no service_tier, no image_tokens, audio_tokens 0 (as before).
    server.enqueue(Reply(text="x", prompt_tokens=10, completion_tokens=1))
    body = json.loads(raw_request(server, "POST", "/v1/chat/completions", request)[2])
    assert "service_tier" not in body
    assert body["usage"]["prompt_tokens_details"] == {"cached_tokens": 0, "audio_tokens": 0}
    assert "image_tokens" not in body["usage"]["completion_tokens_details"]

    server.enqueue(
        Reply(
            text="x",
            prompt_tokens=10,
            audio_input_tokens=4,
            image_input_tokens=3,
            completion_tokens=9,
            audio_output_tokens=5,
            image_output_tokens=2,
            service_tier="default",
        )
    )
    body = json.loads(raw_request(server, "POST", "/v1/chat/completions", request)[2])
    assert body["service_tier"] == "default"
    assert body["usage"]["prompt_tokens_details"] == {
        "cached_tokens": 0,
        "audio_tokens": 4,
        "image_tokens": 3,
    }
    details = body["usage"]["completion_tokens_details"]
    assert (details["audio_tokens"], details["image_tokens"]) == (5, 2)

    server.enqueue(Reply(text="x y", service_tier="flex"))
    stream_request = {**request, "stream": True, "stream_options": {"include_usage": True}}
    _, _, raw = raw_request(server, "POST", "/v1/chat/completions", stream_request)
    events = [json.loads(d) for d in sse_data(raw)[:-1]]
    assert {e["service_tier"] for e in events} == {"flex"}


# --- billing dimensions: Anthropic -----------------------------------------------------------


def test_anthropic_cache_split_service_tier_and_web_search(
    litellm: ModuleType, server: FakeLLMServer
) -> None:
    server.enqueue(
        Reply(
            text="Bonjour.",
            prompt_tokens=1000,
            cached_tokens=100,
            cache_write_tokens=300,
            cache_write_1h_tokens=200,
            completion_tokens=50,
            service_tier="priority",
            web_search_requests=2,
        )
    )
    response = anthropic_call(litellm, server)
    usage = response.usage
    assert (usage.prompt_tokens, usage.completion_tokens) == (1000, 50)
    assert usage.cache_read_input_tokens == 100
    assert usage.cache_creation_input_tokens == 300
    details = usage.prompt_tokens_details
    assert (details.cached_tokens, details.cache_creation_tokens, details.text_tokens) == (
        100,
        300,
        600,
    )
    split = details.cache_creation_token_details
    assert (split.ephemeral_5m_input_tokens, split.ephemeral_1h_input_tokens) == (100, 200)
    assert usage.server_tool_use.web_search_requests == 2
    # Anthropic reports the tier in usage; litellm 1.110.2 keeps it there only.
    assert usage.service_tier == "priority"
    assert getattr(response, "service_tier", None) is None


def test_anthropic_without_split_leaves_the_details_unset(
    litellm: ModuleType, server: FakeLLMServer
) -> None:
    server.enqueue(Reply(text="x", prompt_tokens=500, cache_write_tokens=400))
    usage = anthropic_call(litellm, server).usage
    assert usage.cache_creation_input_tokens == 400
    assert getattr(usage.prompt_tokens_details, "cache_creation_token_details", None) is None
    assert getattr(usage, "server_tool_use", None) is None
    assert getattr(usage, "service_tier", None) is None


def test_anthropic_wire_format_of_billing_fields(server: FakeLLMServer) -> None:
    server.enqueue(
        Reply(
            text="hi",
            prompt_tokens=1000,
            cached_tokens=600,
            cache_write_tokens=200,
            cache_write_1h_tokens=0,
            service_tier="batch",
            web_search_requests=1,
        )
    )
    request = {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": MESSAGES[1:]}
    body = json.loads(raw_request(server, "POST", "/v1/messages", request)[2])
    assert body["usage"] == {
        "input_tokens": 200,
        "output_tokens": 1,
        "cache_creation_input_tokens": 200,
        "cache_read_input_tokens": 600,
        "cache_creation": {"ephemeral_5m_input_tokens": 200, "ephemeral_1h_input_tokens": 0},
        "server_tool_use": {"web_search_requests": 1},
        "service_tier": "batch",
    }

    server.enqueue(
        Reply(
            text="a b",
            prompt_tokens=100,
            cache_write_tokens=30,
            cache_write_1h_tokens=30,
            completion_tokens=2,
            service_tier="standard",
            web_search_requests=3,
        )
    )
    _, _, raw = raw_request(server, "POST", "/v1/messages", {**request, "stream": True})
    events = [json.loads(d) for d in sse_data(raw)]
    start_usage = events[0]["message"]["usage"]
    assert start_usage["cache_creation"] == {
        "ephemeral_5m_input_tokens": 0,
        "ephemeral_1h_input_tokens": 30,
    }
    assert start_usage["service_tier"] == "standard"
    assert "server_tool_use" not in start_usage
    assert events[-2]["usage"] == {
        "output_tokens": 2,
        "server_tool_use": {"web_search_requests": 3},
    }


def test_anthropic_stream_cache_split_and_web_search(
    litellm: ModuleType, server: FakeLLMServer
) -> None:
    server.enqueue(
        Reply(
            text="Le ciel est bleu.",
            prompt_tokens=2000,
            cached_tokens=1000,
            cache_write_tokens=800,
            cache_write_1h_tokens=500,
            completion_tokens=40,
            service_tier="priority",
            web_search_requests=1,
        )
    )
    chunks = list(
        anthropic_call(litellm, server, stream=True, stream_options={"include_usage": True})
    )
    [usage] = [c.usage for c in chunks if getattr(c, "usage", None) is not None]
    assert (usage.prompt_tokens, usage.completion_tokens) == (2000, 40)
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (1000, 800)
    split = usage.prompt_tokens_details.cache_creation_token_details
    assert (split.ephemeral_5m_input_tokens, split.ephemeral_1h_input_tokens) == (300, 500)
    assert usage.server_tool_use.web_search_requests == 1
    # litellm 1.110.2 drops the tier from the stream's usage; it survives only in the hidden
    # usage of the chunk made from message_delta.
    assert getattr(usage, "service_tier", None) is None
    hidden = [c._hidden_params.get("usage") for c in chunks if c._hidden_params.get("usage")]
    assert [u.service_tier for u in hidden] == ["priority"]


# --- Gemini ----------------------------------------------------------------------------------

GEMINI_MODEL = "gemini/gemini-2.5-pro"


def gemini_call(litellm: ModuleType, server: FakeLLMServer, **kwargs: Any) -> Any:
    gemini = {"model": GEMINI_MODEL, "api_base": server.gemini_base_url}
    return openai_call(litellm, server, **{**gemini, "api_key": "gk-test", **kwargs})


def test_gemini_usage_mapping_in_litellm(litellm: ModuleType, server: FakeLLMServer) -> None:
    server.enqueue(
        Reply(
            text="Paris.",
            prompt_tokens=250_000,
            cached_tokens=100_000,
            audio_input_tokens=3000,
            image_input_tokens=500,
            completion_tokens=5000,
            reasoning_tokens=4000,
            service_tier="priority",
            traffic_type="ON_DEMAND_PRIORITY",
            model="gemini-2.5-pro-preview-06-05",
        )
    )
    response = gemini_call(litellm, server)
    assert response.choices[0].message.content == "Paris."
    assert response.choices[0].finish_reason == "stop"
    assert response.model == "gemini-2.5-pro-preview-06-05"  # from modelVersion
    assert response.service_tier == "priority"  # from the x-gemini-service-tier header
    assert response._hidden_params["provider_specific_fields"]["traffic_type"] == (
        "ON_DEMAND_PRIORITY"
    )
    usage = response.usage
    # candidatesTokenCount (1000) excludes the thoughts (4000); litellm adds them back.
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (
        250_000,
        5000,
        255_000,
    )
    assert usage.completion_tokens_details.reasoning_tokens == 4000
    assert usage.completion_tokens_details.text_tokens == 1000
    details = usage.prompt_tokens_details
    assert details.cached_tokens == 100_000
    assert usage.cache_read_input_tokens == 100_000
    assert (details.audio_tokens, details.image_tokens) == (3000, 500)
    assert details.text_tokens == 250_000 - 3000 - 500  # cached text tokens included
    assert details.cached_tokens_details.text_tokens == 100_000

    [request] = server.requests
    assert request.path == "/v1beta/models/gemini-2.5-pro:generateContent"
    assert request.headers["x-goog-api-key"] == "gk-test"
    assert request.body["contents"] == [
        {"role": "user", "parts": [{"text": "What is the capital of France?"}]}
    ]
    assert "system_instruction" in request.body or "systemInstruction" in request.body


def test_gemini_default_counts_match_openai_route(
    litellm: ModuleType, server: FakeLLMServer
) -> None:
    response = gemini_call(litellm, server)
    assert response.choices[0].message.content == DEFAULT_TEXT
    assert response.usage.prompt_tokens == DEFAULT_PROMPT_TOKENS  # systemInstruction counts
    assert response.usage.completion_tokens == 7
    assert response.usage.completion_tokens_details.reasoning_tokens is None
    assert response.usage.prompt_tokens_details.audio_tokens is None
    assert getattr(response, "service_tier", None) is None


def test_gemini_audio_and_image_output(litellm: ModuleType, server: FakeLLMServer) -> None:
    server.enqueue(
        Reply(text="x", completion_tokens=2000, audio_output_tokens=1200, image_output_tokens=700)
    )
    details = gemini_call(litellm, server, model="gemini/gemini-2.5-flash").usage
    details = details.completion_tokens_details
    assert (details.audio_tokens, details.image_tokens, details.text_tokens) == (1200, 700, 100)
    assert server.requests[0].path == "/v1beta/models/gemini-2.5-flash:generateContent"


def test_gemini_stream(litellm: ModuleType, server: FakeLLMServer) -> None:
    text = "Le ciel est bleu."
    server.enqueue(
        Reply(
            text=text,
            prompt_tokens=210_000,
            cached_tokens=10_000,
            audio_input_tokens=1000,
            completion_tokens=900,
            reasoning_tokens=800,
            service_tier="flex",
            traffic_type="ON_DEMAND_FLEX",
            finish_reason="length",
        )
    )
    chunks = list(gemini_call(litellm, server, stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    [usage] = [c.usage for c in chunks if getattr(c, "usage", None) is not None]
    assert (usage.prompt_tokens, usage.completion_tokens) == (210_000, 900)
    assert usage.completion_tokens_details.reasoning_tokens == 800
    assert usage.prompt_tokens_details.cached_tokens == 10_000
    assert usage.prompt_tokens_details.audio_tokens == 1000
    assert chunks[-1].service_tier == "flex"
    traffic = [
        c._hidden_params.get("provider_specific_fields", {}).get("traffic_type") for c in chunks
    ]
    assert "ON_DEMAND_FLEX" in traffic
    [request] = server.requests
    assert request.path == "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"


def test_gemini_wire_format(server: FakeLLMServer) -> None:
    request = {
        "systemInstruction": {"parts": [{"text": "You are terse."}]},
        "contents": [{"role": "user", "parts": [{"text": "What is the capital of France?"}]}],
    }
    path = "/v1beta/models/gemini-2.5-pro:generateContent"
    status, headers, raw = raw_request(server, "POST", path, request)
    assert status == 200
    assert "x-gemini-service-tier" not in headers
    body = json.loads(raw)
    assert body["candidates"] == [
        {
            "content": {"parts": [{"text": DEFAULT_TEXT}], "role": "model"},
            "finishReason": "STOP",
            "index": 0,
        }
    ]
    assert body["modelVersion"] == "gemini-2.5-pro"
    assert body["usageMetadata"] == {
        "promptTokenCount": DEFAULT_PROMPT_TOKENS,
        "candidatesTokenCount": 7,
        "totalTokenCount": DEFAULT_PROMPT_TOKENS + 7,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": DEFAULT_PROMPT_TOKENS}],
    }

    server.enqueue(
        Reply(
            text="x",
            prompt_tokens=100,
            cached_tokens=40,
            audio_input_tokens=30,
            image_input_tokens=20,
            completion_tokens=60,
            reasoning_tokens=25,
            audio_output_tokens=10,
            image_output_tokens=5,
            service_tier="standard",
            traffic_type="ON_DEMAND",
        )
    )
    status, headers, raw = raw_request(server, "POST", path, request)
    assert headers["x-gemini-service-tier"] == "standard"
    assert json.loads(raw)["usageMetadata"] == {
        "promptTokenCount": 100,
        "candidatesTokenCount": 35,
        "totalTokenCount": 160,
        "promptTokensDetails": [
            {"modality": "TEXT", "tokenCount": 50},
            {"modality": "AUDIO", "tokenCount": 30},
            {"modality": "IMAGE", "tokenCount": 20},
        ],
        "candidatesTokensDetails": [
            {"modality": "TEXT", "tokenCount": 20},
            {"modality": "AUDIO", "tokenCount": 10},
            {"modality": "IMAGE", "tokenCount": 5},
        ],
        "thoughtsTokenCount": 25,
        "cachedContentTokenCount": 40,
        "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 40}],
        "trafficType": "ON_DEMAND",
    }

    # Streamed: SSE chunks; finishReason and usageMetadata only in the last one.
    server.enqueue(Reply(text="a b c", prompt_tokens=10, completion_tokens=3))
    stream_path = "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
    status, headers, raw = raw_request(server, "POST", stream_path, request)
    assert headers["content-type"].startswith("text/event-stream")
    chunks = [json.loads(d) for d in sse_data(raw)]
    assert [c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks] == ["a ", "b ", "c"]
    assert ["usageMetadata" in c for c in chunks] == [False, False, True]
    assert [c["candidates"][0].get("finishReason") for c in chunks] == [None, None, "STOP"]


def test_gemini_routes_errors_and_missing_usage(litellm: ModuleType, server: FakeLLMServer) -> None:
    # Routes match the model of the path.
    server.route("gemini-2.5-flash", Reply(text="routed"))
    flash = gemini_call(litellm, server, model="gemini/gemini-2.5-flash")
    assert flash.choices[0].message.content == "routed"
    assert gemini_call(litellm, server).choices[0].message.content == DEFAULT_TEXT

    server.enqueue(Reply(status=429, text="slow down"), Reply(status=500))
    with pytest.raises(litellm.RateLimitError, match="slow down"):
        gemini_call(litellm, server, num_retries=0, max_retries=0)
    with pytest.raises(litellm.InternalServerError):
        gemini_call(litellm, server, num_retries=0, max_retries=0)
    status, _, raw = raw_request(server, "POST", "/v1beta/models/m:generateContent", b"not json")
    assert status == 400
    assert json.loads(raw)["error"]["status"] == "INVALID_ARGUMENT"

    # Gemini always sends usageMetadata; litellm refuses a response without it.
    server.enqueue(Reply(include_usage=False))
    with pytest.raises(litellm.BadRequestError, match="usageMetadata"):
        gemini_call(litellm, server, num_retries=0, max_retries=0)


# --- Bedrock (Converse) ----------------------------------------------------------------------

BEDROCK_MODEL = "bedrock/anthropic.claude-3-5-haiku-20241022-v1:0"
AWS_CREDENTIALS = {
    "aws_access_key_id": "AKIATEST",
    "aws_secret_access_key": "x",
    "aws_region_name": "us-east-1",
}


def bedrock_call(litellm: ModuleType, server: FakeLLMServer, **kwargs: Any) -> Any:
    params: dict[str, Any] = {
        "model": BEDROCK_MODEL,
        "api_base": server.bedrock_base_url,
        "messages": MESSAGES,
        **AWS_CREDENTIALS,
        **kwargs,
    }
    return litellm.completion(**params)


def test_bedrock_converse_usage_mapping_in_litellm(
    litellm: ModuleType, server: FakeLLMServer
) -> None:
    server.enqueue(
        Reply(
            text="Bonjour.",
            prompt_tokens=1000,
            cached_tokens=100,
            cache_write_tokens=300,
            cache_write_1h_tokens=200,
            completion_tokens=50,
            service_tier="flex",
            finish_reason="length",
        )
    )
    response = bedrock_call(litellm, server, service_tier="flex")
    assert response.choices[0].message.content == "Bonjour."
    assert response.choices[0].finish_reason == "length"
    assert response.model == "anthropic.claude-3-5-haiku-20241022-v1:0"
    assert response.service_tier == "flex"
    usage = response.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (1000, 50, 1050)
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (100, 300)
    details = usage.prompt_tokens_details
    assert (details.cached_tokens, details.cache_creation_tokens, details.text_tokens) == (
        100,
        300,
        600,
    )
    split = details.cache_creation_token_details
    assert (split.ephemeral_5m_input_tokens, split.ephemeral_1h_input_tokens) == (100, 200)

    [request] = server.requests
    assert request.path == "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse"
    assert request.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIATEST/")
    assert request.body["messages"] == [
        {"role": "user", "content": [{"text": "What is the capital of France?"}]}
    ]
    assert request.body["system"] == [{"text": "You are terse."}]
    assert request.body["serviceTier"] == {"type": "flex"}


def test_bedrock_default_counts_and_routes(litellm: ModuleType, server: FakeLLMServer) -> None:
    response = bedrock_call(litellm, server)
    assert response.choices[0].message.content == DEFAULT_TEXT
    assert response.usage.prompt_tokens == DEFAULT_PROMPT_TOKENS  # `system` counts
    assert response.usage.completion_tokens == 7
    assert getattr(response.usage.prompt_tokens_details, "cache_creation_token_details", None) is (
        None
    )
    server.route("us.anthropic.claude-sonnet-4-5-20250929-v1:0", Reply(text="routed"))
    routed = bedrock_call(
        litellm,
        server,
        model="bedrock/converse/us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        aws_bedrock_runtime_endpoint=server.bedrock_base_url,
        api_base=None,
    )
    assert routed.choices[0].message.content == "routed"
    assert server.requests[-1].path.endswith("/converse")


def test_bedrock_converse_stream(litellm: ModuleType, server: FakeLLMServer) -> None:
    text = "Le ciel est bleu."
    server.enqueue(
        Reply(
            text=text,
            prompt_tokens=2000,
            cached_tokens=1000,
            cache_write_tokens=800,
            cache_write_1h_tokens=800,
            completion_tokens=40,
            service_tier="priority",
        )
    )
    chunks = list(
        bedrock_call(litellm, server, stream=True, stream_options={"include_usage": True})
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    [usage] = [c.usage for c in chunks if getattr(c, "usage", None) is not None]
    assert (usage.prompt_tokens, usage.completion_tokens) == (2000, 40)
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (1000, 800)
    split = usage.prompt_tokens_details.cache_creation_token_details
    assert (split.ephemeral_5m_input_tokens, split.ephemeral_1h_input_tokens) == (0, 800)
    # The metadata event's serviceTier is not read by litellm 1.110.2 in streams.
    assert all(getattr(c, "service_tier", None) is None for c in chunks)
    [request] = server.requests
    assert request.path == "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse-stream"


def test_bedrock_wire_format(server: FakeLLMServer) -> None:
    from botocore.eventstream import EventStreamBuffer

    request = {"messages": [{"role": "user", "content": [{"text": "Hi"}]}]}
    server.enqueue(
        Reply(
            text="a b",
            prompt_tokens=100,
            cached_tokens=10,
            cache_write_tokens=30,
            completion_tokens=2,
        )
    )
    status, _, raw = raw_request(server, "POST", "/model/m%3A0/converse", request)
    assert status == 200
    body = json.loads(raw)
    assert body["output"] == {"message": {"role": "assistant", "content": [{"text": "a b"}]}}
    assert body["stopReason"] == "end_turn"
    assert body["usage"] == {
        "inputTokens": 60,
        "outputTokens": 2,
        "totalTokens": 102,
        "cacheReadInputTokens": 10,
        "cacheWriteInputTokens": 30,
    }
    assert "serviceTier" not in body
    assert server.requests[-1].path == "/model/m%3A0/converse"

    server.enqueue(
        Reply(
            text="a b",
            prompt_tokens=100,
            cache_write_tokens=30,
            cache_write_1h_tokens=10,
            completion_tokens=2,
            service_tier="priority",
        )
    )
    status, headers, raw = raw_request(server, "POST", "/model/m/converse-stream", request)
    assert headers["content-type"] == "application/vnd.amazon.eventstream"
    buffer = EventStreamBuffer()
    buffer.add_data(raw)
    events = [(message.headers[":event-type"], json.loads(message.payload)) for message in buffer]
    assert [name for name, _ in events] == [
        "messageStart",
        "contentBlockDelta",
        "contentBlockDelta",
        "contentBlockStop",
        "messageStop",
        "metadata",
    ]
    assert [payload["delta"]["text"] for name, payload in events[1:3]] == ["a ", "b"]
    metadata = events[-1][1]
    assert metadata["usage"]["cacheDetails"] == [
        {"ttl": "5m", "inputTokens": 20},
        {"ttl": "1h", "inputTokens": 10},
    ]
    assert metadata["serviceTier"] == {"type": "priority"}

    server.enqueue(Reply(status=429))
    status, headers, raw = raw_request(server, "POST", "/model/m/converse", request)
    assert status == 429
    assert headers["x-amzn-errortype"] == "ThrottlingException"
    assert json.loads(raw) == {"message": "Fake error (HTTP 429)"}


def test_bedrock_errors(litellm: ModuleType, server: FakeLLMServer) -> None:
    server.enqueue(Reply(status=429, text="throttled"), Reply(status=400, text="bad"))
    with pytest.raises(litellm.RateLimitError, match="throttled"):
        bedrock_call(litellm, server, num_retries=0, max_retries=0)
    with pytest.raises(litellm.BadRequestError, match="bad"):
        bedrock_call(litellm, server, num_retries=0, max_retries=0)
    assert len(server.requests) == 2


def test_reply_validation_of_billing_fields() -> None:
    with pytest.raises(ValueError, match="audio_input_tokens"):
        Reply(prompt_tokens=10, audio_input_tokens=8, image_input_tokens=3)
    with pytest.raises(ValueError, match="audio_output_tokens"):
        Reply(completion_tokens=10, reasoning_tokens=5, audio_output_tokens=6)
    with pytest.raises(ValueError, match="cache_write_1h_tokens"):
        Reply(cache_write_tokens=10, cache_write_1h_tokens=11)
    with pytest.raises(ValueError):
        Reply(image_output_tokens=-1)
    with pytest.raises(ValueError):
        Reply(web_search_requests=-1)
    # Computed counts make room for every part they include.
    reply = Reply(text="x", audio_input_tokens=500, image_input_tokens=20, audio_output_tokens=30)
    _, usage = resolve(reply, {"messages": MESSAGES})
    assert (usage.prompt, usage.completion) == (520, 30)


def test_gemini_and_bedrock_async(litellm: ModuleType, server: FakeLLMServer) -> None:
    server.enqueue(
        Reply(text="a b", prompt_tokens=300, completion_tokens=80, reasoning_tokens=50),
        Reply(text="c d", prompt_tokens=400, completion_tokens=90, reasoning_tokens=60),
        Reply(text="e", prompt_tokens=500, cached_tokens=100),
        Reply(text="f g", prompt_tokens=600, cache_write_tokens=100, cache_write_1h_tokens=100),
    )
    gemini: dict[str, Any] = {
        "model": GEMINI_MODEL,
        "api_base": server.gemini_base_url,
        "api_key": "gk-test",
        "messages": MESSAGES,
    }
    bedrock: dict[str, Any] = {
        "model": BEDROCK_MODEL,
        "api_base": server.bedrock_base_url,
        "messages": MESSAGES,
        **AWS_CREDENTIALS,
    }
    include_usage: dict[str, Any] = {"stream": True, "stream_options": {"include_usage": True}}

    async def main() -> tuple[Any, list[Any], Any, list[Any]]:
        response = await litellm.acompletion(**gemini)
        stream = await litellm.acompletion(**gemini, **include_usage)
        gemini_chunks = [chunk async for chunk in stream]
        converse = await litellm.acompletion(**bedrock)
        stream = await litellm.acompletion(**bedrock, **include_usage)
        return response, gemini_chunks, converse, [chunk async for chunk in stream]

    response, gemini_chunks, converse, bedrock_chunks = asyncio.run(main())
    assert (response.usage.completion_tokens, response.usage.prompt_tokens) == (80, 300)
    assert response.usage.completion_tokens_details.reasoning_tokens == 50
    [usage] = [c.usage for c in gemini_chunks if getattr(c, "usage", None) is not None]
    assert (usage.prompt_tokens, usage.completion_tokens_details.reasoning_tokens) == (400, 60)
    assert (converse.usage.prompt_tokens, converse.usage.cache_read_input_tokens) == (500, 100)
    [usage] = [c.usage for c in bedrock_chunks if getattr(c, "usage", None) is not None]
    split = usage.prompt_tokens_details.cache_creation_token_details
    assert (usage.prompt_tokens, split.ephemeral_1h_input_tokens) == (600, 100)
    assert len(server.requests) == 4


# --- Azure OpenAI and the served model -------------------------------------------------------


def test_azure_deployment_answers_with_its_real_model(
    litellm: ModuleType, server: FakeLLMServer
) -> None:
    server.route(
        "gpt-4o",  # the deployment name, from the path
        Reply(
            text="Hi.",
            model="gpt-4o-mini-2024-07-18",
            prompt_tokens=1000,
            cached_tokens=200,
            completion_tokens=100,
        ),
    )
    azure: dict[str, Any] = {
        "model": "azure/gpt-4o",
        "api_base": server.url,
        "api_key": "azure-key",
        "api_version": "2024-10-21",
    }
    response = openai_call(litellm, server, **azure)
    assert response.model == "gpt-4o-mini-2024-07-18"
    assert response._hidden_params["provider_response_model"] == "gpt-4o-mini-2024-07-18"
    assert response.usage.prompt_tokens_details.cached_tokens == 200
    request = server.requests[0]
    assert request.path == "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
    assert request.headers["api-key"] == "azure-key"

    # Streamed: litellm 1.110.2 gives the served model on the content chunks and the
    # deployment name on the final usage chunk.
    chunks = list(
        openai_call(litellm, server, **azure, stream=True, stream_options={"include_usage": True})
    )
    assert chunks[0].model == "gpt-4o-mini-2024-07-18"
    assert chunks[-1].model == "gpt-4o"
    assert chunks[-1].usage.prompt_tokens == 1000


@pytest.mark.parametrize("route", ["openai", "anthropic", "gemini"])
def test_served_model_of_a_stream_is_in_the_hidden_params(
    litellm: ModuleType, server: FakeLLMServer, route: str
) -> None:
    call = {"openai": openai_call, "anthropic": anthropic_call, "gemini": gemini_call}[route]
    server.enqueue(Reply(text="x y", model="served-model-001"))
    assert call(litellm, server).model == "served-model-001"
    server.enqueue(Reply(text="x y", model="served-model-001"))
    chunks = list(call(litellm, server, stream=True, stream_options={"include_usage": True}))
    # chunk.model stays the requested model; the served one is in the hidden params of the
    # content chunks (not of the final usage chunk).
    assert "served-model-001" not in {chunk.model for chunk in chunks}
    served = {chunk._hidden_params.get("provider_response_model") for chunk in chunks}
    assert served - {None} == {"served-model-001"}


# --- billing dimensions: cached modalities, video, grounding, 12-hour cache writes -----------

STREAM_WITH_USAGE: dict[str, Any] = {"stream": True, "stream_options": {"include_usage": True}}


def plain_and_streamed_usage(
    litellm: ModuleType, server: FakeLLMServer, call: Any, reply: Reply, **kwargs: Any
) -> list[Any]:
    """The usage of ``reply`` answered plain, then streamed: the usage of the stream's usage
    chunk and the one ``litellm.stream_chunk_builder`` rebuilds."""
    server.enqueue(reply, reply)
    plain = call(litellm, server, **kwargs).usage
    chunks = list(call(litellm, server, **kwargs, **STREAM_WITH_USAGE))
    [chunk_usage] = [c.usage for c in chunks if getattr(c, "usage", None) is not None]
    built = litellm.stream_chunk_builder(chunks, messages=MESSAGES).usage
    return [plain, chunk_usage, built]


def test_gemini_cached_audio_video_and_search_grounding(
    litellm: ModuleType, server: FakeLLMServer
) -> None:
    reply = Reply(
        text="Here you go.",
        prompt_tokens=2000,
        cached_tokens=500,
        cached_audio_tokens=300,
        audio_input_tokens=400,
        video_input_tokens=500,
        completion_tokens=200,
        video_output_tokens=50,
        grounding_queries=["weather paris", "paris events", "louvre hours", "paris events", ""],
    )
    usages = plain_and_streamed_usage(
        litellm, server, gemini_call, reply, model="gemini/gemini-2.5-flash"
    )
    for usage in usages:
        assert (usage.prompt_tokens, usage.completion_tokens) == (2000, 200)
        details = usage.prompt_tokens_details
        assert details.cached_tokens == 500
        cached = details.cached_tokens_details
        assert (cached.text_tokens, cached.audio_tokens, cached.image_tokens) == (200, 300, None)
        assert details.audio_tokens == 400  # the whole audio input, cached included
        assert details.video_tokens == 500
        assert details.text_tokens == 2000 - 400 - 500  # cached text included
        assert details.web_search_requests == 3  # distinct non-empty queries
        assert getattr(details, "google_maps_grounding_requests", None) is None
        output = usage.completion_tokens_details
        assert (output.video_tokens, output.text_tokens) == (50, 150)
    assert len(server.requests) == 2


def test_gemini_cached_image_and_maps_grounding(litellm: ModuleType, server: FakeLLMServer) -> None:
    reply = Reply(
        text="x",
        prompt_tokens=1000,
        cached_tokens=400,
        image_input_tokens=300,
        cached_image_tokens=250,
        maps_grounding_queries=["cafe near me", "bakery", "cafe near me"],
    )
    for usage in plain_and_streamed_usage(litellm, server, gemini_call, reply):
        details = usage.prompt_tokens_details
        cached = details.cached_tokens_details
        assert (cached.text_tokens, cached.audio_tokens, cached.image_tokens) == (150, None, 250)
        assert details.image_tokens == 300
        assert details.google_maps_grounding_requests == 2
        assert getattr(details, "web_search_requests", None) is None

    # Maps grounding counts at least one request; a search with no query counts none.
    server.enqueue(Reply(maps_grounding_queries=[]), Reply(grounding_queries=[]))
    details = gemini_call(litellm, server).usage.prompt_tokens_details
    assert details.google_maps_grounding_requests == 1
    details = gemini_call(litellm, server).usage.prompt_tokens_details
    assert getattr(details, "web_search_requests", None) is None


def test_gemini_wire_format_of_cached_modalities_video_and_grounding(
    server: FakeLLMServer,
) -> None:
    request = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    path = "/v1beta/models/gemini-2.5-flash:generateContent"
    server.enqueue(
        Reply(
            text="x",
            prompt_tokens=100,
            cached_tokens=40,
            audio_input_tokens=30,
            cached_audio_tokens=20,
            image_input_tokens=10,
            cached_image_tokens=5,
            video_input_tokens=25,
            completion_tokens=60,
            reasoning_tokens=10,
            video_output_tokens=15,
            grounding_queries=["q1", "q2"],
        )
    )
    body = json.loads(raw_request(server, "POST", path, request)[2])
    assert body["usageMetadata"] == {
        "promptTokenCount": 100,
        "candidatesTokenCount": 50,
        "totalTokenCount": 160,
        "promptTokensDetails": [
            {"modality": "TEXT", "tokenCount": 35},
            {"modality": "AUDIO", "tokenCount": 30},
            {"modality": "IMAGE", "tokenCount": 10},
            {"modality": "VIDEO", "tokenCount": 25},
        ],
        "candidatesTokensDetails": [
            {"modality": "TEXT", "tokenCount": 35},
            {"modality": "VIDEO", "tokenCount": 15},
        ],
        "thoughtsTokenCount": 10,
        "cachedContentTokenCount": 40,
        "cacheTokensDetails": [
            {"modality": "TEXT", "tokenCount": 15},
            {"modality": "AUDIO", "tokenCount": 20},
            {"modality": "IMAGE", "tokenCount": 5},
        ],
    }
    assert body["candidates"][0]["groundingMetadata"] == {
        "webSearchQueries": ["q1", "q2"],
        "groundingChunks": [{"web": {"uri": "https://example.com/1", "title": "example"}}],
    }

    server.enqueue(Reply(text="x", maps_grounding_queries=["museum"]))
    body = json.loads(raw_request(server, "POST", path, request)[2])
    assert body["candidates"][0]["groundingMetadata"] == {
        "webSearchQueries": ["museum"],
        "groundingChunks": [{"maps": {"uri": "https://maps.example/1", "title": "place"}}],
    }

    # Streamed: the grounding comes with the usage, in the last chunk only.
    server.enqueue(Reply(text="a b c", grounding_queries=["q"]))
    stream_path = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    chunks = [json.loads(d) for d in sse_data(raw_request(server, "POST", stream_path, request)[2])]
    assert ["groundingMetadata" in c["candidates"][0] for c in chunks] == [False, False, True]

    # The 12-hour cache split is the OpenAI route's: Gemini sends nothing of it.
    server.enqueue(
        Reply(text="x", prompt_tokens=10, cache_write_tokens=4, cache_write_12h_tokens=4)
    )
    body = json.loads(raw_request(server, "POST", path, request)[2])
    assert body["usageMetadata"] == {
        "promptTokenCount": 10,
        "candidatesTokenCount": 1,
        "totalTokenCount": 11,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 10}],
    }
    assert "groundingMetadata" not in body["candidates"][0]


def test_openai_cached_modalities_video_and_12h_cache_writes(
    litellm: ModuleType, server: FakeLLMServer
) -> None:
    reply = Reply(
        text="Sure.",
        prompt_tokens=5000,
        cached_tokens=1000,
        audio_input_tokens=400,
        cached_audio_tokens=300,
        image_input_tokens=100,
        cached_image_tokens=100,
        video_input_tokens=500,
        cache_write_tokens=3000,
        cache_write_12h_tokens=2000,
        completion_tokens=200,
        video_output_tokens=50,
    )
    for usage in plain_and_streamed_usage(
        litellm, server, openai_call, reply, model="openai/gpt-4o"
    ):
        assert (usage.prompt_tokens, usage.completion_tokens) == (5000, 200)
        details = usage.prompt_tokens_details
        assert (details.cached_tokens, details.audio_tokens, details.image_tokens) == (
            1000,
            400,
            100,
        )
        cached = details.cached_tokens_details
        assert (cached.text_tokens, cached.audio_tokens, cached.image_tokens) == (600, 300, 100)
        assert details.video_tokens == 500
        assert details.cache_write_tokens == details.cache_creation_tokens == 3000
        split = details.cache_creation_token_details
        assert (split.ephemeral_30m_input_tokens, split.ephemeral_12h_input_tokens) == (1000, 2000)
        assert (split.ephemeral_5m_input_tokens, split.ephemeral_1h_input_tokens) == (None, None)
        assert usage.completion_tokens_details.video_tokens == 50


def test_openai_wire_format_of_cached_modalities_video_and_12h_cache_writes(
    server: FakeLLMServer,
) -> None:
    request = {"model": "gpt-4o", "messages": MESSAGES}
    # Cache writes without the 12-hour part: the OpenAI route reports none (as before).
    server.enqueue(Reply(text="x", prompt_tokens=10, cache_write_tokens=4, cache_write_1h_tokens=4))
    body = json.loads(raw_request(server, "POST", "/v1/chat/completions", request)[2])
    assert body["usage"]["prompt_tokens_details"] == {"cached_tokens": 0, "audio_tokens": 0}
    assert "video_tokens" not in body["usage"]["completion_tokens_details"]

    server.enqueue(
        Reply(
            text="x",
            prompt_tokens=100,
            cached_tokens=30,
            audio_input_tokens=20,
            cached_audio_tokens=10,
            video_input_tokens=15,
            cache_write_tokens=40,
            cache_write_12h_tokens=0,
            completion_tokens=9,
            video_output_tokens=7,
        )
    )
    body = json.loads(raw_request(server, "POST", "/v1/chat/completions", request)[2])
    assert body["usage"]["prompt_tokens_details"] == {
        "cached_tokens": 30,
        "audio_tokens": 20,
        "video_tokens": 15,
        "cached_tokens_details": {"text_tokens": 20, "audio_tokens": 10, "image_tokens": 0},
        "cache_write_tokens": 40,
        "cache_creation_token_details": {
            "ephemeral_30m_input_tokens": 40,
            "ephemeral_12h_input_tokens": 0,
        },
    }
    assert body["usage"]["completion_tokens_details"]["video_tokens"] == 7

    # Anthropic reports its own split only: the 12-hour part is not sent there.
    server.enqueue(Reply(text="x", cache_write_tokens=40, cache_write_12h_tokens=30))
    anthropic_request = {"model": "claude-haiku-4-5", "max_tokens": 10, "messages": MESSAGES[1:]}
    body = json.loads(raw_request(server, "POST", "/v1/messages", anthropic_request)[2])
    assert body["usage"]["cache_creation_input_tokens"] == 40
    assert "cache_creation" not in body["usage"]


def test_reply_validation_of_cached_modalities_video_grounding_and_12h_writes() -> None:
    with pytest.raises(ValueError, match="cached_audio_tokens \\+ cached_image_tokens"):
        Reply(
            cached_tokens=10,
            audio_input_tokens=8,
            image_input_tokens=8,
            cached_audio_tokens=6,
            cached_image_tokens=5,
        )
    with pytest.raises(ValueError, match="cached part of audio_input_tokens"):
        Reply(cached_tokens=10, audio_input_tokens=3, cached_audio_tokens=4)
    with pytest.raises(ValueError, match="cached part of image_input_tokens"):
        Reply(cached_tokens=10, image_input_tokens=3, cached_image_tokens=4)
    with pytest.raises(ValueError, match="video_input_tokens"):
        Reply(prompt_tokens=10, audio_input_tokens=5, image_input_tokens=3, video_input_tokens=3)
    with pytest.raises(ValueError, match="video_output_tokens"):
        Reply(
            completion_tokens=10, reasoning_tokens=5, image_output_tokens=3, video_output_tokens=3
        )
    with pytest.raises(ValueError, match="cache_write_12h_tokens"):
        Reply(cache_write_tokens=10, cache_write_12h_tokens=11)
    with pytest.raises(ValueError, match="cache_write_12h_tokens"):
        Reply(cache_write_tokens=10, cache_write_1h_tokens=6, cache_write_12h_tokens=5)
    with pytest.raises(ValueError, match="cannot both be given"):
        Reply(grounding_queries=["a"], maps_grounding_queries=["b"])
    with pytest.raises(ValueError, match="list of strings"):
        Reply(grounding_queries="weather paris")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="list of strings"):
        Reply(maps_grounding_queries=["ok", 3])  # type: ignore[list-item]
    for name in (
        "cached_audio_tokens",
        "cached_image_tokens",
        "video_input_tokens",
        "video_output_tokens",
        "cache_write_12h_tokens",
    ):
        with pytest.raises(ValueError, match=name):
            Reply(**{name: -1})
    # Within bounds: accepted.
    Reply(cache_write_tokens=10, cache_write_1h_tokens=5, cache_write_12h_tokens=5)
    Reply(
        cached_tokens=10,
        audio_input_tokens=6,
        image_input_tokens=4,
        cached_audio_tokens=6,
        cached_image_tokens=4,
    )
    # Computed counts make room for video too; text excludes it.
    reply = Reply(
        text="x",
        audio_input_tokens=50,
        video_input_tokens=500,
        reasoning_tokens=5,
        video_output_tokens=30,
    )
    _, usage = resolve(reply, {"messages": MESSAGES})
    assert (usage.prompt, usage.completion) == (550, 35)
    assert (usage.text_input, usage.text_output) == (0, 0)
