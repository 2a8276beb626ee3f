"""``llmops serve``'s Anthropic route: the official Anthropic SDK against the server over real
HTTP, with an OpenAI-style model and an Anthropic model behind it (the fake model server, or
a scripted provider for tool calls); every call lands in the database."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from llmops import Budget
from llmops.server.anthropic import StopScanner
from llmops.store.queries import stored_calls
from llmops.testing import Reply

PRICES = {
    "gpt-4o-mini": {"input_per_million": 1000, "output_per_million": 2000},
    "claude-haiku-4-5": {
        "input_per_million": 1000, "output_per_million": 5000,
        "cached_input_per_million": 100, "cache_write_per_million": 1250,
    },
}  # fmt: skip
WEATHER = {
    "name": "weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
PIXEL = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()


def _hex(call_id: str) -> str:
    return "msg_" + call_id.replace("-", "")


class Running:
    def __init__(self, gateway: Any, url: str) -> None:
        self.gateway, self.url = gateway, url

    def client(self, **kwargs: Any) -> anthropic.Anthropic:
        kwargs.setdefault("max_retries", 0)
        return anthropic.Anthropic(base_url=self.url, api_key="sk-client", **kwargs)

    def async_client(self) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(base_url=self.url, api_key="sk-client", max_retries=0)

    def rows(self) -> list[Any]:
        self.gateway.flush()
        with self.gateway.engine.connect() as connection:
            return stored_calls(connection)

    def post(self, body: bytes | dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        content = json.dumps(body).encode() if isinstance(body, dict) else body
        answer = httpx.post(
            self.url + "/v1/messages", content=content,
            headers={"content-type": "application/json"}, timeout=30,
        )  # fmt: skip
        return answer.status_code, dict(answer.headers), answer.json()


@pytest.fixture
def running(
    server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, repo, serve_in_thread, direct
) -> Iterator[Any]:
    """The app on a real uvicorn server in this process; the upstream is ``server`` for
    OpenAI-style models and for Anthropic models (``ANTHROPIC_API_BASE``)."""
    from llmops import Gateway

    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-upstream")
    monkeypatch.setenv("ANTHROPIC_API_BASE", server.anthropic_base_url)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-upstream")

    def start(**kwargs: Any) -> Running:
        kwargs.setdefault("prices", PRICES)
        kwargs.setdefault("direct", direct)
        gateway = Gateway(
            f"sqlite:///{tmp_path / 'db' / 'llmops.db'}", prompts=repo.root / "prompts",
            home=tmp_path / "home", **kwargs,
        )  # fmt: skip
        return Running(gateway, serve_in_thread(gateway))

    yield start


class Provider:
    """A scripted model provider over real HTTP (for answers the fake server cannot give:
    tool calls, a stream cut off mid-way): each POST gets the next queued answer."""

    def __init__(self) -> None:
        self.answers: deque[tuple[int, bytes, str, bool]] = deque()
        self.requests: list[tuple[str, dict[str, str], Any]] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                size = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(size) or b"null")
                headers = {k.lower(): v for k, v in self.headers.items()}
                provider.requests.append((self.path, headers, body))
                status, payload, kind, cut = provider.answers.popleft()
                self.send_response(status)
                self.send_header("content-type", kind)
                self.send_header("content-length", str(len(payload) + (1000 if cut else 0)))
                self.end_headers()
                self.wfile.write(payload)
                self.wfile.flush()
                if cut:  # the provider dies mid-answer
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def json(self, body: dict[str, Any]) -> None:
        self.answers.append((200, json.dumps(body).encode(), "application/json", False))

    def events(self, events: list[tuple[str | None, Any]], *, cut: bool = False) -> None:
        raw = b""
        for name, data in events:
            text = data if isinstance(data, str) else json.dumps(data)
            raw += (f"event: {name}\n" if name else "").encode() + f"data: {text}\n\n".encode()
        self.answers.append((200, raw, "text/event-stream", cut))

    def error(self, status: int, kind: str, message: str) -> None:
        """Anthropic's error answer (its body, as Anthropic sends it)."""
        body = {"type": "error", "error": {"type": kind, "message": message}}
        self.answers.append((status, json.dumps(body).encode(), "application/json", False))

    def body(self, index: int = -1) -> Any:
        return self.requests[index][2]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[Provider]:
    """The scripted provider as the upstream of both model families (after ``running``)."""
    scripted = Provider()
    monkeypatch.setenv("OPENAI_BASE_URL", scripted.url + "/v1")
    monkeypatch.setenv("ANTHROPIC_API_BASE", scripted.url)
    yield scripted
    scripted.close()


