"""``llmops spend``, ``calls``, ``feedback`` and ``budgets`` (the in-process ``cli``); the
demo's tests are in ``tests/demo``."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from llmops.money import usd
from llmops.store import queries
from llmops.store.engine import create_engine
from llmops.testing import Reply


def test_spend_json_csv_and_table(seeded, cli, tmp_path) -> None:
    url, _, expected = seeded
    result = cli("spend", "--days", "7", "--by", "model", "--format", "json",
                 "--database-url", url, cwd=tmp_path)  # fmt: skip
    assert result.code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert {(r["date"], r["model"]) for r in rows} == set(expected)
    for r in rows:
        calls, cost = expected[(r["date"], r["model"])]
        assert r["calls"] == calls and r["cost_usd"] == pytest.approx(cost, rel=1e-9)
        assert set(r) >= {
            "date",
            "model",
            "calls",
            "prompt_tokens",
            "completion_tokens",
            "cost_usd",
        }
    as_csv = cli("spend", "--by", "user", "--format", "csv", "--database-url", url, cwd=tmp_path)
    parsed = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert {r["user"] for r in parsed} == {"ann", "bob"}
    top = cli("spend", "--by", "user", "--top", "1", "--format", "json", "--database-url", url,
              cwd=tmp_path)  # fmt: skip
    keys = {r["user"] for r in json.loads(top.stdout)}
    assert len(keys) == 2 and "(other)" in keys and keys <= {"ann", "bob", "(other)"}
    assert sum(r["calls"] for r in json.loads(top.stdout)) == 5
    table = cli("spend", "--database-url", url, cwd=tmp_path)
    total = sum(cost for _, cost in expected.values())
    assert f"Total: 5 calls, {usd(total)}" in table.stdout  # by magnitude, as the dashboard
    # sums of floats carry noise (0.0009251000000000001): JSON shows them rounded to 1e-10
    for r in rows:
        assert r["cost_usd"] == round(r["cost_usd"], 10)
        assert len(repr(r["cost_usd"])) <= 14, r["cost_usd"]


def test_csv_cells_a_spreadsheet_would_run_are_quoted(
    make_gateway, server, database_url, cli, tmp_path
) -> None:
    """A user id is the app's (or its end user's) choice: ``=HYPERLINK(...)`` opened as a
    formula in the spreadsheet a lead opens the export in."""
    gw = make_gateway()
    users = ['=HYPERLINK("http://x.test","hi")', "+1", "-2+3", "@SUM(A1)", "\tx", "plain",
             "bob;=SUM(1)"]  # fmt: skip
    for user in users:
        server.enqueue(Reply(prompt_tokens=10, completion_tokens=1))
        gw.complete(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], user=user,
                    api_base=server.base_url, api_key="sk-test", num_retries=0)  # fmt: skip
    gw.flush()
    base = ["--format", "csv", "--database-url", database_url]
    spend = cli("spend", "--by", "user", *base, cwd=tmp_path)
    listed = cli("calls", *base, cwd=tmp_path)
    safe = {"'" + u for u in users[:-2]} | {"plain", "bob;=SUM(1)"}
    assert {r["user"] for r in csv.DictReader(io.StringIO(spend.stdout))} == safe
    parsed = list(csv.DictReader(io.StringIO(listed.stdout)))
    assert {r["user_id"] for r in parsed} == safe
    assert all(float(r["cost_usd"]) > 0 for r in parsed)  # numbers as they are
    # every text cell quoted: a spreadsheet that splits on ";" keeps the cell whole
    assert ',"bob;=SUM(1)",' in listed.stdout and ',"bob;=SUM(1)",' in spend.stdout
    assert not re.search(r',"[0-9.e-]+",', listed.stdout)
    as_json = cli("calls", "--format", "json", "--database-url", database_url, cwd=tmp_path)
    assert {r["user_id"] for r in json.loads(as_json.stdout)} == set(users)


def test_calls_and_feedback(seeded, cli, tmp_path) -> None:
    url, ids, _ = seeded
    listed = json.loads(
        cli("calls", "--limit", "2", "--format", "json", "--database-url", url, cwd=tmp_path).stdout
    )
    assert [r["id"] for r in listed] == [ids[3], ids[4]]  # newest first (ids[4] is 1 min older)
    only_bob = cli("calls", "--user", "bob", "--database-url", url, cwd=tmp_path)
    assert "2 of 2 call(s)" in only_bob.stdout and "ann" not in only_bob.stdout
    done = cli("feedback", ids[0], "4", "--comment", "good", "--database-url", url, cwd=tmp_path)
    assert done.code == 0, done.stderr
    with create_engine(url).connect() as connection:
        row = connection.execute(sa.text("SELECT call_id, score, comment FROM feedback")).one()
    assert tuple(row) == (ids[0], 4.0, "good")
    unknown = cli("feedback", "6f1c3b1e-0000-4000-8000-000000000000", "1", "--database-url", url,
                  cwd=tmp_path)  # fmt: skip
    assert unknown.code == 2 and "no call" in unknown.stderr
    bad = cli("feedback", ids[0], "great", "--database-url", url, cwd=tmp_path)
    assert bad.code == 2 and "must be a number" in bad.stderr


def test_spend_and_calls_give_the_dashboards_figures(
    seeded, cli, tmp_path, make_gateway, server
) -> None:
    """`--days N` is the dashboard's range, the N whole UTC days that end with today: a call
    stamped later today (an app server whose clock runs ahead) counts in both, and the
    figures are summed from the rollups alone (ranges that ended at now left it out)."""
    url, _, _ = seeded
    now = datetime.now(UTC)
    ahead = now + min(timedelta(minutes=10), (now.replace(hour=23, minute=59) - now) / 2)
    if ahead.date() != now.date() or ahead <= now + timedelta(seconds=2):
        pytest.skip("too close to midnight for a call stamped later today")
    gw = make_gateway(clock=lambda: ahead)
    server.enqueue(Reply(prompt_tokens=4000, completion_tokens=400))
    late = gw.complete(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], user="cat",
        api_base=server.base_url, api_key="sk-test", num_retries=0,
    ).call_id  # fmt: skip
    gw.flush()
    today = now.date()
    shown = queries.daily_spend(  # what the dashboard's "last 7 days" shows
        create_engine(url), queries.Filters.days(today - timedelta(days=6), today), by="user"
    )
    result = cli("spend", "--days", "7", "--by", "user", "--format", "json",
                 "--database-url", url, cwd=tmp_path)  # fmt: skip
    assert result.code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert {(r["date"], r["user"], r["calls"]) for r in rows} == {
        (r.date.isoformat(), r.key, r.calls) for r in shown
    }
    assert (today.isoformat(), "cat", 1) in {(r["date"], r["user"], r["calls"]) for r in rows}
    assert sum(r["cost_usd"] for r in rows) == pytest.approx(sum(r.cost_usd for r in shown))
    listed = cli("calls", "--limit", "1", "--format", "json", "--database-url", url, cwd=tmp_path)
    assert [r["id"] for r in json.loads(listed.stdout)] == [late]  # the newest call


BUDGETS_YAML = """\
budgets:
  limits:
    - {name: everything, window: week, limit_usd: 0.001, thresholds: [50, 100]}
    - {name: per-user, window: month, limit_usd: 5, scope: {user: each}}
    - {name: mini, window: day, limit_usd: 1, scope: {model: gpt-4o-mini}}
