"""Assertions: score one output against one check (promptfoo's names where they overlap).

Every check returns a score in [0, 1], a pass flag and a reason. ``not-`` negates: the
pass flag flips and the score becomes ``1 - score``. ``llm-rubric`` needs a judge model;
the runner grades it (see ``llmops.evals.runner``) through the gateway like any call.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import json
import math
import re
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import jsonschema
import regex

from llmops import jsonschemas
from llmops.errors import ConfigError
from llmops.evals import graders, response, sql
from llmops.evals.pycode import (
    TIME_LIMIT_S,
    TimeLimit,
    call_limited,
    compile_inline,
    is_reference,
    syntax_problem,
)
from llmops.evals.suite import Assertion


@dataclass
class Outcome:
    """What one assertion made of one output."""

    type: str
    passed: bool
    score: float
    reason: str
    weight: float = 1.0
    metric: str | None = None
    error: str | None = None  # the check itself failed: the case errored, it did not fail
    skipped: bool = False  # could not run here (javascript without Node.js): weight 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Context:
    """What an assertion may look at besides the output text."""

    vars: dict[str, Any]
    output_schema: dict[str, Any] | None = None
    cost_usd: float | None = None
    latency_ms: float | None = None
    base_dir: Path = Path(".")
    prompt: str = ""  # the rendered prompt: its text, or the chat messages as JSON
    test: dict[str, Any] = field(default_factory=dict)  # the case (vars, assert, metadata)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # OpenAI's shape
    finish_reason: str | None = None
    logprobs: list[float] | None = None  # per output token, when the call asked for them
    tools: list[dict[str, Any]] | None = None  # the functions the request offered (params)


def with_vars(assertion: Assertion, variables: dict[str, Any]) -> Assertion:
    """The assertion with the case's variables rendered into its value (``contains: "{{
    city }}"``, a rubric that names ``{{ expected }}``), as promptfoo renders them, in the
    prompts' bounded sandbox. Raises :class:`RenderProblem` for a value that cannot
    render (an unknown variable, a syntax error, a render limit)."""
    value = _rendered(assertion.value, variables)
    return assertion if value is assertion.value else assertion.model_copy(update={"value": value})


class RenderProblem(Exception):
    """An assertion value that does not render with the case's variables."""


