"""The gateway, through real HTTP to the local model server, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import gc
import json
import math
import time
from typing import Any

import pytest
import sqlalchemy as sa

import llmops
from llmops.errors import (
    ConfigError,
    InvalidFeedbackError,
    SchemaOutdatedError,
    TemplateLimitError,
    UnknownCallError,
)
from llmops.gateway.gateway import MAX_SCORE
from llmops.pricing.usage import count_message_tokens, count_text_tokens
from llmops.store.engine import create_engine, upgrade
from llmops.store.queries import stored_calls
from llmops.store.tables import CALLS
from llmops.testing import Reply
from tests.conftest import PromptRepo
from tests.stalls import Stalls

M = 1_000_000
SECRET = "sk-test-DO-NOT-STORE-1234567890"


def rows(url: str, table: str = "llm_calls", **where: Any) -> list[Any]:
    """The rows of ``table``; calls with their request and response (llm_call_content)."""
    with create_engine(url).connect() as connection:
        if table == "llm_calls":
            return stored_calls(connection, *(CALLS.c[k] == v for k, v in where.items()))
        query = f"SELECT * FROM {table}"
        if where:
            query += " WHERE " + " AND ".join(f"{k} = :{k}" for k in where)
        return connection.execute(sa.text(query), where).mappings().all()


def as_json(value: Any) -> Any:
    import json

    return json.loads(value) if isinstance(value, str) else value


def http(server) -> dict[str, Any]:
    return {"api_base": server.base_url, "api_key": SECRET, "num_retries": 0, "max_retries": 0}


USER_MSG = [{"role": "user", "content": "Where is my parcel?"}]


@pytest.fixture
def support_prompt(repo: PromptRepo) -> PromptRepo:
    repo.write(
        "support/answer.yaml",
        """\
        model: gpt-4o-mini
        params: {temperature: 0.2, max_tokens: 300}
        input_schema:
          type: object
          required: [question]
          properties: {question: {type: string}}
        messages:
          - role: system
            content: You answer questions about parcels.
          - role: user
            content: "{{ question }}"
        """,
    )
    repo.commit("Add support/answer")
    return repo


def test_prompt_call_records_every_column(make_gateway, server, support_prompt, database_url):
    gw = make_gateway(prompts=support_prompt.prompts)
    server.enqueue(
        Reply(
            text="It left the depot.", prompt_tokens=1000, completion_tokens=50, cached_tokens=400
        )
    )
    result = gw.complete(
        "support/answer",
        {"question": "Where is my parcel?"},
        user="user-7",
        session="sess-1",
        tags=["checkout", "eu"],
        metadata={"order": 991},
        **http(server),
    )
    expected_cost = 600 * 0.15 / M + 400 * 0.075 / M + 50 * 0.60 / M
    assert result.text == "It left the depot."
    assert result.cost_usd == pytest.approx(expected_cost, rel=1e-12)
    assert result.usage.prompt_tokens == 1000 and result.usage.cached_tokens == 400
    assert result.latency_ms > 0 and result.raw is not None
    gw.flush()
    (row,) = rows(database_url)
    prompt = support_prompt.registry.load("support/answer")
    assert row["id"] == result.call_id
    assert row["created_at"] is not None
    assert (row["source"], row["prompt_name"], row["prompt_version"]) == (
        "app",
        "support/answer",
        prompt.version,
    )
    assert row["git_commit"] == support_prompt.git("rev-parse", "HEAD")
    assert (row["model"], row["provider"], row["status"]) == ("gpt-4o-mini", "openai", "ok")
    assert (row["prompt_tokens"], row["completion_tokens"], row["cached_tokens"]) == (1000, 50, 400)
    assert (row["reasoning_tokens"], row["tokens_estimated"]) == (0, False)
    assert row["cost_usd"] == pytest.approx(expected_cost, rel=1e-9)
    assert row["cost_status"] == "priced" and row["price_source"].startswith("litellm-")
    assert row["latency_ms"] == pytest.approx(result.latency_ms, abs=0.01)
    assert (row["user_id"], row["session_id"]) == ("user-7", "sess-1")
    assert as_json(row["tags"]) == ["checkout", "eu"]
    assert as_json(row["metadata"]) == {"order": 991}
    request = as_json(row["request"])
    assert request["messages"] == [
        {"role": "system", "content": "You answer questions about parcels."},
        {"role": "user", "content": "Where is my parcel?"},
    ]
    assert request["params"]["temperature"] == 0.2 and request["params"]["max_tokens"] == 300
    assert "api_key" not in request["params"]
    assert row["response_text"] == "It left the depot."
    # what the model actually received
    sent = server.requests[-1]
    assert sent.body["temperature"] == 0.2 and sent.body["max_tokens"] == 300


def test_raw_messages_call(make_gateway, server, database_url) -> None:
    gw = make_gateway()
    result = gw.complete(model="gpt-4o-mini", messages=USER_MSG, **http(server))
    assert result.text == "Echo: Where is my parcel?"
    gw.flush()
    (row,) = rows(database_url)
    assert row["prompt_name"] is None and row["prompt_version"] is None
    assert row["model"] == "gpt-4o-mini" and row["status"] == "ok"


def test_api_key_and_auth_headers_are_never_stored(make_gateway, server, database_url) -> None:
    gw = make_gateway(content="full")
    gw.complete(
        model="gpt-4o-mini",
        messages=USER_MSG,
        extra_headers={"Authorization": f"Bearer {SECRET}", "X-Trace": "t1"},
        **http(server),
    )
    gw.flush()
    dump = repr([dict(r) for r in rows(database_url)])
    assert SECRET not in dump
    assert "Authorization" not in dump
    assert server.requests[-1].headers["authorization"] == f"Bearer {SECRET}"


@pytest.mark.parametrize(
    ("status", "error_type"), [(429, "RateLimitError"), (500, "InternalServerError")]
)
def test_errors_are_recorded_and_reraised(make_gateway, server, database_url, status, error_type):
    import litellm

    gw = make_gateway()
    server.enqueue(Reply(status=status))
    with pytest.raises(getattr(litellm, error_type)):
        gw.complete(model="gpt-4o-mini", messages=USER_MSG, **http(server))
    gw.flush()
    (row,) = rows(database_url)
    assert (row["status"], row["error_type"]) == ("error", error_type)
    assert row["error_message"]
    # providers do not bill a failed request: cost 0, and the record says why
    assert (row["cost_usd"], row["cost_status"]) == (0.0, "priced")
    assert row["price_source"] == "not billed: the call failed"
    assert row["prompt_tokens"] is None


def test_missing_usage_is_counted_locally(make_gateway, server, database_url) -> None:
    gw = make_gateway()
    server.enqueue(Reply(text="Tomorrow before noon.", include_usage=False))
    result = gw.complete(model="gpt-4o-mini", messages=USER_MSG, **http(server))
    assert result.usage.estimated
    gw.flush()
    (row,) = rows(database_url)
    assert row["tokens_estimated"] is True or row["tokens_estimated"] == 1
    assert row["prompt_tokens"] == count_message_tokens("gpt-4o-mini", USER_MSG)
    assert row["completion_tokens"] == count_text_tokens("gpt-4o-mini", "Tomorrow before noon.")
    assert row["cost_usd"] > 0


def test_unknown_model_is_unpriced_with_null_cost(make_gateway, server, database_url) -> None:
    gw = make_gateway()
    result = gw.complete(model="openai/acme-mystery-9", messages=USER_MSG, **http(server))
    assert result.cost_usd is None and result.cost_status == "unpriced"
    gw.flush()
    (row,) = rows(database_url)
    assert row["cost_usd"] is None and row["cost_status"] == "unpriced"


def test_call_argument_price(make_gateway, server, database_url) -> None:
    gw = make_gateway()
    server.enqueue(Reply(prompt_tokens=1000, completion_tokens=1000))
    price = {"input_per_million": 2, "output_per_million": 8}
    result = gw.complete(
        model="openai/acme-mystery-9", messages=USER_MSG, price=price, **http(server)
    )
    assert result.cost_usd == pytest.approx(0.01) and result.cost_status == "custom"


def test_reasoning_model(make_gateway, server, database_url) -> None:
    gw = make_gateway()
    server.enqueue(Reply(prompt_tokens=200, completion_tokens=900, reasoning_tokens=800))
    result = gw.complete(model="o3-mini", messages=USER_MSG, **http(server))
    assert result.usage.reasoning_tokens == 800
    assert result.cost_usd == pytest.approx(200 * 1.10 / M + 900 * 4.40 / M, rel=1e-12)
    gw.flush()
    assert rows(database_url)[0]["reasoning_tokens"] == 800


def test_claude_cache_reads_and_writes_over_http(make_gateway, server, database_url) -> None:
    gw = make_gateway()
    server.enqueue(
        Reply(prompt_tokens=3000, completion_tokens=400, cached_tokens=2000, cache_write_tokens=500)
    )
    result = gw.complete(
        model="anthropic/claude-haiku-4-5",
        messages=USER_MSG,
        api_base=server.anthropic_base_url,
        api_key=SECRET,
        num_retries=0,
    )
    assert result.usage.prompt_tokens == 3000
    assert (result.usage.cached_tokens, result.usage.cache_write_tokens) == (2000, 500)
    expected = 500 * 1.0 / M + 2000 * 0.10 / M + 500 * 1.25 / M + 400 * 5.0 / M
    assert result.cost_usd == pytest.approx(expected, rel=1e-12)
    gw.flush()
    (row,) = rows(database_url)
    assert (row["provider"], row["cache_write_tokens"]) == ("anthropic", 500)


# -- streams ---------------------------------------------------------------------------


def test_stream_records_usage_and_time_to_first_token(make_gateway, server, database_url):
    gw = make_gateway()
    server.enqueue(
        Reply(text="one two three four", prompt_tokens=30, completion_tokens=4, ttft=0.15)
    )
    stream = gw.stream(model="gpt-4o-mini", messages=USER_MSG, **http(server))
    chunks = list(stream)
    assert "".join(chunks) == "one two three four" and len(chunks) > 1
    assert stream.result is not None and stream.result.usage.prompt_tokens == 30
    gw.flush()
    (row,) = rows(database_url)
    assert row["status"] == "ok" and row["id"] == stream.call_id
    assert (row["prompt_tokens"], row["completion_tokens"], row["tokens_estimated"]) == (
        30,
        4,
        False,
    )
    assert row["ttft_ms"] >= 150 and row["latency_ms"] >= row["ttft_ms"]
    assert row["response_text"] == "one two three four"
    assert server.requests[-1].body["stream_options"] == {"include_usage": True}


def _abandon_by_break(gw, server) -> str:
    for chunk in gw.stream(model="gpt-4o-mini", messages=USER_MSG, **http(server)):  # noqa: B007
        break
    gc.collect()
    return chunk


@pytest.mark.parametrize("how", ["break", "close", "garbage"])
def test_abandoned_stream_is_recorded_as_cancelled(make_gateway, server, database_url, how):
    gw = make_gateway()
    server.enqueue(Reply(text="alpha beta gamma delta epsilon", chunk_delay=0.01))
    if how == "break":
        first = _abandon_by_break(gw, server)
    else:
        stream = gw.stream(model="gpt-4o-mini", messages=USER_MSG, **http(server))
        first = next(stream)
        if how == "close":
            stream.close()
        else:
            del stream
            gc.collect()
    gw.flush()
    (row,) = rows(database_url)
    assert row["status"] == "cancelled"
    assert row["tokens_estimated"] in (True, 1)
    assert first.strip() == "alpha" and row["response_text"] == first
    assert row["completion_tokens"] == count_text_tokens("gpt-4o-mini", first)
    assert row["prompt_tokens"] == count_message_tokens("gpt-4o-mini", USER_MSG)
    assert row["cost_usd"] > 0 and row["ttft_ms"] is not None


def test_an_abandoned_claude_stream_keeps_the_input_usage_the_provider_reported(
    make_gateway, server, database_url
) -> None:
    """Claude reports the input's tokens (with the cache reads) in ``message_start``: a
    stream left early was counted locally instead, its cache reads billed at the full
    input rate (5.7 times the complete call's cost)."""
    gw = make_gateway()
    answer = " ".join(f"w{i}" for i in range(300))
    claude = {"model": "anthropic/claude-haiku-4-5", "messages": USER_MSG, "num_retries": 0,
              "api_base": server.anthropic_base_url, "api_key": SECRET}  # fmt: skip
    reply = {"prompt_tokens": 20010, "cached_tokens": 20000, "cache_write_tokens": 5}
    server.enqueue(Reply(text=answer, completion_tokens=300, **reply))
    complete = list(gw.stream(**claude))
    server.enqueue(Reply(text=answer, completion_tokens=300, chunk_delay=0.01, **reply))
    stream = gw.stream(**claude)
    seen = [text for _, text in zip(range(5), stream, strict=False)]
    stream.close()
    gw.flush()
    full, left = rows(database_url)
    assert "".join(complete) == answer and full["status"] == "ok"
    assert left["status"] == "cancelled" and left["tokens_estimated"] in (True, 1)
    assert (left["prompt_tokens"], left["cached_tokens"], left["cache_write_tokens"]) == (
        20010,
        20000,
        5,
    )
    assert left["completion_tokens"] == count_text_tokens("claude-haiku-4-5", "".join(seen))
    expected = 5 * 1.0 / M + 20000 * 0.10 / M + 5 * 1.25 / M + left["completion_tokens"] * 5 / M
    assert left["cost_usd"] == pytest.approx(expected, rel=1e-12)
    assert left["cost_usd"] < full["cost_usd"]


def test_stream_that_fails_to_start_is_an_error(make_gateway, server, database_url) -> None:
    import litellm

    gw = make_gateway()
    server.enqueue(Reply(status=500))
    with pytest.raises(litellm.InternalServerError):
        gw.stream(model="gpt-4o-mini", messages=USER_MSG, **http(server))
    gw.flush()
    assert rows(database_url)[0]["status"] == "error"


def test_async_complete_and_stream(make_gateway, server, database_url) -> None:
    gw = make_gateway()

    async def main() -> tuple[Any, list[str], str]:
        done = await gw.acomplete(model="gpt-4o-mini", messages=USER_MSG, **http(server))
        server.enqueue(Reply(text="a b c"))
        stream = await gw.astream(model="gpt-4o-mini", messages=USER_MSG, **http(server))
        chunks = [chunk async for chunk in stream]
        server.enqueue(Reply(text="x y z", chunk_delay=0.01))
        early = await gw.astream(model="gpt-4o-mini", messages=USER_MSG, **http(server))
        async with early:
            await early.__anext__()
        return done, chunks, early.call_id

    done, chunks, cancelled_id = asyncio.run(main())
    assert done.text == "Echo: Where is my parcel?"
    assert "".join(chunks) == "a b c"
    gw.flush()
    statuses = {r["id"]: r["status"] for r in rows(database_url)}
    assert statuses[done.call_id] == "ok"
    assert statuses[cancelled_id] == "cancelled"
    assert sorted(statuses.values()) == ["cancelled", "ok", "ok"]


SLOW_PROMPT = """\
model: gpt-4o-mini
messages:
  - role: user
    content: "{% for i in range(rounds) %}{% for j in range(1000) %}{% if (j ~ i) | length > 9 %}\
{% endif %}{% endfor %}{% endfor %}{{ question }}"
"""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the loop's, not the db's
@pytest.mark.parametrize("streamed", [False, True])
def test_a_slow_render_holds_up_no_other_call_on_the_event_loop(
    make_gateway, server, repo: PromptRepo, streamed: bool
) -> None:
    """acomplete and astream loaded and rendered their prompt on the event loop: a template
    that a client's variables make slow (up to the sandbox's 1 s) stopped every call and
    stream of the loop (``llmops serve``'s worker) for as long. It is now rendered in a
    thread."""
    repo.write("slow.yaml", SLOW_PROMPT)
    gw = make_gateway(prompts=repo.prompts)
    ask = gw.astream if streamed else gw.acomplete
    variables = {"rounds": 400, "question": "Where is my parcel?"}

    async def main() -> tuple[float, float, Any]:
        async with Stalls() as stalls:
            started = time.perf_counter()
            try:
                answer: Any = await ask("slow", variables, **http(server))
                if streamed:
                    answer = "".join([chunk async for chunk in answer])
            except TemplateLimitError as exc:  # over 1 s on a loaded machine: still no stall
                answer = exc
            took = time.perf_counter() - started
        return took, stalls.longest, answer

    took, stalled, answer = asyncio.run(main())
    assert took > 0.3, f"the render took {took:.2f} s: too fast to tell a stall"
    assert stalled < 0.3, f"the event loop stopped for {stalled:.2f} s"
    if not isinstance(answer, TemplateLimitError):
        text = answer if streamed else answer.text
        assert text.endswith("Where is my parcel?")


PLAIN_WITH_A_COSTLY_SCHEMA = """\
model: gpt-4o-mini
input_schema:
  type: object
  properties:
    code: {type: string, pattern: "^(a|a)*$"}
messages:
  - role: user
    content: "{{ question }}"
"""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_slow_schema_check_holds_up_no_other_call_on_the_event_loop(
    make_gateway, server, repo: PromptRepo
) -> None:
    """A plain template renders on the loop, but its variables' check against the input
    schema could take up to the render's 1 s there (a pattern that backtracks: ^(a|a)*$
    against 40 characters would take hours; the check stops at the limit). A prompt whose
    schema has such a keyword is prepared in a thread."""
    repo.write("slow.yaml", PLAIN_WITH_A_COSTLY_SCHEMA)
    gw = make_gateway(prompts=repo.prompts)
    assert not gw.prompt("slow").plain
    variables = {"question": "Where is my parcel?", "code": "a" * 40 + "b"}

    async def main() -> tuple[float, float, Any]:
        async with Stalls() as stalls:
            started = time.perf_counter()
            try:
                answer: Any = await gw.acomplete("slow", variables, **http(server))
            except TemplateLimitError as exc:
                answer = exc
            took = time.perf_counter() - started
        return took, stalls.longest, answer

    took, stalled, answer = asyncio.run(main())
    assert took > 0.3, f"the check took {took:.2f} s: too fast to tell a stall"
    assert stalled < 0.3, f"the event loop stopped for {stalled:.2f} s"
    assert isinstance(answer, TemplateLimitError) and answer.limit == "time", answer


def test_concurrent_async_calls_are_all_recorded(make_gateway, server, database_url) -> None:
    gw = make_gateway()

    async def main() -> list[Any]:
        calls = [
            gw.acomplete(
                model="gpt-4o-mini", messages=[{"role": "user", "content": f"q{i}"}], **http(server)
            )
            for i in range(40)
        ]
        return await asyncio.gather(*calls)

    results = asyncio.run(main())
    assert {r.text for r in results} == {f"Echo: q{i}" for i in range(40)}
    gw.flush()
    assert len(rows(database_url)) == 40


# -- feedback --------------------------------------------------------------------------


def test_feedback(make_gateway, server, database_url) -> None:
    gw = make_gateway()
    result = gw.complete(model="gpt-4o-mini", messages=USER_MSG, **http(server))
    # the call may still be in the write queue: feedback works all the same
    gw.feedback(result.call_id, 1, name="thumbs")
    gw.feedback(result.call_id, 4.5, comment="helpful", user="user-7")
    gw.feedback(result.call_id, True, name="resolved")
    gw.flush()
    scores = sorted((r["name"], r["score"]) for r in rows(database_url, "feedback"))
    assert scores == [("rating", 4.5), ("resolved", 1.0), ("thumbs", 1.0)]
    (rated,) = rows(database_url, "feedback", name="rating")
    assert (rated["call_id"], rated["comment"], rated["user_id"]) == (
        result.call_id,
        "helpful",
        "user-7",
    )
    # another gateway (another process, say) finds the call in the database
    other = make_gateway()
    other.feedback(result.call_id, 0, name="thumbs")
    other.flush()
    assert len(rows(database_url, "feedback")) == 4


def test_a_clock_without_a_time_zone_is_utc(make_gateway, server, database_url) -> None:
    """A backfill's clock giving naive UTC times (``datetime.utcnow()``): SQLite refused
    every such row, so calls that had answered were never stored (rejected.log)."""
    from datetime import UTC, datetime

    at = datetime(2026, 11, 20, 12, 30)  # noqa: DTZ001 (naive on purpose)
    gw = make_gateway(clock=lambda: at)
    result = gw.complete(model="gpt-4o-mini", messages=USER_MSG, **http(server))
    gw.feedback(result.call_id, 1, name="thumbs")
    assert gw.flush(timeout=30)
    (call,) = rows(database_url)
    (feedback,) = rows(database_url, "feedback")
    for stored in (call["created_at"], feedback["created_at"]):
        if isinstance(stored, str):  # SQLite, read as text
            stored = datetime.fromisoformat(stored)
        assert stored.replace(tzinfo=stored.tzinfo or UTC) == at.replace(tzinfo=UTC)


@pytest.mark.parametrize("score", ["5", None, math.nan, math.inf, [1], 1e308, -1.000001e12])
def test_feedback_score_must_be_a_number(make_gateway, server, score) -> None:
    """Two finite scores of 1e308 summed to infinity: every average of their prompt version
    (dashboard, feedback drift alerts) was inf or NaN. Scores are bounded at 1e12."""
    gw = make_gateway()
    result = gw.complete(model="gpt-4o-mini", messages=USER_MSG, **http(server))
    with pytest.raises(InvalidFeedbackError, match=result.call_id):
        gw.feedback(result.call_id, score)


def test_feedback_scores_up_to_the_bound_are_stored(make_gateway, server, database_url) -> None:
    gw = make_gateway()
    result = gw.complete(model="gpt-4o-mini", messages=USER_MSG, **http(server))
    for score in (MAX_SCORE, -MAX_SCORE, 10**12):
        gw.feedback(result.call_id, score)
    gw.flush()
    assert sorted(r["score"] for r in rows(database_url, "feedback")) == [-1e12, 1e12, 1e12]


def test_feedback_for_an_unknown_call(make_gateway) -> None:
    gw = make_gateway()
    with pytest.raises(UnknownCallError, match="no call 6f1c") as info:
        gw.feedback("6f1c3b1e-0000-4000-8000-000000000000", 1)
    assert info.value.call_id.startswith("6f1c")
    with pytest.raises(UnknownCallError, match="not a call id"):
        gw.feedback("nope", 1)


# -- content modes and configuration ---------------------------------------------------


def test_content_modes(make_gateway, server, database_url) -> None:
    message = [{"role": "user", "content": "Mail ann@example.com or call +44 20 7946 0958"}]
    ids = {}
    for mode in ("full", "redact", "none"):
        gw = make_gateway(content=mode)
        server.enqueue(Reply(text="I wrote to ann@example.com."))
        ids[mode] = gw.complete(model="gpt-4o-mini", messages=message, **http(server)).call_id
        gw.flush()
    stored = {r["id"]: r for r in rows(database_url)}
    full, redacted, none = (stored[ids[m]] for m in ("full", "redact", "none"))
    assert as_json(full["request"])["messages"] == message
    assert full["response_text"] == "I wrote to ann@example.com."
    assert as_json(redacted["request"])["messages"][0]["content"] == "Mail [EMAIL] or call [PHONE]"
    assert redacted["response_text"] == "I wrote to [EMAIL]."
    assert as_json(none["request"])["messages"] is None and none["response_text"] is None
    assert none["prompt_tokens"] == full["prompt_tokens"]  # accounting is unaffected


def test_bad_arguments_are_clear_errors(make_gateway, support_prompt) -> None:
    with pytest.raises(ConfigError, match="content='loud'"):
        make_gateway(content="loud")
    gw = make_gateway(prompts=support_prompt.prompts)
    with pytest.raises(ConfigError, match=r"give prompt=.* or messages="):
        gw.complete()
    with pytest.raises(ConfigError, match="no model"):
        gw.complete(messages=USER_MSG)
    with pytest.raises(llmops.MissingVariableError, match="question"):
        gw.complete("support/answer", {})


def test_outdated_schema_is_refused_clearly(empty_database_url, tmp_path) -> None:
    from llmops import Gateway

    upgrade(create_engine(empty_database_url), "0001")
    with pytest.raises(SchemaOutdatedError, match="llmops db upgrade"):
        Gateway(database_url=empty_database_url, home=tmp_path / "home", prompts=tmp_path)


def test_module_level_functions_use_the_environment(server, tmp_path, monkeypatch) -> None:
    from llmops.gateway import _reset_default

    url = f"sqlite:///{tmp_path / 'env.db'}"
    monkeypatch.setenv("LLMOPS_DATABASE_URL", url)
    monkeypatch.setenv("LLMOPS_HOME", str(tmp_path / "home"))
    _reset_default()
    try:
        result = llmops.complete(model="gpt-4o-mini", messages=USER_MSG, **http(server))
        llmops.feedback(result.call_id, 5)
        llmops.default_gateway().flush()
        assert [r["id"] for r in rows(url)] == [result.call_id]
        assert len(rows(url, "feedback")) == 1
    finally:
        _reset_default()


def test_default_database_is_a_sqlite_file_under_home(server, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    gw = llmops.Gateway()
    try:
        gw.complete(model="gpt-4o-mini", messages=USER_MSG, **http(server))
    finally:
        gw.close()
    assert len(rows(f"sqlite:///{tmp_path / '.llmops' / 'llmops.db'}")) == 1


# -- durability ------------------------------------------------------------------------


def test_postgres_stopped_mid_run_loses_nothing(server, postgres_server, postgres_url, tmp_path):
    from llmops import Gateway

    gw = Gateway(database_url=postgres_url, home=tmp_path / "home", retry_interval=0.05)
    try:
        ids = []
        for i in range(30):
            if i == 10:
                postgres_server.stop()
            if i == 20:
                postgres_server.start()
            result = gw.complete(model="gpt-4o-mini", messages=USER_MSG, **http(server))
            ids.append(result.call_id)
            if i in (15, 25):
                gw.feedback(result.call_id, 1)
        assert gw.writer.stats.spooled > 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            gw.flush()
            try:
                if len(rows(postgres_url)) == 30 and len(rows(postgres_url, "feedback")) == 2:
                    break
            except sa.exc.OperationalError:
                pass
            time.sleep(0.1)
        assert sorted(r["id"] for r in rows(postgres_url)) == sorted(ids)
        assert len(rows(postgres_url, "feedback")) == 2
    finally:
        gw.close()
        if not postgres_server.is_running():
            postgres_server.start()


def test_database_down_when_the_gateway_starts(server, postgres_server, postgres_url, tmp_path):
    from llmops import Gateway

    postgres_server.stop()
    try:
        gw = Gateway(database_url=postgres_url, home=tmp_path / "home", retry_interval=0.05)
        result = gw.complete(model="gpt-4o-mini", messages=USER_MSG, **http(server))
        gw.flush()
        assert not gw.writer.healthy
    finally:
        postgres_server.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        gw.flush()
        try:
            if rows(postgres_url):
                break
        except (sa.exc.OperationalError, sa.exc.ProgrammingError):
            pass
        time.sleep(0.1)
    gw.close()
    assert [r["id"] for r in rows(postgres_url)] == [result.call_id]


@pytest.mark.integration  # a Python process of its own
def test_default_gateway_flushes_at_interpreter_exit(server, tmp_path) -> None:
    import os
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'exit.db'}"
    script = (
        "import llmops\n"
        "for i in range(25):\n"
        "    r = llmops.complete(model='gpt-4o-mini', messages=[{'role': 'user', 'content': 'hi'}],"
        f" api_base='{server.base_url}', api_key='sk-test', num_retries=0)\n"
        "print(r.call_id)\n"  # no flush, no close: the exit handler must write everything
    )
    env = {**os.environ, "LLMOPS_DATABASE_URL": url, "LLMOPS_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert len(rows(url)) == 25
    assert done.stdout.strip() in {r["id"] for r in rows(url)}


# -- tool calls, finish reason, log-probabilities and variables ---------------------------

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "track_parcel",
            "parameters": {"type": "object", "properties": {"id": {"type": "string"}}},
        },
    }
]


