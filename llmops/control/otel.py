"""OpenTelemetry export of recorded calls (opt-in, ``LLMOPS_OTEL=1``).

A :class:`CallSpanExporter` is an observer of the gateway's recorder: on the app's call path
it only appends the row (and, for a call, the current OpenTelemetry context) to a bounded
queue; a daemon thread turns each call into a GenAI client span (the OpenTelemetry GenAI
semantic conventions: ``chat gpt-4o-mini``, kind CLIENT, ``gen_ai.*`` attributes) with the
call's own start and end times, and each feedback score into a ``gen_ai.evaluation.result``
event, and hands them to the SDK's batch processors and OTLP/HTTP (protobuf) exporters.
The standard ``OTEL_EXPORTER_OTLP_*`` and ``OTEL_SERVICE_NAME`` variables configure where
they go. A full queue drops rows (counted in :attr:`CallSpanExporter.stats`); nothing here
raises into the app.

A call's span id is derived from its call id (:func:`call_span_id`), and so is the trace id
of a call made outside any app span (:func:`call_trace_id`: the call id's UUID), so that
feedback arriving later can point at the call's span. Message content is exported only when
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``, and then only what the database
stored (the content mode ``full``/``redact``/``none`` applies first).

opentelemetry is imported only when an exporter is built.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import os
import threading
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import orjson

from llmops.errors import ConfigError
from llmops.store.records import CallRow, FeedbackRow, RecordKind, Row

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import LogRecordExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.sdk.trace.id_generator import IdGenerator
    from opentelemetry.sdk.trace.sampling import Sampler
    from opentelemetry.trace import SpanContext, Tracer

log = logging.getLogger("llmops.otel")

FeedbackMode = Literal["log", "span", "off"]
FEEDBACK_MODES: tuple[FeedbackMode, ...] = ("log", "span", "off")
EVALUATION_EVENT = "gen_ai.evaluation.result"
OPERATION = "chat"  # a call's operation unless its usage_details say (embeddings)
DEFAULT_QUEUE = 10_000
REMEMBERED_TRACES = 100_000  # call id -> trace id of calls made inside an app span

AttributeValue = str | bool | int | float | Sequence[str]
Attributes = dict[str, AttributeValue]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}
# OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT: the boolean of most instrumentations,
# or the enum of opentelemetry-util-genai (content on spans for SPAN_ONLY / SPAN_AND_EVENT).
_CONTENT_ON = {"1", "true", "yes", "on", "span_only", "span_and_event"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# litellm's provider names -> the conventions' well-known gen_ai.provider.name values (the
# same table as litellm's own OpenTelemetry integration); other names are passed through.
PROVIDER_NAMES: dict[str, str] = {
    "openai": "openai",
    "text-completion-openai": "openai",
    "azure": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "anthropic": "anthropic",
    "bedrock": "aws.bedrock",
    "bedrock_converse": "aws.bedrock",
    "vertex_ai": "gcp.vertex_ai",
    "vertex_ai_beta": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "cohere": "cohere",
    "cohere_chat": "cohere",
    "mistral": "mistral_ai",
    "deepseek": "deepseek",
    "groq": "groq",
    "perplexity": "perplexity",
    "xai": "x_ai",
    "watsonx": "ibm.watsonx.ai",
    "moonshot": "moonshot_ai",
}

# request parameter -> (attribute, type) for the gen_ai.request.* attributes
_REQUEST_PARAMS: tuple[tuple[str, str, type], ...] = (
    ("temperature", "gen_ai.request.temperature", float),
    ("top_p", "gen_ai.request.top_p", float),
    ("frequency_penalty", "gen_ai.request.frequency_penalty", float),
    ("presence_penalty", "gen_ai.request.presence_penalty", float),
    ("max_tokens", "gen_ai.request.max_tokens", int),
    ("max_completion_tokens", "gen_ai.request.max_tokens", int),
    ("seed", "gen_ai.request.seed", int),
    ("top_k", "gen_ai.request.top_k", int),
)


# -- ids ------------------------------------------------------------------------------------


def call_trace_id(call_id: str) -> int:
    """The trace id of a call made outside any app span: its call id read as a UUID (so the
    trace id in hex is the call id without dashes), else a hash of it."""
    try:
        value = uuid.UUID(call_id).int
    except (ValueError, AttributeError, TypeError):
        value = int.from_bytes(_digest(b"llmops-trace:", call_id)[:16], "big")
    return value or 1


def call_span_id(call_id: str) -> int:
    """The span id of a call: the first 8 bytes of SHA-256 of its call id."""
    return int.from_bytes(_digest(b"", call_id)[:8], "big") or 1


def _digest(prefix: bytes, text: str) -> bytes:
    return hashlib.sha256(prefix + str(text).encode("utf-8", "surrogatepass")).digest()


def _nanos(moment: datetime) -> int:
    """Nanoseconds since the epoch, exact to the microsecond (no float rounding)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