def _rendered(value: Any, variables: dict[str, Any]) -> Any:
    if isinstance(value, str):
        if "{{" not in value and "{%" not in value:
            return value
        from llmops.prompts import sandbox

        try:
            return sandbox.render(sandbox.compile_source(value), variables, sandbox.DEFAULT_LIMITS)
        except Exception as exc:  # jinja2's errors and the sandbox's limits
            raise RenderProblem(f"value {value[:80]!r} does not render: {exc}") from None
    if isinstance(value, list):
        items = [_rendered(item, variables) for item in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    if isinstance(value, dict):
        entries = {key: _rendered(item, variables) for key, item in value.items()}
        same = all(entries[key] is item for key, item in value.items())
        return value if same else entries
    return value


def render_value(value: Any, variables: dict[str, Any]) -> Any:
    """``value`` (a text, or texts in lists and dicts) rendered with ``variables`` in the
    bounded sandbox; raises :class:`RenderProblem`."""
    return _rendered(value, variables)


def check(assertion: Assertion, output: str, context: Context) -> Outcome:
    """Grade ``output`` with one (non-judge) assertion, the case's variables rendered into
    its value."""
    prepared = transformed(assertion, output, context)
    if isinstance(prepared, Outcome):
        return prepared
    assertion, output = prepared
    try:
        rendered = with_vars(assertion, context.vars)
    except RenderProblem as exc:
        return broken(assertion, f"{assertion.type}: {exc}")
    kind = rendered.base_type
    if rendered is not assertion and kind in TEXT_KINDS:  # this case's value: a text still?
        problem = _text_values_problem(kind, rendered.value)
        if problem:
            return broken(assertion, f"{problem} (as the case's variables render it)")
    if kind == "javascript":
        return _javascript(rendered, output, context)
    if kind == "assert-set":
        children = [check(child, output, context) for child in rendered.assert_ or []]
        return combine_set(rendered, children)
    try:
        score, reason, *decided = CHECKS[kind](rendered, output, context)
    except ConfigError as exc:
        if rendered is assertion:  # the suite's own value: found before any model call
            raise
        return broken(assertion, f"{kind}: {exc}")  # broken by this case's variables only
    except Unjudgeable as exc:
        return broken(assertion, f"{kind}: {exc}")
    except TimeLimit as exc:
        return broken(assertion, f"{kind} {exc}")
    except Exception as exc:  # a broken check: the case errors, it does not fail
        return broken(assertion, f"{kind} raised {type(exc).__name__}: {str(exc)[:300]}")
    if not (isinstance(score, int | float) and 0 <= score <= 1):  # NaN included
        return broken(assertion, f"{kind} returned score {score!r}, outside [0, 1]")
    return finish(rendered, score, reason, passed=decided[0] if decided else None)


def _javascript(assertion: Assertion, output: str, context: Context) -> Outcome:
    """Run by Node.js (:mod:`llmops.evals.javascript`), read as promptfoo reads it."""
    from llmops.evals import javascript

    if javascript.node() is None:  # promptfoo's checks skipped, not the whole run errored
        reason = "skipped: javascript assertions need Node.js (`node` is not on PATH)"
        return Outcome(assertion.type, True, 1.0, reason, 0.0, None, skipped=True)
    shared = check_context(assertion, context)
    result, problem, logged = javascript.run(
        _text(assertion.value), output, shared, context.base_dir
    )
    if problem is not None:
        return broken(assertion, javascript.with_logged(problem, logged))
    read = javascript.verdict(result, assertion.threshold)
    if isinstance(read, str):
        return broken(assertion, javascript.with_logged(f"javascript {read}", logged))
    passed, score, reason = read
    outcome = finish(assertion, score, reason, passed=passed)
    if not outcome.passed:  # what the code printed helps to see why; a pass needs none
        outcome.reason = javascript.with_logged(outcome.reason, logged)
    return outcome


def combine_set(assertion: Assertion, children: list[Outcome]) -> Outcome:
    """An ``assert-set`` from its assertions' outcomes: their weighted mean score; it passes
    at its ``threshold``, else when every one passes. A child that errored errors the set."""
    errored = [c for c in children if c.error is not None]
    if errored:
        return broken(assertion, f"assert-set: {errored[0].type}: {errored[0].error}")
    total = sum(c.weight for c in children)
    score = sum(c.score * c.weight for c in children) / total if total else 1.0
    if assertion.threshold is not None:
        passed = score >= assertion.threshold
    else:
        passed = all(c.passed for c in children)
    failing = [c for c in children if not c.passed]
    reason = f"{len(children) - len(failing)} of {len(children)} passed" + (
        f"; {failing[0].type}: {failing[0].reason}" if failing else ""
    )
    return finish(assertion, score, reason, passed=passed)


def broken(assertion: Assertion, reason: str) -> Outcome:
    """An assertion that could not judge the output (a crash, a score out of range, a
    judge that did not answer): an error, left out of the statistics, never a failure."""
    return Outcome(
        assertion.type, False, 0.0, reason, assertion.weight, assertion.metric, error=reason
    )


def static_problem(assertion: Assertion, base_dir: Path | None = None) -> str | None:
    """Why ``assertion`` can never be checked, whatever the output, or None.

    The suite loader calls this so that a broken check (an invalid regex or JSON Schema, a
    value of the wrong kind, a missing ``python`` file) is a configuration error naming
    the file and line, found before any model call, not a failed case after the run.
    """
    kind = assertion.base_type
    value = assertion.value
    if (kind == "assert-set") != (assertion.assert_ is not None):
        return (
            "assert-set: needs `assert`, a list of assertions"
            if kind == "assert-set"
            else f"{kind}: `assert` belongs to assert-set only"
        )
    if assertion.transform is not None:
        problem = transform_problem(assertion.transform, base_dir)
        if problem:
            return problem
    if kind == "assert-set":
        if not assertion.assert_:
            return "assert-set: `assert` must list at least one assertion"
        if assertion.threshold is not None and not 0 <= assertion.threshold <= 1:
            return "assert-set: threshold must be a score from 0 to 1"
        for index, child in enumerate(assertion.assert_):
            if child.base_type == graders.SELECT_BEST:
                return f"assert-set assert[{index}]: select-best compares targets, not in a set"
            problem = static_problem(child, base_dir)
            if problem:
                return f"assert-set assert[{index}]: {problem}"
        return None
    for name in ("weight", "threshold"):
        number = getattr(assertion, name)
        if number is not None and not math.isfinite(number):
            return f"{name} must be a finite number, got {number}"
    if kind in (*graders.MODEL_GRADED, graders.SELECT_BEST):
        return graders.static_problem(assertion)
    if kind == "llm-rubric" and (not isinstance(value, str) or not value.strip()):
        return "llm-rubric: value must be the rubric (what the judge checks the output for)"
    if kind == "regex":
        if not isinstance(value, str) or not value:
            return "regex: value must be a regular expression"
        try:
            regex.compile(value)
        except regex.error as exc:
            return f"regex {value!r}: {exc}"
    elif kind in ("json-schema", "is-json"):
        if value in (None, "output_schema"):
            return None  # the prompt's output_schema, checked when the prompt is loaded
        if not isinstance(value, dict):
            return f"{kind}: value must be a JSON Schema (a mapping) or 'output_schema'"
        return _schema_problem(kind, value)
    elif kind in TEXT_KINDS:
        return _text_values_problem(kind, value)
    elif kind in ("cost", "latency"):
        limit = value if value is not None else assertion.threshold
        if isinstance(limit, bool) or not isinstance(limit, int | float):
            return f"{kind}: value must be a number (the most {'USD' if kind == 'cost' else 'ms'})"
        if not math.isfinite(limit) or limit < 0:
            return f"{kind}: value must be a finite number of at least 0, got {limit}"
    elif kind == "javascript":
        if not isinstance(value, str) or not value.strip():
            return (
                "javascript: value must be code (an expression or a function body) or file://x.js"
            )
        if value.strip().startswith("file://") and base_dir is not None:
            target = value.strip().removeprefix("file://").partition(":")[0]
            if not (base_dir / target).is_file():
                return f"javascript: no file {base_dir / target}"
    elif kind == "word-count":
        return _word_count_problem(value)
    elif kind == "rouge-n":
        if not isinstance(value, str) or not value.strip():
            return "rouge-n: value must be the reference text"
    elif kind == "bleu":
        texts = value if isinstance(value, list) else [value]
        if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
            return "bleu: value must be a reference text or a list of them"
    elif kind == "contains-json":
        if value in (None, "output_schema"):
            return None
        if not isinstance(value, dict):
            return "contains-json: value must be a JSON Schema (a mapping), 'output_schema' or none"
        return _schema_problem(kind, value)
    elif kind in ("is-xml", "contains-xml"):
        if value is not None and not isinstance(value, str | list | dict):
            return f"{kind}: value must be element paths (a string or a list)"
    elif kind == "levenshtein":
        if value is None:
            return "levenshtein: value must be the expected text"
        if assertion.threshold is not None and assertion.threshold < 0:
            return "levenshtein: threshold (the most edits) must be at least 0"
    elif kind == "python":
        if not isinstance(value, str) or not value.strip():
            return "python: value must be 'file.py:function', 'file.py' or 'module:function'"
        if not is_reference(value):
            problem = syntax_problem(value)
            return f"python: inline code is {problem}" if problem else None
        target = _python_spec(value).partition(":")[0]
        if target.endswith(".py") and base_dir is not None and not (base_dir / target).is_file():
            return f"python: no file {base_dir / target}"
        if base_dir is not None:
            try:  # load it now: a missing module or function is found before any model call
                load_function(value, base_dir)
            except ConfigError as exc:
                return str(exc)
            except Exception as exc:  # the file itself fails to import
                return f"python: {value} fails to load: {type(exc).__name__}: {exc}"
    else:
        return response_problem(assertion)
    return None


def response_problem(assertion: Assertion) -> str | None:
    """Why a check of the response (finish-reason, is-sql, perplexity, tool calls) can
    never be checked, or None."""
    kind, value = assertion.base_type, assertion.value
    if kind == "finish-reason":
        if not isinstance(value, str) or not value.strip():
            return "finish-reason: value must be the expected reason (stop, length, ...)"
    elif kind == "is-sql":
        return sql.options_problem(value)
    elif kind in ("perplexity", "perplexity-score"):
        if value is not None:
            return f"{kind}: takes no value; give the bound as threshold"
        if assertion.threshold is not None and assertion.threshold < 0:
            return f"{kind}: threshold must be at least 0"
        if kind == "perplexity" and assertion.negated and assertion.threshold is None:
            return "not-perplexity: needs a threshold (the perplexity it must exceed)"
    elif kind == "tool-call-f1":
        names = _expected_tools(value)
        if not names:
            return "tool-call-f1: value must be the expected tool names (a list or 'a, b')"
        if assertion.threshold is not None and not 0 <= assertion.threshold <= 1:
            return "tool-call-f1: threshold must be an F1 score from 0 to 1"
    elif kind in ("is-valid-openai-tools-call", "is-valid-openai-function-call") and (
        value is not None
    ):
        return f"{kind}: takes no value; the tools are the prompt's params.tools"
    return None


def transform_problem(spec: Any, base_dir: Path | None) -> str | None:
    """Why a ``transform`` cannot run, or None."""
    if not isinstance(spec, str) or not spec.strip():
        return "transform must be Python code or file://x.py:function"
    if not is_reference(spec):
        problem = syntax_problem(spec)
        return f"transform is {problem}" if problem else None
    if base_dir is not None:
        try:
            load_function(spec, base_dir)
        except ConfigError as exc:
            return str(exc).replace("python assertion", "transform")
        except Exception as exc:  # the file itself fails to import
            return f"transform: {spec} fails to load: {type(exc).__name__}: {exc}"
    return None


TEXT_KINDS = frozenset({
    "equals", "contains", "icontains", "starts-with",
    "contains-any", "icontains-any", "contains-all", "icontains-all",
})  # fmt: skip
"""The checks that look for a text (or a list of texts) in the output."""


def _text_values_problem(kind: str, value: Any) -> str | None:
    """Why ``value`` is not what a text check looks for, or None."""
    if not kind.endswith(("-any", "-all")):
        return _text_problem(kind, value)
    if not isinstance(value, list) or not value:
        return f"{kind}: value must be a non-empty list of strings"
    for index, item in enumerate(value):
        problem = _text_problem(kind, item)
        if problem:
            return problem.replace(f"{kind}: value", f"{kind}: value[{index}]", 1)
    return None


def _text_problem(kind: str, value: Any) -> str | None:
    """Why ``value`` is not a text to compare or look for (a number is its digits; only
    ``equals`` compares JSON, a mapping or a list), or None."""
    if isinstance(value, bool):  # YAML 1.1 reads yes, no, on, off, true and false so
        return (
            f"{kind}: value {str(value).lower()} was read as a boolean (YAML reads "
            "yes/no/on/off/true/false so): quote it to look for that text"
        )
    if kind == "equals" and isinstance(value, dict | list | str):
        return None
    if isinstance(value, int | float) and math.isfinite(value):
        return None
    if not isinstance(value, str) or not value:
        return f"{kind}: value must be the text to {'compare' if kind == 'equals' else 'look for'}"
    return None


def _word_count_problem(value: Any) -> str | None:
    if value is None:
        return "word-count: value must be a whole number of words or {min: N, max: N}"
    bounds = value if isinstance(value, dict) else {"min": value, "max": value}
    if isinstance(value, dict) and (not value or set(value) - {"min", "max"}):
        return "word-count: value must be a number of words or {min: N, max: N}"
    numbers = []
    for name in ("min", "max"):
        number = bounds.get(name)
        if number is None:
            continue
        try:
            count = float(number) if not isinstance(number, bool) else -1.0
        except (TypeError, ValueError):
            count = -1.0
        if not (math.isfinite(count) and count >= 0 and count == int(count)):
            return (
                f"word-count: {name if isinstance(value, dict) else 'value'} must be a whole "
                f"number of words, got {number!r}"
            )
        numbers.append(count)
    if len(numbers) == 2 and numbers[0] > numbers[1]:
        return f"word-count: min {numbers[0]:g} is more than max {numbers[1]:g}"
    return None


def _python_spec(value: str) -> str:
    """promptfoo writes ``file://checks.py:function``; the scheme is optional here."""
    return value.strip().removeprefix("file://")


def _schema_problem(kind: str, schema: dict[str, Any]) -> str | None:
    try:
        problem = jsonschemas.schema_problem(schema)
    except (RecursionError, jsonschema.exceptions.RefResolutionError) as exc:
        return f"{kind}: not a usable JSON Schema: {type(exc).__name__}"
    return None if problem is None else f"{kind}: not a valid JSON Schema: {problem}"


def finish(assertion: Assertion, score: float, reason: str, passed: bool | None = None) -> Outcome:
    """Apply the threshold and a ``not-`` prefix. A score that is not a number from 0 to 1
    (NaN from a judge or a check) errors the assertion: it never passes or fails a case."""
    if not (isinstance(score, int | float) and 0 <= score <= 1):  # NaN included
        return broken(assertion, f"{assertion.type}: score {score!r} is not a number from 0 to 1")
    if passed is None:
        if _graded(assertion):
            default = DEFAULT_THRESHOLDS.get(assertion.base_type, 0.5)
            threshold = assertion.threshold if assertion.threshold is not None else default
            passed = score >= threshold
        else:
            passed = score >= 1
    if assertion.negated:
        passed, score = not passed, 1.0 - score
        reason = f"NOT: {reason}"
    return Outcome(assertion.type, passed, score, reason, assertion.weight, assertion.metric)


def _graded(assertion: Assertion) -> bool:
    """Checks whose ``threshold`` is a minimum score (others use it differently)."""
    return assertion.base_type in (
        "python", "llm-rubric", "rouge-n", "bleu", "perplexity-score", "tool-call-f1"
    )  # fmt: skip


# the minimum score of graded checks without a threshold (promptfoo's defaults)
DEFAULT_THRESHOLDS = {"rouge-n": 0.75, "bleu": 0.5, "perplexity-score": 0.0, "tool-call-f1": 1.0}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _values(assertion: Assertion) -> list[str]:
    value = assertion.value
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{assertion.type}: value must be a non-empty list of strings")
    return [_text(v) for v in value]


def _equals(a: Assertion, output: str, _: Context) -> tuple[float, str]:
    if isinstance(a.value, dict | list):
        try:
            same = json.loads(output) == a.value
        except json.JSONDecodeError:
            return 0.0, "output is not JSON"
        return float(same), "JSON equal" if same else "JSON differs"
    same = output.strip() == _text(a.value).strip()
    return float(same), "equal" if same else f"expected {_text(a.value)!r}"


def _contains(a: Assertion, output: str, _: Context) -> tuple[float, str]:
    found = _text(a.value) in output
    return float(found), f"{'contains' if found else 'missing'} {_text(a.value)!r}"


def _icontains(a: Assertion, output: str, _: Context) -> tuple[float, str]:
    found = _text(a.value).lower() in output.lower()
    return float(found), f"{'contains' if found else 'missing'} {_text(a.value)!r} (any case)"


def _contains_any(a: Assertion, output: str, _: Context, fold: bool = False) -> tuple[float, str]:
    haystack = output.lower() if fold else output
    found = [v for v in _values(a) if (v.lower() if fold else v) in haystack]
    return float(bool(found)), f"found {found}" if found else "none of the values found"


def _contains_all(a: Assertion, output: str, _: Context, fold: bool = False) -> tuple[float, str]:
    haystack = output.lower() if fold else output
    missing = [v for v in _values(a) if (v.lower() if fold else v) not in haystack]
    return float(not missing), f"missing {missing}" if missing else "all values found"


def _starts_with(a: Assertion, output: str, _: Context) -> tuple[float, str]:
    ok = output.lstrip().startswith(_text(a.value))
    return float(ok), f"{'starts' if ok else 'does not start'} with {_text(a.value)!r}"


def _regex(a: Assertion, output: str, _: Context) -> tuple[float, str]:
    """Searched with the ``regex`` package (Python's syntax), stopped after the checks'
    time limit: a pattern that backtracks without end on one output errors that check."""
    try:
        pattern = regex.compile(_text(a.value))
    except regex.error as exc:
        raise ConfigError(f"regex {a.value!r}: {exc}") from None
    try:
        ok = pattern.search(output, timeout=TIME_LIMIT_S) is not None
    except TimeoutError:
        raise TimeLimit(f"did not finish in {TIME_LIMIT_S:g} s (the pattern backtracks)") from None
    return float(ok), f"{'matches' if ok else 'does not match'} /{pattern.pattern}/"


def _parse_json(output: str) -> Any:
    return json.loads(output)


def _is_json(a: Assertion, output: str, context: Context) -> tuple[float, str]:
    try:
        data = _parse_json(output)
    except json.JSONDecodeError as exc:
        return 0.0, f"not JSON: {exc.msg} at line {exc.lineno}"
    if a.value is None:
        return 1.0, "valid JSON"
    return _schema_check(data, _schema(a, context))


def _json_schema(a: Assertion, output: str, context: Context) -> tuple[float, str]:
    try:
        data = _parse_json(output)
    except json.JSONDecodeError as exc:
        return 0.0, f"not JSON: {exc.msg}"
    return _schema_check(data, _schema(a, context))


def _schema(a: Assertion, context: Context) -> dict[str, Any]:
    """The schema to check: the assertion's value, or the prompt's output_schema."""
    if a.value in (None, "output_schema"):
        if context.output_schema is None:
            raise ConfigError(f"{a.type}: the prompt has no output_schema to check against")
        return context.output_schema
    if not isinstance(a.value, dict):
        raise ConfigError(f"{a.type}: value must be a JSON Schema or 'output_schema'")
    return a.value


def _schema_check(data: Any, schema: dict[str, Any]) -> tuple[float, str]:
    """Checked as a prompt's input_schema is (:mod:`llmops.jsonschemas`): a ``$ref`` resolves
    inside the schema only, and a ``pattern`` that backtracks errors the check at the time
    limit."""
    try:
        found = jsonschemas.errors(schema, data, seconds=TIME_LIMIT_S)
    except jsonschemas.Unresolvable as exc:
        raise ConfigError(f"JSON Schema: cannot resolve $ref {exc.ref!r}") from None
    if any(error.validator == jsonschemas.TIMED_OUT for error in found):
        raise TimeLimit(f"did not finish in {TIME_LIMIT_S:g} s (a pattern backtracks)")
    first = found[0] if found else None
    if first is None:
        return 1.0, "matches the schema"
    where = "/".join(str(p) for p in first.absolute_path) or "(root)"
    return 0.0, f"schema: {where}: {first.message}"


def levenshtein_distance(a: str, b: str) -> int:
    """The edit distance between two strings: Myers' bit-vector algorithm (Hyyrö's form
    for the whole strings), a column of the edit table in one integer of ``len(b)`` bits,
    so that the cost grows with ``len(a)`` times the integer operations on ``len(b)``
    bits, not with every cell of the table in Python."""
    start = 0  # a common start and end cost nothing: equal texts no work at all
    while start < min(len(a), len(b)) and a[start] == b[start]:
        start += 1
    a, b = a[start:], b[start:]
    end = 0
    while end < min(len(a), len(b)) and a[-1 - end] == b[-1 - end]:
        end += 1
    a, b = a[: len(a) - end], b[: len(b) - end]
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    masks: dict[str, int] = {}
    for i, char in enumerate(b):
        masks[char] = masks.get(char, 0) | (1 << i)
    full = (1 << len(b)) - 1
    last = 1 << (len(b) - 1)
    plus, minus, distance = full, 0, len(b)  # the vertical deltas of the table's column
    for char in a:
        eq = masks.get(char, 0)
        xv = eq | minus
        xh = ((((eq & plus) + plus) & full) ^ plus) | eq
        hplus = minus | (~(xh | plus) & full)
        hminus = plus & xh
        if hplus & last:
            distance += 1
        elif hminus & last:
            distance -= 1
        hplus = ((hplus << 1) | 1) & full
        hminus = (hminus << 1) & full
        plus = hminus | (~(xv | hplus) & full)
        minus = hplus & xv
    return distance


def _levenshtein(a: Assertion, output: str, _: Context) -> tuple[float, str]:
    limit = a.threshold if a.threshold is not None else 5
    text, expected = output.strip(), _text(a.value).strip()
    apart = abs(len(text) - len(expected))
    if apart > limit:  # at least that many insertions or deletions: no need to count
        return 0.0, f"edit distance at least {apart} (at most {limit:g})"
    distance = levenshtein_distance(text, expected)
    return float(distance <= limit), f"edit distance {distance} (at most {limit:g})"


def _python(a: Assertion, output: str, context: Context) -> Checked:
    """A bool, a score (passing at the threshold) or promptfoo's ``{pass, score, reason}``,
    whose ``pass`` decides, as promptfoo's does (its score defaults to the pass)."""
    function = python_function(_text(a.value), context.base_dir)
    result = call_limited(function, output, check_context(a, context))
    if isinstance(result, dict):
        reason = str(result.get("reason", "python check"))
        decided = result.get("pass", result.get("pass_"))  # `pass_`: Python's spelling
        if decided is None:
            return float(result.get("score", 0.0)), reason
        if not isinstance(decided, bool):
            raise TypeError(f"`pass` must be true or false, got {decided!r}")
        score = float(result.get("score", float(decided)))
        if a.threshold is not None and score < a.threshold:  # as promptfoo: below it fails
            decided = False
        return score, reason, decided
    if isinstance(result, bool):
        return float(result), f"returned {result}"
    if isinstance(result, int | float):
        return float(result), f"score {float(result):g}"
    raise TypeError(f"expected bool, number or dict, got {type(result).__name__}")


def _cost(a: Assertion, _: str, context: Context) -> tuple[float, str]:
    if context.cost_usd is None:
        return 0.0, "cost unknown (unpriced model)"
    limit = _limit(a)
    return float(context.cost_usd <= limit), f"cost ${context.cost_usd:.6f} (at most ${limit:g})"


def _latency(a: Assertion, _: str, context: Context) -> tuple[float, str]:
    if context.latency_ms is None:
        return 0.0, "latency unknown"
    limit = _limit(a)
    detail = f"latency {context.latency_ms:.0f} ms (at most {limit:g} ms)"
    return float(context.latency_ms <= limit), detail


def _limit(a: Assertion) -> float:
    """The bound of a cost or latency assertion: its value, else its threshold."""
    return float(a.value if a.value is not None else a.threshold or 0)


def _rubric_outside_runner(a: Assertion, output: str, context: Context) -> tuple[float, str]:
    raise ConfigError("llm-rubric is graded by the runner, which calls the judge model")


# -- structure and shape of the text (promptfoo's word-count, is-refusal, contains-json,
# is-xml, contains-xml) ------------------------------------------------------------------


def word_count(output: str) -> int:
    """Words as whitespace-separated runs."""
    return len(output.split())


def _word_count(a: Assertion, output: str, _: Context) -> tuple[float, str]:
    count = word_count(output)
    low, high = _word_bounds(a)
    ok = (low is None or count >= low) and (high is None or count <= high)
    if low == high:
        return float(ok), f"{count} words (expected {low})"
    wanted = " and ".join(
        part for part in (low is not None and f"at least {low}", high is not None and
                          f"at most {high}") if part
    )  # fmt: skip
    return float(ok), f"{count} words (expected {wanted})"


def _word_bounds(a: Assertion) -> tuple[int | None, int | None]:
    """``value: 50`` (exactly), or ``value: {min: 10, max: 50}`` (either may be left out)."""
    value = a.value
    if isinstance(value, dict):
        low, high = value.get("min"), value.get("max")
        return (None if low is None else int(low)), (None if high is None else int(high))
    exact = int(float(value))
    return exact, exact


# An answer that declines: an apology or a statement of inability at its start, or the
# usual phrases of a model explaining what it is instead of answering. Our own list (a
# heuristic: use llm-rubric for anything subtle).
_REFUSAL = re.compile(
    r"^\s*(?:i'?m sorry|i am sorry|sorry,|i apologi[sz]e|unfortunately,? i|"
    r"i (?:can(?:no|')t|am (?:not able|unable)|won'?t|will not|must decline|"
    r"do not feel comfortable|don'?t feel comfortable)|"
    r"(?:i'?m|i am) (?:not able|unable|afraid i can(?:no|')t))"
    r"|\bas an ai\b|\bas a(?:n)? (?:large )?language model\b|\bi(?: am|'m) (?:just )?an ai\b"
    r"|\b(?:can(?:no|')t|unable to) (?:help|assist) with (?:that|this)\b",
    re.IGNORECASE,
)


def is_refusal(output: str) -> bool:
    """Whether ``output`` declines to answer (an empty answer counts as declining)."""
    text = output.replace("\u2019", "'")  # a typographic apostrophe reads as '
    return not text.strip() or _REFUSAL.search(text) is not None


def _is_refusal(_: Assertion, output: str, __: Context) -> tuple[float, str]:
    refused = is_refusal(output)
    return float(refused), "a refusal" if refused else "not a refusal"


def json_objects(text: str) -> list[Any]:
    """Every JSON object or array found in ``text`` (in a sentence or a code fence), in
    order, each the longest that parses from its opening bracket."""
    decoder = json.JSONDecoder()
    found: list[Any] = []
    position = 0
    while True:
        starts = [i for i in (text.find("{", position), text.find("[", position)) if i >= 0]
        if not starts:
            return found
        start = min(starts)
        try:
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            position = start + 1
            continue
        found.append(value)
        position = end


def _contains_json(a: Assertion, output: str, context: Context) -> tuple[float, str]:
    candidates = json_objects(output)
    if not candidates:
        return 0.0, "no JSON object or array in the output"
    if a.value is None:
        return 1.0, f"{len(candidates)} JSON value(s) found"
    schema = _schema(a, context)
    reason = "no JSON value in the output matches the schema"
    for candidate in candidates:
        score, reason = _schema_check(candidate, schema)
        if score:
            return score, f"JSON in the output {reason}"
    return 0.0, reason


def _required_elements(a: Assertion) -> list[str]:
    """``is-xml``'s value: required element paths (``analysis.sentiment``), as a
    comma-separated string, a list, or ``{requiredElements: [...]}``."""
    value = a.value
    if value is None:
        return []
    if isinstance(value, dict):
        value = value.get("requiredElements")
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list):
        return [str(part) for part in value]
    raise ConfigError(f"{a.type}: value must be element paths (a string or a list)")


