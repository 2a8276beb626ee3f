"""Blocking budgets in the gateway: calls refused before the model is called, recorded as
blocked, and a limit that holds across processes sharing one database."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from llmops import Budget, BudgetExceededError
from llmops.gateway.budgets import IMAGE_TOKENS, prompt_token_bound
from llmops.pricing.usage import estimate_usage
from llmops.store import queries
from llmops.store.tables import BUDGET_LEASES, CALLS
from llmops.testing import Reply

MODEL = "openai/gpt-4o-mini"
# USD 1 per thousand input tokens, 2 per thousand output tokens: easy to compute by hand
PRICES = {MODEL: {"input_per_million": 1000, "output_per_million": 2000}}
ASK = [{"role": "user", "content": "Hello there"}]


def block(limit: float, window: str = "day", **scope: str) -> Budget:
    return Budget(name="cap", window=window, limit_usd=limit, action="block", scope=scope)


def stored(engine: sa.Engine) -> list[sa.Row]:
    with engine.connect() as connection:
        query = sa.select(CALLS.c.status, CALLS.c.cost_usd, CALLS.c.user_id, CALLS.c.error_type)
        return list(connection.execute(query.order_by(CALLS.c.created_at)))


def spent(engine: sa.Engine) -> float:
    return sum(row.cost_usd or 0.0 for row in stored(engine))


@pytest.fixture
def gateway(make_gateway, server):
    def make(*budgets: Budget, **kwargs):
        return make_gateway(budgets=list(budgets), prices=PRICES, **kwargs)

    return make


def ask(gw, server, **kwargs):
    kwargs.setdefault("messages", ASK)
    kwargs.setdefault("max_tokens", 10)
    return gw.complete(model=MODEL, api_base=server.base_url, api_key="sk-test", **kwargs)


# -- the estimate ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Hello there, how are you today?",
        "東京の天気はどうですか。明日は雨が降りますか" * 5,
        "🙂🚀🔥 emoji " * 20,
        "def f(x):\n    return {'a': [1, 2, 3]}\n" * 10,
        "Ünïcödé façade naïve coöperate " * 8,
        "a" * 5000,
    ],
)
def test_the_prompt_bound_is_never_below_the_real_token_count(text: str) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]
    counted = estimate_usage("gpt-4o-mini", messages, "").prompt_tokens
    assert prompt_token_bound(messages) >= counted


def test_images_count_a_fixed_allowance_not_their_base64_length() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 100_000}}
    messages = [{"role": "user", "content": [{"type": "text", "text": "What is it?"}, image]}]
    assert IMAGE_TOKENS < prompt_token_bound(messages) < IMAGE_TOKENS + 100


def test_the_estimate_uses_max_tokens_and_the_dearest_rates(gateway) -> None:
    gw = gateway(block(100))
    call = _call(max_tokens=100)
    prompt = prompt_token_bound(ASK)
    assert gw.budgets.estimate(call) == pytest.approx(prompt * 0.001 + 100 * 0.002)
    call.params = {"max_tokens": 100, "n": 3}
    assert gw.budgets.estimate(call) == pytest.approx(prompt * 0.001 + 300 * 0.002)


def test_the_estimate_counts_a_models_fee_per_call(make_gateway) -> None:
    """Perplexity's online models bill $0.005 a call over their tokens: a budget of calls
    with few tokens reserved almost nothing for them."""
    fee = {MODEL: {"input_per_million": 1000, "output_per_million": 2000, "request_fee": 0.5}}
    gw = make_gateway(budgets=[block(100)], prices=fee)
    prompt = prompt_token_bound(ASK)
    assert gw.budgets.estimate(_call(max_tokens=100)) == pytest.approx(
        prompt * 0.001 + 100 * 0.002 + 0.5
    )


def test_the_estimate_counts_every_byte_of_tools_functions_and_response_formats(gateway) -> None:
    """A tool's property names are keys: only the values of a mapping were counted, so a
    schema of 2,000 long property names was estimated at a few tokens and 4 calls of
    89,000 prompt tokens passed a budget 7 times over. Functions and response formats
    were not counted at all."""
    import json

    properties = {f"customer_loyalty_programme_field_{i}": {"type": "string"} for i in range(500)}
    schema = {"type": "object", "properties": properties}
    tools = [{"type": "function", "function": {"name": "save", "parameters": schema}}]
    as_text = [{"role": "user", "content": json.dumps(tools)}]
    real = estimate_usage("gpt-4o-mini", as_text, "").prompt_tokens
    assert real > 5000
    assert prompt_token_bound(ASK, tools) >= prompt_token_bound(ASK) + real
    gw = gateway(block(100))
    prompt = prompt_token_bound(ASK)
    for name, value in (
        ("tools", tools),
        ("functions", [{"name": "save", "parameters": schema}]),
        ("response_format", {"type": "json_schema", "json_schema": {"schema": schema}}),
    ):
        call = _call(max_tokens=10, **{name: value})
        assert gw.budgets.estimate(call) >= (prompt + real) * 0.001 + 10 * 0.002, name
    # sent through extra_body, they count too
    call = _call(max_tokens=10, extra_body={"tools": tools})
    assert gw.budgets.estimate(call) >= (prompt + real) * 0.001


def test_an_async_call_waits_for_the_ledger_without_holding_up_the_loop(gateway, server) -> None:
    """A lease extension ran its database transaction on the event loop: with the SQLite
    file write-locked, every other request and stream of `llmops serve` stopped for up
    to the 5 s busy timeout. And a call recorded meanwhile (ann's, answered while bob's
    lease waited for the database) waited on the loop for the guard's lock to settle."""
    import asyncio
    import sqlite3

    gw = gateway(block(100, user="each"))
    if gw.engine.dialect.name != "sqlite":
        pytest.skip("a write lock held by another connection is SQLite's")
    hi = Reply(text="Hi", prompt_tokens=12, completion_tokens=2)
    server.enqueue(hi, Reply(text="Hi", prompt_tokens=12, completion_tokens=2, delay=0.4), hi)
    ask(gw, server, user="ann")  # litellm imported, the ledger made: bob's lease is new
    gw.flush()
    locker = sqlite3.connect(gw.engine.url.database, timeout=0)
    locker.execute("BEGIN IMMEDIATE")

    async def main() -> float:
        gaps: list[float] = []
        done = asyncio.Event()

        async def tick() -> None:
            last = time.monotonic()
            while not done.is_set():
                await asyncio.sleep(0.02)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        def ask_as(user: str) -> Any:
            return gw.acomplete(
                model=MODEL, messages=ASK, max_tokens=10, user=user, api_base=server.base_url,
                api_key="k",
            )  # fmt: skip

        ticker = asyncio.create_task(tick())
        await asyncio.sleep(0.1)
        asyncio.get_running_loop().call_later(2.0, locker.rollback)  # the lock goes after 2 s
        ann = asyncio.create_task(ask_as("ann"))  # her lease holds: answered in 0.4 s
        await asyncio.sleep(0.05)
        answers = [await ask_as("bob"), await ann]
        done.set()
        await ticker
        assert [answer.text for answer in answers] == ["Hi", "Hi"]
        return max(gaps)

    try:
        assert asyncio.run(main()) < 0.5  # the loop kept turning while the ledger was locked
    finally:
        locker.close()


