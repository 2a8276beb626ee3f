"""The spool: an append-only local file that holds records while the database is away.

Each process writes its own file (``<host>-<pid>-<random>.jsonl``) and holds an exclusive
``flock`` on it while it is open, so a replaying process never takes a file that is still
being written. A file whose owner died is free to replay by anyone. Lines are JSON:
``{"kind": "call" | "feedback", "row": {...}}``; datetimes are ISO strings.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

Record = tuple[str, dict[str, Any]]  # (kind, row)
_DATETIME_FIELDS = ("created_at",)


def encode(kind: str, row: dict[str, Any]) -> bytes:
    data = dict(row)
    for key in _DATETIME_FIELDS:
        if isinstance(data.get(key), datetime):
            data[key] = data[key].isoformat()
    return json.dumps({"kind": kind, "row": data}, default=str).encode("utf-8") + b"\n"


def decode(line: bytes) -> Record:
    data = json.loads(line)
    row = data["row"]
    for key in _DATETIME_FIELDS:
        if isinstance(row.get(key), str):
            row[key] = datetime.fromisoformat(row[key])
    return data["kind"], row


class Spool:
    """This process's spool file, plus access to every spool file in the folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._handle: BinaryIO | None = None
        self._path: Path | None = None
        self._dirty = False  # written since the last fsync

    def append(self, records: list[Record], *, sync: bool = True) -> None:
        """Append records; with ``sync`` they are on disk (fsync) when this returns."""
        payload = b"".join(encode(kind, row) for kind, row in records)
        with self._lock:
            handle = self._open()
            handle.write(payload)
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
                self._dirty = False
            else:
                self._dirty = True

    def sync(self) -> None:
        """fsync what ``append(sync=False)`` wrote."""
        with self._lock:
            if self._handle is not None and self._dirty:
                os.fsync(self._handle.fileno())
                self._dirty = False

    def _open(self) -> BinaryIO:
        if self._handle is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            name = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
            self._path = self.folder / name
            handle = open(self._path, "ab")  # noqa: SIM115 - held open until released
            fcntl.flock(handle, fcntl.LOCK_EX)
            self._handle = handle
        return self._handle

    def release(self) -> None:
        """Close this process's file (after an fsync) so that it can be replayed."""
        with self._lock:
            if self._handle is not None:
                self._handle.flush()
                os.fsync(self._handle.fileno())
                self._handle.close()
                self._handle = None
                self._dirty = False

    def pending(self) -> bool:
        """Whether any spool file (this process's or an orphan) waits to be replayed."""
        return self.folder.is_dir() and any(self.folder.glob("*.jsonl"))

    @contextlib.contextmanager
    def claim(self, path: Path) -> Iterator[list[Record] | None]:
        """Lock one spool file and read it; None when another live process holds it.

        Delete it with ``path.unlink()`` inside the block once its records are stored.
        Lines that cannot be parsed (a torn write at a crash) go to ``rejected.log``.
        """
        try:
            handle = open(path, "rb")  # noqa: SIM115
        except FileNotFoundError:
            yield None
            return
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield None
                return
            if not path.exists():  # replayed and deleted by someone else meanwhile
                yield None
                return
            records = []
            for line in handle.read().splitlines():
                if not line.strip():
                    continue
                try:
                    records.append(decode(line))
                except (ValueError, KeyError, TypeError):
                    self.reject([line.decode("utf-8", "replace")], "unreadable spool line")
            yield records

    def files(self) -> list[Path]:
        """Every spool file, oldest first."""
        if not self.folder.is_dir():
            return []
        return sorted(self.folder.glob("*.jsonl"), key=lambda p: p.stat().st_mtime)

    def reject(self, lines: list[str], reason: str) -> None:
        """Keep records the database refused, with the reason, for a human to look at."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / "rejected.log", "a", encoding="utf-8") as handle:
            for line in lines:
                handle.write(json.dumps({"reason": reason, "record": line}) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
