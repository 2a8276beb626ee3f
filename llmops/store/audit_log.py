"""The audit events: an append-only log of the legitimate changes to stored calls.

Re-pricing (``llmops costs recompute``) and retention pruning (``llmops db prune``) change or
remove stored rows on purpose. Each writes one event here, in the same transaction as its
change: who (``user@host``), when, what kind, how many rows, the command line (credentials
removed) and the details that let ``llmops audit verify`` account for the change instead of
flagging it. Migration 0009 writes the first event, ``chain_start``, with the number of rows
stored before the hash chain began.

Events are chained too: ``event_hash`` = SHA-256 of the previous event's hash and this
event's canonical JSON, so that an edited or deleted event is detected like an edited call.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import shlex
import socket
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from llmops.credentials import scrub, scrub_url
from llmops.store.tables import AUDIT_EVENTS

__all__ = ["GENESIS", "AuditEvent", "event_hash", "list_events", "record_event"]

GENESIS = "0" * 64  # the "previous hash" of the first event and of every chain's first row
EVENT_KINDS = ("chain_start", "recompute", "prune")


@dataclass(frozen=True)
class AuditEvent:
    seq: int
    id: str
    at: datetime
    kind: str
    actor: str
    command: str
    rows: int
    details: dict[str, Any] | None
    prev_hash: str
    event_hash: str

    def canonical(self) -> dict[str, Any]:
        """What the event's hash covers."""
        return {
            "seq": self.seq,
            "id": self.id,
            "at": utc(self.at).isoformat(),
            "kind": self.kind,
            "actor": self.actor,
            "command": self.command,
            "rows": self.rows,
            "details": self.details,
        }

    @property
    def intact(self) -> bool:
        """Whether the event's hash still matches what it says."""
        return event_hash(self.prev_hash, self.canonical()) == self.event_hash


def utc(moment: datetime) -> datetime:
    """An aware UTC time (SQLite gives back naive times that were stored as UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def event_hash(prev: str, event: dict[str, Any]) -> str:
    """SHA-256 of the previous hash and the event's canonical JSON (migration 0009 keeps a
    frozen copy of this function)."""
    text = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{prev}\n{text}".encode()).hexdigest()


def current_actor() -> str:
    """``user@host`` of this process."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name in some containers
        user = "?"
    return f"{user}@{socket.gethostname()}"[:200]


def current_command(argv: Sequence[str] | None = None) -> str:
    """The command line, with credentials in URLs (``--database-url``) masked."""
    words = list(sys.argv if argv is None else argv)
    if words:
        words[0] = words[0].rsplit("/", 1)[-1]
    return scrub_url(shlex.join(words))[:4000]


def record_event(
    connection: Connection,
    kind: str,
    rows: int,
    details: dict[str, Any] | None = None,
    *,
    at: datetime | None = None,
    command: str | None = None,
) -> AuditEvent:
    """Append one event in the caller's transaction (the change it describes commits or
    rolls back with it). Two writers at once: one of them fails on the primary key and
    its transaction rolls back, change included."""
    if kind not in EVENT_KINDS:
        raise ValueError(f"unknown audit event kind {kind!r}")
    e = AUDIT_EVENTS.c
    last = connection.execute(
        sa.select(e.seq, e.event_hash).order_by(e.seq.desc()).limit(1)
    ).first()
    seq, prev = (int(last[0]) + 1, str(last[1])) if last else (1, GENESIS)
    event = AuditEvent(
        seq=seq,
        id=str(uuid.uuid4()),
        at=utc(at or datetime.now(UTC)),
        kind=kind,
        actor=current_actor(),
        command=current_command() if command is None else scrub_url(command),
        rows=int(rows),
        details=json.loads(json.dumps(scrub(details), default=str)) if details else None,
        prev_hash=prev,
        event_hash="",
    )
    digest = event_hash(prev, event.canonical())
    values = {**event.canonical(), "at": event.at, "prev_hash": prev, "event_hash": digest}
    connection.execute(sa.insert(AUDIT_EVENTS), [values])
    return AuditEvent(**{**event.__dict__, "event_hash": digest})


def list_events(
    engine: Engine | Connection,
    since: datetime | None = None,
    until: datetime | None = None,
    kinds: Sequence[str] | None = None,
) -> list[AuditEvent]:
    """The events of ``[since, until)`` (all of them by default), oldest first; read on
    ``engine``, or in a transaction: a connection."""
    e = AUDIT_EVENTS.c
    query = sa.select(AUDIT_EVENTS).order_by(e.seq)
    if since is not None:
        query = query.where(e.at >= since)
    if until is not None:
        query = query.where(e.at < until)
    if kinds:
        query = query.where(e.kind.in_(list(kinds)))
    if isinstance(engine, Connection):
        rows = engine.execute(query).mappings().all()
    else:
        with engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
    return [
        AuditEvent(
            seq=int(r["seq"]),
            id=r["id"],
            at=utc(r["at"]),
            kind=r["kind"],
            actor=r["actor"],
            command=r["command"],
            rows=int(r["rows"]),
            details=r["details"],
            prev_hash=r["prev_hash"],
            event_hash=r["event_hash"],
        )
        for r in rows
    ]