@pytest.mark.parametrize("loop_ends", [False, True], ids=["loop-goes-on", "loop-ends"])
def test_a_caller_that_leaves_while_the_ledger_is_locked_is_recorded_unsent(
    gateway, server, loop_ends
) -> None:
    """The thread that waits for the ledger admits the call after its caller left: it was
    held in its leases, never sent and never recorded. It is recorded `cancelled` at cost
    0, which gives its estimate back, also when the program's event loop has ended by then
    (`asyncio.run` cancels what is pending: the thread is the one left to record it)."""
    import asyncio
    import sqlite3
    import threading

    gw = gateway(block(100, user="each"))
    if gw.engine.dialect.name != "sqlite":
        pytest.skip("a write lock held by another connection is SQLite's")
    server.enqueue(Reply(text="Hi", prompt_tokens=12, completion_tokens=2))
    ask(gw, server, user="ann")
    gw.flush()
    sent = len(server.requests)
    locker = sqlite3.connect(gw.engine.url.database, timeout=0, check_same_thread=False)
    locker.execute("BEGIN IMMEDIATE")
    unlock = threading.Timer(1.0, locker.rollback)
    unlock.start()

    async def main() -> None:
        call = gw.acomplete(model=MODEL, messages=ASK, max_tokens=10, user="bob",
                            api_base=server.base_url, api_key="k")  # fmt: skip
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(call, 0.3)
        if not loop_ends:
            await asyncio.sleep(1.5)  # the thread gets the lease, then the call is recorded

    try:
        asyncio.run(main())
        unlock.join()
        time.sleep(0.5)
    finally:
        locker.close()
    gw.flush()
    rows = stored(gw.engine)
    assert [(r.status, r.cost_usd, r.user_id) for r in rows][-1] == ("cancelled", 0.0, "bob")
    assert len(server.requests) == sent  # never sent