@pytest.mark.parametrize("direct", [False, True], ids=["litellm", "direct"])
def test_tool_calls_are_returned_and_stored(make_gateway, server, database_url, direct) -> None:
    gw = make_gateway(direct=direct)
    server.enqueue(
        Reply(
            tool_calls=[
                {"id": "call_a", "name": "track_parcel", "arguments": {"id": "P-1"}},
                {"name": "track_parcel", "arguments": '{"id": "P-2"}'},
            ]
        )
    )
    result = gw.complete(model="gpt-4o-mini", messages=USER_MSG, tools=TOOLS, **http(server))
    assert result.text == ""
    assert result.finish_reason == "tool_calls"
    assert [(c["id"], c["type"], c["function"]["name"]) for c in result.tool_calls] == [
        ("call_a", "function", "track_parcel"),
        ("call_1", "function", "track_parcel"),
    ]
    assert [json.loads(c["function"]["arguments"]) for c in result.tool_calls] == [
        {"id": "P-1"},
        {"id": "P-2"},
    ]
    gw.flush()
    (row,) = rows(database_url)
    request = as_json(row["request"])
    assert request["tool_calls"] == result.tool_calls
    assert request["params"]["tools"] == TOOLS


def test_plain_answers_have_no_tool_calls_and_say_why_they_stopped(
    make_gateway, server, database_url
) -> None:
    gw = make_gateway()
    server.enqueue(Reply(text="Cut", finish_reason="length", logprobs=[-0.25, -1.5]))
    result = gw.complete(model="gpt-4o-mini", messages=USER_MSG, logprobs=True, **http(server))
    assert (result.tool_calls, result.finish_reason) == ([], "length")
    assert result.logprobs == [-0.25, -1.5]
    server.enqueue(Reply(text="Whole"))
    result = gw.complete(model="gpt-4o-mini", messages=USER_MSG, **http(server))
    assert (result.finish_reason, result.logprobs) == ("stop", None)
    gw.flush()
    assert all("tool_calls" not in as_json(r["request"]) for r in rows(database_url))


