"""The bounded Jinja2 sandbox that prompt templates render in.

Templates are user-controlled files, so a render runs in a *bounded* sandbox. One
call of :func:`render` may not exceed any of these limits (the module
constants are the defaults; pass ``limits=RenderLimits(...)`` for others):

``MAX_OUTPUT_CHARS`` (1,000,000)
    Characters of rendered text. The same bound applies to every value the
    template computes on the way: ``'a' * n``, ``[x] * n``, ``+`` and ``~``
    concatenation, ``%`` and ``str.format`` (widths and precisions included),
    string methods such as ``center``/``ljust``/``zfill``/``expandtabs``/
    ``replace``/``join``, filters such as ``center``/``indent``/``replace``/
    ``join``/``format``/``wordwrap``, ``lipsum()``, and the text of macros,
    ``{% set %}`` and ``{% filter %}`` blocks. Where the allocation itself would
    be the bomb the size is computed from the operands *before* anything is
    allocated. A container counts as the characters it prints as, so values
    that share references (``[x, x]`` doubling) cannot print gigabytes either.
    Integers may have at most ``MAX_INT_DIGITS`` digits (``2 ** (10 ** 10)``).
``MAX_RANGE_ITEMS`` (10,000)
    Items in one ``range()`` (also the most slices ``|slice`` may make).
``MAX_LOOP_ITERATIONS`` (1,000,000)
    ``{% for %}`` iterations in one render, all loops together, so nested
    loops are bounded too.
``MAX_RENDER_SECONDS`` (1.0)
    Wall-clock time of one render. There are no threads or signals (renders run
    in the app's threads): the hooks read the clock where time can pile up, on
    every call (macros, methods, globals), every 64 loop iterations and after
    every operation on more than 64 K characters; a single operation in between
    is bounded by the size limits above, and the few filters that are slow on
    large text (``wordwrap``, ``urlize``, ``sum`` of lists) refuse work that
    would take too long.
``MAX_CALL_DEPTH`` (100)
    Nesting of calls (recursive macros, ``loop()`` in recursive loops,
    ``caller()``). A Python ``RecursionError`` is reported the same way.

Exceeding a limit raises :class:`~llmops.errors.TemplateLimitError`, which names
the prompt and the limit. Values the application passes in are not limited by
themselves, only the text rendered and what the template builds, even from them:
a list the template makes with ``|list``, ``|sort``, ``+`` or a literal counts
what it would print (so ``{% for d in docs|sort %}`` over more than 1,000,000
printed characters of ``docs`` is refused, while ``{% for d in docs %}`` is not).

How: ``_LimitedEnvironment`` is Jinja's immutable sandbox with its own code
generator (``{% for %}`` iterates through a counting generator, ``+ * ** %`` and
``~`` go through sizing helpers, list/tuple/dict literals are sized), size-checking
wrappers around the filters, ``call()``, ``str.format``, ``range``, ``lipsum`` and
``namespace``, and a ``finalize`` that sizes what ``{{ }}`` prints. The budget of
the render in progress lives in a thread-local. Templates made only of names,
attributes, comparisons and ``if`` (most prompts) cannot amplify anything: they are
compiled by the plain sandbox and only their output is counted, so they render as
fast as before.
"""

from __future__ import annotations

import copy
import inspect
import math
import operator
import re
import threading
import time
import types
from collections import OrderedDict
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from functools import update_wrapper
from itertools import islice
from typing import Any, cast

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.constants import LOREM_IPSUM_WORDS
from jinja2.filters import make_attrgetter
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from jinja2.utils import Namespace, _PassArg, generate_lorem_ipsum
from markupsafe import EscapeFormatter, Markup

#: Characters one template may render to; also the size bound of every value
#: the template computes (strings, lists, macro output, ...).
MAX_OUTPUT_CHARS = 1_000_000
#: Items one ``range()`` may have.
MAX_RANGE_ITEMS = 10_000
#: ``{% for %}`` iterations per render, all loops together.
MAX_LOOP_ITERATIONS = 1_000_000
#: Wall-clock seconds one render may take.
MAX_RENDER_SECONDS = 1.0
#: Nesting depth of calls (recursive macros and loops).
MAX_CALL_DEPTH = 100
#: Digits an integer may have: Python's own limit for printing one.
MAX_INT_DIGITS = 4300
#: Tags (``{{ }}`` and ``{% %}``) one template may have: compiling takes about 0.2 ms a tag
#: (a 2 MB file of ``{{ a }}`` took a minute and 3.6 GB to load).
MAX_TEMPLATE_TAGS = 10_000
# the bits of a product (or power) below which it cannot have too many digits
_INT_BITS = int((MAX_INT_DIGITS - 1) / math.log10(2))
# types that print as themselves without a size risk (huge ints cannot be printed)
_PLAIN = frozenset({str, int, float, bool, type(None)})
_NUMBERS = frozenset({int, float, bool})


@dataclass(frozen=True)
class RenderLimits:
    """The bounds of one render; the defaults are the module constants."""

    output_chars: int = MAX_OUTPUT_CHARS
    range_items: int = MAX_RANGE_ITEMS
    loop_iterations: int = MAX_LOOP_ITERATIONS
    seconds: float = MAX_RENDER_SECONDS
    call_depth: int = MAX_CALL_DEPTH


DEFAULT_LIMITS = RenderLimits()

# limit key -> words for the message
_LIMIT_NAMES = {
    "output_size": "output size",
    "range_size": "range size",
    "loop_iterations": "loop iteration",
    "time": "time",
    "recursion": "recursion",
}


class LimitExceeded(jinja2.TemplateRuntimeError):
    """A render limit was hit (``limit``: which one); the prompt layer turns it into
    :class:`~llmops.errors.TemplateLimitError`."""

    def __init__(self, limit: str, detail: str) -> None:
        super().__init__(detail)
        self.limit = limit
        self.detail = detail