# -- one process -------------------------------------------------------------------------


def test_calls_are_refused_once_the_next_one_could_pass_the_limit(gateway, server) -> None:
    # each call: ~13 prompt tokens bound 23 -> estimate 0.023 + 0.02; real cost 0.012 + 0.004
    server.enqueue(*[Reply(text="Hi", prompt_tokens=12, completion_tokens=2)] * 40)
    gw = gateway(block(0.2))
    answered = 0
    with pytest.raises(BudgetExceededError) as refused:
        for _ in range(40):
            ask(gw, server)
            answered += 1
    gw.flush()
    requests = len(server.requests)
    assert requests == answered  # the refused call never reached the model
    assert spent(gw.engine) <= 0.2
    assert spent(gw.engine) >= 0.2 - 2 * gw.budgets.estimate(_call())  # not refused early
    error = refused.value
    assert (error.budget, error.window, error.limit_usd) == ("cap", "day", 0.2)
    assert error.spent_usd + error.held_usd == pytest.approx(spent(gw.engine))
    assert error.needed_usd == pytest.approx(gw.budgets.estimate(_call()))
    assert "budget 'cap' (all calls, day from " in str(error)
    assert "this call could cost up to $0.042" in str(error)
    rows = stored(gw.engine)
    assert rows[-1].status == "blocked" and rows[-1].cost_usd == 0.0
    assert rows[-1].error_type == "BudgetExceededError"
    with gw.engine.connect() as connection:
        latency = connection.execute(
            sa.select(CALLS.c.latency_ms).where(CALLS.c.status == "blocked")
        ).scalar_one()
    assert latency is None  # blocked calls do not skew latency figures


def _call(**params):
    from llmops.gateway.recorder import Call

    params = params or {"max_tokens": 10}
    return Call("e", MODEL, ASK, params, None, None, None, None, None, None)


def test_every_call_method_is_refused_before_the_model_is_called(gateway, server) -> None:
    gw = gateway(block(0.01))  # less than one estimate: nothing gets through
    common = dict(model=MODEL, messages=ASK, api_base=server.base_url, api_key="sk-test")
    with pytest.raises(BudgetExceededError):
        gw.complete(**common, max_tokens=10)
    with pytest.raises(BudgetExceededError):
        asyncio.run(gw.acomplete(**common, max_tokens=10))
    with pytest.raises(BudgetExceededError):
        gw.stream(**common, max_tokens=10)

    async def astream() -> None:
        await gw.astream(**common, max_tokens=10)

    with pytest.raises(BudgetExceededError):
        asyncio.run(astream())
    gw.flush()
    assert server.requests == []
    assert [r.status for r in stored(gw.engine)] == ["blocked"] * 4
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    span = queries.Filters(start=today, end=today + timedelta(days=1))
    summary = queries.overview(gw.engine, span)
    assert (summary.calls, summary.blocked, summary.errors) == (4, 4, 0)
    assert summary.error_rate is None  # none was sent


