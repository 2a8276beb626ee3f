"""``llmops serve``: the official OpenAI SDK against the server over real HTTP, with the
fake model server as the upstream; every call lands in the database."""

from __future__ import annotations

import asyncio
import http.server
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import sqlalchemy as sa

from llmops import Budget
from llmops.store.queries import stored_calls
from llmops.store.tables import CALLS, FEEDBACK
from llmops.testing import Reply

PRICES = {"gpt-4o-mini": {"input_per_million": 1000, "output_per_million": 2000}}


class Running:
    def __init__(self, gateway: Any, url: str) -> None:
        self.gateway, self.url = gateway, url

    def client(self, api_key: str = "none", **kwargs: Any) -> openai.OpenAI:
        kwargs.setdefault("max_retries", 0)
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=api_key, **kwargs)

    def rows(self) -> list[Any]:
        self.gateway.flush()
        with self.gateway.engine.connect() as connection:
            return stored_calls(connection)

    def post(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> tuple:
        answer = httpx.post(
            self.url + path,
            content=body,
            headers={"content-type": "application/json", **(headers or {})},
            timeout=30,
        )
        return answer.status_code, dict(answer.headers), answer.json()


@pytest.fixture
def running(
    server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, repo, serve_in_thread, direct
) -> Iterator[Any]:
    """The app on a real uvicorn server in this process; the upstream is ``server``."""
    from llmops import Gateway

    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-upstream")

    def start(**kwargs: Any) -> Running:
        kwargs.setdefault("prices", PRICES)
        kwargs.setdefault("direct", direct)
        gateway = Gateway(
            f"sqlite:///{tmp_path / 'db' / 'llmops.db'}", prompts=repo.root / "prompts",
            home=tmp_path / "home", **kwargs,
        )  # fmt: skip
        return Running(gateway, serve_in_thread(gateway))

    yield start


def test_a_chat_completion_is_answered_and_recorded(running, server) -> None:
    app = running()
    server.enqueue(Reply(text="Paris.", prompt_tokens=20, completion_tokens=2))
    raw = app.client().chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Capital of France?"}],
        user="ann",
        extra_headers={"x-llmops-tags": "geo, quiz", "x-llmops-session": "s-1",
                       "x-llmops-metadata": '{"ticket": 7}'},
    )  # fmt: skip
    completion = raw.parse()
    assert completion.choices[0].message.content == "Paris."
    assert completion.usage.prompt_tokens == 20 and completion.usage.completion_tokens == 2
    call_id = raw.headers["x-llmops-call-id"]
    (row,) = app.rows()
    assert row["id"] == call_id and row["status"] == "ok"
    assert (row["prompt_tokens"], row["completion_tokens"]) == (20, 2)
    assert row["cost_usd"] == pytest.approx(20 * 0.001 + 2 * 0.002)
    assert (row["user_id"], row["tags"], row["session_id"]) == ("ann", ["geo", "quiz"], "s-1")
    assert row["metadata"] == {"ticket": 7}
    sent = server.requests[-1].body
    assert sent["model"] == "gpt-4o-mini"


def test_streaming_with_usage_and_tools_pass_through(running, server) -> None:
    app = running()
    server.enqueue(Reply(text="one two three", prompt_tokens=9, completion_tokens=3))
    stream = app.client().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Count"}], stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3
    server.enqueue(Reply(text="x", prompt_tokens=5, completion_tokens=1))
    quiet = list(
        app.client().chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
    )
    assert all(c.usage is None for c in quiet)  # not asked for: not sent
    rows = app.rows()
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert (rows[0]["prompt_tokens"], rows[0]["completion_tokens"]) == (9, 3)
    assert rows[0]["ttft_ms"] is not None


def test_tools_and_response_format_reach_the_provider(running, server) -> None:
    app = running()
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}]  # fmt: skip
    app.client().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Weather?"}], tools=tools,
        response_format={"type": "json_object"}, temperature=0.2,
    )  # fmt: skip
    sent = server.requests[-1].body
    assert sent["tools"] == tools and sent["response_format"] == {"type": "json_object"}
    assert sent["temperature"] == 0.2


