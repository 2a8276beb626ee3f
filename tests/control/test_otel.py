"""OpenTelemetry export of recorded calls: real Gateway calls to the local model server, spans
and events sent by the SDK's OTLP/HTTP exporters to a real receiver on 127.0.0.1, decoded
from protobuf and checked attribute by attribute."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import sqlalchemy as sa

from llmops.control.otel import (
    CallSpanExporter,
    call_span_id,
    call_trace_id,
    capture_content,
    exporter_from_env,
)
from llmops.errors import ConfigError
from llmops.store.ids import new_id
from llmops.store.tables import CALLS
from llmops.testing import Reply
from tests.conftest import PromptRepo

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # DB-independent
MESSAGES = [
    {"role": "system", "content": "You answer questions about parcels."},
    {"role": "user", "content": "Where is my parcel? Write to ada@example.com"},
]
CONTENT_ON = {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"}
SPAN_KIND_INTERNAL, SPAN_KIND_CLIENT = 1, 3
STATUS_UNSET, STATUS_ERROR = 0, 2


# -- a real OTLP/HTTP receiver ------------------------------------------------------------


def value(any_value: Any) -> Any:
    """An OTLP AnyValue as a Python value."""
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [value(v) for v in any_value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: value(kv.value) for kv in any_value.kvlist_value.values}
    return getattr(any_value, kind)


def attributes(key_values: Any) -> dict[str, Any]:
    return {kv.key: value(kv.value) for kv in key_values}


@dataclass
class Received:
    path: str
    headers: dict[str, str]


@dataclass
class Receiver:
    """Accepts ``POST /v1/traces`` and ``/v1/logs`` (any path ending so), protobuf, gzip or
    not; keeps the spans and log records with their resource attributes. ``hold`` cleared
    makes it wait before answering (``holding`` is set while it waits)."""

    spans: list[Any] = field(default_factory=list)
    logs: list[Any] = field(default_factory=list)
    resources: list[dict[str, Any]] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    hold: threading.Event = field(default_factory=threading.Event)
    holding: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    def __post_init__(self) -> None:
        self.hold.set()

    def receive(self, path: str, headers: dict[str, str], body: bytes) -> bytes:
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

        if headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        self.requests.append(Received(path, headers))
        if path.endswith("/traces"):
            request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
            for resource_spans in request.resource_spans:
                self.resources.append(attributes(resource_spans.resource.attributes))
                for scope_spans in resource_spans.scope_spans:
                    self.spans.extend(scope_spans.spans)
            return trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        request_logs = logs_service_pb2.ExportLogsServiceRequest.FromString(body)
        for resource_logs in request_logs.resource_logs:
            self.resources.append(attributes(resource_logs.resource.attributes))
            for scope_logs in resource_logs.scope_logs:
                self.logs.extend(scope_logs.log_records)
        return logs_service_pb2.ExportLogsServiceResponse().SerializeToString()

    def span(self, name: str | None = None) -> Any:
        found = [s for s in self.spans if name is None or s.name == name]
        assert len(found) == 1, [s.name for s in self.spans]
        return found[0]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        disable_nagle_algorithm = True
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if not state.hold.is_set():
                state.holding.set()
                state.hold.wait(30)
            answer = state.receive(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield state
    state.hold.set()
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def otel(monkeypatch: pytest.MonkeyPatch, receiver: Receiver) -> Iterator[Any]:
    """Build exporters the way LLMOPS_OTEL=1 does, sending to ``receiver``; all are shut
    down after the test."""
    for key in list(os.environ):
        if key.startswith("OTEL_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    made: list[CallSpanExporter] = []

    def make(**env: str) -> CallSpanExporter:
        exporter = exporter_from_env({"LLMOPS_OTEL": "1", **env})
        assert exporter is not None
        made.append(exporter)
        return exporter

    yield make
    for exporter in made:
        exporter.shutdown(timeout=5)


def http(server: Any) -> dict[str, Any]:
    return {
        "model": "openai/gpt-4o-mini",
        "api_base": server.base_url,
        "api_key": "sk-test",
        "num_retries": 0,
        "max_retries": 0,
    }


def watch(gw: Any, exporter: CallSpanExporter) -> list[Any]:
    """Attach ``exporter``, and a list that sees the same rows."""
    seen: list[Any] = []
    gw.recorder.observers.append(exporter)
    gw.recorder.observers.append(lambda kind, row: seen.append(row))
    return seen


def nanos(moment: datetime) -> int:
    return round(moment.timestamp() * 1_000_000) * 1000


def hex_id(number: int, size: int) -> bytes:
    return number.to_bytes(size, "big")


# -- spans of calls -----------------------------------------------------------------------


@SQLITE
def test_a_call_becomes_a_genai_client_span(make_gateway, server, receiver, otel, monkeypatch):
    monkeypatch.setenv("OTEL_SERVICE_NAME", "support-bot")
    exporter = otel()
    gw = make_gateway()
    seen = watch(gw, exporter)
    server.enqueue(
        Reply(
            text="It left the depot.",
            prompt_tokens=1000,
            completion_tokens=200,
            cached_tokens=400,
            reasoning_tokens=50,
            model="gpt-4o-mini-2024-07-18",
        )
    )
    before = time.time_ns()
    result = gw.complete(
        messages=MESSAGES,
        session="conv-7",
        user="user-42",
        tags=["checkout", "eu"],
        temperature=0.2,
        max_tokens=300,
        stop=["END"],
        seed=7,
        **http(server),
    )
    after = time.time_ns()
    assert exporter.flush(10)
    (row,) = seen
    span = receiver.span()
    assert span.name == "chat gpt-4o-mini"
    assert span.kind == SPAN_KIND_CLIENT
    assert span.trace_id == uuid.UUID(result.call_id).bytes  # a root call: its call id
    assert span.span_id == hashlib.sha256(result.call_id.encode()).digest()[:8]
    assert span.parent_span_id == b""
    assert span.status.code == STATUS_UNSET
    assert span.start_time_unix_nano == nanos(row["created_at"])
    assert (
        span.end_time_unix_nano - span.start_time_unix_nano == round(row["latency_ms"] * 1e3) * 1000
    )
    assert before - 1000 <= span.start_time_unix_nano <= span.end_time_unix_nano <= after
    expected_cost = 600 * 0.15e-6 + 400 * 0.075e-6 + 200 * 0.6e-6
    assert row["cost_usd"] == pytest.approx(expected_cost, rel=1e-12)
    assert attributes(span.attributes) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.usage.input_tokens": 1000,
        "gen_ai.usage.output_tokens": 200,
        "gen_ai.usage.cache_read.input_tokens": 400,
        "gen_ai.usage.reasoning.output_tokens": 50,
        "gen_ai.usage.cost": row["cost_usd"],
        "gen_ai.conversation.id": "conv-7",
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.max_tokens": 300,
        "gen_ai.request.stop_sequences": ["END"],
        "gen_ai.request.seed": 7,
        "llmops.call_id": result.call_id,
        "llmops.model": "openai/gpt-4o-mini",
        "llmops.source": "app",
        "llmops.status": "ok",
        "llmops.cost_status": "priced",
        "llmops.latency_ms": row["latency_ms"],
        "llmops.tags": ["checkout", "eu"],
    }  # no user.id (personal data, opt-in) and no message content (opt-in)
    (resource,) = receiver.resources
    assert resource["service.name"] == "support-bot"
    assert resource["telemetry.sdk.name"] == "opentelemetry"
    assert [r.path for r in receiver.requests] == ["/v1/traces"]
    assert receiver.requests[0].headers["content-type"] == "application/x-protobuf"
    assert exporter.stats == {
        "queued": 0,
        "dropped": 0,
        "errors": 0,
        "spans_sent": 1,
        "spans_failed": 0,
        "events_sent": 0,
        "events_failed": 0,
    }


@SQLITE
def test_prompt_cache_writes_user_and_a_fixed_clock(
    make_gateway, server, receiver, otel, project: PromptRepo
):
    """A registry prompt names itself; cache writes use both names of the conventions;
    LLMOPS_OTEL_USER=1 adds user.id; the span starts exactly at the recorded time."""
    exporter = otel(LLMOPS_OTEL_USER="1")
    at = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    gw = make_gateway(prompts=project.prompts, clock=lambda: at)
    seen = watch(gw, exporter)
    server.enqueue(Reply(prompt_tokens=900, completion_tokens=10, cache_write_tokens=800))
    result = gw.complete(
        "greet@production",
        {"name": "Ada"},
        user="user-42",
        model="anthropic/claude-haiku-4-5",
        api_base=server.anthropic_base_url,
        api_key="sk-test",
        num_retries=0,
    )
    assert exporter.flush(10)
    (row,) = seen
    prompt = project.registry.load("greet@production")
    span = receiver.span()
    assert span.start_time_unix_nano == 1772366400_123456000
    assert span.end_time_unix_nano == 1772366400_123456000 + round(row["latency_ms"] * 1e3) * 1000
    got = attributes(span.attributes)
    assert got["user.id"] == "user-42"
    assert (got["gen_ai.prompt.name"], got["llmops.prompt.name"]) == ("greet", "greet")
    assert got["gen_ai.prompt.version"] == got["llmops.prompt.version"] == prompt.version
    assert got["llmops.git_commit"] == prompt.commit == row["git_commit"]
    assert span.name == "chat claude-haiku-4-5"
    assert got["gen_ai.provider.name"] == "anthropic"
    assert got["gen_ai.usage.input_tokens"] == 900
    assert got["gen_ai.usage.cache_creation.input_tokens"] == 800
    assert got["gen_ai.usage.cache_write.input_tokens"] == 800
    assert got["gen_ai.request.temperature"] == 0.1  # from the prompt file
    assert got["llmops.call_id"] == result.call_id


@SQLITE
def test_an_unpriced_call_has_no_cost(make_gateway, server, receiver, otel):
    exporter = otel()
    gw = make_gateway()
    watch(gw, exporter)
    server.enqueue(Reply(prompt_tokens=10, completion_tokens=5))
    gw.complete(**{**http(server), "model": "openai/llmops-unknown-model"}, messages=MESSAGES)
    assert exporter.flush(10)
    got = attributes(receiver.span("chat llmops-unknown-model").attributes)
    assert got["llmops.cost_status"] == "unpriced"
    assert "gen_ai.usage.cost" not in got
    assert got["gen_ai.usage.input_tokens"] == 10


@SQLITE
def test_a_failed_call_is_an_error_span(make_gateway, server, receiver, otel):
    import litellm

    exporter = otel()
    gw = make_gateway()
    seen = watch(gw, exporter)
    server.enqueue(Reply(status=400, text="model does not exist"))
    with pytest.raises(litellm.BadRequestError):
        gw.complete(messages=MESSAGES, **http(server))
    assert exporter.flush(10)
    (row,) = seen
    span = receiver.span("chat gpt-4o-mini")
    assert span.status.code == STATUS_ERROR
    assert span.status.message == row["error_message"][:1000]
    assert "model does not exist" in span.status.message
    got = attributes(span.attributes)
    assert got["error.type"] == row["error_type"] == "BadRequestError"
    assert got["llmops.status"] == "error"
    assert "gen_ai.usage.input_tokens" not in got  # nothing was used


@SQLITE
def test_a_stream(make_gateway, server, receiver, otel):
    exporter = otel()
    gw = make_gateway()
    seen = watch(gw, exporter)
    server.enqueue(Reply(text="alpha beta gamma", prompt_tokens=12, completion_tokens=3, ttft=0.02))
    text = "".join(gw.stream(messages=MESSAGES, **http(server)))
    assert text == "alpha beta gamma"
    assert exporter.flush(10)
    (row,) = seen
    span = receiver.span()
    got = attributes(span.attributes)
    assert got["gen_ai.request.stream"] is True
    assert row["ttft_ms"] >= 20
    assert got["llmops.ttft_ms"] == row["ttft_ms"]
    assert got["gen_ai.response.time_to_first_chunk"] == row["ttft_ms"] / 1000
    assert (got["gen_ai.usage.input_tokens"], got["gen_ai.usage.output_tokens"]) == (12, 3)
    assert (
        span.end_time_unix_nano - span.start_time_unix_nano == round(row["latency_ms"] * 1e3) * 1000
    )
    assert row["latency_ms"] > row["ttft_ms"]


@SQLITE
def test_the_app_span_is_the_parent(make_gateway, server, receiver, otel):
    from opentelemetry.sdk.trace import TracerProvider

    exporter = otel()
    gw = make_gateway()
    watch(gw, exporter)
    app_tracer = TracerProvider().get_tracer("the-app")
    server.enqueue(Reply(text="Yes."))
    with app_tracer.start_as_current_span("POST /ask") as parent:
        result = gw.complete(messages=MESSAGES, **http(server))
    server.enqueue(Reply(text="Outside."))
    outside = gw.complete(messages=MESSAGES, **http(server))
    assert exporter.flush(10)
    inner, root = sorted(receiver.spans, key=lambda s: s.start_time_unix_nano)
    context = parent.get_span_context()
    assert inner.trace_id == hex_id(context.trace_id, 16)
    assert inner.parent_span_id == hex_id(context.span_id, 8)
    assert inner.span_id == hex_id(call_span_id(result.call_id), 8)
    assert root.parent_span_id == b"" and root.trace_id == uuid.UUID(outside.call_id).bytes


# -- message content ----------------------------------------------------------------------


@SQLITE
@pytest.mark.parametrize(
    ("content", "env", "exported"),
    [
        ("full", {}, False),
        ("full", CONTENT_ON, True),
        ("redact", CONTENT_ON, True),
        ("none", CONTENT_ON, False),
    ],
)
def test_message_content_only_when_switched_on_and_as_stored(
    make_gateway, server, receiver, otel, content, env, exported
):
    exporter = otel(**env)
    gw = make_gateway(content=content)
    seen = watch(gw, exporter)
    server.enqueue(Reply(text="Paris, for ada@example.com"))
    gw.complete(messages=MESSAGES, **http(server))
    assert exporter.flush(10)
    (row,) = seen
    got = attributes(receiver.span().attributes)
    if not exported:
        assert "gen_ai.input.messages" not in got and "gen_ai.output.messages" not in got
        return
    inputs = json.loads(got["gen_ai.input.messages"])
    outputs = json.loads(got["gen_ai.output.messages"])
    stored = row["request"]["messages"]
    assert inputs == [
        {"role": "system", "parts": [{"type": "text", "content": stored[0]["content"]}]},
        {"role": "user", "parts": [{"type": "text", "content": stored[1]["content"]}]},
    ]
    assert outputs == [
        {"role": "assistant", "parts": [{"type": "text", "content": row["response_text"]}]}
    ]
    if content == "full":
        assert stored[1]["content"] == MESSAGES[1]["content"]
        assert outputs[0]["parts"][0]["content"] == "Paris, for ada@example.com"
    else:  # never more than the database stored
        assert "ada@example.com" not in got["gen_ai.input.messages"]
        assert "ada@example.com" not in got["gen_ai.output.messages"]


def test_capture_switch_values() -> None:
    key = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
    for on in ("true", "TRUE", "1", "SPAN_ONLY", "span_and_event"):
        assert capture_content({key: on}), on
    for off in ("", "false", "0", "NO_CONTENT", "EVENT_ONLY", "maybe"):
        assert not capture_content({key: off}), off
    assert not capture_content({})


# -- feedback -----------------------------------------------------------------------------


@SQLITE
def test_feedback_is_an_evaluation_event_on_the_calls_span(make_gateway, server, receiver, otel):
    exporter = otel(**CONTENT_ON)
    at = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    gw = make_gateway(clock=lambda: at)
    watch(gw, exporter)
    server.enqueue(Reply(text="Yes."))
    call_id = gw.complete(messages=MESSAGES, **http(server)).call_id
    feedback_id = gw.feedback(call_id, 4, name="stars", comment="Quick and right.")
    assert exporter.flush(10)
    span = receiver.span()
    (event,) = receiver.logs
    assert event.event_name == "gen_ai.evaluation.result"
    assert (event.trace_id, event.span_id) == (span.trace_id, span.span_id)
    assert event.time_unix_nano == nanos(at)
    assert attributes(event.attributes) == {
        "gen_ai.evaluation.name": "stars",
        "gen_ai.evaluation.score.value": 4.0,
        "gen_ai.evaluation.explanation": "Quick and right.",  # content capture is on
        "llmops.call_id": call_id,
        "llmops.feedback_id": feedback_id,
    }
    assert sorted(r.path for r in receiver.requests) == ["/v1/logs", "/v1/traces"]
    assert exporter.stats["events_sent"] == 1


@SQLITE
def test_feedback_later_and_elsewhere_finds_the_span(make_gateway, server, receiver, otel):
    """Feedback for a call inside an app span points at the app's trace (remembered); a
    fresh exporter (another process, after a restart) derives the ids from the call id."""
    from opentelemetry.sdk.trace import TracerProvider

    first = otel()
    gw = make_gateway()
    watch(gw, first)
    app_tracer = TracerProvider().get_tracer("the-app")
    server.enqueue(Reply(text="one"))
    with app_tracer.start_as_current_span("job"):
        nested = gw.complete(messages=MESSAGES, **http(server)).call_id
    server.enqueue(Reply(text="two"))
    root = gw.complete(messages=MESSAGES, **http(server)).call_id
    gw.feedback(nested, 0, name="thumbs")
    assert first.flush(10)
    assert gw.flush(10)  # in the database, where another process finds the call
    second = otel()
    later = make_gateway()
    later.recorder.observers.append(second)
    later.feedback(root, 1, name="thumbs")  # the call is found in the database
    assert second.flush(10)
    spans = {attributes(s.attributes)["llmops.call_id"]: s for s in receiver.spans}
    events = {attributes(e.attributes)["llmops.call_id"]: e for e in receiver.logs}
    for call_id in (nested, root):
        assert (events[call_id].trace_id, events[call_id].span_id) == (
            spans[call_id].trace_id,
            spans[call_id].span_id,
        )
    assert events[root].trace_id == hex_id(call_trace_id(root), 16)
    assert "gen_ai.evaluation.explanation" not in attributes(events[root].attributes)


@SQLITE
def test_feedback_as_a_child_span_for_trace_only_backends(make_gateway, server, receiver, otel):
    exporter = otel(LLMOPS_OTEL_FEEDBACK="span")
    gw = make_gateway()
    watch(gw, exporter)
    server.enqueue(Reply(text="Yes."))
    call_id = gw.complete(messages=MESSAGES, **http(server)).call_id
    feedback_id = gw.feedback(call_id, 1, name="thumbs")
    assert exporter.flush(10)
    call, evaluation = receiver.span("chat gpt-4o-mini"), receiver.span("evaluation thumbs")
    assert evaluation.trace_id == call.trace_id and evaluation.parent_span_id == call.span_id
    assert evaluation.kind == SPAN_KIND_INTERNAL
    assert evaluation.start_time_unix_nano == evaluation.end_time_unix_nano
    (event,) = evaluation.events
    assert event.name == "gen_ai.evaluation.result"
    assert attributes(event.attributes) == {
        "gen_ai.evaluation.name": "thumbs",
        "gen_ai.evaluation.score.value": 1.0,
        "llmops.call_id": call_id,
        "llmops.feedback_id": feedback_id,
    }
    assert receiver.logs == [] and [r.path for r in receiver.requests] == ["/v1/traces"]


# -- configuration ------------------------------------------------------------------------


@SQLITE
def test_standard_variables_route_and_compress(
    make_gateway, server, receiver, otel, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", receiver.url + "/custom/v1/traces")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=acme,authorization=Bearer%20t0k")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    exporter = otel()
    gw = make_gateway()
    watch(gw, exporter)
    server.enqueue(Reply(text="Yes."))
    gw.complete(messages=MESSAGES, **http(server))
    assert exporter.flush(10)
    (request,) = receiver.requests
    assert request.path == "/custom/v1/traces"
    assert request.headers["content-encoding"] == "gzip"
    assert request.headers["x-tenant"] == "acme"
    assert request.headers["authorization"] == "Bearer t0k"
    assert receiver.span().name == "chat gpt-4o-mini"
    assert receiver.resources[0]["service.name"] == "llmops"  # OTEL_SERVICE_NAME unset


def test_switches() -> None:
    assert exporter_from_env({}) is None
    assert exporter_from_env({"LLMOPS_OTEL": "0"}) is None
    assert exporter_from_env({"LLMOPS_OTEL": "1", "OTEL_SDK_DISABLED": "true"}) is None
    with pytest.raises(ConfigError, match=r"LLMOPS_OTEL='maybe': expected 1 or 0"):
        exporter_from_env({"LLMOPS_OTEL": "maybe"})
    with pytest.raises(ConfigError, match="LLMOPS_OTEL_FEEDBACK='events': expected one of"):
        exporter_from_env({"LLMOPS_OTEL": "1", "LLMOPS_OTEL_FEEDBACK": "events"})
    with pytest.raises(ConfigError, match="LLMOPS_OTEL_USER"):
        exporter_from_env({"LLMOPS_OTEL": "1", "LLMOPS_OTEL_USER": "please"})


@pytest.mark.integration
def test_off_by_default_imports_nothing_and_starts_no_thread() -> None:
    script = textwrap.dedent(
        """
        import sys, threading
        import llmops
        from llmops.control.otel import exporter_from_env
        assert exporter_from_env() is None
        assert exporter_from_env({"LLMOPS_OTEL": "0"}) is None
        loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
        print(loaded, threading.active_count())
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMOPS_", "OTEL_"))}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[] 1"


