"""``llmops db prune``: drop stored content sooner than call metadata, keep the rollups.

Two ages, both optional (``retention:`` in llmops.yaml gives defaults):

- **content older than N days**: each call's messages, prompt variables, tool calls and
  response text (its row of ``llm_call_content``) are deleted and feedback comments become
  NULL (GDPR data minimisation); on PostgreSQL the monthly partitions of
  ``llm_call_content`` that lie wholly before that moment are dropped instead. The call's
  metadata and parameters stay, and so does its ``content_hash``: the hash chain still
  verifies.
- **calls older than N days** (UTC days: whole days go): the calls and their feedback are
  deleted with their content (on PostgreSQL, the monthly partitions of ``llm_calls`` and
  ``llm_call_content`` that lie wholly before that day are dropped instead:
  :mod:`llmops.store.partitions`). Refused under the
  configured minimum (default 183 days, the EU AI Act's six months for automatic logs)
  unless forced. The daily rollups of those days are kept: the spend, call counts,
  feedback and latency/TTFT histograms of past days stay what they were.

Each prune is one transaction and one ``prune`` audit event (who, when, the command line,
how many rows, and for each hash chain the ranges it removed with the last removed row's
hash), so ``llmops audit verify`` accounts for it. ``dry_run`` counts without changing.

Locks (PostgreSQL): a prune locks ``llm_call_content``, ``llm_calls`` and ``feedback``
against writes first (no row may come between its counts and its deletes or drops,
uncounted), in the order writers take them (a batch's content, then
its calls; feedback in a transaction of its own), so that neither waits for the other in a
circle: writers wait, their calls in the journal. Readers go on until the end, when the
partitions are dropped: that needs the tables to itself, so it is asked for in short tries
(:data:`~llmops.store.partitions.LOCK_TRY_MS`, readers queue behind each try for that
long at most) until
:data:`LOCK_WAIT_S` have passed, and is held only for the drop and the commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from llmops.config import MIN_RETENTION_DAYS
from llmops.errors import ConfigError, DatabaseError
from llmops.store.audit_log import AuditEvent, record_event, utc
from llmops.store.engine import sqlite_write_lock
from llmops.store.partitions import (
    CONTENT_PARENT,
    LOCK_NOT_AVAILABLE,
    LOCK_ORDER,
    PARENTS,
    Partition,
    list_partitions,
    lock_exclusively,
)
from llmops.store.tables import CALL_CONTENT, CALLS, DAILY_ROLLUPS, FEEDBACK

__all__ = ["PruneReport", "check_ages", "prune"]

_BATCH = 1000
PRUNED_TABLES = (*LOCK_ORDER, FEEDBACK.name)
"""The tables a prune deletes from, in the order every llmops session locks them."""
LOCK_WAIT_S = 120.0
"""How long a prune tries for that lock (readers running long queries, an ``audit verify``)
before it gives up, changing nothing."""


@dataclass
class PruneReport:
    content_before: datetime | None
    calls_before: datetime | None
    dry_run: bool
    content_calls: int = 0  # calls whose content was dropped
    content_feedback: int = 0  # feedback comments dropped
    calls_removed: int = 0
    feedback_removed: int = 0
    removed: dict[str, list[list[Any]]] = field(default_factory=dict)  # chain -> ranges
    partitions_dropped: list[str] = field(default_factory=list)  # PostgreSQL's months
    event: AuditEvent | None = None

    @property
    def rows(self) -> int:
        return (
            self.content_calls + self.content_feedback + self.calls_removed + self.feedback_removed
        )


def check_ages(
    content_days: int | None, calls_days: int | None, minimum_days: int, *, force: bool
) -> None:
    """Refuse (a ConfigError) ages that prune nothing, or calls younger than the minimum
    without ``force``: before any database is touched."""
    if content_days is None and calls_days is None:
        raise ConfigError(
            "nothing to prune: give --content-older-than and/or --calls-older-than "
            "(or retention.content_days / calls_days in llmops.yaml)"
        )
    for name, days in (("content", content_days), ("calls", calls_days)):
        if days is not None and days < 1:
            raise ConfigError(f"{name} age must be at least 1 day, got {days}")
    if calls_days is not None and calls_days < minimum_days and not force:
        raise ConfigError(
            f"refusing to delete calls younger than {minimum_days} days (asked: {calls_days}):"
            " call logs are kept at least six months (EU AI Act Art. 19, 26(6)); "
            "--force to do it anyway"
        )


def prune(
    engine: Engine,
    *,
    content_days: int | None = None,
    calls_days: int | None = None,
    minimum_days: int = MIN_RETENTION_DAYS,
    force: bool = False,
    dry_run: bool = False,
    now: datetime | None = None,
) -> PruneReport:
    """Prune what is older than the ages given (see the module docstring)."""
    check_ages(content_days, calls_days, minimum_days, force=force)
    now = now or datetime.now(UTC)
    today = datetime.combine(now.astimezone(UTC).date(), time.min, UTC)
    report = PruneReport(
        content_before=now - timedelta(days=content_days) if content_days else None,
        calls_before=today - timedelta(days=calls_days) if calls_days else None,
        dry_run=dry_run,
    )
    with engine.begin() as connection:
        dropping: list[Partition] = []  # PostgreSQL's whole months, dropped last
        if report.calls_before is not None:
            dropping += _remove_calls(connection, report.calls_before, report, dry_run)
        if report.content_before is not None:
            dropping += _drop_content(connection, report.content_before, report, dry_run)
        if not dry_run:
            report.partitions_dropped = _drop_partitions(connection, dropping)
        if not dry_run and report.rows:
            report.event = record_event(
                connection,
                "prune",
                report.rows,
                {
                    "content_before": _iso(report.content_before),
                    "calls_before": _iso(report.calls_before),
                    "content_calls": report.content_calls,
                    "content_feedback": report.content_feedback,
                    "calls_removed": report.calls_removed,
                    "feedback_removed": report.feedback_removed,
                    "minimum_days": minimum_days,
                    "forced": bool(force and calls_days is not None and calls_days < minimum_days),
                    "removed": report.removed,
                    **(
                        {"partitions_dropped": report.partitions_dropped}
                        if report.partitions_dropped
                        else {}
                    ),
                },
                at=now,
            )
    return report


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _drop_content(
    connection: Connection, before: datetime, report: PruneReport, dry_run: bool
) -> list[Partition]:
    """Delete the content of each call older than ``before`` (its row of
    ``llm_call_content``: messages, variables, tool calls, response), and NULL feedback
    comments; the call's parameters stay (``llm_calls.params``: metadata). Returns the
    content's partitions of whole months before ``before``, for the caller to drop."""
    c, f = CALL_CONTENT.c, FEEDBACK.c
    if not dry_run:  # no content may come between the count and the drop, uncounted
        _lock_writes(connection)
    old = c.created_at < before
    comments = sa.and_(f.created_at < before, f.comment.is_not(None))
    if report.calls_before is not None:  # the content and feedback of the calls removed
        # go with them (their whole months' partitions at the end; all of them in a dry run)
        old = sa.and_(old, c.created_at >= report.calls_before)
        # NOT EXISTS, an anti-join: NOT IN scans the list of ids for each comment once it
        # does not fit in memory (hours at a few hundred thousand calls removed)
        removed = sa.exists().where(
            CALLS.c.id == f.call_id, CALLS.c.created_at < report.calls_before
        )
        comments = sa.and_(comments, ~removed)
    report.content_calls = int(
        connection.execute(sa.select(sa.func.count()).where(old)).scalar_one()
    )
    report.content_feedback = int(
        connection.execute(sa.select(sa.func.count()).where(comments)).scalar_one()
    )
    if dry_run:
        return []
    # PostgreSQL: the content of whole months before ``before`` goes at once (dropped by
    # the caller), the rest row by row
    whole = _whole_months(connection, before, (CONTENT_PARENT,))
    _delete_outside(connection, CALL_CONTENT, before, whole)
    connection.execute(sa.update(FEEDBACK).where(comments).values(comment=None))
    return whole