def _chunk(delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> tuple:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    body = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0,
            "model": "gpt-4o-mini", "choices": choices, **extra}  # fmt: skip
    return (None, body)


def _tool_call(index: int, arguments: str, **head: Any) -> dict[str, Any]:
    call: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if head:
        call.update(id=head["id"], type="function")
        call["function"]["name"] = head["name"]
    return {"tool_calls": [call]}


# -- answers ---------------------------------------------------------------------------


def test_a_message_is_answered_in_anthropics_shape_and_recorded(running, server) -> None:
    app = running()
    server.enqueue(Reply(text="Paris.", prompt_tokens=20, completion_tokens=2))
    raw = app.client().messages.with_raw_response.create(
        model="gpt-4o-mini", max_tokens=50, system="Be brief.",
        messages=[{"role": "user", "content": "Capital of France?"}],
        metadata={"user_id": "ann"}, extra_body={"temperature": 0.2, "top_p": 0.9},
        extra_headers={"x-llmops-tags": "geo, quiz", "x-llmops-session": "s-1",
                       "x-llmops-metadata": '{"ticket": 7}'},
    )  # fmt: skip
    message = raw.parse()
    call_id = raw.headers["x-llmops-call-id"]
    assert message.id == _hex(call_id)
    assert (message.type, message.role, message.model) == ("message", "assistant", "gpt-4o-mini")
    assert [(b.type, b.text) for b in message.content] == [("text", "Paris.")]
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)
    usage = message.usage
    assert (usage.input_tokens, usage.output_tokens) == (20, 2)
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (0, 0)
    (row,) = app.rows()
    assert (row["id"], row["status"], row["model"]) == (call_id, "ok", "gpt-4o-mini")
    assert (row["prompt_tokens"], row["completion_tokens"]) == (20, 2)
    assert row["cost_usd"] == pytest.approx(20 * 0.001 + 2 * 0.002)
    assert (row["user_id"], row["tags"], row["session_id"]) == ("ann", ["geo", "quiz"], "s-1")
    assert row["metadata"] == {"ticket": 7}
    sent = server.requests[-1]
    assert sent.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of France?"},
    ]
    assert (sent.body["max_tokens"], sent.body["temperature"], sent.body["top_p"]) == (50, 0.2, 0.9)
    assert "metadata" not in sent.body and "user" not in sent.body
    assert sent.headers["authorization"] == "Bearer sk-upstream"  # the server's key, not ours


def test_an_anthropic_model_with_cache_tokens_blocks_and_images(running, server) -> None:
    app = running()
    server.enqueue(
        Reply(text="A red pixel.", prompt_tokens=30, completion_tokens=3, cached_tokens=10,
              cache_write_tokens=5)
    )  # fmt: skip
    message = app.client().messages.create(
        model="claude-haiku-4-5", max_tokens=64, stop_sequences=["STOP"],
        extra_body={"top_k": 5},  # SDK 2.x no longer types the sampling parameters
        system=[{"type": "text", "text": "You see images.",
                 "cache_control": {"type": "ephemeral"}}],
        messages=[{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": PIXEL}},
            {"type": "text", "text": "What is it?"},
        ]}],
        metadata={"user_id": "bob"},
    )  # fmt: skip
    assert [(b.type, b.text) for b in message.content] == [("text", "A red pixel.")]
    assert (message.model, message.stop_reason) == ("claude-haiku-4-5", "end_turn")
    usage = message.usage
    assert (usage.input_tokens, usage.output_tokens) == (15, 3)
    assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (10, 5)
    (row,) = app.rows()
    assert (row["status"], row["user_id"], row["provider"]) == ("ok", "bob", "anthropic")
    assert (row["prompt_tokens"], row["completion_tokens"]) == (30, 3)
    assert (row["cached_tokens"], row["cache_write_tokens"]) == (10, 5)
    assert row["cost_usd"] == pytest.approx(15 * 0.001 + 10 * 0.0001 + 5 * 0.00125 + 3 * 0.005)
    sent = server.requests[-1]
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == "sk-ant-upstream"
    assert sent.body["system"] == [
        {"type": "text", "text": "You see images.", "cache_control": {"type": "ephemeral"}}
    ]
    assert sent.body["messages"] == [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": PIXEL}},
        {"type": "text", "text": "What is it?"},
    ]}]  # fmt: skip
    assert (sent.body["max_tokens"], sent.body["top_k"]) == (64, 5)
    assert sent.body["stop_sequences"] == ["STOP"]