def test_the_async_sdk(running, server) -> None:
    app = running()

    async def ask() -> list[str]:
        client = openai.AsyncOpenAI(base_url=f"{app.url}/v1", api_key="none", max_retries=0)
        answers = await asyncio.gather(*(
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": f"n{i}"}])
            for i in range(5)
        ))  # fmt: skip
        await client.close()
        return [a.choices[0].message.content or "" for a in answers]

    answers = asyncio.run(ask())
    assert len(answers) == 5
    assert len(app.rows()) == 5


def test_a_prompt_of_the_servers_folder_by_reference(running, server, project) -> None:
    app = running()
    server.enqueue(Reply(text="Hi Ada", prompt_tokens=11, completion_tokens=2))
    completion = app.client().chat.completions.create(
        model="prompt:greet@production", messages=[], extra_body={"variables": {"name": "Ada"}}
    )
    assert completion.choices[0].message.content == "Hi Ada"
    (row,) = app.rows()
    assert row["prompt_name"] == "greet" and row["prompt_version"]
    sent = server.requests[-1].body
    assert any("Ada" in str(m.get("content")) for m in sent["messages"])


def test_errors_have_openais_shape_and_status(running, server) -> None:
    app = running()
    server.enqueue(Reply(status=429))
    with pytest.raises(openai.RateLimitError):
        app.client().chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}],
            extra_body={"num_retries": 0},
        )  # fmt: skip
    status, _, body = app.post("/v1/chat/completions", b"{not json")
    assert status == 400 and body["error"]["code"] == "invalid_json"
    status, _, body = app.post("/v1/chat/completions", b"x" * (11 * 1024 * 1024))
    assert status == 413
    status, _, body = app.post("/v1/chat/completions", json.dumps({"model": "m"}).encode())
    assert status == 400 and "messages" in body["error"]["message"]
    status, _, body = app.post(
        "/v1/chat/completions",
        json.dumps({"model": "prompt:nope", "messages": []}).encode(),
    )
    assert status == 400 and "nope" in body["error"]["message"]
    rows = app.rows()
    assert [r["status"] for r in rows] == ["error"]  # the provider's 429, recorded


def test_a_blocking_budget_answers_429_budget_exceeded(running, server) -> None:
    app = running(budgets=[Budget(name="cap", window="day", limit_usd=0.001, action="block")])
    status, _, body = app.post(
        "/v1/chat/completions",
        json.dumps(
            {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": "Hi"}],
                "max_tokens": 50,
            }
        ).encode(),
    )
    assert status == 429 and body["error"]["type"] == "budget_exceeded"
    assert "budget 'cap'" in body["error"]["message"]
    assert [r["status"] for r in app.rows()] == ["blocked"]
    assert server.requests == []


def test_feedback_by_call_id(running, server) -> None:
    app = running()
    raw = app.client().chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
    )
    call_id = raw.headers["x-llmops-call-id"]
    status, _, body = app.post(
        "/v1/feedback", json.dumps({"call_id": call_id, "score": 1, "name": "thumbs"}).encode()
    )
    assert status == 200 and body["call_id"] == call_id
    app.gateway.flush()
    with app.gateway.engine.connect() as connection:
        (row,) = connection.execute(sa.select(FEEDBACK)).mappings()
    assert (row["call_id"], row["name"], row["score"]) == (call_id, "thumbs", 1.0)
    unknown = json.dumps({"call_id": "00000000-0000-4000-8000-000000000000", "score": 1})
    assert app.post("/v1/feedback", unknown.encode())[0] == 404


def test_models_and_health(running, project) -> None:
    app = running()
    models = [m.id for m in app.client().models.list()]
    assert "prompt:greet" in models and "gpt-4o-mini" in models
    assert httpx.get(app.url + "/health", timeout=10).json()["status"] == "ok"


def test_a_client_that_goes_away_mid_stream_is_recorded_as_cancelled(running, server) -> None:
    app = running()
    server.enqueue(Reply(text=" ".join(["word"] * 400), prompt_tokens=5, chunk_delay=0.01))
    stream = app.client().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Talk"}], stream=True
    )
    for _, _chunk in zip(range(3), stream, strict=False):
        pass
    stream.close()
    deadline = time.monotonic() + 20
    while True:
        rows = app.rows()
        if rows and rows[0]["status"] != "ok":
            break
        assert time.monotonic() < deadline, rows
        time.sleep(0.1)
    assert rows[0]["status"] == "cancelled"


