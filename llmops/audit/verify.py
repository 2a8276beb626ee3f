"""``llmops audit verify``: walk the hash chains and report the first broken links.

Every stored call and feedback row carries its place in its writer's chain and its hash
(:mod:`llmops.store.chain`). Verification reads the rows of each chain in order, in one
streamed pass (linear in the rows), and recomputes:

- the content digest (a row whose content was changed), unless the content was dropped
  by a retention prune that covers the row;
- the row's hash from the previous row's (a row whose recorded fields were changed);
- the sequence: a missing number is a deleted row, unless a prune event recorded it;
- the chain's head in ``audit_chains``: rows cut from the end;
- rows without a chain: only those stored before migration 0009 may lack one (its
  ``chain_start`` event counted them); one stored later was inserted around llmops;
- the audit events' own chain.

Re-pricing changes costs, which the hashes do not cover (see the chain module); it and
pruning are listed from ``audit_events`` as accounted-for changes.

Limits, stated in the README: an attacker who can rewrite the database can also recompute
every hash; the heads printed by ``verify`` can be kept elsewhere (a commit, a ticket) to
catch that. Rows stored before the chain began are counted, not protected.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from llmops.audit.retention import PRUNED_TABLES
from llmops.store.audit_log import GENESIS, AuditEvent, list_events, utc
from llmops.store.chain import TABLE_OF, as_floats, content_hash, row_hash, stored_digest
from llmops.store.engine import snapshot
from llmops.store.queries.filters import midnight
from llmops.store.queries.rollups import rollup_days, rollup_disagreements
from llmops.store.records import as_recorded, recorded_calls
from llmops.store.tables import AUDIT_CHAINS, CALL_DAYS, CALLS, FEEDBACK

__all__ = ["Break", "ChainHead", "Verification", "verify"]

MAX_BREAKS = 100  # reported in full; the count goes on
CONTENT_CHANGED = "content changed after it was stored"
ROW_CHANGED = "row changed after it was stored"
_TABLES = {"call": CALLS, "feedback": FEEDBACK}
_CLOCK_SLACK = timedelta(minutes=1)  # clocks of app hosts and the migrating host differ


@dataclass(frozen=True)
class Break:
    """One broken link: where, and what it means."""

    table: str  # llm_calls, feedback or audit_events
    chain_id: str | None
    seq: int | None
    row_id: str | None
    created_at: datetime | None
    problem: str


EVENTS = "audit_events"  # the events' chain, as a head


@dataclass(frozen=True)
class ChainHead:
    """A chain's head as verified: keep these elsewhere to catch a rewritten database."""

    chain_id: str
    table: str
    holder: str
    started_at: datetime
    last_seq: int
    last_hash: str


@dataclass
class Verification:
    since: datetime | None
    until: datetime | None
    checked: dict[str, int] = field(default_factory=dict)  # table -> rows checked
    chains: int = 0
    unchained: dict[str, int] = field(default_factory=dict)  # table -> rows without a chain
    expected_unchained: dict[str, int] = field(default_factory=dict)  # stored before 0009
    breaks: list[Break] = field(default_factory=list)
    broken: int = 0  # every broken link found (breaks keeps the first MAX_BREAKS)
    rollup_days: int = 0  # days whose daily rollups were checked against their rows
    rollup_days_pruned: int = 0  # days before a prune's cutoff: their rollups keep more
    events: list[AuditEvent] = field(default_factory=list)  # accounted-for changes
    heads: list[ChainHead] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.broken == 0

    def add(self, item: Break) -> None:
        self.broken += 1
        if len(self.breaks) < MAX_BREAKS:
            self.breaks.append(item)

    def broke(self, table: str, chain_id: str | None, seq: int | None, problem: str) -> None:
        """A break of a chain (or of the events) that no stored row shows."""
        self.add(Break(table, chain_id, seq, None, None, problem))


@dataclass(frozen=True)
class _Pruned:
    """What prune events removed: content before a time; rows by chain and seq range."""

    content_before: datetime | None
    ranges: dict[str, list[tuple[int, int, str]]]  # chain -> (first, last, hash of last)

    def covers_content(self, created_at: datetime | None) -> bool:
        return (
            self.content_before is not None
            and created_at is not None
            and utc(created_at) < self.content_before
        )

    def gap(self, chain_id: str, first: int, last: int) -> str | None:
        """The hash of row ``last`` when a prune removed rows ``first..last``, else None."""
        for low, high, digest in self.ranges.get(chain_id, []):
            if low <= first and last == high:
                return digest
            if low <= first and last < high:
                return None  # inside a range: the caller asks for the exact end
        return None

    def ends_at(self, chain_id: str, last: int) -> str | None:
        """The hash of row ``last`` when a prune removed it last of a range."""
        return next((d for _, high, d in self.ranges.get(chain_id, []) if high == last), None)


