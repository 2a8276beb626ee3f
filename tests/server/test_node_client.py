"""The official ``openai`` npm package (Node) against ``llmops serve``: a chat completion, a
stream with usage, and a tool call, each answered as the SDK expects and recorded.

The package is installed once into a folder under the system's temp folder that later
sessions reuse; the test is skipped when ``node``/``npm`` are missing or the npm registry
cannot be reached. The server runs in this process (uvicorn on a thread); the upstream
is the fake model server, behind a small relay that answers tool-calling requests with a
tool call (the fake server's replies are text)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from llmops.store.queries import stored_calls
from llmops.testing import FakeLLMServer, Reply
from tests.server.test_cli_serve import PRICES_YAML, UPSTREAM_KEY, cost_of

pytestmark = pytest.mark.integration

# openai 7 needs Node 22; 6.49.0 is the newest release that runs on Node 20
OPENAI_NPM = "6.49.0"
NETWORK_ERRORS = ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT", "ECONNRESET",
                  "ENETUNREACH", "network")  # fmt: skip
TOOL_ARGUMENTS = '{"city": "Paris"}'

SCRIPT = r"""
const { OpenAI } = require(process.env.OPENAI_MODULE);

async function main() {
  const client = new OpenAI({ baseURL: process.env.BASE_URL, apiKey: "sk-node", maxRetries: 0 });
  const out = {};

  const chat = await client.chat.completions
    .create({ model: "gpt-4o-mini", messages: [{ role: "user", content: "Capital of France?" }],
              user: "node-user" })
    .withResponse();
  out.chat = { content: chat.data.choices[0].message.content, usage: chat.data.usage,
               callId: chat.response.headers.get("x-llmops-call-id") };

  const streamed = await client.chat.completions
    .create({ model: "gpt-4o-mini", messages: [{ role: "user", content: "Count" }],
              stream: true, stream_options: { include_usage: true } })
    .withResponse();
  let text = "", usage = null, chunks = 0;
  for await (const chunk of streamed.data) {
    chunks += 1;
    if (chunk.choices.length) text += chunk.choices[0].delta.content || "";
    if (chunk.usage) usage = chunk.usage;
  }
  out.stream = { text, usage, chunks, callId: streamed.response.headers.get("x-llmops-call-id") };

  const tools = [{ type: "function", function: { name: "weather", description: "Weather now",
    parameters: { type: "object", properties: { city: { type: "string" } },
                  required: ["city"] } } }];
  const ask = [{ role: "user", content: "Weather in Paris?" }];
  const first = await client.chat.completions
    .create({ model: "gpt-4o-mini", messages: ask, tools, tool_choice: "auto" })
    .withResponse();
  const message = first.data.choices[0].message;
  const call = message.tool_calls[0];
  const second = await client.chat.completions
    .create({ model: "gpt-4o-mini", tools, messages: [...ask, message,
      { role: "tool", tool_call_id: call.id, content: "18 C, sunny" }] })
    .withResponse();
  out.tools = {
    finishReason: first.data.choices[0].finish_reason,
    name: call.function.name, arguments: call.function.arguments, id: call.id,
    callId: first.response.headers.get("x-llmops-call-id"),
    answer: second.data.choices[0].message.content,
    answerCallId: second.response.headers.get("x-llmops-call-id"),
  };
  process.stdout.write(JSON.stringify(out));
}