# -- never in the app's way ---------------------------------------------------------------


@SQLITE
def test_receiver_down_leaves_the_app_alone(
    make_gateway, server, otel, monkeypatch: pytest.MonkeyPatch, caplog
):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    exporter = otel()
    gw = make_gateway()
    gw.recorder.observers.append(exporter)
    texts = []
    for i in range(5):
        server.enqueue(Reply(text=f"answer {i}"))
        texts.append(gw.complete(messages=MESSAGES, **http(server)).text)
    call_id = gw.complete(messages=MESSAGES, **http(server)).call_id
    gw.feedback(call_id, 1)
    assert texts == [f"answer {i}" for i in range(5)]
    assert exporter.flush(15)  # the SDK gave up on the batch: flushed, not sent
    stats = exporter.stats
    assert (stats["spans_sent"], stats["spans_failed"]) == (0, 6)
    assert (stats["events_sent"], stats["events_failed"]) == (0, 1)
    assert (stats["dropped"], stats["errors"]) == (0, 0)
    assert gw.flush(10)
    with gw.engine.connect() as connection:
        stored = connection.execute(sa.select(sa.func.count()).select_from(CALLS)).scalar_one()
    assert stored == 6
    assert not [r for r in caplog.records if r.name.startswith("llmops")]
    assert exporter.shutdown(5)


