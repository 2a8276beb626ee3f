"""``llmops audit verify``: the hash chains over stored calls and feedback catch a row that
was edited, deleted or inserted behind llmops's back, on SQLite and PostgreSQL; legitimate
changes (re-pricing, pruning) are events, not breaks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from llmops.audit.verify import verify
from llmops.store.audit_log import list_events
from llmops.store.engine import create_engine
from llmops.testing import Reply

pytestmark = pytest.mark.integration

ROUTE = {"api_key": "sk-test", "num_retries": 0}


def record(make_gateway: Any, server: Any, calls: int = 12, gateways: int = 1) -> list[str]:
    """``calls`` calls (one in three with feedback) through ``gateways`` gateways."""
    start = datetime.now(UTC) - timedelta(days=3)
    ids: list[str] = []
    made = [
        make_gateway(clock=lambda: start + timedelta(minutes=len(ids))) for _ in range(gateways)
    ]
    for i in range(calls):
        gateway = made[i % gateways]
        server.enqueue(Reply(text=f"answer {i}", prompt_tokens=100 + i, completion_tokens=10))
        result = gateway.complete(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"question {i}"}],
            api_base=server.base_url, user=f"u{i % 3}", tags=["t"], **ROUTE,
        )  # fmt: skip
        ids.append(result.call_id)
        if i % 3 == 0:
            gateway.feedback(result.call_id, i % 2, name="thumbs", comment=f"c{i}")
    for gateway in made:
        assert gateway.flush(timeout=30)
    return ids


def execute(url: str, statement: str, **params: Any) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(statement), params)
    finally:
        engine.dispose()


def problems(url: str, **window: Any) -> list[str]:
    engine = create_engine(url)
    try:
        result = verify(engine, **window)
    finally:
        engine.dispose()
    return [f"{b.table} {b.seq} {b.row_id} {b.problem}" for b in result.breaks]


def chain_of(url: str, call_id: str) -> tuple[str, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            row = connection.execute(
                sa.text("SELECT chain_id, chain_seq FROM llm_calls WHERE id = :id"), {"id": call_id}
            ).one()
    finally:
        engine.dispose()
    return str(row[0]), int(row[1])


def test_an_untouched_database_verifies(database_url: str, make_gateway: Any, server: Any) -> None:
    ids = record(make_gateway, server, calls=12, gateways=2)
    engine = create_engine(database_url)
    try:
        result = verify(engine)
        with engine.connect() as connection:
            hashes = connection.execute(sa.text("SELECT row_hash FROM llm_calls")).scalars().all()
    finally:
        engine.dispose()
    assert result.ok, result.breaks
    assert result.checked == {"llm_calls": 12, "feedback": 4}
    assert result.unchained == {"llm_calls": 0, "feedback": 0}
    assert result.chains == 4  # two writers, a chain per table each
    assert len(set(hashes)) == len(ids) and all(len(h) == 64 for h in hashes)
    assert {h.last_seq for h in result.heads if h.table == "llm_calls"} == {6}


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("UPDATE llm_calls SET latency_ms = latency_ms + 1 WHERE id = :id", "row changed"),
        ("UPDATE llm_calls SET model = 'gpt-4o' WHERE id = :id", "row changed"),
        ("UPDATE llm_calls SET prompt_tokens = 1 WHERE id = :id", "row changed"),
        # (its content, kept under the call's time, no longer meets it either)
        ("UPDATE llm_calls SET created_at = created_at - INTERVAL '1 day' WHERE id = :id"
         .replace("created_at - INTERVAL '1 day'", "'2020-01-01 00:00:00'"),
         ("content changed", "row changed")),
        ("UPDATE llm_call_content SET response_text = 'forged' WHERE call_id = :id",
         "content changed"),
        ("UPDATE llm_call_content SET response_text = NULL WHERE call_id = :id",
         "content changed"),
        # without a prune that covers it, content that is gone was deleted
        ("DELETE FROM llm_call_content WHERE call_id = :id", "content changed"),
        ("UPDATE llm_calls SET params = NULL WHERE id = :id", "row changed"),
        # NULL stands for "no content": a call with content that loses its digest breaks
        ("UPDATE llm_calls SET content_hash = NULL WHERE id = :id",
         ("content changed", "row changed")),
    ],
)  # fmt: skip
def test_an_edited_row_is_found(
    database_url: str, make_gateway: Any, server: Any, statement: str, expected: Any
) -> None:
    ids = record(make_gateway, server, calls=6)
    execute(database_url, statement, id=ids[3])
    found = problems(database_url)
    wanted = expected if isinstance(expected, tuple) else (expected,)
    assert len(found) == len(wanted), found
    assert all(ids[3] in f and w in f for f, w in zip(found, wanted, strict=True)), found


def test_rows_without_content_store_no_digest_and_still_verify(
    database_url: str, make_gateway: Any, server: Any
) -> None:
    """content="none" calls and comment-less feedback store NULL for the digest of no
    content (64 bytes saved on each); their row hashes still cover it, so content added
    behind llmops's back, or a digest forged in, breaks the chain."""
    gateway = make_gateway(content="none")
    ids = []
    for i in range(4):
        server.enqueue(Reply(text=f"secret {i}"))
        result = gateway.complete(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"private {i}"}],
            api_base=server.base_url, **ROUTE,
        )  # fmt: skip
        ids.append(result.call_id)
        gateway.feedback(result.call_id, 1, name="thumbs", comment="kept" if i == 0 else None)
    assert gateway.flush(timeout=30)
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            calls = connection.execute(sa.text("SELECT content_hash FROM llm_calls")).all()
            feedback = connection.execute(
                sa.text("SELECT comment, content_hash FROM feedback ORDER BY comment")
            ).all()
        assert verify(engine).ok
    finally:
        engine.dispose()
    assert calls == [(None,)] * 4
    assert [c is None for c, _ in feedback].count(True) == 3
    assert all((digest is None) == (comment is None) for comment, digest in feedback)

    execute(
        database_url,
        "INSERT INTO llm_call_content (call_id, created_at, response_text) "
        "SELECT id, created_at, 'forged' FROM llm_calls WHERE id = :id",
        id=ids[1],
    )
    found = problems(database_url)
    assert len(found) == 1 and ids[1] in found[0] and "content changed" in found[0], found
    execute(database_url, "DELETE FROM llm_call_content WHERE call_id = :id", id=ids[1])
    execute(database_url, "UPDATE llm_calls SET content_hash = :h WHERE id = :id",
            h="0" * 64, id=ids[2])  # fmt: skip
    found = problems(database_url)
    assert len(found) == 2 and all(ids[2] in f for f in found), found


