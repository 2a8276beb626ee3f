"""The hash chain over stored calls and feedback: deleting or editing a stored row shows.

Each writer (one per process) keeps one chain per table. When it stores a batch, it gives
every new row the next ``chain_seq`` of its chain and a ``row_hash``:

    row_hash = SHA-256(previous row's row_hash, "\\n", canonical(covered fields))

with the first row of a chain following :data:`~llmops.store.audit_log.GENESIS`. The chain's
head (``audit_chains.last_seq`` and ``last_hash``) is updated in the same transaction, so
that rows cut from a chain's end are missed as well. ``llmops audit verify`` walks every
chain again (:mod:`llmops.audit.verify`).

What the hash covers: every column that records what happened, except

- the cost columns (``cost_usd``, ``cost_status``, ``price_source``, ``usage_details``):
  re-pricing changes them on purpose and is logged as an audit event instead; and
- the content (the request's messages, the response text; a feedback comment), which
  retention may drop before the metadata: the hash covers ``content_hash``, a digest of
  the content, and the digest stays when the content goes.

Values are written canonically, so that a row reads back to the same hash from SQLite and
PostgreSQL: times in UTC ISO form, JSON with sorted keys, numbers by value (``5.0`` and
``5``, or JSONB's ``1e20`` and ``100000000000000000000``, are one number; NaN and
infinities are null, as JSON columns store them). JSONB gives a float that is not exactly
its decimal (``1e23``) back as that decimal, so a whole float beyond 2**53 is written as
its shortest decimal (10**23), not its exact value (99999999999999991611392), as rows
stored before 2026-12-05 were hashed: verification tries those (:func:`plain`'s
``legacy``).

The chain is computed by the writer thread, off the app's call path.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from llmops.store.audit_log import GENESIS
from llmops.store.tables import AUDIT_CHAINS

__all__ = [
    "CALL_FIELDS",
    "EMPTY_CONTENT",
    "FEEDBACK_FIELDS",
    "TABLE_OF",
    "Chains",
    "Sealable",
    "canonical",
    "content_hash",
    "link",
    "new_chain_id",
    "row_hash",
    "sealable",
    "stored_digest",
]

TABLE_OF = {"call": "llm_calls", "feedback": "feedback"}
# the columns a row's hash covers, besides content_hash (see the module docstring)
CALL_FIELDS = (
    "id", "created_at", "source", "prompt_name", "prompt_version", "git_commit", "model",
    "provider", "status", "error_type", "error_message", "prompt_tokens", "completion_tokens",
    "cached_tokens", "cache_write_tokens", "reasoning_tokens", "tokens_estimated",
    "latency_ms", "ttft_ms", "user_id", "session_id", "tags", "metadata", "params",
    "api_key",
)  # fmt: skip
FEEDBACK_FIELDS = ("id", "call_id", "created_at", "name", "score", "user_id")
# the covered fields read as they are (metadata and params: their JSON, see covered)
_SCALAR_FIELDS = {
    kind: tuple(name for name in fields if name not in ("metadata", "params"))
    for kind, fields in (("call", CALL_FIELDS), ("feedback", FEEDBACK_FIELDS))
}


_BIG = 2**63  # orjson writes integers up to 64 bits; larger ones go as their digits
_EXACT = 2**53  # every integer up to this is a float as well


class _InJson:
    """A value of a JSON column (metadata, the request's parameters and messages):
    :func:`plain` writes what it holds as the database keeps it. (A plain class: a frozen
    dataclass took a microsecond to make, four times per row.)"""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def plain(value: Any, legacy: bool = False, json: bool = False) -> Any:
    """``value`` with every number, time and container in its canonical form (see the module
    docstring), ready for orjson. A whole float beyond 2**53 is the integer of its shortest
    decimal (``1e23``: 10**23, as JSONB gives it back); ``legacy``: its exact value
    (99999999999999991611392), as rows stored before 2026-12-05 were hashed.

    Inside an :class:`_InJson` (``json``), a value that is not JSON already (a datetime, an
    enum, a dataclass, a UUID, a str subclass) is written as the JSON orjson makes of it,
    which is what the database keeps and verify reads back: a naive datetime without an
    offset, an enum as its value."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is int:
        return value if -_BIG < value < _BIG else str(value)
    if kind is float:
        if not math.isfinite(value):  # stored as null by JSON columns and SQLite alike
            return None
        if not value.is_integer():
            return value
        if legacy or -_EXACT <= value <= _EXACT:
            return plain(int(value))
        return plain(_decimal(value))
    if kind is dict:
        return {str(k): plain(v, legacy, json) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [plain(v, legacy, json) for v in value]
    if kind is _InJson:
        return plain(value.value, legacy, True)
    if json:
        try:
            stored = orjson.loads(orjson.dumps(value))
        except TypeError:  # made plain on the app's call path already (records.storable)
            pass
        else:
            return plain(stored, legacy, json)
    if isinstance(value, datetime):
        moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return moment.isoformat()
    if isinstance(value, Mapping):
        return {str(k): plain(v, legacy, json) for k, v in value.items()}
    if isinstance(value, int | float):  # subclasses (bool is handled above)
        return plain(float(value) if isinstance(value, float) else int(value), legacy)
    if isinstance(value, list | tuple):
        return [plain(v, legacy, json) for v in value]
    return str(value)


def as_floats(value: Any) -> Any:
    """``value`` (a row as read from PostgreSQL) with each integer beyond 2**53 that is a
    float's shortest decimal as that float: JSONB gives ``1e23`` back as 10**23, where a
    row stored before 2026-12-05 was hashed with the float's exact value (``legacy``)."""
    if isinstance(value, Mapping):
        return {k: as_floats(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [as_floats(v) for v in value]
    if type(value) is not int or -_EXACT <= value <= _EXACT:
        return value
    try:
        nearest = float(value)
    except OverflowError:  # beyond any float
        return value
    return nearest if _decimal(nearest) == value else value


def _decimal(value: float) -> int:
    """A whole float as the integer its shortest decimal writes (``1e23``: 10**23)."""
    return int(Decimal(repr(value)))


def canonical(value: Any, legacy: bool = False) -> bytes:
    """``value`` as canonical JSON (sorted keys, numbers by value, UTC times)."""
    values = plain(value, legacy)
    try:
        return orjson.dumps(values, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:  # a lone surrogate, which orjson refuses: escape it
        text = json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return text.encode()


def _request(row: Mapping[str, Any]) -> Mapping[str, Any]:
    request = row.get("request")
    return request if isinstance(request, Mapping) else {}


def content_hash(kind: str, row: Mapping[str, Any], legacy: bool = False) -> str:
    """The digest of a row's content: a call's messages (or embedding inputs) and response
    text, a feedback row's comment (``legacy``: see :func:`plain`)."""
    if kind == "call":
        request = _request(row)
        content = {
            "messages": _InJson(request.get("messages")),
            "response": row.get("response_text"),
        }
        extra = {k: v for k, v in request.items() if k not in ("messages", "params")}
        if extra:  # anything else a request held is content too
            content["request"] = _InJson(extra)
    else:
        content = {"comment": row.get("comment")}
    return hashlib.sha256(canonical(content, legacy)).hexdigest()


EMPTY_CONTENT = {kind: content_hash(kind, {}) for kind in TABLE_OF}
"""The digest of no content: a call stored with content="none" (or with neither messages
nor a response), a feedback row without a comment. Such a row stores NULL as its
``content_hash``, which saves 64 bytes on each; its row hash covers this digest all the
same, so a row that gains content, or loses its digest, still breaks the chain."""


def stored_digest(kind: str, stored: str | None) -> str:
    """The content digest a row's stored ``content_hash`` stands for (NULL: no content)."""
    return EMPTY_CONTENT[kind] if stored is None else stored


def covered(kind: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a row its hash covers (the request's parameters are metadata)."""
    get = row.get
    values = {name: get(name) for name in _SCALAR_FIELDS[kind]}
    if kind == "call":  # tags are strings already (records.stored_tags)
        values["metadata"] = _InJson(get("metadata"))
        values["params"] = _InJson(_request(row).get("params"))
    return values


def row_hash(
    prev: str, kind: str, row: Mapping[str, Any], content: str, legacy: bool = False
) -> str:
    """SHA-256 of the previous row's hash, the covered fields and the content digest
    (``legacy``: see :func:`plain`)."""
    return _chained(prev, canonical({**covered(kind, row), "content_hash": content}, legacy))


@dataclass(frozen=True)
class Sealable:
    """What a row's hashes need besides its place in the chain (:func:`sealable`): the
    ``content_hash`` to store (None for no content, see :data:`EMPTY_CONTENT`) and the
    canonical text its ``row_hash`` digests after the previous row's hash."""

    content_hash: str | None
    text: bytes


def sealable(kind: str, row: Mapping[str, Any]) -> Sealable:
    """The costly part of a row's hashes (canonical JSON, the content digest), which does
    not depend on where in the chain the row goes: the writer works it out before it takes
    the database's write lock."""
    digest = content_hash(kind, row)
    text = canonical({**covered(kind, row), "content_hash": digest})
    return Sealable(None if digest == EMPTY_CONTENT[kind] else digest, text)


def _chained(prev: str, text: bytes) -> str:
    return hashlib.sha256(prev.encode() + b"\n" + text).hexdigest()


def link(
    prev: str, kind: str, row: Mapping[str, Any], ready: Sealable | None = None
) -> tuple[str | None, str]:
    """The ``content_hash`` to store for a row that follows ``prev`` in its chain (None
    for no content, see :data:`EMPTY_CONTENT`) and its ``row_hash``; ``ready``: the row's
    :func:`sealable`, if worked out already."""
    ready = ready or sealable(kind, row)
    return ready.content_hash, _chained(prev, ready.text)


def new_chain_id() -> str:
    """A new chain's id: 96 random bits as 16 URL-safe characters (a uuid4's 36 characters
    would cost 20 more bytes on every row of the chain and in its index)."""
    return secrets.token_urlsafe(12)


@dataclass
class _Chain:
    id: str
    seq: int = 0
    last_hash: str = GENESIS
    registered: bool = False


class Chains:
    """One writer's chains, one per table. :meth:`seal` runs in the transaction that stores
    a batch; :meth:`commit` keeps its result once that transaction has committed, and
    :meth:`rollback` forgets it when it did not (the rows will come again)."""

    def __init__(self) -> None:
        self.holder = f"{socket.gethostname()}:{os.getpid()}"[:200]
        self._chains = {kind: _Chain(new_chain_id()) for kind in TABLE_OF}
        self._pending: dict[str, _Chain] = {}

    def seal(
        self,
        connection: Connection,
        kind: str,
        rows: list[dict[str, Any]],
        ready: Mapping[int, Sealable] | None = None,
    ) -> None:
        """Give each row its place in the chain and its hashes (in place), and move the
        chain's head in ``audit_chains``, within ``connection``'s transaction. ``ready``:
        rows' :func:`sealable` worked out beforehand, by ``id(row)``."""
        if not rows:
            return
        base = self._pending.get(kind) or self._chains[kind]
        chain = _Chain(base.id, base.seq, base.last_hash, base.registered)
        for row in rows:
            known = ready.get(id(row)) if ready else None
            digest, chain.last_hash = link(chain.last_hash, kind, row, known)
            chain.seq += 1
            row.update(
                chain_id=chain.id, chain_seq=chain.seq, content_hash=digest,
                row_hash=chain.last_hash,
            )  # fmt: skip
        now = datetime.now(UTC)
        head = {"last_seq": chain.seq, "last_hash": chain.last_hash, "updated_at": now}
        if chain.registered:
            connection.execute(
                sa.update(AUDIT_CHAINS).where(AUDIT_CHAINS.c.id == chain.id).values(**head)
            )
        else:
            connection.execute(
                sa.insert(AUDIT_CHAINS),
                [
                    {"id": chain.id, "table_name": TABLE_OF[kind], "holder": self.holder,
                     "started_at": now, **head},
                ],
            )  # fmt: skip
            chain.registered = True
        self._pending[kind] = chain

    def commit(self) -> None:
        self._chains.update(self._pending)
        self._pending = {}

    def rollback(self) -> None:
        self._pending = {}

    def restart(self) -> None:
        """New chains (a forked child must not continue its parent's)."""
        self.__init__()  # type: ignore[misc]
