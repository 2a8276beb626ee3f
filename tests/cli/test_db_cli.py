"""``llmops db`` and ``llmops costs`` against real databases."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from llmops.store.engine import HEAD_REVISION, create_engine, upgrade
from llmops.testing import Reply


def test_db_upgrade_and_status(empty_database_url: str, cli, tmp_path) -> None:
    upgrade(create_engine(empty_database_url), "0001")
    status = cli("db", "status", "--database-url", empty_database_url, cwd=tmp_path)
    assert status.code == 2
    assert f"schema:   0001 (this llmops: {HEAD_REVISION})" in status.stdout
    assert "llmops db upgrade" in status.stderr
    done = cli("db", "upgrade", "--database-url", empty_database_url, cwd=tmp_path)
    assert done.code == 0, done.stderr
    assert f"schema 0001 -> {HEAD_REVISION}" in done.stdout
    again = cli("db", "upgrade", "--database-url", empty_database_url, cwd=tmp_path)
    assert f"already at schema {HEAD_REVISION}" in again.stdout
    status = cli("db", "status", "--database-url", empty_database_url, cwd=tmp_path)
    assert status.code == 0 and re.search(r"^llm_calls +0$", status.stdout, re.M)


def test_db_upgrade_creates_a_new_database_from_the_environment(cli, tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'calls.db'}"
    result = cli("db", "upgrade", cwd=tmp_path, env={"LLMOPS_DATABASE_URL": url})
    assert result.code == 0 and f"schema (none) -> {HEAD_REVISION}" in result.stdout
    assert (tmp_path / "new" / "calls.db").is_file()


def test_the_folders_the_cli_makes_are_owner_only(cli, tmp_path) -> None:
    """`llmops db upgrade` (and `demo`, `dashboard`) made LLMOPS_HOME 0755 under the usual
    umask: the database in it holds prompts and answers."""
    import os
    import stat

    home = tmp_path / "home" / ".llmops"
    previous = os.umask(0o022)
    try:
        result = cli("db", "upgrade", cwd=tmp_path, env={"LLMOPS_HOME": str(home)})
    finally:
        os.umask(previous)
    assert result.code == 0, result.stderr
    for folder in (home, home.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


def test_db_status_and_replay_show_the_journal(database_url: str, cli, tmp_path) -> None:
    """Records a dead process left: `db status` counts them, `db replay` stores them."""
    from llmops.store.journal import Entry, encode
    from tests.store.test_writer import call_row, count

    upgrade(create_engine(database_url))
    spool = tmp_path / ".llmops" / "spool"
    spool.mkdir(parents=True)
    rows = [call_row() for _ in range(7)]
    (spool / "deadhost-1-x-000001.jsonl").write_bytes(
        b"".join(encode(Entry("call", row)) for row in rows) + b"torn"
    )
    status = cli("db", "status", "--database-url", database_url, cwd=tmp_path)
    assert status.code == 0, status.stderr
    assert "journal:  8 records in 1 files waiting for a replay" in status.stdout
    done = cli("db", "replay", "--database-url", database_url, cwd=tmp_path)
    assert done.code == 0, done.stderr
    assert "7 records replayed, 0 repaired, 0 rejected; 0 records in 0 files" in done.stdout
    assert count(database_url) == 7
    status = cli("db", "status", "--database-url", database_url, cwd=tmp_path)
    assert "journal:  0 records in 0 files" in status.stdout
    assert "rejected: 1 records" in status.stdout  # the torn line, kept with its reason


def test_unreachable_database_is_one_line(cli, tmp_path) -> None:
    url = "postgresql://nobody@127.0.0.1:1/none"
    result = cli("db", "status", "--database-url", url, cwd=tmp_path)
    assert result.code == 1
    assert result.stderr.startswith("error: database:") and "Traceback" not in result.stderr


def test_costs_recompute(make_gateway, server, database_url: str, cli, tmp_path) -> None:
    gw = make_gateway()
    server.enqueue(*[Reply(prompt_tokens=1000, completion_tokens=500) for _ in range(5)])
    messages = [{"role": "user", "content": "hi"}]
    common = {"api_base": server.base_url, "api_key": "sk-test", "num_retries": 0}
    for _ in range(3):
        gw.complete(model="openai/acme-mystery-9", messages=messages, **common)
    for _ in range(2):
        gw.complete(model="gpt-4o-mini", messages=messages, **common)
    gw.flush()
    prices = tmp_path / "prices.yaml"
    prices.write_text(
        "models:\n  acme-mystery-9:\n    input_per_million: 2\n    output_per_million: 6\n"
    )
    args = ("costs", "recompute", "--since", "1d", "--database-url", database_url)
    dry = cli(*args, "--prices", str(prices), "--dry-run", cwd=tmp_path)
    assert dry.code == 0, dry.stderr
    assert "5 call(s) examined, would change 3, 0 now unpriced, 0 approximate" in dry.stdout

    def costs() -> dict[str, list]:
        with create_engine(database_url).connect() as connection:
            result = connection.execute(
                sa.text("SELECT model, cost_usd, cost_status, price_source FROM llm_calls")
            )
            found: dict[str, list] = {}
            for model, cost, status, source in result:
                found.setdefault(model, []).append((cost, status, source))
            return found

    assert {c[1] for c in costs()["openai/acme-mystery-9"]} == {"unpriced"}
    done = cli(*args, "--prices", str(prices), cwd=tmp_path)
    assert "changed 3" in done.stdout
    after = costs()
    assert (
        after["openai/acme-mystery-9"]
        == [(pytest.approx(1000 * 2e-6 + 500 * 6e-6), "custom", "custom:prices.yaml")] * 3
    )
    assert all(status == "priced" for _, status, _ in after["gpt-4o-mini"])
    assert "changed 0" in cli(*args, "--prices", str(prices), cwd=tmp_path).stdout
    # without the prices file acme-mystery-9 has no price: its cost stays, and we are told
    (tmp_path / "empty.yaml").write_text("models: {}\n")
    kept = cli(*args, "--prices", str(tmp_path / "empty.yaml"), cwd=tmp_path)
    assert "changed 0" in kept.stdout
    assert "warning: 3 call(s) kept their old cost" in kept.stderr
    assert "openai/acme-mystery-9 (3)" in kept.stderr
    assert costs()["openai/acme-mystery-9"] == after["openai/acme-mystery-9"]


def test_costs_recompute_bad_input(cli, tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    bad = cli("costs", "recompute", "--since", "yesterday-ish", "--database-url", url, cwd=tmp_path)
    assert bad.code == 2 and "--since 'yesterday-ish'" in bad.stderr
    (tmp_path / "prices.yaml").write_text("models:\n  m:\n    input_per_million: x\n")
    bad = cli("costs", "recompute", "--since", "7d", "--database-url", url, cwd=tmp_path)
    assert bad.code == 2 and "prices.yaml:3" in bad.stderr
