"""Strict rendering: JSON-Schema-checked variables into templates compiled and rendered in
the bounded sandbox of :mod:`llmops.prompts.sandbox`, with every failure a typed error that
names the prompt (and the variable or the limit)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import jinja2
import jsonschema
import referencing
import referencing.exceptions
import regex

from llmops.errors import (
    MissingVariableError,
    PromptFileError,
    RenderError,
    SandboxViolationError,
    TemplateLimitError,
    VariableValidationError,
)
from llmops.prompts import sandbox
from llmops.prompts.sandbox import (
    DEFAULT_LIMITS,
    MAX_LOOP_ITERATIONS,
    MAX_OUTPUT_CHARS,
    MAX_RANGE_ITEMS,
    RenderLimits,
)

__all__ = [
    "MAX_LOOP_ITERATIONS",
    "MAX_OUTPUT_CHARS",
    "MAX_RANGE_ITEMS",
    "RenderLimits",
    "check_schema",
    "compile_template",
    "prepare_variables",
    "render_template",
]

_UNDEFINED_NAME = re.compile(r"^'([^']+)' is undefined$")


def compile_template(source: str, *, file: str, line: int | None) -> jinja2.Template:
    """Compile one template; a syntax error names the file and the line in it."""
    tags = source.count("{{") + source.count("{%")
    if tags > sandbox.MAX_TEMPLATE_TAGS:
        message = f"template has {tags:,} tags, more than {sandbox.MAX_TEMPLATE_TAGS:,}"
        raise PromptFileError(message, file=file, line=line)
    try:
        return sandbox.compile_source(source)
    except jinja2.TemplateSyntaxError as exc:
        at = (line or 0) + (exc.lineno or 1) if line else None
        raise PromptFileError(f"template syntax error: {exc.message}", file=file, line=at) from None
    except RecursionError:  # Jinja's parser and compiler recurse once per level of nesting
        message = "template nested too deeply (brackets, operators, attributes or blocks)"
        raise PromptFileError(message, file=file, line=line) from None
    except SyntaxError as exc:  # Python's limits on the code Jinja makes: 20 nested loops, ...
        message = f"template nested too deeply ({exc.msg})"
        raise PromptFileError(message, file=file, line=line) from None


def check_schema(schema: dict[str, Any], *, field: str, file: str, line: int | None) -> None:
    """Reject a JSON Schema that is itself invalid, naming the file and the line."""
    dialect = schema.get("$schema")
    if dialect is not None and not isinstance(dialect, str):  # validator_for would crash
        message = f"{field} is not a valid JSON Schema: $schema must be a URI string"
        raise PromptFileError(message, file=file, line=line)
    validator = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        message = f"{field} is not a valid JSON Schema: {exc.message}"
        if where:
            message += f" (at {where})"
        raise PromptFileError(message, file=file, line=line) from None


class _Deadline(threading.local):
    at = 0.0  # time.monotonic() when the variables' check must stop


_DEADLINE = _Deadline()
_TIMED_OUT = "pattern-time-limit"  # the ``validator`` of an error for a check cut short


def _search(pattern: str, text: str) -> bool | None:
    """Whether ``pattern`` matches in ``text``; None when the search did not finish by the
    deadline (a pattern that backtracks, ``^(a|a)*$``, takes hours on 40 characters)."""
    try:
        left = max(_DEADLINE.at - time.monotonic(), 0.001)
        return regex.search(pattern, text, timeout=left) is not None
    except TimeoutError:
        return None
    except regex.error:  # a pattern only Python's re reads
        return re.search(pattern, text) is not None


def _timed_out(pattern: str) -> jsonschema.ValidationError:
    return jsonschema.ValidationError(
        f"pattern {pattern!r} did not finish in {DEFAULT_LIMITS.seconds:g} s", validator=_TIMED_OUT
    )


def _pattern(
    validator: Any, pattern: str, instance: Any, schema: dict[str, Any]
) -> Iterator[jsonschema.ValidationError]:
    """jsonschema's ``pattern``, searched with a time limit."""
    if not validator.is_type(instance, "string"):
        return
    found = _search(pattern, instance)
    if found is None:
        yield _timed_out(pattern)
    elif not found:
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, properties: dict[str, Any], instance: Any, schema: dict[str, Any]
) -> Iterator[jsonschema.ValidationError]:
    """jsonschema's ``patternProperties``, searched with a time limit."""
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in properties.items():
        for key, value in instance.items():
            found = _search(pattern, key)
            if found is None:
                yield _timed_out(pattern)
                return
            if found:
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _json_key(value: Any) -> Any:
    """A hashable key equal for values JSON Schema calls equal: 1 and 1.0, but not True;
    objects whatever their key order."""
    if isinstance(value, bool) or value is None:
        return ("c", value)
    if isinstance(value, int | float):
        return ("n", value)
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, list | tuple):
        return ("l", tuple(_json_key(item) for item in value))
    if isinstance(value, dict):
        return ("d", frozenset((key, _json_key(item)) for key, item in value.items()))
    return ("o", id(value))  # not JSON: only itself


