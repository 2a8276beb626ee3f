"""The writer: batches rows, spools them while the database is away, and loses none."""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import os
import random
import sqlite3
import subprocess
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import llmops.store.writer as writer_module
from llmops.store.chain import Chains
from llmops.store.engine import check_schema, create_engine
from llmops.store.journal import Entry, Journal, encode
from llmops.store.queries import stored_calls
from llmops.store.records import fitted, split_content
from llmops.store.tables import CALL_CONTENT, CALLS, FEEDBACK, JSON
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


# the columns of llm_calls from 0009 to today (0016 added params)
CALL_COLUMNS = tuple(c for c in CALLS.c if c.name != "params")
# llm_calls before migration 0016: the request (parameters included) and the response in it
CALLS_0015 = sa.Table(
    "llm_calls",
    sa.MetaData(),
    *(sa.Column(c.name, c.type) for c in CALLS.columns if c.name != "params"),
    sa.Column("request", JSON),
    sa.Column("response_text", sa.Text),
)


def content_apart(connection: sa.Connection) -> bool:
    """Whether the schema keeps content in llm_call_content (0016 or later)."""
    return "params" in {c["name"] for c in sa.inspect(connection).get_columns("llm_calls")}


def recorded_calls(connection: sa.Connection) -> list[dict]:
    """Every stored call as recorded (request and response included), at any schema."""
    if content_apart(connection):
        return stored_calls(connection)
    return [dict(r) for r in connection.execute(sa.text("SELECT * FROM llm_calls")).mappings()]


def insert_calls(connection: sa.Connection, rows: list[dict], *, ignore: bool = False) -> None:
    """Insert call rows (:func:`call_row`) straight into the tables, bypassing the writer, in
    the shape of the database's schema: from 0016 on, each call's content goes to
    llm_call_content. ``ignore``: skip rows whose key is stored."""
    if not content_apart(connection):
        batches = [(CALLS_0015, rows)]
    else:
        calls, content = split_content(rows)
        batches = [(CALLS, calls), (CALL_CONTENT, content)]
    for table, batch in batches:
        if not batch:
            continue
        statement: Any = table.insert()
        if ignore and connection.dialect.name == "sqlite":
            statement = statement.prefix_with("OR IGNORE")
        elif ignore:
            from sqlalchemy.dialects.postgresql import insert

            statement = insert(table).on_conflict_do_nothing()
        connection.execute(statement, batch)


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
    """Write calls, then feedback, through a Writer, and wait until all are stored. At a
    schema before 0016, which the writer no longer writes (migration tests), as the writer
    of that time stored them: in hash chains, straight into the tables."""
    with engine.connect() as connection:
        current = content_apart(connection)
    if not current:
        chains = Chains()
        with engine.begin() as connection:
            for kind, rows in (("call", calls), ("feedback", feedback)):
                stored = [fitted(kind, row) for row in rows]
                chains.seal(connection, kind, stored)
                if stored and kind == "call":
                    insert_calls(connection, stored)
                elif stored:
                    connection.execute(FEEDBACK.insert(), stored)
        chains.commit()
        return
    writer = Writer(lambda: engine, spool)
    for row in calls:
        writer.put("call", row)
    for row in feedback:
        writer.put("feedback", row)
    writer.close()
    assert writer.stats.written == len(calls) + len(feedback)


def assert_chains_intact(url: str, calls: int) -> None:
    """Every stored call is in a hash chain without a gap or a break."""
    from llmops.audit.verify import verify

    engine = create_engine(url)
    try:
        result = verify(engine)
    finally:
        engine.dispose()
    assert result.ok, result.breaks[:5]
    assert result.checked["llm_calls"] == calls and result.unchained["llm_calls"] == 0


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


def wait_for_a_rejection(writer: Writer, seconds: float = 10) -> None:
    """Flush, then wait until the writer has rejected a row (its retries take a moment)."""
    writer.flush(seconds)
    deadline = time.monotonic() + seconds
    while writer.stats.rejected == 0 and time.monotonic() < deadline:
        time.sleep(0.05)


