"""The background writer: stores records in batches and never loses one.

On the app's call path, :meth:`Writer.put` makes the record storable (see
:mod:`llmops.store.records`), appends it to the journal (one ``write``, see
:mod:`llmops.store.journal`) and queues it; it never blocks and never raises. One thread
drains the queue in batches (SQLAlchemy Core executemany), letting a batch gather for up to
``linger`` seconds (0.2 by default; ``flush()`` and a full batch end the wait).

What can go wrong, and what happens then:

- **The database is down or locked** (connection refused, timeouts, SQLite busy): the
  batch stays in the journal (fsynced) and is replayed once the database answers again,
  with exponential back-off between attempts. A full queue also leaves records in the
  journal only. Replays are idempotent: inserts skip primary keys that exist.
- **The database refuses a row** (SQLSTATE class 22 or 23, a value the driver cannot bind,
  or any error while ``SELECT 1`` still works): the batch is split in halves until the bad
  rows are found; each is repaired once (:func:`llmops.store.records.repaired`) and stored,
  or else written to ``rejected.log`` with the reason and counted. The other rows are stored.
- **Feedback for a call that is not stored yet** waits in the journal while another live
  process may still store the call, and is rejected after that. SQLite's foreign key finds
  such feedback; on PostgreSQL, where ``feedback.call_id`` has no foreign key
  (``llm_calls`` is partitioned, migration 0012), the writer looks the calls up in the
  transaction that stores the feedback, locking them ``FOR KEY SHARE`` as the key did.
- **Anything else** (a bug, a damaged file): logged and counted; the thread carries on. A
  journal file that cannot be processed at all is moved to ``quarantine/``.

On PostgreSQL the writer also creates the monthly partitions of ``llm_calls`` ahead of time
(:mod:`llmops.store.partitions`) when it starts and once a day; a failure there is logged
and tried again later (rows that find no month partition go to the DEFAULT one).

``flush()`` returns once every record put before it is in the database, or, when the
database is away, fsynced in the journal; it returns False (never hangs past its timeout)
when that cannot be promised. ``close()`` flushes, replays what it can and stops.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from llmops.errors import DatabaseError
from llmops.store.chain import Chains, Sealable, sealable
from llmops.store.engine import sqlite_write_lock
from llmops.store.journal import SEGMENT_BYTES, Entry, Journal, encode
from llmops.store.partitions import LOCK_ORDER
from llmops.store.records import RecordKind, Row, fitted, repaired, split_content, storable
from llmops.store.tables import CALL_CONTENT, CALLS, FEEDBACK

log = logging.getLogger("llmops.writer")

_TABLES = {"call": CALLS, "feedback": FEEDBACK, "content": CALL_CONTENT}
# rows of a batch -> what to run in the transaction that stores them, or None
TransactionHook = Callable[[list[dict[str, Any]]], Callable[[Connection], None] | None]
MAX_DEFERRALS = 30  # replays a feedback row may wait for its call while others are live
REPLAY_EVERY = 1.0  # seconds between looks at other processes' journal files
_PG_INSERTS = {  # a batch as one statement on PostgreSQL, see Writer._insert_table
    kind: sa.text(
        f"INSERT INTO {table.name} SELECT * FROM "  # noqa: S608 (our own tables' names)
        f"jsonb_populate_recordset(NULL::{table.name}, CAST(:rows AS jsonb)) "
        "ON CONFLICT DO NOTHING"
    )
    for kind, table in _TABLES.items()
}
_WRITE_LOCKS = sa.text(
    f"LOCK TABLE ONLY {', '.join(LOCK_ORDER)} IN ROW EXCLUSIVE MODE"  # as the INSERTs would
)
PARTITIONS_EVERY = 86_400.0  # seconds between checks of llm_calls' monthly partitions (PG)
PARTITIONS_RETRY = 600.0  # seconds before trying again after a failed check
_WRITERS: weakref.WeakSet[Writer] = weakref.WeakSet()


@dataclass
class WriterStats:
    """Counters for tests, benchmarks and `llmops db status`."""

    written: int = 0  # rows stored by normal batches
    spooled: int = 0  # rows left in the journal for a replay (database away, queue full)
    replayed: int = 0  # rows stored from journal files
    repaired: int = 0  # rows stored after replacing values the database refused
    rejected: int = 0  # rows the database refused for good (kept in rejected.log)
    held: int = 0  # rows kept in memory because the journal could not be written
    errors: int = 0  # unexpected errors the writer survived
    batches: int = 0


class _Outage(Exception):
    """The database (not a row) failed: keep the records and try again later."""


class _StoredAlready(Exception):
    """A batch held a row that was stored already (PostgreSQL): store it again, guarded."""


class _FlushRequest:
    def __init__(self, target: int) -> None:
        self.target = target  # the sequence number of the last record put before it
        self.done = threading.Event()
        self.durable = False


class Writer:
    """Stores call and feedback rows in the background; see the module docstring."""

    def __init__(
        self,
        engine_factory: Callable[[], Engine],
        spool_dir: Path,
        *,
        batch_size: int = 1000,
        queue_size: int = 20_000,
        retry_min: float = 0.5,
        retry_max: float = 10.0,
        linger: float = 0.2,
        prepare: Callable[[Engine], Any] | None = None,
        segment_bytes: int | None = None,
    ) -> None:
        self._engine_factory = engine_factory
        self._engine: Engine | None = None
        self._prepare = prepare  # e.g. the schema check, run once per engine
        self._prepared = False
        self._partitions_due = 0.0  # monotonic time of the next partition check (PostgreSQL)
        self.journal = Journal(spool_dir, segment_bytes=segment_bytes or SEGMENT_BYTES)
        self.batch_size = max(1, batch_size)
        self.queue_size = queue_size
        self.linger = linger  # seconds a batch may gather before it is written
        self._retry_min, self._retry_max = retry_min, retry_max
        self.stats = WriterStats()
        self.last_error: str | None = None
        # Asked, with the call rows of each batch, for a statement to run inside the
        # transaction that stores them (blocking budgets count the calls in their leases in
        # the same commit); None when there is nothing to do, so that a batch pays for a
        # savepoint only when a hook has work. A statement that fails is logged and undone,
        # never the calls. After the commit, the observers get the ids of the calls stored
        # (an id may come again on a replay).
        self.transaction_hooks: list[TransactionHook] = []
        self.chains = Chains()  # the hash chains of the rows this writer stores
        self.stored_observers: list[Callable[[list[str]], None]] = []
        self._start()
        _WRITERS.add(self)

    def _start(self) -> None:
        self._lock = threading.Lock()  # orders put() and flush(): queue order = sequence
        # A deque, not a queue.Queue: appending is one C call on the app's thread, where
        # Queue.put takes a Condition (measured: 15 us against 1 us after a model call).
        self._queue: collections.deque[Entry] = collections.deque()
        self._held: list[Entry] = []  # records only in memory (the journal failed)
        self._flushes: list[_FlushRequest] = []
        self._seq = 0  # records put so far
        self._done_seq = 0  # the last sequence number the writer took from the queue
        self._spill_seq = 0  # records queued when the queue was last full (see _replay)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._closed = False
        self._retry_delay = self._retry_min
        self._next_try = 0.0  # monotonic time before which the database is not tried
        self._next_replay = 0.0  # monotonic time before which other files are not looked at
        self._files_left = 0  # journal files after the one being replayed
        self._replaying: Path | None = None
        self._thread = threading.Thread(target=self._run, name="llmops-writer", daemon=True)
        self._thread.start()

    # -- the app's side ------------------------------------------------------------

    def put(self, kind: RecordKind, row: Row | dict[str, Any]) -> None:
        """Journal and queue one row. Never blocks, never raises."""
        try:
            stored, line = storable(kind, row)  # type: ignore[arg-type]
        except Exception as exc:  # only a row of the wrong shape gets here
            self._reject([Entry(kind, dict(row))], f"cannot encode the record: {exc!r}")
            return
        with self._lock:
            segment = self.journal.append(line)
            entry = Entry(kind, stored, segment)  # type: ignore[arg-type]
            if self._closed:  # e.g. at interpreter exit: leave it for the next process
                self._leave_on_disk([entry])
                self.journal.release()
                return
            if len(self._queue) >= self.queue_size:
                self._spill_seq = self._seq
                self._leave_on_disk([entry])
                return
            self._queue.append(entry)
            self._seq += 1
        if self.linger <= 0 or len(self._queue) >= self.batch_size:
            self._wake.set()

    def _leave_on_disk(self, entries: list[Entry]) -> None:
        """Records the writer will not store from memory: replayed from the journal."""
        on_disk = [e.segment for e in entries if e.segment is not None]
        self.journal.mark_on_disk(on_disk)
        self.stats.spooled += len(on_disk)
        for entry in entries:
            if entry.segment is None:
                self._keep_in_memory(entry)

    def _keep_in_memory(self, entry: Entry) -> None:
        """A record the journal could not take: try the journal again, else hold it."""
        try:
            line = encode(entry)
        except (ValueError, TypeError):
            self._reject([entry], "cannot encode the record")
            return
        segment = self.journal.append(line)
        if segment is not None:
            self.journal.mark_on_disk([segment])
            self.stats.spooled += 1
            return
        with self._lock:
            self._held.append(entry)
        self.stats.held += 1

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every row put so far is in the database, or, while it is away,
        fsynced in the journal. False when that cannot be promised within ``timeout``."""
        if self._closed:
            self.journal.sync()
            return not self._held
        if not self._thread.is_alive():
            self._restart()
        with self._lock:
            request = _FlushRequest(self._seq)
            self._flushes.append(request)
        self._poke()
        deadline = None if timeout is None else time.monotonic() + timeout
        while not request.done.wait(0.05):
            if not self._thread.is_alive():
                self._restart()
                return False
            if deadline is not None and time.monotonic() >= deadline:
                return False
        return request.durable

    def close(self, timeout: float | None = 30.0) -> None:
        """Flush, replay what the database takes, and stop the thread. Never hangs past
        about ``timeout``; what is not stored stays in the journal for the next process."""
        if self._closed:
            return
        self.flush(timeout)
        with self._lock:
            self._closed = True
        self._stop.set()
        self._poke()
        self._thread.join(timeout)
        self.journal.release()
        _WRITERS.discard(self)
        if self._engine is not None:
            self._engine.dispose()

    def _poke(self) -> None:
        self._wake.set()

    def _restart(self) -> None:
        """The thread should never die; if it did, start another (never silently stop)."""
        with self._lock:
            if self._thread.is_alive() or self._closed:
                return
            log.error("llmops: the writer thread had stopped; starting it again")
            self.stats.errors += 1
            self._thread = threading.Thread(target=self._run, name="llmops-writer", daemon=True)
            self._thread.start()

    @property
    def healthy(self) -> bool:
        """Whether the last attempt to reach the database worked."""
        return self.last_error is None

    # -- the writer thread ---------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                if not self._cycle():
                    return
            except Exception:  # never die: log, count, carry on
                self.stats.errors += 1
                log.exception("llmops: unexpected error in the writer; carrying on")
                time.sleep(0.05)

    def _cycle(self) -> bool:
        """One round: a batch, then flush requests or replays. False once stopped."""
        stopping = self._stop.is_set()
        entries = self._take_batch(urgent=stopping or bool(self._flushes))
        if entries:
            self._handle(entries)
        with self._lock:
            ready = [r for r in self._flushes if r.target <= self._done_seq]
            self._flushes = [r for r in self._flushes if r.target > self._done_seq]
        finished = stopping and not self._queue
        if ready or finished:
            # Everything put before these requests is handled: store what waits on disk
            # (when the database answers), fsync the rest, answer.
            self._replay(force=True)
            self.journal.sync()
            for request in ready:
                request.durable = not self._held
                request.done.set()
        elif time.monotonic() >= self._next_replay:
            self._next_replay = time.monotonic() + REPLAY_EVERY
            self._replay()
        return not finished

    def _take_batch(self, urgent: bool) -> list[Entry]:
        """Up to ``batch_size`` entries from the queue.

        The writer sleeps until a batch is full, flush() or close() asks, or ``linger``
        seconds have passed, so that a batch gathers (one transaction per call would cost
        the app more: benchmarks/gateway_overhead.py); with ``linger`` 0, every put() wakes
        it. Clear, then look: no wake-up is lost."""
        if not urgent:
            self._wake.clear()
            if len(self._queue) < self.batch_size and not (self._stop.is_set() or self._flushes):
                self._wake.wait(self.linger if self.linger > 0 else REPLAY_EVERY)
        entries: list[Entry] = []
        popleft = self._queue.popleft
        with contextlib.suppress(IndexError):
            while len(entries) < self.batch_size:
                entries.append(popleft())
        self._done_seq += len(entries)
        return entries

    def _handle(self, entries: list[Entry]) -> None:
        """Store a batch from memory, or leave it in the journal while the database is away."""
        with self._lock:
            held, self._held = self._held, []
        entries = held + entries
        if not entries:
            return
        if time.monotonic() < self._next_try:
            self._leave_on_disk(entries)
            return
        try:
            stored = self._store(entries)
        except _Outage as exc:
            self._down(exc)
            self._leave_on_disk(entries)
            self.journal.sync()
            return
        self._up()
        self.stats.written += stored
        self.stats.batches += 1
        self.journal.settle(e.segment for e in entries if e.segment is not None)

    # -- storing -------------------------------------------------------------------

    def _store(self, entries: list[Entry], *, replay: bool = False) -> int:
        """Store entries; rows the database refuses are repaired or rejected. Returns how
        many were stored; raises _Outage when the database itself failed."""
        try:
            self._insert(entries)
            return len(entries)
        except _Outage:
            raise
        except Exception as exc:
            if _is_outage(exc) or (not _is_row_error(exc) and not self._answers()):
                raise _Outage(_describe(exc)) from exc
            if len(entries) == 1:
                return self._store_refused(entries[0], exc, replay=replay)
        middle = len(entries) // 2
        return self._store(entries[:middle], replay=replay) + self._store(
            entries[middle:], replay=replay
        )

    def _store_refused(self, entry: Entry, exc: Exception, *, replay: bool) -> int:
        """One row the database refused: wait for its call, repair it, or reject it."""
        feedback = entry.kind == "feedback" and isinstance(_unwrapped(exc), sa.exc.IntegrityError)
        if feedback and not self._call_stored(entry.row.get("call_id")):
            return self._defer(entry, replay=replay)
        fixed = Entry(entry.kind, repaired(entry.kind, entry.row), entry.segment)
        try:
            self._insert([fixed])
        except _Outage:
            raise
        except Exception as again:
            if _is_outage(again) or (not _is_row_error(again) and not self._answers()):
                raise _Outage(_describe(again)) from again
            self._reject([entry], _describe(again))
            return 0
        self.stats.repaired += 1
        log.warning("llmops: stored call %s after repairing: %s", entry.row.get("id"), exc)
        return 1

    def _defer(self, entry: Entry, *, replay: bool) -> int:
        """Feedback whose call is not stored yet: its call may still come from a journal
        (this process's, or a live one's); reject it once it cannot."""
        if not replay and entry.segment is not None:
            # From memory: its call may wait in this process's journal for a replay.
            self._leave_on_disk([entry])
            return 0
        if entry.deferred < MAX_DEFERRALS and (
            self._files_left or self.journal.live_files(besides=self._replaying)
        ):
            self._keep_in_memory(Entry(entry.kind, entry.row, None, entry.deferred + 1))
            return 0
        self._reject([entry], f"its call {entry.row.get('call_id')} was never stored")
        return 0

    def _reject(self, entries: list[Entry], reason: str) -> None:
        lines = []
        for entry in entries:
            try:
                lines.append(encode(entry).decode("utf-8", "replace").strip())
            except Exception:
                lines.append(repr(entry.row)[:10_000])
        self.journal.reject(lines, reason)
        self.stats.rejected += len(entries)
        log.error("llmops: %d record(s) refused, kept in rejected.log: %s", len(entries), reason)

    def _insert(self, entries: list[Entry]) -> None:
        engine = self._get_engine()
        rows: dict[str, list[dict[str, Any]]] = {"call": [], "feedback": []}
        seen: set[tuple[str, Any]] = set()
        for entry in entries:
            row = fitted(entry.kind, entry.row)
            key = (entry.kind, row["id"])  # as stored: ids cut to the column, digits as text
            if key not in seen:  # the same record twice in a batch is stored once
                seen.add(key)
                rows[entry.kind].append(row)
        if engine.dialect.name == "postgresql":
            # in id order (the key's first column; ids are text once fitted): writers storing
            # the same rows at once (replays of one journal) then lock their keys in one
            # order, and never deadlock on them
            for kind_rows in rows.values():
                kind_rows.sort(key=itemgetter("id"))
        # Rows may be stored already: a replay brings rows of a journal file that a dead
        # process had stored, or rows of this process that it replayed from its own journal
        # while they still waited in its queue. Only new rows take a place in the hash chain.
        # SQLite looks the batch's ids up first (primary-key probes). PostgreSQL stores the
        # batch and counts the rows that went in (one statement less per batch): when one
        # was there already, the transaction is rolled back and the batch stored again after
        # the look-up.
        guard = engine.dialect.name != "postgresql"
        # Calls, then feedback, each kind in a transaction of its own (feedback refers to
        # the calls): the rollup triggers lock the rollup rows a batch adds to until its
        # transaction commits, and writers storing at once take turns on those rows (the same
        # days, models and prompts); in one transaction they waited on each other's feedback
        # as well (benchmarks/README.md, "Ingest"). A batch whose feedback fails after its
        # calls committed is stored again: its calls are then found stored, as on a replay.
        for kind in ("call", "feedback"):
            if not rows[kind]:
                continue
            stored = self._stored_once(engine, kind, rows[kind], guard=guard)
            if kind == "call" and stored and self.stored_observers:
                ids = [row["id"] for row in stored]
                for observer in self.stored_observers:
                    try:
                        observer(ids)
                    except Exception:
                        log.exception("llmops: an observer of stored calls failed")

    def _stored_once(
        self, engine: Engine, kind: str, rows: list[dict[str, Any]], *, guard: bool
    ) -> list[dict[str, Any]]:
        """Store the rows of one ``kind`` that are not stored yet; return them. A look-up
        that missed a row stored meanwhile by another writer (PostgreSQL: its INSERT
        committed between our look-up and ours) rolls back and looks again: each round
        finds at least one more row stored, so this ends (if it did not, the rows would
        wait in the journal, as in an outage)."""
        # the rows' hashes but for their places in the chain, before any lock is taken
        ready = {id(row): sealable(kind, row) for row in rows}
        for _ in range(len(rows) + 1):
            try:
                return self._transaction(engine, kind, rows, ready, guard=guard)
            except _StoredAlready:
                guard = True
        raise _Outage(f"{kind} rows kept being stored by others while this writer looked")

    def _transaction(
        self,
        engine: Engine,
        kind: str,
        rows: list[dict[str, Any]],
        ready: dict[int, Sealable],
        *,
        guard: bool,
    ) -> list[dict[str, Any]]:
        """Store rows of one ``kind`` in one transaction, with their places in its hash
        chain; return the rows stored. Raise _StoredAlready (rolled back) when a row was
        stored already: without ``guard``, by anyone; with it, after the look-up of stored
        ids left it in (a row takes a place in the chain only when it goes in)."""
        try:
            with engine.begin() as connection:
                if guard:
                    if kind == "call" and engine.dialect.name == "postgresql":
                        # in LOCK_ORDER, as prunes and partitions' creation take them, before
                        # the look-up reads llm_calls (the INSERTs below take them in that
                        # order anyway: content, then calls)
                        connection.execute(_WRITE_LOCKS)
                    # SQLite: the look-up and the INSERTs in one write transaction, or two
                    # writers storing the same row both found it new and the one that came
                    # second skipped it after sealing it into its chain (a gap in the chain)
                    sqlite_write_lock(connection)
                    rows = _not_stored(connection, kind, rows)
                if not rows:
                    return rows
                if kind == "feedback" and engine.dialect.name == "postgresql":
                    _check_calls(connection, rows)
                self.chains.seal(connection, kind, rows, ready)
                stored = self._insert_rows(connection, kind, rows)
                if stored != len(rows):
                    raise _StoredAlready
                if kind == "call":
                    for hook in self.transaction_hooks:
                        _run_hook(hook, connection, rows)
        except BaseException:
            self.chains.rollback()
            raise
        self.chains.commit()
        return rows

    def _insert_rows(self, connection: Connection, kind: str, rows: list[dict[str, Any]]) -> int:
        """Store the rows of ``kind``: a call's metadata in ``llm_calls``, its request and
        response in ``llm_call_content`` (same transaction). Returns how many of ``rows``
        went in (see :meth:`_insert_table`)."""
        if kind != "call":
            return self._insert_table(connection, kind, rows)
        calls, content = split_content(rows)
        if content:  # first: the calls' triggers lock rollup rows until the commit
            self._insert_table(connection, "content", content)
        return self._insert_table(connection, "call", calls)

    def _insert_table(self, connection: Connection, kind: str, rows: list[dict[str, Any]]) -> int:
        """INSERT that skips rows whose primary key exists (replays are idempotent); returns
        how many rows went in (PostgreSQL: the count the server gives; SQLite: all of them,
        its callers look the ids up first).

        On PostgreSQL the whole batch is one statement (the rows as one JSON array, read by
        ``jsonb_populate_recordset``): the rollup triggers, which run once per statement, then
        run once per batch and lock their rows in key order, so that several writers storing
        at once never deadlock, and cost a few microseconds per row instead of a statement's
        worth (benchmarks/README.md, "Ingest")."""
        if connection.dialect.name == "postgresql":
            result = connection.execute(_PG_INSERTS[kind], {"rows": orjson.dumps(rows).decode()})
            return int(result.rowcount)
        connection.execute(sa.insert(_TABLES[kind]).prefix_with("OR IGNORE"), rows)
        return len(rows)

    def _get_engine(self) -> Engine:
        if self._engine is None:
            self._engine = self._engine_factory()
        if not self._prepared and self._prepare is not None:
            self._prepare(self._engine)
            self._prepared = True
        if time.monotonic() >= self._partitions_due and self._engine.dialect.name == "postgresql":
            self._ensure_partitions(self._engine)
        return self._engine

    def _ensure_partitions(self, engine: Engine) -> None:
        """PostgreSQL: create the monthly partitions of llm_calls ahead of time, when the
        writer starts and then once a day (a catalog query when nothing is missing). A
        failure is logged and tried again later: rows never wait for a partition (the
        DEFAULT partition takes them)."""
        from llmops.store.partitions import ensure_partitions

        try:
            ensure_partitions(engine)
        except Exception as exc:
            self._partitions_due = time.monotonic() + PARTITIONS_RETRY
            log.warning("llmops: cannot create the next partitions of llm_calls: %s", exc)
            return
        self._partitions_due = time.monotonic() + PARTITIONS_EVERY

    def _answers(self) -> bool:
        """Whether the database answers a trivial query (then a failed insert was the
        rows' fault, not the database's)."""
        try:
            with self._get_engine().connect() as connection:
                connection.execute(sa.text("SELECT 1"))
        except Exception:
            return False
        return True

    def _call_stored(self, call_id: Any) -> bool:
        try:
            with self._get_engine().connect() as connection:
                found = connection.execute(
                    sa.select(CALLS.c.id).where(CALLS.c.id == str(call_id))
                ).first()
        except Exception as exc:
            raise _Outage(_describe(exc)) from exc
        return found is not None

    def _down(self, exc: BaseException) -> None:
        message = str(exc)
        if self.last_error is None:
            log.warning("llmops: database unavailable, keeping records in the journal: %s", message)
        self.last_error = message
        self._next_try = time.monotonic() + self._retry_delay
        self._retry_delay = min(self._retry_delay * 2, self._retry_max)

    def _up(self) -> None:
        if self.last_error is not None:
            log.warning("llmops: database available again")
        self.last_error = None
        self._retry_delay = self._retry_min
        self._next_try = 0.0

    # -- replaying -----------------------------------------------------------------

    def _replay(self, *, force: bool = False) -> bool:
        """Store every journal file no live process holds (this process's own segments
        that wait on disk included). False when the database failed (now or a moment ago).

        Not before the rows queued ahead of the last one a full queue left on disk are
        taken (but when closing): a feedback row left on disk has its call in the queue,
        put before it; replayed first, it was rejected as the feedback of a call never
        stored. Under steady traffic without a full queue, replays are not held up."""
        if self._done_seq < self._spill_seq and not self._stop.is_set():
            return True
        if self._held:
            self._handle([])
        if not self.journal.needs_replay and not self.journal.pending():
            return True
        if time.monotonic() < self._next_try and not (force and self._stop.is_set()):
            return False
        self.journal.close_for_replay()
        paths = self.journal.files()
        for index, path in enumerate(paths):
            self._files_left = len(paths) - index - 1  # the call of a feedback may be there
            try:
                if not self._replay_file(path):
                    return False
            except Exception as exc:  # a file we cannot process must not block the others
                self.stats.errors += 1
                log.exception("llmops: cannot replay %s", path)
                self.journal.quarantine(path, _describe(exc))
        return True

    def _replay_file(self, path: Path) -> bool:
        self._replaying = path
        with self.journal.claim(path) as entries:
            if entries is None:
                return True  # a live process holds it, or it is gone
            for start in range(0, len(entries), self.batch_size):
                chunk = entries[start : start + self.batch_size]
                try:
                    stored = self._store(chunk, replay=True)
                except _Outage as exc:
                    self._down(exc)
                    return False
                self._up()
                self.stats.replayed += stored
            self.journal.done(path)
        return True

    # -- forks ---------------------------------------------------------------------

    def _after_fork(self) -> None:
        """In a forked child: a fresh journal segment, queue and thread (the parent's
        thread does not exist here and its segment belongs to the parent)."""
        self.journal.forget()
        self.chains.restart()
        self._engine = None
        self._prepared = False
        self._partitions_due = 0.0
        self._start()