class _RenderState:
    """The budget of the render in progress (one per :func:`render_template` call)."""

    __slots__ = ("deadline", "depth", "iterations", "limits", "weights")

    # id -> (container, printed size) of recently built containers, so that
    # accumulating ``{% set ns.items = ns.items + [x] %}`` stays linear. An entry
    # holds its container, so the id cannot be reused meanwhile. (None until used.)
    weights: OrderedDict[int, tuple[Any, int]] | None

    def __init__(self, limits: RenderLimits) -> None:
        self.limits = limits
        self.deadline = time.monotonic() + limits.seconds
        self.iterations = self.depth = 0
        self.weights = None

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise LimitExceeded("time", f"rendering took more than {self.limits.seconds:g} s")

    def remember(self, value: Any, weight: int) -> None:
        cache = self.weights
        if cache is None:
            cache = self.weights = OrderedDict()
        elif len(cache) >= 64:
            cache.popitem(last=False)  # the least recently used
        cache[id(value)] = (value, weight)

    def loop(self, iterable: Any) -> Any:
        """Yield the items of a ``{% for %}``, spending the iteration budget.

        Iterations are counted locally and spent in batches of 64 (and when the
        loop ends), which is also when the clock is read.
        """
        count = 0
        for item in iterable:
            count += 1
            if count == 64:
                self.spend(64)
                count = 0
            yield item
        self.spend(count)

    def spend(self, iterations: int) -> None:
        self.iterations += iterations
        if self.iterations > self.limits.loop_iterations:
            raise LimitExceeded(
                "loop_iterations",
                f"more than {self.limits.loop_iterations:,} loop iterations in one render",
            )
        if time.monotonic() > self.deadline:
            self.tick()


class _Current(threading.local):
    """The render in progress on this thread. (A render never awaits or yields to
    other code, so a thread-local is exact, and cheaper than a ContextVar.)"""

    state: _RenderState | None = None


_CURRENT = _Current()


def _state_limits() -> tuple[_RenderState | None, RenderLimits]:
    state = _CURRENT.state
    return state, (state.limits if state is not None else DEFAULT_LIMITS)


def _tick() -> RenderLimits:
    state = _CURRENT.state
    if state is None:
        return DEFAULT_LIMITS
    state.tick()
    return state.limits


# -- sizes -------------------------------------------------------------------------

_DICT_VIEWS: tuple[type[object], ...] = (type({}.keys()), type({}.values()), type({}.items()))
_CONTAINERS = (list, tuple, set, frozenset, dict, Namespace, *_DICT_VIEWS)


def _int_digits(value: int) -> int:
    return int(value.bit_length() * 0.30103) + 1


def _weight(value: Any, limit: int, state: _RenderState | None = None) -> int:
    """About how many characters ``str(value)`` makes; stops counting above ``limit``.

    Containers count their items as printed (shared references count each time
    they would be printed), so the walk visits at most about ``limit`` items.
    Never calls ``str()`` or ``repr()`` on anything.
    """
    if isinstance(value, str):
        return len(value)
    cache = state.weights if state is not None else None
    total = visited = 0
    stack = [value]
    pop = stack.pop
    while stack:
        v = pop()
        visited += 1
        if not visited & 0xFFFF and state is not None:
            state.tick()  # a long walk (the cache missed): read the clock
        if isinstance(v, str):
            total += len(v) + 4  # quotes and ", "
        elif isinstance(v, (bytes, bytearray)):
            total += len(v) + 5
        elif isinstance(v, bool) or v is None:
            total += 7
        elif isinstance(v, int):
            total += _int_digits(v) + 2
        elif isinstance(v, float):
            total += 26
        elif isinstance(v, _CONTAINERS):
            if cache is not None:
                hit = cache.get(id(v))
                if hit is not None and hit[0] is v:
                    cache.move_to_end(id(v))
                    total += hit[1]
                    if total > limit:
                        return total
                    continue
            if isinstance(v, Namespace):
                v = object.__getattribute__(v, "_Namespace__attrs")
                total += 13
            if isinstance(v, dict):
                total += 2 + 4 * len(v)
                if total > limit:
                    return total
                stack.extend(v.keys())
                stack.extend(v.values())
            else:
                total += 2 + 2 * len(v)
                if total > limit:
                    return total
                stack.extend(v)
        else:
            total += 2  # an object whose repr is not the template's doing
        if total > limit:
            return total
    return total


def _too_big(what: str, size: float, limit: int) -> LimitExceeded:
    return LimitExceeded(
        "output_size",
        f"{what} would be {_count(size)} characters, more than {limit:,}",
    )


def _count(size: float) -> str:
    return f"{size:,.0f}" if size < 1e30 else f"{size:.3g}"


def _check_weight(value: Any, what: str, limits: RenderLimits, state: _RenderState | None) -> int:
    weight = _weight(value, limits.output_chars, state)
    if weight > limits.output_chars:
        raise _too_big(what, weight, limits.output_chars)
    return weight


def _check_result(value: Any, what: Any, limits: RenderLimits) -> None:
    """Cheap check of a value a call or filter returned (containers: item count).

    ``what`` is a label, or the called object (named only if the check fails).
    """
    if isinstance(value, (str, bytes, bytearray, list, tuple, dict, set, frozenset)):
        if len(value) > limits.output_chars:
            raise _too_big(_label(what), len(value), limits.output_chars)
    elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > _INT_BITS:
        _check_int(value, _label(what))


def _label(what: Any) -> str:
    if isinstance(what, str):
        return what
    return f"the result of {getattr(what, '__name__', 'a call')}()"


def _check_int(value: int, what: str) -> None:
    digits = _int_digits(value)
    if digits > MAX_INT_DIGITS:
        raise LimitExceeded(
            "output_size", f"{what} would have {digits:,} digits, more than {MAX_INT_DIGITS:,}"
        )


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _text(value: Any, what: str, limits: RenderLimits, state: _RenderState | None) -> str:
    """``str(value)``, refusing first if that would print too much."""
    if isinstance(value, str):
        return value
    _check_weight(value, what, limits, state)
    return str(value)


_DIGITS = re.compile(r"\d+")