def test_feedback_for_an_unknown_call_is_rejected_not_lost(
    make_writer, database_url: str, tmp_path: Path
) -> None:
    writer = make_writer()
    good = call_row()
    writer.put("call", good)
    writer.put("feedback", feedback_row(str(uuid.uuid4())))
    writer.put("feedback", feedback_row(good["id"]))
    wait_for_a_rejection(writer)
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
    orphan.write_bytes(b"".join(encode(Entry("call", row)) for row in rows))
    second = make_writer()
    second.flush(10)
    deadline = time.monotonic() + 10
    while orphan.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not orphan.exists()
    assert count(database_url) == 50
    # the 20 rows stored already did not take a second place in a chain
    assert_chains_intact(database_url, 50)


def test_torn_spool_line_is_kept_in_rejected_log(make_writer, database_url: str, tmp_path):
    row = call_row()
    orphan = tmp_path / "spool" / "crashed.jsonl"
    orphan.parent.mkdir(exist_ok=True)
    orphan.write_bytes(encode(Entry("call", row)) + b'{"kind": "call", "row": {"id": "tor')
    writer = make_writer()
    deadline = time.monotonic() + 10
    while orphan.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    writer.flush(10)
    assert count(database_url) == 1
    assert '"id\\": \\"tor' in (tmp_path / "spool" / "rejected.log").read_text()


def test_a_live_process_journal_file_is_not_taken(tmp_path: Path) -> None:
    mine = Journal(tmp_path)
    mine.append(encode(Entry("call", call_row())))
    other = Journal(tmp_path)
    (path,) = other.files()
    with other.claim(path) as entries:
        assert entries is None  # still locked by its writer
    mine.release()  # its record was never stored: the file stays for a replay
    with other.claim(path) as entries:
        assert entries is not None and len(entries) == 1


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
    writer.close()
    # rows replayed from the journal while they still waited in the queue were stored once
    # and took one place in the chain (a second insert once left a gap per row)
    assert_chains_intact(database_url, 2000)


def test_feedback_spilled_while_its_call_waits_in_the_queue_is_stored(
    make_writer, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A burst of calls, then their feedback, over the queue's size: the feedback put last
    goes to the journal while its call still waits in the queue. Replayed before the call
    was stored (a replay a second, after any batch), it was rejected as the feedback of a
    call never stored (3,000 of 12,000). Here a replay is due after every batch, and the
    journal's segments are small: full ones are replayed (180 of 250 rejected, before)."""
    monkeypatch.setattr(writer_module, "REPLAY_EVERY", 0.0)
    writer = make_writer(queue_size=300, batch_size=10, linger=0.05, segment_bytes=20_000)
    calls = [call_row() for _ in range(250)]
    for row in calls:
        writer.put("call", row)
    for row in calls:
        writer.put("feedback", feedback_row(row["id"]))
    assert writer.stats.spooled > 0  # some feedback took the spill path
    assert writer.flush(60)
    writer.close()
    assert writer.stats.rejected == 0
    with create_engine(database_url).connect() as connection:
        stored = connection.execute(sa.text("SELECT count(*) FROM feedback")).scalar()
    assert (count(database_url), stored) == (250, 250)


def test_rows_replayed_while_queued_take_one_place_in_the_chain(
    make_writer, database_url: str
) -> None:
    """A flush replays this process's own journal, which holds rows still in the queue."""
    writer = make_writer(queue_size=200, batch_size=50)
    for _ in range(1000):
        writer.put("call", call_row())
    assert writer.flush(60)
    writer.close()
    assert writer.stats.replayed > 0 and writer.stats.written > 0
    assert_chains_intact(database_url, 1000)


def test_close_flushes(make_writer, database_url: str) -> None:
    writer = make_writer()
    for _ in range(10):
        writer.put("call", call_row())
    writer.close()
    assert count(database_url) == 10
    late = call_row()
    writer.put("call", late)  # after close (say, at interpreter exit): kept in the journal
    assert count(database_url) == 10
    make_writer().flush(10)  # the next process replays it
    assert count(database_url) == 11


# -- bad records, refused rows, damaged files: isolated, never fatal -------------------------


class Opaque:
    """An object that is not JSON."""

    def __repr__(self) -> str:
        return "<Opaque>"


def poison_rows() -> list[dict]:
    circular: dict = {}
    circular["self"] = circular
    return [
        call_row(metadata=circular),
        call_row(metadata={("a", 1): "tuple key", 2: "int key"}),
        call_row(metadata={"blob": b"\x00\xff", "object": Opaque(), "set": {1}}),
        call_row(metadata={"nan": float("nan"), "inf": float("inf")}),
        call_row(response_text="NUL \x00 inside", error_message="\x00"),
        call_row(metadata={"k\x00": "v\x00"}, tags=["a\x00b"]),
        call_row(request={"messages": [{"role": "user", "content": "x\x00y"}], "params": {}}),
        call_row(user_id="u" * 500, session_id="s" * 300, model="m" * 300),
        call_row(response_text="lone surrogate \ud800 here"),
        call_row(metadata={"deep": _nested(200)}),
        call_row(metadata={"big": "x" * 200_000}),
        # a provider's garbage usage: PostgreSQL's INTEGER refused the call, SQLite took it
        call_row(prompt_tokens=3_000_000_000, completion_tokens=10**19, cached_tokens=-(2**40)),
    ]


def _nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"d": value}
    return value