def _remove_calls(
    connection: Connection, before: datetime, report: PruneReport, dry_run: bool
) -> list[Partition]:
    """Delete the calls of the UTC days before ``before`` and their feedback, keeping the
    rollups of those days as they were. Returns the partitions of whole months before
    ``before`` (PostgreSQL), for the caller to drop."""
    c, f = CALLS.c, FEEDBACK.c
    # No row may be written between the count and listing below and the removal (an old
    # call replayed from a journal would go unlisted in the event, or feedback would
    # outlive its call): writers wait (their calls stay in the journal); readers do not.
    if not dry_run:
        _lock_writes(connection)
    old_calls = sa.select(c.id).where(c.created_at < before)
    calls = sa.select(c.chain_id, c.chain_seq, c.row_hash).where(c.created_at < before)
    feedback = sa.select(f.chain_id, f.chain_seq, f.row_hash).where(f.call_id.in_(old_calls))
    report.calls_removed, ranges = _ranges(connection, calls, c)
    report.feedback_removed, more = _ranges(connection, feedback, f)
    if dry_run:
        return []
    # PostgreSQL: the partitions of whole months before ``before`` go at once (dropped by
    # the caller: no trigger fires for them; their rows are counted and their chain places
    # listed above), the rest row by row
    whole = _whole_months(connection, before)
    if not (report.calls_removed or report.feedback_removed):
        return whole  # nothing to remove: those months' partitions are empty (created ahead)
    report.removed = {**ranges, **more}
    # the days of the calls removed now: the triggers take them out of these days' rollups
    # only (a call's feedback counts on its call's day), earlier days' calls are gone already
    first = connection.execute(sa.select(sa.func.min(c.created_at)).where(c.created_at < before))
    days = (utc(first.scalar_one()).date(), before.date())
    kept = {
        table.name: [dict(r) for r in connection.execute(
            sa.select(table).where(*_of_days(table, days))).mappings()]
        for table in DAILY_ROLLUPS
    }  # fmt: skip
    # Emptied first, so that the triggers have nothing of these days to take the calls out
    # of: a day some of whose calls were pruned before (a call of it stored late, by a
    # backfill or a journal replayed) counts calls that are gone, and its first and last
    # times would be looked up among no calls.
    for table in DAILY_ROLLUPS:
        connection.execute(sa.delete(table).where(*_of_days(table, days)))
    connection.execute(sa.delete(FEEDBACK).where(f.call_id.in_(old_calls)))
    _delete_outside(connection, CALLS, before, whole)
    _delete_outside(connection, CALL_CONTENT, before, whole)
    for table in DAILY_ROLLUPS:  # what the triggers left of these days goes; they come back
        connection.execute(sa.delete(table).where(*_of_days(table, days)))
        rows = kept[table.name]
        for start in range(0, len(rows), _BATCH):
            connection.execute(sa.insert(table), rows[start : start + _BATCH])
    return whole