def test_metrics_for_prometheus(running, server) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    app = running()
    server.enqueue(Reply(text="ok", prompt_tokens=20, completion_tokens=2))
    app.client().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
    )
    app.gateway.flush()
    answer = httpx.get(app.url + "/metrics", timeout=30)
    assert answer.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(answer.text)}
    spend = sum(s.value for s in families["llmops_spend_usd"].samples if s.name.endswith("_total"))
    assert spend == pytest.approx(20 * 0.001 + 2 * 0.002)


def test_embeddings_are_answered_priced_and_recorded(running, server) -> None:
    app = running(
        prices={"text-embedding-3-small": {"input_per_million": 20, "output_per_million": 0}}
    )
    raw = app.client().embeddings.with_raw_response.create(
        model="text-embedding-3-small", input=["red apple", "green pear tree"], user="ann"
    )
    answer = raw.parse()
    assert [len(item.embedding) for item in answer.data] == [8, 8]
    assert answer.usage.prompt_tokens == 5
    (row,) = app.rows()
    assert row["id"] == raw.headers["x-llmops-call-id"]
    assert (row["prompt_tokens"], row["completion_tokens"], row["user_id"]) == (5, 0, "ann")
    assert row["cost_usd"] == pytest.approx(5 * 20 / 1_000_000)
    assert row["usage_details"]["operation"] == "embeddings"
    assert [m["content"] for m in row["request"]["messages"]] == ["red apple", "green pear tree"]
    status, _, body = app.post("/v1/embeddings", json.dumps({"model": "m", "input": []}).encode())
    assert status == 400 and "input" in body["error"]["message"]


def test_embeddings_of_token_ids_as_langchain_sends_them(running, server) -> None:
    """LangChain's OpenAIEmbeddings tokenizes texts and sends the ids (lists of ints):
    they reach the provider as sent and the call is stored with their text."""
    app = running(
        prices={"text-embedding-3-small": {"input_per_million": 20, "output_per_million": 0}}
    )
    client = app.client()
    one = client.embeddings.create(model="text-embedding-3-small", input=[9906, 1917])
    assert len(one.data) == 1 and one.usage.prompt_tokens == 2
    two = client.embeddings.create(
        model="text-embedding-3-small", input=[[9906, 1917], [15339]], encoding_format="float"
    )
    assert len(two.data) == 2 and two.usage.prompt_tokens == 3
    assert server.requests[-1].body["input"] == [[9906, 1917], [15339]]
    rows = sorted(app.rows(), key=lambda r: r["prompt_tokens"])
    assert [[m["content"] for m in r["request"]["messages"]] for r in rows] == [
        ["Hello world"],
        ["Hello world", "hello"],
    ]
    assert rows[1]["cost_usd"] == pytest.approx(3 * 20 / 1_000_000)
    for bad in ([[]], [1, "a"], [-1], [True], [[1.5]], [2**31], {"a": 1}, None):
        body = json.dumps({"model": "text-embedding-3-small", "input": bad}).encode()
        status, _, answer = app.post("/v1/embeddings", body)
        assert status == 400 and "token ids" in answer["error"]["message"], (bad, answer)
    assert len(app.rows()) == 2


def test_the_python_api_embeds_too(make_gateway, server) -> None:
    gw = make_gateway(prices={"text-embedding-3-small": {"input_per_million": 20,
                                                         "output_per_million": 0}})  # fmt: skip
    result = gw.embed(
        "one two three", model="openai/text-embedding-3-small", api_base=server.base_url,
        api_key="sk-test",
    )  # fmt: skip
    assert len(result.vectors) == 1 and result.usage.prompt_tokens == 3
    assert result.cost_usd == pytest.approx(3 * 20 / 1_000_000)
    server.enqueue(Reply(status=400))  # not retried by the provider's client
    with pytest.raises(Exception, match="400"):
        gw.embed("x", model="openai/text-embedding-3-small", api_base=server.base_url,
                 api_key="sk-test", num_retries=0, max_retries=0)  # fmt: skip
    gw.flush()
    with gw.engine.connect() as connection:
        statuses = connection.execute(sa.select(CALLS.c.status)).scalars().all()
    assert sorted(statuses) == ["error", "ok"]