def test_poison_records_are_stored_and_the_writer_carries_on(make_writer, database_url):
    """Issue: one bad record killed the writer; every later call was lost and close() hung."""
    writer = make_writer(queue_size=50)
    poison = poison_rows()
    good = [call_row() for _ in range(100)]
    for row in poison + good:
        writer.put("call", row)
    assert writer.flush(30)
    assert count(database_url) == len(poison) + len(good)
    assert writer.stats.rejected == 0
    closing = threading.Thread(target=writer.close)
    closing.start()
    closing.join(30)
    assert not closing.is_alive()
    with create_engine(database_url).connect() as connection:
        stored = (
            connection.execute(
                sa.text("SELECT id, user_id FROM llm_calls WHERE id = :id"),
                {"id": poison[7]["id"]},
            )
            .one()
            ._mapping
        )
        text = connection.execute(
            sa.text("SELECT response_text FROM llm_call_content WHERE call_id = :id"),
            {"id": poison[4]["id"]},
        ).scalar_one()
        absurd = connection.execute(
            sa.select(CALLS.c.prompt_tokens, CALLS.c.completion_tokens, CALLS.c.cached_tokens,
                      CALLS.c.reasoning_tokens, CALLS.c.cost_usd, CALLS.c.usage_details)
            .where(CALLS.c.id == poison[11]["id"])
        ).one()  # fmt: skip
    assert len(stored["user_id"]) == 200 and stored["user_id"].startswith("u" * 150)
    assert text == "NUL \ufffd inside"
    # unknown in their columns, kept as reported; the call and its cost are stored
    assert absurd[:5] == (None, None, None, 0, poison[11]["cost_usd"])
    assert absurd.usage_details["out_of_range"] == {
        "prompt_tokens": "3000000000",
        "completion_tokens": str(10**19),
        "cached_tokens": str(-(2**40)),
    }
    # repaired rows are chained as stored; the batches split around them leave no gap
    assert_chains_intact(database_url, len(poison) + len(good))


class Colour(enum.Enum):
    RED = "red"


class Effort(str, enum.Enum):  # noqa: UP042 (not a StrEnum: its str() is "Effort.HIGH")
    HIGH = "high"


@dataclasses.dataclass
class Point:
    x: int