@SQLITE
def test_a_full_queue_drops_and_counts(make_gateway, server, receiver, otel):
    exporter = CallSpanExporter(max_queue=5)
    try:
        gw = make_gateway()
        gw.recorder.observers.append(exporter)
        receiver.hold.clear()  # the receiver stalls: the export thread waits on it
        server.enqueue(Reply(text="first"))
        gw.complete(messages=MESSAGES, **http(server))
        assert not exporter.flush(0.01)  # the thread goes on flushing: into the stall
        assert receiver.holding.wait(10)
        for i in range(20):
            server.enqueue(Reply(text=f"answer {i}"))
            assert gw.complete(messages=MESSAGES, **http(server)).text == f"answer {i}"
        assert exporter.stats["queued"] == 5
        assert exporter.dropped == 15
        receiver.hold.set()
        assert exporter.flush(10)
        assert len(receiver.spans) == 6
        assert exporter.stats["dropped"] == 15 and exporter.stats["spans_sent"] == 6
    finally:
        receiver.hold.set()
        exporter.shutdown(5)


def call_row(call_id: str) -> dict[str, Any]:
    """A recorded call's row, as an observer gets it (a cancelled stream, unpriced)."""
    return {
        "id": call_id,
        "created_at": datetime(2026, 3, 1, tzinfo=UTC),
        "source": "app",
        "prompt_name": None,
        "prompt_version": None,
        "git_commit": None,
        "model": "gpt-4o-mini",
        "provider": "openai",
        "status": "cancelled",
        "error_type": "GeneratorExit",
        "error_message": None,
        "prompt_tokens": 5,
        "completion_tokens": 1,
        "cached_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "tokens_estimated": True,
        "cost_usd": None,
        "cost_status": "unpriced",
        "price_source": None,
        "latency_ms": 1.5,
        "ttft_ms": None,
        "user_id": None,
        "session_id": None,
        "tags": None,
        "metadata": None,
        "request": None,
        "response_text": None,
        "usage_details": None,
    }