def test_streaming_with_the_sdks_stream_helper(running, server) -> None:
    app = running()
    server.enqueue(Reply(text="one two three", prompt_tokens=9, completion_tokens=3))
    with app.client().messages.stream(
        model="gpt-4o-mini",
        max_tokens=20,
        messages=[{"role": "user", "content": "Count"}],
        metadata={"user_id": "cy"},
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
        call_id = stream.response.headers["x-llmops-call-id"]
    assert pieces == ["one ", "two ", "three"]
    assert [(b.type, b.text) for b in final.content] == [("text", "one two three")]
    assert (final.id, final.model, final.stop_reason) == (_hex(call_id), "gpt-4o-mini", "end_turn")
    assert (final.usage.input_tokens, final.usage.output_tokens) == (9, 3)
    assert final.usage.cache_read_input_tokens == 0
    (row,) = app.rows()
    assert (row["id"], row["status"], row["user_id"]) == (call_id, "ok", "cy")
    assert (row["prompt_tokens"], row["completion_tokens"]) == (9, 3)
    assert row["ttft_ms"] is not None


def test_the_event_sequence_on_the_wire(running, server) -> None:
    app = running()
    server.enqueue(
        Reply(text="Hi there", prompt_tokens=12, completion_tokens=2, cached_tokens=4,
              cache_write_tokens=2)
    )  # fmt: skip
    body = {"model": "claude-haiku-4-5", "max_tokens": 10, "stream": True,
            "messages": [{"role": "user", "content": "Hi"}]}  # fmt: skip
    with httpx.stream("POST", app.url + "/v1/messages", json=body, timeout=30) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/event-stream")
        call_id = answer.headers["x-llmops-call-id"]
        text = answer.read().decode()
    frames = [frame.split("\n") for frame in text.strip().split("\n\n")]
    names = [lines[0].removeprefix("event: ") for lines in frames]
    data = [json.loads(lines[1].removeprefix("data: ")) for lines in frames]
    assert names == [d["type"] for d in data]
    assert names == [
        "message_start", "content_block_start", "content_block_delta", "content_block_delta",
        "content_block_stop", "message_delta", "message_stop",
    ]  # fmt: skip
    assert data[0]["message"]["id"] == _hex(call_id)
    assert data[0]["message"]["model"] == "claude-haiku-4-5"
    assert data[1] == {"type": "content_block_start", "index": 0,
                       "content_block": {"type": "text", "text": ""}}  # fmt: skip
    assert [d["delta"] for d in data[2:4]] == [
        {"type": "text_delta", "text": "Hi "},
        {"type": "text_delta", "text": "there"},
    ]
    assert data[5] == {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"input_tokens": 6, "output_tokens": 2, "cache_creation_input_tokens": 2,
                  "cache_read_input_tokens": 4,
                  "cache_creation": {"ephemeral_5m_input_tokens": 2,
                                     "ephemeral_1h_input_tokens": 0}},
    }  # fmt: skip
    (row,) = app.rows()
    assert (row["status"], row["prompt_tokens"], row["cached_tokens"]) == ("ok", 12, 4)


def test_the_async_sdk_and_an_async_stream(running, server) -> None:
    app = running()

    async def ask() -> tuple[list[str], str]:
        client = app.async_client()
        answers = await asyncio.gather(*(
            client.messages.create(model="gpt-4o-mini", max_tokens=10,
                                   messages=[{"role": "user", "content": f"n{i}"}])
            for i in range(5)
        ))  # fmt: skip
        async with client.messages.stream(
            model="claude-haiku-4-5", max_tokens=10,
            messages=[{"role": "user", "content": "async stream"}],
        ) as stream:  # fmt: skip
            final = await stream.get_final_message()
        await client.close()
        return [a.content[0].text for a in answers], final.content[0].text

    texts, streamed = asyncio.run(ask())
    assert sorted(texts) == [f"Echo: n{i}" for i in range(5)]
    assert streamed == "Echo: async stream"
    rows = app.rows()
    assert len(rows) == 6 and {r["status"] for r in rows} == {"ok"}