def test_long_or_numeric_ids_and_objects_in_metadata_are_stored_as_hashed(
    make_writer, database_url: str
) -> None:
    """What the writer hashes is what the database keeps: two distinct ids longer than the
    id column, alike in their first 35 characters, were one row (the second lost, and on
    SQLite a gap in the chain); an id given as a number is stored as its digits, and a
    datetime, an enum or a dataclass in metadata as its JSON, which verify reported as rows
    changed after they were stored."""
    writer = make_writer()
    long = "chatcmpl-" + "x" * 40
    naive = datetime(2026, 12, 5, 12)  # noqa: DTZ001 (an app's clock)
    objects = {"naive": naive, "aware": datetime(2026, 12, 5, tzinfo=UTC),
               "colour": Colour.RED, "effort": Effort.HIGH, "point": Point(1),
               "pair": (1, 2)}  # fmt: skip
    calls = [call_row(id=long + "1"), call_row(id=long + "2"), call_row(id=5),
             call_row(metadata=objects, request={"messages": [{"role": "user", "content": "hi"}],
                                                 "params": {"effort": Effort.HIGH}})]  # fmt: skip
    feedback = [feedback_row(long + "2"), {**feedback_row(5), "id": long + "f1"},  # type: ignore[arg-type]
                {**feedback_row(5), "id": long + "f2"}]  # type: ignore[arg-type]  # fmt: skip
    for row in calls:
        writer.put("call", row)
    for row in feedback:
        writer.put("feedback", row)
    assert writer.flush(30)
    assert writer.stats.rejected == 0
    with create_engine(database_url).connect() as connection:
        ids = set(connection.execute(sa.select(CALLS.c.id)).scalars())
        answers = connection.execute(sa.select(FEEDBACK.c.id, FEEDBACK.c.call_id)).all()
        metadata = connection.execute(
            sa.select(CALLS.c.metadata).where(CALLS.c.id == calls[3]["id"])
        ).scalar_one()
    assert len(ids) == 4 and "5" in ids and all(len(i) <= 36 for i in ids)
    assert len(answers) == 3 and {a.call_id for a in answers} < ids
    assert metadata == {"naive": "2026-12-05T12:00:00", "aware": "2026-12-05T00:00:00+00:00",
                        "colour": "red", "effort": "high", "point": {"x": 1},
                        "pair": [1, 2]}  # fmt: skip
    assert_chains_intact(database_url, 4)