def _spec_size(spec: str) -> int:
    """An upper bound of what the numbers in a format spec (width, precision) add."""
    total = 0
    for digits in _DIGITS.findall(spec):
        if len(digits) > 18:
            return 10**18
        total += int(digits)
    return total


def _printf_size(fmt: str, args: Any, limits: RenderLimits, state: _RenderState | None) -> int:
    """An upper bound of the length of ``fmt % args``; one linear pass, never raises."""
    limit = limits.output_chars
    positional = args if isinstance(args, tuple) else (args,)
    mapping = args if isinstance(args, dict) else None
    if "*" not in fmt and not _DIGITS.search(fmt):
        # no widths or precisions: each value is printed once, or, by key, once a key
        if mapping is None:
            return len(fmt) + sum(_weight(value, limit, state) for value in positional)
        largest = max((_weight(value, limit, state) for value in mapping.values()), default=0)
        return len(fmt) + fmt.count("%(") * largest
    index = conversions = 0
    total = end = len(fmt)

    def take() -> Any:
        nonlocal index
        value = positional[index] if index < len(positional) else None
        index += 1
        return value

    at = fmt.find("%")
    while 0 <= at < end - 1:
        at += 1
        key = None
        if fmt[at] == "(":
            close = fmt.find(")", at)
            if close < 0:
                break  # Python refuses the format
            key, at = fmt[at + 1 : close], close + 1
        while at < end and fmt[at] in "#0- +":
            at += 1
        extra = 0
        for part in ("width", "precision"):
            if part == "precision":
                if at >= end or fmt[at] != ".":
                    break
                at += 1
            if at < end and fmt[at] == "*":
                number = _as_int(take())
                extra += abs(number) if number is not None else 0
                at += 1
            elif digits := _DIGITS.match(fmt, at):
                extra += _spec_size(digits.group())
                at = digits.end()
        while at < end and fmt[at] in "hlL":
            at += 1
        conversion = fmt[at] if at < end else ""
        if conversion == "%" and key is None and not extra:
            at = fmt.find("%", at + 1)
            continue
        value = take() if key is None else (mapping.get(key) if mapping is not None else args)
        if conversion in ("f", "F") and isinstance(value, float):
            extra += 310  # the integer digits of a large float
        total += extra + _weight(value, limit, state)
        if total > limit:
            return total
        conversions += 1
        if not conversions & 0xFFF and state is not None:
            state.tick()  # a format with very many conversions
        at = fmt.find("%", at + 1)
    return total


# -- str.format ----------------------------------------------------------------------


class _LimitedFormatter(SandboxedFormatter):
    """``str.format`` in the sandbox, refusing widths and fields that make too much."""

    _produced = 0

    def vformat(self, format_string: Any, args: Any, kwargs: Any) -> str:
        self._produced = 0
        return super().vformat(format_string, args, kwargs)

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion is not None:
            state, limits = _state_limits()
            _check_weight(value, f"format field !{conversion}", limits, state)
        return super().convert_field(value, conversion)

    def format_field(self, value: Any, format_spec: str) -> Any:
        state, limits = _state_limits()
        limit = limits.output_chars
        size = _weight(value, limit, state) + _spec_size(format_spec)
        if isinstance(value, float) and format_spec[-1:] in ("f", "F", "%"):
            size += 310
        if self._produced + size > limit:
            raise _too_big(f"format field {{:{format_spec[:40]}}}", self._produced + size, limit)
        result = super().format_field(value, format_spec)
        self._produced += len(result)
        if self._produced > limit:
            raise _too_big("str.format()", self._produced, limit)
        return result


class _LimitedEscapeFormatter(_LimitedFormatter, EscapeFormatter):
    pass


# -- string methods called from templates ---------------------------------------------


def _method_width(
    owner: Any, args: tuple[Any, ...], kwargs: dict[str, Any], limits: RenderLimits, name: str
) -> None:
    width = _as_int(args[0] if args else kwargs.get("width"))
    if width is not None and width > limits.output_chars:
        raise _too_big(f".{name}({width})", width, limits.output_chars)


def _method_expandtabs(
    owner: Any, args: tuple[Any, ...], kwargs: dict[str, Any], limits: RenderLimits, _: str
) -> None:
    size = _as_int(args[0] if args else kwargs.get("tabsize", 8))
    if size is not None and size > 0:
        tab = "\t" if isinstance(owner, str) else b"\t"
        total = len(owner) + owner.count(tab) * size
        if total > limits.output_chars:
            raise _too_big(f".expandtabs({size})", total, limits.output_chars)


def _replace_size(s: Any, old: Any, new: Any, count: Any) -> int | None:
    if not (isinstance(old, type(s)) or isinstance(s, type(old))) or not isinstance(new, type(old)):
        return None
    hits = s.count(old) if len(old) else len(s) + 1
    limit_count = _as_int(count)
    if limit_count is not None and limit_count >= 0:
        hits = min(hits, limit_count)
    return len(s) + hits * (len(new) - len(old))


def _method_replace(
    owner: Any, args: tuple[Any, ...], kwargs: dict[str, Any], limits: RenderLimits, _: str
) -> None:
    if len(args) < 2:
        return
    count = args[2] if len(args) > 2 else kwargs.get("count", -1)
    size = _replace_size(owner, args[0], args[1], count)
    if size is not None and size > limits.output_chars:
        raise _too_big(".replace()", size, limits.output_chars)


def _method_translate(
    owner: Any, args: tuple[Any, ...], kwargs: dict[str, Any], limits: RenderLimits, _: str
) -> None:
    table = args[0] if args else None
    if isinstance(owner, str) and isinstance(table, dict):
        longest = max((len(v) for v in table.values() if isinstance(v, str)), default=1)
        size = len(owner) * max(longest, 1)
        if size > limits.output_chars:
            raise _too_big(".translate()", size, limits.output_chars)