def test_streams_settle_their_real_cost(gateway, server) -> None:
    server.enqueue(*[Reply(text="one two", prompt_tokens=10, completion_tokens=2)] * 30)
    gw = gateway(block(0.2))
    chunks = 0
    with pytest.raises(BudgetExceededError) as refused:
        for _ in range(30):
            for _chunk in gw.stream(
                model=MODEL, messages=ASK, api_base=server.base_url, api_key="sk-test",
                max_tokens=10,
            ):  # fmt: skip
                chunks += 1
    gw.flush()
    assert chunks > 0
    assert 0.2 - 0.05 <= spent(gw.engine) <= 0.2, str(refused.value)


def test_calls_cancelled_before_their_answer_keep_their_estimate(gateway, server) -> None:
    """A client that hangs up on every non-streamed call: each is recorded unpriced (the
    provider may bill it in full), and counted 0, so such a client was never refused."""
    server.enqueue(*[Reply(text="Hi", prompt_tokens=12, completion_tokens=2, delay=2)] * 12)
    gw = gateway(block(0.2))

    async def hang_up() -> None:
        await asyncio.wait_for(
            gw.acomplete(model=MODEL, messages=ASK, api_base=server.base_url,
                         api_key="sk-test", max_tokens=10),
            0.3,
        )  # fmt: skip

    cancelled = 0
    with pytest.raises(BudgetExceededError):
        for _ in range(12):
            with pytest.raises(TimeoutError):
                asyncio.run(hang_up())
            cancelled += 1
    gw.flush()
    assert cancelled == int(0.2 // gw.budgets.estimate(_call())) == 4
    rows = stored(gw.engine)
    assert [row.status for row in rows] == ["cancelled"] * cancelled + ["blocked"]
    assert {row.cost_usd for row in rows[:-1]} == {None}  # the stored spend does not know


def test_each_user_has_a_limit_of_their_own(gateway, server) -> None:
    gw = gateway(block(0.1, user="each"))
    server.enqueue(*[Reply(text="Hi", prompt_tokens=12, completion_tokens=2)] * 40)
    with pytest.raises(BudgetExceededError) as refused:
        for _ in range(20):
            ask(gw, server, user="alice")
    assert refused.value.key == "alice"
    assert "user alice" in str(refused.value)
    ask(gw, server, user="bob")  # bob's own limit
    ask(gw, server)  # no user: outside an `each user` budget
    gw.flush()
    by_user = {(r.user_id, r.status) for r in stored(gw.engine)}
    assert ("bob", "ok") in by_user and (None, "ok") in by_user


@pytest.mark.parametrize(
    ("scope", "who"),
    [
        ({"user": "each"}, {"user": "v" * 250}),  # stored cut to 200 characters
        ({"user": "each"}, {"user": "ann\x00"}),  # stored with U+FFFD
        ({"tag": "each"}, {"tags": ["t" * 201]}),
    ],
)
def test_each_key_is_held_to_its_limit_as_it_is_stored(gateway, server, scope, who) -> None:
    """The guard counted a call under the key as given, the database stored it cut or
    cleaned: its spend was never found and such a user was never refused."""
    gw = gateway(block(0.1, **scope))
    server.enqueue(*[Reply(text="Hi", prompt_tokens=12, completion_tokens=2)] * 40)
    with pytest.raises(BudgetExceededError):
        for _ in range(40):
            ask(gw, server, **who)
            gw.flush()
    gw.flush()
    assert 0.05 <= spent(gw.engine) <= 0.1


def test_a_spent_budget_refuses_calls_it_cannot_estimate(gateway, server) -> None:
    """An unpriced model name priced by the model that answers (an Azure deployment's
    name): its estimate is 0, which "fitted" the spent lease on every other call."""
    gw = gateway(block(0.05))
    server.enqueue(*[Reply(text="Hi", prompt_tokens=12, completion_tokens=2, model=MODEL)] * 30)
    outcomes = []
    for _ in range(20):
        try:
            gw.complete(model="openai/my-deployment", messages=ASK, max_tokens=10,
                        api_base=server.base_url, api_key="sk-test")  # fmt: skip
            outcomes.append("ok")
        except BudgetExceededError:
            outcomes.append("blocked")
        gw.flush()
    first = outcomes.index("blocked")
    assert set(outcomes[first:]) == {"blocked"}, outcomes
    assert spent(gw.engine) < 0.05 + 0.016 * 2  # at most what was in flight past the limit


def test_the_estimate_counts_what_extra_body_sends(gateway) -> None:
    gw = gateway(block(100))
    prompt = prompt_token_bound(ASK)
    call = _call(max_tokens=10, extra_body={"max_tokens": 5000, "n": 2})
    assert gw.budgets.estimate(call) == pytest.approx(prompt * 0.001 + 10000 * 0.002)


def test_a_spent_budget_stays_closed_while_its_ledger_is_locked(gateway, server) -> None:
    """A write-locked SQLite file made the ledger unreadable: calls were let through,
    although this process had seen the budget spent."""
    gw = gateway(block(0.1))
    if gw.engine.dialect.name != "sqlite":
        pytest.skip("a write lock that fails at once is SQLite's")
    server.enqueue(*[Reply(text="Hi", prompt_tokens=12, completion_tokens=2)] * 40)
    with pytest.raises(BudgetExceededError):
        for _ in range(40):
            ask(gw, server)
            gw.flush()
    path = gw.engine.url.database
    import sqlite3

    locker = sqlite3.connect(path, timeout=0)
    locker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(BudgetExceededError, match="its ledger cannot be read"):
            ask(gw, server)
    finally:
        locker.rollback()
        locker.close()


def test_two_budgets_of_one_name_are_refused(make_gateway) -> None:
    from llmops.errors import ConfigError

    with pytest.raises(ConfigError, match="two budgets are named 'cap'"):
        make_gateway(budgets=[block(0.1), block(1.0)], prices=PRICES)


@pytest.mark.parametrize(
    ("scope", "inside", "outside"),
    [
        ({"model": MODEL}, {}, None),
        ({"tag": "batch"}, {"tags": ["x", "batch"]}, {"tags": ["x"]}),
        ({"user": "carol"}, {"user": "carol"}, {"user": "dave"}),
        ({"source": "app"}, {}, None),
    ],
)
def test_a_budget_applies_only_inside_its_scope(gateway, server, scope, inside, outside) -> None:
    gw = gateway(block(0.01, **scope))
    with pytest.raises(BudgetExceededError):
        ask(gw, server, **inside)
    if outside is not None:
        ask(gw, server, **outside)


def test_alert_budgets_never_block(gateway, server) -> None:
    gw = gateway(Budget(name="watch", window="day", limit_usd=0.0001))
    ask(gw, server)
    ask(gw, server)


def test_a_new_window_starts_with_the_whole_limit(gateway, server) -> None:
    now = [datetime(2026, 12, 2, 23, 0, tzinfo=UTC)]
    gw = gateway(block(0.05), clock=lambda: now[0])
    server.enqueue(*[Reply(text="Hi", prompt_tokens=12, completion_tokens=2)] * 10)
    with pytest.raises(BudgetExceededError):
        for _ in range(10):
            ask(gw, server)
    now[0] += timedelta(hours=2)  # the next UTC day
    ask(gw, server)


def test_closing_gives_back_what_the_lease_did_not_use(gateway, server) -> None:
    gw = gateway(block(10))
    ask(gw, server)
    gw.close()
    with gw.engine.connect() as connection:
        lease = connection.execute(sa.select(BUDGET_LEASES)).one()
    assert lease.granted_usd == pytest.approx(lease.consumed_usd)
    assert lease.committed_usd == pytest.approx(lease.consumed_usd)
    assert lease.committed_usd == pytest.approx(spent(gw.engine))


def _leases(engine: sa.Engine) -> dict[str, sa.Row]:
    with engine.connect() as connection:
        return {r.scope_value: r for r in connection.execute(sa.select(BUDGET_LEASES))}


def test_publishing_never_holds_up_calls(gateway, server, monkeypatch) -> None:
    """An ``each: user`` budget has a lease per user; they were all written every second
    under the guard's lock (5,000 users: 0.6-1.2 s), and calls waited for it. Here the
    publication is held up by a locked lease row, and a call goes through meanwhile."""
    import threading

    from llmops.gateway import budgets

    gw = gateway(block(1000, user="each"))
    for user in ("a", "b"):
        ask(gw, server, user=user)
    gw.flush()
    monkeypatch.setattr(budgets, "KEEP_ALIVE_EVERY", 0.0)  # every lease is due
    locker = gw.engine.connect()
    if gw.engine.dialect.name == "sqlite":
        locker.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        locker.execute(sa.select(BUDGET_LEASES).with_for_update())
    publishing = threading.Thread(target=gw.budgets.publish)
    calling = threading.Thread(target=ask, args=(gw, server), kwargs={"user": "a"})
    try:
        publishing.start()
        calling.start()
        calling.join(timeout=20)
        assert not calling.is_alive(), "the call waited for the publication"
        assert publishing.is_alive()  # still waiting for the lease rows
    finally:
        locker.rollback()
        locker.close()
        publishing.join(timeout=30)
        calling.join(timeout=30)
    gw.flush()
    assert [r.status for r in stored(gw.engine)] == ["ok"] * 3


def test_a_publication_never_undoes_a_later_grant(gateway, server) -> None:
    """Figures taken before a grant and written after it would lower the lease's grant
    below what its process may admit: other processes would share out that money again."""
    from llmops.store import leases as ledger

    gw = gateway(block(10))
    ask(gw, server)
    (row,) = _leases(gw.engine).values()
    assert row.granted_usd > 0
    stale = ledger.Figures(row.id, 0.0, 0.0)
    ledger.publish(gw.engine, [stale], row.updated_at.replace(tzinfo=UTC) - timedelta(seconds=1))
    assert _leases(gw.engine)[""].granted_usd == row.granted_usd  # the grant's, kept
    ledger.publish(gw.engine, [stale], datetime.now(UTC) + timedelta(seconds=1))
    assert _leases(gw.engine)[""].granted_usd == 0.0


def test_a_grant_while_the_clock_is_set_back_outlives_a_publication(
    gateway, server, monkeypatch
) -> None:
    """A publication writes the figures it took unless the lease was written since; "since"
    was by the clock, so a grant stamped after the clock was set back (NTP) was overwritten
    by the older, smaller figures: other processes were granted that money again."""
    from llmops.gateway import budgets
    from llmops.store import leases as ledger

    gw = gateway(block(10))
    ask(gw, server)
    clock = [datetime.now(UTC)]
    monkeypatch.setattr(budgets, "_utc_now", lambda: clock[0])
    monkeypatch.setattr(budgets, "KEEP_ALIVE_EVERY", 0.0)
    publish = ledger.publish

    def set_back_then_publish(engine, figures, now) -> None:
        clock[0] -= timedelta(hours=1)
        ask(gw, server, max_tokens=2000)  # $4 at most: more than the lease holds, a grant
        publish(engine, figures, now)

    monkeypatch.setattr(ledger, "publish", set_back_then_publish)
    gw.budgets.publish()
    (lease,) = gw.budgets._leases.values()
    assert lease.granted_usd > 4
    assert _leases(gw.engine)[""].granted_usd == pytest.approx(lease.granted_usd)


def test_only_leases_that_changed_are_written_every_second(gateway, server, monkeypatch) -> None:
    from llmops.gateway import budgets

    gw = gateway(block(1000, user="each"))
    for user in ("a", "b", "c"):
        ask(gw, server, user=user)
    gw.budgets.publish()
    before = _leases(gw.engine)
    ask(gw, server, user="b")
    gw.budgets.publish()
    after = _leases(gw.engine)
    assert after["b"].expires_at > before["b"].expires_at
    assert after["b"].consumed_usd > before["b"].consumed_usd
    assert [after[u].expires_at for u in "ac"] == [before[u].expires_at for u in "ac"]
    monkeypatch.setattr(budgets, "KEEP_ALIVE_EVERY", 0.0)  # kept alive all the same
    gw.budgets.publish()
    alive = _leases(gw.engine)
    assert all(alive[u].expires_at > after[u].expires_at for u in "abc")


def test_spend_already_stored_counts(gateway, server) -> None:
    first = gateway()
    server.enqueue(*[Reply(text="Hi", prompt_tokens=12, completion_tokens=2)] * 5)
    for _ in range(5):
        ask(first, server)
    first.flush()
    assert spent(first.engine) == pytest.approx(5 * 0.016)
    capped = gateway(block(0.1))  # 0.08 stored: no room for a 0.043 estimate
    with pytest.raises(BudgetExceededError) as refused:
        ask(capped, server)
    assert refused.value.spent_usd == pytest.approx(0.08)


def test_a_database_that_cannot_be_reached(make_gateway, server, tmp_path: Path) -> None:
    closed = "postgresql://nobody@127.0.0.1:9/none"  # nothing listens on port 9
    allow = Budget(name="a", window="day", limit_usd=1, action="block")
    refuse = Budget(name="b", window="day", limit_usd=1, action="block", unreachable="block")
    gw = make_gateway(database_url=closed, budgets=[allow], prices=PRICES)
    ask(gw, server)  # let through (and logged): the app keeps working
    strict = make_gateway(
        database_url=closed, budgets=[refuse], prices=PRICES, home=tmp_path / "strict"
    )
    with pytest.raises(BudgetExceededError, match="its ledger cannot be read"):
        ask(strict, server)


def test_block_budgets_from_the_config_file(make_gateway, server, tmp_path, monkeypatch) -> None:
    config = tmp_path / "llmops.yaml"
    config.write_text(
        "budgets:\n  limits:\n    - {name: tiny, window: month, limit_usd: 0.01, action: block}\n"
    )
    monkeypatch.setenv("LLMOPS_CONFIG", str(config))
    gw = make_gateway(prices=PRICES)
    with pytest.raises(BudgetExceededError, match="budget 'tiny'"):
        ask(gw, server)


# -- several processes -------------------------------------------------------------------

WORKER = textwrap.dedent(
    """
    import json, sys, threading
    from llmops import Budget, BudgetExceededError, Gateway

    url, home, base, limit = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    budget = Budget(name="shared", window="day", limit_usd=limit, action="block")
    prices = {"openai/gpt-4o-mini": {"input_per_million": 1000, "output_per_million": 2000}}
    gw = Gateway(url, home=home, prompts=home + "/none", budgets=[budget], prices=prices,
                 direct=True)  # the shared budget is the subject, not litellm
    counts = {"ok": 0, "blocked": 0}
    lock = threading.Lock()

    def hammer():
        refused_in_a_row = 0
        while refused_in_a_row < 20:
            try:
                gw.complete(model="openai/gpt-4o-mini", api_base=base, api_key="sk-test",
                            messages=[{"role": "user", "content": "Hello there"}],
                            max_tokens=10)
                refused_in_a_row = 0
                with lock:
                    counts["ok"] += 1
            except BudgetExceededError:
                refused_in_a_row += 1
                with lock:
                    counts["blocked"] += 1

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    gw.close()
    print(json.dumps(counts))
    """
)


@pytest.mark.integration
def test_several_processes_never_overshoot_a_shared_budget(
    database_url: str, server, tmp_path: Path
) -> None:
    """4 processes x 3 threads spend one budget as fast as they can: the stored spend stays
    within the limit (every estimate is an upper bound here: text, max_tokens, a price), and
    the budget is used up, not refused early."""
    limit = 1.5
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    from llmops.store.engine import check_schema, create_engine

    engine = create_engine(database_url)
    check_schema(engine)  # created once, before the race
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                str(script),
                database_url,
                str(tmp_path / f"home{i}"),
                server.base_url,
                str(limit),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=240)
        assert worker.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    total = spent(engine)
    ok = sum(r["ok"] for r in results)
    assert total <= limit + 1e-9, (total, results)
    assert total >= 0.9 * limit, (total, results)  # refused late, not early
    assert all(r["blocked"] >= 20 for r in results)
    rows = stored(engine)
    assert sum(1 for r in rows if r.status == "ok") == ok
    assert sum(1 for r in rows if r.status == "blocked") == sum(r["blocked"] for r in results)