def test_a_bad_row_is_counted_and_the_next_one_exported(receiver, otel) -> None:
    exporter = otel()
    exporter("call", {"id": "not a row"})  # type: ignore[arg-type]
    good = call_row(str(uuid.uuid4()))
    exporter("call", good)  # type: ignore[arg-type]
    assert exporter.flush(10)
    assert exporter.errors == 1
    span = receiver.span("chat gpt-4o-mini")
    assert span.status.code == STATUS_UNSET  # cancelled by the app is not an error
    got = attributes(span.attributes)
    assert got["llmops.status"] == "cancelled" and "error.type" not in got
    assert got["llmops.tokens_estimated"] is True
    assert span.end_time_unix_nano - span.start_time_unix_nano == 1_500_000


def test_after_shutdown_rows_are_ignored_and_the_thread_ends(receiver, otel) -> None:
    before = set(threading.enumerate())
    exporter = otel()
    (thread,) = [t for t in set(threading.enumerate()) - before if t.name == "llmops-otel"]
    assert exporter.shutdown(5)
    assert exporter.shutdown(5)  # twice is fine
    thread.join(5)
    assert not thread.is_alive()
    exporter("call", {"id": "late"})  # type: ignore[arg-type]
    assert exporter.stats["queued"] == 0 and not exporter.flush(1)


