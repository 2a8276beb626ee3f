"""The direct route: calls to OpenAI-compatible upstreams sent as they are, not by litellm.

litellm spends several milliseconds of CPU on each call (its logging object, parameter
mapping for a hundred providers, pydantic responses). For a proxy that is most of what it
adds to a call. A chat or embeddings call that litellm would route to its ``openai``
provider (``gpt-4o-mini``, ``openai/NAME``, ...) and that carries only parameters of
OpenAI's own API can be sent as it is, so a Gateway made with ``direct=True`` (``llmops
serve`` does) sends those itself and leaves everything else to litellm: sync calls with
httpx, async ones with aiohttp (a third of httpx's CPU per request; it comes with litellm).

The upstream is found as litellm finds it: the call's ``api_base`` (or ``base_url``), else
``litellm.api_base``, ``OPENAI_BASE_URL``, ``OPENAI_API_BASE``, ``https://api.openai.com/v1``;
the key is the call's ``api_key``, else ``litellm.api_key``, ``litellm.openai_key`` or
``OPENAI_API_KEY`` (sent as a bearer token, never stored); the organization (the call's
``organization``, ``litellm.organization`` or ``OPENAI_ORGANIZATION``) as
``OpenAI-Organization``.

What comes back is the provider's JSON as :class:`JSONObject` (a dict whose keys are also
attributes: ``answer.choices[0].message.content``), so the recorder reads it as it reads
litellm's responses and a proxy can pass it on unchanged. Recording is the gateway's, the
same for both routes. Errors are :class:`~llmops.errors.ProviderError` with the
provider's status code and error body. ``num_retries`` (or ``max_retries``; default 0)
retries 429, 5xx and connection failures, after ``Retry-After`` when the
provider says (at most 20 s). ``timeout`` (seconds, default 600) bounds the wait for the
answer, and for a stream the wait for each chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import TYPE_CHECKING, Any

from llmops.errors import (
    ProviderError,
    ProviderRateLimitError,
    ProviderTimeoutError,
    ProviderUnreachableError,
)

if TYPE_CHECKING:
    import aiohttp
    import httpx

    from llmops.gateway.recorder import Call

# Parameters of OpenAI's chat completions API: a call with any other (a litellm option such
# as api_base or mock_response, a provider-specific one) goes through litellm.
CHAT_BODY = frozenset({
    "temperature", "top_p", "n", "stop", "max_tokens", "max_completion_tokens",
    "presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "seed",
    "tools", "tool_choice", "parallel_tool_calls", "response_format", "service_tier",
    "reasoning_effort", "modalities", "audio", "prediction", "web_search_options",
    "verbosity", "functions", "function_call", "stream", "stream_options", "store",
})  # fmt: skip
EMBEDDINGS_BODY = frozenset({"encoding_format", "dimensions"})
# how to send, not what: litellm's names, honoured the same way
CONTROL = frozenset({"timeout", "num_retries", "max_retries", "api_base", "base_url", "api_key",
                     "organization", "drop_params"})  # fmt: skip
# What ``drop_params`` drops for a reasoning model, as litellm does: they refuse sampling
# settings (the eval judge sends temperature 0 to any model).
REASONING_REFUSE = frozenset({"temperature", "top_p", "presence_penalty", "frequency_penalty",
                              "logprobs", "top_logprobs", "logit_bias"})  # fmt: skip
DEFAULT_TIMEOUT = 600.0  # litellm's default for a request
MAX_RETRY_WAIT = 20.0
# OpenAI's reasoning models refuse max_tokens; litellm renames it, and so does this route.
REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")
RETRIED = frozenset({408, 409, 429, 500, 502, 503, 504})
PROVIDER = "openai"
MAX_ROUTES = 10_000  # model names remembered


class _Unset:
    """litellm's module settings before litellm is imported: none set."""

    api_base = api_key = openai_key = organization = None


_NO_SETTINGS = _Unset()