def xml_problem(text: str, required: list[str]) -> str | None:
    """Why ``text`` is not well-formed XML holding every required element path, or None.
    DOCTYPE declarations are refused (no entity expansion: no XML bomb)."""
    if "<!DOCTYPE" in text.upper():
        return "DOCTYPE declarations are not accepted"
    try:
        # safe: without a DOCTYPE there is no entity to expand (no bomb, no external file)
        root = ElementTree.fromstring(text.strip())  # noqa: S314
    except ElementTree.ParseError as exc:
        return f"not well-formed XML: {exc}"
    missing = [path for path in required if not _has_path(root, path)]
    return f"missing elements: {', '.join(missing)}" if missing else None


def _has_path(root: ElementTree.Element, path: str) -> bool:
    """``a.b.c``: the root is ``a`` (or the path starts below it), then child ``b``, ..."""
    parts = [part for part in path.split(".") if part]
    if parts and parts[0] == root.tag:
        parts = parts[1:]
    return not parts or root.find("/".join(parts)) is not None


def _is_xml(a: Assertion, output: str, _: Context) -> tuple[float, str]:
    problem = xml_problem(output, _required_elements(a))
    return (0.0, problem) if problem else (1.0, "well-formed XML with the required elements")


_XML_START = re.compile(r"<([A-Za-z_][\w.-]*)[^<>]*>")


