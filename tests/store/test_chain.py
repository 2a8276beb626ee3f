"""The hash chain's canonical form: a row reads back from SQLite and PostgreSQL to the hash
the writer gave it, whatever odd values it holds."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from llmops.audit.verify import verify
from llmops.store import writer as writer_module
from llmops.store.chain import (
    EMPTY_CONTENT,
    canonical,
    content_hash,
    link,
    new_chain_id,
    row_hash,
    sealable,
)
from llmops.store.engine import check_schema, create_engine
from llmops.store.writer import Writer
from tests.store.test_writer import call_row, feedback_row


def test_canonical_reads_values_the_way_databases_give_them_back() -> None:
    moment = datetime(2026, 12, 2, 10, 0, 0, 5, tzinfo=UTC)
    assert canonical(moment) == canonical(moment.replace(tzinfo=None))  # SQLite: naive UTC
    assert canonical(moment) == canonical(moment.astimezone(timezone(timedelta(hours=2))))
    assert canonical(5.0) == canonical(5) == b"5"  # JSONB numbers, SQLite REAL
    assert canonical(1e20) == canonical(10**20)
    assert canonical(0.1) == b"0.1" and canonical(-0.0) == b"0"
    assert canonical(float("nan")) == canonical(float("inf")) == canonical(None) == b"null"
    assert canonical(2**70) == b'"1180591620717411303424"'  # an integer, exactly
    # a whole float beyond 2**53 by its shortest decimal, as JSONB keeps and gives it back
    assert canonical(float(2**70)) == canonical(1180591620717411300000)
    assert canonical(1e23) == canonical(10**23) and canonical(-7e22) == canonical(-7 * 10**22)
    assert canonical(float(2**70), legacy=True) == canonical(2**70)  # rows hashed before
    assert canonical("lone \ud800") == b'"lone \\ud800"'  # orjson refuses it: escaped
    assert canonical({"b": 1, "a": [True, None]}) == canonical({"a": [True, None], "b": 1.0})
    assert canonical('é\n"') == '"é\\n\\""'.encode()
    assert canonical(True) != canonical(1)


def test_a_hash_covers_what_it_should_and_not_the_cost() -> None:
    row: dict[str, Any] = call_row(cost_usd=0.5, cost_status="priced")
    digest = content_hash("call", row)
    base = row_hash("0" * 64, "call", row, digest)
    assert row_hash("0" * 64, "call", {**row, "cost_usd": 9.0, "cost_status": "custom"},
                    digest) == base  # fmt: skip  # re-pricing is an audit event
    for field, value in [("model", "x"), ("latency_ms", 1.5), ("user_id", "eve"),
                         ("created_at", datetime(2020, 1, 1, tzinfo=UTC))]:  # fmt: skip
        assert row_hash("0" * 64, "call", {**row, field: value}, digest) != base, field
    assert row_hash("1" * 64, "call", row, digest) != base  # linked to the row before
    assert content_hash("call", {**row, "response_text": "other"}) != digest
    params = {**row["request"], "params": {"temperature": 2}}
    assert content_hash("call", {**row, "request": params}) == digest  # params: metadata
    assert row_hash("0" * 64, "call", {**row, "request": params}, digest) != base


def test_a_row_without_content_links_with_no_digest_stored() -> None:
    """No content stores NULL (saving the 64 characters of a constant digest); the row hash
    is the one the digest of no content gives, so verify can recompute it."""
    none = call_row(request={"messages": None, "params": {"temperature": 0}}, response_text=None)
    assert link("0" * 64, "call", none) == (
        None, row_hash("0" * 64, "call", none, EMPTY_CONTENT["call"])
    )  # fmt: skip
    full = call_row()
    assert link("0" * 64, "call", full) == (
        content_hash("call", full), row_hash("0" * 64, "call", full, content_hash("call", full))
    )  # fmt: skip
    assert link("0" * 64, "feedback", feedback_row("x"))[0] is None  # no comment
    assert link("0" * 64, "feedback", {**feedback_row("x"), "comment": "why"})[0] is not None
    assert EMPTY_CONTENT["call"] != EMPTY_CONTENT["feedback"]
    # worked out before the write lock (the writer), the same hashes verify recomputes
    for kind, row in [("call", none), ("call", full), ("feedback", feedback_row("x"))]:
        ready = sealable(kind, row)
        assert link("f" * 64, kind, row, ready) == link("f" * 64, kind, row)
        assert link("f" * 64, kind, row, ready)[1] == row_hash(
            "f" * 64, kind, row, content_hash(kind, row)
        )


def test_chain_ids_are_short_and_do_not_repeat() -> None:
    ids = {new_chain_id() for _ in range(100_000)}
    assert len(ids) == 100_000
    assert {len(i) for i in ids} == {16}
    assert all(c.isalnum() or c in "-_" for i in list(ids)[:1000] for c in i)


ODD_METADATA: list[Any] = [
    {"big": 10**20, "float_int": 1e20, "neg_zero": -0.0, "tiny": 5e-324, "max": 2**63 - 1},
    {"huge_int": 2**70, "list": [1, 2.5, "3", None, True, {"x": []}], "empty": {}},
    {"quotes": 'a"b\\c', "newline": "l1\nl2", "emoji": "\U0001f600", "ctrl": "\x1b[0m"},
    {"z": 1, "a": 2, "M": {"b": 1, "a": 2}},
    {"nan": float("nan"), "inf": float("-inf")},
]


def test_odd_values_read_back_to_their_hash(database_url: str, tmp_path: Path) -> None:
    engine = create_engine(database_url)
    check_schema(engine)
    writer = Writer(lambda: create_engine(database_url), tmp_path / "spool", prepare=check_schema)
    rows = [call_row(metadata=m, latency_ms=0.1 + i, tags=[f"t{i}", "é"]) for i, m in
            enumerate(ODD_METADATA)]  # fmt: skip
    rows.append(call_row(latency_ms=float("nan"), ttft_ms=float("inf"), prompt_tokens=2**31 - 1))
    for row in rows:
        writer.put("call", row)
    writer.put("feedback", feedback_row(rows[0]["id"], score=4.5))
    assert writer.flush(30)
    writer.close()
    result = verify(engine)
    engine.dispose()
    assert result.ok, result.breaks
    assert result.checked == {"llm_calls": len(rows), "feedback": 1}


def test_a_row_stored_by_another_writer_after_the_look_up_leaves_no_gap(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two writers store the same call (one replays a journal the other wrote): the first
    looks its batch up, finds the call new, and pauses before its INSERT while the second
    stores the call. The first must not seal the call into its chain and then skip it (a
    gap verify reports as a deleted row): on SQLite the look-up holds the write lock, so
    the second waits; on PostgreSQL the first finds its INSERT skipped and looks again."""
    engine = create_engine(database_url)
    check_schema(engine)
    looked_up, second_done = threading.Event(), threading.Event()
    not_stored = writer_module._not_stored

    def pausing(connection: Any, kind: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        found = not_stored(connection, kind, rows)
        if not looked_up.is_set() and any(row["id"] == shared["id"] for row in rows):
            looked_up.set()
            second_done.wait(3)  # SQLite: the second writer waits for our lock meanwhile
        return found

    def writer(name: str) -> Writer:
        return Writer(lambda: create_engine(database_url), tmp_path / name, prepare=check_schema)

    first, second = writer("first"), writer("second")
    earlier, shared = call_row(), call_row()
    first.put("call", earlier)
    assert first.flush(30)
    monkeypatch.setattr(writer_module, "_not_stored", pausing)
    # a batch with a stored call (PostgreSQL then looks the batch up) and the shared one
    first.put("call", earlier)
    first.put("call", shared)
    assert looked_up.wait(30)
    second.put("call", shared)
    assert second.flush(30)
    second_done.set()
    assert first.flush(30)
    first.close()
    second.close()
    result = verify(engine)
    with engine.connect() as connection:
        count = connection.exec_driver_sql("SELECT count(*) FROM llm_calls").scalar()
    engine.dispose()
    assert count == 2
    assert result.ok, result.breaks