# -- attributes -----------------------------------------------------------------------------


def request_model(row: CallRow) -> str:
    """The model name sent to the provider: the row's model without litellm's routing
    prefix (``openai/gpt-4o-mini`` -> ``gpt-4o-mini``)."""
    model, provider = row["model"], row["provider"]
    if provider and model.startswith(provider + "/"):
        return model[len(provider) + 1 :]
    return model


def operation(row: CallRow) -> str:
    """``chat``, or the operation the gateway recorded (``embeddings``)."""
    details = row.get("usage_details")
    found = details.get("operation") if isinstance(details, dict) else None
    return found if isinstance(found, str) else OPERATION


def span_name(row: CallRow) -> str:
    """``{gen_ai.operation.name} {gen_ai.request.model}``."""
    return f"{operation(row)} {request_model(row)}"


def call_attributes(row: CallRow, *, content: bool = False, user: bool = False) -> Attributes:
    """The span attributes of a recorded call (see the module docstring and docs)."""
    model = request_model(row)
    details = row["usage_details"] or {}
    served = details.get("served_model") if isinstance(details, dict) else None
    provider = row["provider"] or (row["model"].split("/", 1)[0] if "/" in row["model"] else None)
    attrs: Attributes = {
        "gen_ai.operation.name": operation(row),
        "gen_ai.request.model": model,
        "gen_ai.response.model": served if isinstance(served, str) and served else model,
        "llmops.call_id": row["id"],
        "llmops.model": row["model"],
        "llmops.source": row["source"],
        "llmops.status": row["status"],
        "llmops.cost_status": row["cost_status"],
    }
    if row["tokens_estimated"]:
        attrs["llmops.tokens_estimated"] = True
    if provider:
        attrs["gen_ai.provider.name"] = PROVIDER_NAMES.get(provider, provider)
    _put(attrs, "gen_ai.usage.input_tokens", row["prompt_tokens"])
    _put(attrs, "gen_ai.usage.output_tokens", row["completion_tokens"])
    for name, value in (
        ("gen_ai.usage.cache_read.input_tokens", row["cached_tokens"]),
        # the name of the conventions' last release, used by litellm and most backends ...
        ("gen_ai.usage.cache_creation.input_tokens", row["cache_write_tokens"]),
        # ... and its new name in the GenAI conventions repository
        ("gen_ai.usage.cache_write.input_tokens", row["cache_write_tokens"]),
        ("gen_ai.usage.reasoning.output_tokens", row["reasoning_tokens"]),
    ):
        if value:
            attrs[name] = value
    if row["cost_usd"] is not None and row["cost_status"] != "unpriced":
        attrs["gen_ai.usage.cost"] = float(row["cost_usd"])
    _put(attrs, "gen_ai.conversation.id", row["session_id"])
    _put(attrs, "gen_ai.prompt.name", row["prompt_name"])
    _put(attrs, "gen_ai.prompt.version", row["prompt_version"])
    _put(attrs, "llmops.prompt.name", row["prompt_name"])
    _put(attrs, "llmops.prompt.version", row["prompt_version"])
    _put(attrs, "llmops.git_commit", row["git_commit"])
    _put(attrs, "llmops.latency_ms", row["latency_ms"])
    _put(attrs, "llmops.ttft_ms", row["ttft_ms"])
    if row["tags"]:
        attrs["llmops.tags"] = [str(tag) for tag in row["tags"]]
    if user:
        _put(attrs, "user.id", row["user_id"])
    if row["status"] in ("error", "blocked"):
        attrs["error.type"] = row["error_type"] or (
            "blocked" if row["status"] == "blocked" else "_OTHER"
        )
    request = row["request"] if isinstance(row["request"], dict) else {}
    params = request.get("params")
    streamed = isinstance(params, dict) and params.get("stream") is True
    if isinstance(params, dict):
        attrs.update(_request_attributes(params))
    if streamed and row["ttft_ms"] is not None:
        attrs["gen_ai.response.time_to_first_chunk"] = row["ttft_ms"] / 1000
    if content:
        messages = request.get("messages")
        if isinstance(messages, list):
            attrs["gen_ai.input.messages"] = _json(input_messages(messages))
        if row["response_text"] is not None:
            attrs["gen_ai.output.messages"] = _json(output_messages(row["response_text"]))
    return attrs