def _contains_xml(a: Assertion, output: str, _: Context) -> tuple[float, str]:
    required = _required_elements(a)
    problem = "no XML element in the output"
    for match in _XML_START.finditer(output):
        tag = re.escape(match.group(1))
        closing = list(re.finditer(rf"</{tag}\s*>", output[match.end() :]))
        for end in reversed(closing):  # the widest element first
            candidate = output[match.start() : match.end() + end.end()]
            problem = xml_problem(candidate, required) or ""
            if not problem:
                return 1.0, f"XML element <{match.group(1)}> with the required elements"
    return 0.0, problem or "no well-formed XML element in the output"


# -- overlap with a reference (promptfoo's rouge-n and bleu) ------------------------------


def _rouge_n(a: Assertion, output: str, _: Context) -> tuple[float, str]:
    from llmops.evals.overlap import rouge_n

    score = rouge_n(output, _text(a.value))
    return score, f"ROUGE-1 {score:.2f}"


def _bleu(a: Assertion, output: str, _: Context) -> tuple[float, str]:
    from llmops.evals.overlap import bleu

    references = a.value if isinstance(a.value, list) else [a.value]
    score = bleu(output, [_text(r) for r in references])
    return score, f"BLEU {score:.3f}"


# -- the response besides its text (promptfoo's finish-reason, is-sql, perplexity,
# perplexity-score, is-valid-openai-tools-call, tool-call-f1) -----------------------------