def test_a_deleted_row_is_found_in_the_middle_and_at_the_end(
    database_url: str, make_gateway: Any, server: Any
) -> None:
    ids = record(make_gateway, server, calls=6)
    execute(database_url, "DELETE FROM llm_calls WHERE id IN (:a, :b)", a=ids[2], b=ids[5])
    execute(database_url, "DELETE FROM feedback WHERE call_id = :a", a=ids[3])  # the last one
    found = problems(database_url)
    _, seq = chain_of(database_url, ids[1])
    assert any(f"row {seq + 1} of the chain is missing" in p for p in found), found
    assert any("at the chain's end is missing" in p for p in found), found
    assert any(p.startswith("feedback 2") and "end is missing" in p for p in found), found
    assert len(found) == 3, found


def test_an_inserted_row_is_found(database_url: str, make_gateway: Any, server: Any) -> None:
    ids = record(make_gateway, server, calls=4)
    copy = (
        "INSERT INTO llm_calls (id, created_at, source, model, status, tokens_estimated, "
        "cost_status, chain_id, chain_seq, content_hash, row_hash) SELECT :new, created_at, "
        "source, model, status, tokens_estimated, cost_status, {chain} FROM llm_calls "
        "WHERE id = :id"
    )
    execute(database_url, copy.format(chain="NULL, NULL, NULL, NULL"), new="f" * 36, id=ids[1])
    found = problems(database_url)  # backdated: found by the count of unchained rows
    assert found == [
        "llm_calls None None 1 row without a hash chain; 0 were stored before it began"
    ]
    execute(database_url, "UPDATE llm_calls SET created_at = :now WHERE id = :id",
            now=datetime.now(UTC) + timedelta(minutes=5), id="f" * 36)  # fmt: skip
    found = problems(database_url)  # dated after the chain began: found by itself too
    assert any("f" * 36 in p and "stored after the chain began" in p for p in found), found
    execute(database_url, "DELETE FROM llm_calls WHERE id = :id", id="f" * 36)
    # a forged row that claims a place in the chain
    execute(
        database_url,
        copy.format(chain="chain_id, chain_seq, content_hash, row_hash"), new="e" * 36, id=ids[1],
    )  # fmt: skip
    found = problems(database_url)
    assert found and any("twice" in p or "changed" in p for p in found), found


def test_an_edited_or_deleted_audit_event_is_found(
    database_url: str, make_gateway: Any, server: Any
) -> None:
    record(make_gateway, server, calls=2)
    execute(database_url, "UPDATE audit_events SET rows = rows + 5 WHERE seq = 1")
    assert any("audit event 1" in p and "edited" in p for p in problems(database_url))


def test_a_time_window_verifies_only_its_rows(
    database_url: str, make_gateway: Any, server: Any
) -> None:
    ids = record(make_gateway, server, calls=8)
    execute(database_url, "UPDATE llm_calls SET latency_ms = 1 WHERE id = :id", id=ids[1])
    start = datetime.now(UTC) - timedelta(days=3)
    later = {"since": start + timedelta(minutes=4)}  # calls 4-7: untouched
    assert problems(database_url, **later) == []
    assert len(problems(database_url, until=start + timedelta(minutes=4))) == 1


def test_chain_start_counts_the_rows_stored_before_it(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        from llmops.store.engine import check_schema

        check_schema(engine)
        (start,) = list_events(engine)
        assert start.kind == "chain_start" and start.intact
        assert start.details == {"unchained": {"llm_calls": 0, "feedback": 0}}
        assert verify(engine).ok
    finally:
        engine.dispose()
