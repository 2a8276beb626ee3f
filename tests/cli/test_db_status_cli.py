"""``llmops db status``: every table of the schema with its rows, aligned, on a database the
Gateway, the eval runner and ``llmops keys`` filled."""

from __future__ import annotations

import json
import random
import re
import string
import textwrap

import pytest
import sqlalchemy as sa

from llmops.store.engine import HEAD_REVISION, create_engine, upgrade
from llmops.store.partitions import PARENTS, list_partitions
from tests.conftest import TEN_CASES, PromptRepo
from tests.store.test_writer import call_row, store_rows


def _counts(url: str) -> dict[str, int]:
    """Rows of every table the database has, counted here (the schema version table
    aside, and the partitions of llm_calls and llm_call_content on PostgreSQL: their rows
    are their parent's)."""
    engine = create_engine(url)
    with engine.connect() as connection:
        names = sa.inspect(connection).get_table_names()
        partitions = {p.name for t in PARENTS for p in list_partitions(connection, t)}
        return {
            name: connection.execute(sa.text(f'SELECT count(*) FROM "{name}"')).scalar_one()
            for name in names
            if name != "llmops_schema_version" and name not in partitions
        }


def _table(stdout: str) -> tuple[list[str], dict[str, str]]:
    """The lines of the TABLE/ROWS block and its rows as {table: rows}."""
    lines = stdout.split("\n\n")[1].splitlines()
    assert re.fullmatch(r"TABLE +ROWS", lines[0]), lines[0]
    return lines, dict(line.split() for line in lines[1:])  # type: ignore[misc]


def test_status_lists_every_table_with_its_rows(
    make_gateway, server, database_url: str, cli, project: PromptRepo, tmp_path
) -> None:
    gateway = make_gateway()
    messages = [{"role": "user", "content": "hi"}]
    calls = [
        gateway.complete(model="gpt-4o-mini", messages=messages, api_base=server.base_url,
                         api_key="sk-test", num_retries=0)
        for _ in range(3)
    ]  # fmt: skip
    for score, done in enumerate(calls[:2]):
        gateway.feedback(done.call_id, score)
    assert gateway.flush(timeout=30)
    suite = project.root / "evals" / "greet.yaml"
    suite.parent.mkdir()
    suite.write_text(textwrap.dedent(f"prompt: greet\ncases:\n{TEN_CASES}\n"))
    env = {
        "OPENAI_API_BASE": server.base_url,
        "OPENAI_API_KEY": "sk-test",
        "LLMOPS_HOME": str(tmp_path / "home"),
        "LLMOPS_DATABASE_URL": database_url,
    }
    evals = cli("eval", "run", cwd=project.root, env=env)
    assert evals.code == 0, evals.stderr
    made = cli("keys", "create", "--name", "web", "--database-url", database_url, cwd=tmp_path)
    assert made.code == 0, made.stderr

    status = cli("db", "status", "--database-url", database_url, cwd=tmp_path)
    assert status.code == 0, status.stderr
    assert f"schema:   {HEAD_REVISION} (this llmops: {HEAD_REVISION})" in status.stdout
    lines, shown = _table(status.stdout)
    counts = _counts(database_url)
    assert shown == {name: str(rows) for name, rows in counts.items()}  # every table, exactly
    assert counts["llm_calls"] == counts["llm_call_content"] == 3 + 20 and counts["feedback"] == 2
    assert counts["eval_runs"] == 2 and counts["eval_results"] == 20 and counts["api_keys"] == 1
    assert len({len(line) for line in lines}) == 1  # counts right-aligned under ROWS
    assert [line.split()[0] for line in lines[1:5]] == [
        "llm_calls", "llm_call_content", "feedback", "llm_calls_daily",
    ]  # fmt: skip
    assert status.stdout.rstrip().splitlines()[-1].startswith("journal:  0 records")

    as_json = cli("db", "status", "--json", "--database-url", database_url, cwd=tmp_path)
    assert as_json.code == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["schema"] == data["schema_of_this_llmops"] == HEAD_REVISION
    assert data["tables"] == counts
    assert data["journal"]["records"] == 0 and data["journal"]["rejected"] == 0
    if database_url.startswith("postgresql"):  # llm_calls' monthly partitions, named
        assert "llm_calls_default" in data["partitions"]
        assert re.search(
            r"^partitions: \d+ of llm_calls \(llm_calls_\d{4}_\d\d ", status.stdout, re.M
        )
    else:
        assert data["partitions"] == [] and "partitions:" not in status.stdout


