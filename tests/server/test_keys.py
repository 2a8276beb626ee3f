"""Virtual keys: stored hashed, checked on every request, with models, rates and a monthly
budget per key; the key's name is recorded with each call."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import openai
import pytest
import sqlalchemy as sa

from llmops.server import access as access_module
from llmops.store.engine import check_schema, create_engine
from llmops.store.keys import create_key, list_keys, match, revoke_key
from llmops.store.tables import API_KEYS
from llmops.testing import Reply
from tests.server.test_server import Running, running  # noqa: F401  (the fixture)

NOW = datetime(2026, 12, 2, 12, tzinfo=UTC)
ASK = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}


@pytest.fixture(autouse=True)
def _no_key_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(access_module, "KEY_CACHE_SECONDS", 0.0)  # see changes at once


def _engine(tmp_path: Path) -> sa.Engine:
    engine = create_engine(f"sqlite:///{tmp_path / 'db' / 'llmops.db'}")
    check_schema(engine)
    return engine


def test_only_a_hash_of_the_key_is_stored(tmp_path: Path) -> None:
    engine = _engine(tmp_path)
    key, secret = create_key(engine, "web", NOW, models=["gpt-4o-mini"], rpm=10)
    assert secret.startswith("llx_") and len(secret) > 40 and key.prefix == secret[:12]
    database = (tmp_path / "db" / "llmops.db").read_bytes()
    assert secret.encode() not in database and secret[12:].encode() not in database
    (stored,) = list_keys(engine)
    assert match([stored], secret) == stored
    assert match([stored], secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
    assert match([stored], "sk-" + secret) is None
    revoke_key(engine, "web", NOW)
    assert match(list_keys(engine), secret) is None


@pytest.mark.parametrize("name", ["", "a b", "-x", "x" * 97, "ünï"])
def test_bad_names_are_refused(tmp_path: Path, name: str) -> None:
    from llmops.errors import ConfigError

    with pytest.raises(ConfigError, match="key name"):
        create_key(_engine(tmp_path), name, NOW)


def test_the_cli_shows_a_key_once_and_never_again(cli, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db' / 'llmops.db'}"
    made = cli("keys", "create", "--name", "web", "--rpm", "60", "--database-url", url,
               cwd=tmp_path)  # fmt: skip
    assert made.code == 0, made.stderr
    secret = made.stdout.strip()
    assert secret.startswith("llx_") and "shown only now" in made.stderr
    listed = cli("keys", "list", "--json", "--database-url", url, cwd=tmp_path)
    (row,) = json.loads(listed.stdout)
    assert row["name"] == "web" and row["rpm"] == 60 and secret not in listed.stdout
    again = cli("keys", "create", "--name", "web", "--database-url", url, cwd=tmp_path)
    assert again.code == 2 and again.stderr.startswith("error: a key named 'web' exists")
    assert cli("keys", "revoke", "web", "--database-url", url, cwd=tmp_path).code == 0
    twice = cli("keys", "revoke", "web", "--database-url", url, cwd=tmp_path)
    assert twice.code == 2 and "was revoked" in twice.stderr


def test_once_a_key_exists_every_request_needs_one(running, server) -> None:  # noqa: F811
    app: Running = running()
    assert app.post("/v1/chat/completions", json.dumps(ASK).encode())[0] == 200  # no keys yet
    _, secret = create_key(app.gateway.engine, "web", NOW)
    status, _, body = app.post("/v1/chat/completions", json.dumps(ASK).encode())
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        app.client(api_key="llx_00000000_wrong").chat.completions.create(**ASK)
    client = openai.OpenAI(base_url=f"{app.url}/v1", api_key=secret, max_retries=0)
    client.chat.completions.create(**ASK)
    assert app.rows()[-1]["api_key"] == "web"
    anthropic_style = app.post(
        "/v1/chat/completions", json.dumps(ASK).encode(), {"x-api-key": secret}
    )
    assert anthropic_style[0] == 200
    revoke_key(app.gateway.engine, "web", NOW)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(**ASK)  # revoked: the last key, still not anonymous
    assert [r["api_key"] for r in app.rows()] == [None, "web", "web"]
    from llmops.store import queries

    span = queries.Filters.last_days(1, datetime.now(UTC))
    split = queries.daily_spend(app.gateway.engine, span, by="key")
    assert {row.key: row.calls for row in split} == {"(none)": 1, "web": 2}


def test_a_key_may_use_only_its_models(running, server, project) -> None:  # noqa: F811
    app: Running = running()
    _, secret = create_key(app.gateway.engine, "narrow", NOW, models=["gpt-4o-mini"])
    client = openai.OpenAI(base_url=f"{app.url}/v1", api_key=secret, max_retries=0)
    client.chat.completions.create(**ASK)
    with pytest.raises(openai.PermissionDeniedError, match="may not use 'gpt-4o'"):
        client.chat.completions.create(**{**ASK, "model": "gpt-4o"})
    # a prompt whose model is allowed may be used by reference
    client.chat.completions.create(
        model="prompt:greet@production", messages=[], extra_body={"variables": {"name": "A"}}
    )
    assert [m.id for m in client.models.list()] == ["gpt-4o-mini"]


def test_over_its_rate_a_key_gets_429_with_retry_after(running, server) -> None:  # noqa: F811
    app: Running = running()
    _, secret = create_key(app.gateway.engine, "slow", NOW, rpm=2)
    headers = {"authorization": f"Bearer {secret}"}
    answers = [app.post("/v1/chat/completions", json.dumps(ASK).encode(), headers)
               for _ in range(2)]  # fmt: skip
    assert [status for status, _, _ in answers] == [200, 200]
    for _, answered, _ in answers:  # feedback and the model list do not use up the rate
        given = {"call_id": answered["x-llmops-call-id"], "score": 1}
        assert app.post("/v1/feedback", json.dumps(given).encode(), headers)[0] == 200
    listed = httpx.get(f"{app.url}/v1/models", headers=headers, timeout=10)
    assert listed.status_code == 200
    status, answer_headers, body = app.post(
        "/v1/chat/completions", json.dumps(ASK).encode(), headers
    )
    assert status == 429 and body["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(answer_headers["retry-after"]) <= 60
    assert len(app.rows()) == 2  # refused before the gateway: nothing sent, nothing recorded


def test_tokens_per_minute(running, server) -> None:  # noqa: F811
    app: Running = running()
    _, secret = create_key(app.gateway.engine, "tokens", NOW, tpm=30)
    headers = {"authorization": f"Bearer {secret}"}
    server.enqueue(Reply(text="ok", prompt_tokens=25, completion_tokens=10))
    assert app.post("/v1/chat/completions", json.dumps(ASK).encode(), headers)[0] == 200
    status, _, body = app.post("/v1/chat/completions", json.dumps(ASK).encode(), headers)
    assert status == 429 and "30 tokens per minute" in body["error"]["message"]


def test_a_keys_monthly_budget_blocks(running, server) -> None:  # noqa: F811
    app: Running = running()
    _, secret = create_key(app.gateway.engine, "capped", NOW, budget_usd_month=0.05)
    _, other = create_key(app.gateway.engine, "free", NOW)
    server.enqueue(*[Reply(text="ok", prompt_tokens=20, completion_tokens=2)] * 20)
    capped = {"authorization": f"Bearer {secret}"}
    body = json.dumps({**ASK, "max_tokens": 5}).encode()
    statuses = [app.post("/v1/chat/completions", body, capped)[0] for _ in range(6)]
    assert statuses[:2] == [200, 200] and statuses[-1] == 429
    _, _, answer = app.post("/v1/chat/completions", body, capped)
    assert (
        answer["error"]["type"] == "budget_exceeded" and "key-capped" in answer["error"]["message"]
    )
    assert app.post("/v1/chat/completions", body, {"authorization": f"Bearer {other}"})[0] == 200
    rows = app.rows()
    spent = sum(r["cost_usd"] or 0 for r in rows if r["api_key"] == "capped")
    assert spent <= 0.05
    assert {r["status"] for r in rows if r["api_key"] == "capped"} == {"ok", "blocked"}
    with app.gateway.engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(API_KEYS)).scalar() == 2


def test_tokens_of_streams_a_client_left_count_in_its_rate(running, server) -> None:  # noqa: F811
    """Only answered calls counted: a client leaving its streams early used tokens with
    no limit (four cancelled streams of ~165 tokens passed a limit of 300)."""
    app: Running = running()
    _, secret = create_key(app.gateway.engine, "streams", NOW, tpm=5)
    client = openai.OpenAI(base_url=app.url + "/v1", api_key=secret, max_retries=0)
    server.enqueue(Reply(text=" ".join(["word"] * 400), prompt_tokens=150, chunk_delay=0.01))
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=ASK["messages"],
                                            stream=True)  # fmt: skip
    for _, _chunk in zip(range(3), stream, strict=False):
        pass
    stream.close()
    deadline = time.monotonic() + 20
    while not (rows := app.rows()) or rows[0]["status"] == "ok":
        assert time.monotonic() < deadline, rows
        time.sleep(0.1)
    assert rows[0]["status"] == "cancelled" and rows[0]["prompt_tokens"] > 5  # counted here
    status, _, body = app.post("/v1/chat/completions", json.dumps(ASK).encode(),
                               {"authorization": f"Bearer {secret}"})  # fmt: skip
    assert status == 429 and "5 tokens per minute" in body["error"]["message"]


def test_keys_are_read_off_the_event_loop_and_a_locked_table_holds_up_no_request(
    postgres_url: str,
) -> None:
    """The keys were read again on the event loop every few seconds: with the keys' table
    locked (or the database unreachable: a 5 s connect timeout) every request and stream of
    the server stopped until the read ended. Now a request waits at most
    STALE_WAIT_SECONDS for it, with the keys last read, and the loop never stops; the read
    it started still applies a revocation once it ends."""
    import asyncio

    from starlette.requests import Request

    from llmops.gateway.budgets import BudgetGuard
    from llmops.pricing.prices import PriceBook
    from llmops.server.access import STALE_WAIT_SECONDS, Access, Refused

    engine = create_engine(postgres_url)
    check_schema(engine)
    _, secret = create_key(engine, "web", NOW)
    now = [0.0]
    guard = BudgetGuard([], lambda: engine, PriceBook(), source="test")
    access = Access(lambda: engine, guard, clock=lambda: now[0])
    request = Request(
        {"type": "http", "headers": [(b"authorization", f"Bearer {secret}".encode())]}
    )
    locker = engine.connect()

    async def scenario() -> tuple[float, float]:
        assert (await access.aadmit(request)) is not None  # the first read: waited for
        transaction = locker.begin()
        locker.execute(sa.text(f"LOCK TABLE {API_KEYS.name} IN ACCESS EXCLUSIVE MODE"))
        locker.execute(sa.update(API_KEYS).values(revoked_at=NOW))  # seen once committed
        now[0] += access_module.KEY_CACHE_SECONDS + 1  # the keys are stale: read them again
        gaps: list[float] = []

        async def tick() -> None:
            last = time.perf_counter()
            for _ in range(60):
                await asyncio.sleep(0.02)
                gaps.append(time.perf_counter() - last - 0.02)
                last = time.perf_counter()

        ticking = asyncio.create_task(tick())
        started = time.perf_counter()
        assert (await access.aadmit(request)) is not None  # the keys last read, in time
        waited = time.perf_counter() - started
        await ticking
        transaction.commit()  # the read under way ends: the key is revoked
        for _ in range(100):
            await asyncio.sleep(0.05)
            try:
                await access.aadmit(request)
            except Refused as refused:
                assert refused.status == 401
                return waited, max(gaps)
        raise AssertionError("the revocation was never read")

    try:
        waited, stalled = asyncio.run(scenario())
    finally:
        locker.close()
    assert STALE_WAIT_SECONDS - 0.05 <= waited < STALE_WAIT_SECONDS + 0.5
    assert stalled < 0.3, f"the event loop stopped for {stalled:.2f} s"


def test_a_request_after_a_revocation_does_not_share_a_read_begun_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the keys read for every request (KEY_CACHE_SECONDS 0), a request that came
    after a revocation joined a read begun before it, and was admitted with the revoked key.
    (A read of the keys is made slow here: it takes its snapshot, then 0.3 s.)"""
    import asyncio

    from starlette.requests import Request

    from llmops.gateway.budgets import BudgetGuard
    from llmops.pricing.prices import PriceBook
    from llmops.server.access import Access, Refused
    from llmops.store import keys as keys_module

    engine = _engine(tmp_path)
    _, secret = create_key(engine, "web", NOW)
    read = keys_module.list_keys

    def slow(engine: sa.Engine) -> list:
        found = read(engine)
        time.sleep(0.3)
        return found

    monkeypatch.setattr(keys_module, "list_keys", slow)
    access = Access(lambda: engine, BudgetGuard([], lambda: engine, PriceBook(), source="t"))
    request = Request(
        {"type": "http", "headers": [(b"authorization", f"Bearer {secret}".encode())]}
    )

    async def scenario() -> None:
        await access.aadmit(request)  # the first read
        before = asyncio.create_task(access.aadmit(request))  # a read of the active key
        await asyncio.sleep(0.1)
        revoke_key(engine, "web", NOW)
        with pytest.raises(Refused) as refused:
            await access.aadmit(request)  # came after the revocation: reads again
        assert refused.value.status == 401
        assert (await before) is not None  # began before it: may still see the key

    asyncio.run(scenario())