class JSONObject(dict[str, Any]):
    """A JSON object whose keys are also attributes (a missing one is AttributeError)."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def loads(data: bytes | str) -> Any:
    """A provider's JSON; nested too deeply for Python's parser, it is a ValueError as
    other malformed JSON is (not a RecursionError that no caller expects)."""
    try:
        return json.loads(data, object_hook=JSONObject)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


class DirectRoute:
    """Decides which calls go direct and sends them (see the module docstring).

    ``route_of(model)`` is litellm's routing of a model name: (the name the provider
    knows, the provider). One sync client serves every thread; one async client per event
    loop (an httpx client belongs to the loop it was made on).
    """

    def __init__(self, route_of: Callable[[str], tuple[str, str | None]]) -> None:
        self._route_of = route_of
        self._routes: dict[str, tuple[str, str | None]] = {}
        self._sync: httpx.Client | None = None
        self._async: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[aiohttp.ClientSession, AsyncGenerator[None, None]]
        ] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    # -- which calls -------------------------------------------------------------------

    def accepts(self, call: Call) -> bool:
        """Whether ``call`` goes direct: an ``openai`` model, OpenAI's parameters only."""
        allowed = EMBEDDINGS_BODY if call.operation == "embeddings" else CHAT_BODY
        if any(name not in allowed and name not in CONTROL for name in call.params):
            return False
        return self._route(call.model)[1] == PROVIDER

    def _route(self, model: str) -> tuple[str, str | None]:
        route = self._routes.get(model)
        if route is None:
            try:
                route = self._route_of(model)
            except Exception:  # litellm cannot route it: neither can we
                route = (model, None)
            if len(self._routes) >= MAX_ROUTES:  # model names come from clients: bounded
                self._routes.clear()
            self._routes[model] = route
        return route

    # -- what is sent ------------------------------------------------------------------

    def request(self, call: Call) -> tuple[str, dict[str, str], dict[str, Any]]:
        """(url, headers, body) of ``call``; the headers hold the provider key."""
        from llmops import litellm_loader

        # litellm's module settings, when the app imported litellm to set them
        litellm: Any = litellm_loader.imported() or _NO_SETTINGS
        params = call.params
        base = litellm_loader.openai_api_base(params) or "https://api.openai.com/v1"
        key = (
            params.get("api_key")
            or litellm.api_key
            or litellm.openai_key
            or os.environ.get("OPENAI_API_KEY")
        )
        headers = {"content-type": "application/json"}
        if key:
            headers["authorization"] = f"Bearer {key}"
        organization = (
            params.get("organization")
            or litellm.organization
            or os.environ.get("OPENAI_ORGANIZATION")
        )
        if organization:
            headers["openai-organization"] = organization
        model = self._route(call.model)[0]
        body = {k: v for k, v in params.items() if k not in CONTROL}
        body["model"] = model
        if call.operation == "embeddings":
            body["input"] = call.embedding_input()
            return base.rstrip("/") + "/embeddings", headers, body
        body["messages"] = call.messages
        if "max_tokens" in body and model.startswith(REASONING_PREFIXES):
            body.setdefault("max_completion_tokens", body.pop("max_tokens"))
        if params.get("drop_params") and model.startswith(REASONING_PREFIXES):
            body = {k: v for k, v in body.items() if k not in REASONING_REFUSE}
        return base.rstrip("/") + "/chat/completions", headers, body

    def _timeout(self, call: Call) -> float:
        value = call.params.get("timeout")
        return float(value) if isinstance(value, int | float) and value > 0 else DEFAULT_TIMEOUT

    def _retries(self, call: Call) -> int:
        asked = [call.params.get(name) for name in ("num_retries", "max_retries")]
        return max(0, min(10, max((n for n in asked if isinstance(n, int)), default=0)))

    # -- sending: sync -----------------------------------------------------------------

    def send(self, call: Call) -> Any:
        """The answer (a JSONObject), or for ``stream`` a :class:`DirectStream`."""
        import httpx

        client = self._sync_client()
        url, headers, body = self.request(call)
        content = json.dumps(body, separators=(",", ":")).encode()
        deadline = time.monotonic() + self._timeout(call)
        streaming = bool(body.get("stream"))
        attempt = 0
        while True:
            try:
                left = _left(deadline)
                request = client.build_request(
                    "POST", url, headers=headers, content=content, timeout=left
                )
                response = client.send(request, stream=streaming)
                if response.status_code < 400:
                    if streaming:
                        return DirectStream(response)
                    return _answer(response.content)
                if streaming:
                    response.read()
                    response.close()
                error = _status_error(
                    response.status_code, response.content, response.headers.get("retry-after")
                )
            except httpx.TimeoutException:
                raise _timed_out(self._timeout(call)) from None
            except httpx.TransportError as exc:
                error = _unreachable(exc)
            attempt += 1
            if attempt > self._retries(call) or error.status_code not in RETRIED:
                raise error
            time.sleep(min(_wait(error, attempt), _left(deadline)))

    def _sync_client(self) -> httpx.Client:
        with self._lock:
            if self._sync is None:
                import httpx

                self._sync = httpx.Client(limits=_limits(), headers=_agent())
            return self._sync

    # -- sending: async ----------------------------------------------------------------

    async def asend(self, call: Call) -> Any:
        """The async twin of :meth:`send` (a :class:`DirectAsyncStream` for ``stream``),
        on aiohttp: a third of httpx's CPU per request, which is most of what a proxy adds."""
        import aiohttp

        session = await self._session()
        url, headers, body = self.request(call)
        content = json.dumps(body, separators=(",", ":")).encode()
        limit = self._timeout(call)
        deadline = time.monotonic() + limit
        streaming = bool(body.get("stream"))
        attempt = 0
        while True:
            left = _left(deadline)
            timeout = (
                aiohttp.ClientTimeout(total=None, connect=left, sock_read=left)
                if streaming
                else aiohttp.ClientTimeout(total=left)
            )
            try:
                response = await session.post(url, data=content, headers=headers, timeout=timeout)
                if response.status < 400 and streaming:
                    return DirectAsyncStream(response)
                try:
                    data = await response.read()
                finally:
                    response.release()
                if response.status < 400:
                    return _answer(data)
                error = _status_error(response.status, data, response.headers.get("retry-after"))
            except TimeoutError:  # aiohttp's timeouts are TimeoutErrors
                raise _timed_out(limit) from None
            except aiohttp.ClientError as exc:
                error = _unreachable(exc)
            attempt += 1
            if attempt > self._retries(call) or error.status_code not in RETRIED:
                raise error
            await asyncio.sleep(min(_wait(error, attempt), _left(deadline)))

    async def _session(self) -> aiohttp.ClientSession:
        """This loop's session, closed with :meth:`aclose` or when the loop shuts down."""
        loop = asyncio.get_running_loop()
        held = self._async.get(loop)
        if held is None:
            import aiohttp

            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
            session = aiohttp.ClientSession(connector=connector, headers=_agent())
            keeper = _keep(session)
            await keeper.__anext__()  # the loop now closes it at shutdown (asyncio.run)
            held = self._async[loop] = (session, keeper)
        return held[0]

    # -- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        """Close the sync client (async clients close with :meth:`aclose`, or their loop)."""
        with self._lock:
            if self._sync is not None:
                self._sync.close()
                self._sync = None

    async def aclose(self) -> None:
        """Close this loop's session and the sync client."""
        held = self._async.pop(asyncio.get_running_loop(), None)
        if held is not None:
            await held[1].aclose()
        self.close()