def _pruned(events: list[AuditEvent]) -> _Pruned:
    content_before: datetime | None = None
    ranges: dict[str, list[tuple[int, int, str]]] = {}
    for event in events:
        if event.kind != "prune" or not event.details:
            continue
        before = event.details.get("content_before")
        if isinstance(before, str):
            moment = utc(datetime.fromisoformat(before))
            content_before = max(content_before or moment, moment)
        for chain_id, spans in (event.details.get("removed") or {}).items():
            for low, high, digest in spans:
                ranges.setdefault(chain_id, []).append((int(low), int(high), str(digest)))
    return _Pruned(content_before, {k: _merged(v) for k, v in ranges.items()})


def _merged(spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Ranges of several prunes as one: a prune that removes the rows right after the ones
    an earlier prune removed leaves one gap in the chain."""
    out: list[tuple[int, int, str]] = []
    for low, high, digest in sorted(spans):
        if out and low <= out[-1][1] + 1:
            last_low, last_high, _ = out[-1]
            out[-1] = (last_low, high, digest) if high >= last_high else out[-1]
        else:
            out.append((low, high, digest))
    return out


def verify(
    engine: Engine, since: datetime | None = None, until: datetime | None = None
) -> Verification:
    """Walk every chain (the rows created in ``[since, until)``, when given) and report
    what is broken; see the module docstring."""
    started = time.perf_counter()
    result = Verification(since, until)
    # one snapshot: rows an app stores meanwhile would be past the heads read before them
    with snapshot(engine, PRUNED_TABLES) as connection:
        every_event = list_events(connection)
        result.events = [
            e
            for e in every_event
            if e.kind != "chain_start"
            and (since is None or e.at >= since)
            and (until is None or e.at < until)
        ]
        _check_events(every_event, result)
        pruned = _pruned(every_event)
        start = next((e for e in every_event if e.kind == "chain_start"), None)
        expected = (start.details or {}).get("unchained", {}) if start else {}
        heads = {row["id"]: row for row in connection.execute(sa.select(AUDIT_CHAINS)).mappings()}
        for kind, table_name in TABLE_OF.items():
            result.checked[table_name] = 0
            result.expected_unchained[table_name] = int(expected.get(table_name, 0))
            _check_unchained(connection, kind, start, result)
            _walk(connection, kind, heads, pruned, result)
        _check_rollups(connection, every_event, result)
    result.chains = len(heads)
    result.heads = [
        ChainHead(
            h["id"],
            h["table_name"],
            h["holder"],
            utc(h["started_at"]),
            int(h["last_seq"]),
            h["last_hash"],
        )
        for h in heads.values()
    ]
    if every_event:  # the events' own chain: its head, kept elsewhere, shows one cut off
        last, first = every_event[-1], every_event[0]
        head = ChainHead(EVENTS, EVENTS, "llmops", first.at, last.seq, last.event_hash)
        result.heads.append(head)
    result.seconds = time.perf_counter() - started
    return result


def _check_rollups(
    connection: sa.Connection, events: list[AuditEvent], result: Verification
) -> None:
    """The daily rollups that the figures of whole days come from (the dashboard, ``llmops
    spend``, the audit report) against the rows of their days, which the chains cover and
    the rollups are not: an edit of a rollup around its triggers shows here. The days
    before the latest prune's cutoff keep the rollups of the calls it removed: counted,
    not checked."""
    days = _days_to_check(connection, result.since, result.until)
    if days is None:
        return
    first, last = days
    cutoff = _calls_pruned_before(events)
    if cutoff is not None and cutoff > first:  # counted, not compared
        before = min(cutoff - timedelta(days=1), last)
        result.rollup_days_pruned = rollup_days(connection, first, before)
        first = cutoff
    if first > last:
        return
    check = rollup_disagreements(connection, first, last)
    result.rollup_days = check.days
    for found in check.disagreements:
        differ = ", ".join(
            f"{name} {_figure(found.rolled_up[name])} (its rows: {_figure(found.stored[name])})"
            for name in found.rolled_up
            if found.rolled_up[name] != found.stored[name]
        )
        group = ", ".join(repr(part) for part in found.group)
        problem = f"rollup of {found.day} for ({group}) edited: {differ}"
        result.add(Break(found.table, None, None, None, midnight(found.day), problem))


def _days_to_check(
    connection: sa.Connection, since: datetime | None, until: datetime | None
) -> tuple[date, date] | None:
    """The UTC days to check: those of the window, else from the first call or rollup day
    to the last."""
    if since is not None and until is not None:
        return since.date(), (until - timedelta(microseconds=1)).date()
    days = CALL_DAYS.c.day
    bounds = [
        *connection.execute(sa.select(sa.func.min(days), sa.func.max(days))).one(),
        *connection.execute(
            sa.select(sa.func.min(CALLS.c.created_at), sa.func.max(CALLS.c.created_at))
        ).one(),
    ]
    known = [_as_day(value) for value in bounds if value is not None]
    if not known:
        return None
    first = since.date() if since is not None else min(known)
    last = (until - timedelta(microseconds=1)).date() if until is not None else max(known)
    return first, last


def _as_day(value: Any) -> date:
    if isinstance(value, datetime):
        return utc(value).date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])  # SQLite: text


def _calls_pruned_before(events: list[AuditEvent]) -> date | None:
    """The latest day before which a prune removed calls (its ``calls_before``)."""
    cutoffs = [
        utc(datetime.fromisoformat(event.details["calls_before"])).date()
        for event in events
        if event.kind == "prune"
        and event.details
        and isinstance(event.details.get("calls_before"), str)
    ]
    return max(cutoffs, default=None)


def _figure(value: float) -> str:
    return f"{int(value):,}" if math.isfinite(value) and value == int(value) else f"{value:g}"


def _check_events(events: list[AuditEvent], result: Verification) -> None:
    if not events:  # migration 0009 stored the first (chain_start): all of them went
        result.broke("audit_events", None, 1, "the audit events are missing (deleted)")
        return
    prev = GENESIS
    for expected_seq, event in enumerate(events, start=1):
        if event.seq != expected_seq:
            result.broke(
                "audit_events",
                None,
                expected_seq,
                f"audit event {expected_seq} is missing (deleted)",
            )
            return
        if event.prev_hash != prev or not event.intact:
            result.add(
                Break(
                    "audit_events",
                    None,
                    event.seq,
                    event.id,
                    event.at,
                    f"audit event {event.seq} ({event.kind}) was edited",
                )
            )
            return
        prev = event.event_hash


def _window(table: sa.Table, since: datetime | None, until: datetime | None) -> list[Any]:
    where = []
    if since is not None:
        where.append(table.c.created_at >= since)
    if until is not None:
        where.append(table.c.created_at < until)
    return where


def _check_unchained(
    connection: sa.Connection, kind: str, start: AuditEvent | None, result: Verification
) -> None:
    """Rows without a chain: at most those stored before the chain began, all older than
    its start."""
    table, name = _TABLES[kind], TABLE_OF[kind]
    window = _window(table, result.since, result.until)
    count = connection.execute(
        sa.select(sa.func.count()).select_from(table).where(table.c.chain_id.is_(None), *window)
    ).scalar_one()
    result.unchained[name] = int(count)
    if not count:
        return
    late = sa.select(table.c.id, table.c.created_at).where(table.c.chain_id.is_(None), *window)
    if start is not None:
        late = late.where(table.c.created_at > start.at + _CLOCK_SLACK)
    for row_id, created_at in connection.execute(late.limit(MAX_BREAKS)):
        result.add(
            Break(
                name,
                None,
                None,
                row_id,
                utc(created_at),
                "row without a hash chain, stored after the chain began (inserted around llmops)",
            )
        )
    if result.since is None and result.until is None:
        allowed = result.expected_unchained[name]
        if count > allowed:
            result.broke(
                name,
                None,
                None,
                f"{count} row{'s' if count > 1 else ''} without a hash chain; {allowed} "
                f"{'were' if allowed != 1 else 'was'} stored before it began",
            )


def _rows(connection: sa.Connection, kind: str, where: list[Any]) -> Iterator[dict[str, Any]]:
    table = _TABLES[kind]
    # a call's content hash covers its content, in llm_call_content
    query = recorded_calls() if kind == "call" else sa.select(table)
    query = query.where(table.c.chain_id.is_not(None), *where)
    query = query.order_by(table.c.chain_id, table.c.chain_seq)
    # streamed (a server-side cursor on PostgreSQL): this query only, not the connection's
    query = query.execution_options(stream_results=True, yield_per=5000)
    for row in connection.execute(query).mappings():
        yield as_recorded(row) if kind == "call" else dict(row)


def _walk(
    connection: sa.Connection,
    kind: str,
    heads: dict[str, Any],
    pruned: _Pruned,
    result: Verification,
) -> None:
    table, name = _TABLES[kind], TABLE_OF[kind]
    window = _window(table, result.since, result.until)
    jsonb = connection.dialect.name == "postgresql"
    seen: set[str] = set()
    walked: dict[str, int] = {}  # chain -> the last row number read
    chain_id = ""
    seq, prev = 0, GENESIS
    for row in _rows(connection, kind, window):
        if row["chain_id"] != chain_id:
            if chain_id:
                _check_end(kind, chain_id, seq, prev, heads, pruned, result)
                walked[chain_id] = seq
            chain_id, seq, prev = str(row["chain_id"]), 0, GENESIS
            seen.add(chain_id)
        number = int(row["chain_seq"])
        linked: str | None = prev
        if number != seq + 1:
            linked = _bridge(connection, kind, chain_id, seq, number, pruned, result)
        result.checked[name] += 1
        stored_content = stored_digest(kind, row["content_hash"])
        at = utc(row["created_at"])
        if not any(
            content_hash(kind, r, old) == stored_content for r, old in _readings(row, jsonb)
        ) and not (_content_gone(kind, row) and pruned.covers_content(at)):
            result.add(Break(name, chain_id, number, row["id"], at, CONTENT_CHANGED))
        # after a gap that is a break already, the row's own link cannot be checked
        if linked is not None and not any(
            row_hash(linked, kind, r, stored_content, old) == row["row_hash"]
            for r, old in _readings(row, jsonb)
        ):
            result.add(Break(name, chain_id, number, row["id"], at, ROW_CHANGED))
        seq, prev = max(seq, number), row["row_hash"]
    if chain_id:
        _check_end(kind, chain_id, seq, prev, heads, pruned, result)
        walked[chain_id] = seq
    if result.since is not None or result.until is not None:
        _check_chains(connection, kind, heads, walked, pruned, result)
        return
    # a chain with a head but no row left: pruned away, or deleted
    for head in heads.values():
        last = int(head["last_seq"])
        gone = head["table_name"] == name and head["id"] not in seen and last > 0
        if gone and pruned.gap(head["id"], 1, last) is None:
            result.broke(
                name, head["id"], 1, f"all {last} rows of chain {head['id']} are missing (deleted)"
            )


def _readings(row: dict[str, Any], jsonb: bool) -> Iterator[tuple[Any, bool]]:
    """The ways the row may have been hashed, each tried only when the one before did not
    match: as read; as a row stored before 2026-12-05 was (whole floats beyond 2**53 by
    their exact value, :func:`~llmops.store.chain.plain`), and from PostgreSQL such a row
    with JSONB's decimals as the floats they were (:func:`~llmops.store.chain.as_floats`)."""
    yield row, False
    yield row, True
    if jsonb:
        yield as_floats(row), True


def _check_chains(
    connection: sa.Connection,
    kind: str,
    heads: dict[str, Any],
    walked: dict[str, int],
    pruned: _Pruned,
    result: Verification,
) -> None:
    """With a time window, every chain of the table, whatever the time of its rows: no
    number missing from 1 to its head's but what prunes removed (rows deleted in the
    window, right after it, at the chain's end, or the whole chain), none past its head,
    and the head's row the one it recorded (when the window did not read it). A window
    reads its rows only; the evidence report's integrity of a period said "intact" after
    its rows were deleted. Two passes over the chain index, no row read."""
    table, name = _TABLES[kind], TABLE_OF[kind]
    c = table.c
    chains = {h["id"]: int(h["last_seq"]) for h in heads.values() if h["table_name"] == name}
    seqs = (
        sa.select(
            c.chain_id,
            c.chain_seq,
            sa.func.lag(c.chain_seq, 1, 0)
            .over(partition_by=c.chain_id, order_by=c.chain_seq)
            .label("prev"),
        )
        .where(c.chain_id.is_not(None))
        .subquery()
    )
    gaps: dict[str, list[tuple[int, int]]] = {}
    query = sa.select(seqs.c.chain_id, seqs.c.prev + 1, seqs.c.chain_seq - 1).where(
        seqs.c.chain_seq > seqs.c.prev + 1
    )
    for chain, first, last in connection.execute(query):
        gaps.setdefault(str(chain), []).append((int(first), int(last)))
    ends = {
        str(chain): end
        for chain, end in connection.execute(
            sa.select(c.chain_id, sa.func.max(c.chain_seq)).group_by(c.chain_id)
        )
    }
    for chain, last in chains.items():
        end = int(ends.get(chain) or 0)
        if end > last and walked.get(chain, 0) < end:  # else the walk found them
            result.broke(name, chain, end, f"the chain has rows past its recorded head ({last})")
        if end < last:
            gaps.setdefault(chain, []).append((end + 1, last))
    for chain, spans in sorted(gaps.items()):
        for first, last in spans:
            for low, high in _unpruned(pruned.ranges.get(chain, []), first, last):
                missing = f"rows {low}-{high}" if high > low else f"row {low}"
                result.broke(
                    name, chain, low, f"{missing} of the chain {_are(high > low)} missing (deleted)"
                )
    heads_to_read = {
        (chain, last): heads[chain]["last_hash"]
        for chain, last in chains.items()
        if 0 < last != walked.get(chain) and int(ends.get(chain) or 0) >= last
    }
    found: dict[tuple[str, int], str] = {}
    pairs = sorted(heads_to_read)
    for start in range(0, len(pairs), 500):
        query = sa.select(c.chain_id, c.chain_seq, c.row_hash).where(
            sa.tuple_(c.chain_id, c.chain_seq).in_(pairs[start : start + 500])
        )
        found.update(((str(i), int(n)), str(h)) for i, n, h in connection.execute(query))
    for (chain, last), digest in heads_to_read.items():
        if (chain, last) in found and found[(chain, last)] != digest:
            result.broke(name, chain, last, "the chain's last row differs from its recorded head")


def _unpruned(
    ranges: list[tuple[int, int, str]], first: int, last: int
) -> Iterator[tuple[int, int]]:
    """The parts of rows ``first..last`` that no prune range covers."""
    at = first
    for low, high, _ in sorted(ranges):
        if high < at or low > last:
            continue
        if low > at:
            yield at, low - 1
        at = max(at, high + 1)
    if at <= last:
        yield at, last


def _are(plural: bool) -> str:
    return "are" if plural else "is"


def _content_gone(kind: str, row: dict[str, Any]) -> bool:
    if kind == "feedback":
        return row.get("comment") is None
    request = row.get("request")
    messages = request.get("messages") if isinstance(request, dict) else None
    return messages is None and row.get("response_text") is None


def _bridge(
    connection: sa.Connection,
    kind: str,
    chain_id: str,
    seq: int,
    number: int,
    pruned: _Pruned,
    result: Verification,
) -> str | None:
    """Rows ``seq + 1 .. number - 1`` of a chain are not in the walk: pruned (the prune
    event kept the last one's hash), outside the time window (they are still there), or
    deleted (a break). Returns the hash row ``number`` follows, or None after a break."""
    table, name = _TABLES[kind], TABLE_OF[kind]
    if number <= seq:
        result.broke(name, chain_id, number, f"row number {number} comes twice (inserted)")
        return None
    first, last = seq + 1, number - 1
    digest = pruned.gap(chain_id, first, last)
    if digest is not None:
        return digest
    if result.since is not None or result.until is not None:
        # rows outside the window, or pruned, or deleted (then found with the chain's other
        # gaps: :func:`_check_chains`): the row before ``number`` is there, or a prune kept
        # its hash, or it went
        c = table.c
        before = connection.execute(
            sa.select(c.row_hash).where(c.chain_id == chain_id, c.chain_seq == last)
        ).scalar() or pruned.ends_at(chain_id, last)
        return None if before is None else str(before)
    missing = f"rows {first}-{last}" if last > first else f"row {first}"
    result.broke(
        name, chain_id, first, f"{missing} of the chain {_are(last > first)} missing (deleted)"
    )
    return None


def _check_end(
    kind: str,
    chain_id: str,
    seq: int,
    prev: str,
    heads: dict[str, Any],
    pruned: _Pruned,
    result: Verification,
) -> None:
    """The chain's last row against the head its writer recorded."""
    name = TABLE_OF[kind]
    head = heads.get(chain_id)
    if head is None:
        result.broke(
            name, chain_id, seq, f"chain {chain_id} has no recorded head (audit_chains edited)"
        )
        return
    last = int(head["last_seq"])
    if seq == last:
        if prev != head["last_hash"]:
            result.broke(name, chain_id, seq, "the chain's last row differs from its recorded head")
        return
    if seq > last:
        result.broke(name, chain_id, seq, f"the chain has rows past its recorded head ({last})")
        return
    if pruned.gap(chain_id, seq + 1, last) is not None:
        return
    if result.since is not None or result.until is not None:
        return  # the rest is outside the window: its gaps are found by _check_chains
    missing = f"rows {seq + 1}-{last}" if last > seq + 1 else f"row {last}"
    result.broke(
        name,
        chain_id,
        seq + 1,
        f"{missing} at the chain's end {_are(last > seq + 1)} missing (deleted)",
    )
