"""Model-graded assertions end to end: a real Gateway, the fake model server answering the
judge's requests by reading them, its hash-based embeddings, the database and the cache."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from llmops.errors import ConfigFileError
from llmops.evals import graders
from llmops.evals.cache import ResponseCache
from llmops.evals.runner import CaseResult, Runner, plan
from llmops.evals.suite import Suite, load_suite
from llmops.store.engine import create_engine
from llmops.testing import Reply
from tests.conftest import PromptRepo, prompt_yaml

JUDGE = "gpt-4.1-mini"
EMBEDDER = "text-embedding-3-small"
Answer = str | Callable[[str], str]


def suite(repo: PromptRepo, body: str) -> Suite:
    path = repo.root / "evals" / "graded.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(textwrap.dedent(body))
    return load_suite(path)


def routes(server: Any) -> Callable[[str], dict[str, Any]]:
    return lambda model: {"api_base": server.base_url, "api_key": "sk-test", "num_retries": 0}


def judge_answers(answers: dict[str, Answer]) -> Callable[[Any], Reply | None]:
    """A responder: the judge's requests are answered by their system prompt (a grader's
    prompt constant -> an answer, or a function of the user message); the targets' calls and
    the embeddings get the server's defaults (the echo, hash-based vectors)."""

    def respond(request: Any) -> Reply | None:
        body = request.body or {}
        if body.get("model") != JUDGE or "messages" not in body:
            return None
        system, user = body["messages"][0]["content"], body["messages"][-1]["content"]
        answer = answers.get(system, "I cannot tell.")
        return Reply(text=answer(user) if callable(answer) else answer)

    return respond