def _method_to_bytes(
    owner: Any, args: tuple[Any, ...], kwargs: dict[str, Any], limits: RenderLimits, _: str
) -> None:
    length = _as_int(args[0] if args else kwargs.get("length", 1))
    if length is not None and length > limits.output_chars:
        raise _too_big(f".to_bytes({length})", length, limits.output_chars)


# a check of a string method's call: (owner, args, kwargs, limits, method name)
_MethodCheck = Callable[[Any, tuple[Any, ...], dict[str, Any], RenderLimits, str], None]
_TEXT_METHODS: dict[str, _MethodCheck] = {
    "center": _method_width,
    "ljust": _method_width,
    "rjust": _method_width,
    "zfill": _method_width,
    "expandtabs": _method_expandtabs,
    "replace": _method_replace,
    "translate": _method_translate,
}


def _materialize(iterable: Any, state: _RenderState | None) -> list[Any]:
    """``list(iterable)``, reading the clock every 4096 items (a lazy filter such as
    ``|batch`` may yield a million items, each made by Python code)."""
    if isinstance(iterable, (list, tuple, str)) or state is None:
        return list(iterable)
    iterator = iter(iterable)
    items = list(islice(iterator, 4096))
    while len(items) % 4096 == 0 and (more := list(islice(iterator, 4096))):
        items += more
        state.tick()
    return items


def _check_join(
    sep: Any, items: Sequence[Any], limits: RenderLimits, state: _RenderState | None
) -> None:
    limit = limits.output_chars
    total = len(sep) * max(len(items) - 1, 0)
    if total > limit:
        raise _too_big("join()", total, limit)
    for item in items:
        total += _weight(item, limit, state)
        if total > limit:
            raise _too_big("join()", total, limit)


_METHOD_TYPES = frozenset({types.BuiltinMethodType, types.MethodType})


def _precheck_call(
    obj: Any, owner: Any, args: tuple[Any, ...], limits: RenderLimits, kwargs: dict[str, Any]
) -> tuple[Any, ...]:
    """Refuse known amplifying methods before they allocate; may materialize ``args``."""
    name = getattr(obj, "__name__", None)
    if not isinstance(name, str):
        return args  # none of the methods below
    if isinstance(owner, (str, bytes, bytearray)):
        if name == "join" and args:
            state = _CURRENT.state
            items = args[0] if isinstance(args[0], (list, tuple)) else _materialize(args[0], state)
            _check_join(owner, items, limits, state)
            return (items, *args[1:])
        check = _TEXT_METHODS.get(name)
        if check is not None:
            check(owner, args, kwargs, limits, name)
    elif isinstance(owner, int) and name == "to_bytes":
        _method_to_bytes(owner, args, kwargs, limits, name)
    return args


# -- filters -------------------------------------------------------------------------

# Filters that take constant time and make nothing big: left as they are.
_CONSTANT_FILTERS = frozenset(
    {
        "abs", "attr", "count", "d", "default", "filesizeformat", "first", "float", "int",
        "last", "length", "random", "round",
    }
)  # fmt: skip
# Filters that only pick, reorder or group items: no size checks (their results are
# checked where they are printed, joined, formatted or stored in a namespace).
_ITEM_FILTERS = frozenset(
    {
        "batch", "dictsort", "groupby", "items", "list", "map", "max", "min", "reject",
        "rejectattr", "reverse", "select", "selectattr", "slice", "sort", "sum", "unique",
    }
)  # fmt: skip
# An operation on more characters (or items) than this checks the clock.
_LARGE = 1 << 16