main().catch((err) => { console.error(err && err.stack || String(err)); process.exit(1); });
"""


# -- the npm package, once per session --------------------------------------------------------


@pytest.fixture(scope="session")
def openai_npm() -> Path:
    """The installed ``openai`` package folder (``node_modules/openai``)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed for the Node client test (apt-get install nodejs)")
    cache = Path(tempfile.gettempdir()) / f"llmops-test-npm-openai-{OPENAI_NPM}"
    module = cache / "node_modules" / "openai"
    if (module / "package.json").is_file():
        return module
    work = Path(tempfile.mkdtemp(prefix="llmops-npm-", dir=cache.parent))
    (work / "package.json").write_text('{"private": true}\n', encoding="utf-8")
    result = subprocess.run(
        [npm, "install", f"openai@{OPENAI_NPM}", "--no-audit", "--no-fund", "--no-save",
         "--loglevel=error", "--fetch-retries=1", "--fetch-retry-mintimeout=2000",
         "--fetch-retry-maxtimeout=5000"],
        cwd=work, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        output = result.stdout + result.stderr
        if any(marker in output for marker in NETWORK_ERRORS):
            pytest.skip(f"the npm registry cannot be reached: {output.strip()[-300:]}")
        raise AssertionError(f"npm install openai@{OPENAI_NPM} failed:\n{output}")
    if cache.exists() and not (module / "package.json").is_file():
        shutil.rmtree(cache, ignore_errors=True)  # left half-made by an interrupted session
    try:
        work.rename(cache)  # atomic; another session may have won the race
    except OSError:
        shutil.rmtree(work, ignore_errors=True)
    return module


# -- the upstream: the fake model server, plus tool calls -------------------------------------


class _Relay(BaseHTTPRequestHandler):
    """Answers a request that offers tools (and has no tool result yet) with a tool call;
    passes every other request to the fake model server."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    fake: FakeLLMServer

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        body = json.loads(raw or b"{}")
        messages = body.get("messages") or []
        if body.get("tools") and not any(m.get("role") == "tool" for m in messages):
            status, data = 200, json.dumps(_tool_call_answer(body)).encode()
            kind = "application/json"
        else:
            request = urllib.request.Request(  # noqa: S310 (http to the fake server)
                self.fake.url + self.path, data=raw, method="POST",
                headers={k: v for k, v in self.headers.items()
                         if k.lower() in ("content-type", "authorization")},
            )  # fmt: skip
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 (same)
                    status, data = answer.status, answer.read()
                    kind = answer.headers.get("content-type", "application/json")
            except urllib.error.HTTPError as exc:
                status, data, kind = exc.code, exc.read(), "application/json"
        head = (f"HTTP/1.1 {status} OK\r\ncontent-type: {kind}\r\n"
                f"content-length: {len(data)}\r\n\r\n").encode()  # fmt: skip
        self.wfile.write(head + data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _tool_call_answer(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "chatcmpl-tool-1",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "gpt-4o-mini"),
        "choices": [{
            "index": 0,
            "finish_reason": "tool_calls",
            "message": {"role": "assistant", "content": None, "tool_calls": [{
                "id": "call_weather_1", "type": "function",
                "function": {"name": "weather", "arguments": TOOL_ARGUMENTS}}]},
        }],
        "usage": {"prompt_tokens": 60, "completion_tokens": 15, "total_tokens": 75},
    }  # fmt: skip


@pytest.fixture
def upstream(server: FakeLLMServer) -> Iterator[str]:
    handler = type("Relay", (_Relay,), {"fake": server})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture
def app(
    upstream: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, serve_in_thread
) -> Iterator[Any]:
    """The server on a real uvicorn in this process: its Gateway and its URL."""

    from llmops import Gateway

    monkeypatch.setenv("OPENAI_BASE_URL", upstream)
    monkeypatch.setenv("OPENAI_API_KEY", UPSTREAM_KEY)
    (tmp_path / "prices.yaml").write_text(PRICES_YAML, encoding="utf-8")
    gateway = Gateway(f"sqlite:///{tmp_path / 'db.sqlite'}", prompts=tmp_path / "prompts",
                      home=tmp_path / "home", prices=tmp_path / "prices.yaml",
                      direct=True)  # fmt: skip
    yield gateway, serve_in_thread(gateway)


def test_the_node_sdk_chats_streams_and_calls_tools(openai_npm, app, server, tmp_path) -> None:
    gateway, url = app
    server.enqueue(
        Reply(text="Paris.", prompt_tokens=14, completion_tokens=2),
        Reply(text="one two three", prompt_tokens=9, completion_tokens=3),
        Reply(text="It is 18 C and sunny.", prompt_tokens=90, completion_tokens=8),
    )
    script = tmp_path / "client.cjs"
    script.write_text(SCRIPT, encoding="utf-8")
    result = subprocess.run(
        ["node", str(script)],
        env={**os.environ, "OPENAI_MODULE": str(openai_npm), "BASE_URL": f"{url}/v1"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)

    assert out["chat"]["content"] == "Paris."
    assert out["chat"]["usage"]["prompt_tokens"] == 14
    assert out["stream"]["text"] == "one two three"
    assert out["stream"]["usage"] == {**out["stream"]["usage"], "prompt_tokens": 9,
                                      "completion_tokens": 3}  # fmt: skip
    assert out["stream"]["chunks"] >= 4  # three words and the usage chunk
    tools = out["tools"]
    assert (tools["finishReason"], tools["name"]) == ("tool_calls", "weather")
    assert json.loads(tools["arguments"]) == json.loads(TOOL_ARGUMENTS)
    assert tools["answer"] == "It is 18 C and sunny."
    # the tool result went upstream as the SDK sent it
    last = server.requests[-1].body["messages"]
    assert last[-1] == {"role": "tool", "tool_call_id": tools["id"], "content": "18 C, sunny"}
    assert last[-2]["tool_calls"][0]["function"]["name"] == "weather"

    gateway.flush()
    with gateway.engine.connect() as connection:
        rows = {r["id"]: r for r in stored_calls(connection)}
    expected = {  # call id -> (prompt tokens, completion tokens)
        out["chat"]["callId"]: (14, 2),
        out["stream"]["callId"]: (9, 3),
        tools["callId"]: (60, 15),
        tools["answerCallId"]: (90, 8),
    }
    assert set(rows) == set(expected)
    for call_id, (prompt, completion) in expected.items():
        row = rows[call_id]
        assert row["status"] == "ok" and not row["tokens_estimated"]
        assert (row["prompt_tokens"], row["completion_tokens"]) == (prompt, completion)
        assert row["cost_usd"] == pytest.approx(cost_of(prompt, completion))
    assert rows[out["chat"]["callId"]]["user_id"] == "node-user"
    assert rows[out["stream"]["callId"]]["ttft_ms"] is not None
    stored = rows[tools["callId"]]["request"]
    assert stored["params"]["tools"][0]["function"]["name"] == "weather"
    assert stored["params"]["tool_choice"] == "auto"
