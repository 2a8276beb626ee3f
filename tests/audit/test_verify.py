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
    # (a call moved to another day may leave its feedback's rollup behind on SQLite,
    # whose triggers follow no change of a call's time: found too, apart)
    found = [f for f in problems(database_url) if "rollup of" not in f]
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


def test_calls_stored_while_it_runs_are_no_break(
    database_url: str, make_gateway: Any, server: Any
) -> None:
    """verify read the chains' heads, then walked the rows: rows an app stored in between
    were "past the recorded head", a false alarm in every run beside a busy app. It reads
    one snapshot now."""
    gateway = make_gateway()
    record(make_gateway, server, calls=4)
    engine = create_engine(database_url)
    stored: list[str] = []

    @sa.event.listens_for(engine, "after_cursor_execute")
    def store_meanwhile(connection: Any, cursor: Any, statement: str, *args: Any) -> None:
        if stored or "audit_chains" not in statement:
            return
        for i in range(3):  # committed by the gateway's writer, on its own connections
            server.enqueue(Reply(text="meanwhile", prompt_tokens=10, completion_tokens=2))
            result = gateway.complete(
                model="gpt-4o-mini", messages=[{"role": "user", "content": f"q{i}"}],
                api_base=server.base_url, **ROUTE,
            )  # fmt: skip
            gateway.feedback(result.call_id, 1, name="thumbs")
            stored.append(result.call_id)
        assert gateway.flush(timeout=30)

    try:
        result = verify(engine)
        assert stored and result.ok, result.breaks
        assert result.checked == {"llm_calls": 4, "feedback": 2}  # as they were when it began
        again = verify(engine)
        assert again.ok and again.checked == {"llm_calls": 7, "feedback": 5}
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "deleted",
    [
        ["DELETE FROM llm_calls WHERE id = :last"],
        ["DELETE FROM feedback"],
        ["DELETE FROM feedback", "DELETE FROM llm_call_content", "DELETE FROM llm_calls"],
    ],
)
def test_a_time_window_still_checks_the_chains_ends(
    database_url: str, make_gateway: Any, server: Any, deleted: list[str]
) -> None:
    """A window verified its rows and skipped the heads: a chain's last rows, a whole
    chain or every call deleted verified "intact" (and so did the report's period)."""
    ids = record(make_gateway, server, calls=6)
    start = datetime.now(UTC) - timedelta(days=3)
    window = {"since": start - timedelta(days=1), "until": start + timedelta(minutes=2)}
    assert problems(database_url, **window) == []
    execute(database_url, "DELETE FROM feedback WHERE call_id = :last", last=ids[-1])
    for statement in deleted:
        execute(database_url, statement, last=ids[-1])
    found = problems(database_url, **window)
    assert any("missing (deleted)" in p for p in found), found
    assert len(found) == len(set(found))


def test_floats_jsonb_gives_back_as_their_decimal_verify(
    database_url: str, make_gateway: Any, server: Any
) -> None:
    """JSONB keeps 1e23 as the decimal 10**23 and gives back that integer, where the writer
    hashed the float (99999999999999991611392): every such call was "changed"."""
    import sys

    gateway = make_gateway()
    # floats, and integers stored as such (d, and an id that is also a float's decimal)
    values = {"a": 1e23, "b": 1.5e300, "c": sys.float_info.max, "d": 2**63 + 1, "e": -7e22,
              "id": 1234567890123456800, "list": [1e23, 1234567890123456800],
              "samples": [1.2345678901234568e18] * 9}  # fmt: skip
    server.enqueue(Reply(text="x", prompt_tokens=10, completion_tokens=2))
    result = gateway.complete(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "q"}],
        api_base=server.base_url, metadata=values, tags=["t"], **ROUTE,
    )  # fmt: skip
    assert gateway.flush(timeout=30)
    assert problems(database_url) == []
    if database_url.startswith("postgresql"):
        edit = "UPDATE llm_calls SET metadata = jsonb_set(metadata, '{a}', '1e22') WHERE id = :id"
    else:
        edit = "UPDATE llm_calls SET metadata = json_set(metadata, '$.a', 1e22) WHERE id = :id"
    execute(database_url, edit, id=result.call_id)
    assert [p.split(" ", 3)[3] for p in problems(database_url)] == [
        "row changed after it was stored"
    ]
    execute(database_url, edit.replace("1e22", "1e23"), id=result.call_id)  # as it was
    assert problems(database_url) == []
    # the id to another integer of the same float value
    edit = edit.replace("{a}", "{id}").replace("$.a", "$.id").replace("1e22", "1234567890123456768")
    execute(database_url, edit, id=result.call_id)
    assert len(problems(database_url)) == 1


def test_rows_hashed_before_whole_floats_were_decimals_still_verify(
    database_url: str, make_gateway: Any, server: Any, monkeypatch: Any
) -> None:
    """Rows stored before 2026-12-05 hashed a whole float beyond 2**53 by its exact value
    (1e23 as 99999999999999991611392): they verify, on PostgreSQL too, where JSONB gives
    1e23 back as 10**23."""
    from llmops.store import chain

    canonical = chain.canonical
    monkeypatch.setattr(chain, "canonical", lambda value, legacy=False: canonical(value, True))
    gateway = make_gateway()
    server.enqueue(Reply(text="x", prompt_tokens=10, completion_tokens=2))
    gateway.complete(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "q 1e23"}],
        api_base=server.base_url, metadata={"a": 1e23, "b": [-7e22, 0.5]}, **ROUTE,
    )  # fmt: skip
    assert gateway.flush(timeout=30)
    monkeypatch.setattr(chain, "canonical", canonical)
    assert problems(database_url) == []


