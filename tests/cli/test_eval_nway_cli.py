"""``llmops eval run`` with several prompts and model entries: the N-way table is shown and
never gates; labels name the targets; ``--model`` still replaces the suite's models."""

from __future__ import annotations

import json
import textwrap

import pytest

from llmops.testing import RecordedRequest, Reply
from tests.conftest import PromptRepo, prompt_yaml

CASES = "\n".join(f"  - id: c{i:02d}\n    vars: {{name: N{i}}}" for i in range(10))


def by_prompt(request: RecordedRequest) -> Reply:
    """Helpful unless the prompt opens with 'Yo'."""
    text = request.body["messages"][-1]["content"]
    return Reply(text="whatever" if text.startswith("Yo") else f"Glad to help: {text}")


@pytest.fixture
def three_prompts(repo: PromptRepo) -> PromptRepo:
    repo.write("support/answer.yaml", prompt_yaml("Hello"))
    repo.write("support/answer-v2.yaml", prompt_yaml("Hi"))
    repo.write("support/terse.yaml", prompt_yaml("Yo"))
    repo.commit("three prompts")
    repo.registry.promote("support/answer-v2", "HEAD", "production")
    path = repo.root / "evals" / "support.yaml"
    path.parent.mkdir()
    path.write_text(
        textwrap.dedent(
            """\
            prompts: [support/answer, support/answer-v2@production, support/terse]
            models:
              - {id: gpt-4o-mini, params: {temperature: 0}, label: mini-t0}
            defaults:
              assert: [{type: icontains, value: glad}]
            cases:
            """
        )
        + CASES
        + "\n"
    )
    return repo


@pytest.fixture
def run_eval(cli, server, three_prompts, tmp_path):
    env = {
        "OPENAI_API_BASE": server.base_url,
        "OPENAI_API_KEY": "sk-test",
        "LLMOPS_HOME": str(tmp_path / "home"),
        "LLMOPS_DATABASE_URL": f"sqlite:///{tmp_path / 'calls.db'}",
    }
    server.set_responder(by_prompt)
    return lambda *args: cli("eval", "run", *args, cwd=three_prompts.root, env=env)


def test_several_prompts_side_by_side(run_eval, server, tmp_path) -> None:
    as_json, markdown = tmp_path / "out.json", tmp_path / "out.md"
    result = run_eval("--fail-on-regression", "--json", str(as_json), "--markdown", str(markdown))
    # the worse prompt is neither candidate nor baseline: it is shown, it does not gate
    assert result.code == 0, result.stdout + result.stderr
    assert {r.body["temperature"] for r in server.requests} == {0}
    assert len(server.requests) == 30
    out = result.stdout
    assert "Suite support — prompts support/answer, support/answer-v2@production" in out
    assert "other      support/terse (" in out and "mini-t0" in out
    assert "Candidate vs baseline on mini-t0: no difference" in out
    assert "All versions on mini-t0 (exact two-sided sign tests, Holm-adjusted over the " in out
    assert (
        "support/answer vs support/terse: support/answer better than support/terse; "
        "10 cases better with support/answer, 0 with support/terse, of 10 compared; "
        "p = 0.00195, Holm 0.00586"
    ) in out
    assert "support/answer vs support/answer-v2@production: indistinguishable" in out
    data = json.loads(as_json.read_text())
    (suite,) = data["suites"]
    assert data["exit_code"] == 0
    assert [(r["name"], r["model"], r["model_id"]) for r in suite["runs"]] == [
        ("support/answer", "mini-t0", "gpt-4o-mini"),
        ("support/answer-v2@production", "mini-t0", "gpt-4o-mini"),
        ("support/terse", "mini-t0", "gpt-4o-mini"),
    ]
    assert suite["runs"][0]["params"] == {"temperature": 0}
    ranking = suite["nway"]["mini-t0"]["ranking"]
    assert ranking[-1]["name"] == "support/terse"
    assert ranking[-1]["worse_than"] == ["support/answer", "support/answer-v2@production"]
    text = markdown.read_text()
    assert "**All versions on mini-t0**" in text
    assert "| 3 | `support/terse` (" in text


def test_model_option_and_dry_run_with_entries(run_eval, server) -> None:
    dry = run_eval("--dry-run")
    assert dry.code == 0, dry.stdout + dry.stderr
    assert "candidate support/answer on mini-t0" in dry.stdout
    assert "other support/terse on mini-t0" in dry.stdout
    plain = run_eval("--model", "gpt-4o", "--no-cache")
    assert plain.code == 0, plain.stdout + plain.stderr
    assert {r.body["model"] for r in server.requests} == {"gpt-4o"}
    assert {r.body["temperature"] for r in server.requests} == {0.1}  # the prompt's own
    assert "All versions on gpt-4o (" in plain.stdout


def test_a_bad_model_entry_is_exit_2(run_eval, three_prompts, server) -> None:
    path = three_prompts.root / "evals" / "support.yaml"
    path.write_text(path.read_text().replace("label: mini-t0", "lable: mini-t0"))
    result = run_eval()
    assert result.code == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "support.yaml:3: models[0]: unknown field ('lable' was unexpected)" in result.stderr
    assert not server.requests
