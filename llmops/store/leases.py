"""The lease ledger of blocking budgets (table ``budget_leases``).

A gateway process may spend a blocking budget only within a lease: a share of the window's
limit that the database granted to that process. Granting is one short transaction that
holds the budget's lock (``BEGIN IMMEDIATE`` on SQLite, an advisory transaction lock on
PostgreSQL), so two processes never share out the same money:

    granted to this process  <=  limit - ledger spend - what other live leases still hold

where the ledger spend is what :func:`llmops.store.queries.budgets.window_spend` reads (the
rollups plus the calls of the partial days: every stored call), and a lease still holds
``granted - committed``: its in-flight calls, its calls not stored yet, and what it has not
used. ``committed_usd`` grows in the very transaction that stores the lease's calls
(:func:`commit_costs`, run by the writer), so a stored call is counted exactly once: in the
ledger, and no longer in its lease. A lease that is not renewed within :data:`LEASE_TTL`
(its process died) stops counting.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from llmops.config import Budget
from llmops.store.engine import sqlite_write_lock
from llmops.store.queries.budgets import window_spend
from llmops.store.tables import BUDGET_LEASES

LEASE_TTL = timedelta(seconds=30)  # a lease its holder has not renewed for this long is void
_l = BUDGET_LEASES.c


@dataclass
class Lease:
    """One process's lease on one budget window (and, for an ``each`` budget, one key)."""

    id: str
    budget: Budget
    key: str  # the user, tag, ... of an ``each`` budget; '' otherwise
    window_start: datetime
    window_end: datetime
    holder: str
    granted_usd: float = 0.0  # what this process may admit in the window
    consumed_usd: float = 0.0  # admitted: settled costs plus in-flight estimates
    committed_usd: float = 0.0  # stored in llm_calls, as of the last grant (the row is exact)
    stored: bool = False  # whether the row exists


@dataclass(frozen=True)
class Grant:
    """The ledger as a grant saw it, under the budget's lock."""

    granted: bool
    spent_usd: float  # the ledger: every stored call of the scope in the window
    held_usd: float  # not stored yet: live leases' unstored calls and unused grants
    available_usd: float  # limit - spent - held - this lease's uncommitted part


def grant(engine: Engine, lease: Lease, need_usd: float, share: float, now: datetime) -> Grant:
    """Extend ``lease`` so that ``need_usd`` more can be admitted, plus ``share`` of what
    is left after it (fewer round trips), in one locked transaction; on refusal, give back
    what the lease holds unused. Updates ``lease`` in place."""
    budget = lease.budget
    with _exclusive(engine, lease) as connection:
        # One statement, one snapshot: on PostgreSQL (READ COMMITTED) a writer may commit
        # calls, and their costs in this lease, between two statements of this transaction.
        spent, held, committed = connection.execute(
            sa.select(
                window_spend(
                    engine, budget, lease.key or None, lease.window_start, lease.window_end
                ),
                _held_by_others(lease, now),
                sa.select(_l.committed_usd).where(_l.id == lease.id).scalar_subquery(),
            )
        ).one()
        spent, held = float(spent), float(held)
        lease.committed_usd = float(committed or 0.0)  # what the writer has stored of it
        uncommitted = max(0.0, lease.consumed_usd - lease.committed_usd)
        available = budget.limit_usd - spent - held - uncommitted
        ok = need_usd <= available and available > 0
        if ok:
            extra = max(0.0, share * (available - need_usd))
            lease.granted_usd = lease.consumed_usd + need_usd + extra
        else:
            lease.granted_usd = lease.consumed_usd
        _save(connection, lease, now)
    return Grant(ok, spent, held + uncommitted, available)


def commit_costs(connection: Connection, costs: dict[str, float]) -> None:
    """Count stored calls in their leases (lease id -> USD), on the connection of the
    transaction that stores them."""
    if costs:
        statement = (
            sa.update(BUDGET_LEASES)
            .where(_l.id == sa.bindparam("lease"))
            .values(committed_usd=_l.committed_usd + sa.bindparam("cost"))
        )
        connection.execute(statement, [{"lease": k, "cost": v} for k, v in costs.items()])