def test_a_prompt_of_the_servers_folder_by_reference(running, server, project) -> None:
    app = running()
    server.enqueue(Reply(text="Hi Ada", prompt_tokens=11, completion_tokens=2))
    message = app.client().messages.create(
        model="prompt:greet@production", max_tokens=20, messages=[],
        extra_body={"variables": {"name": "Ada"}},
    )  # fmt: skip
    assert message.content[0].text == "Hi Ada" and message.model == "gpt-4o-mini"
    (row,) = app.rows()
    assert row["prompt_name"] == "greet" and row["prompt_version"]
    sent = server.requests[-1].body
    assert sent["messages"] == [{"role": "user", "content": "Hello, Ada!"}]
    assert (sent["max_tokens"], sent["temperature"]) == (20, 0.1)
    with pytest.raises(anthropic.BadRequestError, match="renders its own messages"):
        app.client().messages.create(
            model="prompt:greet", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )


# -- stop sequences ----------------------------------------------------------------------


def test_a_stop_sequence_the_provider_let_through_is_cut(running, server) -> None:
    app = running()
    server.enqueue(Reply(text="one two END three four", prompt_tokens=8, completion_tokens=5))
    message = app.client().messages.create(
        model="gpt-4o-mini", max_tokens=20, stop_sequences=["###", "END"],
        messages=[{"role": "user", "content": "Count"}],
    )  # fmt: skip
    assert [b.text for b in message.content] == ["one two "]
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "END")
    assert server.requests[-1].body["stop"] == ["###", "END"]
    server.enqueue(Reply(text="alpha beta##END gamma", prompt_tokens=8, completion_tokens=4,
                         chunks=6))  # fmt: skip
    with app.client().messages.stream(
        model="gpt-4o-mini", max_tokens=20, stop_sequences=["##END"],
        messages=[{"role": "user", "content": "Go"}],
    ) as stream:  # fmt: skip
        final = stream.get_final_message()
    assert [b.text for b in final.content] == ["alpha beta"]
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", "##END")
    assert final.usage.output_tokens == 4  # the whole answer was read and billed
    assert [r["status"] for r in app.rows()] == ["ok", "ok"]


def test_a_stop_sequence_that_the_provider_honoured_is_a_plain_end_turn(running, server) -> None:
    # litellm 1.110 maps Anthropic's stop_reason "stop_sequence" to finish_reason "stop" and
    # drops which sequence matched: the route cannot tell it from end_turn (documented).
    app = running()
    server.enqueue(Reply(text="one two", finish_reason="stop_sequence"))
    message = app.client().messages.create(
        model="claude-haiku-4-5", max_tokens=20, stop_sequences=["END"],
        messages=[{"role": "user", "content": "Count"}],
    )  # fmt: skip
    assert server.requests[-1].body["stop_sequences"] == ["END"]
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)


def test_the_stop_scanner_holds_back_only_what_could_start_a_sequence() -> None:
    scanner = StopScanner(["END", "STOP"])
    assert scanner.feed("one tw") == ("one tw", None)
    assert scanner.feed("o E") == ("o ", None)  # "E" may start END
    assert scanner.feed("ND? no") == ("", "END")
    scanner = StopScanner(["END"])
    assert scanner.feed("sEN") == ("s", None)
    assert scanner.feed("ter") == ("ENter", None)
    assert scanner.feed("E") == ("", None)
    assert scanner.flush() == "E"


# -- tools -------------------------------------------------------------------------------