def _unique_items(
    validator: Any, unique: Any, instance: Any, schema: dict[str, Any]
) -> Iterator[jsonschema.ValidationError]:
    """jsonschema's ``uniqueItems`` in linear time (it compares every pair of unhashable
    items: 8,000 small objects took two minutes)."""
    if not unique or not validator.is_type(instance, "array"):
        return
    seen: set[Any] = set()
    for item in instance:
        key = _json_key(item)
        if key in seen:
            yield jsonschema.ValidationError(f"{instance!r} has non-unique elements")
            return
        seen.add(key)


_BOUNDED: dict[type, type] = {}


def _bounded(validator_cls: type) -> Any:
    """``validator_cls`` whose pattern checks stop at the render time limit and whose
    uniqueItems takes linear time."""
    if validator_cls not in _BOUNDED:
        _BOUNDED[validator_cls] = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
            validator_cls,
            {
                "pattern": _pattern,
                "patternProperties": _pattern_properties,
                "uniqueItems": _unique_items,
            },
        )
    return _BOUNDED[validator_cls]


def prepare_variables(
    prompt: str,
    variables: dict[str, Any],
    schema: dict[str, Any] | None,
    *,
    file: str | None = None,
) -> dict[str, Any]:
    """Fill top-level defaults from ``schema`` and validate the variables against it.

    A ``$ref`` in ``schema`` that resolves nowhere inside it (no document is fetched: a
    render reads no file and makes no request) is a PromptFileError naming ``file``, the
    prompt's file."""
    values = dict(variables)
    if not schema:
        return values
    for name, spec in (schema.get("properties") or {}).items():
        if name not in values and isinstance(spec, dict) and "default" in spec:
            values[name] = spec["default"]
    validator_cls = jsonschema.validators.validator_for(
        schema, default=jsonschema.Draft202012Validator
    )
    # an empty registry: a $ref resolves inside the schema only (without one, jsonschema's
    # deprecated fallback fetches http:// and file:// URIs at every render)
    validator = _bounded(validator_cls)(schema, registry=referencing.Registry())
    _DEADLINE.at = time.monotonic() + DEFAULT_LIMITS.seconds
    try:
        found = list(validator.iter_errors(values))
    except referencing.exceptions.Unresolvable as exc:
        raise PromptFileError(
            f"input_schema: cannot resolve $ref {exc.ref!r} (prompt '{prompt}')",
            file=file or prompt,
        ) from None
    if not found:
        return values
    for error in found:  # the first check cut short (after it, every search is)
        if error.validator == _TIMED_OUT:
            where = ".".join(str(p) for p in error.absolute_path)
            subject = f"variable '{where}'" if where else "variables"
            raise TemplateLimitError(
                f"prompt '{prompt}': {subject}: the input_schema check exceeded the time "
                f"limit ({DEFAULT_LIMITS.seconds:g} s): {error.message}",
                prompt=prompt,
                limit="time",
            )
    errors = sorted(found, key=lambda e: (list(e.absolute_path), e.message))
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    if first.validator == "required":
        required = first.validator_value  # the schema's "required" array (set with .validator)
        missing = (
            [name for name in required if name not in values]
            if isinstance(required, Iterable)
            else []
        )
        names = ", ".join(repr(m) for m in missing)
        raise MissingVariableError(
            f"prompt '{prompt}': missing required variable {names}{more}",
            prompt=prompt,
            variable=missing[0] if missing else None,
        )
    path = list(first.absolute_path)
    variable = ".".join(str(p) for p in path) if path else None
    subject = f"variable '{variable}'" if variable else "variables"
    raise VariableValidationError(
        f"prompt '{prompt}': {subject} fails input_schema: {first.message}{more}",
        prompt=prompt,
        variable=str(path[0]) if path else None,
    )


def render_template(
    prompt: str,
    template: jinja2.Template,
    values: dict[str, Any],
    *,
    limits: RenderLimits | None = None,
) -> str:
    """Render one compiled template within ``limits`` (default: the module constants).

    Undefined names, sandbox escapes and exceeded limits are typed errors that
    name the prompt.
    """
    limits = limits or DEFAULT_LIMITS
    try:
        text = sandbox.render(template, values, limits)
    except sandbox.LimitExceeded as exc:
        raise TemplateLimitError(
            f"prompt '{prompt}': {sandbox.describe(exc, limits)}", prompt=prompt, limit=exc.limit
        ) from None
    except jinja2.UndefinedError as exc:
        message = str(exc.message)
        match = _UNDEFINED_NAME.match(message)
        variable = match.group(1) if match else None
        text = f"missing variable '{variable}'" if variable else f"undefined value: {message}"
        raise MissingVariableError(
            f"prompt '{prompt}': {text}", prompt=prompt, variable=variable
        ) from None
    except jinja2.exceptions.SecurityError as exc:
        raise SandboxViolationError(
            f"prompt '{prompt}': template blocked by the sandbox: {exc}", prompt=prompt
        ) from None
    except Exception as exc:  # a template error such as adding a string to a number
        raise RenderError(
            f"prompt '{prompt}': template failed: {type(exc).__name__}: {exc}", prompt=prompt
        ) from None
    if not text.isascii():
        try:  # a lone surrogate ('%c' % 55296, or argv bytes that are not UTF-8) is no text
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            code = ord(text[exc.start])
            raise RenderError(
                f"prompt '{prompt}': the rendered text holds a lone surrogate (\\u{code:04x}), "
                "which no model, terminal or database takes as text",
                prompt=prompt,
            ) from None
    return text
