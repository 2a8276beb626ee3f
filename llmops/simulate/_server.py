"""The fake model server: OpenAI, Anthropic, Gemini and Bedrock chat APIs over real HTTP."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import re
import socket
import socketserver
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self, TypedDict
from urllib.parse import unquote

from llmops.simulate import _formats as fmt
from llmops.simulate._reply import (
    RecordedRequest,
    Reply,
    bedrock_conversation,
    count_words,
    gemini_conversation,
    resolve,
    split_chunks,
)

__all__ = ["FakeLLMServer"]

_DISCONNECTS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)
_MODELS = ("gpt-4o-mini", "gpt-4o", "claude-haiku-4-5")
_GEMINI_PATH = re.compile(
    r"^/(?:v1beta|v1alpha|v1)/models/([^/:]+):(generateContent|streamGenerateContent)$"
)
_AZURE_PATH = re.compile(r"^/openai/(?:deployments/([^/]+)|v1)/chat/completions$")
_BEDROCK_PATH = re.compile(r"^/model/([^/]+)/(converse|converse-stream)$")

Responder = Callable[[RecordedRequest], "Reply | None"]
"""What answers the requests that no route or queued reply answers (``None``: echo)."""


class _OpenAIHead(TypedDict):
    """The fields every OpenAI completion object and chunk of one response shares."""

    response_id: str
    created: int
    model: str
    service_tier: str | None


class FakeLLMServer:
    """A local OpenAI-, Anthropic-, Gemini- and Bedrock-compatible HTTP server (tests, demo).

    It listens on ``host`` (default ``127.0.0.1``) and ``port`` (default ``0``: a free port),
    serves each connection on a daemon thread, and answers model calls with scripted
    :class:`~llmops.simulate.Reply` objects::

        with FakeLLMServer() as server:
            server.enqueue(Reply(text="Hi!", prompt_tokens=12, completion_tokens=2))
            litellm.completion(
                model="openai/gpt-4o-mini", api_base=server.base_url, api_key="sk-test",
                messages=[{"role": "user", "content": "Hello"}],
            )
            assert server.requests[0].body["model"] == "gpt-4o-mini"

    Which reply answers a request: a :meth:`route` for the request's ``model`` if there is
    one, else the next reply of the :meth:`enqueue` queue, else what the ``responder`` returns
    for it, else ``Reply()`` (the echo answer with computed token counts).

    A scripted error (``Reply(status=429)``, a 5xx) is retried by litellm on its own, and
    the retry gets the next answer: pass ``num_retries=0`` with the call for the error to
    reach your code (see :class:`~llmops.simulate.Reply`, "Errors").

    ``responder`` (also :meth:`set_responder`) is a callable
    ``(request: RecordedRequest) -> Reply | None`` that answers whatever the routes and the
    queue do not; ``None`` from it falls through to the echo answer. It is called on the
    connection's thread, outside the server's lock, for model calls only (``POST`` to one
    of the model endpoints below, with a JSON object body). If it raises or returns something
    other than a ``Reply`` or ``None``, the request gets an HTTP 500 whose message names the
    error (and the traceback is printed to stderr). For example
    ``FakeLLMServer(responder=SimulatedModel())`` answers from the prompt's content (see
    :mod:`llmops.simulate.model`).

    Endpoints:

    - ``POST /v1/chat/completions``: OpenAI Chat Completions, plain or streamed (SSE). A
      stream ends with a usage chunk (``choices: []``) only when the request asks for it
      with ``stream_options: {"include_usage": true}`` (or the reply has ``usage_unasked``)
      and the reply has ``include_usage``.
    - ``POST /openai/deployments/{deployment}/chat/completions`` (any ``?api-version=``)
      and ``POST /openai/v1/chat/completions``: Azure OpenAI, answered as OpenAI Chat
      Completions. Routes match the deployment named in the path.
    - ``POST /v1/messages``: Anthropic Messages, plain or streamed (SSE events).
    - ``POST /v1/embeddings``: OpenAI embeddings: a deterministic unit vector per input.
    - ``POST /v1beta/models/{model}:generateContent`` and ``:streamGenerateContent``
      (also under ``/v1alpha`` and ``/v1``): Gemini (Google AI Studio), plain or streamed
      (SSE, ``?alt=sse``). The model comes from the path, and routes match it.
    - ``POST /model/{modelId}/converse`` and ``/model/{modelId}/converse-stream``: Bedrock
      Converse, plain or streamed (AWS event-stream binary framing). The model id comes from
      the path (URL-decoded: ``anthropic.claude-3-5-haiku-20241022-v1:0``), and routes match
      it. The SigV4 signature is not checked.
    - ``GET /v1/models``: a small model list. ``GET /health``: ``ok`` (not recorded).
    - anything else: 404 with an OpenAI-style error body.

    litellm's ``api_base`` for each: :attr:`base_url` (OpenAI-style models), :attr:`url`
    (``azure/`` deployments, with any ``api_key`` and ``api_version``),
    :attr:`anthropic_base_url` (``anthropic/``), :attr:`gemini_base_url` (``gemini/``, any
    ``api_key``) and :attr:`bedrock_base_url` (``bedrock/``, with fake AWS credentials:
    ``aws_access_key_id="AKIATEST", aws_secret_access_key="x", aws_region_name="us-east-1"``).

    All methods are thread-safe. The server speaks HTTP/1.1 with keep-alive; :meth:`stop`
    also closes the connections that clients keep open.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        responder: Responder | None = None,
    ) -> None:
        _check_responder(responder)
        self._address = (host, port)
        self._responder = responder
        self._lock = threading.Lock()
        self._queue: deque[Reply] = deque()
        self._routes: dict[str, Reply] = {}
        self._requests: list[RecordedRequest] = []
        self._ids = itertools.count(1)
        self._disconnects = 0  # clients that went away mid-response (for tests)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> Self:
        """Bind the socket and serve on a daemon thread; return ``self``."""
        if self._httpd is not None:
            raise RuntimeError("FakeLLMServer is already running")
        httpd = _HTTPServer(self._address, _Handler, self)
        thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"FakeLLMServer:{httpd.server_address[1]}",
            daemon=True,
        )
        thread.start()
        self._httpd, self._thread = httpd, thread
        return self

    def stop(self) -> None:
        """Stop serving, close the listening socket and every open connection.

        Calling it on a stopped server does nothing.
        """
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._httpd = self._thread = None
        httpd.shutdown()
        httpd.server_close()
        httpd.close_connections()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- addresses ----------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        return int(self._running().server_address[1])

    @property
    def url(self) -> str:
        """The server root, ``http://127.0.0.1:PORT``."""
        host = self._running().server_address[0]
        if isinstance(host, bytes):  # typeshed allows it (AF_UNIX); an AF_INET server has str
            host = host.decode()
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``: the ``api_base`` for OpenAI-style models."""
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """``http://127.0.0.1:PORT``: the ``api_base`` for ``anthropic/`` models.

        litellm appends ``/v1/messages`` to it.
        """
        return self.url

    @property
    def gemini_base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1beta``: the ``api_base`` for ``gemini/`` models.

        litellm 1.110 appends ``/models/{model}:generateContent`` (or
        ``:streamGenerateContent?alt=sse``) to it and sends the key in ``x-goog-api-key``.
        """
        return self.url + "/v1beta"

    @property
    def bedrock_base_url(self) -> str:
        """``http://127.0.0.1:PORT``: the ``api_base`` (or ``aws_bedrock_runtime_endpoint``)
        for ``bedrock/`` models.

        litellm appends ``/model/{modelId}/converse`` (or ``/converse-stream``) to it; pass
        fake AWS credentials too (``aws_access_key_id``, ``aws_secret_access_key``,
        ``aws_region_name``): litellm signs the request, the server does not check it.
        """
        return self.url

    # --- scripting ----------------------------------------------------------------------

    def enqueue(self, *replies: Reply) -> None:
        """Queue replies: the next requests (without a route) get them, first in first out."""
        for reply in replies:
            if not isinstance(reply, Reply):
                raise TypeError(f"expected Reply, got {type(reply).__name__}")
        with self._lock:
            self._queue.extend(replies)

    def route(self, model: str, reply: Reply) -> None:
        """Answer every request whose body's ``model`` equals ``model`` with ``reply``.

        Routes are checked before the queue, and replace an earlier route of the same model.
        Note that litellm sends the model name without its provider prefix
        (``openai/gpt-4o-mini`` arrives as ``gpt-4o-mini``). On the Gemini and Bedrock
        routes the model is the one in the request path (``gemini-2.5-pro``,
        ``anthropic.claude-3-5-haiku-20241022-v1:0``).
        """
        if not isinstance(reply, Reply):
            raise TypeError(f"expected Reply, got {type(reply).__name__}")
        with self._lock:
            self._routes[model] = reply

    def set_responder(self, responder: Responder | None) -> None:
        """Replace the responder (``None``: no responder, unscripted requests get the echo).

        The responder answers requests that no route and no queued reply answer; it may
        return ``None`` to fall through to the echo answer. :meth:`reset` keeps it.
        """
        _check_responder(responder)
        with self._lock:
            self._responder = responder

    @property
    def responder(self) -> Responder | None:
        """The current responder, or ``None``."""
        with self._lock:
            return self._responder

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the requests received so far, in arrival order (``/health`` excluded)."""
        with self._lock:
            return list(self._requests)

    @property
    def disconnects(self) -> int:
        """How many clients went away in the middle of a response (an abandoned stream)."""
        with self._lock:
            return self._disconnects

    def reset(self) -> None:
        """Forget queued replies, routes and recorded requests (the responder stays)."""
        with self._lock:
            self._queue.clear()
            self._routes.clear()
            self._requests.clear()

    def __repr__(self) -> str:
        state = f"url={self.url!r}" if self._httpd is not None else "stopped"
        return f"<FakeLLMServer {state}>"

    # --- used by the handler ------------------------------------------------------------

    def _running(self) -> _HTTPServer:
        if self._httpd is None:
            raise RuntimeError("FakeLLMServer is not running: call start() or use `with`")
        return self._httpd

    def _note_disconnect(self) -> None:
        with self._lock:
            self._disconnects += 1

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _take(self, request: RecordedRequest, model: str | None = None) -> tuple[Reply, int]:
        """Record ``request``, pick its reply and a response number.

        ``model``: the model that routes match (default: the body's ``model``). Recording, the
        route or queue choice and the number are atomic; the responder (only asked when no
        route or queued reply applies) runs outside the lock.
        """
        if model is None:
            model = request.body.get("model") if isinstance(request.body, dict) else None
        with self._lock:
            self._requests.append(request)
            number = next(self._ids)
            if isinstance(model, str) and model in self._routes:
                return self._routes[model], number
            if self._queue:
                return self._queue.popleft(), number
            responder = self._responder
        if responder is None:
            return Reply(), number
        return _ask(responder, request), number


def _check_responder(responder: Any) -> None:
    if responder is not None and not callable(responder):
        raise TypeError(f"responder must be callable, got {type(responder).__name__}")


def _ask(responder: Responder, request: RecordedRequest) -> Reply:
    """The responder's reply: its ``Reply``, the echo for ``None``, an HTTP 500 on failure."""
    try:
        reply = responder(request)
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        return Reply(status=500, text=f"FakeLLMServer responder failed: {exc!r}")
    if reply is None:
        return Reply()
    if not isinstance(reply, Reply):
        kind = type(reply).__name__
        message = f"FakeLLMServer responder must return a Reply or None, got {kind}"
        return Reply(status=500, text=message)
    return reply


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 1024  # the listen backlog: 5 by default, which drops a burst

    def __init__(
        self,
        address: tuple[str, int],
        handler: Callable[..., BaseHTTPRequestHandler],
        fake: FakeLLMServer,
    ) -> None:
        self.fake = fake
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS lookup that can hang
        # on a machine without network; the name is not needed.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def track(self, connection: socket.socket, *, add: bool) -> None:
        with self._connections_lock:
            if add:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away, or a connection closed by stop(), is not worth a
        # traceback; anything else is a bug in the fake and is printed as usual.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "llmops-fake-llm/1"

    # --- plumbing -----------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, add=True)
        self._pending: list[bytes] = []

    def finish(self) -> None:
        self.server.track(self.connection, add=False)
        with contextlib.suppress(OSError):
            super().finish()

    def handle(self) -> None:
        try:
            super().handle()
        except (*_DISCONNECTS, TimeoutError):
            self.close_connection = True
            self.server.fake._note_disconnect()

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request log on stderr."""

    def _head(self, status: int, headers: Iterable[tuple[str, str]]) -> None:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        lines = [
            f"{self.protocol_version} {status} {phrase}",
            f"Server: {self.server_version}",
            f"Date: {self.date_time_string()}",
            *(f"{name}: {value}" for name, value in headers),
        ]
        if self.close_connection:
            lines.append("Connection: close")
        self._pending.append(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def _flush(self) -> None:
        if self._pending:
            data, self._pending = b"".join(self._pending), []
            self.wfile.write(data)

    def _pause(self, seconds: float) -> None:
        """Send what is pending, then wait."""
        if seconds > 0:
            self._flush()
            time.sleep(seconds)

    def _send_json(
        self, status: int, payload: Any, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        self._send_bytes(status, body, "application/json", headers)

    def _send_bytes(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        self._head(
            status,
            [("Content-Type", content_type), ("Content-Length", str(len(body))), *headers],
        )
        self._pending.append(body)
        self._flush()

    def _start_stream(self) -> None:
        self._head(
            200,
            [
                ("Content-Type", "text/event-stream; charset=utf-8"),
                ("Cache-Control", "no-cache"),
                ("Transfer-Encoding", "chunked"),
            ],
        )

    def _event(self, payload: Any, event: str | None = None) -> None:
        """Queue one SSE event as one HTTP chunk; a str payload is sent as it is."""
        data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
        text = f"event: {event}\ndata: {data}\n\n" if event else f"data: {data}\n\n"
        raw = text.encode()
        self._pending.append(b"%x\r\n%s\r\n" % (len(raw), raw))

    def _end_stream(self) -> None:
        self._pending.append(b"0\r\n\r\n")
        self._flush()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    # --- dispatch -----------------------------------------------------------------------

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/health":
            self._send_bytes(200, b"ok", "text/plain; charset=utf-8")
            return
        self._record_plain(None)
        if path == "/v1/models":
            created = int(time.time())
            with self.server.fake._lock:
                names = dict.fromkeys([*_MODELS, *self.server.fake._routes])
            models = [
                {"id": name, "object": "model", "created": created, "owned_by": "llmops-fake"}
                for name in names
            ]
            self._send_json(200, {"object": "list", "data": models})
        else:
            self._not_found()

    def do_POST(self) -> None:
        raw = self._read_body()
        path = self.path.split("?", 1)[0].rstrip("/")
        route: str | None = None
        path_model = ""  # the model named in the path (Gemini, Bedrock)
        stream = False  # a streaming endpoint (Gemini, Bedrock; others say it in the body)
        if path == "/v1/chat/completions":
            route = "openai"
        elif match := _AZURE_PATH.match(path):
            route, path_model = "openai", unquote(match.group(1) or "")
        elif path == "/v1/messages":
            route = "anthropic"
        elif path == "/v1/embeddings":
            route = "embeddings"
        elif match := _GEMINI_PATH.match(path):
            route, path_model = "gemini", unquote(match.group(1))
            stream = match.group(2) == "streamGenerateContent"
        elif match := _BEDROCK_PATH.match(path):
            route, path_model = "bedrock", unquote(match.group(1))
            stream = match.group(2) == "converse-stream"
        if route is None:
            self._record_plain(_parse_json(raw))
            self._not_found()
            return
        body = _parse_json(raw)
        if not isinstance(body, dict):
            self._record_plain(body)
            self._send_error(route, 400, "The request body must be a JSON object.")
            return
        request = self._recorded(body)
        reply, number = self.server.fake._take(request, path_model or None)
        if route == "anthropic":
            self._answer_anthropic(body, reply, number)
        elif route == "embeddings":
            self._answer_embeddings(body, reply)
        elif route == "gemini":
            self._answer_gemini(body, reply, number, path_model, stream=stream)
        elif route == "bedrock":
            self._answer_bedrock(body, reply, stream=stream)
        else:
            self._answer_openai(body, reply, number)

    def _send_error(
        self, route: str, status: int, message: str | None, body: dict[str, Any] | None = None
    ) -> None:
        """The error response of ``route`` (``Retry-After: 0`` with a 429), or ``body`` as
        it is."""
        headers = [("Retry-After", "0")] if status == 429 else []
        if body is not None:
            self._send_json(status, body, headers)
        elif route == "anthropic":
            self._send_json(status, fmt.anthropic_error(status, message), headers)
        elif route == "gemini":
            self._send_json(status, fmt.gemini_error(status, message), headers)
        elif route == "bedrock":
            payload, error_type = fmt.bedrock_error(status, message)
            self._send_json(status, payload, [*headers, ("x-amzn-ErrorType", error_type)])
        else:
            self._send_json(status, fmt.openai_error(status, message), headers)

    def _any_other(self) -> None:
        self._read_body()
        self._record_plain(None)
        self._not_found()

    do_PUT = do_PATCH = do_DELETE = _any_other

    def _recorded(self, body: Any) -> RecordedRequest:
        return RecordedRequest(
            path=self.path,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            received_at=time.time(),
            method=self.command,
        )

    def _record_plain(self, body: Any) -> None:
        self.server.fake._record(self._recorded(body))

    def _not_found(self) -> None:
        message = f"No route for {self.command} {self.path} on the fake LLM server."
        self._send_json(404, fmt.openai_error(404, message))

    # --- OpenAI embeddings ------------------------------------------------------------

    def _answer_embeddings(self, body: dict[str, Any], reply: Reply) -> None:
        """One deterministic unit vector per input (``dimensions``, default 8) from a hash
        of its text; ``prompt_tokens``: the reply's, else the inputs' words (a list of token
        ids, as OpenAI takes it, is one input of that many tokens)."""
        self._pause(reply.delay)
        if reply.status >= 400:
            self._send_error("openai", reply.status, reply.text, reply.error_body)
            return
        raw = body.get("input")
        if isinstance(raw, list) and raw and all(type(t) is int for t in raw):
            raw = [raw]
        inputs = [raw] if isinstance(raw, str | int) else list(raw or [])
        dimensions = body.get("dimensions")
        size = dimensions if isinstance(dimensions, int) else 8
        data = [
            {"object": "embedding", "index": i, "embedding": _vector(str(text), size)}
            for i, text in enumerate(inputs)
        ]
        tokens = reply.prompt_tokens
        if tokens is None:
            tokens = sum(
                len(text) if isinstance(text, list) else max(1, count_words(str(text)))
                for text in inputs
            )
        model = reply.model or str(body.get("model") or "fake-embedding")
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        self._send_json(200, {"object": "list", "data": data, "model": model, "usage": usage})

    # --- OpenAI -------------------------------------------------------------------------

    def _answer_openai(self, body: dict[str, Any], reply: Reply, number: int) -> None:
        text, usage = resolve(reply, body, anthropic=False)
        self._pause(reply.delay)
        if reply.status >= 400:
            self._send_error("openai", reply.status, reply.text, reply.error_body)
            return
        model = reply.model or str(body.get("model") or "fake-model")
        common: _OpenAIHead = {
            "response_id": f"chatcmpl-{number}",
            "created": int(time.time()),
            "model": model,
            "service_tier": reply.service_tier,
        }
        n = body.get("n")
        others = range(1, n if isinstance(n, int) and 1 < n <= 8 else 1)  # choices 2..n
        if not body.get("stream"):
            payload = fmt.openai_completion(
                **common,
                text=text,
                finish_reason="tool_calls"
                if reply.tool_calls and reply.finish_reason == "stop"
                else reply.finish_reason,
                usage=usage if reply.include_usage else None,
                tool_calls=reply.tool_calls,
                logprobs=reply.logprobs,
                url_citations=reply.url_citations,
            )
            first = payload["choices"][0]
            for index in others:  # as OpenAI answers `n`: each choice its own text
                message = {**first["message"], "content": f"{text} ({index + 1})"}
                payload["choices"].append({**first, "index": index, "message": message})
            self._send_json(reply.status, payload)
            return

        stream_options = body.get("stream_options")
        usage_requested = isinstance(stream_options, dict) and bool(
            stream_options.get("include_usage")
        )
        send_usage = (usage_requested or reply.usage_unasked) and reply.include_usage

        def chunk(
            delta: dict[str, Any] | None, finish: str | None = None, choice: int = 0
        ) -> dict[str, Any]:
            payload = fmt.openai_chunk(**common, delta=delta, finish_reason=finish)
            if choice:
                payload["choices"][0]["index"] = choice
            if usage_requested:
                payload["usage"] = None  # as OpenAI does when usage was asked for
            return payload

        self._start_stream()
        self._pause(reply.ttft)
        self._event(chunk({"role": "assistant", "content": "", "refusal": None}))
        for index, piece in enumerate(split_chunks(text, reply.chunks)):
            if index:
                self._pause(reply.chunk_delay)
            delta: dict[str, Any] = {"content": piece}
            if index == 0 and reply.url_citations is not None:
                delta["annotations"] = fmt.openai_annotations(reply.url_citations, text)
            self._event(chunk(delta))
            for other in others:  # the other choices' chunks interleave, as OpenAI's do
                self._event(chunk({"content": piece}, choice=other))
        for other in others:
            self._event(chunk({"content": f" ({other + 1})"}, choice=other))
            self._event(chunk({}, reply.finish_reason, choice=other))
        finish = reply.finish_reason
        for index, call in enumerate(reply.tool_calls or []):
            # as OpenAI streams them: id and name first, the arguments in pieces after
            arguments = call.get("arguments")
            text_args = arguments if isinstance(arguments, str) else json.dumps(arguments or {})
            head = {"index": index, "id": call.get("id") or f"call_{index}", "type": "function",
                    "function": {"name": call["name"], "arguments": ""}}  # fmt: skip
            self._event(chunk({"tool_calls": [head]}))
            half = len(text_args) // 2
            for piece in (text_args[:half], text_args[half:]):
                self._event(
                    chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
                )
            if finish == "stop":
                finish = "tool_calls"
        self._event(chunk({}, finish))
        if send_usage:
            self._event(fmt.openai_chunk(**common, delta=None, usage=usage))
        self._event("[DONE]")
        self._end_stream()

    # --- Anthropic ----------------------------------------------------------------------

    def _answer_anthropic(self, body: dict[str, Any], reply: Reply, number: int) -> None:
        text, usage = resolve(reply, body, anthropic=True)
        self._pause(reply.delay)
        if reply.status >= 400:
            self._send_error("anthropic", reply.status, reply.text, reply.error_body)
            return
        model = reply.model or str(body.get("model") or "fake-model")
        message_id = f"msg_{number:024d}"
        sent_usage = usage if reply.include_usage else None
        if not body.get("stream"):
            payload = fmt.anthropic_message(
                message_id=message_id,
                model=model,
                text=text,
                finish_reason=reply.finish_reason,
                usage=sent_usage,
            )
            self._send_json(reply.status, payload)
            return

        self._start_stream()
        self._pause(reply.ttft)
        start = fmt.anthropic_message(
            message_id=message_id, model=model, text=None, finish_reason=None, usage=None
        )
        if sent_usage is not None:
            start["usage"] = fmt.anthropic_usage(sent_usage, output_tokens=1)
            start["usage"].pop("server_tool_use", None)  # counted at the end (message_delta)
        self._event({"type": "message_start", "message": start}, "message_start")
        block_start = {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "text", "text": ""},
        }
        self._event(block_start, "content_block_start")
        self._event({"type": "ping"}, "ping")
        for index, piece in enumerate(split_chunks(text, reply.chunks)):
            if index:
                self._pause(reply.chunk_delay)
            delta = {"type": "text_delta", "text": piece}
            self._event(
                {"type": "content_block_delta", "index": 0, "delta": delta}, "content_block_delta"
            )
        self._event({"type": "content_block_stop", "index": 0}, "content_block_stop")
        message_delta: dict[str, Any] = {
            "type": "message_delta",
            "delta": {
                "stop_reason": fmt.anthropic_stop_reason(reply.finish_reason),
                "stop_sequence": None,
            },
        }
        if sent_usage is not None:
            message_delta["usage"] = {"output_tokens": sent_usage.completion}
            if sent_usage.web_search_requests is not None:
                message_delta["usage"]["server_tool_use"] = {
                    "web_search_requests": sent_usage.web_search_requests
                }
        self._event(message_delta, "message_delta")
        self._event({"type": "message_stop"}, "message_stop")
        self._end_stream()

    # --- Gemini -------------------------------------------------------------------------

    def _answer_gemini(
        self, body: dict[str, Any], reply: Reply, number: int, path_model: str, *, stream: bool
    ) -> None:
        text, usage = resolve(reply, body, messages=gemini_conversation(body))
        self._pause(reply.delay)
        if reply.status >= 400:
            self._send_error("gemini", reply.status, reply.text, reply.error_body)
            return
        common = {"response_id": f"fake-gemini-{number}", "model": reply.model or path_model}
        sent_usage = usage if reply.include_usage else None
        headers = (
            [("x-gemini-service-tier", reply.service_tier)]
            if reply.service_tier is not None
            else []
        )
        if not stream:
            payload = fmt.gemini_response(
                **common, text=text, finish_reason=reply.finish_reason, usage=sent_usage
            )
            self._send_json(200, payload, headers)
            return

        self._head(
            200,
            [
                ("Content-Type", "text/event-stream"),
                ("Cache-Control", "no-cache"),
                ("Transfer-Encoding", "chunked"),
                *headers,
            ],
        )
        self._pause(reply.ttft)
        pieces = split_chunks(text, reply.chunks) or [""]
        for index, piece in enumerate(pieces):
            if index:
                self._pause(reply.chunk_delay)
            last = index == len(pieces) - 1
            chunk = fmt.gemini_response(
                **common,
                text=piece,
                finish_reason=reply.finish_reason if last else None,
                usage=sent_usage if last else None,
            )
            self._event(chunk)
        self._end_stream()

    # --- Bedrock ------------------------------------------------------------------------

    def _answer_bedrock(self, body: dict[str, Any], reply: Reply, *, stream: bool) -> None:
        started = time.monotonic()
        text, usage = resolve(reply, body, messages=bedrock_conversation(body))
        self._pause(reply.delay)
        if reply.status >= 400:
            self._send_error("bedrock", reply.status, reply.text, reply.error_body)
            return
        if not stream:
            if not reply.include_usage:
                # Bedrock always sends usage; a Converse response without it is malformed.
                payload: dict[str, Any] = {
                    "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
                    "stopReason": fmt.bedrock_stop_reason(reply.finish_reason),
                    "metrics": {"latencyMs": 1},
                }
            else:
                payload = fmt.bedrock_converse(
                    text=text,
                    finish_reason=reply.finish_reason,
                    usage=usage,
                    service_tier=reply.service_tier,
                    latency_ms=max(1, int((time.monotonic() - started) * 1000)),
                )
            self._send_json(200, payload)
            return

        self._head(
            200,
            [
                ("Content-Type", "application/vnd.amazon.eventstream"),
                ("Transfer-Encoding", "chunked"),
            ],
        )
        self._pause(reply.ttft)
        self._aws_event("messageStart", {"role": "assistant"})
        for index, piece in enumerate(split_chunks(text, reply.chunks)):
            if index:
                self._pause(reply.chunk_delay)
            self._aws_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}})
        self._aws_event("contentBlockStop", {"contentBlockIndex": 0})
        self._aws_event("messageStop", {"stopReason": fmt.bedrock_stop_reason(reply.finish_reason)})
        if reply.include_usage:
            metadata: dict[str, Any] = {
                "usage": fmt.bedrock_usage(usage),
                "metrics": {"latencyMs": max(1, int((time.monotonic() - started) * 1000))},
            }
            if reply.service_tier is not None:
                metadata["serviceTier"] = {"type": reply.service_tier}
            self._aws_event("metadata", metadata)
        self._end_stream()

    def _aws_event(self, event_type: str, payload: Any) -> None:
        """Queue one AWS event-stream message as one HTTP chunk."""
        raw = fmt.event_stream_message(event_type, payload)
        self._pending.append(b"%x\r\n%s\r\n" % (len(raw), raw))


def _parse_json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _vector(text: str, size: int) -> list[float]:
    """A unit vector of ``size`` numbers that depends only on ``text``."""
    raw = hashlib.sha256(text.encode("utf-8", "replace")).digest()
    numbers = [(raw[i % len(raw)] - 127.5) / 127.5 for i in range(max(1, min(size, 4096)))]
    norm = math.sqrt(sum(n * n for n in numbers)) or 1.0
    return [round(n / norm, 6) for n in numbers]
