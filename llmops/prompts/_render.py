"""Strict rendering: JSON-Schema-checked variables into templates compiled and rendered in
the bounded sandbox of :mod:`llmops.prompts.sandbox`, with every failure a typed error that
names the prompt (and the variable or the limit)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import jinja2

from llmops import jsonschemas
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
    problem = jsonschemas.schema_problem(schema)
    if problem is not None:
        message = f"{field} is not a valid JSON Schema: {problem}"
        raise PromptFileError(message, file=file, line=line)


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
    try:
        found = jsonschemas.errors(schema, values, seconds=DEFAULT_LIMITS.seconds)
    except jsonschemas.Unresolvable as exc:
        raise PromptFileError(
            f"input_schema: cannot resolve $ref {exc.ref!r} (prompt '{prompt}')",
            file=file or prompt,
        ) from None
    if not found:
        return values
    for error in found:  # the first check cut short (after it, every search is)
        if error.validator == jsonschemas.TIMED_OUT:
            where = ".".join(str(p) for p in error.absolute_path)
            subject = f"variable '{where}'" if where else "variables"
            raise TemplateLimitError(
                f"prompt '{prompt}': {subject}: {error.message}: the input_schema check "
                f"stopped at the time limit of {DEFAULT_LIMITS.seconds:g} s",
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