class Unjudgeable(Exception):
    """The response lacks what a check needs (no logprobs, no tools offered): an error of
    the assertion, not a failure."""


def _finish_reason(a: Assertion, _: str, context: Context) -> tuple[float, str]:
    expected = response.normalize_finish_reason(_text(a.value))
    actual = response.normalize_finish_reason(context.finish_reason)
    if actual is None:
        return 0.0, "the provider gave no finish reason"
    same = actual == expected
    return float(same), f"finish reason {actual!r}" + ("" if same else f", expected {expected!r}")


def _is_sql(a: Assertion, output: str, _: Context) -> tuple[float, str]:
    options = a.value if isinstance(a.value, dict) else None
    problem = sql.sql_problem(output, options)
    return (0.0, problem) if problem else (1.0, "valid SQL")


def _logprobs(a: Assertion, context: Context) -> list[float]:
    if not context.logprobs:
        raise Unjudgeable(
            "the call returned no logprobs: pass `logprobs: true` in the prompt's params"
        )
    return context.logprobs


def _perplexity(a: Assertion, _: str, context: Context) -> tuple[float, str]:
    value = response.perplexity(_logprobs(a, context))
    if a.threshold is None:
        return 1.0, f"perplexity {value:.3f}"
    ok = value <= a.threshold
    return float(ok), f"perplexity {value:.3f} (at most {a.threshold:g})"