def _of_days(table: sa.Table, days: tuple[date, date]) -> list[sa.ColumnElement[bool]]:
    return [table.c.day >= days[0], table.c.day < days[1]]


def _lock_writes(connection: Connection) -> None:
    """Writes to the calls, their content and feedback wait until the commit (readers do
    not): PostgreSQL, in the writers' order (see the module docstring), so that no batch
    between its content and its calls deadlocks with the prune; SQLite, its write lock,
    from the first read on (the driver would take it at the first DELETE, after the
    counts)."""
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text(f"LOCK TABLE {', '.join(PRUNED_TABLES)} IN EXCLUSIVE MODE"))
    else:
        sqlite_write_lock(connection)


def _whole_months(
    connection: Connection, before: datetime, parents: tuple[str, ...] = PARENTS
) -> list[Partition]:
    """The monthly partitions of ``parents`` (``llm_calls`` and ``llm_call_content``) that
    lie wholly before ``before`` (PostgreSQL; none elsewhere)."""
    cutoff = before.astimezone(UTC)
    limit = (cutoff.year, cutoff.month, cutoff.day)
    return [
        partition
        for parent in parents
        for partition in list_partitions(connection, parent)
        if partition.first is not None
        and partition.end is not None
        and (*partition.end, 1) <= limit
    ]