def test_a_tool_call_cut_by_max_tokens_stops_for_max_tokens(running, provider) -> None:
    """It was answered ``tool_use`` with its arguments cut (or ``{}``): an agent ran it."""
    app = running()
    provider.json({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "length", "message": {
            "role": "assistant", "content": None, "tool_calls": [{
                "id": "call_1", "type": "function",
                "function": {"name": "weather", "arguments": '{"city": "Pa'}}]}}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 8, "total_tokens": 58},
    })  # fmt: skip
    answer = app.client().messages.create(
        model="gpt-4o-mini", max_tokens=8, tools=[WEATHER],
        messages=[{"role": "user", "content": "Weather in Paris?"}],
    )  # fmt: skip
    assert answer.stop_reason == "max_tokens"
    provider.events([
        _chunk({"role": "assistant", "tool_calls": [{"index": 0, "id": "call_1",
                "type": "function", "function": {"name": "weather", "arguments": ""}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": "Pa'}}]}),
        _chunk({}, "length"),
        _chunk(None, usage={"prompt_tokens": 50, "completion_tokens": 8, "total_tokens": 58}),
        (None, "[DONE]"),
    ])  # fmt: skip
    with app.client().messages.stream(
        model="gpt-4o-mini", max_tokens=8, tools=[WEATHER],
        messages=[{"role": "user", "content": "Weather in Paris?"}],
    ) as stream:  # fmt: skip
        assert stream.get_final_message().stop_reason == "max_tokens"


def test_a_tool_use_round_trip_with_an_openai_model(running, provider) -> None:
    app = running()
    arguments = '{"city": "Paris"}'
    provider.json({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Let me look.", "tool_calls": [{
                "id": "call_1", "type": "function",
                "function": {"name": "weather", "arguments": arguments}}]}}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 12, "total_tokens": 62},
    })  # fmt: skip
    client = app.client()
    question = {"role": "user", "content": "Weather in Paris?"}
    first = client.messages.create(
        model="gpt-4o-mini", max_tokens=100, messages=[question], tools=[WEATHER],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
    )  # fmt: skip
    assert [b.type for b in first.content] == ["text", "tool_use"]
    use = first.content[1]
    assert (use.id, use.name, use.input) == ("call_1", "weather", {"city": "Paris"})
    assert first.stop_reason == "tool_use"
    assert (first.usage.input_tokens, first.usage.output_tokens) == (50, 12)
    sent = provider.body()
    assert sent["tools"] == [{"type": "function", "function": {
        "name": "weather", "description": "The weather in a city",
        "parameters": WEATHER["input_schema"]}}]  # fmt: skip
    assert (sent["tool_choice"], sent["parallel_tool_calls"]) == ("required", False)

    provider.json({
        "id": "chatcmpl-2", "object": "chat.completion", "created": 0, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "Sunny, 21C."}}],
        "usage": {"prompt_tokens": 80, "completion_tokens": 5, "total_tokens": 85},
    })  # fmt: skip
    second = client.messages.create(
        model="gpt-4o-mini", max_tokens=100, tools=[WEATHER],
        messages=[
            question,
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny, 21C"},
                {"type": "text", "text": "Answer briefly."}]},
        ],
    )  # fmt: skip
    assert second.content[0].text == "Sunny, 21C." and second.stop_reason == "end_turn"
    assert provider.body()["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "Let me look.", "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "weather", "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21C"},
        {"role": "user", "content": [{"type": "text", "text": "Answer briefly."}]},
    ]  # fmt: skip
    rows = app.rows()
    assert [(r["status"], r["prompt_tokens"], r["completion_tokens"]) for r in rows] == [
        ("ok", 50, 12),
        ("ok", 80, 5),
    ]


def test_streamed_tool_calls_become_input_json_deltas(running, provider) -> None:
    app = running()
    provider.events([
        _chunk({"role": "assistant", "content": "Checking."}),
        _chunk(_tool_call(0, "", id="call_1", name="weather")),
        _chunk(_tool_call(0, '{"city":')),
        _chunk(_tool_call(0, ' "Paris"}')),
        _chunk(_tool_call(1, "{}", id="call_2", name="clock")),
        _chunk({}, "tool_calls"),
        _chunk(None, usage={"prompt_tokens": 40, "completion_tokens": 20, "total_tokens": 60}),
        (None, "[DONE]"),
    ])  # fmt: skip
    with app.client().messages.stream(
        model="gpt-4o-mini", max_tokens=100, tools=[WEATHER],
        messages=[{"role": "user", "content": "Weather and time?"}],
    ) as stream:  # fmt: skip
        events = list(stream)
        final = stream.get_final_message()
    kinds = [(e.type, getattr(getattr(e, "delta", None), "type", None)) for e in events
             if e.type.startswith("content_block")]  # fmt: skip
    assert kinds == [
        ("content_block_start", None), ("content_block_delta", "text_delta"),
        ("content_block_stop", None),
        ("content_block_start", None), ("content_block_delta", "input_json_delta"),
        ("content_block_delta", "input_json_delta"), ("content_block_stop", None),
        ("content_block_start", None), ("content_block_delta", "input_json_delta"),
        ("content_block_stop", None),
    ]  # fmt: skip
    assert [b.type for b in final.content] == ["text", "tool_use", "tool_use"]
    assert final.content[0].text == "Checking."
    assert [(b.id, b.name, b.input) for b in final.content[1:]] == [
        ("call_1", "weather", {"city": "Paris"}),
        ("call_2", "clock", {}),
    ]
    assert final.stop_reason == "tool_use"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (40, 20)
    (row,) = app.rows()
    assert (row["status"], row["prompt_tokens"], row["completion_tokens"]) == ("ok", 40, 20)