def _after_fork_in_child() -> None:
    for writer in list(_WRITERS):
        if not writer._closed:
            writer._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


# feedback usually follows its call within days: its check reads those months first
RECENT_CALLS = timedelta(days=2)


def _not_stored(
    connection: Connection, kind: str, rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The rows whose id is not in the table yet: only those join the hash chain.

    On PostgreSQL each id is probed by the table's key (:func:`_probe`); ``llm_calls`` is
    partitioned by month of ``created_at`` and its key is (id, created_at), so a call is
    looked for with its row's time (a replayed row comes with the time it was stored with),
    in its month's partition only."""
    ids = [str(row["id"]) for row in rows]
    if connection.dialect.name != "postgresql":
        table = _TABLES[kind]
        found = connection.execute(sa.select(table.c.id).where(table.c.id.in_(ids))).scalars()
    elif kind == "call" and (times := _key_times(rows)) is not None:
        found = connection.execute(
            _probe("llm_calls", "t.created_at = k.at", times=True), {"ids": ids, "times": times}
        ).scalars()
    else:
        found = connection.execute(_probe(_TABLES[kind].name), {"ids": ids}).scalars()
    stored = set(found)
    return [row for row in rows if str(row["id"]) not in stored] if stored else rows


def _key_times(rows: list[dict[str, Any]]) -> list[datetime] | None:
    """The rows' times, in UTC, for a look-up by the whole key of ``llm_calls``; None when
    a row's time is not a datetime."""
    moments = []
    for row in rows:
        moment = row.get("created_at")
        if not isinstance(moment, datetime):
            return None
        moments.append(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    return moments


def _probe(
    table: str, condition: str = "", *, times: bool = False, lock: bool = False
) -> sa.TextClause:
    """PostgreSQL: the ids of ``:ids`` found in ``table`` (with ``condition`` on its row
    ``t``, and each id's time ``k.at`` from ``:times`` when ``times``), locked FOR KEY SHARE
    when ``lock``. Each id is looked up on its own, by the primary key, in a nested loop:
    an ``id IN (...)`` list lets the planner read a whole partition that has no statistics
    yet (a new month, the DEFAULT partition, before autovacuum analyzes it): 0.1-0.4 s per
    batch at 300,000 calls, growing, against 2-10 ms."""
    keys = "unnest(CAST(:ids AS text[])" + (", CAST(:times AS timestamptz[])" if times else "")
    where = f"t.id = k.id AND {condition}" if condition else "t.id = k.id"
    # OFFSET 0 keeps the subquery a subquery: pulled up, it became a hash join over a read of
    # every partition (tests/store/test_partitions.py, "without statistics")
    return sa.text(
        f"SELECT t.id FROM {keys}) AS k(id{', at' if times else ''}) CROSS JOIN LATERAL "  # noqa: S608 (our own tables' names)
        f"(SELECT id FROM {table} t WHERE {where} OFFSET 0{' FOR KEY SHARE' if lock else ''}) "
        "AS t"
    )


class _NoCall(Exception):
    """What a foreign key violation says (SQLSTATE 23503), for :class:`_MissingCall`."""

    sqlstate = "23503"


class _MissingCall(sa.exc.IntegrityError):
    """PostgreSQL: feedback whose call is not stored. ``feedback.call_id`` has no foreign key
    there (``llm_calls`` is partitioned, migration 0012): the writer checks it instead, and
    handles a missing call as it handles the foreign key's error on SQLite."""


def _check_calls(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """PostgreSQL: raise :class:`_MissingCall` unless the call of every feedback row is
    stored; the calls found are locked FOR KEY SHARE until the commit (as the foreign key
    locked them), so that no prune removes them under the feedback.

    Feedback carries no time of its call, so each id would be probed in every monthly
    partition: the calls of the last :data:`RECENT_CALLS` are looked for first (their
    months' partitions only), the others, if any, in all."""
    wanted = {str(row.get("call_id")) for row in rows}
    found: set[str] = set()
    since = datetime.now(UTC) - RECENT_CALLS
    for probe in (
        _probe("llm_calls", "t.created_at >= :since", lock=True),
        _probe("llm_calls", lock=True),
    ):
        if wanted <= found:
            break
        ids = sorted(wanted - found)
        found |= set(connection.execute(probe, {"ids": ids, "since": since}).scalars())
    missing = sorted(wanted - found)
    if missing:
        reason = f"call {', '.join(missing[:3])} is not stored (feedback.call_id)"
        raise _MissingCall("check feedback.call_id", None, _NoCall(reason))


def _run_hook(hook: TransactionHook, connection: Connection, rows: list[dict[str, Any]]) -> None:
    """Run what a transaction hook asks for in a savepoint: its failure must not cost the
    calls."""
    try:
        work = hook(rows)
        if work is not None:
            with connection.begin_nested():
                work(connection)
    except Exception:
        log.exception("llmops: a hook of the calls' transaction failed (calls kept)")


def _unwrapped(exc: BaseException) -> BaseException:
    """The SQLAlchemy error inside a :class:`DatabaseError` (what the checks below read)."""
    if isinstance(exc, DatabaseError) and exc.original is not None:
        return exc.original
    return exc


def _sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None)
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return state if isinstance(state, str) else None


def _is_row_error(exc: BaseException) -> bool:
    """The database (or its driver) refused these values, not the connection."""
    exc = _unwrapped(exc)
    state = _sqlstate(exc)
    if state is not None:  # PostgreSQL says: class 22 is bad data, 23 a violated constraint
        return state[:2] in ("22", "23")
    if isinstance(exc, sa.exc.IntegrityError | sa.exc.DataError):
        return True
    if isinstance(exc, sa.exc.ProgrammingError | sa.exc.InterfaceError):
        return "binding parameter" in str(exc).lower()
    if isinstance(exc, sa.exc.StatementError) and not isinstance(exc, sa.exc.DBAPIError):
        return True  # a value failed before it reached the database (e.g. not JSON)
    return isinstance(exc, ValueError | TypeError | UnicodeError | OverflowError)


def _is_outage(exc: BaseException) -> bool:
    """The database is away, locked, out of resources or not what we expect: retry later.
    Errors that are neither this nor a row error are settled by whether ``SELECT 1`` works."""
    exc = _unwrapped(exc)
    state = _sqlstate(exc)
    if state is not None:
        return state[:2] not in ("22", "23")
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, sa.exc.OperationalError | sa.exc.TimeoutError)


def _describe(exc: BaseException) -> str:
    exc = _unwrapped(exc)
    orig = getattr(exc, "orig", None) or exc
    text = f"{type(orig).__name__}: {orig}".strip().splitlines()
    return text[0][:500] if text else type(orig).__name__