# -- what clients send and providers answer, found by attacking the server -----------------


def test_an_answer_with_half_a_surrogate_pair_reaches_the_client_once(running, server) -> None:
    """A provider's text may end inside an emoji (`\\ud83d`): JSON escapes it, UTF-8 cannot.
    It was a 502 after the call was recorded and billed, which the SDK retried (3 calls)."""
    app = running()
    server.enqueue(Reply(text="almost \ud83d"))
    client = app.client(max_retries=2)  # the SDK's default: a 5xx would be sent again
    answer = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
    )
    assert answer.choices[0].message.content == "almost \ud83d"
    assert len(server.requests) == 1 and [r["status"] for r in app.rows()] == ["ok"]


def test_n_choices_are_recorded_by_the_first(running, server) -> None:
    """With `n`, the chunks of the choices interleave: the stored answer is the first
    choice's, streamed or not (streamed, it was the choices' pieces mixed together)."""
    app = running()
    client = app.client()
    messages = [{"role": "user", "content": "Hi"}]
    server.enqueue(Reply(text="first answer"), Reply(text="first answer"))
    whole = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=messages, n=2
    )
    assert [c.message.content for c in whole.parse().choices] == [
        "first answer", "first answer (2)"
    ]  # fmt: skip
    streamed = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=messages, n=2, stream=True
    )
    texts: dict[int, str] = {}
    for chunk in streamed.parse():
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
    assert texts == {0: "first answer", 1: "first answer (2)"}
    app.gateway.flush()
    with app.gateway.engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT call_id, response_text FROM llm_call_content"))
        stored = {call_id: text for call_id, text in rows}
    ids = [whole.headers["x-llmops-call-id"], streamed.headers["x-llmops-call-id"]]
    assert [stored[i] for i in ids] == ["first answer", "first answer"]


BAD_REQUESTS = {
    "content a number": (b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":5}]}',
                         {}, "content must be a text"),
    "a part not an object": (
        b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":["hi"]}]}', {},
        "content must be a text"),
    "num_retries -1": (b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],'
                       b'"num_retries":-1}', {}, "num_retries must be"),
    "timeout a word": (b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],'
                       b'"timeout":"abc"}', {}, "timeout must be"),
    "temperature NaN": (b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],'
                        b'"temperature":NaN}', {}, "not finite"),
    "top_p 1e309": (b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],'
                    b'"top_p":1e309}', {}, "not finite"),
    "a lone surrogate": (b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":'
                         b'"a\\ud800b"}]}', {}, "not valid Unicode"),
    "metadata 3,000 deep": (b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}',
                            {"x-llmops-metadata": "[" * 3000 + "]" * 3000},
                            "x-llmops-metadata must be"),
    "a 10,000-character user": (
        b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}',
        {"x-llmops-user": "u" * 10_000}, "longer than 8192"),
    "stream a word": (b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],'
                      b'"stream":"yes"}', {}, "stream must be true or false"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_a_bad_request_is_a_400_that_clients_do_not_retry(running, server, case) -> None:
    """Each was a 500 or 502 (which the SDKs send twice more) or went on to the provider
    as JSON no API takes (`NaN`)."""
    body, headers, message = BAD_REQUESTS[case]
    app = running()
    status, _, answer = app.post("/v1/chat/completions", body, headers)
    assert status == 400 and message in answer["error"]["message"], answer
    assert answer["error"]["type"] == "invalid_request_error"
    assert server.requests == [] and app.rows() == []


def test_unknown_paths_and_methods_answer_in_openais_shape(running) -> None:
    app = running()
    with pytest.raises(openai.NotFoundError, match="/v1/responses"):
        app.client().responses.create(model="gpt-4o-mini", input="hi")
    answer = httpx.get(f"{app.url}/v1/chat/completions", timeout=10)
    assert answer.status_code == 405 and answer.headers["allow"] == "POST"
    assert "GET /v1/chat/completions" in answer.json()["error"]["message"]