def test_a_tool_use_round_trip_with_an_anthropic_model(running, provider) -> None:
    app = running()
    provider.json({
        "id": "msg_up1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
        "content": [{"type": "tool_use", "id": "toolu_9", "name": "weather",
                     "input": {"city": "Oslo"}}],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 30, "output_tokens": 9, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0},
    })  # fmt: skip
    client = app.client()
    question = {"role": "user", "content": "Weather in Oslo?"}
    first = client.messages.create(
        model="claude-haiku-4-5", max_tokens=100, messages=[question], tools=[WEATHER],
        tool_choice={"type": "tool", "name": "weather"},
    )  # fmt: skip
    assert [(b.type, b.id, b.name, b.input) for b in first.content] == [
        ("tool_use", "toolu_9", "weather", {"city": "Oslo"})
    ]
    assert first.stop_reason == "tool_use"
    sent = provider.body()
    assert sent["tools"] == [{**WEATHER, "type": "custom"}]
    assert sent["tool_choice"] == {"type": "tool", "name": "weather"}

    provider.json({
        "id": "msg_up2", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
        "content": [{"type": "text", "text": "Snow."}], "stop_reason": "end_turn",
        "stop_sequence": None, "usage": {"input_tokens": 60, "output_tokens": 2},
    })  # fmt: skip
    second = client.messages.create(
        model="claude-haiku-4-5", max_tokens=100, tools=[WEATHER],
        messages=[
            question,
            {"role": "assistant", "content": [b.model_dump() for b in first.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9",
                                          "content": [{"type": "text", "text": "snow"}]}]},
        ],
    )  # fmt: skip
    assert second.content[0].text == "Snow." and second.stop_reason == "end_turn"
    messages = provider.body()["messages"]
    assert messages[1]["role"] == "assistant"
    assert [(b["type"], b["id"], b["name"], b["input"]) for b in messages[1]["content"]] == [
        ("tool_use", "toolu_9", "weather", {"city": "Oslo"})
    ]
    assert messages[2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_9",
         "content": [{"type": "text", "text": "snow"}]}]}  # fmt: skip
    assert [r["status"] for r in app.rows()] == ["ok", "ok"]


# -- errors ------------------------------------------------------------------------------


def test_provider_errors_have_anthropics_shape_and_status(running, server) -> None:
    app = running()
    server.enqueue(Reply(status=429, text="slow down"))
    with pytest.raises(anthropic.RateLimitError) as caught:
        app.client().messages.create(
            model="gpt-4o-mini", max_tokens=5, messages=[{"role": "user", "content": "Hi"}],
            extra_body={"num_retries": 0},
        )  # fmt: skip
    body = caught.value.body
    assert isinstance(body, dict) and body["type"] == "error" and set(body) == {"type", "error"}
    assert body["error"]["type"] == "rate_limit_error"
    assert body["error"]["message"].endswith("slow down")  # litellm's prefix before it
    first_id = caught.value.response.headers["x-llmops-call-id"]
    server.enqueue(Reply(status=500, text="boom"))
    with pytest.raises(anthropic.InternalServerError) as caught:
        app.client().messages.create(
            model="claude-haiku-4-5", max_tokens=5, messages=[{"role": "user", "content": "Hi"}],
            extra_body={"num_retries": 0},
        )  # fmt: skip
    assert caught.value.status_code == 500
    assert caught.value.body["error"]["type"] == "api_error"
    second_id = caught.value.response.headers["x-llmops-call-id"]
    server.enqueue(Reply(status=529, text="busy"))
    with pytest.raises(anthropic.OverloadedError) as caught:
        app.client().messages.create(
            model="claude-haiku-4-5", max_tokens=5, messages=[{"role": "user", "content": "Hi"}],
            extra_body={"num_retries": 0},
        )  # fmt: skip
    assert caught.value.body == {  # Anthropic's own error, passed on as it is
        "type": "error",
        "error": {"type": "overloaded_error", "message": "busy"},
    }
    rows = app.rows()
    assert [r["status"] for r in rows] == ["error", "error", "error"]
    assert [r["id"] for r in rows[:2]] == [first_id, second_id]


