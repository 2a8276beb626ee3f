"""Tool calls, finish reasons, logprobs and transforms through a real Gateway and the fake
server: the runner hands the checks what the call returned and what the prompt offered."""

from __future__ import annotations

import math
import textwrap

import pytest

from llmops.evals.cache import ResponseCache
from llmops.evals.runner import Runner, plan
from llmops.evals.suite import load_suite
from llmops.testing import Reply
from tests.conftest import PromptRepo

PROMPT = """\
description: Answers with a tool call
model: gpt-4o-mini
params:
  logprobs: true
  tools:
    - type: function
      function:
        name: get_weather
        parameters:
          type: object
          required: [city]
          properties: {city: {type: string}}
template: "Weather in {{ city }}?"
"""

SUITE = """\
prompt: tools
versions: [working]
concurrency: 1
cases:
  - id: good-call
    vars: {city: Paris}
    assert:
      - type: is-valid-openai-tools-call
      - {type: tool-call-f1, value: [get_weather]}
      - {type: finish-reason, value: tool_calls}
      - {type: perplexity, threshold: 2}
      - {type: perplexity-score, threshold: 0.3}
      - type: python
        value: >-
          context['tool_calls'][0]['function']['name'] == 'get_weather'
          and context['prompt'] == 'Weather in Paris?' and context['config']['k'] == 1
          and context['test']['id'] == 'good-call' and context['vars']['city'] == 'Paris'
        config: {k: 1}
  - id: bad-call
    vars: {city: Oslo}
    assert:
      - type: is-valid-openai-tools-call
      - {type: tool-call-f1, value: [get_weather, notify], threshold: 0.5}
  - id: transformed
    vars: {city: Rome}
    options: {transform: "json.loads(output)['answer']"}
    assert:
      - {type: equals, value: sunny}
      - {type: equals, value: SUNNY, transform: output.upper()}
      - {type: finish-reason, value: stop}
      - type: perplexity
  - id: broken-transform
    vars: {city: Lima}
    options: {transform: "json.loads(output)"}
    assert:
      - {type: contains, value: x}
"""


def routes(server):
    return lambda model: {"api_base": server.base_url, "api_key": "sk-test", "num_retries": 0}


@pytest.fixture
def loaded(repo: PromptRepo):
    repo.write("tools.yaml", PROMPT)
    path = repo.root / "evals" / "tools.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(textwrap.dedent(SUITE))
    return load_suite(path)


def test_tool_calls_logprobs_and_transforms_end_to_end(
    loaded, repo, server, make_gateway, tmp_path
) -> None:
    half = math.log(0.5)
    server.enqueue(
        Reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}],
              logprobs=[half, half]),
        Reply(tool_calls=[{"name": "get_weather", "arguments": {"town": "Oslo"}}]),
        Reply(text='{"answer": "sunny"}', finish_reason="length"),
        Reply(text="not json"),
    )  # fmt: skip
    cache = ResponseCache(tmp_path / "cache.db")
    gateway = make_gateway(prompts=repo.prompts)
    runner = Runner(gateway, cache=cache, call_kwargs=routes(server))
    (run,) = runner.run(plan(loaded, repo.registry)).runs
    results = {r.case_id: r for r in run.results}
    # the request offered the prompt's tools and asked for logprobs
    first = server.requests[0].body
    assert first["tools"][0]["function"]["name"] == "get_weather" and first["logprobs"] is True

    good = results["good-call"]
    assert good.passed and not good.errored, good.outcomes
    f1, perplexity_score = good.outcomes[1], good.outcomes[4]
    assert f1.score == 1.0
    assert perplexity_score.score == pytest.approx(1 / 3)  # perplexity 2: 1 / (1 + 2)

    bad = results["bad-call"]
    valid, partial = bad.outcomes
    assert not valid.passed and "'city' is a required property" in valid.reason
    assert partial.passed and partial.score == pytest.approx(2 / 3)  # precision 1, recall 1/2
    assert not bad.passed and not bad.errored

    transformed = results["transformed"]
    assert transformed.output == '{"answer": "sunny"}'  # the stored output is the model's
    sunny, upper, finish, perplexity = transformed.outcomes
    assert sunny.passed and upper.passed
    assert not finish.passed and "'length'" in finish.reason
    assert perplexity.error is not None and "`logprobs: true`" in perplexity.error
    assert transformed.errored  # no logprobs in that answer: the perplexity check errored

    broken = results["broken-transform"]
    assert broken.errored and broken.outcomes == []
    assert "options.transform raised JSONDecodeError" in str(broken.error)
    assert broken.output == "not json"

    # the cache replays tool calls, finish reasons and logprobs: the same verdicts
    (again,) = (
        Runner(gateway, cache=cache, call_kwargs=routes(server))
        .run(plan(loaded, repo.registry))
        .runs
    )
    assert len(server.requests) == 4 and again.cached == 4
    assert [(r.case_id, r.passed, r.errored) for r in again.results] == [
        (r.case_id, r.passed, r.errored) for r in run.results
    ]


def test_tool_checks_without_offered_tools_error(repo, server, make_gateway) -> None:
    repo.write("plain.yaml", PROMPT.replace("  tools:", "  other:"))
    path = repo.root / "evals" / "plain.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(
        "prompt: plain\nversions: [working]\ncases:\n  - id: a\n    vars: {city: X}\n"
        "    assert: [{type: is-valid-openai-tools-call}]\n"
    )
    server.enqueue(Reply(tool_calls=[{"name": "get_weather", "arguments": {"city": "X"}}]))
    runner = Runner(make_gateway(prompts=repo.prompts), call_kwargs=routes(server))
    (run,) = runner.run(plan(load_suite(path), repo.registry)).runs
    (result,) = run.results
    assert result.errored and "params as `tools`" in str(result.error_reason)