def _perplexity_score(a: Assertion, _: str, context: Context) -> tuple[float, str]:
    score = response.perplexity_score(_logprobs(a, context))
    return score, f"perplexity score {score:.3f}"


def _offered(a: Assertion, context: Context) -> list[dict[str, Any]]:
    if context.tools is None:
        raise Unjudgeable("the prompt offers no tools: give them in its params as `tools`")
    return context.tools


def _valid_tools_call(a: Assertion, _: str, context: Context) -> tuple[float, str]:
    functions = _offered(a, context)
    if not context.tool_calls:
        return 0.0, "the response has no tool calls"
    problem = response.tool_call_problem(context.tool_calls, functions)
    if problem:
        return 0.0, problem
    return 1.0, f"{len(context.tool_calls)} valid tool call(s)"


def _expected_tools(value: Any) -> set[str]:
    """tool-call-f1's value: a list of names or a comma-separated string."""
    if isinstance(value, str):
        return {name.strip() for name in value.split(",") if name.strip()}
    if isinstance(value, list):
        return {str(name).strip() for name in value if str(name).strip()}
    return set()


def _tool_call_f1(a: Assertion, _: str, context: Context) -> tuple[float, str]:
    expected = _expected_tools(a.value)
    called = response.called_names(context.tool_calls)
    score, precision, recall = response.f1(expected, called)
    shown = ", ".join(sorted(called)) or "(none)"
    return score, (
        f"tool call F1 {score:.3f} (precision {precision:.3f}, recall {recall:.3f}); "
        f"expected [{', '.join(sorted(expected))}], called [{shown}]"
    )


