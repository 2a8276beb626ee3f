"""Content apart from metadata (migration 0016): the writer stores a call's parameters in
``llm_calls.params`` and the rest of its request and its response in ``llm_call_content``
(no row when there is none); every reader puts the request together again as it was
recorded; the hash chain still verifies; the migration moves existing rows both ways
without changing a figure."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from llmops.audit.verify import verify
from llmops.store.engine import create_engine, upgrade
from llmops.store.queries import call_detail, stored_calls
from llmops.store.queries.recorded import read_calls
from llmops.store.tables import CALL_CONTENT, CALLS
from tests.store.test_rollups import assert_rollups_match, stored_rollups
from tests.store.test_timing import upgrade_down
from tests.store.test_writer import call_row, store_rows

MESSAGES = [{"role": "user", "content": "Where is my parcel?"}]
# (request, response_text, whether the call has a content row)
SHAPES: list[tuple[Any, str | None, bool]] = [
    ({"messages": MESSAGES, "params": {"temperature": 0.2}, "variables": {"q": "parcel"}},
     "It left the depot.", True),
    ({"messages": None, "params": {"temperature": 0.2, "max_tokens": 300}}, None, False),  # none
    ({"messages": None, "params": {}}, None, False),
    (None, "an answer without a stored request", True),
    (None, None, False),
    ({"messages": MESSAGES}, "no params key", True),
    ({"messages": None, "params": {"seed": 7}, "tool_calls": [{"name": "track"}]}, None, True),
    ({"messages": None, "variables": {"q": "x"}}, None, True),
    ({"messages": MESSAGES, "params": {"temperature": 1.0}}, "", True),  # an empty answer
]  # fmt: skip


def shaped_calls(now: datetime) -> list[dict[str, Any]]:
    """One call per shape, the first ones a month back (another partition on PostgreSQL)."""
    return [
        call_row(request=request, response_text=text, created_at=now - timedelta(days=31 * (i % 2)))
        for i, (request, text, _) in enumerate(SHAPES)
    ]


def as_recorded(engine: sa.Engine) -> dict[str, tuple[Any, Any]]:
    with engine.connect() as connection:
        return {r["id"]: (r["request"], r["response_text"]) for r in stored_calls(connection)}


def content_ids(engine: sa.Engine) -> set[str]:
    with engine.connect() as connection:
        return set(connection.execute(sa.select(CALL_CONTENT.c.call_id)).scalars())


def stored_shapes(database_url: str, spool: Path) -> tuple[sa.Engine, list[dict[str, Any]]]:
    """A database at the current schema with one call per shape, stored by the writer."""
    engine = create_engine(database_url)
    upgrade(engine)
    calls = shaped_calls(datetime.now(UTC))
    store_rows(engine, spool, calls)
    return engine, calls


def with_content(calls: list[dict[str, Any]]) -> set[str]:
    """The ids of the calls whose shape has a content row."""
    return {row["id"] for row, (_, _, has) in zip(calls, SHAPES, strict=True) if has}


def test_content_is_stored_apart_and_read_back_as_recorded(
    database_url: str, tmp_path: Path
) -> None:
    engine, calls = stored_shapes(database_url, tmp_path / "spool")
    assert content_ids(engine) == with_content(calls)
    with engine.connect() as connection:
        params = dict(connection.execute(sa.select(CALLS.c.id, CALLS.c.params)).all())
        stored = {r.call_id: r.request for r in connection.execute(sa.select(CALL_CONTENT)).all()}
    for row in calls:
        request = row["request"]
        assert params[row["id"]] == (request or {}).get("params")
        if row["id"] in stored:  # the parameters are not stored twice
            assert "params" not in (stored[row["id"]] or {})

    recorded = as_recorded(engine)
    assert recorded == {row["id"]: (row["request"], row["response_text"]) for row in calls}
    for row in calls:
        detail = call_detail(engine, row["id"])
        assert detail is not None and detail["request"] == recorded[row["id"]][0]
    first = next(iter(read_calls(engine, [calls[0]["id"]])))
    assert first.messages == MESSAGES and first.variables == {"q": "parcel"}
    assert first.response_text == "It left the depot."
    assert verify(engine).ok, verify(engine).breaks


def test_the_migration_moves_content_both_ways_keeping_figures_and_chains(
    empty_database_url: str, tmp_path: Path
) -> None:
    engine, calls = stored_shapes(empty_database_url, tmp_path / "spool")
    recorded = as_recorded(engine)
    rollups = stored_rollups(engine)

    upgrade_down(engine, "0015")  # the columns come back, with the content in them
    with engine.connect() as connection:
        old = {
            r.id: (json.loads(r.request) if isinstance(r.request, str) else r.request,
                   r.response_text)
            for r in connection.execute(
                sa.text("SELECT id, request, response_text FROM llm_calls"))
        }  # fmt: skip
        assert not sa.inspect(connection).has_table("llm_call_content")
    assert old == {row["id"]: (row["request"], row["response_text"]) for row in calls}
    assert stored_rollups(engine) == rollups  # the triggers saw no change

    upgrade(engine)  # and back: the same calls, content and figures
    assert as_recorded(engine) == recorded
    assert content_ids(engine) == with_content(calls)
    assert stored_rollups(engine) == rollups
    assert_rollups_match(engine)
    assert verify(engine).ok, verify(engine).breaks
    if engine.dialect.name == "postgresql":  # each content row in its call's month
        with engine.connect() as connection:
            homes = connection.execute(
                sa.text(
                    "SELECT c.tableoid::regclass::text, l.tableoid::regclass::text "
                    "FROM llm_call_content c JOIN llm_calls l "
                    "ON l.id = c.call_id AND l.created_at = c.created_at"
                )
            ).all()
        assert homes and all(
            content == call.replace("llm_calls_", "llm_call_content_") for content, call in homes
        )


def test_the_migration_moves_requests_llmops_never_writes_as_they_are(
    empty_database_url: str,
) -> None:
    """Rows written around llmops: a request that is not a JSON object, parameters that are
    not one (and, on SQLite, text that is not JSON) move to llm_call_content unchanged."""
    engine = create_engine(empty_database_url)
    upgrade(engine, "0015")
    odd = {
        "string": '"abc"',
        "array": "[1, 2]",
        "params not an object": '{"messages": null, "params": "x"}',
    }
    if engine.dialect.name == "sqlite":
        odd["not JSON"] = "not json {"
    cast = "CAST(:request AS jsonb)" if engine.dialect.name == "postgresql" else ":request"
    with engine.begin() as connection:
        for call_id, request in odd.items():
            connection.execute(
                sa.text(
                    "INSERT INTO llm_calls (id, created_at, source, model, status, "
                    "tokens_estimated, cost_status, request) VALUES (:id, :at, 'app', 'm', "
                    f"'ok', false, 'unpriced', {cast})"
                ),
                {"id": call_id, "at": datetime.now(UTC), "request": request},
            )
    upgrade(engine)
    with engine.connect() as connection:
        params = dict(connection.execute(sa.text("SELECT id, params FROM llm_calls")).all())
        content = dict(
            connection.execute(
                sa.text("SELECT call_id, CAST(request AS TEXT) FROM llm_call_content")
            ).all()
        )
    assert params == dict.fromkeys(odd)
    for call_id, request in odd.items():
        stored = content[call_id]
        if call_id == "not JSON":
            assert stored == request
        else:
            assert json.loads(stored) == json.loads(request)