def test_bad_bodies_are_400_in_anthropics_shape(running, server) -> None:
    app = running()
    user = [{"role": "user", "content": "Hi"}]
    cases: list[tuple[bytes | dict[str, Any], int, str]] = [
        (b"{not json", 400, "not valid JSON"),
        (b"x" * (11 * 1024 * 1024), 413, "request body over"),
        ({"model": "gpt-4o-mini", "messages": user}, 400, "max_tokens"),
        ({"model": "gpt-4o-mini", "max_tokens": 5}, 400, "messages"),
        ({"max_tokens": 5, "messages": user}, 400, "model"),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]},
         400, "messages[0].role"),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
            {"type": "document", "source": {}}]}]}, 400, "'document' is not supported"),
        ({"model": "m", "max_tokens": 5, "messages": user,
          "thinking": {"type": "enabled", "budget_tokens": 1024}}, 400, "thinking"),
        ({"model": "m", "max_tokens": 5, "messages": user,
          "tools": [{"type": "web_search_20250305", "name": "web_search"}]}, 400, "tools[0]"),
        ({"model": "m", "max_tokens": 5, "messages": user, "stop_sequences": "END"},
         400, "stop_sequences"),
        ({"model": "prompt:nope", "max_tokens": 5}, 400, "nope"),
        # litellm's own options: a 500 with a traceback (retried: 3 error rows) or 11
        # upstream attempts held for 92 s
        ({"model": "m", "max_tokens": 5, "messages": user, "timeout": "x"}, 400, "timeout"),
        ({"model": "m", "max_tokens": 5, "messages": user, "timeout": -1}, 400, "timeout"),
        ({"model": "m", "max_tokens": 5, "messages": user, "num_retries": 50},
         400, "num_retries"),
        # empty turns: litellm sent a placeholder text, answered and billed
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": ""}]},
         400, "messages[0].content: must be non-empty"),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "  "}]},
         400, "messages[0].content: must be non-empty"),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": []}]},
         400, "messages[0].content: must be non-empty"),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
            {"type": "text", "text": ""}]}]}, 400, "non-whitespace text"),
    ]  # fmt: skip
    for body, status, words in cases:
        got, _, answer = app.post(body)
        assert (got, answer["type"]) == (status, "error"), body if isinstance(body, dict) else ""
        kind = "request_too_large" if status == 413 else "invalid_request_error"
        assert answer["error"]["type"] == kind
        assert words in answer["error"]["message"], answer
    with pytest.raises(anthropic.BadRequestError, match="base64 or url"):
        app.client().messages.create(
            model="gpt-4o-mini", max_tokens=5,
            messages=[{"role": "user", "content": [
                {"type": "image", "source": {"type": "file", "file_id": "f1"}}]}],
        )  # fmt: skip
    assert app.rows() == [] and server.requests == []


def test_a_blocking_budget_answers_429_once_without_retries(running, server) -> None:
    app = running(budgets=[Budget(name="cap", window="day", limit_usd=0.001, action="block")])
    client = app.client(max_retries=2)  # the SDK's default: the server says not to retry
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(
            model="gpt-4o-mini", max_tokens=50, messages=[{"role": "user", "content": "Hi"}]
        )
    error = caught.value.body["error"]
    assert error["type"] == "rate_limit_error"
    assert error["message"].startswith("budget_exceeded: ") and "budget 'cap'" in error["message"]
    headers = caught.value.response.headers
    assert headers["x-should-retry"] == "false" and int(headers["retry-after"]) >= 1
    (row,) = app.rows()
    assert (row["status"], row["id"]) == ("blocked", headers["x-llmops-call-id"])
    assert server.requests == []


def test_a_provider_failing_mid_stream_is_an_error_event(running, provider) -> None:
    app = running()
    provider.events([_chunk({"role": "assistant", "content": "Half"})], cut=True)
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        app.client().messages.stream(
            model="gpt-4o-mini", max_tokens=50, messages=[{"role": "user", "content": "Hi"}],
            extra_body={"num_retries": 0},
        ) as stream,
    ):  # fmt: skip
        for _ in stream:
            pass
    assert caught.value.body["type"] == "error"
    (row,) = app.rows()
    assert row["status"] == "error"


def test_a_client_that_goes_away_mid_stream_is_recorded_as_cancelled(running, server) -> None:
    app = running()
    reply = Reply(
        text=" ".join(["word"] * 400), prompt_tokens=5005, cached_tokens=5000, chunk_delay=0.01
    )
    server.enqueue(reply)
    with app.client().messages.stream(
        model="claude-haiku-4-5", max_tokens=1000, messages=[{"role": "user", "content": "Talk"}]
    ) as stream:
        for _, _text in zip(range(3), stream.text_stream, strict=False):
            pass
    deadline = time.monotonic() + 20
    while True:
        rows = app.rows()
        if rows and rows[0]["status"] != "ok":
            break
        assert time.monotonic() < deadline, rows
        time.sleep(0.1)
    assert rows[0]["status"] == "cancelled"
    # the input's tokens as message_start reported them, not a local count
    assert (rows[0]["prompt_tokens"], rows[0]["cached_tokens"]) == (5005, 5000)