# -- code from the suite: the context it sees, transforms ----------------------------------


def check_context(assertion: Assertion, context: Context) -> dict[str, Any]:
    """The ``context`` a python or javascript check gets, as promptfoo hands it: the
    rendered ``prompt``, ``vars``, the case (``test``), the assertion's ``config``, the
    call's ``cost`` (USD), ``latency_ms``, ``tool_calls``, ``finish_reason`` and
    ``logprobs``. A copy: a check cannot change what the next one sees."""
    return copy.deepcopy(
        {
            "prompt": context.prompt,
            "vars": context.vars,
            "test": context.test,
            "config": assertion.config or {},
            "cost": context.cost_usd,
            "latency_ms": context.latency_ms,
            "tool_calls": context.tool_calls,
            "finish_reason": context.finish_reason,
            "logprobs": context.logprobs,
        }
    )


def python_function(spec: str, base_dir: Path) -> Callable[..., Any]:
    """A python check or transform: a referenced function, or the inline code compiled."""
    if is_reference(spec):
        return load_function(spec, base_dir)
    key = (spec, "<inline>")
    if key not in _FUNCTIONS:
        _FUNCTIONS[key] = compile_inline(spec)
    return _FUNCTIONS[key]


def apply_transform(spec: str, output: str, context: dict[str, Any], base_dir: Path) -> str:
    """``output`` through a transform (inline Python or ``file://x.py:function``) that
    gets ``(output, context)``; a result that is not text is JSON-encoded. Raises what the
    transform raises, and :class:`TimeLimit`."""
    result = call_limited(python_function(spec, base_dir), output, context)
    if isinstance(result, str):
        return result
    if result is None:
        raise ValueError("the transform returned None")
    return json.dumps(result, default=str, ensure_ascii=False)


