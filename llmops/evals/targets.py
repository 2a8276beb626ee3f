"""Custom eval targets: an app's own Python function, or an HTTP service, instead of a prompt.

A suite with ``target:`` tests a pipeline end to end (retrieval, tools, several model
calls). A Python function is called with the case's variables as keyword arguments; the
model calls it makes through any llmops Gateway are linked to the eval run (recorded with
source ``eval``, the run's tags and metadata) and their cost is the case's cost. An HTTP
target gets the case as a JSON body (or a body template) and the run's ids in
``x-llmops-*`` headers, which a service calling ``llmops serve`` can pass on.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import inspect
import json
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from llmops.errors import ConfigError

DEFAULT_TIMEOUT = 300.0  # seconds a target may take for one case
MAX_ANSWER_BYTES = 10 * 2**20  # an HTTP target's answer, read at most
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class HttpTarget(BaseModel):
    """``target: {http: URL, ...}``: a service in any language."""

    model_config = ConfigDict(extra="forbid")

    http: str = Field(pattern=r"^https?://", description="The URL called for each case.")
    method: str = Field(default="POST", pattern="^(GET|POST|PUT)$")
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Request headers; ${NAME} is read from the environment when the call "
        "is made (so tokens stay out of the suite and of every stored record).",
    )
    body: Any = Field(
        default=None,
        description="The JSON body, its texts rendered with the case's variables "
        "({{ question }}); default: the variables as a JSON object (GET: query parameters).",
    )
    output: str | None = Field(
        default=None,
        description="Where the answer is in a JSON response, as a dotted path "
        "(answer, choices.0.message.content); default: the whole response text.",
    )
    timeout: float = Field(default=60.0, gt=0, le=3600)


class TargetSpec(BaseModel):
    """The suite's ``target:``: a Python function or an HTTP service."""

    model_config = ConfigDict(extra="forbid")

    python: str | None = Field(
        default=None,
        description="path/to/app.py:function or package.module:function, called with the "
        "case's variables as keyword arguments",
    )
    http: HttpTarget | None = None
    timeout: float = Field(default=DEFAULT_TIMEOUT, gt=0, le=86400)


@dataclass
class Answer:
    """What a target answered for one case."""

    text: str
    cost_usd: float | None
    call_ids: list[str] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


class TargetFailed(Exception):
    """The target raised, timed out or answered something that is not an answer."""


class AppTarget:
    """A loaded custom target: what it is called, its version, and how to call it."""

    def __init__(self, spec: TargetSpec | str | HttpTarget, base_dir: Path) -> None:
        if isinstance(spec, str):
            spec = TargetSpec(python=spec)
        elif isinstance(spec, HttpTarget):
            spec = TargetSpec(http=spec)
        self.spec = spec
        self.function: Callable[..., Any] | None = None
        self.http = spec.http
        if spec.python is not None and spec.http is None:
            self.function, source = _load(spec.python, base_dir)
            self.kind, self.name = "python", spec.python
            self.version = _digest(source)
        elif spec.http is not None and spec.python is None:
            self.kind, self.name = "http", spec.http.http
            self.version = _digest(spec.http.model_dump_json().encode())
            for header, value in spec.http.headers.items():  # found now, not after the run
                for name in _ENV.findall(value):
                    if name not in os.environ:
                        raise ConfigError(f"header {header} needs ${{{name}}}, which is not set")
        else:
            raise ConfigError("target: give a Python function (a text) or {http: URL}")

    async def call(self, variables: dict[str, Any], headers: dict[str, str]) -> Answer:
        """One case. The caller links it to the run (:func:`llmops.gateway.scope.linked`)."""
        try:
            if self.function is not None:
                return await asyncio.wait_for(
                    self._call_function(self.function, variables), timeout=self.spec.timeout
                )
            if self.http is not None:
                return await self._call_http(self.http, variables, headers)
        except TimeoutError:
            limit = self.spec.timeout if self.http is None else self.http.timeout
            raise TargetFailed(f"{self.name} took longer than {limit:g} s") from None
        raise TargetFailed("the target is neither a function nor a service")

    async def _call_function(
        self, function: Callable[..., Any], variables: dict[str, Any]
    ) -> Answer:
        try:
            if inspect.iscoroutinefunction(function):
                result = await function(**variables)
            else:  # a thread of its own keeps the event loop (and the other cases) going
                result = await _in_thread(function, variables)
        except Exception as exc:
            raise TargetFailed(f"{self.name} raised {type(exc).__name__}: {exc}") from None
        return answer_of(result)

    async def _call_http(
        self, http: HttpTarget, variables: dict[str, Any], headers: dict[str, str]
    ) -> Answer:
        import httpx

        sent = {**headers, **{k: _expand(v) for k, v in http.headers.items()}}
        body = _rendered(http.body, variables) if http.body is not None else variables
        request: dict[str, Any] = {"headers": sent, "timeout": http.timeout}
        if http.method == "GET":
            query = body if isinstance(body, dict) else {}
            request["params"] = {key: str(value) for key, value in query.items()}
        else:
            request["json"] = body
        try:
            async with (
                httpx.AsyncClient() as client,
                client.stream(http.method, http.http, **request) as response,
            ):
                body = bytearray()
                async for piece in response.aiter_bytes():
                    body += piece
                    if len(body) > MAX_ANSWER_BYTES:
                        raise TargetFailed(
                            f"HTTP target: the answer is over {MAX_ANSWER_BYTES // 2**20} MB"
                        )
        except httpx.HTTPError as exc:
            raise TargetFailed(f"HTTP target: {type(exc).__name__}: {exc}") from None
        text = body.decode(response.encoding or "utf-8", errors="replace")
        if response.status_code >= 400:
            raise TargetFailed(f"HTTP target answered {response.status_code}: {text[:200]}")
        if http.output is None:
            return Answer(text, None)
        try:
            data = json.loads(text)
        except ValueError:
            raise TargetFailed("HTTP target: the answer is not JSON (output: is set)") from None
        return Answer(_text(_at(data, http.output)), None)


