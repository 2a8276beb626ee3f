"""The OpenAI-compatible HTTP server (``llmops serve``): apps in any language call models
through the Gateway, so every call is recorded, priced, budgeted and versioned.

Endpoints: ``POST /v1/chat/completions`` (JSON, or server-sent events with ``stream``),
``POST /v1/embeddings``, ``POST /v1/messages`` (:mod:`llmops.server.anthropic`),
``GET /v1/models``, ``GET /metrics``, ``POST /v1/feedback``, ``GET /health``. Every
answer to a model call carries ``x-llmops-call-id``. ``model: "prompt:NAME@REF"``
renders a prompt of the server's prompt folder with the request's ``variables``.
Attribution: ``user`` in the body or the ``x-llmops-user`` header; ``x-llmops-tags``
(comma-separated), ``x-llmops-session``, ``x-llmops-metadata`` (a JSON object). Errors
have OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``, with the
provider's status code. Keys, models and rates: :mod:`llmops.server.access`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import re
from collections.abc import AsyncIterator, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from llmops import litellm_loader
from llmops.config import Settings
from llmops.errors import (
    BudgetExceededError,
    ConfigError,
    LLMOpsError,
    ProviderError,
    UnknownCallError,
)
from llmops.gateway.content import scrub_error
from llmops.gateway.direct import CHAT_BODY
from llmops.gateway.gateway import warm_up
from llmops.gateway.recorder import raised_as, timed_out
from llmops.server import METRICS_URL_ENV
from llmops.server.access import Access, Refused

if TYPE_CHECKING:
    from llmops.gateway import AsyncStream, Completion, Gateway
    from llmops.store.keys import VirtualKey

log = logging.getLogger("llmops.server")

MAX_BODY_BYTES = 10 * 1024 * 1024  # a larger request is refused with 413
DRAIN_BYTES = 4 * MAX_BODY_BYTES  # read (and drop) up to this much of it before answering
MAX_HEADER_CHARS = 8192  # an x-llmops-* header (user, tags, session, metadata)
PROMPT_PREFIX = "prompt:"
CALL_ID_HEADER = "x-llmops-call-id"
# What a client may pass on to the model: OpenAI's parameters (those of the direct route,
# less the stream options that the server sets itself), and a few of litellm's. Only these:
# litellm also takes `api_base`, `api_key`, `extra_headers`, ... which would send the
# server's provider keys wherever a client says, or let it spend on its own account
# through ours.
CHAT_PARAMS = (CHAT_BODY - {"stream", "stream_options"}) | {"top_k", "timeout", "num_retries"}
# a provider that could not be reached: litellm says 500 (InternalServerError "Connection
# error." over the OpenAI SDK's APIConnectionError), which reads as this server's fault
UNREACHABLE_ERRORS = frozenset(
    {"APIConnectionError", "ProviderUnreachableError", "ConnectError", "ConnectionError"}
)
EMBEDDING_PARAMS = frozenset({"encoding_format", "dimensions", "timeout", "num_retries"})


def model_params(body: Mapping[str, Any], allowed: frozenset[str]) -> dict[str, Any]:
    """The body's fields that go to the model: those in ``allowed``; others are dropped."""
    return {k: v for k, v in body.items() if k in allowed}


