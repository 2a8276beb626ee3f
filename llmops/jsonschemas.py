"""JSON Schema checks that read no file or URL and stay bounded: the one validator for
prompts' ``input_schema``, eval assertions and tool parameters.

jsonschema alone fetches a ``$ref``'s ``http://`` or ``file://`` URI (a deprecated fallback),
searches ``pattern`` with Python's ``re`` (``^(a|a)*$`` takes hours on 40 characters) and
checks ``uniqueItems`` of objects by comparing every pair (8,000 small objects: two minutes).
Here a ``$ref`` resolves inside the schema only, a pattern search stops at the deadline (an
error whose ``validator`` is :data:`TIMED_OUT`), and ``uniqueItems`` takes linear time.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import jsonschema
import referencing
import regex
from referencing.exceptions import Unresolvable

__all__ = ["TIMED_OUT", "Unresolvable", "errors", "schema_problem"]


class _Deadline(threading.local):
    at = 0.0  # time.monotonic() when this thread's check must stop


_DEADLINE = _Deadline()
TIMED_OUT = "pattern-time-limit"
"""The ``validator`` of an error for a check cut short at the time limit."""


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
        f"pattern {pattern!r} did not finish in time", validator=TIMED_OUT
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


def schema_problem(schema: dict[str, Any]) -> str | None:
    """Why ``schema`` is not a valid JSON Schema (its own draft, else 2020-12), with the
    path in it where there is one; None when it is valid."""
    dialect = schema.get("$schema")
    if dialect is not None and not isinstance(dialect, str):  # validator_for would crash
        return "$schema must be a URI string"
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        return f"{exc.message} (at {where})" if where else exc.message
    return None


def errors(
    schema: dict[str, Any], instance: Any, *, seconds: float
) -> list[jsonschema.ValidationError]:
    """Every error of ``instance`` against ``schema`` (its own draft, else 2020-12); pattern
    searches stop ``seconds`` from now. Raises :class:`Unresolvable` for a ``$ref`` that
    resolves nowhere inside the schema."""
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    validator = _bounded(cls)(schema, registry=referencing.Registry())
    _DEADLINE.at = time.monotonic() + seconds
    return list(validator.iter_errors(instance))
