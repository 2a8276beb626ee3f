"""The rows the writer stores, as typed records, and the cheap checks that make them storable.

The gateway builds a :class:`CallRow` or :class:`FeedbackRow` per call or score and hands it
to the writer. Before it is journaled, :func:`storable` makes it fit every database llmops
supports, so that bad input from an app almost never reaches the writer:

- metadata, tags and the request become plain JSON (a circular reference, a tuple key,
  bytes or any other object are written as text; NaN and infinities become null);
- ``\\x00`` (which PostgreSQL refuses in text and JSON) becomes U+FFFD;
- a string longer than its column is cut, with a marker (and, for ids, a digest that keeps
  distinct long ids distinct);
- metadata over 64 KB and texts over 4 MB are cut, with a marker.

:func:`repaired` is the writer's second line of defence for a row a database still refused.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Literal, TypedDict

import orjson
import sqlalchemy as sa

from llmops.store.audit_log import utc
from llmops.store.tables import CALL_CONTENT, CALLS, CALLS_WITH_CONTENT, FEEDBACK

RecordKind = Literal["call", "feedback"]
CallStatus = Literal["ok", "error", "cancelled", "blocked"]
CostStatus = Literal["priced", "custom", "approximate", "unpriced"]

MAX_METADATA_BYTES = 64 * 1024  # encoded metadata above this is replaced by a preview
MAX_TEXT_CHARS = 4 * 1024 * 1024  # response text, error messages, message contents
TRUNCATED = "…[truncated]"
TAG_CHARS = 200  # a tag is a key of the daily tag rollup


class CallRow(TypedDict):
    """One row of ``llm_calls`` (see :class:`llmops.store.tables.CallRecord`)."""

    id: str
    created_at: datetime
    source: str
    prompt_name: str | None
    prompt_version: str | None
    git_commit: str | None
    model: str
    provider: str | None
    status: CallStatus
    error_type: str | None
    error_message: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cached_tokens: int | None
    cache_write_tokens: int | None
    reasoning_tokens: int | None
    tokens_estimated: bool
    cost_usd: float | None
    cost_status: CostStatus
    price_source: str | None
    latency_ms: float | None
    ttft_ms: float | None
    user_id: str | None
    session_id: str | None
    tags: list[str] | None
    metadata: dict[str, Any] | None
    request: dict[str, Any] | None
    response_text: str | None
    usage_details: dict[str, Any] | None
    api_key: str | None  # the virtual key's name (llmops serve)


class FeedbackRow(TypedDict):
    """One row of ``feedback``."""

    id: str
    call_id: str
    created_at: datetime
    name: str
    score: float
    comment: str | None
    user_id: str | None


Row = CallRow | FeedbackRow

# Column limits, read from the tables so that they cannot drift.
_LIMITS: dict[str, dict[str, int]] = {
    kind: {
        column.name: getattr(column.type, "length")  # noqa: B009  (types without one: skipped)
        for column in table.columns
        if isinstance(getattr(column.type, "length", None), int)
    }
    for kind, table in (("call", CALLS), ("feedback", FEEDBACK))
}
# A call row's request and response_text are stored apart: the request's parameters in
# llm_calls.params, the rest in llm_call_content (see split_content and whole_request).
CONTENT_COLUMNS = ("request", "response_text")
_CALL_TABLE = tuple(str(column.name) for column in CALLS.columns)
COLUMNS: dict[str, tuple[str, ...]] = {  # plain str, as JSON keys (not SQLAlchemy's names)
    "call": tuple(c for c in _CALL_TABLE if c != "params") + CONTENT_COLUMNS,
    "feedback": tuple(str(column.name) for column in FEEDBACK.columns),
}
_TEXTS = {"call": ("error_message", "response_text"), "feedback": ("comment",)}
_JSON = {"call": ("tags", "metadata", "request", "usage_details"), "feedback": ()}
_IDS = {"call": ("id",), "feedback": ("id", "call_id")}
# measurements the rollups sum: NaN or an infinity is no measurement, and would poison the
# sums (inf - inf is NaN, which SQLite stores as NULL in a NOT NULL column)
_MEASURES = {"call": ("cost_usd", "latency_ms", "ttft_ms"), "feedback": ()}
# whole numbers, each within its column's type (INTEGER: 32 bits, BIGINT: 64 bits), read from
# the tables: a provider's garbage usage (3 billion tokens in a call) would otherwise have
# PostgreSQL refuse the whole call, and SQLite take it
_COUNTS: dict[str, dict[str, int]] = {
    kind: {
        column.name: 2**63 - 1 if isinstance(column.type, sa.BigInteger) else 2**31 - 1
        for column in table.columns
        if isinstance(column.type, sa.Integer)
    }
    for kind, table in (("call", CALLS), ("feedback", FEEDBACK))
}


def fit(value: str, limit: int) -> str:
    """``value`` cut to ``limit`` characters with a marker; long ids keep a digest so that
    two different long values stay different (in a column of 36 characters or more: a
    call's or feedback row's id too, where two long ids cut alike were one row)."""
    if len(value) <= limit:
        return value
    if limit >= 36:
        digest = hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()[:12]
        return f"{value[: limit - 13]}…{digest}"
    return value[: limit - 1] + "…"


def stored_key(value: str, column: str) -> str:
    """``value`` as the writer stores it in ``llm_calls.column`` (a user, a session): NULs
    and lone surrogates as U+FFFD, cut to the column's length with a digest (:func:`fit`).
    The gateway keys budgets with it, so that a call's spend is counted under the key its
    row is stored with."""
    return fit(_text(value, strict=True), _LIMITS["call"][column])


def stored_tag(value: str) -> str:
    """A tag as the writer stores it (see :func:`stored_key`)."""
    return fit(_text(value, strict=True), TAG_CHARS)


def stored_tags(tags: Iterable[object]) -> list[str] | None:
    """A call's tags as the writer stores them: each as :func:`stored_tag` (a tag that is
    not a string as its text), each once (a call counts once under each of its tags), an
    empty tag left out; None when none is left (an empty list counts as no tags)."""
    kept = dict.fromkeys(stored_tag(t if isinstance(t, str) else str(t)) for t in tags)
    kept.pop("", None)
    return list(kept) or None


def _text(value: str, limit: int = MAX_TEXT_CHARS, *, strict: bool = False) -> str:
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    if len(value) > limit:
        value = value[:limit] + TRUNCATED
    if strict:  # lone surrogates, which no database encodes, become U+FFFD
        value = value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return value


def json_safe(
    value: Any, *, strict: bool = False, _depth: int = 0, _seen: frozenset[int] = frozenset()
) -> Any:
    """A plain-JSON copy of ``value``: str keys, finite numbers, no cycles, no NULs;
    anything else becomes its text. ``strict`` also replaces lone surrogates."""
    if isinstance(value, str):
        return _text(value, strict=strict)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if _depth > 64:
        return "[too deep]"
    if isinstance(value, dict | list | tuple | set | frozenset):
        if id(value) in _seen:
            return "[circular]"
        seen = _seen | {id(value)}
        if isinstance(value, dict):
            return {
                _key(key): json_safe(item, strict=strict, _depth=_depth + 1, _seen=seen)
                for key, item in value.items()
            }
        return [json_safe(item, strict=strict, _depth=_depth + 1, _seen=seen) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return _text(f"<{len(value)} bytes>")
    return _text(repr(value)[:1000])


def _key(key: Any) -> str:
    if isinstance(key, str):
        return _text(key, 1000)
    if isinstance(key, tuple):
        return _text(",".join(map(str, key)), 1000)
    return _text(str(key), 1000)


def encode_row(kind: RecordKind, row: Row) -> bytes:
    """One journal line: ``{"kind": ..., "row": {...}}`` (orjson: datetimes as ISO 8601,
    NaN and infinities as null, which is what the database gets too, see
    :func:`json_text`). Raises TypeError when the row is not plain JSON (a cycle, a key that
    is not a string, bytes, any other object, a lone surrogate, an int over 64 bits)."""
    return orjson.dumps({"kind": kind, "row": row}) + b"\n"


def json_text(value: Any) -> str:
    """The JSON the database stores for a JSON column (the engines' serializer)."""
    return orjson.dumps(value).decode()


def storable(kind: RecordKind, row: Row) -> tuple[Row, bytes]:
    """The row made plain JSON, and its journal line; this runs on the app's call path, so
    it only encodes (orjson) unless the row needs the slow path. Never raises for a row
    whose fields are of the documented types (anything in metadata is fine). Column
    lengths are the writer's job (:func:`fitted`), for live and replayed rows alike."""
    data: dict[str, Any] = row  # type: ignore[assignment]
    try:
        line = encode_row(kind, row)
    except (TypeError, ValueError, RecursionError):
        line = b""
    if not line or b"\\u0000" in line:  # the slow path: make every value plain
        for column, value in data.items():
            if column in _JSON[kind] and value is not None:
                data[column] = json_safe(value, strict=True)
            elif isinstance(value, str):
                data[column] = _text(value, strict=True)
        line = encode_row(kind, row)
    metadata = data.get("metadata")
    if kind == "call" and metadata is not None and len(line) > MAX_METADATA_BYTES:
        encoded = orjson.dumps(metadata)
        size = len(encoded)
        if size > MAX_METADATA_BYTES:
            preview = encoded[:1000].decode("utf-8", "replace")
            data["metadata"] = {"llmops_truncated": True, "bytes": size, "preview": preview}
            line = encode_row(kind, row)
    return row, line


def fitted(kind: RecordKind, row: dict[str, Any]) -> dict[str, Any]:
    """The row's columns, each within what its table takes: a string longer than its
    column cut with a marker (:func:`fit`), texts over :data:`MAX_TEXT_CHARS` cut, tags
    as :func:`stored_tags` keeps them (within the tag rollup's column, each once), a NaN
    or infinite cost, latency or TTFT unknown (None), a count its column cannot hold
    unknown (None; a call keeps it, as a string, in ``usage_details["out_of_range"]``), a
    time without a time zone taken as UTC (a backfill's clock: SQLite refuses it).
    An id that is not a string (a number, a UUID) is its text, as the id column stores it
    and the row's hash covers it. The writer applies this to every row it stores."""
    out = {column: row.get(column) for column in COLUMNS[kind]}
    for column in _IDS[kind]:
        value = out[column]
        if value is not None and type(value) is not str:
            out[column] = str(value)
    created = out["created_at"]
    if isinstance(created, datetime) and created.tzinfo is None:
        out["created_at"] = utc(created)
    for column in _MEASURES[kind]:
        value = out[column]
        if isinstance(value, float) and not math.isfinite(value):
            out[column] = None
    odd = {}
    for column, bound in _COUNTS[kind].items():
        value = out[column]
        if isinstance(value, int) and not -bound - 1 <= value <= bound:
            out[column], odd[column] = None, str(value)
    details = out.get("usage_details")
    if odd and kind == "call" and isinstance(details, dict | None):  # kept as reported
        out["usage_details"] = {**(details or {}), "out_of_range": odd}
    for column, limit in _LIMITS[kind].items():
        value = out[column]
        if isinstance(value, str) and len(value) > limit:
            out[column] = fit(value, limit)
    for column in _TEXTS[kind]:
        value = out[column]
        if isinstance(value, str) and len(value) > MAX_TEXT_CHARS:
            out[column] = _text(value)
    tags = out.get("tags")
    if isinstance(tags, list | tuple) and not _stored_already(tags):
        out["tags"] = stored_tags(tags)
    return out


def _stored_already(tags: list[Any] | tuple[Any, ...]) -> bool:
    """Whether ``tags`` are as :func:`stored_tags` leaves them, as the Gateway's are (the
    writer then keeps them as they are): short strings, none empty, each once."""
    return (
        bool(tags)
        and all(isinstance(t, str) and 0 < len(t) <= TAG_CHARS for t in tags)
        and len(set(tags)) == len(tags)
    )


def split_content(
    rows: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Fitted call rows as rows of ``llm_calls`` (with the request's ``params``) and rows of
    ``llm_call_content`` (the rest of the request, and the response text), one for each
    call that has any: a call with no messages, variables, tool calls or response (content
    mode ``none``) has none. :func:`whole_request` puts the request together again."""
    calls, content = [], []
    for row in rows:
        call = {column: row.get(column) for column in _CALL_TABLE}
        request = row.get("request")
        if isinstance(request, dict):
            call["params"] = request.get("params")
            request = {key: value for key, value in request.items() if key != "params"}
            if request in ({}, {"messages": None}):
                request = None
        calls.append(call)
        if request is not None or row.get("response_text") is not None:
            content.append(
                {"call_id": row["id"], "created_at": row["created_at"],
                 "request": request, "response_text": row.get("response_text")}
            )  # fmt: skip
    return calls, content


def whole_request(request: Any, params: Any) -> Any:
    """A call's request as it was recorded: its stored content (``llm_call_content.request``,
    None when the call has no content row) with its parameters (``llm_calls.params``)."""
    if params is None:
        return request
    whole = dict(request) if isinstance(request, dict) else {"messages": None}
    whole["params"] = params
    return whole


def recorded_calls() -> sa.Select[Any]:
    """Every column of ``llm_calls`` with the call's content (``llm_call_content``, joined
    on the call's id and time): the rows :func:`as_recorded` takes."""
    query = sa.select(CALLS, CALL_CONTENT.c.request, CALL_CONTENT.c.response_text)
    return query.select_from(CALLS_WITH_CONTENT)


def as_recorded(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A row of :func:`recorded_calls` as the writer got it: its request whole again."""
    call = dict(row)
    call["request"] = whole_request(call["request"], call.pop("params"))
    return call


def repaired(kind: RecordKind, row: dict[str, Any]) -> dict[str, Any]:
    """A copy of a row some database refused, with everything a database may refuse
    replaced (NULs, non-finite numbers, over-long strings, non-JSON values)."""
    fixed: dict[str, Any] = json_safe(row, strict=True)
    if isinstance(row.get("created_at"), datetime):
        fixed["created_at"] = row["created_at"]
    for column, limit in _LIMITS[kind].items():
        if isinstance(fixed.get(column), str):
            fixed[column] = fit(fixed[column], limit)
    return fixed
