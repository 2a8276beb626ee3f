"""Whatever an app passes, the call is recorded: bad values are made storable, credentials
are never stored, and the files llmops writes are readable by their owner only."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from llmops.testing import Reply
from tests.gateway.test_gateway import SECRET, USER_MSG, http, rows


def test_circular_metadata_then_many_calls_with_a_small_queue(make_gateway, database_url):
    """The issue's reproduction: 0 rows were stored and close() hung."""
    gw = make_gateway(queue_size=50)
    circular: dict = {}
    circular["s"] = circular
    ids = [gw.complete(model="gpt-4o-mini", messages=USER_MSG, mock_response="ok",
                       metadata=circular).call_id]  # fmt: skip
    for i in range(100):
        ids.append(
            gw.complete(
                model="gpt-4o-mini",
                messages=USER_MSG,
                mock_response="ok",
                metadata={("tuple", i): b"bytes", "obj": object(), "nan": float("nan")},
            ).call_id
        )
    closing = threading.Thread(target=gw.close)
    closing.start()
    closing.join(60)
    assert not closing.is_alive()
    assert sorted(r["id"] for r in rows(database_url)) == sorted(ids)


@pytest.mark.integration  # a Python process of its own
def test_values_postgres_refuses_are_stored_from_another_process_too(
    postgres_url, tmp_path: Path
) -> None:
    """Issue: a NUL, a NaN or a long user jammed the spool for every process on PostgreSQL."""
    from llmops import Gateway

    gw = Gateway(database_url=postgres_url, home=tmp_path / "home", prompts=tmp_path / "none")
    bad = [
        gw.complete(model="gpt-4o-mini", messages=[{"role": "user", "content": "a\x00b"}],
                    mock_response="c\x00d"),
        gw.complete(model="gpt-4o-mini", messages=USER_MSG, mock_response="ok",
                    metadata={"score": float("nan"), "k\x00": "v"}),
        gw.complete(model="gpt-4o-mini", messages=USER_MSG, mock_response="ok", user="u" * 5000,
                    session="s" * 500, tags=["t" * 300]),
    ]  # fmt: skip
    assert gw.flush(30)
    assert gw.writer.stats.rejected == 0 and gw.writer.healthy
    script = (
        "import llmops\n"
        f"gw = llmops.Gateway(database_url={postgres_url!r}, home={str(tmp_path / 'home')!r})\n"
        "for i in range(300):\n"
        "    gw.complete(model='gpt-4o-mini', messages=[{'role': 'user', 'content': 'hi'}],"
        " mock_response='ok')\n"
        "gw.close()\n"
        "print(gw.writer.stats.written + gw.writer.stats.replayed, gw.writer.stats.spooled)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    stored = {r["id"]: r for r in rows(postgres_url)}
    assert len(stored) == 303
    assert stored[bad[0].call_id]["response_text"] == "c\ufffdd"
    assert len(stored[bad[2].call_id]["user_id"]) == 200
    gw.close()
    assert not list((tmp_path / "home" / "spool").glob("*.jsonl"))


# -- credentials ----------------------------------------------------------------------


@pytest.mark.parametrize("content", ["full", "redact", "none"])
def test_credentials_are_stored_nowhere(make_gateway, server, database_url, tmp_path, content):
    """Issue: a password in api_base, api keys in extra_body and metadata, and provider
    errors echoing the key were stored."""
    gw = make_gateway(content=content)
    base = server.base_url.replace("http://", f"http://admin:{SECRET}@")
    params = {
        "api_key": SECRET,
        "num_retries": 0,
        "max_retries": 0,
        "extra_body": {"api_key": SECRET, "nested": {"Authorization": f"Bearer {SECRET}"}},
    }
    gw.complete(
        model="gpt-4o-mini",
        messages=USER_MSG,
        api_base=base,
        metadata={"api_key": SECRET, "deep": [{"password": SECRET, "x-api-key": SECRET}]},
        **params,
    )
    server.enqueue(Reply(status=401, text=f"Incorrect API key provided: {SECRET}."))
    with pytest.raises(Exception, match="Incorrect API key"):
        gw.complete(model="gpt-4o-mini", messages=USER_MSG, api_base=server.base_url, **params)
    assert gw.flush(10)
    stored = [dict(r) for r in rows(database_url)]
    assert len(stored) == 2
    dump = json.dumps(stored, default=str)
    assert SECRET not in dump
    assert "admin:[REDACTED]@" in dump  # the URL is kept, its password is not
    assert "[REDACTED]" in (stored[0]["error_message"] or stored[1]["error_message"])
    for path in (tmp_path / "home").rglob("*"):  # the journal and any log
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_secret_names_at_any_depth() -> None:
    from llmops.credentials import scrub, secret_name
    from llmops.gateway.content import safe_params

    for name in ("api_key", "x-api-key", "apiKey", "access_token", "Authorization", "password",
                 "aws_secret_access_key", "client_secret", "refresh_token", "cookie"):  # fmt: skip
        assert secret_name(name), name
    for name in ("max_tokens", "temperature", "author", "tokens", "key_points", "model"):
        assert not secret_name(name), name
    params = safe_params({"api_key": "x", "temperature": 0.1, "max_tokens": 5})
    assert params == {"temperature": 0.1, "max_tokens": 5}
    assert scrub({"a": [{"token": "t"}], "url": "https://u:p@h/x?key=AIzaX&q=1"}) == {
        "a": [{"token": "[REDACTED]"}],
        "url": "https://u:[REDACTED]@h/x?key=[REDACTED]&q=1",
    }


# -- file modes -----------------------------------------------------------------------


def test_files_holding_prompts_are_owner_only(server, tmp_path: Path) -> None:
    """Issue: llmops.db (+ -wal/-shm), spool files, rejected.log and eval-cache.db were 0644,
    LLMOPS_HOME and spool/ 0755."""
    from llmops import Gateway
    from llmops.evals.cache import ResponseCache

    old = os.umask(0o022)
    try:
        home = tmp_path / "state" / "home"
        gw = Gateway(home=home, prompts=tmp_path / "none")
        gw.complete(model="gpt-4o-mini", messages=USER_MSG, **http(server))
        gw.writer.journal.reject(["x"], "a test line")
        gw.flush()
        ResponseCache(home / "eval-cache.db").close()
        files = sorted(p.name for p in home.rglob("*") if p.is_file())
        assert {"llmops.db", "llmops.db-wal", "llmops.db-shm", "rejected.log",
                "eval-cache.db"} <= set(files)  # fmt: skip
        assert any(name.endswith(".jsonl") for name in files)
        for path in [home, home / "spool", *home.rglob("*")]:
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
        gw.close()
    finally:
        os.umask(old)


def test_a_non_finite_or_negative_price_is_refused_when_given(make_gateway, tmp_path) -> None:
    """Issue: an infinite price passed validation, then every call failed to record."""
    from llmops import Gateway
    from llmops.errors import ConfigError

    with pytest.raises(ConfigError, match="finite"):
        Gateway(prices={"m": {"input_per_million": float("inf"), "output_per_million": 1}},
                home=tmp_path / "h")  # fmt: skip
    gw = make_gateway()
    with pytest.raises(ConfigError, match="price=: input_per_million"):
        gw.complete(model="gpt-4o-mini", messages=USER_MSG, mock_response="ok",
                    price={"input_per_million": -1, "output_per_million": 1})  # fmt: skip


@pytest.mark.parametrize("stream", [False, True])
def test_numbers_too_large_for_a_float_in_a_usage_break_no_call(
    make_gateway, server, database_url, stream
) -> None:
    """Valid JSON with a 400-digit integer in the usage (a search count, a reported cost)
    raised OverflowError out of the app's call and stored nothing."""
    gw = make_gateway()
    huge = {"num_search_queries": 10**400, "citation_tokens": 10**400, "cost": 10**400}
    server.enqueue(Reply(prompt_tokens=20, completion_tokens=5, usage_fields=huge,
                         usage_unasked=True))  # fmt: skip
    call = {"model": "perplexity/sonar-pro", "messages": USER_MSG, "num_retries": 0,
            "api_base": server.base_url, "api_key": "sk-test"}  # fmt: skip
    if stream:
        with gw.stream(**call) as chunks:
            text = "".join(chunks)
    else:
        text = gw.complete(**call).text
    assert text
    assert gw.flush(10)
    (row,) = rows(database_url)
    assert (row["status"], row["prompt_tokens"]) == ("ok", 20)
    assert row["cost_usd"] is not None and row["price_source"] != "billed:perplexity"