class JSONBody(JSONResponse):
    """JSON with every non-ASCII character escaped: a provider's answer may hold half of a
    surrogate pair (``\\ud83d``), which UTF-8 cannot encode but a JSON escape can; the
    client reads the same text."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":"), allow_nan=False).encode("ascii")


class RequestError(Exception):
    """A request the server refuses: an HTTP status and an OpenAI-shaped error."""

    def __init__(
        self, status: int, message: str, kind: str = "invalid_request_error", code: str = ""
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.code = status, message, kind, code


def create_app(gateway: Gateway) -> Starlette:
    """The ASGI app over ``gateway`` (which it closes on shutdown)."""

    access = Access(lambda: gateway.engine, gateway.budgets)
    # a key's tokens per minute: every recorded call of it, however it ended
    gateway.recorder.observers.append(access.count_recorded)

    async def chat_completions(request: Request) -> Response:
        try:
            key = await access.aadmit(request)
            body = await _json_body(request)
            return await _chat(gateway, request, body, access, key)
        except Exception as exc:
            return _failure(exc)

    async def embeddings(request: Request) -> Response:
        try:
            key = await access.aadmit(request)
            body = await _json_body(request)
            model, texts = body.get("model"), body.get("input")
            if not isinstance(model, str) or not model.strip():
                raise RequestError(400, "model is required", code="missing_model")
            if not isinstance(texts, str | list) or texts == []:
                raise RequestError(
                    400, "input must be a text, a list of texts, token ids or lists of token ids"
                )
            access.check_model(key, model)
            params = model_params(body, EMBEDDING_PARAMS)
            options = _attribution(request, body)
            result = await unless_client_leaves(
                request,
                gateway.aembed(
                    texts, model=model, api_key_name=key.name if key else None, **options, **params
                ),
            )
        except Exception as exc:
            return _failure(exc)
        return JSONBody(_dump(result.raw), headers={CALL_ID_HEADER: result.call_id})

    async def feedback(request: Request) -> Response:
        try:
            await access.aadmit(request, metered=False)
            body = await _json_body(request)
            call_id = body.get("call_id")
            score = body.get("score")
            if not isinstance(call_id, str) or score is None:
                raise RequestError(400, "give call_id (a string) and score (a number)")
            name = body.get("name", "rating")
            feedback_id = await asyncio.to_thread(  # it may look the call up in the database
                gateway.feedback,
                call_id, score, name=name, comment=body.get("comment"), user=body.get("user"),
            )  # fmt: skip
        except Exception as exc:
            return _failure(exc)
        return JSONResponse({"id": feedback_id, "object": "feedback", "call_id": call_id})

    async def models(request: Request) -> Response:
        try:
            key = await access.aadmit(request, metered=False)
        except Exception as exc:
            return _failure(exc)
        if key is not None and key.models is not None:
            return JSONResponse({"object": "list", "data": _listed(key.models)})
        listed = await asyncio.to_thread(_models, gateway)  # each prompt loaded, from git
        return JSONResponse({"object": "list", "data": listed})

    exported: list[Any] = []  # the Prometheus registry, made on the first scrape
    shared = os.environ.get(METRICS_URL_ENV)  # several workers: the supervisor's exporter
    budgets = [] if shared else [*Settings.from_env().budgets]  # as the server started
    # scrapes wait for the database in a thread of their own (its reads are cached: they
    # follow one another), not in the pool where requests load prompts, keys and budgets:
    # scrapes of a slow or unreachable database hold up no request
    scraping = ThreadPoolExecutor(1, thread_name_prefix="llmops-metrics")

    async def metrics(request: Request) -> Response:
        """The Prometheus metrics of `llmops metrics`, read from the database. Several
        workers serve those of one exporter (the supervisor's): each worker's own would
        start its counters, choose its series and cache its reads apart, and a counter
        would go down from one scrape to the next."""
        import aiohttp

        from llmops.control.metrics import SpendCollector, exposition, make_registry

        if shared:
            try:
                text = await _fetch_metrics(shared)
            except (OSError, TimeoutError, aiohttp.ClientError) as exc:
                reason = str(exc) or type(exc).__name__  # a timeout has no message
                log.warning("llmops: the workers' exporter did not answer: %s", reason)
                return Response(f"the exporter did not answer: {reason}\n", status_code=503)
        else:
            if not exported:
                exported.append(make_registry(SpendCollector(gateway.engine, budgets)))
            loop = asyncio.get_running_loop()
            text = await loop.run_in_executor(scraping, exposition, exported[0])
        return Response(text, media_type=METRICS_TYPE)

    async def health(request: Request) -> Response:
        writer = gateway.writer
        return JSONResponse(
            {
                "status": "ok",
                "database": "ok" if writer.healthy else "unreachable: calls are journaled",
                "written": writer.stats.written,
                "spooled": writer.stats.spooled,
            }
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # requests wait for the database (keys, a feedback's call, a budget's ledger) and
        # load and render prompts in threads: enough of them that a burst waiting on an
        # unreachable database (5 s each) leaves room for the rest (asyncio's default
        # is 6 on two cores)
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(REQUEST_THREADS, thread_name_prefix="llmops-serve")
        )
        # litellm takes seconds to import and to make its first call: before the first
        # request, not during it
        await asyncio.to_thread(lambda: warm_up(litellm_loader.load()))
        yield
        scraping.shutdown(wait=False)
        if gateway.direct is not None:
            await gateway.direct.aclose()
        gateway.close()  # stores what is queued before the worker exits

    from llmops.server.anthropic import MESSAGES_PATH, anthropic_routes  # it imports this

    async def not_routed(request: Request, exc: Exception) -> Response:
        """404 and 405 in OpenAI's shape, as the SDKs read errors (not plain text); under
        /v1/messages (count_tokens, batches) in Anthropic's, saying what is served."""
        status = getattr(exc, "status_code", 404)
        detail = getattr(exc, "detail", "Not Found")
        kind = "not_found_error" if status == 404 else "invalid_request_error"
        message = f"{request.method} {request.url.path}: {detail}"
        if request.url.path.startswith(MESSAGES_PATH + "/") and status == 404:
            message += f" (llmops serve answers POST {MESSAGES_PATH} of Anthropic's API only)"
            body = {"type": "error", "error": {"type": kind, "message": message}}
            return JSONBody(body, status_code=status)
        return _error(status, message, kind, headers=getattr(exc, "headers", None))

    return Starlette(
        exception_handlers={404: not_routed, 405: not_routed},
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            *anthropic_routes(gateway, access),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/v1/feedback", feedback, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


REQUEST_THREADS = 64  # the worker's default executor (see lifespan)
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
METRICS_TIMEOUT = 30.0  # seconds: a read of the database at 10M calls takes well under 1


async def _fetch_metrics(url: str) -> str:
    """The exposition of the exporter at ``url`` (the supervisor's, on loopback), fetched
    on the event loop: scrapes that wait for a slow exporter hold no thread."""
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=METRICS_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as answer:
        answer.raise_for_status()
        return await answer.text()


def app_from_env() -> Starlette:
    """The app over a Gateway configured by the environment (uvicorn's factory)."""
    from llmops.gateway import Gateway

    direct = os.environ.get("LLMOPS_SERVE_DIRECT", "1") != "0"
    return create_app(Gateway(direct=direct))


async def _chat(
    gateway: Gateway,
    request: Request,
    body: dict[str, Any],
    access: Access,
    key: VirtualKey | None,
) -> Response:
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise RequestError(400, "model is required", code="missing_model")
    prompt, variables, messages = None, None, body.get("messages")
    if model.startswith(PROMPT_PREFIX):
        prompt, model = model[len(PROMPT_PREFIX) :], None
        variables = body.get("variables") or {}
        if not isinstance(variables, dict):
            raise RequestError(400, "variables must be an object", code="invalid_variables")
        messages = None
    elif not isinstance(messages, list) or not messages:
        raise RequestError(400, "messages must be a non-empty list", code="invalid_messages")
    else:
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise RequestError(400, f"messages[{i}] must be an object with a role",
                                   code="invalid_messages")  # fmt: skip
            content = message.get("content")
            if not (
                content is None
                or isinstance(content, str)
                or (isinstance(content, list) and all(isinstance(p, dict) for p in content))
            ):
                raise RequestError(
                    400,
                    f"messages[{i}].content must be a text, a list of content parts or null",
                    code="invalid_messages",
                )
    if not isinstance(body.get("stream", False), bool | None):  # OpenAI refuses "yes" too
        raise RequestError(400, "stream must be true or false", code="invalid_stream")
    params = model_params(body, CHAT_PARAMS)
    _check_options(params)
    if key is not None and key.models is not None:
        allowed = (await gateway.aprompt(prompt)).model if prompt is not None else model
        access.check_model(
            key, allowed, f"{PROMPT_PREFIX}{prompt.partition('@')[0]}" if prompt else None
        )
    options = _attribution(request, body)
    options["api_key_name"] = key.name if key is not None else None
    if body.get("stream"):  # a client that leaves before the first chunk cancels it too
        handle = await unless_client_leaves(
            request,
            gateway.astream(prompt, variables, model=model, messages=messages, **options, **params),
        )
        usage_wanted = _wants_usage(body.get("stream_options"))
        return StreamingResponse(
            _events(handle, usage_wanted),
            media_type="text/event-stream",
            headers={CALL_ID_HEADER: handle.call_id, "cache-control": "no-cache"},
        )
    result = await unless_client_leaves(
        request,
        gateway.acomplete(prompt, variables, model=model, messages=messages, **options, **params),
    )
    return JSONBody(_completion_body(result), headers={CALL_ID_HEADER: result.call_id})


T = TypeVar("T")


class ClientGone(Exception):
    """The client closed its connection before the answer: nobody to answer."""


async def unless_client_leaves(request: Request, call: Coroutine[Any, Any, T]) -> T:
    """Await ``call`` (a model call) unless the client goes away first: then cancel it, so
    that the provider's request is closed and the call recorded ``cancelled`` (a client
    that timed out and retried left ``ok`` calls, billed, that nobody got), and raise
    :class:`ClientGone`. The request's body has been read: its next message is the
    disconnect."""
    task = asyncio.ensure_future(call)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:  # the server itself is stopping the request
        task.cancel()
        raise
    finally:
        if not watcher.done():
            watcher.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    raise ClientGone


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _attribution(request: Request, body: Mapping[str, Any]) -> dict[str, Any]:
    """user, tags, session and metadata from the body and the x-llmops-* headers."""

    def header(name: str) -> str:
        """A header's value as the client wrote it: HTTP carries bytes, which Starlette
        reads as Latin-1; clients send UTF-8 (``José``, not ``JosÃ©``)."""
        value = request.headers.get(name, "")
        if len(value) > MAX_HEADER_CHARS:
            raise RequestError(400, f"{name} is longer than {MAX_HEADER_CHARS} characters")
        try:
            return value.encode("latin-1").decode("utf-8")
        except UnicodeError:
            return value

    user = body.get("user") if isinstance(body.get("user"), str) else None
    user = header("x-llmops-user") or user
    tags = [t.strip() for t in header("x-llmops-tags").split(",") if t.strip()]
    metadata: Any = body.get("metadata") if isinstance(body.get("metadata"), dict) else None
    raw = header("x-llmops-metadata")
    if raw:
        try:
            metadata = json.loads(raw)
        except (ValueError, RecursionError):
            raise RequestError(400, "x-llmops-metadata must be a JSON object") from None
        if not isinstance(metadata, dict):
            raise RequestError(400, "x-llmops-metadata must be a JSON object")
    return {
        "user": user,
        "tags": tags or None,
        "session": header("x-llmops-session") or None,
        "metadata": metadata,
    }


async def _json_body(request: Request) -> dict[str, Any]:
    data = bytearray()
    received = 0
    async for part in request.stream():
        received += len(part)
        if received <= MAX_BODY_BYTES:
            data += part
        elif received > DRAIN_BYTES:
            break  # answer now: the client may see the connection close under it
        # else: read on and discard, so that the client gets to read the 413
    if received > MAX_BODY_BYTES:
        raise RequestError(413, f"request body over {MAX_BODY_BYTES} bytes", code="too_large")
    try:  # NaN, Infinity and 1e309 are refused as they are parsed: JSON's parser takes them
        body = json.loads(data, parse_float=_finite, parse_constant=_not_finite)
    except _NotFinite:
        raise RequestError(
            400, "the body holds a number that is not finite (NaN or Infinity)",
            code="invalid_json",
        ) from None  # fmt: skip
    except (ValueError, UnicodeDecodeError):
        raise RequestError(400, "the body is not valid JSON", code="invalid_json") from None
    except RecursionError:
        raise RequestError(400, "the body nests too deeply", code="invalid_json") from None
    if not isinstance(body, dict):
        raise RequestError(400, "the body must be a JSON object", code="invalid_json")
    if _SURROGATE_ESCAPE.search(data):  # rare: check that each half has its pair
        try:
            json.dumps(body, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise RequestError(
                400, "the body holds text that is not valid Unicode (a lone surrogate)",
                code="invalid_json",
            ) from None  # fmt: skip
    return body


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")  # "\\ud83d": half of a pair, or a pair


class _NotFinite(ValueError):
    """A number no model API takes."""


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e309
        raise _NotFinite(text)
    return value


def _not_finite(text: str) -> float:  # NaN, Infinity, -Infinity
    raise _NotFinite(text)


def _check_options(params: Mapping[str, Any]) -> None:
    """litellm's own options a client may set, as they must be (litellm answers a bad one
    as a server error, which clients retry)."""
    retries = params.get("num_retries")
    if "num_retries" in params and (
        not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 10
    ):
        raise RequestError(400, "num_retries must be a whole number from 0 to 10")
    timeout = params.get("timeout")
    if "timeout" in params and (
        not isinstance(timeout, int | float) or isinstance(timeout, bool) or not timeout > 0
    ):
        raise RequestError(400, "timeout must be a number of seconds above 0")


def _wants_usage(options: Any) -> bool:
    return isinstance(options, dict) and bool(options.get("include_usage"))


async def _events(handle: AsyncStream, usage_wanted: bool) -> AsyncIterator[bytes]:
    """Server-sent events of the provider's chunks, then ``[DONE]``; usage only when the
    client asked for it (the gateway always asks the provider)."""
    try:
        async for chunk in handle.chunks():
            data = _dump(chunk)
            if not usage_wanted:
                if not data.get("choices"):
                    continue  # the usage-only chunk
                data.pop("usage", None)
            yield b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"
    except Exception as exc:  # the provider failed mid-stream: recorded; tell the client
        error = _provider_error_body(exc)[1]
        yield b"data: " + json.dumps(error).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"


def _completion_body(result: Completion) -> dict[str, Any]:
    return _dump(result.raw)


def _dump(response: Any) -> dict[str, Any]:
    """A litellm response or chunk as OpenAI's JSON (without litellm's private fields)."""
    dump = getattr(response, "model_dump", None)
    data: dict[str, Any] = dump(exclude_none=True) if callable(dump) else dict(response)
    for private in [k for k in data if k.startswith("_")]:
        del data[private]
    if isinstance(data.get("usage"), dict):  # litellm's estimate, not the recorded cost
        data["usage"].pop("cost", None)
    return data


def _models(gateway: Gateway) -> list[dict[str, Any]]:
    """The registry's prompts (as ``prompt:NAME``) and the models they use."""
    found: dict[str, None] = {}
    try:
        names = gateway.registry.names()
    except LLMOpsError:
        names = []
    for name in names:
        found[f"{PROMPT_PREFIX}{name}"] = None
        try:
            model = gateway.prompt(name).model
        except LLMOpsError:
            continue
        if model:
            found[model] = None
    return [{"id": m, "object": "model", "created": 0, "owned_by": "llmops"} for m in found]


def _listed(models: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{"id": m, "object": "model", "created": 0, "owned_by": "llmops"} for m in models]


def _failure(exc: BaseException) -> Response:
    """The answer to a request that failed, in OpenAI's shape: refused by the keys or as
    malformed, refused by a budget, a bad prompt reference or feedback, or the provider's
    error (the gateway recorded the call) with the provider's status."""
    if isinstance(exc, ClientGone):  # never read: the connection is closed
        return Response(status_code=499)
    if isinstance(exc, Refused):
        return _error(exc.status, exc.message, exc.kind, exc.code, exc.headers)
    if isinstance(exc, RequestError):
        return _error(exc.status, exc.message, exc.kind, exc.code)
    call_id = getattr(exc, "llmops_call_id", None)  # the call was recorded: say which
    headers = {CALL_ID_HEADER: call_id} if isinstance(call_id, str) else None
    if isinstance(exc, BudgetExceededError):
        return _error(429, str(exc), "budget_exceeded", "budget_exceeded", headers)
    if isinstance(exc, UnknownCallError):
        return _error(404, str(exc), "not_found_error", "unknown_call")
    if isinstance(exc, ConfigError):  # InvalidFeedbackError too
        return _error(400, str(exc))
    if isinstance(exc, LLMOpsError) and not isinstance(exc, ProviderError):
        return _error(500, str(exc), "server_error")
    status, body = _provider_error_body(exc)
    retry_after = provider_retry_after(exc)
    if retry_after is not None:
        headers = {**(headers or {}), "retry-after": retry_after}
    return JSONBody(body, status_code=status, headers=headers)


def provider_retry_after(exc: BaseException) -> str | None:
    """The provider's ``retry-after``, to pass on: the direct route's error holds it in
    seconds, litellm's errors keep the provider's response headers."""
    if isinstance(exc, ProviderError):
        return None if exc.retry_after is None else f"{exc.retry_after:g}"
    headers = getattr(exc, "litellm_response_headers", None)
    if headers is None:
        headers = getattr(getattr(exc, "response", None), "headers", None)
    try:
        value = headers.get("retry-after") if headers is not None else None
    except Exception:  # whatever a provider's client keeps there
        return None
    return value.strip() if isinstance(value, str) and value.strip() else None


def _provider_error_body(exc: BaseException) -> tuple[int, dict[str, Any]]:
    """The status and OpenAI-shaped body of a provider's error: the provider's own body
    when it sent one (direct route), else one made from the exception. A call that timed
    out is 504 Gateway Timeout (litellm says 408, which clients read as their own fault)."""
    if isinstance(exc, ProviderError) and exc.body is not None:
        if _bounded(exc.body):
            return exc.status_code, _client_body(exc.body)
        return exc.status_code, _error_body(exc.status_code, exc.message, "ProviderError")
    status = getattr(exc, "status_code", None)
    if not isinstance(status, int) or not 400 <= status <= 599:
        status = 502
    if timed_out(exc):
        status = 504
    elif raised_as(exc, UNREACHABLE_ERRORS, causes=True):  # a connection never made
        status = 502
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return status, _error_body(status, str(message), type(exc).__name__)


def _error_body(status: int, message: str, code: str) -> dict[str, Any]:
    """OpenAI's error shape for a provider's error, its message made safe for a client."""
    kind = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
            404: "not_found_error", 429: "rate_limit_error"}.get(status, "api_error")  # fmt: skip
    return {"error": {"message": client_message(message), "type": kind, "param": None,
                      "code": code}}  # fmt: skip


MAX_ERROR_BODY = 16 * 1024
"""The largest provider error body passed on as it is (scrubbed, on the event loop: a
megabyte of strings took over a second); a larger one becomes OpenAI's shape around its
message. Providers' error bodies are well under a kilobyte."""


def _bounded(body: Any) -> bool:
    try:
        return len(json.dumps(body)) <= MAX_ERROR_BODY
    except (TypeError, ValueError, RecursionError):
        return False


def _client_body(value: Any, depth: int = 0) -> Any:
    """A provider's error body as a client may read it: every text in it (values and keys,
    not only ``error.message``: a provider may echo the server's key in any field) passed
    through :func:`client_message`; nesting past 32 levels is cut."""
    if isinstance(value, str):
        return client_message(value)
    if depth >= 32:
        return None
    if isinstance(value, dict):
        return {client_message(str(k)): _client_body(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_client_body(item, depth + 1) for item in value]
    return value


def client_message(message: str) -> str:
    """A provider's (or litellm's) error message as a client may read it: without the
    server's credentials it may echo (as stored: :func:`scrub_error`) and without a Python
    traceback (litellm puts some in its messages: the server's paths and code)."""
    cut = message.find("Traceback (most recent call last)")
    if cut >= 0:
        message = message[:cut].rstrip() or "the provider's call failed"
    return scrub_error(message[:4000], {})


def _error(
    status: int,
    message: str,
    kind: str = "invalid_request_error",
    code: str = "",
    headers: dict[str, str] | None = None,
) -> Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code or None}}
    return JSONBody(body, status_code=status, headers=headers)
