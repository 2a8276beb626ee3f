"""The background writer: batches records into the database and never loses one.

The app thread only enqueues. One daemon thread drains the queue in batches (SQLAlchemy
Core executemany), letting a batch gather for up to ``linger`` seconds (0.2 by default;
``flush()`` and a full batch end the wait). When the database is unreachable or locked,
a batch goes to the spool (fsynced) and is replayed once the database answers again;
inserts ignore primary keys that exist, so a replay is idempotent. When the bounded queue
is full, the app thread appends the record to the spool itself instead of waiting.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from llmops.store.spool import Record, Spool, encode
from llmops.store.tables import CALLS, FEEDBACK

log = logging.getLogger("llmops.writer")

CALL, FEEDBACK_KIND = "call", "feedback"
_TABLES = {CALL: CALLS, FEEDBACK_KIND: FEEDBACK}


@dataclass
class WriterStats:
    """Counters for tests, benchmarks and `llmops db status`."""

    written: int = 0  # rows stored by normal batches
    spooled: int = 0  # rows that went to the spool
    replayed: int = 0  # spooled rows stored later
    rejected: int = 0  # rows the database refused for good (kept in rejected.log)
    batches: int = 0


class _Marker:
    """A flush request travelling through the queue behind the records before it."""

    def __init__(self) -> None:
        self.done = threading.Event()


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
    ) -> None:
        self._engine_factory = engine_factory
        self._engine: Engine | None = None
        self._prepare = prepare  # e.g. the schema check, run once per engine
        self._prepared = False
        self.spool = Spool(spool_dir)
        self.batch_size = batch_size
        self.linger = linger  # seconds a batch may gather before it is written
        self._wake = threading.Event()
        self._urgent = False  # a flush or close is waiting: write without lingering
        self._queue: queue.Queue[Record | _Marker | None] = queue.Queue(maxsize=queue_size)
        self._retry_min, self._retry_max = retry_min, retry_max
        self._retry_delay = retry_min
        self._next_try = 0.0  # monotonic time before which the database is not tried
        self._next_replay = 0.0  # monotonic time before which the spool is not re-read
        self._closed = False
        self.stats = WriterStats()
        self.last_error: str | None = None
        self._inserts: dict[str, sa.Insert] = {}
        self._pending = False
        self._spooled_since_check = True
        self._next_spool_check = 0.0
        self._thread = threading.Thread(target=self._run, name="llmops-writer", daemon=True)
        self._thread.start()

    # -- the app's side ------------------------------------------------------------

    def put(self, kind: str, row: dict[str, Any]) -> None:
        """Queue one row; never blocks: a full queue spills the row to the spool."""
        if self._closed:
            self.spool.append([(kind, row)])
            self.stats.spooled += 1
            self._spooled_since_check = True
            return
        try:
            self._queue.put_nowait((kind, row))
            if self._queue.qsize() >= self.batch_size:
                self._wake.set()
        except queue.Full:
            self.spool.append([(kind, row)], sync=False)
            self.stats.spooled += 1
            self._spooled_since_check = True

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every row queued so far is in the database or fsynced in the spool."""
        if not self._thread.is_alive():
            return True
        marker = _Marker()
        self._urgent = True
        self._queue.put(marker)
        self._wake.set()
        return marker.done.wait(timeout)

    def close(self, timeout: float | None = 30.0) -> None:
        """Flush, try a last replay of the spool, and stop the thread."""
        if self._closed:
            return
        self.flush(timeout)
        self._closed = True
        self._urgent = True
        self._queue.put(None)
        self._wake.set()
        self._thread.join(timeout)
        self.spool.release()
        if self._engine is not None:
            self._engine.dispose()

    @property
    def healthy(self) -> bool:
        """Whether the last attempt to reach the database worked."""
        return self.last_error is None

    # -- the writer thread ---------------------------------------------------------

    def _spool_pending(self) -> bool:
        """Whether the spool holds files; looks at the folder at most once a second
        unless this writer spooled something itself."""
        now = time.monotonic()
        if self._spooled_since_check or now >= self._next_spool_check:
            self._pending = self.spool.pending()
            self._spooled_since_check = False
            self._next_spool_check = now + 1.0
        return self._pending

    def _run(self) -> None:
        self._replay()  # spool files left by a crashed process, or by a previous run
        stopping = False
        while not stopping:
            wait = 1.0 if self._spool_pending() else None
            try:
                first = self._queue.get(timeout=wait)
            except queue.Empty:
                self._replay()
                continue
            if isinstance(first, tuple) and self.linger > 0:
                # Let a batch gather: one transaction per call would cost the app more
                # (measured in benchmarks/gateway_overhead.py). flush(), close() and a
                # full batch end the wait early. Clear, then look: no wake-up is lost.
                self._wake.clear()
                if not self._urgent and self._queue.qsize() < self.batch_size - 1:
                    self._wake.wait(self.linger)
                self._urgent = False
            items = [first]
            while len(items) < self.batch_size:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            records = [item for item in items if isinstance(item, tuple)]
            if records:
                self._store(records)
            if self._spool_pending():
                self._replay()
            for item in items:
                if isinstance(item, _Marker):
                    self.spool.sync()
                    item.done.set()
                elif item is None:
                    stopping = True
        self._replay()

    def _store(self, records: list[Record]) -> None:
        if self._spool_pending() and not self._replay():
            self._to_spool(records)
            return
        if time.monotonic() < self._next_try:
            self._to_spool(records)
            return
        try:
            self._insert(records)
            stored = len(records)
        except sa.exc.IntegrityError:
            stored = self._insert_one_by_one(records)
        except Exception as exc:  # the database is away: keep everything in the spool
            self._down(exc)
            self._to_spool(records)
            return
        self._up()
        self.stats.written += stored
        self.stats.batches += 1

    def _insert(self, records: list[Record]) -> None:
        engine = self._get_engine()
        calls = [row for kind, row in records if kind == CALL]
        feedback = [row for kind, row in records if kind == FEEDBACK_KIND]
        with engine.begin() as connection:
            if calls:
                connection.execute(self._insert_for(CALL), calls)
            if feedback:
                connection.execute(self._insert_for(FEEDBACK_KIND), feedback)

    def _insert_one_by_one(self, records: list[Record], *, final: bool = False) -> int:
        """Store what the database accepts; park or reject the rows it refuses."""
        refused = []
        stored = 0
        for record in records:
            try:
                self._insert([record])
                stored += 1
            except sa.exc.IntegrityError as exc:
                refused.append((record, exc))
        if refused and final:
            reason = str(refused[0][1].orig)
            self.spool.reject([encode(*record).decode().strip() for record, _ in refused], reason)
            self.stats.rejected += len(refused)
            log.error("llmops: the database refused %d record(s): %s", len(refused), reason)
        elif refused:  # e.g. feedback whose call is still in the spool: retry after replay
            self._to_spool([record for record, _ in refused])
        return stored

    def _insert_for(self, kind: str) -> sa.Insert:
        """INSERT that skips rows whose primary key exists (replays are idempotent)."""
        if kind not in self._inserts:
            table = _TABLES[kind]
            engine = self._get_engine()
            if engine.dialect.name == "postgresql":
                from sqlalchemy.dialects.postgresql import insert as pg_insert

                statement = pg_insert(table).on_conflict_do_nothing()
            else:
                statement = sa.insert(table).prefix_with("OR IGNORE")
            self._inserts[kind] = statement
        return self._inserts[kind]

    def _get_engine(self) -> Engine:
        if self._engine is None:
            self._engine = self._engine_factory()
        if not self._prepared and self._prepare is not None:
            self._prepare(self._engine)
            self._prepared = True
        return self._engine

    def _to_spool(self, records: list[Record]) -> None:
        self.spool.append(records)
        self.stats.spooled += len(records)
        self._spooled_since_check = True

    def _down(self, exc: BaseException) -> None:
        message = f"{type(exc).__name__}: {exc}".splitlines()[0]
        if self.last_error is None:
            log.warning("llmops: database unavailable, spooling records: %s", message)
        self.last_error = message
        self._next_try = time.monotonic() + self._retry_delay
        self._retry_delay = min(self._retry_delay * 2, self._retry_max)

    def _up(self) -> None:
        if self.last_error is not None:
            log.warning("llmops: database available again")
        self.last_error = None
        self._retry_delay = self._retry_min
        self._next_try = 0.0

    def _replay(self) -> bool:
        """Store every spool file no live process holds; False when the database failed
        (now or a moment ago)."""
        if not self.spool.pending():
            return True
        now = time.monotonic()
        if now < self._next_try:
            return False  # the database failed a moment ago: wait before trying again
        if now < self._next_replay:
            return True  # tried a moment ago; what is left belongs to live processes
        self._next_replay = now + self._retry_min
        self.spool.release()
        for path in self.spool.files():
            with self.spool.claim(path) as records:
                if records is None:
                    continue
                try:
                    for start in range(0, len(records), self.batch_size):
                        chunk = records[start : start + self.batch_size]
                        try:
                            self._insert(chunk)
                            stored = len(chunk)
                        except sa.exc.IntegrityError:
                            stored = self._insert_one_by_one(chunk, final=True)
                        self.stats.replayed += stored
                except Exception as exc:
                    self._down(exc)
                    return False
                path.unlink()
        self._spooled_since_check = True  # look at the folder again next time
        self._up()
        return True