def test_deleted_audit_events_are_found_or_change_the_kept_head(
    database_url: str, make_gateway: Any, server: Any
) -> None:
    """Deleting every event (chain_start too) verified intact; deleting the last one (a
    re-pricing, whose cost changes the hashes do not cover) leaves no gap, so the events'
    head is among the heads to keep elsewhere, as the chains' are."""
    record(make_gateway, server, calls=2)
    engine = create_engine(database_url)
    try:
        from llmops.store.audit_log import record_event

        with engine.begin() as connection:
            record_event(connection, "recompute", 2, {"note": "re-priced"})
        kept = {h.chain_id: (h.last_seq, h.last_hash) for h in verify(engine).heads}
        assert kept["audit_events"][0] == 2
        execute(database_url, "DELETE FROM audit_events WHERE seq = 2")
        result = verify(engine)
        assert result.ok  # nothing in the database says it was there...
        now = {h.chain_id: (h.last_seq, h.last_hash) for h in result.heads}
        assert now["audit_events"] != kept["audit_events"]  # ...but the kept head does
        execute(database_url, "DELETE FROM audit_events")
        assert "audit_events 1 None the audit events are missing (deleted)" in problems(
            database_url
        )
    finally:
        engine.dispose()


def test_a_window_finds_its_last_rows_deleted_when_the_chain_goes_on(
    database_url: str, make_gateway: Any, server: Any
) -> None:
    """A period's last calls deleted, the chain going on after the period: the window's
    walk ended at the last row left, and the head's row was there, so it said intact."""
    ids = record(make_gateway, server, calls=10)
    start = datetime.now(UTC) - timedelta(days=3)
    # calls a minute apart from about ``start``: the window ends half a minute after row 9
    window = {"since": start - timedelta(days=1), "until": start + timedelta(minutes=8.5)}
    for call_id in ids[5:9]:  # rows 6-9, of the period; row 10 is after it
        execute(database_url, "DELETE FROM feedback WHERE call_id = :i", i=call_id)
        execute(database_url, "DELETE FROM llm_calls WHERE id = :i", i=call_id)
    found = problems(database_url, **window)
    assert any("rows 6-9 of the chain are missing (deleted)" in p for p in found), found
    # so does any window: the rows' times went with them
    early = problems(database_url, until=start + timedelta(minutes=3.5))  # rows 1-4
    assert sorted(early) == sorted(found)


def test_a_row_past_the_head_is_reported_once_by_a_window(
    database_url: str, make_gateway: Any, server: Any
) -> None:
    ids = record(make_gateway, server, calls=3)
    execute(
        database_url,
        "INSERT INTO llm_calls (id, created_at, source, model, status, tokens_estimated, "
        "cost_status, chain_id, chain_seq, content_hash, row_hash) SELECT :new, created_at, "
        "source, model, status, tokens_estimated, cost_status, chain_id, chain_seq + 1, "
        "content_hash, row_hash FROM llm_calls WHERE id = :id",
        new="e" * 36, id=ids[-1],
    )  # fmt: skip
    start = datetime.now(UTC) - timedelta(days=3)
    for window in ({}, {"since": start - timedelta(days=1), "until": start + timedelta(days=1)}):
        found = [p for p in problems(database_url, **window) if "past its recorded head" in p]
        assert len(found) == 1, (window, found)


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("UPDATE llm_calls_daily SET calls = calls + 1000", "calls 1,00"),
        ("UPDATE llm_calls_daily SET cost_usd = cost_usd * 2", "cost_usd"),
        ("DELETE FROM llm_calls_daily", "calls 0 (its rows: "),
        ("UPDATE feedback_daily SET feedback_count = feedback_count + 3", "feedback_count"),
    ],
)  # fmt: skip
def test_an_edited_daily_rollup_is_found(
    database_url: str, make_gateway: Any, server: Any, statement: str, expected: str
) -> None:
    """The figures of whole days (the dashboard, `llmops spend`, the audit report) come from
    the daily rollups, which the chains do not cover: an edit of one around its triggers
    changed them while verify (and the report's integrity section) said every row was
    intact. Verify now checks each day's rollups against its rows."""
    record(make_gateway, server, calls=6)
    assert problems(database_url) == []
    execute(database_url, statement)
    found = problems(database_url)
    assert found and all("rollup of" in f and expected in " ".join(found) for f in found), found


def test_the_rollups_of_days_before_a_prune_are_not_checked(
    database_url: str, make_gateway: Any, server: Any
) -> None:
    """A prune keeps the rollups of the days whose calls it removes: those days are counted
    as not checkable, and verify passes."""
    from llmops.audit.retention import prune

    record(make_gateway, server, calls=6)  # three days ago
    engine = create_engine(database_url)
    try:
        prune(engine, calls_days=1, force=True)
        result = verify(engine)
    finally:
        engine.dispose()
    assert result.ok, result.breaks
    assert result.rollup_days_pruned >= 1