def transformed(
    assertion: Assertion, output: str, context: Context
) -> tuple[Assertion, str] | Outcome:
    """The assertion without its ``transform`` and the output through it, or the error
    outcome of a transform that failed (the assertion errors, it does not fail)."""
    if assertion.transform is None:
        return assertion, output
    try:
        text = apply_transform(
            assertion.transform, output, check_context(assertion, context), context.base_dir
        )
    except TimeLimit as exc:
        return broken(assertion, f"{assertion.type}: transform {exc}")
    except Exception as exc:  # the transform is broken: the assertion errors
        problem = f"raised {type(exc).__name__}: {str(exc)[:300]}"
        return broken(assertion, f"{assertion.type}: transform {problem}")
    return assertion.model_copy(update={"transform": None}), text


Checked = tuple[float, str] | tuple[float, str, bool]
"""What a check returns: its score and reason, and whether it passed when the check decides
that itself (a ``python`` check's ``{pass, ...}``) rather than by its threshold."""

CHECKS: dict[str, Callable[[Assertion, str, Context], Checked]] = {
    "equals": _equals,
    "contains": _contains,
    "icontains": _icontains,
    "contains-any": _contains_any,
    "icontains-any": lambda a, o, c: _contains_any(a, o, c, fold=True),
    "contains-all": _contains_all,
    "icontains-all": lambda a, o, c: _contains_all(a, o, c, fold=True),
    "starts-with": _starts_with,
    "regex": _regex,
    "is-json": _is_json,
    "json-schema": _json_schema,
    "levenshtein": _levenshtein,
    "python": _python,
    "cost": _cost,
    "latency": _latency,
    "llm-rubric": _rubric_outside_runner,
    "word-count": _word_count,
    "is-refusal": _is_refusal,
    "contains-json": _contains_json,
    "is-xml": _is_xml,
    "contains-xml": _contains_xml,
    "rouge-n": _rouge_n,
    "bleu": _bleu,
    "finish-reason": _finish_reason,
    "is-sql": _is_sql,
    "perplexity": _perplexity,
    "perplexity-score": _perplexity_score,
    "is-valid-openai-tools-call": _valid_tools_call,
    "is-valid-openai-function-call": _valid_tools_call,
    "tool-call-f1": _tool_call_f1,
}


def _judged_outside_runner(a: Assertion, output: str, context: Context) -> tuple[float, str]:
    raise ConfigError(f"{a.base_type} is graded by the runner, which calls the judge model")


CHECKS.update({kind: _judged_outside_runner for kind in graders.MODEL_GRADED})
CHECKS[graders.SELECT_BEST] = _judged_outside_runner

_FUNCTIONS: dict[tuple[str, str], Callable[..., Any]] = {}


def load_function(spec: str, base_dir: Path) -> Callable[..., Any]:
    """``package.module:function``, ``path/to/file.py:function`` or ``file.py``
    (function ``get_assert``, as in promptfoo)."""
    key = (spec, str(base_dir))
    if key in _FUNCTIONS:
        return _FUNCTIONS[key]
    target, _, name = _python_spec(spec).partition(":")
    if target.endswith(".py"):
        path = (base_dir / target).resolve()
        if not path.is_file():
            raise ConfigError(f"python assertion: no file {path}")
        module_name = f"llmops_eval_{abs(hash(str(path)))}"
        module_spec = importlib.util.spec_from_file_location(module_name, path)
        if module_spec is None or module_spec.loader is None:
            raise ConfigError(f"python assertion: cannot load {path}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module
        module_spec.loader.exec_module(module)
        name = name or "get_assert"
    else:
        if not name:
            target, _, name = target.rpartition(".")
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise ConfigError(f"python assertion {spec!r}: cannot import {target}: {exc}") from None
    function: object = getattr(module, name, None)
    if not callable(function):
        raise ConfigError(f"python assertion {spec!r}: no function {name!r}")
    _FUNCTIONS[key] = function
    return function