"""


def test_budgets_show_spend_against_each_limit(seeded, cli, tmp_path) -> None:
    from llmops.store.queries import window_span

    url, _, _ = seeded
    (tmp_path / "llmops.yaml").write_text(BUDGETS_YAML)
    result = cli("budgets", "--json", "--database-url", url, cwd=tmp_path)
    assert result.code == 0, result.stderr
    rows = {(r["budget"], r["key"]): r for r in json.loads(result.stdout)}

    def spent(window: str, where: str, **params: object) -> float:
        start, end = window_span(window, datetime.now(UTC))
        with create_engine(url).connect() as connection:  # the calls themselves, not rollups
            rows = connection.execute(
                sa.text(f"SELECT created_at, cost_usd FROM llm_calls WHERE {where}"), params
            ).all()
        stamps = [(_utc(datetime.fromisoformat(str(t))), c) for t, c in rows]
        return sum(c for t, c in stamps if start <= t < end)

    assert rows[("everything", None)]["spent_usd"] == pytest.approx(spent("week", "1 = 1"))
    for user in ("ann", "bob"):
        got = rows.get(("per-user", user), {"spent_usd": 0.0})["spent_usd"]
        assert got == pytest.approx(spent("month", "user_id = :u", u=user))
    mini = rows[("mini", None)]
    assert mini["spent_usd"] == pytest.approx(spent("day", "model = 'gpt-4o-mini'"))
    assert mini["percent"] == pytest.approx(100 * mini["spent_usd"] / 1)
    everything = rows[("everything", None)]
    assert everything["state"] == "over" and everything["threshold_reached"] == 100
    table = cli("budgets", "--database-url", url, cwd=tmp_path)
    assert table.code == 0 and table.stdout.splitlines()[0].split()[:3] == [
        "BUDGET", "SCOPE", "WINDOW"
    ]  # fmt: skip
    assert "everything  all calls" in table.stdout and "over" in table.stdout


def test_budgets_without_limits_and_with_a_bad_file(cli, tmp_path, database_url) -> None:
    none = cli("budgets", "--database-url", database_url, cwd=tmp_path)
    assert none.code == 0 and "No budgets" in none.stdout
    (tmp_path / "llmops.yaml").write_text("budgets:\n  limits:\n    - {name: x, window: year}\n")
    bad = cli("budgets", "--database-url", database_url, cwd=tmp_path)
    assert bad.code == 2 and bad.stderr.startswith("error: llmops.yaml:3:")
    assert len(bad.stderr.splitlines()) == 1


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def test_ids_users_chose_are_printed_escaped(make_gateway, server, cli, tmp_path) -> None:
    """A user id is the app's end user's (`x-llmops-user` through `llmops serve`): printed
    raw, one cleared the lead's terminal, coloured it or forged a row of the table."""
    hostile = "evil\x1b[2J\x1b[31m\nFAKE  row\u202egnp.exe"
    gw = make_gateway()
    server.enqueue(Reply(prompt_tokens=10, completion_tokens=2))
    gw.complete(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                user=hostile, api_base=server.base_url, api_key="sk-test")  # fmt: skip
    gw.flush()
    url = str(gw.engine.url)
    (tmp_path / "llmops.yaml").write_text(
        "budgets:\n  limits:\n    - {name: per-user, window: month, limit_usd: 1, "
        "scope: {user: each}}\n"
    )
    for args in (("calls",), ("spend", "--by", "user"), ("budgets",)):
        result = cli(*args, "--database-url", url, cwd=tmp_path)
        assert result.code == 0, result.stderr
        assert "evil\\x1b[2J\\x1b[31m\\x0aFAKE  row\\u202egnp.exe" in result.stdout, args
        assert not any(c in result.stdout for c in "\x1b\u202e"), args
