"""The writer: batches rows, spools them while the database is away, and loses none."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from llmops.store.engine import check_schema, create_engine
from llmops.store.spool import Spool, encode
from llmops.store.writer import Writer


def call_row(**overrides: object) -> dict:
    row = {
        "id": str(uuid.uuid4()),
        "created_at": datetime.now(UTC),
        "source": "app",
        "prompt_name": "support/answer",
        "prompt_version": "0123456789ab",
        "git_commit": None,
        "model": "gpt-4o-mini",
        "provider": "openai",
        "status": "ok",
        "error_type": None,
        "error_message": None,
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "cached_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "tokens_estimated": False,
        "cost_usd": 0.0000045,
        "cost_status": "priced",
        "price_source": "test",
        "latency_ms": 12.5,
        "ttft_ms": None,
        "user_id": "u1",
        "session_id": None,
        "tags": ["a"],
        "metadata": {"k": 1},
        "request": {"messages": [{"role": "user", "content": "hi"}], "params": {}},
        "response_text": "hello",
    }
    row.update(overrides)
    return row


def feedback_row(call_id: str, score: float = 1.0) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "call_id": call_id,
        "created_at": datetime.now(UTC),
        "name": "rating",
        "score": score,
        "comment": None,
        "user_id": None,
    }


def store_rows(engine, spool: Path, calls: list[dict], feedback: list[dict] = ()) -> None:
    """Write calls, then feedback, through a Writer, and wait until all are stored."""
    writer = Writer(lambda: engine, spool)
    for row in calls:
        writer.put("call", row)
    for row in feedback:
        writer.put("feedback", row)
    writer.close()
    assert writer.stats.written == len(calls) + len(feedback)


def count(url: str, table: str = "llm_calls") -> int:
    with create_engine(url).connect() as connection:
        return connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()


@pytest.fixture
def make_writer(database_url: str, tmp_path: Path):
    check_schema(create_engine(database_url))
    writers: list[Writer] = []

    def make(**kwargs: object) -> Writer:
        url = kwargs.pop("url", database_url)
        engine = create_engine(str(url), busy_timeout_ms=int(kwargs.pop("busy_ms", 5000)))
        writer = Writer(lambda: engine, tmp_path / "spool", retry_min=0.05, retry_max=0.2, **kwargs)
        writers.append(writer)
        return writer

    yield make
    for writer in writers:
        writer.close()


def test_rows_are_batched_and_all_stored(make_writer, database_url: str) -> None:
    writer = make_writer()
    rows = [call_row() for _ in range(3000)]
    for row in rows:
        writer.put("call", row)
    assert writer.flush(30)
    assert count(database_url) == 3000
    assert writer.stats.written == 3000
    assert writer.stats.batches < 300  # batched, not one insert per row
    with create_engine(database_url).connect() as connection:
        stored = connection.execute(
            sa.text("SELECT tags, metadata, created_at FROM llm_calls WHERE id = :id"),
            {"id": rows[0]["id"]},
        ).one()
    assert stored.tags == ["a"] or stored.tags == '["a"]'


def test_feedback_follows_its_call_in_the_same_batch(make_writer, database_url: str) -> None:
    writer = make_writer()
    row = call_row()
    writer.put("call", row)
    writer.put("feedback", feedback_row(row["id"], 4))
    writer.put("feedback", feedback_row(row["id"], 5))
    writer.flush(10)
    assert count(database_url, "feedback") == 2


def test_feedback_for_an_unknown_call_is_rejected_not_lost(
    make_writer, database_url: str, tmp_path: Path
) -> None:
    writer = make_writer()
    good = call_row()
    writer.put("call", good)
    writer.put("feedback", feedback_row(str(uuid.uuid4())))
    writer.put("feedback", feedback_row(good["id"]))
    writer.flush(10)
    deadline = time.monotonic() + 10
    while writer.stats.rejected == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    writer.flush(10)
    assert count(database_url) == 1
    assert count(database_url, "feedback") == 1
    assert writer.stats.rejected == 1
    rejected = (tmp_path / "spool" / "rejected.log").read_text()
    assert '"kind": "feedback"' in rejected or "feedback" in rejected


def test_spool_replay_is_idempotent(make_writer, database_url: str, tmp_path: Path) -> None:
    rows = [call_row() for _ in range(50)]
    first = make_writer()
    for row in rows[:20]:
        first.put("call", row)
    first.flush(10)
    # a crashed process left a spool file holding rows that are partly stored already
    orphan = tmp_path / "spool" / "otherhost-999-dead.jsonl"
    orphan.parent.mkdir(exist_ok=True)
    orphan.write_bytes(b"".join(encode("call", row) for row in rows))
    second = make_writer()
    second.flush(10)
    deadline = time.monotonic() + 10
    while orphan.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not orphan.exists()
    assert count(database_url) == 50


def test_torn_spool_line_is_kept_in_rejected_log(make_writer, database_url: str, tmp_path):
    row = call_row()
    orphan = tmp_path / "spool" / "crashed.jsonl"
    orphan.parent.mkdir(exist_ok=True)
    orphan.write_bytes(encode("call", row) + b'{"kind": "call", "row": {"id": "tor')
    writer = make_writer()
    deadline = time.monotonic() + 10
    while orphan.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    writer.flush(10)
    assert count(database_url) == 1
    assert '"id\\": \\"tor' in (tmp_path / "spool" / "rejected.log").read_text()


def test_a_live_process_spool_file_is_not_taken(tmp_path: Path) -> None:
    mine = Spool(tmp_path)
    mine.append([("call", call_row())])
    other = Spool(tmp_path)
    (path,) = other.files()
    with other.claim(path) as records:
        assert records is None  # still locked by its writer
    mine.release()
    with other.claim(path) as records:
        assert records is not None and len(records) == 1


def test_locked_sqlite_spools_then_replays(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'locked.db'}"
    check_schema(create_engine(url))
    engine = create_engine(url, busy_timeout_ms=50)
    writer = Writer(lambda: engine, tmp_path / "spool", retry_min=0.05, retry_max=0.1)
    try:
        blocker = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        rows = [call_row() for _ in range(200)]
        for row in rows[:100]:
            writer.put("call", row)
        writer.flush(10)
        assert writer.stats.spooled >= 1
        assert not writer.healthy
        blocker.execute("COMMIT")
        blocker.close()
        for row in rows[100:]:
            writer.put("call", row)
        deadline = time.monotonic() + 10
        while count(url) < 200 and time.monotonic() < deadline:
            time.sleep(0.05)
            writer.flush(5)
        assert count(url) == 200
        assert writer.healthy
    finally:
        writer.close()


def test_full_queue_spills_without_blocking_and_loses_nothing(make_writer, database_url):
    writer = make_writer(queue_size=5, batch_size=5)
    rows = [call_row() for _ in range(2000)]
    started = time.perf_counter()
    threads = [
        threading.Thread(target=lambda part=part: [writer.put("call", r) for r in part])
        for part in (rows[:1000], rows[1000:])
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    writer.flush(30)
    deadline = time.monotonic() + 20
    while count(database_url) < 2000 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert count(database_url) == 2000
    assert writer.stats.spooled > 0  # some rows took the spill path
    assert elapsed < 20


def test_close_flushes(make_writer, database_url: str) -> None:
    writer = make_writer()
    for _ in range(10):
        writer.put("call", call_row())
    writer.close()
    assert count(database_url) == 10
    writer.put("call", call_row())  # after close: kept in the spool, not lost
    assert writer.spool.pending()