def _bind(names: tuple[str, ...], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    bound = dict(zip(names, args, strict=False))
    bound.update(kwargs)
    return bound


def _filter_center(a: dict[str, Any], limits: RenderLimits, state: _RenderState | None) -> None:
    width = _as_int(a.get("width", 80))
    if width is not None and width > limits.output_chars:
        raise _too_big(f"|center({width})", width, limits.output_chars)


def _filter_indent(a: dict[str, Any], limits: RenderLimits, state: _RenderState | None) -> None:
    width = a.get("width", 4)
    s = a.get("s", "")
    if isinstance(width, str):
        indent = len(width)
    else:
        indent = _as_int(width) or 0
        if indent > limits.output_chars:
            raise _too_big(f"|indent({indent})", indent, limits.output_chars)
    if isinstance(s, str) and indent:
        size = len(s) + (len(s.splitlines()) + 1) * indent
        if size > limits.output_chars:
            raise _too_big("|indent()", size, limits.output_chars)


def _filter_replace(a: dict[str, Any], limits: RenderLimits, state: _RenderState | None) -> None:
    s, old, new = (_text(a.get(k, ""), "|replace()", limits, state) for k in ("s", "old", "new"))
    count = a.get("count")
    size = _replace_size(s, old, new, -1 if count is None else count)
    if size is not None and size > limits.output_chars:
        raise _too_big("|replace()", size, limits.output_chars)


def _filter_format(a: dict[str, Any], limits: RenderLimits, state: _RenderState | None) -> None:
    value = a.get("value")
    args = a.get("args") or ()
    kwargs = a.get("kwargs") or {}
    fmt = _text(value, "|format()", limits, state)
    size = _printf_size(fmt, kwargs or tuple(args), limits, state)
    if size > limits.output_chars:
        raise _too_big("|format()", size, limits.output_chars)


def _filter_wordwrap(a: dict[str, Any], limits: RenderLimits, state: _RenderState | None) -> None:
    s = a.get("s")
    width = _as_int(a.get("width", 79))
    if not isinstance(s, str) or width is None or width < 1:
        return
    # textwrap breaks a long word by slicing it line by line: its cost grows with
    # (word length) * (text length) / width; every line also costs a few µs.
    longest = max(map(len, s.split()), default=0)
    if len(s) // width > 200_000 or longest * len(s) // width > 10**10:
        raise LimitExceeded(
            "time", f"|wordwrap({width}) of {len(s):,} characters would take too long"
        )
    wrapstring = a.get("wrapstring")
    if isinstance(wrapstring, str) and len(wrapstring) > 1:
        # every wrapped line may add one wrapstring
        lines = len(s) // width + len(s.splitlines()) + 1
        size = len(s) + lines * len(wrapstring)
        if size > limits.output_chars:
            raise _too_big("|wordwrap()", size, limits.output_chars)


def _filter_tojson(a: dict[str, Any], limits: RenderLimits, state: _RenderState | None) -> None:
    indent = a.get("indent")
    size = len(indent) if isinstance(indent, str) else (_as_int(indent) or 0)
    if size > 100:
        raise _too_big(f"|tojson(indent={size})", size * limits.output_chars, limits.output_chars)


def _filter_urlize(a: dict[str, Any], limits: RenderLimits, state: _RenderState | None) -> None:
    value = a.get("value")
    if not isinstance(value, str):
        return
    words = len(value.split())
    if words > 100_000:  # about 8 µs a word
        raise LimitExceeded("time", f"|urlize() of {words:,} words would take too long")
    extra = sum(len(a[k]) for k in ("target", "rel") if isinstance(a.get(k), str))
    if extra > 64:
        size = len(value) + (len(value) // 2 + 1) * extra  # every word may be a link
        if size > limits.output_chars:
            raise _too_big("|urlize()", size, limits.output_chars)


def _filter_batch(a: dict[str, Any], limits: RenderLimits, state: _RenderState | None) -> None:
    count = _as_int(a.get("linecount"))
    if a.get("fill_with") is not None and count is not None and count > limits.output_chars:
        raise _too_big(f"|batch({count}, fill)", count, limits.output_chars)


def _filter_slice(a: dict[str, Any], limits: RenderLimits, state: _RenderState | None) -> None:
    slices = _as_int(a.get("slices"))
    if slices is not None and slices > limits.range_items:
        raise LimitExceeded(
            "range_size", f"|slice({slices}) makes more than {limits.range_items:,} slices"
        )


_FILTER_CHECKS: dict[str, Callable[[dict[str, Any], RenderLimits, _RenderState | None], None]] = {
    "center": _filter_center,
    "indent": _filter_indent,
    "replace": _filter_replace,
    "format": _filter_format,
    "wordwrap": _filter_wordwrap,
    "tojson": _filter_tojson,
    "urlize": _filter_urlize,
    "batch": _filter_batch,
    "slice": _filter_slice,
}

_INJECTED = ("environment", "env", "eval_ctx", "context")


def _param_names(func: Callable[..., Any]) -> tuple[str, ...]:
    """The positional layout a filter is called with (the injected argument first)."""
    params = inspect.signature(func).parameters
    names = tuple(
        p.name for p in params.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    )
    if any(p.kind is p.VAR_POSITIONAL for p in params.values()):
        names += ("args",)
    pass_arg = _PassArg.from_obj(func)
    if pass_arg is not None and (not names or names[0] not in _INJECTED):
        names = ("injected", *names)
    return names


def _limited_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    if name in _CONSTANT_FILTERS:
        return func
    if name in _ITEM_FILTERS and name not in _FILTER_CHECKS and name != "sum":

        def item_filter(*args: Any, **kwargs: Any) -> Any:
            _tick()
            result = func(*args, **kwargs)
            return _built(result) if type(result) in _BUILT else result

        return update_wrapper(item_filter, func)

    check = _FILTER_CHECKS.get(name)
    names = _param_names(func) if check is not None else ()
    has_varargs = "args" in names
    stringifies = name not in _ITEM_FILTERS
    first = 1 if _PassArg.from_obj(func) is not None else 0  # skip the injected argument
    label = f"|{name}"

    def limited_filter(*args: Any, **kwargs: Any) -> Any:
        state = _CURRENT.state
        limits = state.limits if state is not None else DEFAULT_LIMITS
        if name == "join":
            args, kwargs = _prepare_join(args, kwargs, limits, state)
        elif name == "sum":
            args, kwargs = _prepare_sum(args, kwargs, limits, state)
        elif stringifies:
            # str() of a container is where a shared-reference bomb would explode
            for arg in args[first:]:
                if type(arg) not in _PLAIN:
                    _check_weight(arg, label, limits, state)
            for arg in kwargs.values():
                if type(arg) not in _PLAIN:
                    _check_weight(arg, label, limits, state)
        if check is not None:
            if has_varargs:
                fixed = len(names) - 1
                bound = _bind(names[:fixed], args[:fixed], {})
                bound["args"] = args[fixed:]
                bound["kwargs"] = kwargs
            else:
                bound = _bind(names, args, kwargs)
            check(bound, limits, state)
        result = func(*args, **kwargs)
        if stringifies:
            if isinstance(result, str):
                if len(result) > limits.output_chars:
                    raise _too_big(label, len(result), limits.output_chars)
                if len(result) > _LARGE and state is not None:
                    state.tick()
            else:
                _check_result(result, label, limits)
        else:
            if state is not None:
                state.tick()
            if type(result) in _BUILT:
                return _built(result)
        return result

    return update_wrapper(limited_filter, func)


def _prepare_join(
    args: tuple[Any, ...], kwargs: dict[str, Any], limits: RenderLimits, state: _RenderState | None
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Materialize the items of ``|join`` (applying ``attribute``) and size them."""
    eval_ctx, value, *rest = args
    d = rest[0] if rest else kwargs.pop("d", "")
    attribute = rest[1] if len(rest) > 1 else kwargs.pop("attribute", None)
    if attribute is not None:
        value = map(make_attrgetter(eval_ctx.environment, attribute), value)
    items = _materialize(value, state)
    _check_join(_text(d, "|join()", limits, state), items, limits, state)
    return (eval_ctx, items, d), kwargs


def _prepare_sum(
    args: tuple[Any, ...], kwargs: dict[str, Any], limits: RenderLimits, state: _RenderState | None
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``|sum`` of sequences copies the growing total once per item: bound that work."""
    environment, iterable, *rest = args
    attribute = rest[0] if rest else kwargs.pop("attribute", None)
    start = rest[1] if len(rest) > 1 else kwargs.pop("start", 0)
    if attribute is not None:
        iterable = map(make_attrgetter(environment, attribute), iterable)
    items = _materialize(iterable, state)
    if not isinstance(start, (int, float)):
        limit = limits.output_chars
        total = len(start) if isinstance(start, _SEQUENCES) else 0
        for item in items:
            total += len(item) if isinstance(item, _SEQUENCES) else 0
        if total > limit:
            raise _too_big("|sum()", total, limit)
        if total * len(items) > 100 * limit:
            raise LimitExceeded(
                "time",
                f"|sum() of {len(items):,} sequences ({total:,} items) would take too long",
            )
    return (environment, items, None, start), kwargs


# -- globals -------------------------------------------------------------------------


def _range(*args: Any) -> range:
    """``range()`` for templates: at most ``MAX_RANGE_ITEMS`` items."""
    limits = _tick()
    rng = range(*args)
    try:
        size: float = len(rng)
    except OverflowError:
        size = math.inf
    if size > limits.range_items:
        raise LimitExceeded(
            "range_size",
            f"range() of {_count(size)} items, more than {limits.range_items:,}",
        )
    return rng


_LONGEST_LOREM_WORD = max(map(len, LOREM_IPSUM_WORDS.split()))


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    """``lipsum()`` for templates, refusing paragraphs that would be too long."""
    limits = _tick()
    count, words = _as_int(n), _as_int(max)
    if count is not None and words is not None and count > 0:
        size = count * ((words if words > 1 else 1) * (_LONGEST_LOREM_WORD + 2) + 20)
        if size > limits.output_chars:
            raise _too_big(f"lipsum(n={count})", size, limits.output_chars)
    return generate_lorem_ipsum(n=n, html=html, min=min, max=max)


class _Namespace(Namespace):
    """``namespace()`` whose attributes are size-checked: it is what carries values
    from one loop iteration to the next, so it is where accumulation is bounded."""

    def __init__(*args: Any, **kwargs: Any) -> None:
        Namespace.__init__(*args, **kwargs)
        _check_stored(object.__getattribute__(args[0], "_Namespace__attrs"), "namespace()")

    def __setitem__(self, name: str, value: Any) -> None:
        _check_stored(value, f"namespace attribute {name!r}")
        Namespace.__setitem__(self, name, value)


def _check_stored(value: Any, what: str) -> None:
    if isinstance(value, (int, float)) or value is None:
        return
    state, limits = _state_limits()
    if isinstance(value, str):
        if len(value) > limits.output_chars:
            raise _too_big(what, len(value), limits.output_chars)
        return
    weight = _check_weight(value, what, limits, state)
    if state is not None and isinstance(value, (list, tuple, dict, Namespace)):
        state.remember(value, weight)


def _built(value: Any) -> Any:
    """A list, tuple or dict the template just made (literal, call or filter result).

    Sized with its items as printed, so no container can hide a huge number of
    shared references (which would make ``==``, ``str()`` or ``|tojson``
    exponential); remembered, so that building on it stays cheap.
    """
    state, limits = _state_limits()
    weight = _check_weight(value, "a list or dict the template builds", limits, state)
    if state is not None:
        state.remember(value, weight)
    return value


# -- operators ------------------------------------------------------------------------

_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "*": operator.mul,
    "**": operator.pow,
    "%": operator.mod,
}
_SEQUENCES = (str, bytes, bytearray, list, tuple)
_BUILT = frozenset({list, tuple, dict, set, frozenset})


def _add(left: Any, right: Any) -> Any:
    """``left + right`` in a template."""
    if type(left) in _NUMBERS and type(right) in _NUMBERS:
        return left + right
    return _sized_binop("+", left, right)


def _mul(left: Any, right: Any) -> Any:
    """``left * right`` in a template."""
    if type(left) in _NUMBERS and type(right) in _NUMBERS:
        if (
            type(left) is int
            and type(right) is int
            and left.bit_length() + right.bit_length() > _INT_BITS
        ):
            _check_int_op("*", left, right)
        return left * right
    return _sized_binop("*", left, right)


def _pow(left: Any, right: Any) -> Any:
    """``left ** right`` in a template."""
    _check_int_op("**", left, right)
    return left**right


def _mod(left: Any, right: Any) -> Any:
    """``left % right`` in a template (``%`` formatting of strings included)."""
    if type(left) in _NUMBERS:
        return left % right
    return _sized_binop("%", left, right)


def _check_int_op(op: str, left: Any, right: Any) -> None:
    """Refuse ``a * b`` or ``a ** b`` of integers with too many digits, before computing."""
    base, other = _as_int(left), _as_int(right)
    if base is None or other is None:
        return
    if op == "*":
        digits = (base.bit_length() + other.bit_length()) * math.log10(2)
    elif other <= 0 or abs(base) <= 1 or other * base.bit_length() <= _INT_BITS:
        return
    else:
        digits = other * math.log10(abs(base))
    if digits > MAX_INT_DIGITS:
        raise LimitExceeded(
            "output_size",
            f"'{op}' would make an integer of ~{_count(digits)} digits,"
            f" more than {MAX_INT_DIGITS:,}",
        )


def _sized_binop(op: str, left: Any, right: Any) -> Any:
    """``+``, ``*`` or ``%`` on strings, sequences (or anything else), sized first."""
    state, limits = _state_limits()
    limit = limits.output_chars
    weight = size = 0
    if op == "+":
        if isinstance(left, (str, bytes)) and isinstance(right, (str, bytes)):
            size = len(left) + len(right)
        elif isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
            size = len(left) + len(right)
            if size <= limit:
                size = weight = _weight(left, limit, state) + _weight(right, limit, state)
        what = "'+' concatenation"
    elif op == "*":
        if isinstance(left, _SEQUENCES) and _as_int(right) is not None:
            seq, times = left, right
        elif isinstance(right, _SEQUENCES) and _as_int(left) is not None:
            seq, times = right, left
        else:
            seq, times = (), 0
        if times > 0:
            size = len(seq) * times
            if size <= limit and isinstance(seq, (list, tuple)):
                size = weight = 2 + (_weight(seq, limit, state) - 2) * times
        what = "'*' repetition"
    else:
        if isinstance(left, (str, bytes)):
            fmt = left.decode("latin-1") if isinstance(left, bytes) else left
            size = _printf_size(fmt, right, limits, state)
        what = "'%' formatting"
    if size > limit:
        raise _too_big(what, size, limit)
    if size > _LARGE and state is not None:
        state.tick()
    result = _OPERATORS[op](left, right)
    if weight and state is not None and isinstance(result, (list, tuple)):
        state.remember(result, weight)
    return result


# -- code generation: intercept operators, count loop iterations, size ``~`` --------


def _binop_visitor(helper: str) -> Callable[..., None]:
    @optimizeconst
    def visitor(self: CodeGenerator, node: nodes.BinExpr, frame: Frame) -> None:
        self.write(f"environment.{helper}(")
        self.visit(node.left, frame)
        self.write(", ")
        self.visit(node.right, frame)
        self.write(")")

    return visitor


class _LimitedCodeGenerator(CodeGenerator):
    # ``environment.llmops_mul(a, b)`` rather than the sandbox's generic
    # ``environment.call_binop(context, "*", a, b)``: the same checks, less overhead
    visit_Add = _binop_visitor("llmops_add")
    visit_Mul = _binop_visitor("llmops_mul")
    visit_Pow = _binop_visitor("llmops_pow")
    visit_Mod = _binop_visitor("llmops_mod")

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        # iterate through ``environment.llmops_loop(...)``, which counts iterations
        # (Jinja allows no custom node types, hence the environment attribute)
        guarded = copy.copy(node)
        guarded.iter = nodes.Call(
            nodes.EnvironmentAttribute("llmops_loop"), [node.iter], [], None, None
        )
        super().visit_For(guarded, frame)

    def visit_Call(self, node: nodes.Call, frame: Frame, forward_caller: bool = False) -> None:
        callee = node.node
        if isinstance(callee, nodes.EnvironmentAttribute) and callee.name == "llmops_loop":
            self.write("environment.llmops_loop(")
            self.visit(node.args[0], frame)
            self.write(")")
            return
        super().visit_Call(node, frame, forward_caller=forward_caller)

    @optimizeconst
    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self.write("environment.llmops_built(")
        super().visit_List(node, frame)
        self.write(")")

    @optimizeconst
    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self.write("environment.llmops_built(")
        super().visit_Dict(node, frame)
        self.write(")")

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx != "load":  # an assignment target such as {% for a, b in ... %}
            super().visit_Tuple(node, frame)
            return
        self._visit_tuple_literal(node, frame)

    @optimizeconst
    def _visit_tuple_literal(self, node: nodes.Tuple, frame: Frame) -> None:
        self.write("environment.llmops_built(")
        super().visit_Tuple(node, frame)
        self.write(")")

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        # as CodeGenerator.visit_Concat, with the operands sized before joining
        if frame.eval_ctx.volatile:
            func_name = "(markup_join if context.eval_ctx.volatile else str_join)"
        elif frame.eval_ctx.autoescape:
            func_name = "markup_join"
        else:
            func_name = "str_join"
        self.write(f"{func_name}(environment.llmops_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write(")))")


