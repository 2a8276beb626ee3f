"""The journal: every record is on disk before the app's call returns.

Each process appends records to its own segment file in the spool folder
(``<host>-<pid>-<random>-<n>.jsonl``, one JSON line per record). A segment is preallocated
(``posix_fallocate``, so a full disk is an error at open, not a crash later) and mapped
into memory: appending a record on the call path is a memory copy into the page cache,
without a system call that would hand the GIL to the writer thread. The page cache keeps
it if the process is SIGKILLed a moment later (``msync``, which only matters against power
loss, runs in batches on the writer thread). Where a file system cannot preallocate, the
journal falls back to one ``write`` per record.

The process holds an exclusive ``flock`` on its open segment, so no other process replays a
file that is still being written; the kernel drops the lock when the process dies.

The writer stores the same records from memory and settles them here. A segment whose
records are all stored is zeroed and reused (the open one) or deleted (a closed one). A
segment holding records that must be read back from disk (the database was down, the queue
was full) is closed and replayed, by this process or by any other one sharing the folder.
Replays are idempotent: inserts skip primary keys that exist.

Lines: ``{"kind": "call" | "feedback", "row": {...}}``, datetimes as ISO strings, plus
``"deferred": n`` for feedback waiting for its call; NUL bytes pad the unused end of a
segment. Lines that cannot be read (a torn write at a crash, a damaged file) go to
``rejected.log`` with the reason.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import mmap
import os
import socket
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from llmops.files import private_dir, private_file
from llmops.store.records import COLUMNS, RecordKind

log = logging.getLogger("llmops.writer")

SEGMENT_BYTES = 4 * 1024 * 1024  # the size of a segment; a fuller one is closed, a new one opened
REJECTED_LOG = "rejected.log"
QUARANTINE = "quarantine"  # files that could not be processed at all, moved aside


@dataclass(slots=True)
class Entry:
    """One record on its way to the database."""

    kind: RecordKind
    row: dict[str, Any]
    segment: Segment | None = None  # where it is journaled (None: only in memory)
    deferred: int = 0  # how often a replay put it back (feedback waiting for its call)


@dataclass(frozen=True)
class JournalSummary:
    """See :meth:`Journal.summary`."""

    files: int  # journal files waiting for a replay
    records: int  # records in them
    live_files: int  # files that live processes are writing
    rejected: int  # records in rejected.log


class Segment:
    """One journal file of this process and what became of its records."""

    __slots__ = ("appended", "closed", "fd", "map", "on_disk", "path", "settled", "size")

    def __init__(self, path: Path, fd: int, mapped: mmap.mmap | None) -> None:
        self.path = path
        self.fd = fd
        self.map = mapped  # the whole preallocated file, or None: append with write()
        self.size = 0  # bytes of records in the file
        self.appended = 0  # records written to the file
        self.settled = 0  # of those, records stored (or rejected) from memory
        self.on_disk = False  # some records must be read back from the file
        self.closed = False

    @property
    def capacity(self) -> int:
        return len(self.map) if self.map is not None else 1 << 62


def decode(line: bytes) -> Entry:
    """A journal line as an Entry; ValueError when it is not a whole, valid record."""
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        data = json.loads(line)  # lenient: files of older versions may hold NaN
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    kind, row = data.get("kind"), data.get("row")
    if kind not in COLUMNS or not isinstance(row, dict):
        raise ValueError("not a call or feedback record")
    fields = {column: row.get(column) for column in COLUMNS[kind]}
    created = fields.get("created_at")
    if not isinstance(created, str):
        raise ValueError("no created_at")
    when = datetime.fromisoformat(created)
    fields["created_at"] = when if when.tzinfo else when.replace(tzinfo=UTC)
    deferred = data.get("deferred", 0)
    return Entry(kind, fields, deferred=deferred if isinstance(deferred, int) else 0)


def encode(entry: Entry) -> bytes:
    """An Entry as a journal line (the writer's re-journaling path; the app's records are
    encoded by :func:`llmops.store.records.storable`)."""
    data: dict[str, Any] = {"kind": entry.kind, "row": entry.row}
    if entry.deferred:
        data["deferred"] = entry.deferred
    return orjson.dumps(data, default=str) + b"\n"


class Journal:
    """This process's journal segments, and access to every segment in the folder."""

    def __init__(
        self, folder: Path, *, segment_bytes: int = SEGMENT_BYTES, mapped: bool = True
    ) -> None:
        self.folder = folder
        self.segment_bytes = segment_bytes
        self._lock = threading.Lock()
        self._active: Segment | None = None
        self._closed: list[Segment] = []  # closed segments with records still in memory
        self._prefix = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._count = 0
        self._dirty = False  # written since the last fsync
        self._mapping = mapped  # False: write() per record (or the file system cannot
        # preallocate)
        self.write_errors = 0
        self.last_write_error: str | None = None

    # -- the app's side (the call path) ---------------------------------------------

    def append(self, line: bytes) -> Segment | None:
        """Write one record line; the segment it went to, or None when the disk refused
        it (full, read-only, gone): the caller keeps the record in memory."""
        with self._lock:
            segment = self._active
            try:
                if segment is None or (
                    segment.size + len(line) > segment.capacity
                    or (segment.size + len(line) > self.segment_bytes and segment.appended)
                ):
                    segment = self._open(len(line))
                if segment.map is not None:  # a memory copy: no system call, GIL kept
                    segment.map[segment.size : segment.size + len(line)] = line
                else:
                    view = memoryview(line)
                    while view:
                        view = view[os.write(segment.fd, view) :]
            except (OSError, ValueError, IndexError) as exc:
                self._write_failed(exc)
                return None
            segment.size += len(line)
            segment.appended += 1
            self._dirty = True
            return segment

    def _write_failed(self, exc: Exception) -> None:
        self.write_errors += 1
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        message = f"{reason} ({self.folder})"
        if self.last_write_error != message:
            log.error("llmops: cannot write the journal: %s; keeping records in memory", message)
        self.last_write_error = message
        # A partial line may be on disk: nothing more may follow it in that file.
        if self._active is not None:
            self._close(self._active)

    def _open(self, need: int) -> Segment:
        if self._active is not None:
            self._close(self._active)
        private_dir(self.folder)
        self._count += 1
        path = self.folder / f"{self._prefix}-{self._count:06d}.jsonl"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            mapped = self._map(fd, max(self.segment_bytes, need))
        except OSError:
            os.close(fd)
            _unlink(path)
            raise
        self._active = Segment(path, fd, mapped)
        return self._active

    def _map(self, fd: int, size: int) -> mmap.mmap | None:
        """Preallocate and map a new segment; None where the file system cannot
        preallocate (then records are appended with write())."""
        if not self._mapping:
            return None
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise  # a full disk: the caller keeps the record in memory
            self._mapping = False
            os.ftruncate(fd, 0)
            return None
        return mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)

    def _close(self, segment: Segment) -> None:
        """Close a segment (synced, cut to its records); it stays on disk until its
        records are settled."""
        if segment.closed:
            return
        if segment.map is not None:
            with contextlib.suppress(OSError, ValueError):
                segment.map.flush()
            with contextlib.suppress(OSError, ValueError, BufferError):
                segment.map.close()
            segment.map = None
            with contextlib.suppress(OSError):
                os.ftruncate(segment.fd, segment.size)  # no padding left behind
        with contextlib.suppress(OSError):
            os.fsync(segment.fd)
        with contextlib.suppress(OSError):
            os.close(segment.fd)
        segment.closed = True
        if self._active is segment:
            self._active = None
        if segment.settled >= segment.appended and not segment.on_disk:
            _unlink(segment.path)
        else:
            self._closed.append(segment)

    # -- the writer's side ----------------------------------------------------------

    def settle(self, segments: Iterable[Segment]) -> None:
        """Count records as stored; truncate or delete segments that are fully stored."""
        with self._lock:
            for segment in segments:
                segment.settled += 1
            self._collect()

    def mark_on_disk(self, segments: Iterable[Segment]) -> None:
        """These segments hold records that must be replayed from the file."""
        with self._lock:
            for segment in segments:
                segment.on_disk = True

    @property
    def needs_replay(self) -> bool:
        """Whether this process's own segments hold records to read back from disk."""
        active = self._active
        return (active is not None and active.on_disk) or any(s.on_disk for s in self._closed)

    def close_for_replay(self) -> None:
        """Close the open segment if it holds records to replay, so that it can be."""
        with self._lock:
            if self._active is not None and self._active.on_disk:
                self._close(self._active)
            self._closed = [s for s in self._closed if not s.on_disk]

    def _collect(self) -> None:
        active = self._active
        settled = active is not None and active.settled >= active.appended
        if active is not None and settled and not active.on_disk and active.size:
            try:  # every record in it is stored: empty it for reuse
                if active.map is not None:
                    active.map[: active.size] = bytes(active.size)
                else:
                    os.ftruncate(active.fd, 0)
            except (OSError, ValueError):
                self._close(active)
            else:
                active.size = active.appended = active.settled = 0
        for segment in list(self._closed):
            if segment.on_disk:
                self._closed.remove(segment)  # a replay takes it from here
            elif segment.settled >= segment.appended:
                _unlink(segment.path)
                self._closed.remove(segment)

    def sync(self) -> None:
        """fsync what was appended since the last sync."""
        with self._lock:
            active = self._active
            if active is not None and self._dirty:
                with contextlib.suppress(OSError, ValueError):
                    if active.map is not None:
                        active.map.flush()
                    else:
                        os.fsync(active.fd)
            self._dirty = False

    def release(self) -> None:
        """Close the open segment: deleted when every record in it is stored, else left
        (fsynced) for a replay, as are the closed ones whose records are not all stored."""
        with self._lock:
            if self._active is not None:
                self._close(self._active)
            for segment in self._closed:
                segment.on_disk = True

    def forget(self) -> None:
        """In a forked child: drop the parent's open segment without touching it."""
        self._lock = threading.Lock()
        if self._active is not None:  # the parent's mapping and descriptor: let go, no sync
            with contextlib.suppress(OSError, ValueError, BufferError):
                if self._active.map is not None:
                    self._active.map.close()
            with contextlib.suppress(OSError):
                os.close(self._active.fd)
        self._active = None
        self._closed = []
        self._prefix = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._count = 0

    # -- every process's files ------------------------------------------------------

    def own_path(self) -> Path | None:
        active = self._active
        return active.path if active is not None else None

    def files(self) -> list[Path]:
        """Every segment file but this process's open one and its closed ones whose records
        wait in memory (the writer stores those from there), oldest first."""
        try:
            names = list(self.folder.glob("*.jsonl"))
        except OSError:
            return []
        own = {self.own_path(), *(s.path for s in list(self._closed) if not s.on_disk)}
        stamped = []
        for path in names:
            if path in own:
                continue
            try:
                stamped.append((path.stat().st_mtime, path.name, path))
            except OSError:  # replayed and deleted by another process meanwhile
                continue
        return [path for _, _, path in sorted(stamped)]

    def pending(self) -> bool:
        """Whether any segment file besides this process's open one exists."""
        return bool(self.files())

    def live_files(self, *, besides: Path | None = None) -> bool:
        """Whether another live process holds a segment (its records may still come);
        ``besides`` is a file this process holds itself (the one it replays)."""
        for path in self.files():
            if path == besides:
                continue
            try:
                with open(path, "rb") as handle:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            except OSError:
                continue
        return False

    def summary(self) -> JournalSummary:
        """What waits in the folder: files (records) to replay, files live processes hold,
        and the records kept in ``rejected.log``."""
        waiting = records = live = 0
        for path in self.files():
            try:
                with open(path, "rb") as handle:
                    try:
                        fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
                    except BlockingIOError:
                        live += 1
                        continue
                    waiting += 1
                    records += sum(1 for line in handle if line.strip(b"\x00\n"))
            except OSError:
                continue
        try:
            with open(self.folder / REJECTED_LOG, "rb") as handle:
                rejected = sum(1 for _ in handle)
        except OSError:
            rejected = 0
        return JournalSummary(waiting, records, live, rejected)

    @contextlib.contextmanager
    def claim(self, path: Path) -> Iterator[list[Entry] | None]:
        """Lock one segment file and read it; None when a live process holds it or it is
        gone. Delete it with :meth:`done` inside the block once its records are stored."""
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed below
        except OSError:
            yield None
            return
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                yield None
                return
            if not path.exists():  # replayed and deleted by someone else meanwhile
                yield None
                return
            entries, bad = [], []
            for raw in handle.read().split(b"\n"):
                line = raw.strip(b"\x00")  # the unused end of a segment is NUL bytes
                if not line.strip():
                    continue
                try:
                    entries.append(decode(line))
                except (ValueError, TypeError, KeyError, RecursionError, OverflowError):
                    bad.append(line.decode("utf-8", "replace"))
            if bad:
                self.reject(bad, f"unreadable journal line in {path.name}")
            yield entries

    def done(self, path: Path) -> None:
        _unlink(path)

    def quarantine(self, path: Path, reason: str) -> None:
        """Move a file that cannot be processed aside, so that it blocks nothing."""
        target = private_dir(self.folder / QUARANTINE) / path.name
        try:
            path.replace(target)
        except OSError:
            return
        self.reject([str(target)], f"journal file moved to {QUARANTINE}/: {reason}")

    def reject(self, lines: list[str], reason: str) -> bool:
        """Keep records the database refused (or unreadable lines), with the reason, for a
        human to look at. False when even that could not be written."""
        try:
            private_dir(self.folder)
            path = self.folder / REJECTED_LOG
            private_file(path)
            with open(path, "a", encoding="utf-8") as handle:
                for line in lines:
                    handle.write(json.dumps({"reason": reason, "record": line}) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            log.error("llmops: cannot write %s (%s): %s", REJECTED_LOG, exc, reason)
            return False
        return True


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            log.warning("llmops: cannot delete journal file %s: %s", path, exc)