class DirectStream:
    """The chunks of a streamed answer (server-sent events), as JSONObjects."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.iter_lines()
        self._finished = False  # a finish_reason was seen

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        import httpx

        try:
            while True:
                chunk = _event(next(self._lines))
                if chunk is not None:
                    self._finished = self._finished or _finishes(chunk)
                    return chunk
        except StopIteration:
            self.close()
            if not self._finished:
                raise _cut_short() from None
            raise
        except _Done:
            self.close()
            raise StopIteration from None
        except httpx.TimeoutException:
            self.close()
            raise _timed_out(None) from None
        except httpx.TransportError as exc:
            self.close()
            raise _unreachable(exc) from None

    def close(self) -> None:
        self.response.close()


class DirectAsyncStream:
    """The async twin of :class:`DirectStream` (over an aiohttp response)."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self._lines: deque[bytes] = deque()
        self._rest = b""
        self._eof = False
        self._finished = False

    def __aiter__(self) -> DirectAsyncStream:
        return self

    async def __anext__(self) -> Any:
        import aiohttp

        try:
            while True:
                if not self._lines:
                    if self._eof:
                        break
                    await self._read()
                    continue
                chunk = _event(self._lines.popleft().decode("utf-8", "replace"))
                if chunk is not None:
                    self._finished = self._finished or _finishes(chunk)
                    return chunk
        except _Done:
            await self.aclose()
            raise StopAsyncIteration from None
        except TimeoutError:
            await self.aclose()
            raise _timed_out(None) from None
        except aiohttp.ClientError as exc:
            await self.aclose()
            raise _unreachable(exc) from None
        await self.aclose()
        if not self._finished:
            raise _cut_short()
        raise StopAsyncIteration

    async def _read(self) -> None:
        data = await self.response.content.readany()
        if not data:
            self._eof = True
            data = b"\n"  # the last line, if it had no newline
        lines = (self._rest + data).split(b"\n")
        self._rest = lines.pop()
        self._lines.extend(line.rstrip(b"\r") for line in lines)

    async def aclose(self) -> None:
        """Let the connection go: back to the pool after a whole answer, else closed (the
        provider sees the client leave and stops generating)."""
        if self._eof or self.response.content.at_eof():
            self.response.release()
        else:
            self.response.close()