def test_attribution_headers_are_read_as_utf8(running, server) -> None:
    """HTTP headers carry bytes; clients send UTF-8 (`José`, not `JosÃ©`)."""
    app = running()
    server.enqueue(Reply(text="ok"))
    body = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
    headers = {"x-llmops-user": "José".encode(), "x-llmops-tags": "日本, b".encode()}
    headers["content-type"] = b"application/json"
    answer = httpx.post(f"{app.url}/v1/chat/completions", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    (row,) = app.rows()
    assert (row["user_id"], row["tags"]) == ("José", ["日本", "b"])


def test_feedback_a_database_would_refuse_is_a_400(running, server) -> None:
    """A comment that is not a text was answered 200 and then refused by the database
    (lost); a score too large for a float was a 502."""
    app = running()
    server.enqueue(Reply(text="ok"))
    raw = app.client().chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
    )
    call_id = raw.headers["x-llmops-call-id"]
    for extra, message in (
        (b'"score":1,"comment":{"a":1}', "comment must be a text, got a dict"),
        (b'"score":1,"user":["x"]', "user must be a text, got a list"),
        (b'"score":1' + b"0" * 400, "score must be a finite number"),
    ):
        body = b'{"call_id":"' + call_id.encode() + b'",' + extra + b"}"
        status, _, answer = app.post("/v1/feedback", body)
        assert status == 400 and message in answer["error"]["message"], answer
    app.gateway.flush()
    with app.gateway.engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(FEEDBACK)).scalar() == 0


def test_provider_errors_never_hand_the_servers_key_or_a_traceback_to_clients(
    running, server, monkeypatch
) -> None:
    """A provider's error may echo the key it was sent (the server's own) and litellm puts
    tracebacks in some messages (the server's paths): the stored error was scrubbed, the
    client's copy was not."""
    key = "sk-server-SECRET-0123456789"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    app = running()
    server.enqueue(
        Reply(status=401, text=f"Incorrect API key provided: {key}."),
        Reply(status=400, text='bad\nTraceback (most recent call last):\n  File "/srv/x.py"'),
    )
    client = app.client(max_retries=0)
    for _ in range(2):
        with pytest.raises(openai.APIStatusError) as failed:
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
            )
        message = failed.value.body["message"] if failed.value.body else ""
        assert key not in failed.value.response.text and "/srv/x.py" not in message, message
        assert "Traceback" not in failed.value.response.text


def test_a_huge_provider_error_body_is_not_passed_on(running, server) -> None:
    """Every text of a provider's error body is scrubbed on the event loop: a megabyte of
    them held up the worker for over a second. A body over 16 KB becomes OpenAI's shape
    around the provider's message (bodies are well under a kilobyte)."""
    app = running(direct=True)
    huge = {"error": {"message": "too big"}, "items": [f"item {i}" for i in range(25_000)]}
    server.enqueue(Reply(status=400, error_body=huge))
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}
    status, _, answer = app.post("/v1/chat/completions", json.dumps(body).encode())
    assert status == 400 and "items" not in answer, str(answer)[:200]
    assert "too big" in answer["error"]["message"]


def test_a_provider_that_cannot_be_reached_is_a_502_on_both_routes(
    running, server, monkeypatch
) -> None:
    """litellm calls an unreachable provider a 500 (APIConnectionError): clients read that
    as this server's own fault; the direct route said 502."""
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    app = running()
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "x"}],
        "num_retries": 0,
    }
    status, _, answer = app.post("/v1/chat/completions", json.dumps(body).encode())
    assert status == 502 and answer["error"]["type"] == "api_error", answer
    assert [r["status"] for r in app.rows()] == ["error"]


