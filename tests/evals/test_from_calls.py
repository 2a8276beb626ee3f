"""``llmops eval cases from-calls``: recorded calls of a prompt become eval cases, on
SQLite and PostgreSQL, through the real CLI; the cases load and run as a suite."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from llmops.evals.assertions import Context, check
from llmops.evals.suite import load_suite
from llmops.store.engine import create_engine
from llmops.store.tables import CALLS
from tests.evals.production import Production, production


@pytest.fixture
def prod(repo, server, make_gateway, database_url) -> Production:
    return production(repo, server, make_gateway, database_url)


@pytest.fixture
def export(cli, prod, tmp_path):
    """``llmops eval cases from-calls --prompt support/answer ARGS`` in the project."""
    env = {"LLMOPS_HOME": str(tmp_path / "cli-home")}

    def run(*args: str, prompt: str = "support/answer") -> Any:
        prod.flush()
        return cli(
            "eval", "cases", "from-calls", "--prompt", prompt, "--database-url",
            prod.database_url, *args, cwd=prod.repo.root, env=env,
        )  # fmt: skip

    return run


def read_cases(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_bad_answers_become_cases_that_a_suite_runs(export, prod, cli, server, tmp_path) -> None:
    bad = prod.call("How do I reset my router?", minutes_ago=30, feedback={"thumbs": 0},
                    comment="did not help")  # fmt: skip
    good = prod.call("Where is my invoice?", minutes_ago=20, feedback={"thumbs": 1})
    also_bad = prod.call("Can I pay by card?", minutes_ago=10, feedback={"thumbs": 0}, plan="pro")
    prod.call("No feedback here", minutes_ago=5)
    result = export("--feedback", "thumbs<1", "--out", "evals/cases/bad-answers.jsonl")
    assert result.code == 0, result.stderr
    out = prod.repo.root / "evals" / "cases" / "bad-answers.jsonl"
    assert out.stat().st_mode & 0o777 == 0o600  # it holds production text
    cases = read_cases(out)
    assert [c["id"] for c in cases] == [f"call-{also_bad}", f"call-{bad}"]  # newest first
    first, second = cases
    assert first["vars"] == {"question": "Can I pay by card?", "plan": "pro"}
    assert second["vars"] == {"question": "How do I reset my router?"}
    meta = second["metadata"]
    assert meta["call_id"] == bad and meta["model"] == "gpt-4o-mini"
    assert meta["prompt"] == "support/answer" and len(meta["prompt_version"]) == 12
    assert meta["reference"] == "Echo: How do I reset my router?"
    assert meta["feedback"] == [{"name": "thumbs", "score": 0.0, "comment": "did not help"}]
    assert datetime.fromisoformat(meta["created_at"]) == prod.now - timedelta(minutes=30)
    assert "assert" not in second  # a reviewer adds them
    assert "Wrote 2 cases to evals/cases/bad-answers.jsonl from 2 matching calls" in (result.stdout)
    assert good not in out.read_text()

    # the cases file works in a suite: it loads, and `eval run` runs it
    (prod.repo.root / "evals" / "bad.yaml").write_text(
        "prompt: support/answer\nversions: [working]\ncases_file: cases/bad-answers.jsonl\n"
        "defaults:\n  assert: [{type: icontains, value: echo}]\n"
    )
    suite = load_suite(prod.repo.root / "evals" / "bad.yaml")
    assert [c.id for c in suite.cases] == [f"call-{also_bad}", f"call-{bad}"]
    env = {
        "OPENAI_API_BASE": server.base_url,
        "OPENAI_API_KEY": "sk-test",
        "LLMOPS_HOME": str(tmp_path / "eval-home"),
        "LLMOPS_DATABASE_URL": prod.database_url,
    }
    dry = cli("eval", "run", "evals/bad.yaml", "--dry-run", cwd=prod.repo.root, env=env)
    assert dry.code == 0, dry.stderr
    assert "2 case runs: 2 model call(s)" in dry.stdout
    ran = cli("eval", "run", "evals/bad.yaml", "--no-cache", cwd=prod.repo.root, env=env)
    assert ran.code == 0, ran.stdout + ran.stderr
    assert "100.0%" in ran.stdout

    # the eval's own calls (source eval) are left out unless asked for; with them, the
    # newest call of each input is the eval's
    again = export("--feedback", "thumbs<1", "--out", "evals/cases/bad-answers.jsonl")
    assert again.code == 2 and "--force" in again.stderr  # never overwritten silently
    assert read_cases(out)[0]["id"] == f"call-{also_bad}"
    forced = export("--out", "evals/cases/all.jsonl", "--include-eval")
    assert forced.code == 0, forced.stderr
    by_question = {
        c["vars"]["question"]: c for c in read_cases(prod.repo.root / "evals/cases/all.jsonl")
    }
    assert len(by_question) == 4
    evaluated = by_question["Can I pay by card?"]
    assert evaluated["id"] != f"call-{also_bad}"  # the eval's newer call of that input
    assert evaluated["metadata"]["calls_with_these_vars"] == 2
    plain = export("--out", "evals/cases/all.jsonl", "--force")
    assert plain.code == 0, plain.stderr
    ids = {c["id"] for c in read_cases(prod.repo.root / "evals/cases/all.jsonl")}
    assert f"call-{also_bad}" in ids and len(ids) == 4


def test_reference_assertions_check_against_the_production_answer(export, prod) -> None:
    prod.call("Why does {{ plan }} say {% raw %}?", minutes_ago=9)
    prod.call("Line\u2028separator and NEL\x85 inside", minutes_ago=8)
    for kind in ("equals", "rouge-n", "llm-rubric"):
        result = export("--assert", kind, "--out", f"evals/cases/{kind}.jsonl")
        assert result.code == 0, result.stderr
        path = prod.repo.root / "evals" / "cases" / f"{kind}.jsonl"
        assert len(path.read_text().splitlines()) == 2  # U+2028 and U+0085 are escaped
        (prod.repo.root / "evals" / f"{kind}.yaml").write_text(
            f"prompt: support/answer\ncases_file: cases/{kind}.jsonl\n"
        )
        suite = load_suite(prod.repo.root / "evals" / f"{kind}.yaml")
        assert len(suite.cases) == 2
        for case in suite.cases:
            (assertion,) = case.assert_
            assert assertion.type == kind and assertion.metric == "reference"
            reference = case.metadata["reference"]
            if kind == "llm-rubric":
                continue  # graded by a judge (the runner's tests); its text is checked below
            outcome = check(assertion, reference, Context(vars=case.vars))
            assert outcome.passed and outcome.error is None, outcome
            assert not check(assertion, "something else", Context(vars=case.vars)).passed
    rubric = read_cases(prod.repo.root / "evals/cases/llm-rubric.jsonl")
    assert any('{{ "{" }}{{ "{" }} plan }}' in c["assert"][0]["value"] for c in rubric)


def test_redacted_calls_stay_redacted_and_none_calls_are_counted(export, prod) -> None:
    redacted = prod.call("Mail me at ann@example.com, card 4111 1111 1111 1111", content="redact",
                         minutes_ago=9)  # fmt: skip
    prod.call("Secret question", content="none", minutes_ago=8)
    prod.call("Another secret", content="none", minutes_ago=7)
    prod.raw_call("raw messages, no prompt")  # not of the prompt: not counted at all
    result = export("--out", "evals/cases/mixed.jsonl")
    assert result.code == 0, result.stderr
    assert (
        "2 calls have no stored variables (content mode none or raw messages): skipped"
        in result.stderr
    )
    assert "redacted" in result.stderr
    text = (prod.repo.root / "evals/cases/mixed.jsonl").read_text()
    assert "ann@example.com" not in text and "4111" not in text
    (case,) = read_cases(prod.repo.root / "evals/cases/mixed.jsonl")
    assert case["id"] == f"call-{redacted}"
    assert "[EMAIL]" in case["vars"]["question"] and "[CARD_NUMBER]" in case["vars"]["question"]
    assert "[EMAIL]" in case["metadata"]["reference"]
    assert "Secret question" not in text
    # only calls without variables: nothing written, and said so
    since = (prod.now - timedelta(minutes=8, seconds=30)).isoformat()
    only = export("--out", "evals/cases/none.jsonl", "--since", since)
    assert only.code == 0, only.stderr
    assert "2 calls have no stored variables" in only.stderr and "nothing written" in only.stderr
    assert not (prod.repo.root / "evals/cases/none.jsonl").exists()


def test_identical_inputs_become_one_case_the_newest(export, prod) -> None:
    prod.call("Same question", minutes_ago=30, feedback={"thumbs": 0})
    prod.call("Same question", minutes_ago=20, feedback={"thumbs": 1})
    newest = prod.call("Same question", minutes_ago=10)
    other = prod.call("Same question", minutes_ago=5, plan="pro")  # other variables
    result = export("--out", "evals/cases/dedup.jsonl")
    assert result.code == 0, result.stderr
    cases = read_cases(prod.repo.root / "evals/cases/dedup.jsonl")
    assert [c["id"] for c in cases] == [f"call-{other}", f"call-{newest}"]
    assert cases[1]["metadata"]["calls_with_these_vars"] == 3
    assert "feedback" not in cases[1]["metadata"]  # the newest call's own feedback only
    assert "2 with the same variables as a newer call" in result.stdout
    # to stdout: the cases alone there, the summary on stderr
    piped = export("--out", "-")
    assert piped.code == 0, piped.stderr
    assert [json.loads(line) for line in piped.stdout.splitlines()] == cases
    assert "Wrote 2 cases to stdout" in piped.stderr
    # a feedback filter applies before deduplication: the call that got thumbs 0
    bad = export("--feedback", "thumbs<1", "--out", "evals/cases/dedup-bad.jsonl")
    (case,) = read_cases(prod.repo.root / "evals/cases/dedup-bad.jsonl")
    assert bad.code == 0 and case["metadata"]["feedback"][0]["score"] == 0


def test_samples_are_uniform_and_reproducible_with_a_seed(export, prod) -> None:
    ids = [prod.call(f"Question {i}", minutes_ago=100 - i) for i in range(24)]

    def sampled(*args: str) -> list[str]:
        result = export(*args, "--out", "evals/cases/sample.jsonl", "--force")
        assert result.code == 0, result.stderr
        return [
            c["metadata"]["call_id"]
            for c in read_cases(prod.repo.root / "evals/cases/sample.jsonl")
        ]

    first = sampled("--sample", "6", "--seed", "7")
    assert len(first) == 6 and set(first) <= set(ids)
    assert sampled("--sample", "6", "--seed", "7") == first  # reproducible
    assert first == sorted(first, key=ids.index, reverse=True)  # still newest first
    others = {tuple(sampled("--sample", "6", "--seed", str(seed))) for seed in (1, 2, 3)}
    assert len(others | {tuple(first)}) > 1  # another seed, another sample
    assert set(sampled("--sample", "100%", "--seed", "7")) == set(ids)
    share = sampled("--sample", "50%", "--seed", "7")
    assert 0 < len(share) < 24 and share == sampled("--sample", "50%", "--seed", "7")
    assert "a sample of 6 (seed 7)" in export("--sample", "6", "--seed", "7", "--out",
                                                "evals/cases/s2.jsonl").stdout  # fmt: skip


def test_feedback_and_call_filters(export, prod) -> None:
    a = prod.call("A", minutes_ago=50, feedback={"thumbs": 0, "stars": 2}, tags=["web"])
    b = prod.call("B", minutes_ago=40, feedback={"thumbs": 0, "stars": 4}, tags=["mobile"])
    c = prod.call("C", minutes_ago=30, feedback={"thumbs": 1, "stars": 5}, model="gpt-4o")
    d = prod.call("D", minutes_ago=20 * 60)  # yesterday-ish: outside --since 2h

    def ids(*args: str, prompt: str = "support/answer") -> set[str]:
        result = export(*args, "--out", "evals/cases/f.jsonl", "--force", prompt=prompt)
        assert result.code == 0, result.stderr
        path = prod.repo.root / "evals/cases/f.jsonl"
        found = {c["metadata"]["call_id"] for c in read_cases(path)} if path.exists() else set()
        path.unlink(missing_ok=True)
        return found

    assert ids() == {a, b, c, d}
    assert ids("--feedback", "thumbs<1") == {a, b}
    assert ids("--feedback", "thumbs<=0", "--feedback", "stars<3") == {a}  # ANDed
    assert ids("--feedback", "stars>4") == {c}
    assert ids("--feedback", "stars>=4") == {b, c}
    assert ids("--feedback", "thumbs=1") == {c}
    assert ids("--feedback", "rating<1") == set()  # no such feedback
    assert ids("--tag", "web") == {a}
    assert ids("--tag", "web", "--tag", "mobile") == {a, b}
    assert ids("--model", "gpt-4o") == {c}
    assert ids("--since", "2h") == {a, b, c}
    assert ids("--status", "ok", "--since", "2h") == {a, b, c}
    assert ids("--status", "error") == set()
    engine = create_engine(prod.database_url)
    with engine.begin() as connection:
        connection.execute(sa.update(CALLS).where(CALLS.c.id == b).values(cost_usd=1.0))
    engine.dispose()
    assert ids("--min-cost", "0.5") == {b}
    version = read_version(prod, a)
    assert ids("--version", version) == {a, b, c, d}
    assert ids("--version", "000000000000") == set()
    assert ids(prompt="other/prompt") == set()


def read_version(prod: Production, call_id: str) -> str:
    engine = create_engine(prod.database_url)
    with engine.connect() as connection:
        version = connection.execute(
            sa.select(CALLS.c.prompt_version).where(CALLS.c.id == call_id)
        ).scalar_one()
    engine.dispose()
    return str(version)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--feedback", "thumbs~1"), "expected NAME<=SCORE"),
        (("--feedback", "<1"), "expected NAME<=SCORE"),
        (("--feedback", "thumbs<"), "expected NAME<=SCORE"),
        (("--feedback", "thumbs<abc"), "'abc' is not a number"),
        (("--feedback", "thumbs<nan"), "finite"),
        (("--sample", "0"), "1 to 1,000,000"),
        (("--sample", "150%"), "at most 100%"),
        (("--sample", "0%"), "more than 0%"),
        (("--sample", "2.5"), "whole number"),
        (("--sample", "lots"), "expected a number of calls"),
        (("--assert", "similar"), "expected one of none, equals, rouge-n, llm-rubric"),
        (("--since", "yesterday"), "--since 'yesterday'"),
        (("--since", "1d", "--until", "2d"), "is not after --since"),
        (("--status", "fine"), "--status 'fine'"),
        (("--out", "cases.txt"), "must end in .jsonl"),
        (("--out", "/proc/nope/cases.jsonl"), "cases file"),
        (("--min-cost", "-1"), "--min-cost"),
        (("--seed", "-3"), "--seed"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(export, prod, args, message) -> None:
    result = export(*args)
    assert result.code == 2, result.stdout + result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_prompt_and_database(cli, tmp_path) -> None:
    for args, message in (
        (("--prompt", "support/answer@production"), "expected a prompt name"),
        (("--prompt", "x", "--database-url", "mysql+nope://x"), "error: "),
    ):
        result = cli("eval", "cases", "from-calls", *args, cwd=tmp_path)
        assert result.code == 2 and message in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1