def recorded(database_url: str) -> list[dict[str, Any]]:
    """Every recorded call: model, tags, metadata, cost."""
    with create_engine(database_url).connect() as connection:
        rows = connection.execute(
            sa.text("SELECT model, tags, metadata, cost_usd, source FROM llm_calls")
        ).all()

    def parsed(value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    return [
        {"model": r[0], "tags": parsed(r[1]), "metadata": parsed(r[2]), "cost": r[3],
         "source": r[4]}
        for r in rows
    ]  # fmt: skip


def only(results: list[CaseResult]) -> CaseResult:
    (result,) = results
    return result


def judge_requests(server: Any) -> list[Any]:
    return [r for r in server.requests if (r.body or {}).get("model") == JUDGE]


def embedding_requests(server: Any) -> list[Any]:
    return [r for r in server.requests if r.path.endswith("/embeddings")]


def test_factuality_recorded_priced_and_cached(
    project, server, make_gateway, database_url, tmp_path
) -> None:
    loaded = suite(
        project,
        f"""\
        prompt: greet
        versions: [working]
        judge: {JUDGE}
        cases:
          - id: fact
            vars: {{name: Ann, expected: "Howdy, Ann"}}
            assert:
              - {{type: factuality, value: "The greeting is {{{{ expected }}}}"}}
              - {{type: not-factuality, value: "Howdy, Ann", metric: wrong}}
        """,
    )
    server.set_responder(judge_answers({graders.FACTUALITY_SYSTEM: "(B) It adds an Echo."}))
    gateway = make_gateway(prompts=project.prompts, source="eval")
    cache = ResponseCache(tmp_path / "cache.db")
    (run,) = (
        Runner(gateway, cache=cache, call_kwargs=routes(server))
        .run(plan(loaded, project.registry))
        .runs
    )
    result = only(run.results)
    fact, negated = result.outcomes
    assert (fact.passed, fact.score, fact.error) == (True, 1.0, None)
    assert fact.reason == "(B) It adds an Echo."
    assert (negated.passed, negated.score) == (False, 0.0)  # not-: B is a pass, negated
    assert not result.passed and result.score == 0.5
    # the reference rendered with the case's variables, the prompt as the question
    first = judge_requests(server)[0].body
    assert "The greeting is Howdy, Ann" in first["messages"][1]["content"]
    assert "Howdy, Ann!" in first["messages"][1]["content"]
    assert first["temperature"] == 0
    # two judge calls, recorded as eval judge calls of this run, priced, in the case's spend
    gateway.flush()
    calls = recorded(database_url)
    judged = [c for c in calls if c["model"] == JUDGE]
    assert len(judged) == 2 and len(calls) == 3
    assert all(c["tags"] == ["eval", "judge"] and c["source"] == "eval" for c in judged)
    assert all(c["metadata"]["eval_run_id"] == run.id for c in judged)
    assert all(c["cost"] > 0 for c in calls)
    assert result.cost_usd == pytest.approx(sum(c["cost"] for c in calls))
    assert run.cost_usd == pytest.approx(result.cost_usd)
    # a second run: the answer and both verdicts from the cache, at no cost
    requests = len(server.requests)
    (again,) = (
        Runner(gateway, cache=cache, call_kwargs=routes(server))
        .run(plan(loaded, project.registry))
        .runs
    )
    assert len(server.requests) == requests
    cached = only(again.results)
    assert cached.cost_usd == 0 and cached.cached
    assert [(o.passed, o.score, o.reason) for o in cached.outcomes] == [
        (o.passed, o.score, o.reason) for o in result.outcomes
    ]


def test_judge_costs_count_when_only_the_answer_is_cached(
    project, server, make_gateway, tmp_path
) -> None:
    """A new judged assertion on a cached answer: its judge call is paid, and counted."""
    body = (
        f"prompt: greet\nversions: [working]\njudge: {JUDGE}\n"
        "cases:\n  - id: a\n    vars: {name: A}\n"
    )
    cache = ResponseCache(tmp_path / "cache.db")
    gateway = make_gateway(prompts=project.prompts)
    Runner(gateway, cache=cache, call_kwargs=routes(server)).run(
        plan(suite(project, body), project.registry)
    )
    server.set_responder(judge_answers({graders.CLOSEDQA_SYSTEM: "It greets.\nY"}))
    graded = suite(project, body + "    assert: [{type: model-graded-closedqa, value: greets}]\n")
    (run,) = (
        Runner(gateway, cache=cache, call_kwargs=routes(server))
        .run(plan(graded, project.registry))
        .runs
    )
    result = only(run.results)
    assert result.cached and result.passed
    assert result.cost_usd is not None and result.cost_usd > 0


def test_closedqa_and_geval(project, server, make_gateway) -> None:
    loaded = suite(
        project,
        f"""\
        prompt: greet
        versions: [working]
        judge: {JUDGE}
        cases:
          - id: graded
            vars: {{name: Ann}}
            assert:
              - {{type: model-graded-closedqa, value: The reply greets Ann}}
              - {{type: g-eval, value: The reply is warm}}
              - {{type: g-eval, value: The reply is warm, threshold: 0.9}}
        """,
    )
    server.set_responder(
        judge_answers(
            {
                graders.CLOSEDQA_SYSTEM: "The reply says Howdy, Ann.\nY",
                graders.GEVAL_STEPS_SYSTEM: '{"steps": ["Read the tone", "Judge warmth"]}',
                graders.GEVAL_SYSTEM: '{"score": 8, "reason": "friendly howdy"}',
            }
        )
    )
    runner = Runner(make_gateway(prompts=project.prompts), call_kwargs=routes(server))
    (run,) = runner.run(plan(loaded, project.registry)).runs
    closedqa, geval, strict = only(run.results).outcomes
    assert (closedqa.passed, closedqa.score) == (True, 1.0)
    assert (geval.passed, geval.score, geval.reason) == (True, pytest.approx(0.8), "friendly howdy")
    assert (strict.passed, strict.score) == (False, pytest.approx(0.8))  # below 0.9
    # closedqa 1 call, each g-eval 2 (steps, then the score)
    assert len(judge_requests(server)) == 5
    evaluate = judge_requests(server)[-1].body["messages"][1]["content"]
    assert "- Read the tone\n- Judge warmth" in evaluate and "Echo: Howdy, Ann!" in evaluate


def test_a_judge_that_answers_garbage_errors_the_assertion(project, server, make_gateway) -> None:
    loaded = suite(
        project,
        f"""\
        prompt: greet
        versions: [working]
        judge: {JUDGE}
        cases:
          - id: garbage
            vars: {{name: Ann}}
            assert:
              - {{type: factuality, value: Howdy}}
              - {{type: contains, value: Howdy}}
        """,
    )
    server.set_responder(judge_answers({graders.FACTUALITY_SYSTEM: "They look alike to me."}))
    (run,) = (
        Runner(make_gateway(prompts=project.prompts), call_kwargs=routes(server))
        .run(plan(loaded, project.registry))
        .runs
    )
    result = only(run.results)
    assert result.errored and run.errored_cases() == ["garbage"]
    assert "factuality: judge chose no category A-E" in (result.error_reason or "")


def test_answer_relevance_through_embeddings(
    project, server, make_gateway, database_url, tmp_path
) -> None:
    """The judge's questions are embedded with the query: the same text, cosine 1."""
    loaded = suite(
        project,
        f"""\
        prompt: greet
        versions: [working]
        judge: {JUDGE}
        embedder: {EMBEDDER}
        cases:
          - id: on-topic
            vars: {{name: Ann, query: "How do I greet Ann?"}}
            assert: [{{type: answer-relevance, threshold: 0.9}}]
          - id: off-topic
            vars: {{name: Bob, query: "What is the weather in Paris?"}}
            assert: [{{type: answer-relevance, threshold: 0.9}}]
        """,
    )

    def questions(user: str) -> str:
        return "How do I greet Ann?" if "Ann" in user else "Which greeting suits Bob?"

    server.set_responder(judge_answers({graders.QUESTIONS_SYSTEM: questions}))
    gateway = make_gateway(prompts=project.prompts, source="eval")
    cache = ResponseCache(tmp_path / "cache.db")
    (run,) = (
        Runner(gateway, cache=cache, call_kwargs=routes(server))
        .run(plan(loaded, project.registry))
        .runs
    )
    off, on = run.results  # sorted by case id
    assert (on.outcomes[0].passed, on.outcomes[0].score) == (True, pytest.approx(1.0))
    assert not off.outcomes[0].passed and off.outcomes[0].score < 0.9
    assert off.outcomes[0].error is None
    embedded = embedding_requests(server)
    assert len(embedded) == 2 and all(r.body["model"] == EMBEDDER for r in embedded)
    assert {"How do I greet Ann?"} == set(next(r for r in embedded if "How do I greet Ann?" in
                                               r.body["input"]).body["input"])  # fmt: skip
    gateway.flush()
    calls = recorded(database_url)
    embeddings = [c for c in calls if c["model"] == EMBEDDER]
    assert len(embeddings) == 2 and all(c["cost"] > 0 for c in embeddings)
    assert all(c["tags"] == ["eval", "judge"] for c in embeddings)
    assert run.cost_usd == pytest.approx(sum(c["cost"] for c in calls))
    # again: the questions and the vectors from the cache
    requests = len(server.requests)
    (again,) = (
        Runner(gateway, cache=cache, call_kwargs=routes(server))
        .run(plan(loaded, project.registry))
        .runs
    )
    assert len(server.requests) == requests and again.cost_usd == 0
    assert [r.outcomes[0].score for r in again.results] == [
        r.outcomes[0].score for r in run.results
    ]


def test_similar_with_the_fake_servers_embeddings(
    project, server, make_gateway, database_url, tmp_path
) -> None:
    """Identical texts have cosine 1 (distance 0); different texts score low."""
    loaded = suite(
        project,
        """\
        prompt: greet
        versions: [working]
        cases:
          - id: sim
            vars: {name: Ann}
            assert:
              - {type: similar, value: "Echo: Howdy, {{ name }}!"}
              - {type: similar, value: [A different text, "Echo: Howdy, Ann!"]}
              - {type: not-similar, value: "Echo: Howdy, Ann!"}
              - {type: similar, value: Something else entirely}
              - {type: "similar:euclidean", value: "Echo: Howdy, Ann!"}
              - {type: "similar:dot", value: "Echo: Howdy, Ann!"}
              - {type: similar, value: "Echo: Howdy, Ann!", provider: text-embedding-3-large}
        """,
    )
    gateway = make_gateway(prompts=project.prompts, source="eval")
    cache = ResponseCache(tmp_path / "cache.db")
    (run,) = (
        Runner(gateway, cache=cache, call_kwargs=routes(server))
        .run(plan(loaded, project.registry))
        .runs
    )
    same, listed, negated, different, euclid, dot, large = only(run.results).outcomes
    assert (same.passed, same.score) == (True, pytest.approx(1.0))
    assert listed.passed and listed.score == pytest.approx(1.0)
    assert (negated.passed, negated.score) == (False, pytest.approx(0.0))
    assert not different.passed and different.score < 0.75 and different.error is None
    assert (euclid.passed, euclid.score) == (True, pytest.approx(1.0))
    assert (dot.passed, dot.score) == (True, pytest.approx(1.0))
    assert large.passed
    # the output's vector is cached after the first call: the later ones embed only theirs
    embedded = embedding_requests(server)
    assert [r.body["model"] for r in embedded] == [EMBEDDER] * 3 + ["text-embedding-3-large"]
    assert embedded[0].body["input"] == ["Echo: Howdy, Ann!"]
    assert embedded[1].body["input"] == ["A different text"]
    gateway.flush()
    calls = recorded(database_url)
    assert only(run.results).cost_usd == pytest.approx(sum(c["cost"] for c in calls))
    # again: nothing sent, nothing spent
    requests = len(server.requests)
    (again,) = (
        Runner(gateway, cache=cache, call_kwargs=routes(server))
        .run(plan(loaded, project.registry))
        .runs
    )
    assert len(server.requests) == requests and again.cost_usd == 0
    assert [o.score for o in only(again.results).outcomes] == [
        o.score for o in only(run.results).outcomes
    ]


def test_context_assertions(project, server, make_gateway) -> None:
    loaded = suite(
        project,
        f"""\
        prompt: greet
        versions: [working]
        judge: {JUDGE}
        defaults:
          vars:
            query: Who is greeted?
            context: "Ann is greeted. Bob is not. The greeting is Howdy. It is noon."
        cases:
          - id: rag
            vars: {{name: Ann}}
            assert:
              - {{type: context-faithfulness, threshold: 0.7}}
              - {{type: context-recall, value: "Ann is greeted. Ann is tall."}}
              - {{type: context-relevance, threshold: 0.5}}
          - id: no-context
            vars: {{name: Bob, context: null}}
            assert: [{{type: context-faithfulness}}]
        """,
    )
    server.set_responder(
        judge_answers(
            {
                graders.STATEMENTS_SYSTEM: "Ann is greeted.\nThe greeting is Howdy.\nIt is late.",
                graders.NLI_SYSTEM: "...\nFinal verdict for each statement in order: Yes. Yes. No.",
                graders.RECALL_SYSTEM: "1. Ann is greeted. [Attributed]\n2. Ann is tall. "
                "[Not Attributed]",
                graders.RELEVANCE_SYSTEM: "Ann is greeted.",
            }
        )
    )
    runner = Runner(make_gateway(prompts=project.prompts), call_kwargs=routes(server))
    (run,) = runner.run(plan(loaded, project.registry)).runs
    missing, rag = run.results
    faithful, recall, relevance = rag.outcomes
    assert (faithful.passed, faithful.score) == (False, pytest.approx(2 / 3))
    assert (recall.passed, recall.score) == (True, 0.5)  # promptfoo's threshold: 0
    assert (relevance.passed, relevance.score) == (False, 0.25)  # 1 of 4 sentences
    nli = next(r for r in judge_requests(server) if r.body["messages"][0]["content"] ==
               graders.NLI_SYSTEM)  # fmt: skip
    assert "Ann is greeted. Bob is not." in nli.body["messages"][1]["content"]
    assert missing.errored and "`context` variable" in (missing.error_reason or "")


def test_select_best_picks_one_target(project, server, make_gateway, database_url) -> None:
    """The candidate says Howdy, the baseline (production) Hello: one judge call per case
    compares them, the one it picks passes, and the call's cost is shared."""
    loaded = suite(
        project,
        f"""\
        prompt: greet
        versions: [working, production]
        judge: {JUDGE}
        cases:
          - id: a
            vars: {{name: Ann}}
            assert:
              - {{type: select-best, value: "Says {{{{ word }}}}"}}
              - {{type: contains, value: Ann}}
            threshold: 0.5
          - id: b
            vars: {{name: Bob}}
            assert: [{{type: select-best, value: "Says {{{{ word }}}}"}}]
        defaults:
          vars: {{word: Hello}}
        """,
    )

    def pick(user: str) -> str:
        texts = user.split('<text index="')[1:]
        return next(t.partition('"')[0] for t in texts if "Hello" in t)

    server.set_responder(judge_answers({graders.SELECT_BEST_SYSTEM: pick}))
    gateway = make_gateway(prompts=project.prompts, source="eval")
    report = Runner(gateway, call_kwargs=routes(server)).run(plan(loaded, project.registry))
    candidate, baseline = report.runs
    assert [r.outcomes[0].passed for r in candidate.results] == [False, False]
    assert [r.outcomes[0].passed for r in baseline.results] == [True, True]
    assert baseline.results[0].outcomes[0].reason == "picked as the best: Says Hello"
    # rescored: case a passes at 0.5 (contains Ann) for both, case b only for the baseline
    assert [r.passed for r in candidate.results] == [True, False]
    assert [r.passed for r in baseline.results] == [True, True]
    assert candidate.results[0].score == 0.5
    judged = judge_requests(server)
    assert len(judged) == 2  # one per case, not per target
    assert "Says Hello" in judged[0].body["messages"][1]["content"]
    gateway.flush()
    calls = recorded(database_url)
    total = sum(c["cost"] for c in calls)
    assert candidate.cost_usd + baseline.cost_usd == pytest.approx(total)
    judge_cost = sum(c["cost"] for c in calls if c["model"] == JUDGE)
    own = {c["metadata"]["eval_run_id"]: 0.0 for c in calls}
    for c in calls:
        if c["model"] != JUDGE:
            own[c["metadata"]["eval_run_id"]] += c["cost"]
    assert candidate.cost_usd == pytest.approx(own[candidate.id] + judge_cost / 2)


EIGHT = "\n".join(f"  - id: c{i}\n    vars: {{name: N{i}}}" for i in range(8))


def _first_text_judged(project: PromptRepo, server: Any, make_gateway: Any) -> Any:
    """Eight cases of working against production, select-best by a judge that always picks
    the first text it is shown."""
    loaded = suite(
        project,
        f"prompt: greet\nversions: [working, production]\njudge: {JUDGE}\n"
        f"defaults:\n  assert: [{{type: select-best, value: friendliest}}]\ncases:\n{EIGHT}\n",
    )
    server.set_responder(judge_answers({graders.SELECT_BEST_SYSTEM: "0"}))
    gateway = make_gateway(prompts=project.prompts, source="eval")
    return Runner(gateway, call_kwargs=routes(server)).run(plan(loaded, project.registry))


def test_select_best_never_ranks_identical_outputs(project, server, make_gateway) -> None:
    """The candidate was always shown first: a judge that prefers a place (here the first
    text, whatever it says) made an unchanged prompt lose every case to itself, a
    "significant regression" of a version against its own copy."""
    project.write("greet.yaml", prompt_yaml("Hello"))  # the working tree is production again
    report = _first_text_judged(project, server, make_gateway)
    for run in report.runs:
        assert [r.passed for r in run.results] == [True] * 8
    assert report.comparisons["gpt-4o-mini"].verdict == "no difference"


def test_select_best_shows_the_targets_in_an_order_of_each_case(project, server, make_gateway):
    """A judge that always picks the first text no longer always picks the candidate."""
    candidate, baseline = _first_text_judged(project, server, make_gateway).runs
    wins = [r.passed for r in candidate.results]
    assert 0 < sum(wins) < 8 and [r.passed for r in baseline.results] == [not w for w in wins]
    first_is_candidate = [  # the candidate says Howdy, the baseline Hello
        "Howdy" in r.body["messages"][1]["content"].split('<text index="1">')[0]
        for r in judge_requests(server)
    ]
    assert sorted(first_is_candidate) == sorted(wins)


def test_select_best_with_a_garbage_verdict_errors(project, server, make_gateway) -> None:
    loaded = suite(
        project,
        f"prompt: greet\nversions: [working, production]\njudge: {JUDGE}\n"
        "cases:\n  - id: a\n    vars: {name: Ann}\n    assert: [{type: select-best, value: x}]\n",
    )
    server.set_responder(judge_answers({graders.SELECT_BEST_SYSTEM: "7"}))
    report = Runner(make_gateway(prompts=project.prompts), call_kwargs=routes(server)).run(
        plan(loaded, project.registry)
    )
    for run in report.runs:
        result = only(run.results)
        assert result.errored and "judge picked text 7, not one of 0-1" in (
            result.error_reason or ""
        )


def test_select_best_needs_two_targets(project) -> None:
    loaded = suite(
        project,
        "prompt: greet\nversions: [working]\n"
        "cases:\n  - id: a\n    vars: {name: Ann}\n    assert: [{type: select-best, value: x}]\n",
    )
    with pytest.raises(ConfigFileError, match="select-best compares the outputs of several"):
        plan(loaded, project.registry)