def test_ids_are_derived_from_the_call_id() -> None:
    call_id = "0b4f3c1e-9d2a-4c55-8e1f-2a3b4c5d6e7f"
    assert call_trace_id(call_id) == 0x0B4F3C1E9D2A4C558E1F2A3B4C5D6E7F
    assert call_span_id(call_id) == int.from_bytes(
        hashlib.sha256(call_id.encode()).digest()[:8], "big"
    )
    other = call_trace_id("not-a-uuid")
    assert other == int.from_bytes(hashlib.sha256(b"llmops-trace:not-a-uuid").digest()[:16], "big")


@pytest.mark.parametrize("sampler", ["traceidratio", "parentbased_traceidratio"])
def test_ratio_sampling_keeps_its_share_of_the_calls(
    receiver, otel, monkeypatch: pytest.MonkeyPatch, sampler: str
) -> None:
    """A call's trace id is its UUID, whose 64 low bits start with the variant bits (10):
    the SDK's ratio sampler, which compares those bits with the ratio, would keep none of
    the calls under a ratio of 0.5. llmops samples its own traces on the 56 low bits, all
    random (as the W3C level 2 trace ids the OpenTelemetry specification now expects), and
    a feedback span follows its call's decision."""
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", sampler)
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    exporter = otel(LLMOPS_OTEL_FEEDBACK="span")
    calls = [new_id() for _ in range(2000)] + [str(uuid.uuid4()) for _ in range(2000)]
    for number, call_id in enumerate(calls):
        exporter("call", call_row(call_id))  # type: ignore[arg-type]
        feedback = {
            "id": f"f{number}",
            "call_id": call_id,
            "created_at": datetime(2026, 3, 1, 0, 1, tzinfo=UTC),
            "name": "thumbs",
            "score": 1.0,
            "comment": None,
            "user_id": None,
        }
        exporter("feedback", feedback)  # type: ignore[arg-type]
    assert exporter.flush(30) and exporter.errors == 0
    kept = {s.trace_id.hex() for s in receiver.spans if s.name == "chat gpt-4o-mini"}
    for made in (calls[:2000], calls[2000:]):  # version 7 and version 4 ids alike
        share = len(kept & {uuid.UUID(c).hex for c in made}) / len(made)
        assert 0.2 < share < 0.3, share  # 0.25, binomial sd 0.01
    rated = [s for s in receiver.spans if s.name == "evaluation thumbs"]
    assert {s.trace_id.hex() for s in rated} == kept and len(rated) == len(kept)


def test_a_gateway_exports_by_itself_when_llmops_otel_is_set(
    make_gateway, server, receiver, otel, monkeypatch
):
    """The wiring users get: LLMOPS_OTEL=1 and the standard endpoint, no code."""
    monkeypatch.setenv("LLMOPS_OTEL", "1")
    gw = make_gateway()
    assert gw.telemetry is not None
    result = gw.complete(messages=[{"role": "user", "content": "Hello"}], **http(server))
    gw.close()  # flushes the exporter
    span = receiver.span()
    assert span.name == "chat gpt-4o-mini"
    assert attributes(span.attributes)["llmops.call_id"] == result.call_id
    monkeypatch.delenv("LLMOPS_OTEL")
    assert make_gateway().telemetry is None
