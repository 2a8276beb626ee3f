"""``llmops score``: eval assertions on recorded production calls, stored as feedback, on
SQLite and PostgreSQL, through the real CLI, a real Gateway and the fake model server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from llmops.store.engine import create_engine
from llmops.store.tables import CALLS, FEEDBACK
from llmops.testing import Reply
from tests.evals.production import Production, production

JUDGE = "gpt-4.1-mini"
ASSERTIONS = """\
judge: gpt-4.1-mini
assert:
  - {type: icontains, value: refund, metric: mentions-refund}
  - {type: llm-rubric, value: The answer is about refunds., metric: helpful}
  - {type: cost, value: 1}
"""


def judge_by_refunds(request: Any) -> Reply | None:
    """The judge: passes an output that talks about refunds."""
    if request.body.get("model") != JUDGE:
        return None
    output = request.body["messages"][-1]["content"].split("Output:\n", 1)[1]
    good = "refund" in output.lower()
    verdict = {"reason": "about refunds" if good else "off topic", "pass": good,
               "score": 0.9 if good else 0.2}  # fmt: skip
    return Reply(text=json.dumps(verdict), prompt_tokens=100, completion_tokens=20)


@pytest.fixture
def prod(repo, server, make_gateway, database_url) -> Production:
    server.set_responder(judge_by_refunds)
    return production(repo, server, make_gateway, database_url)


@pytest.fixture
def score(cli, prod, server, tmp_path):
    """``llmops score --prompt support/answer --assert evals/online.yaml ARGS``."""
    env = {
        "OPENAI_API_BASE": server.base_url,
        "OPENAI_API_KEY": "sk-test",
        "LLMOPS_HOME": str(tmp_path / "cli-home"),
    }

    def run(*args: str, assertions: str | None = ASSERTIONS) -> Any:
        prod.flush()
        if assertions is not None:
            path = prod.repo.root / "evals" / "online.yaml"
            path.parent.mkdir(exist_ok=True)
            path.write_text(assertions)
        return cli(
            "score", "--prompt", "support/answer", "--assert", "evals/online.yaml",
            "--database-url", prod.database_url, *args, cwd=prod.repo.root, env=env,
        )  # fmt: skip

    return run


def feedback_rows(prod: Production) -> list[dict[str, Any]]:
    engine = create_engine(prod.database_url)
    with engine.connect() as connection:
        rows = [
            dict(r._mapping)
            for r in connection.execute(
                sa.select(
                    FEEDBACK.c.call_id,
                    FEEDBACK.c.name,
                    FEEDBACK.c.score,
                    FEEDBACK.c.comment,
                    FEEDBACK.c.user_id,
                )
            )
        ]
    engine.dispose()
    return rows


def scores(prod: Production) -> dict[tuple[str, str], float]:
    found: dict[tuple[str, str], float] = {}
    for row in feedback_rows(prod):
        if row["name"].startswith("score:"):
            assert (row["call_id"], row["name"]) not in found, "scored twice"
            found[(row["call_id"], row["name"])] = row["score"]
    return found


def summary_row(stdout: str, name: str) -> list[str]:
    (line,) = [line for line in stdout.splitlines() if line.startswith(name + " ")]
    return line.split()


def test_scores_are_stored_as_feedback_once(score, prod, server) -> None:
    refund = prod.call("I want a refund", minutes_ago=50, feedback={"thumbs": 0})
    refund2 = prod.call("Refund my order please", minutes_ago=40)
    hello = prod.call("Hello there", minutes_ago=30, feedback={"thumbs": 1})
    parcel = prod.call("Where is my parcel?", minutes_ago=20)
    result = score()
    assert result.code == 0, result.stdout + result.stderr
    assert "support/answer: 4 ok calls" in result.stdout and "4 to score" in result.stdout
    # FEEDBACK  SCORED  PASSED  MEAN  ERRORS  SKIPPED  JUDGE COST
    assert summary_row(result.stdout, "score:mentions-refund")[1:6] == ["4", "2", "0.500", "0", "0"]
    helpful = summary_row(result.stdout, "score:helpful")
    assert helpful[1:6] == ["4", "2", "0.550", "0", "0"] and helpful[6] != "$0.00"
    assert summary_row(result.stdout, "score:cost")[1:3] == ["4", "4"]
    found = scores(prod)
    assert len(found) == 12
    assert found[(refund, "score:mentions-refund")] == 1.0
    assert found[(hello, "score:mentions-refund")] == 0.0
    assert found[(refund2, "score:helpful")] == 0.9 and found[(parcel, "score:helpful")] == 0.2
    rows = [r for r in feedback_rows(prod) if r["name"] == "score:helpful"]
    assert all(r["user_id"] == "llmops score" for r in rows)
    assert {r["comment"] for r in rows} == {"pass: judge: about refunds", "fail: judge: off topic"}
    # the judge saw each stored answer; its calls are recorded as eval calls tagged score
    judged = [r for r in server.requests if r.body["model"] == JUDGE]
    assert len(judged) == 4
    assert any("Echo: Where is my parcel?" in r.body["messages"][-1]["content"] for r in judged)
    engine = create_engine(prod.database_url)
    with engine.connect() as connection:
        judge_calls = connection.execute(
            sa.select(CALLS.c.source, CALLS.c.tags, CALLS.c.metadata).where(CALLS.c.model == JUDGE)
        ).all()
    engine.dispose()
    assert len(judge_calls) == 4
    assert all(c.source == "eval" and "score" in c.tags for c in judge_calls)
    assert {c.metadata["scored_call_id"] for c in judge_calls} == {refund, refund2, hello, parcel}

    # a re-run stores nothing twice and asks no judge again
    again = score()
    assert again.code == 0, again.stderr
    assert "4 scored already" in again.stdout and "0 to score" in again.stdout
    assert len(scores(prod)) == 12 and len(server.requests) == len(judged) + 4

    # a new assertion scores the calls scored by the others; a new call gets all of them
    newest = prod.call("Refund?", minutes_ago=10)
    more = score(assertions=ASSERTIONS + "  - {type: not-contains, value: TurboBoost}\n")
    assert more.code == 0, more.stderr
    assert summary_row(more.stdout, "score:not-contains")[1:3] == ["5", "5"]
    assert summary_row(more.stdout, "score:helpful")[1] == "1"  # the new call only
    assert summary_row(more.stdout, "score:helpful")[5] == "4"  # skipped: scored already
    found = scores(prod)
    assert len(found) == 12 + 5 + 3 and found[(newest, "score:mentions-refund")] == 1.0
    assert {(n, t) for (_, n), t in found.items() if n == "score:not-contains"} == {
        ("score:not-contains", 1.0)
    }


def test_calls_without_content_are_skipped_and_redacted_ones_scored(score, prod) -> None:
    prod.call("I want a refund, mail ann@example.com", content="redact", minutes_ago=30)
    prod.call("Refund", content="none", minutes_ago=20)
    prod.call("Refund again", content="none", minutes_ago=10)
    result = score(
        assertions="- {type: icontains, value: refund}\n- {type: contains, value: ann@}\n"
    )
    assert result.code == 0, result.stderr
    assert "2 without a stored answer: skipped" in result.stdout
    assert summary_row(result.stdout, "score:icontains")[1:3] == ["1", "1"]
    assert summary_row(result.stdout, "score:contains")[1:3] == ["1", "0"]  # redacted stays


def test_samples_dry_runs_and_prefixes(score, prod, server) -> None:
    ids = [prod.call(f"Refund number {i}", minutes_ago=60 - i) for i in range(10)]
    checks = "- {type: icontains, value: refund}\n"
    dry = score("--sample", "3", "--seed", "5", "--dry-run", assertions=checks)
    assert dry.code == 0, dry.stderr
    assert "3 to score" in dry.stdout and "dry run" in dry.stdout
    assert scores(prod) == {} and server.requests == [
        r for r in server.requests if r.body["model"] != JUDGE
    ]
    first = score("--sample", "3", "--seed", "5", assertions=checks)
    assert first.code == 0, first.stderr
    picked = {call for call, _ in scores(prod)}
    assert len(picked) == 3 and picked <= set(ids)
    second = score("--sample", "3", "--seed", "5", assertions=checks)
    assert "3 scored already" in second.stdout
    assert len(scores(prod)) == 6  # three more calls, none twice
    share = score("--sample", "100%", assertions=checks)
    assert share.code == 0 and len(scores(prod)) == 10
    prefixed = score("--name-prefix", "online/", "--since", "2h", assertions=checks)
    assert prefixed.code == 0, prefixed.stderr
    names = {r["name"] for r in feedback_rows(prod)}
    assert names == {"score:icontains", "online/icontains"}
    judged = score("--dry-run", assertions=ASSERTIONS)
    assert "10 judge call(s) at most" in judged.stdout


def test_judge_failures_are_errors_not_scores(score, prod, server) -> None:
    prod.call("Refund", minutes_ago=10)
    server.set_responder(None)
    server.route(JUDGE, Reply(text="I think it is fine."))  # no verdict
    result = score(
        assertions="- {type: llm-rubric, value: Helpful.}\n",
    )
    assert result.code == 3, result.stdout + result.stderr
    assert "judge gave no verdict" in result.stderr
    assert scores(prod) == {}  # nothing stored: a re-run tries again
    server.route(JUDGE, Reply(text='{"pass": true, "score": 1, "reason": "ok"}'))
    again = score("--judge", JUDGE, assertions="- {type: llm-rubric, value: Helpful.}\n")
    assert again.code == 0, again.stderr
    assert list(scores(prod).values()) == [1.0]


BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}]\n"
    for i in range(8)
)


@pytest.mark.parametrize(
    ("assertions", "args", "message"),
    [
        (None, (), "no such file"),
        (BOMB, (), "online.yaml"),
        ("", (), "expected a list of assertions"),
        ("- {type: contians, value: x}\n", (), "unknown assertion type 'contians'"),
        ("- {type: regex, value: '('}\n", (), "regex '('"),
        ("- {type: icontains, value: x, colour: red}\n", (), "colour"),
        ("- just a string\n", (), "expected a mapping"),
        ("assert: [{type: icontains, value: x}]\nthreshold: 1\n", (), "unknown field 'threshold'"),
        ("- {type: json-schema}\n", (), "give the schema as value"),
        ("- {type: icontains, value: a}\n- {type: icontains, value: b}\n", (), "both be stored"),
        ("- {type: icontains, value: a}\n", ("--sample", "0"), "1 to 1,000,000"),
        ("- {type: icontains, value: a}\n", ("--sample", "150%"), "at most 100%"),
        ("- {type: icontains, value: a}\n", ("--since", "soon"), "--since 'soon'"),
        ("- {type: icontains, value: a}\n", ("--name-prefix", ""), "--name-prefix"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(score, prod, assertions, args, message) -> None:
    prod.call("Refund", minutes_ago=10)
    if assertions is None:
        (prod.repo.root / "evals" / "online.yaml").unlink(missing_ok=True)
    result = score(*args, assertions=assertions)
    assert result.code == 2, result.stdout + result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr
    assert scores(prod) == {}


def test_a_suite_like_file_and_a_missing_folder(score, prod, tmp_path: Path) -> None:
    prod.call("Refund", minutes_ago=10)
    suite_like = "description: online checks\nassert:\n  - {type: icontains, value: refund}\n"
    result = score(assertions=suite_like)
    assert result.code == 0, result.stderr
    assert len(scores(prod)) == 1