def _delete_outside(
    connection: Connection, table: sa.Table, before: datetime, whole: list[Partition]
) -> None:
    """Delete the rows of ``table`` older than ``before`` but those of the partitions in
    ``whole`` (dropped at the end: their rows are not deleted one by one), a statement per
    span between them, so that each reads its own partitions only."""
    months = sorted((p.first, p.end) for p in whole if p.parent == table.name and p.first and p.end)
    at: datetime | None = None
    spans: list[tuple[datetime | None, datetime]] = []
    for first, end in months:
        start = datetime(first[0], first[1], 1, tzinfo=UTC)
        if at is None or at < start:
            spans.append((at, start))
        at = datetime(end[0], end[1], 1, tzinfo=UTC)
    if at is None or at < before:
        spans.append((at, before))
    column = table.c.created_at
    for low, high in spans:
        since = [] if low is None else [column >= low]
        connection.execute(sa.delete(table).where(*since, column < high))


def _drop_partitions(connection: Connection, partitions: list[Partition]) -> list[str]:
    """Drop ``partitions`` (once each), their parents locked first in the writers' order
    (see the module docstring); return their names, the calls' before the content's."""
    names = list(dict.fromkeys(p.name for p in sorted(partitions, key=_parent_order)))
    if not names:
        return []
    parents = [parent for parent in LOCK_ORDER if any(p.parent == parent for p in partitions)]
    _lock_to_itself(connection, parents)
    for name in names:  # DROP TABLE of a partition detaches it first, in this transaction
        connection.execute(sa.text(f"DROP TABLE {name}"))  # quoted as needed
    return names


def _parent_order(partition: Partition) -> int:
    return PARENTS.index(partition.parent)


def _lock_to_itself(connection: Connection, tables: list[str]) -> None:
    """ACCESS EXCLUSIVE locks on ``tables``, in short tries for up to :data:`LOCK_WAIT_S`
    (:func:`~llmops.store.partitions.lock_exclusively`); a DatabaseError after that (the
    transaction is then rolled back)."""
    try:
        lock_exclusively(connection, tables, LOCK_WAIT_S)
    except DatabaseError as exc:
        if exc.sqlstate != LOCK_NOT_AVAILABLE:
            raise
        raise DatabaseError(
            f"database: could not have {', '.join(tables)} to drop old partitions in"
            f" {LOCK_WAIT_S:g} s (other sessions kept reading them: long queries, an"
            " audit verify); nothing was pruned, try again",
            original=exc.original,
            sqlstate=exc.sqlstate,
        ) from exc


def _ranges(
    connection: Connection, query: sa.Select[Any], columns: Any
) -> tuple[int, dict[str, list[list[Any]]]]:
    """How many rows ``query`` selects, and their chain places as ``chain -> [[first, last,
    hash of last], ...]`` (consecutive numbers merge), streamed in chain order: a prune of
    millions of rows never holds them all."""
    ordered = query.order_by(columns.chain_id, columns.chain_seq)
    ordered = ordered.execution_options(stream_results=True, yield_per=10_000)  # this query
    count = 0
    ranges: dict[str, list[list[Any]]] = {}
    for chain_id, seq, digest in connection.execute(ordered):
        count += 1
        if chain_id is None:
            continue  # stored before the chains began
        spans = ranges.setdefault(str(chain_id), [])
        if spans and spans[-1][1] == int(seq) - 1:
            spans[-1][1], spans[-1][2] = int(seq), str(digest)
        else:
            spans.append([int(seq), int(seq), str(digest)])
    return count, ranges