def test_rows_others_keep_storing_meanwhile_wait_in_the_journal(
    make_writer, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch whose look-ups keep missing rows that others store meanwhile gives up after
    one round per row: its rows are kept in the journal, as in an outage, and stored once
    the way is clear. They were taken for rows the database refused, and rejected."""
    rounds = []

    def always_stored(self: Writer, *args: object, **kwargs: object) -> list:
        rounds.append(1)
        raise writer_module._StoredAlready

    writer = make_writer()
    with monkeypatch.context() as patched:
        patched.setattr(Writer, "_transaction", always_stored)
        for _ in range(3):
            writer.put("call", call_row())
        writer.flush(2)
        assert (writer.stats.rejected, count(database_url)) == (0, 0)
        assert writer.stats.spooled == 3 and len(rounds) >= 4  # 3 rows: 4 rounds
    deadline = time.monotonic() + 20
    while count(database_url) < 3 and time.monotonic() < deadline:
        writer.flush(5)
        time.sleep(0.05)
    assert (count(database_url), writer.stats.rejected) == (3, 0)
    assert_chains_intact(database_url, 3)


def refuse_user(database_url: str, user: str, table: str = "llm_calls") -> None:
    """Make the database refuse every row of ``table`` with ``user`` as user_id (a
    constraint the app cannot see)."""
    engine = create_engine(database_url)
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.execute(
                sa.text(
                    f"CREATE TRIGGER refuse BEFORE INSERT ON {table} "
                    f"WHEN NEW.user_id = '{user}' "
                    "BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END"
                )
            )
        else:
            connection.execute(
                sa.text(
                    "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
                    f"IF NEW.user_id = '{user}' THEN RAISE EXCEPTION 'refused by a trigger' "
                    "USING ERRCODE = 'check_violation'; END IF; RETURN NEW; END $$ "
                    "LANGUAGE plpgsql"
                )
            )
            connection.execute(
                sa.text(
                    f"CREATE TRIGGER refuse BEFORE INSERT ON {table} "
                    "FOR EACH ROW EXECUTE FUNCTION refuse()"
                )
            )


def test_rows_the_database_refuses_are_rejected_and_the_rest_stored(
    make_writer, database_url: str, tmp_path: Path
) -> None:
    refuse_user(database_url, "refused")
    writer = make_writer()
    rows = [call_row(user_id="refused" if i in (3, 250, 499) else "u1") for i in range(500)]
    for row in rows:
        writer.put("call", row)
    assert writer.flush(30)
    assert count(database_url) == 497
    assert writer.stats.rejected == 3
    assert writer.healthy  # a refused row is not an outage
    log = (tmp_path / "spool" / "rejected.log").read_text().splitlines()
    assert len(log) == 3
    assert all("refused by a trigger" in line for line in log)
    writer.close()
    assert not list((tmp_path / "spool").glob("*.jsonl"))  # nothing left to replay
    assert_chains_intact(database_url, 497)  # the refused rows took no place in the chain


def test_feedback_refused_after_its_batchs_calls_leaves_each_call_stored_once(
    make_writer, database_url: str, tmp_path: Path
) -> None:
    """Calls and feedback are stored in a transaction each (calls first). When the database
    refuses feedback after the batch's calls committed, the batch is split and stored again:
    its calls are found stored (no second place in the chain, no second report to the
    observers), the refused feedback is rejected and the rest stored."""
    refuse_user(database_url, "refused", table="feedback")
    writer = make_writer(batch_size=1000, linger=1.0)
    reported: list[str] = []
    writer.stored_observers.append(reported.extend)
    calls = [call_row() for _ in range(200)]
    feedback = [
        {**feedback_row(call["id"]), "user_id": "refused" if i in (5, 77) else "rater"}
        for i, call in enumerate(calls[:100])
    ]
    for row in calls:
        writer.put("call", row)
    for row in feedback:
        writer.put("feedback", row)
    assert writer.flush(30)
    assert count(database_url) == 200
    assert count(database_url, "feedback") == 98
    assert writer.stats.rejected == 2
    assert sorted(reported) == sorted(call["id"] for call in calls)
    log = (tmp_path / "spool" / "rejected.log").read_text().splitlines()
    assert len(log) == 2 and all("refused by a trigger" in line for line in log)
    writer.close()
    assert_chains_intact(database_url, 200)


def test_a_damaged_journal_file_blocks_nothing(make_writer, database_url: str, tmp_path: Path):
    """Issue: on PostgreSQL one bad value jammed the spool for every process."""
    spool = tmp_path / "spool"
    spool.mkdir()
    good = [call_row() for _ in range(5)]
    nul = call_row(response_text="a\x00b", metadata={"x\x00": 1})
    long_user = call_row(user_id="x" * 400)
    nan_json = encode(Entry("call", call_row())).replace(b'"k": 1', b'"k": NaN')
    (spool / "old-1-dead.jsonl").write_bytes(
        b'{"kind": "call", "row": null}\n'
        b"not json at all\n"
        b'{"kind": "nonsense", "row": {}}\n'
        b'{"kind": "call", "row": {"id": "no-created-at"}}\n'
        + encode(Entry("call", nul))
        + encode(Entry("call", long_user))
        + nan_json
        + b"".join(encode(Entry("call", row)) for row in good[:2])
    )
    later = [call_row() for _ in range(50)]
    newer = spool / "new-2-dead.jsonl"
    newer.write_bytes(b"".join(encode(Entry("call", row)) for row in later + good[2:]))
    os.utime(newer, (time.time() + 5, time.time() + 5))
    writer = make_writer()
    assert writer.flush(30)
    assert count(database_url) == 3 + 50 + 5
    assert not list(spool.glob("*.jsonl"))
    rejected = (spool / "rejected.log").read_text().splitlines()
    assert len(rejected) == 4  # the four unreadable lines, each with its reason
    assert all("unreadable journal line" in line for line in rejected)


def test_flush_and_close_return_while_the_database_is_locked(tmp_path: Path) -> None:
    """Issue: with a full queue, close() and interpreter exit hung forever."""
    url = f"sqlite:///{tmp_path / 'locked.db'}"
    check_schema(create_engine(url))
    engine = create_engine(url, busy_timeout_ms=50)
    writer = Writer(lambda: engine, tmp_path / "spool", queue_size=5, batch_size=5)
    blocker = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    rows = [call_row() for _ in range(2000)]
    for row in rows:
        writer.put("call", row)
    assert writer.flush(30)  # durable: in the fsynced journal
    closing = threading.Thread(target=writer.close, kwargs={"timeout": 5})
    closing.start()
    closing.join(60)
    assert not closing.is_alive()
    blocker.execute("COMMIT")
    blocker.close()
    second = Writer(lambda: create_engine(url), tmp_path / "spool")
    assert second.flush(30)
    second.close()
    assert count(url) == 2000


def test_an_unexpected_error_loses_nothing(make_writer, database_url: str) -> None:
    """Any exception (here from the engine's preparation) is survived; records wait."""
    failures = []

    def prepare(engine) -> None:
        if len(failures) < 3:
            failures.append(1)
            raise RuntimeError("something nobody expected")

    writer = make_writer(prepare=prepare)
    rows = [call_row() for _ in range(30)]
    for row in rows:
        writer.put("call", row)
    deadline = time.monotonic() + 20
    while count(database_url) < 30 and time.monotonic() < deadline:
        writer.flush(5)
        time.sleep(0.05)
    assert count(database_url) == 30
    assert len(failures) == 3


def test_close_stores_what_spilled_to_the_journal(make_writer, database_url, tmp_path) -> None:
    """Issue: rows stayed on disk after a clean close() when a replay had just run."""
    writer = make_writer(queue_size=5, batch_size=5)
    for _ in range(300):
        writer.put("call", call_row())
    writer.close()
    assert count(database_url) == 300
    assert not list((tmp_path / "spool").glob("*.jsonl"))


def test_the_journal_is_emptied_once_rows_are_stored(make_writer, tmp_path: Path) -> None:
    writer = make_writer()
    for _ in range(20):
        writer.put("call", call_row())
    assert writer.flush(10)
    (segment,) = (tmp_path / "spool").glob("*.jsonl")
    assert segment.read_bytes().strip(b"\x00") == b""  # stored: zeroed, nothing to replay
    writer.close()
    assert not list((tmp_path / "spool").glob("*.jsonl"))


@pytest.fixture
def full_disk(tmp_path: Path):
    """A folder on a real, full file system (a 64 KB tmpfs, filled up): every write there
    fails with ENOSPC. Needs root to mount (CI runs as root)."""
    mount = tmp_path / "full"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        (mount / "spool").mkdir()
        with contextlib.suppress(OSError), open(mount / "filler", "wb") as handle:
            while True:
                handle.write(b"x" * 4096)
                handle.flush()
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.integration  # full_disk runs mount and umount
def test_a_full_disk_under_the_journal_loses_nothing(full_disk: Path, tmp_path: Path) -> None:
    """Issue: ENOSPC under the spool killed the writer. With the journal on a full disk
    and the database locked, records are held in memory and flush() says they are not
    durable; once the database answers, every one is stored."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    check_schema(create_engine(url))
    engine = create_engine(url, busy_timeout_ms=50)
    writer = Writer(lambda: engine, full_disk / "spool", retry_min=0.05, retry_max=0.1)
    blocker = sqlite3.connect(tmp_path / "db.sqlite", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        for _ in range(100):
            writer.put("call", call_row())
        assert writer.flush(10) is False  # only in memory: not promised
        assert writer.journal.write_errors > 0 and writer.stats.held > 0
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    deadline = time.monotonic() + 20
    while count(url) < 100 and time.monotonic() < deadline:
        writer.flush(5)
    assert count(url) == 100
    for _ in range(50):  # the database is back, the disk is still full
        writer.put("call", call_row())
    assert writer.flush(10) is True
    writer.close()
    assert count(url) == 150


@pytest.mark.integration
def test_writers_on_postgresql_insert_pages_of_rows_and_never_deadlock(
    postgres_url: str, tmp_path: Path
) -> None:
    """A batch goes as a few multi-row INSERTs, not one per row, so the rollup triggers run
    once per page and lock their rows in key order: four writers storing calls of the same
    days, models and users in different orders all store every row on the first try."""
    engine = create_engine(postgres_url)
    check_schema(engine)
    with engine.begin() as connection:  # counts the statements that insert calls
        connection.execute(sa.text("CREATE TABLE fired (n int)"))
        connection.execute(
            sa.text(
                "CREATE FUNCTION count_fired() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN INSERT INTO fired VALUES (1); RETURN NULL; END $$"
            )
        )
        connection.execute(
            sa.text(
                "CREATE TRIGGER count_fired AFTER INSERT ON llm_calls "
                "FOR EACH STATEMENT EXECUTE FUNCTION count_fired()"
            )
        )
    writers = [
        Writer(lambda: create_engine(postgres_url), tmp_path / f"spool{i}", batch_size=1000)
        for i in range(4)
    ]
    start = threading.Barrier(len(writers))
    now = datetime.now(UTC)

    def write(writer: Writer, seed: int) -> None:
        rng = random.Random(seed)
        rows = [
            call_row(
                created_at=now - timedelta(days=rng.randrange(3)),
                model=rng.choice(["gpt-4o-mini", "gpt-4o"]),
                user_id=f"u{rng.randrange(20)}",
                tags=[rng.choice("abc")],
                latency_ms=rng.uniform(10, 5000),
            )
            for _ in range(3000)
        ]
        start.wait()
        for row in rows:
            writer.put("call", row)
        writer.close()

    threads = [threading.Thread(target=write, args=(w, i)) for i, w in enumerate(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert [w.stats.written for w in writers] == [3000] * 4, [w.stats for w in writers]
    assert [(w.stats.spooled, w.stats.replayed, w.stats.errors) for w in writers] == [(0, 0, 0)] * 4
    with engine.connect() as connection:
        statements = connection.execute(sa.text("SELECT count(*) FROM fired")).scalar()
        assert 4 * 3 <= statements <= 4 * 3000 / 250  # pages, not rows
        calls = connection.execute(sa.text("SELECT sum(calls) FROM llm_calls_daily")).scalar()
    assert calls == count(postgres_url) == 12_000


def test_writers_storing_the_same_rows_in_other_orders_never_deadlock(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes replaying one journal store the same rows at once, each in its own
    order: each INSERT locked the content's keys in its batch's order, and PostgreSQL
    aborted one of the two ("deadlock detected"; its rows waited in the journal, and a
    close could leave them there). Batches now go in key order. Here both INSERTs of the
    content start at the same moment, with the rows in opposite orders."""
    check_schema(create_engine(postgres_url))
    together = threading.Barrier(2)
    insert_table = Writer._insert_table

    def at_once(self: Writer, connection: Any, kind: str, rows: list[dict]) -> int:
        if kind == "content":
            with contextlib.suppress(threading.BrokenBarrierError):
                together.wait(5)
        return insert_table(self, connection, kind, rows)

    monkeypatch.setattr(Writer, "_insert_table", at_once)
    rows = [call_row(response_text=f"answer {i}") for i in range(2000)]
    writers = [
        Writer(lambda: create_engine(postgres_url), tmp_path / f"spool{i}", batch_size=2000)
        for i in range(2)
    ]

    def write(writer: Writer, order: list[dict]) -> None:
        for row in order:
            writer.put("call", dict(row))
        writer.flush(60)

    threads = [
        threading.Thread(target=write, args=pair)
        for pair in zip(writers, [rows, rows[::-1]], strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    stats = [dataclasses.replace(w.stats) for w in writers]
    together.abort()
    for writer in writers:
        writer.close()
    assert [(s.spooled, s.errors, s.rejected) for s in stats] == [(0, 0, 0)] * 2, stats
    assert count(postgres_url) == count(postgres_url, "llm_call_content") == 2000
    assert_chains_intact(postgres_url, 2000)


def test_rows_in_memory_are_not_read_back_from_the_journal(
    make_writer, database_url: str, monkeypatch
) -> None:
    """Segments the journal has closed while their rows still wait in the queue are this
    writer's to store from memory: no replay reads them back (each batch is stored in one
    go: looked up once on SQLite, inserted once on PostgreSQL, where no row was there)."""
    monkeypatch.setattr("llmops.store.writer.REPLAY_EVERY", 0.01)  # look at the files often
    writer = make_writer(segment_bytes=64 * 1024)  # a segment every ~100 rows
    engine = create_engine(database_url)
    looked_up: list[str] = []
    inserts: list[str] = []

    def look_up(_conn, _cursor, statement, _parameters, _context, _many) -> None:
        if " ".join(statement.split()).startswith("SELECT llm_calls.id FROM llm_calls WHERE"):
            looked_up.append(statement)
        if statement.startswith("INSERT INTO llm_calls ") and not _many:
            inserts.append(statement)

    writer._engine = engine  # the writer's engine, watched
    sa.event.listen(engine, "before_cursor_execute", look_up)
    rows = [call_row() for _ in range(3000)]
    for row in rows:
        writer.put("call", row)
    assert writer.flush(30)
    assert count(database_url) == 3000
    assert writer.stats.replayed == 0 and writer.stats.spooled == 0
    if engine.dialect.name == "sqlite":
        assert len(looked_up) == writer.stats.batches
    else:
        assert (len(looked_up), len(inserts)) == (0, writer.stats.batches)