class _Done(Exception):
    """The stream's ``data: [DONE]``."""


def _event(line: str) -> Any:
    """The chunk of one server-sent-events line (None for other lines)."""
    if not line.startswith("data:"):
        return None  # blank separators, comments, `event:` lines
    payload = line[5:].strip()
    if payload == "[DONE]":
        raise _Done
    try:
        chunk = loads(payload)
    except ValueError:
        raise ProviderError("the provider sent a malformed stream chunk", status_code=502) from None
    if not isinstance(chunk, dict):
        raise ProviderError("the provider sent a stream chunk that is not an object",
                            status_code=502)  # fmt: skip
    if "error" in chunk and not chunk.get("choices"):
        raise _provider_error(500, chunk)
    return chunk


def _finishes(chunk: dict[str, Any]) -> bool:
    choices = chunk.get("choices")
    return isinstance(choices, list) and any(
        isinstance(c, dict) and c.get("finish_reason") for c in choices
    )


def _cut_short() -> ProviderError:
    """A stream that ended with neither ``[DONE]`` nor a ``finish_reason``: cut off."""
    return ProviderError("the provider's stream ended before the answer did", status_code=502)


def _answer(content: bytes) -> Any:
    try:
        answer = loads(content)
    except ValueError:
        raise ProviderError("the provider's answer is not JSON", status_code=502) from None
    if not isinstance(answer, dict):
        raise ProviderError("the provider's answer is not a JSON object", status_code=502)
    return answer


def _status_error(status: int, content: bytes, retry_after: str | None) -> ProviderError:
    try:
        body = loads(content)
    except ValueError:
        body = None
    error = _provider_error(status, body if isinstance(body, dict) else None)
    if not isinstance(body, dict):
        text = content[:500].decode("utf-8", "replace").strip()
        error.message = f"{status} from the provider: {text or 'no body'}"
    if retry_after:
        with contextlib.suppress(ValueError):
            error.retry_after = max(0.0, float(retry_after))
    return error


def _provider_error(status: int, body: dict[str, Any] | None) -> ProviderError:
    detail = body.get("error") if body else None
    if isinstance(detail, dict):
        message = str(detail.get("message") or detail.get("type") or "error")
    else:
        message, body = (str(detail) if detail else "error"), None
    kind = ProviderRateLimitError if status == 429 else ProviderError
    return kind(f"{status} from the provider: {message}", status_code=status, body=body)


def _timed_out(timeout: float | None) -> ProviderTimeoutError:
    after = f" after {timeout:g} s" if timeout is not None else ""
    return ProviderTimeoutError(f"the provider timed out{after}", status_code=504)


def _unreachable(exc: Exception) -> ProviderUnreachableError:
    reason = str(exc) or type(exc).__name__
    return ProviderUnreachableError(f"the provider could not be reached: {reason}",
                                    status_code=502)  # fmt: skip


def _wait(error: ProviderError, attempt: int) -> float:
    if error.retry_after is not None:
        return min(error.retry_after, MAX_RETRY_WAIT)
    return min(0.25 * 2.0 ** (attempt - 1), MAX_RETRY_WAIT)


def _left(deadline: float) -> float:
    return max(0.001, deadline - time.monotonic())


async def _keep(session: aiohttp.ClientSession) -> AsyncGenerator[None, None]:
    """Holds a session open; closing this generator (the loop does at shutdown) closes it."""
    try:
        yield
    finally:
        await session.close()


def _limits() -> httpx.Limits:
    import httpx

    # no cap on connections: a proxy's streams are long, and a cap queues callers silently
    return httpx.Limits(max_connections=None, max_keepalive_connections=200, keepalive_expiry=60)


def _agent() -> dict[str, str]:
    from llmops import __version__

    return {"user-agent": f"llmops/{__version__}"}
