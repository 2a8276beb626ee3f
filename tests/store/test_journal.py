"""The journal: records on disk before the call returns, files other processes can replay."""

from __future__ import annotations

import os
import signal
import stat
import threading
from pathlib import Path

import pytest

from llmops.store.journal import Entry, Journal, decode, encode
from tests.store.test_writer import call_row


def test_listing_survives_files_vanishing_under_it(tmp_path: Path) -> None:
    """Issue: Spool.files() called stat() on files another process was deleting, and the
    writer died (4 of 18 starting processes)."""
    journal = Journal(tmp_path)
    stop = threading.Event()

    def churn() -> None:
        n = 0
        while not stop.is_set():
            path = tmp_path / f"other-{n % 50}.jsonl"
            path.write_bytes(b"")
            path.unlink()
            n += 1

    churner = threading.Thread(target=churn)
    churner.start()
    try:
        for _ in range(3000):
            journal.files()
            journal.pending()
    finally:
        stop.set()
        churner.join()


def test_files_are_owner_only(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "home" / "spool")
    journal.append(encode(Entry("call", call_row())))
    journal.reject(["x"], "a reason")
    for folder in (tmp_path / "home", tmp_path / "home" / "spool"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for path in (tmp_path / "home" / "spool").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


@pytest.mark.parametrize(
    "line",
    [
        b'{"kind": "call", "row": null}',
        b'{"kind": "call"}',
        b'{"kind": "other", "row": {"created_at": "2026-01-01T00:00:00"}}',
        b'{"kind": "call", "row": {"id": "x"}}',
        b'{"kind": "call", "row": {"created_at": "not a date"}}',
        b'{"kind": "call", "row": {"created_at": 5}}',
        b"[1, 2]",
        b'"text"',
        b"\xff\xfe\x00garbage",
        b'{"kind": "call", "row": {"id": "tor',
        b"[" * 100_000,
    ],
)
def test_a_damaged_line_is_a_value_error(line: bytes) -> None:
    with pytest.raises((ValueError, RecursionError)):
        decode(line)


def test_a_line_keeps_only_known_columns(tmp_path: Path) -> None:
    row = call_row()
    line = encode(Entry("call", {**row, "unknown_column": 1}))
    entry = decode(line)
    assert "unknown_column" not in entry.row
    assert entry.row["id"] == row["id"] and entry.row["created_at"] == row["created_at"]


@pytest.mark.parametrize("mapped", [True, False], ids=["mapped", "write"])
def test_a_segment_is_emptied_once_settled_and_rotates_when_large(tmp_path, mapped) -> None:
    journal = Journal(tmp_path, segment_bytes=4096, mapped=mapped)
    line = encode(Entry("call", call_row()))
    segments = [journal.append(line) for _ in range(20)]
    assert all(segment is not None for segment in segments)
    names = {segment.path.name for segment in segments if segment}
    assert len(names) > 1  # rotated at 4 KB
    journal.settle(segment for segment in segments if segment)
    # stored: closed segments are deleted, the open one is zeroed for reuse
    assert [p.read_bytes().strip(b"\x00") for p in tmp_path.glob("*.jsonl")] == [b""]
    journal.release()
    assert list(tmp_path.glob("*.jsonl")) == []


@pytest.mark.integration  # forks a process
def test_a_forked_child_writes_its_own_segment(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.append(encode(Entry("call", call_row())))
    pid = os.fork()
    if pid == 0:  # the child: forget the parent's segment, write a new one
        try:
            journal.forget()
            ok = journal.append(encode(Entry("call", call_row()))) is not None
            journal.release()
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(list(tmp_path.glob("*.jsonl"))) == 2


@pytest.mark.integration  # forks a process
@pytest.mark.parametrize("mapped", [True, False], ids=["mapped", "write"])
def test_a_record_survives_sigkill_right_after_append(tmp_path: Path, mapped: bool) -> None:
    """What the crash test relies on: once append() returned, a SIGKILL keeps the line."""
    row = call_row()
    pid = os.fork()
    if pid == 0:
        journal = Journal(tmp_path, mapped=mapped)
        journal.append(encode(Entry("call", row)))
        os.kill(os.getpid(), signal.SIGKILL)
    os.waitpid(pid, 0)
    (path,) = tmp_path.glob("*.jsonl")
    with Journal(tmp_path).claim(path) as entries:
        assert entries is not None and [e.row["id"] for e in entries] == [row["id"]]


def test_a_line_larger_than_a_segment_gets_its_own(tmp_path: Path) -> None:
    journal = Journal(tmp_path, segment_bytes=4096)
    big = encode(Entry("call", call_row(response_text="x" * 20_000)))
    small = encode(Entry("call", call_row()))
    assert journal.append(small) and journal.append(big) and journal.append(small)
    journal.release()
    entries = []
    for path in journal.files():
        with journal.claim(path) as found:
            entries += found or []
    assert len(entries) == 3
