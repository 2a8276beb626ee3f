"""The model-graded assertions' pure parts: prompts, reading the judges' answers, scores."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest

from llmops.errors import ConfigFileError
from llmops.evals import graders
from llmops.evals.assertions import Context, check, static_problem
from llmops.evals.graders import Ask, Embed, JudgeProblem, Verdict
from llmops.evals.suite import Assertion, load_suite

PROMPT = "What is the capital of France?"


def ctx(**variables: Any) -> Context:
    return Context(vars=variables, prompt=PROMPT)


def drive(
    assertion: Assertion, output: str, answers: list[Any], context: Context | None = None
) -> tuple[Verdict, list[Ask | Embed]]:
    """Run a grader, answering its requests in order; the verdict and what it asked."""
    steps = graders.grading(assertion, output, context or ctx())
    requests: list[Ask | Embed] = []
    answer: Any = None
    while True:
        try:
            request = steps.send(answer)
        except StopIteration as done:
            assert len(requests) == len(answers), "the grader asked less than expected"
            return done.value, requests
        requests.append(request)
        answer = answers[len(requests) - 1]


def user_text(request: Ask | Embed) -> str:
    assert isinstance(request, Ask)
    return request.messages[-1]["content"]


# -- vector maths ------------------------------------------------------------------------


def test_cosine_dot_and_euclidean_by_hand() -> None:
    a, b = [1.0, 2.0, 2.0], [2.0, 1.0, 2.0]  # |a| = |b| = 3, a.b = 2 + 2 + 4 = 8
    assert graders.dot(a, b) == 8
    assert graders.cosine(a, b) == pytest.approx(8 / 9)
    assert graders.euclidean(a, b) == pytest.approx(math.sqrt(2))  # (1, 1, 0) apart
    assert graders.euclidean([0.0, 0.0], [3.0, 4.0]) == 5
    assert graders.cosine([1.0, 0.0], [0.0, 1.0]) == 0
    assert graders.cosine([1.0, 0.0], [-1.0, 0.0]) == -1
    assert graders.cosine([0.0, 0.0], [1.0, 1.0]) == 0  # no direction: no similarity
    with pytest.raises(JudgeProblem, match="different sizes"):
        graders.cosine([1.0], [1.0, 0.0])


@pytest.mark.parametrize(
    ("kind", "reference", "threshold", "score", "passed"),
    [
        # output (1, 0) against (0.6, 0.8): cosine = dot = 0.6
        ("similar", [0.6, 0.8], None, 0.6, False),  # default threshold 0.75
        ("similar", [0.6, 0.8], 0.5, 0.6, True),
        ("similar:cosine", [0.8, 0.6], None, 0.8, True),
        ("similar:dot", [2.0, 0.0], None, 1.0, True),  # dot 2, the score kept at 1
        ("similar:dot", [-1.0, 0.0], None, 0.0, False),  # dot -1, the score kept at 0
        # distance sqrt(0.4^2 + 0.8^2) = sqrt(0.8) = 0.894 > 0.75; score 1 / 1.894
        ("similar:euclidean", [0.6, 0.8], None, 1 / (1 + math.sqrt(0.8)), False),
        ("similar:euclidean", [0.6, 0.8], 0.9, 1 / (1 + math.sqrt(0.8)), True),
        ("similar:euclidean", [1.0, 0.0], None, 1.0, True),  # distance 0
    ],
)
def test_similar_scores(
    kind: str, reference: list[float], threshold: float | None, score: float, passed: bool
) -> None:
    assertion = Assertion(type=kind, value="Paris", threshold=threshold)
    verdict, (request,) = drive(assertion, "It is Paris.", [[[1.0, 0.0], reference]])
    assert request == Embed(["It is Paris.", "Paris"])
    assert (verdict.score, verdict.passed) == (pytest.approx(score), passed)


def test_similar_to_a_list_takes_the_closest_reference() -> None:
    assertion = Assertion(type="similar", value=["Lyon", "Paris", "Nice"])
    vectors = [[1.0, 0.0], [0.0, 1.0], [0.8, 0.6], [0.6, 0.8]]
    verdict, (request,) = drive(assertion, "Paris.", [vectors])
    assert request == Embed(["Paris.", "Lyon", "Paris", "Nice"])
    assert verdict.score == pytest.approx(0.8) and verdict.passed
    assert "closest of 3 references" in verdict.reason


def test_similar_dot_to_a_list_takes_the_largest_dot_product() -> None:
    """Dot products above 1 all score 1: the first reference was taken as the closest,
    and a dot product of 8 against a threshold of 5 failed with a perfect score."""
    assertion = Assertion(type="similar:dot", value=["far", "near"], threshold=5)
    verdict, _ = drive(assertion, "x", [[[1.0, 0.0], [2.0, 0.0], [8.0, 0.0]]])
    assert verdict.passed and "dot product 8.000" in verdict.reason
    nearest = Assertion(type="similar:euclidean", value=["far", "near"], threshold=1)
    verdict, _ = drive(nearest, "x", [[[0.0, 0.0], [3.0, 0.0], [0.5, 0.0]]])
    assert verdict.passed and "distance 0.500" in verdict.reason


# -- factuality --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "letter", "score", "passed"),
    [
        ("(B) The submission adds the population.", "B", 1.0, True),
        ('{"category": "A", "reason": "less detail"}', "A", 1.0, True),
        ('```json\n{"category": "d", "reason": "says Lyon"}\n```', "D", 0.0, False),
        ("I pick (C)", "C", 1.0, True),
        ('{"category": "E"}', "E", 1.0, True),
    ],
)
def test_factuality_categories(answer: str, letter: str, score: float, passed: bool) -> None:
    assertion = Assertion(type="factuality", value="Paris is the capital of France")
    verdict, (request,) = drive(assertion, "Paris, population 2M", [answer])
    assert (verdict.score, verdict.passed) == (score, passed)
    assert verdict.reason.startswith(f"({letter}) ")
    text = user_text(request)
    assert PROMPT in text and "Paris is the capital of France" in text
    assert "Paris, population 2M" in text


def test_factuality_scores_from_config() -> None:
    assertion = Assertion(
        type="factuality", value="Paris", config={"subset": 0.5, "differButFactual": 0}
    )
    assert drive(assertion, "x", ["(A)"])[0].score == 0.5
    assert drive(assertion, "x", ["(A)"])[0].passed
    assert not drive(assertion, "x", ["(E)"])[0].passed
    assert graders.factuality_scores(None) == {"A": 1, "B": 1, "C": 1, "D": 0, "E": 1}


@pytest.mark.parametrize(
    "answer", ["They agree.", '{"category": "F"}', "(F) something", '{"category": "AB"}', ""]
)
def test_factuality_garbage_is_a_judge_problem(answer: str) -> None:
    with pytest.raises(JudgeProblem, match="category"):
        drive(Assertion(type="factuality", value="Paris"), "x", [answer])


# -- model-graded-closedqa ---------------------------------------------------------------


def test_closedqa_reads_the_last_letter() -> None:
    assertion = Assertion(type="model-graded-closedqa", value="Names a city")
    verdict, (request,) = drive(assertion, "Paris", ["It names Paris, a city.\nY"])
    assert verdict == Verdict(1.0, True, "meets the criterion: It names Paris, a city.")
    assert "Names a city" in user_text(request) and PROMPT in user_text(request)
    verdict, _ = drive(assertion, "Blue", ["Blue is a colour.\n\nN.\n"])
    assert (verdict.score, verdict.passed) == (0.0, False)
    with pytest.raises(JudgeProblem, match="Y or N"):
        drive(assertion, "Blue", ["Blue is a colour, so probably not"])


# -- g-eval ------------------------------------------------------------------------------

STEPS = '{"steps": ["Check the tone", "Check the content"]}'


def test_geval_scores_out_of_ten() -> None:
    assertion = Assertion(type="g-eval", value="The answer is polite")
    verdict, (steps, grade) = drive(
        assertion, "Please find Paris.", [STEPS, '{"score": 8, "reason": "courteous"}']
    )
    assert verdict == Verdict(pytest.approx(0.8), True, "courteous")  # 0.8 >= 0.7
    assert "The answer is polite" in user_text(steps)
    assert "- Check the tone\n- Check the content" in user_text(grade)
    assert PROMPT in user_text(grade) and "Please find Paris." in user_text(grade)
    verdict, _ = drive(assertion, "x", [STEPS, '{"score": 6, "reason": "curt"}'])
    assert (verdict.score, verdict.passed) == (pytest.approx(0.6), False)  # below 0.7
    threshold = Assertion(type="g-eval", value="polite", threshold=0.5)
    assert drive(threshold, "x", [STEPS, '{"score": "6", "reason": "ok"}'])[0].passed


def test_geval_averages_a_list_of_criteria() -> None:
    assertion = Assertion(type="g-eval", value=["polite", "short"])
    answers = [STEPS, '{"score": 9, "reason": "a"}', STEPS, '{"score": 7, "reason": "b"}']
    verdict, requests = drive(assertion, "x", answers)
    assert len(requests) == 4
    assert verdict == Verdict(pytest.approx(0.8), True, "a; b")


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        (["steps: tone, content"], "no evaluation steps"),
        (['{"steps": []}'], "no evaluation steps"),
        ([STEPS, '{"score": 11, "reason": "x"}'], "outside 0-10"),
        ([STEPS, '{"reason": "x"}'], "no score"),
        ([STEPS, "eight"], "no JSON score"),
    ],
)
def test_geval_garbage_is_a_judge_problem(answers: list[str], message: str) -> None:
    with pytest.raises(JudgeProblem, match=message):
        drive(Assertion(type="g-eval", value="polite"), "x", answers)


# -- answer-relevance --------------------------------------------------------------------


def test_answer_relevance_is_the_mean_cosine_of_the_generated_questions() -> None:
    assertion = Assertion(type="answer-relevance")
    questions = "1. What is the capital?\n- Which city?\n\nWhere is the Louvre?"
    # the query (1, 0) against (1, 0), (0, 1) and (0.6, 0.8): (1 + 0 + 0.6) / 3
    vectors = [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]
    verdict, (ask, embed) = drive(assertion, "Paris.", [questions, vectors], ctx(query="Q?"))
    assert embed == Embed(["Q?", "What is the capital?", "Which city?", "Where is the Louvre?"])
    assert "Paris." in user_text(ask)
    assert verdict.score == pytest.approx(1.6 / 3) and verdict.passed  # promptfoo: threshold 0
    strict = Assertion(type="answer-relevance", threshold=0.6)
    assert not drive(strict, "Paris.", [questions, vectors], ctx(query="Q?"))[0].passed


def test_answer_relevance_uses_the_prompt_without_a_query_variable() -> None:
    _, (_, embed) = drive(Assertion(type="answer-relevance"), "x", ["Q1?", [[1.0], [1.0]]])
    assert embed == Embed([PROMPT, "Q1?"])
    with pytest.raises(JudgeProblem, match="no questions"):
        drive(Assertion(type="answer-relevance"), "x", ["\n  \n"])


# -- context-recall, context-relevance, context-faithfulness ----------------------------

CONTEXT = (
    "Paris is the capital of France. It has two million people. The Seine runs through it. "
    "Lyon is in the south-east."
)


def test_context_recall_counts_attributed_sentences() -> None:
    assertion = Assertion(type="context-recall", value="Paris is the capital. It has a river.")
    answer = (
        "1. Paris is the capital. Stated. [Attributed]\n"
        "2. It has a river. The Seine. [attributed]\n"
        "3. It has a tower. Not said. [Not Attributed]\n"
        "4. It is old. Not said. [Not Attributed]\n"
        "Done."
    )
    verdict, (request,) = drive(assertion, "ignored", [answer], ctx(context=CONTEXT))
    assert verdict.score == 0.5 and verdict.passed  # 2 of 4; promptfoo's threshold 0
    assert CONTEXT in user_text(request) and "It has a river." in user_text(request)
    strict = assertion.model_copy(update={"threshold": 0.6})
    assert not drive(strict, "x", [answer], ctx(context=CONTEXT))[0].passed
    # no context variable: the prompt is the context
    _, (request,) = drive(assertion, "x", ["1. a [Attributed]"])
    assert PROMPT in user_text(request)
    with pytest.raises(JudgeProblem, match="Attributed"):
        drive(assertion, "x", ["All of them are in the context."], ctx(context=CONTEXT))


def test_context_relevance_counts_the_needed_sentences() -> None:
    assertion = Assertion(type="context-relevance")
    variables = {"query": PROMPT, "context": CONTEXT}  # 4 sentences
    verdict, (request,) = drive(
        assertion, "x", ["Paris is the capital of France."], ctx(**variables)
    )
    assert verdict.score == 0.25
    assert PROMPT in user_text(request) and CONTEXT in user_text(request)
    both = "Paris is the capital of France. It has two million people. It has two million people."
    assert drive(assertion, "x", [both], ctx(**variables))[0].score == 0.5  # distinct ones
    assert drive(assertion, "x", ["Insufficient Information"], ctx(**variables))[0].score == 0
    chunks = {"query": PROMPT, "context": ["Paris is the capital.", "Lyon is a city."]}
    verdict, (request,) = drive(assertion, "x", ["a\nb\nc"], ctx(**chunks))
    assert verdict.score == 1.0  # 3 lines, at most the 2 chunks
    assert "Paris is the capital.\n\nLyon is a city." in user_text(request)
    with pytest.raises(JudgeProblem, match="`query` variable"):
        drive(assertion, "x", [], ctx(context=CONTEXT))
    with pytest.raises(JudgeProblem, match="`context` variable"):
        drive(assertion, "x", [], ctx(query=PROMPT, context=[1, 2]))


def test_context_faithfulness_by_statement() -> None:
    assertion = Assertion(type="context-faithfulness")
    variables = ctx(query=PROMPT, context=CONTEXT)
    statements = "Paris is the capital.\nParis has 2M people.\n\nParis has a tower.\nIt is old."
    nli = "1. ... Verdict: Yes.\n...\nFinal verdict for each statement in order: Yes. Yes. No. Yes."
    verdict, (first, second) = drive(assertion, "Paris!", [statements, nli], variables)
    assert verdict.score == 0.75 and verdict.passed  # 3 of 4 supported
    assert PROMPT in user_text(first) and "Paris!" in user_text(first)
    assert "3. Paris has a tower." in user_text(second) and CONTEXT in user_text(second)
    # fewer final verdicts than statements: the missing ones count as unsupported
    short = "Final verdict for each statement in order: Yes. Yes."
    assert drive(assertion, "x", [statements, short], variables)[0].score == 0.5
    # no final line: the "Verdict: yes/no" marks, a statement without one unsupported
    marks = "1. Verdict: Yes.\n2. Verdict: No."
    assert drive(assertion, "x", [statements, marks], variables)[0].score == 0.25
    with pytest.raises(JudgeProblem, match="no verdicts"):
        drive(assertion, "x", [statements, "They look fine."], variables)
    with pytest.raises(JudgeProblem, match="no statements"):
        drive(assertion, "x", ["  \n"], variables)


def test_sentences_as_promptfoo_counts_them() -> None:
    assert graders.sentences("One. Two! Three? 4. Four") == ["One.", "Two!", "Three?", "Four"]
    assert graders.sentences("A line. Still.\nAnother line.") == ["A line. Still.", "Another line."]


# -- select-best -------------------------------------------------------------------------


def test_select_best_prompt_and_choice() -> None:
    messages = graders.select_best_messages("most polite", ["Go away", "Hello, friend"])
    text = messages[-1]["content"]
    assert "most polite" in text
    assert '<text index="0">\nGo away\n</text>' in text
    assert '<text index="1">\nHello, friend\n</text>' in text
    assert graders.parse_choice("1", 2) == 1
    assert graders.parse_choice("Text 0 is the most polite.", 2) == 0
    with pytest.raises(JudgeProblem, match="not one of 0-1"):
        graders.parse_choice("2", 2)
    with pytest.raises(JudgeProblem, match="picked no text"):
        graders.parse_choice("the second one", 2)


def test_judge_calls_per_output() -> None:
    """What --dry-run counts: g-eval asks twice per criterion, faithfulness twice."""
    calls = {
        "factuality": 1, "model-graded-closedqa": 1, "answer-relevance": 1,
        "context-faithfulness": 2, "context-recall": 1, "context-relevance": 1,
        "similar": 0, "similar:dot": 0, "select-best": 1, "contains": 0,
    }  # fmt: skip
    for kind, count in calls.items():
        assert graders.judge_calls(Assertion(type=f"not-{kind}")) == count, kind
    assert graders.judge_calls(Assertion(type="g-eval", value=["a", "b", "c"])) == 6
    assert graders.judge_calls(Assertion(type="g-eval", value="a")) == 2


# -- configuration, found when a suite loads ---------------------------------------------


@pytest.mark.parametrize(
    ("assertion", "message"),
    [
        ({"type": "similar"}, "similar: value must be the expected text"),
        ({"type": "similar", "value": ["a", ""]}, "similar: value must be the expected text"),
        ({"type": "similar", "value": "a", "threshold": 1.5}, "similarity from 0 to 1"),
        ({"type": "similar:euclidean", "value": "a", "threshold": -1}, "at least 0"),
        ({"type": "g-eval", "value": "a", "threshold": -0.1}, "score from 0 to 1"),
        ({"type": "g-eval"}, "g-eval: value must be the criteria"),
        ({"type": "factuality"}, "factuality: value must be the reference answer"),
        ({"type": "factuality", "value": "a", "config": {"bogus": 1}}, "not 'bogus'"),
        ({"type": "factuality", "value": "a", "config": {"subset": 2}}, "score from 0 to 1"),
        ({"type": "model-graded-closedqa"}, "value must be the criterion"),
        ({"type": "select-best", "value": ""}, "value must be the criterion"),
        ({"type": "context-recall"}, "value must be the ground truth"),
        ({"type": "llm-rubric"}, "llm-rubric: value must be the rubric"),  # judged "None"
        ({"type": "not-llm-rubric", "value": " "}, "llm-rubric: value must be the rubric"),
        ({"type": "answer-relevance", "value": "x"}, "takes no value"),
        ({"type": "context-relevance", "threshold": 2}, "score from 0 to 1"),
        (
            {"type": "assert-set", "assert": [{"type": "select-best", "value": "x"}]},
            "select-best compares targets",
        ),
    ],
)
def test_static_problems(assertion: dict[str, Any], message: str) -> None:
    problem = static_problem(Assertion.model_validate(assertion))
    assert problem is not None and message in problem, problem


@pytest.mark.parametrize(
    "assertion",
    [
        {"type": "similar:euclidean", "value": "a", "threshold": 1.5},  # a distance
        {"type": "similar:dot", "value": ["a", "b"], "threshold": 3},
        {"type": "not-factuality", "value": "a", "config": {"disagree": 0.2}},
        {"type": "model-graded-factuality", "value": "a"},
        {"type": "g-eval", "value": ["a", "b"], "threshold": 0.9},
        {"type": "context-faithfulness", "threshold": 0.8},
        {"type": "not-select-best", "value": "the rudest"},
    ],
)
def test_valid_model_graded_assertions(assertion: dict[str, Any]) -> None:
    assert static_problem(Assertion.model_validate(assertion)) is None


def test_a_bad_model_graded_assertion_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "suite.yaml"
    path.write_text(
        "prompt: greet\nembedder: text-embedding-3-large\ncases:\n  - id: one\n"
        "    assert:\n      - type: not-similar\n        threshold: 0.8\n"
    )
    with pytest.raises(ConfigFileError, match=re.escape("similar: value must be")) as caught:
        load_suite(path)
    assert caught.value.file == str(path) and caught.value.line == 6


def test_outside_the_runner_a_model_graded_check_says_so() -> None:
    with pytest.raises(Exception, match="graded by the runner"):
        check(Assertion(type="factuality", value="Paris"), "Paris", ctx())
