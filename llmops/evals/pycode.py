"""Python written in a suite: inline checks and transforms, run in-process with a time limit.

A ``python`` assertion's ``value`` (and a ``transform``) is either a reference to a
function or inline code, as promptfoo reads it. A reference is one line that is
``file://path.py[:function]``, ``path.py[:function]``, ``package.module:function`` or a
dotted ``package.module.function``; anything else is code: one line is an expression
(``output.lower().startswith('hi')``), several lines are a function body ending in
``return``. The code sees ``output`` and ``context`` and may use ``json`` and ``re``.

A suite is code you trust: inline Python runs in this process with the runner's rights.
The time limit (:data:`TIME_LIMIT_S`) stops a check that loops in Python code; it cannot
interrupt one long call into C (a huge ``10 ** 10 ** 9``).
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

TIME_LIMIT_S = 10.0
INLINE_FILENAME = "<python assertion>"

_FILE = re.compile(r"(?:file://)?[^\s:()'\"]+\.py(?::[A-Za-z_]\w*)?")
_MODULE = re.compile(
    r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*|[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+"
)


class TimeLimit(BaseException):
    """Raised inside a check that ran past its time limit (a BaseException, so that an
    ``except Exception`` in the check does not swallow it)."""


def is_reference(value: str) -> bool:
    """Whether ``value`` names a function (a file or a module) rather than being code."""
    text = value.strip()
    if "\n" in text:
        return False
    if text.startswith("file://"):
        return True
    return _FILE.fullmatch(text) is not None or _MODULE.fullmatch(text) is not None


def source(code: str) -> str:
    """The function promptfoo builds from inline code: ``return <expression>`` for one
    line (unless it is a ``return`` statement already), the lines as its body otherwise."""
    text = code.strip("\n")
    if "\n" not in text.strip() and not re.match(r"return\b", text.strip()):
        body = f"    return ({text.strip()})\n"
    else:
        body = textwrap.indent(textwrap.dedent(text), "    ") + "\n"
    return f"def _inline(output, context):\n{body}"


def compile_inline(code: str) -> Callable[[Any, Any], Any]:
    """The inline code as a function of ``(output, context)``; raises SyntaxError."""
    namespace: dict[str, Any] = {"json": json, "re": re}
    exec(compile(source(code), INLINE_FILENAME, "exec"), namespace)  # noqa: S102  # a trusted suite
    function: Callable[[Any, Any], Any] = namespace["_inline"]
    return function


def syntax_problem(code: str) -> str | None:
    """Why inline code does not compile, or None."""
    try:
        compile(source(code), INLINE_FILENAME, "exec")
    except SyntaxError as exc:
        line = (exc.lineno or 2) - 1  # the generated "def" line comes first
        return f"not valid Python (line {max(line, 1)}): {exc.msg}"
    except (ValueError, RecursionError, MemoryError) as exc:  # NUL bytes, absurd nesting
        return f"not valid Python: {type(exc).__name__}"
    return None


def call_limited(function: Callable[..., Any], *args: Any, seconds: float | None = None) -> Any:
    """``function(*args)``, stopped with :class:`TimeLimit` after ``seconds`` of Python
    execution. The function's own code is traced per instruction (a one-line
    ``while True: pass`` stops too), code it calls per line."""
    limit = TIME_LIMIT_S if seconds is None else seconds
    deadline = time.monotonic() + limit
    own = {getattr(getattr(function, "__code__", None), "co_filename", INLINE_FILENAME)}
    own.add(INLINE_FILENAME)

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "call" and frame.f_code.co_filename in own:
            frame.f_trace_opcodes = True
        if time.monotonic() > deadline:
            raise TimeLimit(f"did not finish in {limit:g} s")
        return tracer

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        return function(*args)
    finally:
        sys.settrace(previous)
