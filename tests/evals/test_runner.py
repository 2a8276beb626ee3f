"""The runner through the gateway and real HTTP: results, storage, cache, repeats."""

from __future__ import annotations

import textwrap

import pytest
import sqlalchemy as sa

from llmops.evals.cache import ResponseCache
from llmops.evals.grading import parse_verdict
from llmops.evals.runner import Runner, plan
from llmops.evals.storage import save_report
from llmops.evals.suite import load_suite
from llmops.store.engine import create_engine
from llmops.testing import Reply
from tests.conftest import TEN_CASES as CASES
from tests.conftest import PromptRepo


def suite(repo: PromptRepo, body: str) -> object:
    path = repo.root / "evals" / "greet.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(textwrap.dedent(body))
    return load_suite(path)


def routes(server):
    return lambda model: {"api_base": server.base_url, "api_key": "sk-test", "num_retries": 0}


def test_a_run_through_the_gateway(project, server, make_gateway, database_url, tmp_path) -> None:
    loaded = suite(
        project,
        f"prompt: greet\nthreshold: 0.5\ndefaults:\n  assert:\n    - type: icontains\n"
        f"      value: hello\n      metric: greeting\ncases:\n{CASES}\n",
    )
    gateway = make_gateway(prompts=project.prompts, source="eval")
    cache = ResponseCache(tmp_path / "cache.db")
    runner = Runner(gateway, cache=cache, call_kwargs=routes(server))
    report = runner.run(plan(loaded, project.registry))
    candidate, baseline = report.runs
    assert (candidate.target.role, baseline.target.role) == ("candidate", "baseline")
    # the echo server answers with the rendered prompt: only "Hello" (production) passes
    assert candidate.passed == 0 and baseline.passed == 10
    assert candidate.results[0].output == "Echo: Howdy, N0!"
    assert candidate.metrics() == {"greeting": 0.0}
    comparison = report.comparisons["gpt-4o-mini"]
    assert comparison.regressions == [f"c{i}" for i in range(10)]
    assert comparison.significant_regression and comparison.p_value == pytest.approx(1 / 2**10)
    assert report.below_threshold() == [candidate]
    assert candidate.cost_usd > 0 and candidate.cached == 0
    assert len(server.requests) == 20
    # the calls are recorded as eval calls, tagged with the run id
    save_report(gateway.engine, report)
    gateway.flush()
    with create_engine(database_url).connect() as connection:
        sources = connection.execute(sa.text("SELECT source FROM llm_calls")).scalars().all()
        runs = connection.execute(
            sa.text(
                "SELECT role, prompt_version, results, passed, pass_rate FROM eval_runs"
                " ORDER BY role"
            )
        ).all()
        stored = connection.execute(sa.text("SELECT count(*) FROM eval_results")).scalar_one()
        metadata = connection.execute(sa.text("SELECT metadata FROM llm_calls")).scalars().first()
    assert sources == ["eval"] * 20
    assert [(r[0], r[2], r[3]) for r in runs] == [("baseline", 10, 10), ("candidate", 10, 0)]
    assert runs[1][1] == project.registry.load("greet").version
    assert stored == 20
    assert "eval_run_id" in str(metadata)
    # a second run is served from the cache: no model call, no cost
    again = Runner(gateway, cache=cache, call_kwargs=routes(server)).run(
        plan(loaded, project.registry)
    )
    assert len(server.requests) == 20
    assert all(run.cached == 10 and run.cost_usd == 0 for run in again.runs)
    assert [r.output for r in again.runs[0].results] == [r.output for r in candidate.results]


def test_repeats_flag_flaky_cases(project, server, make_gateway) -> None:
    loaded = suite(
        project,
        "prompt: greet\nversions: [working]\nrepeat: 3\nconcurrency: 1\n"
        "defaults:\n  assert: [{type: contains, value: sure}]\n"
        "cases:\n  - id: steady\n    vars: {name: A}\n  - id: wobbly\n    vars: {name: B}\n",
    )
    # jobs run in order with concurrency 1: steady x3, then wobbly x3
    answers = ["sure", "sure", "sure", "sure", "no", "sure"]
    server.enqueue(*(Reply(text=t) for t in answers))
    runner = Runner(make_gateway(prompts=project.prompts), cache=None, call_kwargs=routes(server))
    (run,) = runner.run(plan(loaded, project.registry)).runs
    assert [r.output for r in run.results] == answers
    assert run.by_case() == {"steady": [True, True, True], "wobbly": [True, False, True]}
    assert run.flaky() == ["wobbly"]
    assert run.passed == 5 and len(run.results) == 6