# -- the environment -----------------------------------------------------------------


def _finalize(value: Any) -> Any:
    """Runs on every ``{{ expression }}`` before ``str()``: size containers first."""
    if type(value) in _PLAIN:
        return value
    state, limits = _state_limits()
    _check_weight(value, "the printed value", limits, state)
    return value


def _loop(iterable: Any) -> Any:
    """Every ``{% for %}`` iterates through this."""
    state = _CURRENT.state
    if state is None:
        return iterable
    return state.loop(iterable)


def _concat_operands(parts: tuple[Any, ...]) -> tuple[Any, ...]:
    """The operands of every ``~`` go through this."""
    state, limits = _state_limits()
    limit = limits.output_chars
    total = 0
    for part in parts:
        if type(part) is str:
            total += len(part)
        elif type(part) not in _NUMBERS:
            total += _weight(part, limit, state)
        if total > limit:
            raise _too_big("'~' concatenation", total, limit)
    if total > _LARGE and state is not None:
        state.tick()
    return parts


class _LimitedEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with sizes, loops, time and call depth bounded."""

    code_generator_class = _LimitedCodeGenerator
    # intercepted operators are not folded at compile time; the code generator
    # above sends them to these helpers
    intercepted_binops = frozenset(_OPERATORS)
    llmops_add = staticmethod(_add)
    llmops_mul = staticmethod(_mul)
    llmops_pow = staticmethod(_pow)
    llmops_mod = staticmethod(_mod)
    llmops_loop = staticmethod(_loop)
    llmops_concat = staticmethod(_concat_operands)
    llmops_built = staticmethod(_built)

    def __init__(self, **options: Any) -> None:
        super().__init__(finalize=_finalize, **options)
        self.globals["range"] = _range
        self.globals["lipsum"] = _lipsum
        self.globals["namespace"] = _Namespace
        self.filters = {name: _limited_filter(name, f) for name, f in self.filters.items()}

    # the text of macros and of {% set %}, {% filter %} and {% call %} blocks
    def concat(self, parts: Any) -> str:
        if type(parts) is not list:
            parts = list(parts)
        total = sum(map(len, parts))
        state, limits = _state_limits()
        if total > limits.output_chars:
            raise _too_big("a block of template text", total, limits.output_chars)
        if total > _LARGE and state is not None:
            state.tick()
        return "".join(parts)

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        # not used by our generated code (see _LimitedCodeGenerator), kept consistent
        return {"+": _add, "*": _mul, "**": _pow, "%": _mod}[op](left, right)

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        state = _CURRENT.state
        limits = DEFAULT_LIMITS
        if state is not None:
            if time.monotonic() > state.deadline:
                state.tick()
            limits = state.limits
            if state.depth >= limits.call_depth:
                raise LimitExceeded("recursion", f"calls nested more than {limits.call_depth} deep")
            state.depth += 1
        # a bound method: of a string (``'a'.center(n)``), a dict, ...
        owner = obj.__self__ if type(obj) in _METHOD_TYPES else None
        try:
            if owner is not None:
                args = _precheck_call(obj, owner, args, limits, kwargs)
            result = super().call(context, obj, *args, **kwargs)
        finally:
            if state is not None:
                state.depth -= 1
        if type(result) in _BUILT and not isinstance(owner, (str, bytes, bytearray)):
            return _built(result)  # dict(...), {}.fromkeys(...), a copy, ...
        _check_result(result, obj, limits)
        return result

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        # as SandboxedEnvironment.wrap_str_format, with the limited formatters
        if not isinstance(
            value, (types.MethodType, types.BuiltinMethodType)
        ) or value.__name__ not in ("format", "format_map"):
            return None
        f_self: Any = value.__self__
        if not isinstance(f_self, str):
            return None
        str_type: type[str] = type(f_self)
        is_format_map = value.__name__ == "format_map"
        formatter: _LimitedFormatter
        if isinstance(f_self, Markup):
            formatter = _LimitedEscapeFormatter(self, escape=f_self.escape)
        else:
            formatter = _LimitedFormatter(self)
        vformat = formatter.vformat

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs:
                    raise TypeError("format_map() takes no keyword arguments")
                if len(args) != 1:
                    raise TypeError(f"format_map() takes exactly one argument ({len(args)} given)")
                kwargs = args[0]
                args = ()
            return str_type(vformat(f_self, args, kwargs))

        return update_wrapper(wrapper, value)


_OPTIONS: dict[str, Any] = {
    "undefined": jinja2.StrictUndefined,
    "autoescape": False,
    "keep_trailing_newline": True,
    "trim_blocks": True,  # a line holding only {% ... %} leaves no blank line behind
    "lstrip_blocks": True,
    # Jinja's optimizer folds constants at compile time, and its folding of a chain of
    # filters is cubic: 100 filters on one value took 0.8 s to compile, 200 seven seconds.
    # A prompt renders once per call; folding saves it nothing worth that.
    "optimized": False,
}
_ENV = _LimitedEnvironment(**_OPTIONS)
# plain templates (see _PLAIN_NODES) use none of the hooks: the plain sandbox
# compiles them to the same code, without even the ``finalize`` call
_PLAIN_ENV = ImmutableSandboxedEnvironment(**_OPTIONS)
# A template made of these nodes only (names, attributes, comparisons, ``if``) has
# no loop, call, filter, operator or literal that could repeat or amplify work: its
# work is bounded by its source and the values passed in, so it renders without a
# budget to keep (the output size is still counted). Many prompts are so.
_PLAIN_NODES = frozenset(
    {
        nodes.Output, nodes.TemplateData, nodes.Name, nodes.Const, nodes.If, nodes.Compare,
        nodes.Operand, nodes.Getattr, nodes.Getitem, nodes.And, nodes.Or, nodes.Not,
        nodes.CondExpr, nodes.Test, nodes.Assign,
    }
)  # fmt: skip


def compile_source(source: str) -> jinja2.Template:
    """Compile a template: the plain sandbox for templates that cannot amplify work,
    the limited one for the rest. Raises jinja2.TemplateSyntaxError."""
    tree = _ENV.parse(source)
    plain = all(type(node) in _PLAIN_NODES for node in tree.find_all(nodes.Node))
    template = (_PLAIN_ENV if plain else _ENV).from_string(tree)
    template.llmops_plain = plain  # type: ignore[attr-defined]
    return template


def parse(source: str) -> nodes.Template:
    """The syntax tree of a template (for finding the variables it uses)."""
    return _ENV.parse(source)


def render(template: jinja2.Template, values: dict[str, Any], limits: RenderLimits) -> str:
    """Render within ``limits``; raises :class:`LimitExceeded` (and Jinja's own errors)."""
    plain = limits is DEFAULT_LIMITS and getattr(template, "llmops_plain", False)
    previous = _CURRENT.state
    if not plain:  # (a plain template has nothing to spend a budget on)
        _CURRENT.state = _RenderState(limits)
    chunks: Generator[str, None, None] | None = None
    try:
        # as Template.generate() without its copy of ``values`` (new_context copies);
        # Jinja types root_render_func as returning an Iterator, but the compiled
        # ``root`` is a generator function (closed below if the render stops early)
        chunks = cast(
            "Generator[str, None, None]",
            template.root_render_func(template.new_context(values)),
        )
        # Count the text as it comes, 64 chunks at a time: a loop may yield many
        # large, fresh strings (each one is already bounded by the size checks).
        limit = limits.output_chars
        text = "".join(islice(chunks, 64))
        more = next(chunks, None)
        if more is not None:  # a long template, or one with loops
            parts = [text, more]
            size = len(text) + len(more)
            while size <= limit and (batch := list(islice(chunks, 64))):
                size += sum(map(len, batch))
                parts += batch
            if size > limit:
                raise _too_big("the rendered text", size, limit)
            text = "".join(parts)
        if len(text) > limit:
            raise _too_big("the rendered text", len(text), limit)
        return text
    except RecursionError:
        raise LimitExceeded("recursion", "Python's recursion limit was hit") from None
    except MemoryError:
        raise LimitExceeded("output_size", "the render ran out of memory") from None
    finally:
        if chunks is not None:
            chunks.close()
        _CURRENT.state = previous


def describe(exc: LimitExceeded, limits: RenderLimits) -> str:
    """The words of an exceeded limit, for the error message."""
    limit, detail = exc.limit, exc.detail
    bound = {
        "output_size": f"{limits.output_chars:,} characters",
        "range_size": f"{limits.range_items:,} items",
        "loop_iterations": f"{limits.loop_iterations:,} iterations",
        "time": f"{limits.seconds:g} s",
        "recursion": f"depth {limits.call_depth}",
    }[limit]
    return f"template exceeded the {_LIMIT_NAMES[limit]} limit ({bound}): {detail}"