def test_virtual_keys_guard_the_route(running, server, monkeypatch) -> None:
    from datetime import UTC, datetime

    from llmops.server import access as access_module
    from llmops.store.keys import create_key

    monkeypatch.setattr(access_module, "KEY_CACHE_SECONDS", 0.0)  # see a new key at once
    app = running()
    now = datetime.now(UTC)
    _, secret = create_key(app.gateway.engine, "claude-only", now, models=["claude-haiku-4-5"])
    ask = {"max_tokens": 5, "messages": [{"role": "user", "content": "Hi"}]}
    with pytest.raises(anthropic.AuthenticationError) as caught:
        app.client().messages.create(model="claude-haiku-4-5", **ask)  # sk-client: unknown
    assert caught.value.body["error"]["type"] == "authentication_error"
    keyed = anthropic.Anthropic(base_url=app.url, api_key=secret, max_retries=0)
    with pytest.raises(anthropic.PermissionDeniedError, match="may not use 'gpt-4o-mini'"):
        keyed.messages.create(model="gpt-4o-mini", **ask)
    message = keyed.messages.create(model="claude-haiku-4-5", **ask)
    assert message.content[0].text == "Echo: Hi"
    (row,) = app.rows()
    assert (row["status"], row["api_key"]) == ("ok", "claude-only")


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-haiku-4-5"])
def test_a_providers_retry_after_is_passed_on(running, server, model) -> None:
    """The OpenAI route passed it on, /v1/messages dropped it (the SDK then guessed)."""
    app = running()
    server.enqueue(*[Reply(status=429, text="slow down")] * 4)
    body = {"model": model, "max_tokens": 5, "messages": [{"role": "user", "content": "Hi"}],
            "num_retries": 0}  # fmt: skip
    status, headers, answer = app.post(body)
    assert (status, answer["error"]["type"]) == (429, "rate_limit_error")
    assert headers.get("retry-after") == "0"  # what the fake server sends


@pytest.mark.parametrize("stream", [False, True])
def test_an_anthropic_providers_errors_pass_on_as_they_are(running, provider, stream) -> None:
    """litellm wraps them (a 529 as a 500 when streamed, a 413 as a 400, the body inside
    its own words or a bytes repr): the client got the wrong SDK error and litellm's text."""
    app = running()
    client = app.client(max_retries=0)
    ask = {"model": "claude-haiku-4-5", "max_tokens": 5, "extra_body": {"num_retries": 0},
           "messages": [{"role": "user", "content": "Hi"}]}  # fmt: skip
    cases = [(529, "overloaded_error", anthropic.APIStatusError),
             (413, "request_too_large", anthropic.APIStatusError),
             (500, "api_error", anthropic.InternalServerError)]  # fmt: skip
    for status, kind, error in cases:
        provider.error(status, kind, f"real {kind}")
        with pytest.raises(error) as caught:
            if stream:
                with client.messages.stream(**ask) as events:
                    events.get_final_message()
            else:
                client.messages.create(**ask)
        assert caught.value.status_code == status, caught.value.body
        assert caught.value.body == {
            "type": "error",
            "error": {"type": kind, "message": f"real {kind}"},
        }


def test_a_client_that_gives_up_waiting_leaves_its_call_cancelled(running, server) -> None:
    app = running()
    server.enqueue(Reply(text="too late", prompt_tokens=1000, delay=2.5))
    with pytest.raises(anthropic.APITimeoutError):
        app.client(max_retries=0, timeout=0.5).messages.create(
            model="gpt-4o-mini", max_tokens=5, messages=[{"role": "user", "content": "Hi"}]
        )
    deadline = time.monotonic() + 20
    while not (rows := app.rows()):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert [r["status"] for r in rows] == ["cancelled"]


def test_anthropic_endpoints_not_served_answer_in_anthropics_shape(running) -> None:
    """They answered in OpenAI's shape, which the Anthropic SDK cannot read."""
    app = running()
    client = app.client(max_retries=0)
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.messages.count_tokens(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
        )
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == "not_found_error"
    assert "answers POST /v1/messages of Anthropic's API only" in str(caught.value)
    assert app.rows() == []