def _request_attributes(params: Mapping[str, Any]) -> Attributes:
    attrs: Attributes = {}
    for key, name, kind in _REQUEST_PARAMS:
        value = params.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if kind is int and isinstance(value, float) and not value.is_integer():
            continue
        attrs[name] = kind(value)
    stop = params.get("stop")
    if isinstance(stop, str):
        attrs["gen_ai.request.stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop and all(isinstance(s, str) for s in stop):
        attrs["gen_ai.request.stop_sequences"] = list(stop)
    choices = params.get("n")
    if isinstance(choices, int) and not isinstance(choices, bool) and choices != 1:
        attrs["gen_ai.request.choice.count"] = choices
    if params.get("stream") is True:
        attrs["gen_ai.request.stream"] = True
    return attrs


def feedback_attributes(
    row: FeedbackRow, *, content: bool = False, user: bool = False
) -> Attributes:
    """The attributes of a ``gen_ai.evaluation.result`` event for a feedback score."""
    attrs: Attributes = {
        "gen_ai.evaluation.name": row["name"],
        "gen_ai.evaluation.score.value": float(row["score"]),
        "llmops.call_id": row["call_id"],
        "llmops.feedback_id": row["id"],
    }
    if content:
        _put(attrs, "gen_ai.evaluation.explanation", row["comment"])
    if user:
        _put(attrs, "user.id", row["user_id"])
    return attrs


def _put(attrs: Attributes, name: str, value: AttributeValue | None) -> None:
    if value is not None:
        attrs[name] = value


# -- message content ------------------------------------------------------------------------


def input_messages(messages: Sequence[Any]) -> list[dict[str, Any]]:
    """Stored chat messages (OpenAI format) in the conventions' ``gen_ai.input.messages``
    shape: ``[{"role": ..., "parts": [{"type": "text", "content": ...}, ...]}]``."""
    out: list[dict[str, Any]] = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        role = message.get("role") or "user"
        if role == "tool":
            parts: list[dict[str, Any]] = [
                {
                    "type": "tool_call_response",
                    "id": message.get("tool_call_id"),
                    "response": message.get("content"),
                }
            ]
        else:
            parts = _parts(message.get("content"))
        for call in message.get("tool_calls") or []:
            if isinstance(call, dict):
                function = call.get("function") or {}
                parts.append(
                    {
                        "type": "tool_call",
                        "id": call.get("id"),
                        "name": function.get("name"),
                        "arguments": _arguments(function.get("arguments")),
                    }
                )
        entry: dict[str, Any] = {"role": role, "parts": parts}
        if isinstance(message.get("name"), str):
            entry["name"] = message["name"]
        out.append(entry)
    return out


def output_messages(text: str) -> list[dict[str, Any]]:
    """The stored answer as ``gen_ai.output.messages``."""
    return [{"role": "assistant", "parts": [{"type": "text", "content": text}]}]


def _parts(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    if not isinstance(content, list):
        return [{"type": "text", "content": str(content)}]
    parts: list[dict[str, Any]] = []
    for part in content:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text":
            parts.append({"type": "text", "content": part.get("text")})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            parts.append({"type": "uri", "modality": "image", "uri": _uri(url)})
        else:  # audio, files, ...: the kind only, never an inline payload
            parts.append({"type": str(kind)})
    return parts


def _uri(url: Any) -> str:
    """A URL as it is, but an inline ``data:`` URL without its payload."""
    text = str(url)
    if text.startswith("data:"):
        header, _, payload = text.partition(",")
        return f"{header},[{len(payload)} characters not exported]"
    return text


def _arguments(arguments: Any) -> Any:
    if isinstance(arguments, str):
        try:
            return orjson.loads(arguments)
        except orjson.JSONDecodeError:
            return arguments
    return arguments


def _json(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


# -- configuration --------------------------------------------------------------------------


def exporter_from_env(env: Mapping[str, str] | None = None) -> CallSpanExporter | None:
    """The exporter ``LLMOPS_OTEL=1`` asks for, configured from ``env`` (default: the process
    environment); None when it is off (nothing imported, no thread started).

    llmops reads ``LLMOPS_OTEL``, ``LLMOPS_OTEL_USER``, ``LLMOPS_OTEL_FEEDBACK``,
    ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` and ``OTEL_SDK_DISABLED`` from
    ``env``; the OpenTelemetry SDK reads the ``OTEL_EXPORTER_OTLP_*``, ``OTEL_SERVICE_NAME``,
    ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_BSP_*`` and sampler variables from the process
    environment itself. Raises ConfigError for a bad ``LLMOPS_OTEL*`` value or when the
    ``otel`` extra is not installed."""
    env = os.environ if env is None else env
    if not _flag(env, "LLMOPS_OTEL"):
        return None
    if (env.get("OTEL_SDK_DISABLED") or "").strip().lower() == "true":
        log.info("llmops: LLMOPS_OTEL=1 but OTEL_SDK_DISABLED=true: no spans are exported")
        return None
    feedback = (env.get("LLMOPS_OTEL_FEEDBACK") or "log").strip().lower()
    if feedback not in FEEDBACK_MODES:
        raise ConfigError(
            f"LLMOPS_OTEL_FEEDBACK={feedback!r}: expected one of {', '.join(FEEDBACK_MODES)}"
        )
    return CallSpanExporter(
        capture_content=capture_content(env),
        include_user=_flag(env, "LLMOPS_OTEL_USER"),
        feedback=feedback,
    )


def capture_content(env: Mapping[str, str]) -> bool:
    """Whether ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` puts message content on
    spans: ``true`` (or ``SPAN_ONLY`` / ``SPAN_AND_EVENT``); anything else is off."""
    value = (env.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT") or "").strip()
    return value.lower() in _CONTENT_ON


def _flag(env: Mapping[str, str], name: str) -> bool:
    value = (env.get(name) or "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name}={env.get(name)!r}: expected 1 or 0")


def _default_resource() -> Resource:
    """The SDK's resource (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``), with
    ``service.name`` ``llmops`` when neither names the service."""
    from opentelemetry.sdk.resources import Resource

    resource = Resource.create()
    name = resource.attributes.get("service.name")
    if not isinstance(name, str) or name.startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "llmops"}))
    return resource


# -- the exporter ---------------------------------------------------------------------------


@dataclass
class _NextIds:
    """The ids the next span gets (0: random); ``trace_id`` is also the trace the sampler
    knows as a call's own. Set and reset by the export thread only."""

    trace_id: int = 0
    span_id: int = 0

    @contextlib.contextmanager
    def given(self, trace_id: int, span_id: int = 0) -> Iterator[None]:
        """These ids while the block starts a span (or asks the sampler), 0 again after."""
        self.trace_id, self.span_id = trace_id, span_id
        try:
            yield
        finally:
            self.trace_id = self.span_id = 0


@dataclass
class _Counts:
    """What the SDK's exporters did with the batches they were handed."""

    sent: int = 0
    failed: int = 0


Item = tuple[str, Any, "Context | None"]


class CallSpanExporter:
    """An observer for ``Recorder.observers`` that exports calls as OpenTelemetry spans and
    feedback as ``gen_ai.evaluation.result`` events, off the app's call path.

    ``span_exporter`` / ``log_exporter`` default to the OTLP/HTTP protobuf exporters (their
    endpoint, headers, timeout and compression from the ``OTEL_EXPORTER_OTLP_*`` variables).
    ``capture_content`` adds ``gen_ai.input.messages`` / ``gen_ai.output.messages`` (what
    the database stored, no more); ``include_user`` adds ``user.id`` (personal data: off by
    default); ``feedback`` is ``log`` (an event log record parented to the call's span, as
    the conventions define), ``span`` (a zero-length child span of the call carrying the
    event, for trace-only backends such as Jaeger) or ``off``. ``max_queue`` rows wait at
    most; more are dropped and counted.
    """

    def __init__(
        self,
        span_exporter: SpanExporter | None = None,
        *,
        log_exporter: LogRecordExporter | None = None,
        capture_content: bool = False,
        include_user: bool = False,
        feedback: FeedbackMode = "log",
        max_queue: int = DEFAULT_QUEUE,
        resource: Resource | None = None,
    ) -> None:
        if feedback not in FEEDBACK_MODES:
            raise ConfigError(f"feedback={feedback!r}: expected one of {', '.join(FEEDBACK_MODES)}")
        if max_queue < 1:
            raise ConfigError(f"max_queue={max_queue}: expected at least 1")
        try:
            from opentelemetry.context import get_current
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError as exc:
            raise ConfigError(
                f"OpenTelemetry export needs the otel extra: pip install 'llmops[otel]' ({exc})"
            ) from None
        if span_exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            span_exporter = OTLPSpanExporter()
        self.capture_content = capture_content
        self.include_user = include_user
        self.feedback = feedback
        self.max_queue = max_queue
        self.dropped = 0  # rows not exported because the queue was full
        self.errors = 0  # rows that could not be turned into a span or an event
        self.spans = _Counts()
        self.events = _Counts()
        self._resource = resource or _default_resource()
        self._log_exporter = log_exporter
        self._next = _NextIds()
        self._provider: TracerProvider = TracerProvider(
            resource=self._resource,
            shutdown_on_exit=False,  # our own exit handler bounds the wait
            id_generator=_id_generator(self._next),
        )
        # the sampler the OTEL_TRACES_SAMPLER* variables chose, deciding on the random bits
        # of the call ids that are trace ids (``_call_id_sampler``)
        self._provider.sampler = _call_id_sampler(self._provider.sampler, self._next)
        self._provider.add_span_processor(
            BatchSpanProcessor(_counting_span_exporter(span_exporter, self.spans))
        )
        self._tracer: Tracer = self._provider.get_tracer("llmops", _version())
        self._logs: LoggerProvider | None = None  # built on the first feedback event
        self._traces: dict[str, tuple[int, int]] = {}  # call id -> (trace id, flags)
        self._current: Callable[[], Context] = get_current
        self._queue: deque[Item] = deque()
        self._wake = threading.Event()
        self._closed = False
        self._close_lock = threading.Lock()
        self._thread = self._start()
        self._exit = _exit_handler(weakref.ref(self))
        atexit.register(self._exit)
        if hasattr(os, "register_at_fork"):
            ref = weakref.ref(self)
            os.register_at_fork(after_in_child=lambda: _restart(ref))

    # -- the call path ------------------------------------------------------------------

    def __call__(self, kind: RecordKind, row: Row) -> None:
        """Queue a recorded row (the observer's job on the app's call path). Never raises."""
        try:
            if self._closed:
                return
            queue = self._queue
            if len(queue) >= self.max_queue:
                self.dropped += 1
                return
            queue.append((kind, row, self._current() if kind == "call" else None))
            if not self._wake.is_set():
                self._wake.set()
        except Exception:
            self.errors += 1

    # -- lifecycle ----------------------------------------------------------------------

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until every row queued so far is handed to the SDK and its exporters have
        finished with them (sent, or given up: see :attr:`stats`); False on timeout."""
        if self._closed or not self._thread.is_alive():
            return False
        done = threading.Event()
        self._queue.append(("flush", done, None))
        self._wake.set()
        return done.wait(timeout)

    def shutdown(self, timeout: float | None = 5.0) -> bool:
        """Export what is queued, then stop the thread and the SDK's processors; rows
        recorded afterwards are ignored. Waits at most ``timeout`` seconds (the export
        thread goes on in the background); False on timeout."""
        with self._close_lock:
            if self._closed:
                return True
            self._closed = True
        atexit.unregister(self._exit)
        if not self._thread.is_alive():
            return True
        done = threading.Event()
        self._queue.append(("stop", done, None))
        self._wake.set()
        return done.wait(timeout)

    @property
    def stats(self) -> dict[str, int]:
        """Rows queued, dropped (queue full) and failed (could not be converted); spans and
        events the SDK's exporters sent or failed to send."""
        return {
            "queued": sum(1 for item in list(self._queue) if item[0] in ("call", "feedback")),
            "dropped": self.dropped,
            "errors": self.errors,
            "spans_sent": self.spans.sent,
            "spans_failed": self.spans.failed,
            "events_sent": self.events.sent,
            "events_failed": self.events.failed,
        }

    # -- the export thread --------------------------------------------------------------

    def _start(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, name="llmops-otel", daemon=True)
        thread.start()
        return thread

    def _run(self) -> None:
        while True:
            self._wake.wait(1.0)
            self._wake.clear()
            while self._queue:
                kind, payload, context = self._queue.popleft()
                if kind == "stop":
                    self._stop(payload)
                    return
                if kind == "flush":
                    self._flush(payload)
                    continue
                try:
                    if kind == "call":
                        self._export_call(payload, context)
                    elif self.feedback != "off":
                        self._export_feedback(payload)
                except Exception:
                    self.errors += 1
                    if self.errors <= 3:  # a bug, not a condition: say so, but not forever
                        log.exception("llmops: could not export a %s row to OpenTelemetry", kind)

    def _export_call(self, row: CallRow, context: Context | None) -> None:
        from opentelemetry.trace import SpanKind, Status, StatusCode, get_current_span

        call_id = row["id"]
        name = span_name(row)
        attrs = call_attributes(row, content=self.capture_content, user=self.include_user)
        start = _nanos(row["created_at"])
        end = start + round((row["latency_ms"] or 0.0) * 1_000_000)
        failed = row["status"] in ("error", "blocked")
        parent = get_current_span(context).get_span_context() if context is not None else None
        own_trace = call_trace_id(call_id)
        with self._next.given(own_trace, call_span_id(call_id)):
            span = self._tracer.start_span(
                name,
                context=context if parent is not None and parent.is_valid else None,
                kind=SpanKind.CLIENT,
                attributes=attrs,
                start_time=start,
            )
        if failed:
            span.set_status(Status(StatusCode.ERROR, (row["error_message"] or "")[:1000] or None))
        span.end(end_time=end)
        made = span.get_span_context()
        if made.trace_id != own_trace:  # inside an app span: remember for its feedback
            self._traces[call_id] = (made.trace_id, int(made.trace_flags))
            if len(self._traces) > REMEMBERED_TRACES:
                self._traces.pop(next(iter(self._traces)))

    def _call_context(self, call_id: str) -> Context:
        """The context of a call's span, for feedback that refers to it."""
        from opentelemetry.trace import (
            NonRecordingSpan,
            SpanContext,
            TraceFlags,
            set_span_in_context,
        )

        if call_id in self._traces:
            trace_id, flags = self._traces[call_id]
        else:  # a trace of its own: sampled as the call's span was, by its id
            trace_id = call_trace_id(call_id)
            flags = TraceFlags.SAMPLED if self._sampled(trace_id) else TraceFlags.DEFAULT
        parent: SpanContext = SpanContext(
            trace_id, call_span_id(call_id), is_remote=True, trace_flags=TraceFlags(flags)
        )
        return set_span_in_context(NonRecordingSpan(parent))

    def _sampled(self, trace_id: int) -> bool:
        """Whether the sampler keeps a trace of its own with this (call-derived) id."""
        from opentelemetry.sdk.trace.sampling import Decision

        with self._next.given(trace_id):
            decision = self._provider.sampler.should_sample(None, trace_id, "")
        return decision.decision is Decision.RECORD_AND_SAMPLE

    def _export_feedback(self, row: FeedbackRow) -> None:
        context = self._call_context(row["call_id"])
        when = _nanos(row["created_at"])
        attrs = feedback_attributes(row, content=self.capture_content, user=self.include_user)
        if self.feedback == "span":
            from opentelemetry.trace import SpanKind

            # the sampler decides on a call's own trace id as it did for the call's span
            # (no id is generated: the span has a parent)
            with self._next.given(call_trace_id(row["call_id"])):
                span = self._tracer.start_span(
                    f"evaluation {row['name']}",
                    context=context,
                    kind=SpanKind.INTERNAL,
                    attributes={"llmops.call_id": row["call_id"], "llmops.feedback_id": row["id"]},
                    start_time=when,
                )
            span.add_event(EVALUATION_EVENT, attributes=attrs, timestamp=when)
            span.end(end_time=when)
            return
        from opentelemetry._logs import LogRecord

        self._loggers().get_logger("llmops", _version()).emit(
            LogRecord(
                timestamp=when,
                observed_timestamp=when,
                context=context,
                event_name=EVALUATION_EVENT,
                attributes=attrs,
            )
        )

    def _loggers(self) -> LoggerProvider:
        if self._logs is None:
            from opentelemetry.sdk._logs import LoggerProvider
            from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

            exporter = self._log_exporter
            if exporter is None:
                from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

                exporter = OTLPLogExporter()
            provider = LoggerProvider(resource=self._resource, shutdown_on_exit=False)
            provider.add_log_record_processor(
                BatchLogRecordProcessor(_counting_log_exporter(exporter, self.events))
            )
            self._logs = provider
        return self._logs

    def _flush(self, done: threading.Event) -> None:
        try:
            self._provider.force_flush()
            if self._logs is not None:
                self._logs.force_flush()
        except Exception:
            log.exception("llmops: OpenTelemetry flush failed")
        finally:
            done.set()

    def _stop(self, done: threading.Event) -> None:
        try:
            self._provider.shutdown()
            if self._logs is not None:
                self._logs.shutdown()
        except Exception:
            log.exception("llmops: OpenTelemetry shutdown failed")
        finally:
            done.set()


# -- helpers that need opentelemetry (imported when an exporter is built) -------------------


def _version() -> str:
    from llmops import __version__

    return __version__


def _id_generator(next_ids: _NextIds) -> IdGenerator:
    """An IdGenerator that hands out the ids set in ``next_ids`` (else random ones)."""
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class CallIds(RandomIdGenerator):
        def generate_span_id(self) -> int:
            return next_ids.span_id or super().generate_span_id()

        def generate_trace_id(self) -> int:
            return next_ids.trace_id or super().generate_trace_id()

    return CallIds()


def _call_id_sampler(inner: Sampler, next_ids: _NextIds) -> Sampler:
    """``inner``, deciding on a call-derived trace id (a root span of ours) as the
    OpenTelemetry specification's ratio sampling now does (W3C Trace Context level 2): on
    its 56 low bits, which are random in every UUID (and in the hash of another call id).
    The SDK's ``TraceIdRatioBased`` compares the 64 low bits with the ratio, and those of a
    UUID start with its variant bits (10): under a ratio of 0.5 it would keep no call. The
    sampler sees the id with those 56 bits moved up to the top of its 64 low bits; other
    traces (an app's span is the parent) reach it as they are."""
    from opentelemetry.sdk.trace.sampling import Sampler, SamplingResult

    low = (1 << 64) - 1
    random_bits = (1 << 56) - 1

    class CallIdSampler(Sampler):
        def should_sample(
            self, parent_context: Any, trace_id: int, *args: Any, **kwargs: Any
        ) -> SamplingResult:
            if trace_id == next_ids.trace_id:
                trace_id = (trace_id & ~low) | (trace_id & random_bits) << 8
            return inner.should_sample(parent_context, trace_id, *args, **kwargs)

        def get_description(self) -> str:
            return f"CallIdSampler{{{inner.get_description()}}}"

    return CallIdSampler()


def _counting_span_exporter(inner: SpanExporter, counts: _Counts) -> SpanExporter:
    """``inner``, counting the spans it sent and failed to send."""
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class Counting(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            try:
                result = inner.export(spans)
            except Exception:
                counts.failed += len(spans)
                raise
            if result is SpanExportResult.SUCCESS:
                counts.sent += len(spans)
            else:
                counts.failed += len(spans)
            return result

        def shutdown(self) -> None:
            inner.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return inner.force_flush(timeout_millis)

    return Counting()


def _counting_log_exporter(inner: LogRecordExporter, counts: _Counts) -> LogRecordExporter:
    """``inner``, counting the log records it sent and failed to send."""
    from opentelemetry.sdk._logs import ReadableLogRecord
    from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

    class Counting(LogRecordExporter):
        def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
            try:
                result = inner.export(batch)
            except Exception:
                counts.failed += len(batch)
                raise
            if result is LogRecordExportResult.SUCCESS:
                counts.sent += len(batch)
            else:
                counts.failed += len(batch)
            return result

        def shutdown(self) -> None:
            inner.shutdown()  # type: ignore[no-untyped-call]

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return inner.force_flush(timeout_millis)

    return Counting()


def _exit_handler(ref: weakref.ReferenceType[CallSpanExporter]) -> Callable[[], None]:
    def at_exit() -> None:
        exporter = ref()
        if exporter is not None:
            exporter.shutdown(timeout=5.0)

    return at_exit


def _restart(ref: weakref.ReferenceType[CallSpanExporter]) -> None:
    """In a forked child: a fresh queue and export thread (the parent's did not survive)."""
    exporter = ref()
    if exporter is not None and not exporter._closed:
        exporter._queue = deque()
        exporter._wake = threading.Event()
        exporter._thread = exporter._start()
