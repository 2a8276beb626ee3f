"""Recorded calls read back one by one: for turning production calls into eval cases
(``llmops eval cases from-calls``) and for scoring them (``llmops score``).

Every filter is in SQL, on indexed columns first (the time range and the prompt), and
rows are streamed (a server-side cursor on PostgreSQL), never loaded all at once: the
calls table may hold millions of rows. Callers first stream the small part of each row
that picking needs (:func:`stream_candidates`), then read the whole rows of the calls they
picked, a batch at a time (:func:`read_calls`).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from llmops.store.queries.filters import Filters
from llmops.store.records import whole_request
from llmops.store.tables import CALL_CONTENT, CALLS, CALLS_WITH_CONTENT, FEEDBACK

_c = CALLS.c
_f = FEEDBACK.c

#: The comparisons a feedback condition may use, as written on the command line.
FEEDBACK_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
    "=": operator.eq,
}

READ_BATCH = 500
"""Calls read per query by :func:`read_calls` (ids in one ``IN`` list)."""


@dataclass(frozen=True)
class FeedbackCondition:
    """Only calls with feedback ``name`` whose score compares so with ``score``."""

    name: str
    op: str  # one of FEEDBACK_OPERATORS
    score: float

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.score:g}"


@dataclass(frozen=True)
class CallSelection:
    """Which recorded calls to read: the equality filters and time range of
    :class:`Filters` plus tags (any of them), a minimum cost, feedback conditions (all of
    them), and feedback names a call must not have every one of yet (``unscored``)."""

    filters: Filters
    tags: tuple[str, ...] = ()
    min_cost: float | None = None
    feedback: tuple[FeedbackCondition, ...] = ()
    unscored: tuple[str, ...] = ()

    def where(self, engine: Engine) -> list[sa.ColumnElement[bool]]:
        conditions = list(self.filters.where())
        if self.tags:
            conditions.append(_has_tag(engine, self.tags))
        if self.min_cost is not None:
            conditions.append(_c.cost_usd >= self.min_cost)
        for condition in self.feedback:
            compare = FEEDBACK_OPERATORS[condition.op]
            conditions.append(
                sa.exists().where(
                    _f.call_id == _c.id,
                    _f.name == condition.name,
                    compare(_f.score, condition.score),
                )
            )
        if self.unscored:
            conditions.append(
                sa.or_(
                    *(~sa.exists().where(_f.call_id == _c.id, _f.name == n) for n in self.unscored)
                )
            )
        return conditions


def _has_tag(engine: Engine, tags: Sequence[str]) -> sa.ColumnElement[bool]:
    """The call's ``tags`` (a JSON list) holds one of ``tags``."""
    if engine.dialect.name == "postgresql":
        items = sa.func.jsonb_array_elements_text(_c.tags).table_valued("value")
    else:
        items = sa.func.json_each(_c.tags).table_valued("value")
    return sa.exists(sa.select(sa.literal(1)).select_from(items).where(items.c.value.in_(tags)))


@dataclass(frozen=True)
class Candidate:
    """What picking a call needs: its id, time, and the prompt variables it stored (None
    when none were stored: content mode ``none``, raw messages, or an older row)."""

    id: str
    created_at: datetime
    variables: Any


def count_calls(engine: Engine, selection: CallSelection) -> int:
    """How many calls the selection matches."""
    query = sa.select(sa.func.count()).select_from(CALLS).where(*selection.where(engine))
    with engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


def stream_candidates(
    engine: Engine, selection: CallSelection, *, variables: bool = True
) -> Iterator[Candidate]:
    """The matching calls, newest first (ties by id), streamed. With ``variables``, only
    the ``variables`` part of each stored request is read, not its messages."""
    stored = CALL_CONTENT.c.request["variables"] if variables else sa.null()
    query = (
        sa.select(_c.id, _c.created_at, stored.label("variables"))
        .select_from(CALLS_WITH_CONTENT if variables else CALLS)
        .where(*selection.where(engine))
        .order_by(_c.created_at.desc(), _c.id)
        .execution_options(stream_results=True, yield_per=5000)  # this query only
    )
    with engine.connect() as connection:
        for row in connection.execute(query):
            yield Candidate(str(row.id), row.created_at, row.variables)