def test_a_failing_lease_update_never_costs_the_calls(gateway, server, monkeypatch) -> None:
    """The lease update runs in the transaction that stores the calls: if it fails, the
    calls are stored all the same (the lease keeps counting them: conservative)."""
    from llmops.store import leases

    def refuse(connection, costs):
        raise RuntimeError("the ledger refused")

    monkeypatch.setattr(leases, "commit_costs", refuse)
    gw = gateway(block(10))
    for _ in range(3):
        ask(gw, server)
    gw.flush()
    assert [r.status for r in stored(gw.engine)] == ["ok"] * 3
    assert gw.writer.stats.rejected == 0


def test_expired_leases_of_dead_processes_are_pruned(gateway, server) -> None:
    gw = gateway(block(10))
    old = datetime.now(UTC) - timedelta(days=3)
    with gw.engine.begin() as connection:
        connection.execute(
            sa.insert(BUDGET_LEASES).values(
                id="dead", budget="cap", scope_value="", window_start=old, holder="gone:1:x",
                granted_usd=5.0, consumed_usd=1.0, committed_usd=0.0, created_at=old,
                updated_at=old, expires_at=old,
            )
        )  # fmt: skip
    ask(gw, server)  # starts the guard's thread, which prunes first
    gw.close()
    with gw.engine.connect() as connection:
        ids = set(connection.execute(sa.select(BUDGET_LEASES.c.id)).scalars())
    assert "dead" not in ids and len(ids) == 1