def test_variables_and_tool_calls_follow_the_content_mode(
    make_gateway, server, support_prompt, database_url
) -> None:
    question = "Mail ann@example.com: where is parcel P-1?"
    ids = {}
    for mode in ("full", "redact", "none"):
        gw = make_gateway(content=mode, prompts=support_prompt.prompts)
        server.enqueue(
            Reply(tool_calls=[{"name": "notify", "arguments": {"to": "ann@example.com"}}])
        )
        ids[mode] = gw.complete(
            "support/answer", {"question": question}, tools=TOOLS, **http(server)
        ).call_id
        gw.flush()
    stored = {r["id"]: as_json(r["request"]) for r in rows(database_url)}
    full, redacted, none = (stored[ids[m]] for m in ("full", "redact", "none"))
    assert full["variables"] == {"question": question}
    assert json.loads(full["tool_calls"][0]["function"]["arguments"]) == {"to": "ann@example.com"}
    assert redacted["variables"] == {"question": "Mail [EMAIL]: where is parcel P-1?"}
    assert "ann@example.com" not in json.dumps(redacted)
    assert "variables" not in none and "tool_calls" not in none and none["messages"] is None


def test_raw_message_calls_store_no_variables(make_gateway, server, database_url) -> None:
    gw = make_gateway()
    gw.complete(model="gpt-4o-mini", messages=USER_MSG, **http(server))
    gw.flush()
    (row,) = rows(database_url)
    assert "variables" not in as_json(row["request"])