def test_an_older_schema_shows_the_missing_tables(empty_database_url: str, cli, tmp_path) -> None:
    upgrade(create_engine(empty_database_url), "0001")
    status = cli("db", "status", "--database-url", empty_database_url, cwd=tmp_path)
    assert status.code == 2
    assert status.stderr.startswith("error: the schema is not current: run `llmops db upgrade`")
    _, shown = _table(status.stdout.replace("(missing)", "missing"))
    assert shown["llm_calls"] == "0" and shown["feedback"] == "0"
    assert shown["eval_runs"] == shown["api_keys"] == shown["alert_events"] == "missing"
    data = json.loads(cli("db", "status", "--json", "--database-url", empty_database_url,
                          cwd=tmp_path).stdout)  # fmt: skip
    assert data["schema"] == "0001" and data["tables"]["api_keys"] is None


@pytest.mark.parametrize("form", ["sqlite:///{}", "sqlite:///file:{}?mode=ro&uri=true"])
def test_a_mistyped_sqlite_path_is_refused_and_nothing_is_created(cli, tmp_path, form) -> None:
    """``db status`` only looks: a file that is not there is one ``error:`` line and exit 2,
    and neither it nor its folders are made (opening it would make both); a SQLite URI
    names its file as a path does."""
    missing = tmp_path / "typo" / "deeper" / "llmops.db"
    result = cli("db", "status", "--database-url", form.format(missing), cwd=tmp_path)
    assert result.code == 2
    assert result.stderr.startswith("error: ") and "no such database file" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "typo").exists()
    made = cli("db", "upgrade", "--database-url", f"sqlite:///{missing}", cwd=tmp_path)
    assert made.code == 0 and missing.exists()  # as the message says
    assert cli("db", "status", "--database-url", f"sqlite:///{missing}", cwd=tmp_path).code == 0


def test_sizes_show_each_tables_disk_and_the_bytes_per_call(
    database_url: str, cli, tmp_path
) -> None:
    """``--sizes``: each table's rows and indexes on disk, and a call's share; content of
    2,000 random letters per call shows as about 2,000 bytes per call more, in the content
    table alone."""
    engine = create_engine(database_url)
    upgrade(engine)
    rng = random.Random(7)
    bare = [call_row(request=None, response_text=None) for _ in range(1_000)]
    store_rows(engine, tmp_path / "spool", bare)
    args = ("db", "status", "--sizes", "--database-url", database_url)
    env = {"LLMOPS_HOME": str(tmp_path / "home")}

    before = json.loads(cli(*args, "--json", cwd=tmp_path, env=env).stdout)
    tables = before["sizes"]["tables"]
    assert set(tables) == {name for name, rows in before["tables"].items() if rows is not None}
    calls = tables["llm_calls"]
    assert calls["data_bytes"] > 1_000 * 100 and calls["index_bytes"] > 1_000 * 100
    per_call = before["bytes_per_call"]
    assert per_call["llm_calls"] == pytest.approx(
        (calls["data_bytes"] + calls["index_bytes"]) / 1_000
    )
    assert before["sizes"]["database_bytes"] >= sum(
        t["data_bytes"] + t["index_bytes"] for t in tables.values()
    )

    text = "".join(rng.choice(string.ascii_letters) for _ in range(2_000))  # incompressible
    full = [call_row(request=None, response_text=text[i:] + text[:i]) for i in range(1_000)]
    store_rows(engine, tmp_path / "spool", full)
    after = json.loads(cli(*args, "--json", cwd=tmp_path, env=env).stdout)
    grown = {
        name: (t["data_bytes"] + t["index_bytes"]) - sum(before["sizes"]["tables"][name].values())
        for name, t in after["sizes"]["tables"].items()
    }
    assert 1_000 * 2_000 <= grown["llm_call_content"] <= 1_000 * 4_000  # 3 rows per 8 KB page
    assert 0 < grown["llm_calls"] < 1.5 * (calls["data_bytes"] + calls["index_bytes"])
    assert after["bytes_per_call"]["content"] >= 1_000 * 2_000 / 2_000

    shown = cli(*args, cwd=tmp_path, env=env)
    lines = shown.stdout.split("\n\n")[1].splitlines()
    assert re.fullmatch(r"TABLE +ROWS +DATA +INDEXES", lines[0]), lines[0]
    row = dict((line.split()[0], line.split()[1:]) for line in lines[1:])
    assert row["llm_calls"][0] == "2000" and row["llm_calls"][2] in {"B", "KB", "MB"}
    assert re.search(
        r"^size: +[\d.,]+ [KMG]?B in all; per call [\d,]+ B: llm_calls [\d,]+ "
        r"\(rows [\d,]+, indexes [\d,]+\), content [\d,]+, rollups [\d,]+$",
        shown.stdout,
        re.M,
    ), shown.stdout