@dataclass(frozen=True)
class FeedbackItem:
    name: str
    score: float
    comment: str | None
    created_at: datetime


@dataclass(frozen=True)
class StoredCall:
    """One recorded call with what evals and scoring read from it."""

    id: str
    created_at: datetime
    source: str
    model: str
    prompt_name: str | None
    prompt_version: str | None
    status: str
    cost_usd: float | None
    latency_ms: float | None
    user_id: str | None
    tags: list[str] | None
    request: dict[str, Any] | None
    response_text: str | None
    feedback: list[FeedbackItem] = field(default_factory=list)

    @property
    def variables(self) -> dict[str, Any] | None:
        stored = (self.request or {}).get("variables")
        return stored if isinstance(stored, dict) else None

    @property
    def messages(self) -> list[dict[str, Any]] | None:
        stored = (self.request or {}).get("messages")
        return stored if isinstance(stored, list) else None

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        stored = (self.request or {}).get("tool_calls")
        return stored if isinstance(stored, list) else []


_STORED_COLUMNS = (
    _c.id, _c.created_at, _c.source, _c.model, _c.prompt_name, _c.prompt_version, _c.status,
    _c.cost_usd, _c.latency_ms, _c.user_id, _c.tags, _c.params, CALL_CONTENT.c.request,
    CALL_CONTENT.c.response_text,
)  # fmt: skip


def read_calls(engine: Engine, ids: Iterable[str]) -> Iterator[StoredCall]:
    """The whole rows of these calls with their feedback (oldest first), in the order of
    ``ids``, read :data:`READ_BATCH` at a time. Ids that are not stored are left out."""
    batch: list[str] = []
    for call_id in ids:
        batch.append(call_id)
        if len(batch) >= READ_BATCH:
            yield from _read_batch(engine, batch)
            batch = []
    if batch:
        yield from _read_batch(engine, batch)


def _read_batch(engine: Engine, ids: list[str]) -> list[StoredCall]:
    feedback: dict[str, list[FeedbackItem]] = {}
    with engine.connect() as connection:
        rows = {
            str(row.id): row
            for row in connection.execute(
                sa.select(*_STORED_COLUMNS).select_from(CALLS_WITH_CONTENT).where(_c.id.in_(ids))
            )
        }
        query = (
            sa.select(_f.call_id, _f.name, _f.score, _f.comment, _f.created_at)
            .where(_f.call_id.in_(ids))
            .order_by(_f.created_at, _f.id)
        )
        for item in connection.execute(query):
            feedback.setdefault(str(item.call_id), []).append(
                FeedbackItem(str(item.name), float(item.score), item.comment, item.created_at)
            )
    found = []
    for call_id in ids:
        row = rows.get(call_id)
        if row is None:
            continue
        request = whole_request(row.request, row.params)
        request = request if isinstance(request, dict) else None
        found.append(
            StoredCall(
                id=call_id,
                created_at=row.created_at,
                source=row.source,
                model=row.model,
                prompt_name=row.prompt_name,
                prompt_version=row.prompt_version,
                status=row.status,
                cost_usd=row.cost_usd,
                latency_ms=row.latency_ms,
                user_id=row.user_id,
                tags=list(row.tags) if isinstance(row.tags, list) else None,
                request=request,
                response_text=row.response_text,
                feedback=feedback.get(call_id, []),
            )
        )
    return found


def scored(engine: Engine, ids: Sequence[str], names: Sequence[str]) -> set[tuple[str, str]]:
    """Which (call id, feedback name) pairs already exist among these calls and names."""
    found: set[tuple[str, str]] = set()
    if not ids or not names:
        return found
    with engine.connect() as connection:
        for start in range(0, len(ids), READ_BATCH):
            query = (
                sa.select(_f.call_id, _f.name)
                .where(_f.call_id.in_(ids[start : start + READ_BATCH]), _f.name.in_(names))
                .distinct()
            )
            found.update((str(r.call_id), str(r.name)) for r in connection.execute(query))
    return found