def test_a_providers_error_body_reaches_clients_without_the_servers_key(
    running, server, monkeypatch
) -> None:
    """The direct route hands clients the provider's own error body: only its
    `error.message` was scrubbed, so a key echoed in another field (or in a body without
    a message) reached every client."""
    key = "sk-server-SECRET-0123456789abcdef"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    app = running()
    server.enqueue(
        Reply(status=401, error_body={"error": {"message": "no", "param": f"Bearer {key}"}}),
        Reply(status=401, error_body={"error": {"type": "auth", "detail": f"Bearer {key}"}}),
        Reply(status=401, error_body={"error": {"message": "no"}, "echo": {key: [key]}}),
    )
    for _ in range(3):
        status, _, answer = app.post(
            "/v1/chat/completions",
            json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})
            .encode(),
        )  # fmt: skip
        assert status == 401 and key not in json.dumps(answer), answer
    assert [r["status"] for r in app.rows()] == ["error"] * 3


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/embeddings", {"model": "text-embedding-3-small", "input": "hello"}),
        (
            "/v1/chat/completions",
            {
                "model": "gpt-4o-mini",
                "stream": True,
                "messages": [{"role": "user", "content": "x"}],
            },
        ),
    ],
    ids=["embeddings", "stream"],
)
def test_a_client_that_leaves_before_the_first_byte_cancels_the_call(
    running, server, path, body
) -> None:
    """An embeddings call, or a stream whose provider had not started answering, was
    waited out to the end when its client left: stored `ok` and billed, the tokens of an
    answer nobody got."""
    app = running()
    server.enqueue(Reply(text="a b", prompt_tokens=9, completion_tokens=2, delay=2.5))
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(app.url + path, json=body, timeout=0.5)
    row = _cancelled_row(app)
    assert row["completion_tokens"] in (None, 0), row


def _cancelled_row(app: Running) -> Any:
    """The one call the app recorded (waited for), which must be `cancelled` early."""
    deadline = time.monotonic() + 20
    while not (rows := app.rows()):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    (row,) = rows
    assert row["status"] == "cancelled" and row["latency_ms"] < 2000, row
    return row


def test_a_client_that_gives_up_waiting_leaves_its_call_cancelled(running, server) -> None:
    """A non-streaming client that timed out was never noticed: the provider's answer was
    recorded `ok` and billed, and the SDK's retries made three such calls for one."""
    app = running()
    server.enqueue(Reply(text="too late", prompt_tokens=1000, delay=2.5))
    client = app.client(max_retries=0, timeout=0.5)
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
        )
    _cancelled_row(app)
    # an answer in time is answered as before
    server.enqueue(Reply(text="fast", prompt_tokens=5))
    done = app.client().chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
    )
    assert done.choices[0].message.content == "fast"


class _SlowExporter(http.server.BaseHTTPRequestHandler):
    """An exporter that takes 2 s to answer (a slow read of the database)."""

    def do_GET(self) -> None:
        time.sleep(2)
        body = b"llmops_database_up 1\n"
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("direct", ["direct"], indirect=True)  # no model is called
def test_scrapes_of_a_slow_exporter_hold_up_no_request(
    running, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/metrics (several workers: relayed from the supervisor's exporter) waited for it in
    the event loop's thread pool (6 threads on two cores): a few scrapes of a slow exporter
    held every thread, and /v1/models, prompt loads, budget checks waited up to 30 s
    behind them. Scrapes now wait on the loop, holding no thread."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from llmops.server import METRICS_URL_ENV

    exporter = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowExporter)
    threading.Thread(target=exporter.serve_forever, daemon=True).start()
    monkeypatch.setenv(METRICS_URL_ENV, f"http://127.0.0.1:{exporter.server_port}/metrics")
    app = running()
    try:
        with ThreadPoolExecutor(12) as pool:
            scrapes = [pool.submit(httpx.get, app.url + "/metrics", timeout=60) for _ in range(12)]
            time.sleep(0.5)  # every scrape waits for the exporter
            started = time.perf_counter()
            listed = httpx.get(app.url + "/v1/models", timeout=60)
            took = time.perf_counter() - started
            answers = [scrape.result() for scrape in scrapes]
    finally:
        exporter.shutdown()
    assert listed.status_code == 200
    assert took < 1.0, f"/v1/models waited {took:.1f} s behind the scrapes"
    assert [a.status_code for a in answers] == [200] * 12
    assert all(a.text == "llmops_database_up 1\n" for a in answers)
