"""Monthly partitions of ``llm_calls`` and ``llm_call_content`` on PostgreSQL (migrations
0012 and 0016).

On PostgreSQL ``llm_calls`` is partitioned BY RANGE (created_at): one partition per UTC
month, named ``llm_calls_YYYY_MM``, and a DEFAULT partition (``llm_calls_default``) that
takes any row no month partition covers, so that an insert never fails for lack of a
partition. Queries over a time range read only the partitions of its months, and retention
drops whole months (:mod:`llmops.audit.retention`) instead of deleting their rows.

:func:`ensure_partitions` creates the partitions of the current month and the next
``months_ahead`` ones before rows arrive: the writer runs it when it starts and once a day,
``llmops db upgrade`` and ``llmops db partitions`` run it too. It is cheap when nothing is
missing (one catalog query), idempotent, and safe when several processes run it at once
(a transaction-scoped advisory lock, then ``IF NOT EXISTS``). When rows of a month that
now gets its own partition sit in the DEFAULT partition (a clock far ahead, a month
created late), they are moved into the new partition in the same transaction (PostgreSQL
refuses to create a partition whose rows are in the DEFAULT one). The rows move between
partitions directly, so the rollup and histogram triggers of ``llm_calls`` (statement
triggers on the parent) do not fire: the rows do not change, the rollups must not either.

``llm_call_content`` (migration 0016) has the same months, named
``llm_call_content_YYYY_MM`` and ``llm_call_content_default``: the functions that create
and drop partitions handle both tables together (llm_calls first, in that order always).

On SQLite, and on a PostgreSQL ``llm_calls`` that is not partitioned (an older schema),
everything here does nothing.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from llmops.errors import DatabaseError

__all__ = [
    "CONTENT_PARENT",
    "DEFAULT_PARTITION",
    "PARENT",
    "PARENTS",
    "Partition",
    "ensure_partitions",
    "list_partitions",
    "month_bounds",
    "month_of",
    "partition_name",
]

log = logging.getLogger("llmops.partitions")

PARENT = "llm_calls"
DEFAULT_PARTITION = "llm_calls_default"
CONTENT_PARENT = "llm_call_content"  # migration 0016
PARENTS = (PARENT, CONTENT_PARENT)  # partitioned alike
LOCK_ORDER = (CONTENT_PARENT, PARENT)
"""The order every llmops session locks the two: a writer's batch inserts its content, then
its calls (one transaction); taken the other way round, a prune or a partition's creation
and a writer each held one and waited for the other (PostgreSQL: "deadlock detected")."""
_LOCK_KEY = 727275  # pg_advisory_xact_lock key that serialises partition changes
Month = tuple[int, int]  # (year, month): years 1 to 9999, as Python's datetime
# a month-aligned bound as pg_get_expr writes it with TimeZone UTC (year 10000 included)
_BOUND = re.compile(r"'(\d{4,5})-(\d\d)-01 00:00:00\+00'")
_RANGE = re.compile(r"FOR VALUES FROM \((.+)\) TO \((.+)\)")


@dataclass(frozen=True)
class Partition:
    """One partition of ``llm_calls``: a month (``first`` is its month, ``end`` the month
    after it), the DEFAULT partition, or one with other bounds (made by hand)."""

    name: str  # as SQL takes it (quoted when needed)
    bound: str  # as PostgreSQL writes it: FOR VALUES FROM (...) TO (...), or DEFAULT
    first: Month | None = None  # the first month it covers, when its bounds are month starts
    end: Month | None = None  # the month after the last one it covers (may be year 10000)
    parent: str = PARENT  # the table it is a partition of

    @property
    def default(self) -> bool:
        return self.bound == "DEFAULT"

    def months(self) -> Iterable[Month]:
        if self.first is None or self.end is None:
            return
        month = self.first
        while month < self.end:
            yield month
            month = next_month(month)


def next_month(month: Month) -> Month:
    year, number = month
    return (year + 1, 1) if number == 12 else (year, number + 1)


def month_of(moment: datetime) -> Month:
    """The UTC month of ``moment`` (a naive time counts as UTC)."""
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return (moment.year, moment.month)


def partition_name(month: Month, parent: str = PARENT) -> str:
    return f"{parent}_{month[0]:04d}_{month[1]:02d}"


def month_bounds(month: Month) -> tuple[str, str]:
    """The partition bounds of ``month`` as timestamptz literals (the upper one may be in
    year 10000, which PostgreSQL takes and Python's datetime does not)."""
    end = next_month(month)
    return (
        f"{month[0]:04d}-{month[1]:02d}-01 00:00:00+00",
        f"{end[0]:04d}-{end[1]:02d}-01 00:00:00+00",
    )


def is_partitioned(connection: Connection, parent: str = PARENT) -> bool:
    """Whether ``parent`` is a partitioned table (``llm_calls`` on PostgreSQL at schema 0012
    or later, ``llm_call_content`` at 0016 or later)."""
    if connection.dialect.name != "postgresql":
        return False
    kind = connection.execute(
        sa.text("SELECT c.relkind FROM pg_class c WHERE c.oid = to_regclass(:parent)"),
        {"parent": parent},
    ).scalar()
    return kind == "p"


def list_partitions(connection: Connection, parent: str = PARENT) -> list[Partition]:
    """The partitions of ``parent``, by name; [] when it is not partitioned."""
    if not is_partitioned(connection, parent):
        return []
    # the bounds are written in the session's time zone: read them in UTC
    connection.execute(sa.text("SELECT set_config('TimeZone', 'UTC', true)"))
    rows = connection.execute(
        sa.text(
            # the name as SQL takes it: quoted when it must be, with its schema when it is
            # not on the search path
            "SELECT c.oid::regclass::text, pg_get_expr(c.relpartbound, c.oid) "
            "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(:parent) ORDER BY c.relname"
        ),
        {"parent": parent},
    ).all()
    return [_partition(str(name), str(bound), parent) for name, bound in rows]


def _partition(name: str, bound: str, parent: str) -> Partition:
    found = _RANGE.fullmatch(bound)
    if not found:
        return Partition(name, bound, parent=parent)
    low, high = _BOUND.fullmatch(found[1]), _BOUND.fullmatch(found[2])
    if not (low and high):  # MINVALUE, MAXVALUE or bounds within a month
        return Partition(name, bound, parent=parent)
    first, end = (int(low[1]), int(low[2])), (int(high[1]), int(high[2]))
    return Partition(name, bound, first, end, parent)


def wanted_months(now: datetime, months_ahead: int) -> list[Month]:
    """The current UTC month of ``now`` and the ``months_ahead`` after it."""
    months = [month_of(now)]
    for _ in range(max(0, months_ahead)):
        if months[-1] == (9999, 12):
            break
        months.append(next_month(months[-1]))
    return months


def ensure_partitions(
    engine: Engine | Connection,
    now: datetime | None = None,
    *,
    months_ahead: int = 2,
    months: Iterable[Month] = (),
    lock_timeout_ms: int | None = 5000,
) -> list[str]:
    """Create the partitions of the current UTC month, the ``months_ahead`` after it and
    ``months``, and the DEFAULT partition, when they are missing; return the names created.

    Given an engine, it works in a transaction of its own; given a connection, in that
    connection's transaction (the caller commits). ``lock_timeout_ms`` bounds the wait for
    the table's lock (a long query holding it must not stall every insert queued behind
    the partition's creation); the DatabaseError it raises then means "try again later".
    """
    wanted = set(wanted_months(now or datetime.now(UTC), months_ahead))
    wanted.update(m for m in months if 1 <= m[0] <= 9999 and 1 <= m[1] <= 12)
    if isinstance(engine, Connection):
        return _ensure(engine, wanted, lock_timeout_ms)
    with engine.connect() as connection:
        if not _missing(wanted, connection):
            connection.rollback()
            return []
        connection.rollback()
        with connection.begin():
            return _ensure(connection, wanted, lock_timeout_ms)


def _missing(
    wanted: set[Month], connection: Connection, parents: tuple[str, ...] = PARENTS
) -> bool:
    """Whether a partition of ``wanted`` or a DEFAULT partition of ``parents`` is missing."""
    for parent in parents:
        if not is_partitioned(connection, parent):
            continue
        partitions = list_partitions(connection, parent)
        covered = {m for p in partitions for m in p.months()}
        if wanted - covered or not any(p.default for p in partitions):
            return True
    return False


LOCK_TRY_MS = 200
"""How long one try for a table's exclusive lock waits (:func:`lock_exclusively`)."""
LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE for a lock timeout


def lock_exclusively(connection: Connection, tables: list[str], wait_s: float | None) -> None:
    """ACCESS EXCLUSIVE locks on ``tables`` (PostgreSQL), asked for in one statement, in
    tries of :data:`LOCK_TRY_MS`, each in a savepoint, for up to ``wait_s`` seconds (None:
    until it gets them); the lock timeout's DatabaseError after that.

    A session waiting for such a lock makes every later query of the table queue behind
    it: a try holds them up that long at most. And a try that fails gives back what it
    got, so that a reader holding one of the tables and waiting for the other goes on
    (a wait of a second or more would end in PostgreSQL's "deadlock detected")."""
    give_up = None if wait_s is None else time.monotonic() + wait_s
    lock = sa.text(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE")
    setting = sa.text("SELECT set_config('lock_timeout', :value, true)")
    before = connection.execute(sa.text("SELECT current_setting('lock_timeout')")).scalar()
    while True:
        left = None if give_up is None else give_up - time.monotonic()
        try_ms = LOCK_TRY_MS if left is None else max(1, min(LOCK_TRY_MS, int(left * 1000)))
        try:
            with connection.begin_nested():
                connection.execute(setting, {"value": f"{try_ms}ms"})
                connection.execute(lock)
                connection.execute(setting, {"value": before})
            return
        except DatabaseError as exc:
            if exc.sqlstate != LOCK_NOT_AVAILABLE:
                raise
            if give_up is not None and time.monotonic() >= give_up:
                raise
        pause = 1.0 if give_up is None else min(1.0, give_up - time.monotonic())
        time.sleep(max(0.0, pause))  # the queries queued behind the try go


def _ensure(connection: Connection, wanted: set[Month], lock_timeout_ms: int | None) -> list[str]:
    parents = [parent for parent in LOCK_ORDER if is_partitioned(connection, parent)]
    if not parents:
        return []
    if lock_timeout_ms is not None:
        connection.execute(
            sa.text("SELECT set_config('lock_timeout', :ms, true)"),
            {"ms": f"{int(lock_timeout_ms)}ms"},
        )
    connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    # again: another process may have made them meanwhile
    changing = [parent for parent in parents if _missing(wanted, connection, (parent,))]
    if not changing:
        return []
    # The lock CREATE ... PARTITION OF takes anyway, taken first for both tables: no row
    # may reach a DEFAULT partition between the move of its rows and the new partition.
    wait = None if lock_timeout_ms is None else lock_timeout_ms / 1000
    lock_exclusively(connection, changing, wait)
    created = {parent: _ensure_parent(connection, parent, wanted) for parent in changing}
    return [name for parent in PARENTS for name in created.get(parent, [])]


def _ensure_parent(connection: Connection, parent: str, wanted: set[Month]) -> list[str]:
    partitions = list_partitions(connection, parent)
    covered = {m for p in partitions for m in p.months()}
    default = next((p.name for p in partitions if p.default), None)
    created: list[str] = []
    if default is None:
        default = f"{parent}_default"
        connection.execute(
            sa.text(f'CREATE TABLE IF NOT EXISTS "{default}" PARTITION OF {parent} DEFAULT')
        )
        created.append(default)
    for month in sorted(wanted - covered):
        name = partition_name(month, parent)
        _create(connection, parent, month, default)
        created.append(name)
        log.info("llmops: created partition %s", name)
    return created


def _create(connection: Connection, parent: str, month: Month, default: str) -> None:
    """Create the partition of ``month``, moving its rows out of the DEFAULT partition."""
    name = partition_name(month, parent)
    low, high = month_bounds(month)
    in_month = "created_at >= CAST(:low AS timestamptz) AND created_at < CAST(:high AS timestamptz)"
    bounds = {"low": low, "high": high}
    waiting = connection.execute(
        sa.text(f"SELECT EXISTS (SELECT 1 FROM {default} WHERE {in_month})"),  # noqa: S608
        bounds,
    ).scalar()
    if waiting:
        # Straight from partition to partition: the parent's statement triggers (rollups,
        # histograms) do not fire, as the rows themselves do not change.
        connection.execute(
            sa.text(f"CREATE TEMPORARY TABLE llmops_moving (LIKE {parent}) ON COMMIT DROP")
        )
        connection.execute(
            sa.text(
                f"WITH moved AS (DELETE FROM {default} WHERE {in_month} RETURNING *) "  # noqa: S608
                "INSERT INTO llmops_moving SELECT * FROM moved"
            ),
            bounds,
        )
    connection.execute(
        sa.text(
            f'CREATE TABLE IF NOT EXISTS "{name}" PARTITION OF {parent} '
            f"FOR VALUES FROM ('{low}') TO ('{high}')"
        )
    )
    if waiting:
        moved = connection.execute(
            sa.text(f'INSERT INTO "{name}" SELECT * FROM llmops_moving')  # noqa: S608
        ).rowcount
        connection.execute(sa.text("DROP TABLE llmops_moving"))
        log.warning(
            "llmops: moved %d rows of %04d-%02d from %s to the new partition %s",
            moved, month[0], month[1], default, name,
        )  # fmt: skip
