"""Tool calls, finish reasons, logprobs and transforms through a real Gateway and the fake
server: the runner hands the checks what the call returned and what the prompt offered."""

from __future__ import annotations

import math
import shutil
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


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js")
def test_javascript_files_that_log_end_to_end(repo, server, make_gateway) -> None:
    """promptfoo's assert files log (at load and in the function): a suite's `file://`
    checks still read what the function returned, and a failing one shows what it logged."""
    repo.write("greet.yaml", 'description: Greets\nmodel: gpt-4o-mini\ntemplate: "Hi {{ name }}"\n')
    evals = repo.root / "evals"
    evals.mkdir(exist_ok=True)
    (evals / "checks.js").write_text(
        "console.log('loading checks');\n"
        "module.exports = (output, context) => {\n"
        "  console.log('Prompt:', context.prompt);\n"
        "  return {pass: output.includes('Ann'), score: 0.75, reason: 'names Ann'};\n"
        "};\n"
        "module.exports.polite = (output) => {\n"
        "  process.stdout.write('saw ' + output);\n"
        "  return output.includes('please');\n"
        "};\n"
    )
    path = evals / "greet.yaml"
    path.write_text(
        "prompt: greet\nversions: [working]\ncases:\n  - id: a\n    vars: {name: Ann}\n"
        "    assert:\n      - {type: javascript, value: 'file://checks.js'}\n"
        "      - {type: javascript, value: 'file://checks.js:polite'}\n"
    )
    server.enqueue(Reply(text="Hello Ann"))
    runner = Runner(make_gateway(prompts=repo.prompts), call_kwargs=routes(server))
    (run,) = runner.run(plan(load_suite(path), repo.registry)).runs
    (result,) = run.results
    assert not result.errored, result.error_reason
    named, polite = result.outcomes
    assert (named.passed, named.score, named.reason) == (True, 0.75, "names Ann")
    assert not polite.passed
    assert polite.reason == "returned false; logged: loading checks | saw Hello Ann"


PROMPTFOO_TOOLS = """\
prompts: ['What is the weather like in {{city}}?']
providers:
  - id: openai:chat:gpt-4o-mini
    config:
      tools:
        - type: function
          function:
            name: get_current_weather
            parameters: {type: object, properties: {location: {type: string}}}
      response_format: {type: json_object}
tests:
  - vars: {city: Boston}
    assert:
      - type: javascript
        value: output[0].function.name === 'get_current_weather'
      - type: javascript
        value: JSON.parse(output[0].function.arguments).location === 'Boston, MA'
  - vars: {city: Paris}
    assert:
      - type: javascript
        value: output.city === 'Paris' && typeof output === 'object'
      - type: javascript
        value: output.includes('Paris')
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js")
def test_imported_promptfoo_checks_read_tool_calls_and_json_as_promptfoo_hands_them(
    repo, server, make_gateway, tmp_path
) -> None:
    """promptfoo hands a javascript check the tool calls (or a JSON output parsed) as
    `output`: the imported checks that read its fields pass on the same answers."""
    from llmops.evals.importers.promptfoo import import_config, write_files

    config = tmp_path / "pf" / "promptfooconfig.yaml"
    config.parent.mkdir()
    config.write_text(PROMPTFOO_TOOLS)
    suite_path = repo.root / "evals" / "weather.yaml"
    result = import_config(config, out=suite_path, prompts_dir=repo.prompts)
    write_files(result)
    assert sum("reads fields of `output`" in note for note in result.notes) == 3

    def answer(request) -> Reply:  # a tool call for Boston, a JSON object for Paris
        if "Boston" in request.body["messages"][-1]["content"]:
            call = {"name": "get_current_weather", "arguments": {"location": "Boston, MA"}}
            return Reply(tool_calls=[call])
        return Reply(text='{"city": "Paris"}')

    server.set_responder(answer)
    runner = Runner(make_gateway(prompts=repo.prompts), call_kwargs=routes(server))
    (run,) = runner.run(plan(load_suite(suite_path), repo.registry)).runs
    for case in run.results:
        assert case.passed and not case.errored, [(o.type, o.reason) for o in case.outcomes]


def test_the_markdown_report_shows_the_check_that_failed(repo, server, make_gateway) -> None:
    """The "expected" column showed the first check of the failed one's type: `contains:
    Hello` (which passed) beside "missing 'Goodbye'"."""
    from llmops.evals import report as render

    repo.write("greet.yaml", 'description: Greets\nmodel: gpt-4o-mini\ntemplate: "Hi {{ name }}"\n')
    path = repo.root / "evals" / "greet.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(
        "prompt: greet\nversions: [working]\ncases:\n  - id: a\n    vars: {name: Ann}\n"
        "    assert: [{type: contains, value: Hello}, {type: contains, value: Goodbye}]\n"
    )
    server.enqueue(Reply(text="Hello Ann"))
    runner = Runner(make_gateway(prompts=repo.prompts), call_kwargs=routes(server))
    report = runner.run(plan(load_suite(path), repo.registry))
    markdown = render.markdown([report], render.Gates([report]))
    assert "| a | missing 'Goodbye' | contains: Goodbye | Hello Ann |" in markdown