@pytest.mark.parametrize("direct", [False, True], ids=["litellm", "direct"])
def test_streamed_tool_calls_are_put_together_and_stored(
    make_gateway, server, database_url, direct
) -> None:
    gw = make_gateway(direct=direct)
    server.enqueue(
        Reply(
            tool_calls=[
                {"id": "call_a", "name": "track_parcel", "arguments": {"id": "P-1", "n": 2}},
                {"name": "notify", "arguments": '{"to": "ops"}'},
            ]
        )
    )
    stream = gw.stream(model="gpt-4o-mini", messages=USER_MSG, tools=TOOLS, **http(server))
    assert "".join(stream) == ""
    done = stream.result
    assert done.finish_reason == "tool_calls"
    assert [(c["id"], c["function"]["name"]) for c in done.tool_calls] == [
        ("call_a", "track_parcel"),
        ("call_1", "notify"),
    ]
    assert [json.loads(c["function"]["arguments"]) for c in done.tool_calls] == [
        {"id": "P-1", "n": 2},
        {"to": "ops"},
    ]
    gw.flush()
    (row,) = rows(database_url)
    assert as_json(row["request"])["tool_calls"] == done.tool_calls
    # the first piece of a tool call is the first token: a stream of tool calls only had
    # no time to first token
    assert row["ttft_ms"] is not None and 0 < row["ttft_ms"] <= row["latency_ms"]