@pytest.mark.parametrize(
    "command",
    [
        ("costs", "recompute", "--since", "1d"),
        ("audit", "verify"),
        ("db", "prune", "--content-older-than", "30d"),
        ("db", "partitions"),
    ],
)
def test_commands_on_a_database_that_is_there_create_none(cli, tmp_path, command) -> None:
    """Re-pricing, verifying, pruning or partitioning a mistyped SQLite path refused it
    (no schema) after creating an empty file there."""
    missing = tmp_path / "typo.db"
    result = cli(*command, "--database-url", f"sqlite:///{missing}", cwd=tmp_path)
    assert result.code == 2 and "no such database file" in result.stderr, result.stderr
    assert not missing.exists()


READERS = [
    ("spend",),
    ("calls",),
    ("budgets",),
    ("alerts", "list"),
    ("keys", "list"),
    ("keys", "revoke", "web"),
    ("db", "replay"),
    ("eval", "cases", "from-calls", "--prompt", "greet", "--out", "-"),
    ("eval", "cases", "from-calls", "--prompt", "greet"),  # made evals/cases/ first
    ("score", "--prompt", "greet", "--assert", "checks.yaml"),
    ("metrics", "--once"),
    ("feedback", "6f1c3a52-0c5e-4a7e-9d55-2f0e8a7b1c01", "1"),
]


@pytest.mark.parametrize("command", READERS)
def test_commands_that_read_recorded_calls_leave_an_empty_file_empty(
    cli, tmp_path, command
) -> None:
    """A 0-byte file (``touch llmops.db``) is an empty SQLite database: these commands
    wrote llmops's schema into it (1.5 MB) and said there were no calls."""
    (tmp_path / "checks.yaml").write_text("- {type: contains, value: hi}\n")
    (tmp_path / "llmops.yaml").write_text(
        "budgets:\n  limits:\n    - {name: all, window: day, limit_usd: 5}\n"
    )
    empty = tmp_path / "llmops.db"
    empty.touch()
    url = f"sqlite:///{empty}"
    result = cli(*command, "--database-url", url, cwd=tmp_path)
    assert result.code == 2, result.stdout + result.stderr
    assert result.stderr.startswith(f"error: {url}: an empty file"), result.stderr
    assert empty.stat().st_size == 0 and not (tmp_path / "evals").exists()


@pytest.mark.parametrize("command", READERS)
def test_commands_that_read_recorded_calls_refuse_a_mistyped_sqlite_path(
    cli, tmp_path, command
) -> None:
    """They only look at what was recorded (or attach to it): a SQLite file that is not
    there is the error of ``db status``, and neither it, its folder nor an output folder is
    made (they made an empty database, and said there were no calls)."""
    (tmp_path / "checks.yaml").write_text("- {type: contains, value: hi}\n")
    (tmp_path / "llmops.yaml").write_text(
        "budgets:\n  limits:\n    - {name: all, window: day, limit_usd: 5}\n"
    )
    missing = tmp_path / "typo" / "llmops.db"
    url = f"sqlite:///{missing}"
    result = cli(*command, "--database-url", url, cwd=tmp_path)
    assert result.code == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr == (
        f"error: {url}: no such database file (llmops creates it on first use; "
        "`llmops db upgrade` creates it now)\n"
    )
    assert not (tmp_path / "typo").exists() and not (tmp_path / "evals").exists()