@dataclass(frozen=True)
class Figures:
    """What a stored lease was granted and had consumed when its holder looked."""

    lease_id: str
    granted_usd: float
    consumed_usd: float


def save(engine: Engine, leases: Sequence[Lease], now: datetime) -> None:
    """Store each lease as it is (inserted if new), and keep it alive."""
    if leases:
        with engine.begin() as connection:
            for lease in leases:
                _save(connection, lease, now)


def publish(engine: Engine, figures: Sequence[Figures], now: datetime) -> None:
    """Store the figures of stored leases, taken at ``now``, and keep them alive, in one
    statement. A lease written since (a grant extends it in its own transaction) keeps
    what that wrote: its holder may publish without holding its leases' lock."""
    if not figures:
        return
    statement = (
        sa.update(BUDGET_LEASES)
        .where(_l.id == sa.bindparam("lease"), _l.updated_at < sa.bindparam("at"))
        .values(
            granted_usd=sa.bindparam("granted"),
            consumed_usd=sa.bindparam("consumed"),
            updated_at=sa.bindparam("at"),
            expires_at=sa.bindparam("until"),
        )
    )
    until = now + LEASE_TTL
    rows = [
        {"lease": f.lease_id, "granted": f.granted_usd, "consumed": f.consumed_usd,
         "at": now, "until": until}
        for f in figures
    ]  # fmt: skip
    with engine.begin() as connection:
        connection.execute(statement, rows)


def prune(engine: Engine, before: datetime) -> int:
    """Delete the leases that expired before ``before`` (they no longer count)."""
    with engine.begin() as connection:
        result = connection.execute(sa.delete(BUDGET_LEASES).where(_l.expires_at < before))
        return result.rowcount or 0


def _outstanding() -> sa.ColumnElement[float]:
    return sa.case(
        (_l.granted_usd > _l.committed_usd, _l.granted_usd - _l.committed_usd), else_=0.0
    )


def _held_by_others(lease: Lease, now: datetime) -> sa.ScalarSelect[float]:
    """What the other live leases of the same budget window and key still hold."""
    return (
        sa.select(sa.func.coalesce(sa.func.sum(_outstanding()), 0.0))
        .where(
            _l.budget == lease.budget.name,
            _l.scope_value == lease.key,
            _l.window_start == lease.window_start,
            _l.expires_at > now,
            _l.id != lease.id,
        )
        .scalar_subquery()
    )


def _save(connection: Connection, lease: Lease, now: datetime) -> None:
    figures = {  # never committed_usd: only the writer's transactions change it
        "granted_usd": lease.granted_usd,
        "consumed_usd": lease.consumed_usd,
        "updated_at": now,
        "expires_at": now + LEASE_TTL,
    }
    if lease.stored:
        connection.execute(sa.update(BUDGET_LEASES).where(_l.id == lease.id).values(figures))
        return
    connection.execute(
        sa.insert(BUDGET_LEASES).values(
            id=lease.id,
            budget=lease.budget.name,
            scope_value=lease.key,
            window_start=lease.window_start,
            holder=lease.holder,
            committed_usd=0.0,
            created_at=now,
            **figures,
        )
    )
    lease.stored = True


@contextlib.contextmanager
def _exclusive(engine: Engine, lease: Lease) -> Iterator[Connection]:
    """A transaction that holds the lock of the lease's budget window: SQLite's write lock
    (``BEGIN IMMEDIATE``: one writer at a time), or a PostgreSQL advisory lock per budget,
    key and window."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as connection:
            sqlite_write_lock(connection)
            try:
                yield connection
            except BaseException:
                connection.rollback()
                raise
            connection.commit()
        return
    name = f"{lease.budget.name}\0{lease.key}\0{lease.window_start.isoformat()}"
    key = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)
    with engine.begin() as connection:
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
        yield connection