def test_a_failing_model_call_fails_the_case_not_the_run(project, server, make_gateway) -> None:
    loaded = suite(
        project,
        "prompt: greet\nversions: [working]\nconcurrency: 1\ncases:\n"
        + "\n".join(f"  - id: c{i}\n    vars: {{name: N{i}}}" for i in range(5)),
    )
    server.enqueue(Reply(status=500))
    runner = Runner(make_gateway(prompts=project.prompts), call_kwargs=routes(server))
    (run,) = runner.run(plan(loaded, project.registry)).runs
    errors = [r for r in run.results if r.error]
    assert len(errors) == 1 and "InternalServerError" in errors[0].error
    assert run.passed == len(run.results) - 1


def test_llm_rubric_through_a_judge_model(project, server, make_gateway) -> None:
    loaded = suite(
        project,
        "prompt: greet\nversions: [working]\njudge: gpt-4.1-mini\n"
        "cases:\n  - id: polite\n    vars: {name: A}\n    assert:\n"
        "      - type: llm-rubric\n        value: The greeting is friendly.\n",
    )
    server.route("gpt-4.1-mini", Reply(text='Sure: {"reason": "warm", "pass": true, "score": 0.9}'))
    runner = Runner(make_gateway(prompts=project.prompts), call_kwargs=routes(server))
    (run,) = runner.run(plan(loaded, project.registry)).runs
    (result,) = run.results
    assert result.passed and result.score == pytest.approx(0.9), result.outcomes
    judge_request = next(r for r in server.requests if r.body["model"] == "gpt-4.1-mini")
    assert "The greeting is friendly." in judge_request.body["messages"][1]["content"]
    assert "Echo: Howdy, A!" in judge_request.body["messages"][1]["content"]
    assert judge_request.body["temperature"] == 0


def test_variables_render_into_assertions_and_rubrics(project, server, make_gateway) -> None:
    """`{{ name }}` in an assertion's value and in a rubric is the case's variable (as
    promptfoo renders them); a value naming an unknown variable errors that assertion."""
    loaded = suite(
        project,
        "prompt: greet\nversions: [working]\njudge: gpt-4.1-mini\n"
        "cases:\n  - id: named\n    vars: {name: Zed, expected: a greeting for Zed}\n"
        "    assert:\n"
        "      - {type: contains, value: '{{ name }}!'}\n"
        "      - {type: icontains-all, value: ['Howdy', '{{ name | upper | lower }}']}\n"
        "      - {type: llm-rubric, value: 'The output is {{ expected }}.'}\n"
        "      - {type: contains, value: '{{ missing }}'}\n",
    )
    server.route("gpt-4.1-mini", Reply(text='{"reason": "ok", "pass": true, "score": 1}'))
    runner = Runner(make_gateway(prompts=project.prompts), call_kwargs=routes(server))
    (run,) = runner.run(plan(loaded, project.registry)).runs
    (result,) = run.results
    contains, listed, rubric, missing = result.outcomes
    assert contains.passed and "'Zed!'" in contains.reason, contains
    assert listed.passed, listed
    assert rubric.passed, rubric
    judge = next(r for r in server.requests if r.body["model"] == "gpt-4.1-mini")
    assert "The output is a greeting for Zed." in judge.body["messages"][1]["content"]
    assert missing.error is not None and "'missing' is undefined" in missing.error


def test_parse_verdict() -> None:
    assert parse_verdict('```json\n{"pass": false, "score": 0.2, "reason": "rude"}\n```') == (
        0.2,
        False,
        "rude",
    )
    assert parse_verdict("I think it passes") is None
    assert parse_verdict('{"score": 1}') is None
    # Python's json reads NaN and Infinity: a score that is not a number is no verdict
    # (it reached the database as NULL and ended the run)
    for score in ("NaN", "Infinity", "-Infinity", "true"):
        assert parse_verdict(f'{{"pass": true, "score": {score}}}') is None, score


def test_assert_set_with_a_judge_inside(project, server, make_gateway) -> None:
    """An assert-set grades its assertions, a judged rubric among them, through the runner."""
    loaded = suite(
        project,
        "prompt: greet\nversions: [working]\njudge: gpt-4.1-mini\n"
        "cases:\n  - id: set\n    vars: {name: A}\n    assert:\n"
        "      - type: assert-set\n        threshold: 0.5\n        assert:\n"
        "          - {type: llm-rubric, value: The greeting is friendly.}\n"
        "          - {type: contains, value: Goodbye}\n",
    )
    server.route("gpt-4.1-mini", Reply(text='{"reason": "warm", "pass": true, "score": 0.9}'))
    runner = Runner(make_gateway(prompts=project.prompts), call_kwargs=routes(server))
    (run,) = runner.run(plan(loaded, project.registry)).runs
    (result,) = run.results
    (outcome,) = result.outcomes
    assert outcome.type == "assert-set" and outcome.score == pytest.approx(0.45)
    assert not outcome.passed  # 0.45 < 0.5
    assert any(r.body["model"] == "gpt-4.1-mini" for r in server.requests)