async def _in_thread(function: Callable[..., Any], variables: dict[str, Any]) -> Any:
    """``function(**variables)`` in a daemon thread, in this context (the run's scope).
    Not asyncio's executor: a target stuck past its timeout would keep the process from
    exiting, as the executor's threads are waited for."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():  # timed out and cancelled meanwhile
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def work() -> None:
        try:
            result, error = context.run(function, **variables), None
        except BaseException as exc:  # handed to the awaiting case
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=work, name="llmops-eval-target", daemon=True).start()
    return await future


def answer_of(result: Any) -> Answer:
    """A function target's return value as an answer: a text, a Completion, or a dict with
    ``output`` (and optional ``tool_calls``, ``cost_usd``)."""
    if isinstance(result, str):
        return Answer(result, None)
    if hasattr(result, "text") and hasattr(result, "call_id"):  # a gateway Completion
        calls = list(getattr(result, "tool_calls", None) or [])
        return Answer(str(result.text), None, tool_calls=calls)
    if isinstance(result, dict) and "output" in result:
        cost = result.get("cost_usd")
        return Answer(
            _text(result["output"]),
            float(cost) if isinstance(cost, int | float) else None,
            tool_calls=list(result.get("tool_calls") or []),
        )
    raise TargetFailed(
        f"the target returned {type(result).__name__}: expected a text, a Completion or a "
        "dict with 'output'"
    )


def _load(spec: str, base_dir: Path) -> tuple[Callable[..., Any], bytes]:
    """The function and the source it comes from (its file's bytes: the target's version)."""
    from llmops.evals.assertions import load_function

    function = load_function(spec, base_dir)
    try:
        source = Path(inspect.getfile(function)).read_bytes()
    except (TypeError, OSError):  # a builtin or a module without a file
        source = spec.encode()
    return function, source


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


def _expand(value: str) -> str:
    def env(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise TargetFailed(f"HTTP target: header needs ${{{name}}}, which is not set")
        return os.environ[name]

    return _ENV.sub(env, value)


def _rendered(value: Any, variables: dict[str, Any]) -> Any:
    from llmops.evals.assertions import RenderProblem, render_value

    try:
        return render_value(value, variables)
    except RenderProblem as exc:
        raise TargetFailed(f"HTTP target body: {exc}") from None


def _at(data: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        elif isinstance(data, dict) and part in data:
            data = data[part]
        else:
            raise TargetFailed(f"HTTP target: the answer has no {path!r}")
    return data


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