def test_a_dead_processs_lease_stops_counting_once_expired(gateway, server) -> None:
    """A process killed while holding a lease: its unused grant holds money back until the
    lease expires (LEASE_TTL without renewal), then the others get it."""
    server.enqueue(*[Reply(text="Hi", prompt_tokens=12, completion_tokens=2)] * 3)
    dead = gateway(block(0.2))
    ask(dead, server)
    dead.flush()
    lease = next(iter(dead.budgets._leases.values()))
    dead.budgets._stop.set()  # as if SIGKILLed: no more renewals, nothing given back
    dead.budgets._thread = None
    assert lease.granted_usd > 0.05  # holds more than it used
    alive = gateway(block(0.2), home=Path(dead.home).parent / "alive")
    need = alive.budgets.estimate(_call())
    grant = _grant_seen_by(alive, need)
    assert grant.held_usd == pytest.approx(lease.granted_usd - 0.016)  # the dead one's grant
    with alive.engine.begin() as connection:  # 30 s later: not renewed, expired
        connection.execute(
            sa.update(BUDGET_LEASES)
            .where(BUDGET_LEASES.c.id == lease.id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    grant = _grant_seen_by(alive, need)
    assert grant.held_usd == 0.0 and grant.spent_usd == pytest.approx(0.016)


def _grant_seen_by(gw, need: float):
    from llmops.store import leases

    lease = gw.budgets._lease(gw.budgets.budgets[0], "", datetime.now(UTC))
    return leases.grant(gw.engine, lease, need, 0.0, datetime.now(UTC))
