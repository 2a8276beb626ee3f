"""``llmops eval import promptfoo``: the mapping functions, and every shape of config in
tests/fixtures/promptfoo imported, loaded with ``load_suite`` and dry-run by ``eval run``."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml

from llmops.errors import ConfigFileError
from llmops.evals import suite as suite_format
from llmops.evals.importers import promptfoo
from llmops.evals.importers._templates import chat_messages, nunjucks_to_jinja
from llmops.evals.importers.promptfoo import import_config, litellm_model, slug, write_files
from llmops.evals.suite import load_suite
from llmops.prompts import PromptRegistry

FIXTURES = Path(__file__).parents[1] / "fixtures" / "promptfoo"


# -- mapping functions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai:gpt-4o-mini", "gpt-4o-mini"),
        ("openai:chat:gpt-4o", "gpt-4o"),
        ("openai:responses:o3-mini", "o3-mini"),
        ("openai:completion:davinci-002", "text-completion-openai/davinci-002"),
        ("anthropic:messages:claude-3-5-sonnet-20241022", "anthropic/claude-3-5-sonnet-20241022"),
        ("azure:chat:my-deployment", "azure/my-deployment"),
        ("azureopenai:chat:prod-gpt4", "azure/prod-gpt4"),
        ("ollama:llama3.2", "ollama/llama3.2"),
        ("ollama:chat:llama3.2:3b", "ollama_chat/llama3.2:3b"),
        ("litellm:gpt-4o-mini", "gpt-4o-mini"),
        ("litellm:chat:anthropic/claude-3-haiku", "anthropic/claude-3-haiku"),
        ("vertex:gemini-1.5-pro", "vertex_ai/gemini-1.5-pro"),
        ("google:gemini-2.0-flash", "gemini/gemini-2.0-flash"),
        ("bedrock:anthropic.claude-3-haiku-v1:0", "bedrock/anthropic.claude-3-haiku-v1:0"),
        ("mistral:mistral-large-latest", "mistral/mistral-large-latest"),
        ("groq:llama-3.1-8b-instant", "groq/llama-3.1-8b-instant"),
        ("openrouter:meta-llama/llama-3-8b", "openrouter/meta-llama/llama-3-8b"),
    ],
)  # fmt: skip
def test_provider_ids_map_to_litellm_names(provider: str, model: str) -> None:
    assert litellm_model(provider) == (model, "")


@pytest.mark.parametrize(
    ("provider", "why"),
    [
        ("exec:python model.py", "runs a command"),
        ("python:provider.py", "runs a Python script"),
        ("http://localhost:8080/generate", "calls an HTTP endpoint"),
        ("https://api.example.com/v1", "calls an HTTP endpoint"),
        ("webhook:https://example.com/hook", "calls a webhook"),
        ("file://providers/custom.js", "custom provider file"),
        ("echo", "echoes the prompt"),
        ("openai:embedding:text-embedding-3-small", "not a chat model"),
        ("ollama:embeddings:nomic-embed-text", "not a chat model"),
        ("someoneelse:model-x", "cannot map"),
    ],
)
def test_providers_llmops_cannot_call_say_why(provider: str, why: str) -> None:
    model, reason = litellm_model(provider)
    assert model is None and why in reason


@pytest.mark.parametrize(
    ("nunjucks", "jinja"),
    [
        ("Hi {{name}}", "Hi {{name}}"),
        ("{{ items | dump }}", "{{ items | tojson }}"),
        ("{{ data | dump(2) }}", "{{ data | tojson(indent=2) }}"),
        ("{% if a === 'x' %}y{% endif %}", "{% if a == 'x' %}y{% endif %}"),
        ("{% if a !== 'x' %}y{% endif %}", "{% if a != 'x' %}y{% endif %}"),
        ("{% if docs.length > 2 %}many{% endif %}", "{% if (docs | length) > 2 %}many{% endif %}"),
        ("{% if a %}1{% elseif b %}2{% endif %}", "{% if a %}1{% elif b %}2{% endif %}"),
        ("{% verbatim %}{{ x }}{% endverbatim %}", "{% raw %}{{ x }}{% endraw %}"),
        ("It is 3 === 3 outside tags", "It is 3 === 3 outside tags"),
    ],
)
def test_nunjucks_converts_to_jinja(nunjucks: str, jinja: str) -> None:
    assert nunjucks_to_jinja(nunjucks) == (jinja, [])


def test_nunjucks_that_cannot_convert_is_reported() -> None:
    _, problems = nunjucks_to_jinja("{{ text | nl2br }}")
    assert problems == [
        "uses the filter 'nl2br', which llmops' sandbox does not have (Nunjucks' own and "
        "promptfoo's custom filters do not run in llmops)"
    ]
    _, problems = nunjucks_to_jinja("{% include 'header.njk' %}{{ q }}")
    assert problems and "include" in problems[0]


def test_chat_json_with_quoted_and_dumped_variables() -> None:
    text = '[{"role": "system", "content": "About {{ product }}.\\nBe brief."},\n'
    text += ' {"role": "user", "content": {{ question | dump }}}]'
    assert chat_messages(text) == [
        {"role": "system", "content": "About {{ product }}.\nBe brief."},
        {"role": "user", "content": "{{ question }}"},
    ]
    assert chat_messages("Not JSON: {{ q }}") is None
    assert chat_messages('["just", "strings"]') is None


def test_prompts_txt_splits_on_separator_lines() -> None:
    text = "First {{a}}\n---\nSecond\nline\n  ---  \n\n---\nThird"
    assert promptfoo._split_prompts(text) == ["First {{a}}", "Second\nline", "Third"]


def test_slug() -> None:
    assert slug("Support answers: RAG (v2)!") == "support-answers-rag-v2"
    assert slug("") == ""
    assert len(slug("word " * 40)) <= 48


# -- small configs ----------------------------------------------------------------------------


def write_config(tmp_path: Path, body: str, name: str = "promptfooconfig.yaml") -> Path:
    path = tmp_path / "pf" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body))
    return path


def suite_of(result: promptfoo.ImportResult, index: int = 0) -> dict:
    return yaml.safe_load(result.files[result.suite_files[index]])


def prompt_of(result: promptfoo.ImportResult, index: int = 0) -> dict:
    return yaml.safe_load(result.files[result.prompt_files[index]])


def test_vars_given_as_a_list_of_strings_make_one_case_each(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        """
        prompts: ["{{ a }} {{ b }}"]
        providers: [openai:gpt-4o-mini]
        tests:
          - vars: {a: [x, y], b: [1, 2], c: [{k: v}]}
        """,
    )
    cases = suite_of(import_config(config))["cases"]
    # as promptfoo: a list of strings expands, a list of anything else is one value
    assert [c["vars"] for c in cases] == [
        {"a": "x", "b": [1, 2], "c": [{"k": "v"}]},
        {"a": "y", "b": [1, 2], "c": [{"k": "v"}]},
    ]


def test_support_is_read_from_assertion_types_at_run_time(tmp_path, monkeypatch) -> None:
    config = write_config(
        tmp_path,
        """
        prompts: ["{{ q }}"]
        providers: [openai:gpt-4o-mini]
        tests:
          - vars: {q: hi}
            assert: [{type: regex, value: "^h"}, {type: contains, value: h}]
        """,
    )
    assert len(suite_of(import_config(config))["cases"][0]["assert"]) == 2
    reduced = tuple(t for t in suite_format.ASSERTION_TYPES if t != "regex")
    monkeypatch.setattr(suite_format, "ASSERTION_TYPES", reduced)
    result = import_config(config)
    assert suite_of(result)["cases"][0]["assert"] == [{"type": "contains", "value": "h"}]
    assert result.notices == [
        "tests[0].assert[0]: type 'regex' is not supported by llmops; skipped"
    ]


def test_providers_keep_their_own_configs_and_labels(tmp_path: Path) -> None:
    """promptfoo runs each provider with its own config: a suite's model entries do too
    (the prompt file holds no provider's params then), and labels name them."""
    config = write_config(
        tmp_path,
        """
        prompts: ["{{ q }}"]
        providers:
          - {id: openai:gpt-4o-mini, config: {temperature: 0, max_tokens: 100}}
          - {id: openai:gpt-4o-mini, config: {temperature: 1}}
          - {id: "anthropic:messages:claude-3-5-haiku-latest", label: Haiku}
          - "google:gemini-1.5-flash":
              config: {generationConfig: {temperature: 0, maxOutputTokens: 100}}
        tests: [{vars: {q: hi}}]
        """,
    )
    out = tmp_path / "project" / "evals" / "pf.yaml"
    result = import_config(config, out=out, prompts_dir=tmp_path / "project" / "prompts")
    assert "params" not in prompt_of(result)
    assert suite_of(result)["models"] == [
        {"id": "gpt-4o-mini", "params": {"temperature": 0, "max_tokens": 100},
         "label": "gpt-4o-mini (providers[0])"},
        {"id": "gpt-4o-mini", "params": {"temperature": 1},
         "label": "gpt-4o-mini (providers[1])"},
        {"id": "anthropic/claude-3-5-haiku-latest", "label": "Haiku"},
        {"id": "gemini/gemini-1.5-flash", "params": {"temperature": 0, "max_tokens": 100}},
    ]  # fmt: skip
    assert result.notices == []
    write_files(result)
    loaded = load_suite(out)  # the suite loader takes the entries
    assert [m.name for m in loaded.spec.model_entries() or []] == [
        "gpt-4o-mini (providers[0])", "gpt-4o-mini (providers[1])", "Haiku",
        "gemini/gemini-1.5-flash",
    ]  # fmt: skip


def test_the_same_config_for_every_provider_stays_in_the_prompt(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        """
        prompts: ["{{ q }}"]
        providers:
          - {id: openai:gpt-4o-mini, config: {temperature: 0}}
          - {id: "anthropic:claude-3-5-haiku-latest", config: {temperature: 0}}
        tests: [{vars: {q: hi}}]
        """,
    )
    result = import_config(config)
    assert prompt_of(result)["params"] == {"temperature": 0}
    assert suite_of(result)["models"] == ["gpt-4o-mini", "anthropic/claude-3-5-haiku-latest"]


def test_a_case_threshold_outside_0_1_and_a_bad_regex_are_reported(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        """
        prompts: ["{{ q }}"]
        providers: [openai:gpt-4o-mini]
        tests:
          - vars: {q: hi}
            threshold: 3
            assert: [{type: regex, value: "(unclosed"}, {type: contains-any, value: "a, b"}]
        """,
    )
    result = import_config(config)
    case = suite_of(result)["cases"][0]
    assert "threshold" not in case
    assert case["assert"] == [{"type": "contains-any", "value": ["a", "b"]}]
    assert result.notices[0].startswith("tests[0].assert[0]: regex '(unclosed': ")
    assert result.notices[1] == (
        "tests[0].threshold: threshold 3 is not a score from 0 to 1; not imported"
    )


# -- the fixtures, imported, loaded and dry-run ---------------------------------------------


def run_import(cli, tmp_path: Path, fixture: str, *args: str):
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    config = FIXTURES / fixture / "promptfooconfig.yaml"
    result = cli("eval", "import", "promptfoo", str(config), *args, cwd=project)
    assert result.code == 0, result.stdout + result.stderr
    return project, result


def dry_run(cli, project: Path) -> str:
    result = cli(
        "eval", "run", "evals", "--dry-run", cwd=project, env={"LLMOPS_HOME": str(project / ".h")}
    )
    assert result.code == 0, result.stdout + result.stderr
    return result.stdout


def test_inline_prompts_string_providers_inline_tests(cli, tmp_path: Path) -> None:
    project, result = run_import(cli, tmp_path, "inline", "--out", "evals/translate.yaml")
    assert result.stderr.splitlines() == [
        "note: prompts[1]: formal not given by every test: they default to '' (promptfoo "
        "renders a missing variable empty)"
    ]
    assert "Imported 3 cases, 7 assertions, 2 prompts, 2 models; 0 items not imported." in (
        result.stdout
    )
    # two prompts: two prompt files, one suite each, the same cases
    first = load_suite(project / "evals/translate-prompt-1.yaml")
    second = load_suite(project / "evals/translate-prompt-2.yaml")
    assert first.spec.prompt == "translate/prompt-1" and second.spec.prompt == "translate/prompt-2"
    assert first.spec.models == ["gpt-4o-mini", "anthropic/claude-3-5-haiku-20241022"]
    assert [c.id for c in first.cases] == [
        "greeting-in-french",
        "thanks-in-two-languages",
        "thanks-in-two-languages-2",
    ]
    french, german, dutch = first.cases
    assert french.vars == {"language": "French", "phrase": "Good morning"}
    assert [(a.type, a.value, a.weight, a.metric) for a in french.assert_] == [
        ("icontains", "bonjour", 1.0, None),
        ("not-contains", "Good morning", 1.0, None),
        ("regex", "^[A-Z]", 2.0, "style"),
    ]
    assert german.vars["language"] == "German" and dutch.vars["language"] == "Dutch"
    rubric, javascript = dutch.assert_
    assert (rubric.type, rubric.provider) == ("llm-rubric", "gpt-4o")
    assert rubric.value == 'Is a polite translation of "{{phrase}}" into {{language}}'
    assert (javascript.type, javascript.value) == ("javascript", "output.length < 80")
    assert dutch.threshold == 0.5 and dutch.metadata == {"topic": "courtesy"}
    registry = PromptRegistry(project / "prompts")
    prompt = registry.load("translate/prompt-2")
    assert prompt.model == "gpt-4o-mini"
    assert prompt.render(language="German", phrase="Hi")[0]["content"].startswith(
        "You are a careful translator.\nTranslate into German: Hi"
    )
    assert (project / "prompts/translate/prompt-1.yaml").stat().st_mode & 0o777 == 0o600
    text = (project / "evals/translate-prompt-1.yaml").read_text()
    assert text.startswith("# Imported from promptfoo config ")
    assert "  - {type: icontains, value: bonjour}\n" in text  # readable, not a dump
    out = dry_run(cli, project)
    assert "translate-prompt-1: candidate working on gpt-4o-mini" in out


def test_file_prompts_separators_chat_json_provider_objects_default_test(cli, tmp_path) -> None:
    project, result = run_import(cli, tmp_path, "files")
    assert "not imported" not in result.stderr and "label" not in result.stderr
    names = sorted(p.name for p in (project / "prompts/support-answers").iterdir())
    assert names == ["chat.yaml", "prompts-1.yaml", "prompts-2.yaml"]
    registry = PromptRegistry(project / "prompts")
    chat = registry.load("support-answers/chat")
    assert chat.params == {"temperature": 0.2, "max_tokens": 300}
    assert chat.render(product="Acme", question='Say "hi"') == [
        {"role": "system", "content": "You answer questions about Acme. Be brief."},
        {"role": "user", "content": 'Say "hi"'},
    ]
    second = registry.load("support-answers/prompts-2")
    assert second.render(question="Q?", product="Mesh")[0]["content"].startswith(
        "Answer the customer's question briefly. The product is Mesh."
    )
    suite = load_suite(project / "evals/support-answers-chat.yaml")
    assert suite.spec.judge == "gpt-4o-mini"
    assert suite.spec.models == [  # the same params: the prompt's; the label kept
        suite_format.ModelEntry(id="gpt-4o-mini", label="fast"),
        "gpt-4o",
    ]
    assert suite.spec.defaults.vars == {"product": "Acme Router"}
    assert [(a.type, a.value, a.threshold, a.metric) for a in suite.spec.defaults.assert_] == [
        ("not-icontains", "as an AI", None, "tone"),
        ("latency", None, 5000, None),
    ]
    reset, hours = suite.cases
    assert reset.threshold == 0.75  # defaultTest's threshold, where the test has none
    assert hours.threshold == 0.5
    assert [(a.type, a.value) for a in reset.assert_] == [
        ("icontains-any", ["reset", "restart"]),
        ("llm-rubric", "Gives steps in order"),
    ]
    assert [(a.type, a.value, a.threshold) for a in hours.assert_] == [
        ("contains", "{{ product }}", None),
        ("cost", None, 0.002),
    ]
    assert hours.vars == {"question": "When are you open?", "product": "Acme Cloud"}
    out = dry_run(cli, project)
    assert out.count("candidate working on fast, candidate working on gpt-4o\n") == 3


def test_csv_tests_with_promptfoo_columns(cli, tmp_path: Path) -> None:
    project, result = run_import(cli, tmp_path, "csv", "--out", "evals/capitals.yaml")
    assert result.stderr.splitlines() == [
        "not imported: tests.csv column __prefix: not supported by llmops; skipped",
    ]
    assert "4 cases, 7 assertions, 1 prompt, 1 model; 1 item not imported" in result.stdout
    suite = load_suite(project / "evals/capitals.yaml")
    assert suite.spec.prompt == "capitals"
    france, germany, japan, italy = suite.cases
    assert (france.id, france.description, france.vars) == (
        "capital-of-france",
        "Capital of France",
        {"country": "France"},
    )
    assert [(a.type, a.value, a.metric) for a in france.assert_] == [
        ("equals", "Paris", "geography"),
        ("not-contains", "Lyon", "geography"),
    ]
    assert germany.threshold == 0.5
    assert [(a.type, a.value) for a in germany.assert_] == [
        ("contains", "Berlin"),
        ("llm-rubric", "names Berlin as the capital"),
    ]
    assert [(a.type, a.value, a.threshold) for a in japan.assert_] == [
        ("icontains-any", ["tokyo"], None),
        ("similar", "Tokyo is the capital", 0.8),
    ]
    assert [(a.type, a.value, a.threshold) for a in italy.assert_] == [("levenshtein", "Rome", 2)]
    header = (project / "evals/capitals.yaml").read_text().splitlines()[:5]
    assert header[2] == "# Not imported (llmops cannot express these promptfoo items):"
    assert header[3] == "#   - tests.csv column __prefix: not supported by llmops; skipped"
    assert PromptRegistry(project / "prompts").load("capitals").params == {"temperature": 0}
    dry_run(cli, project)


def test_tests_from_a_glob_jsonl_and_inline_with_file_vars_and_assert_set(cli, tmp_path) -> None:
    project, result = run_import(cli, tmp_path, "mixed", "--out", "evals/policy.yaml")
    assert result.stderr.splitlines()[:1] == [
        "not imported: providers[0].config.apiKey: credentials are not imported: llmops "
        "(litellm) reads them from the environment",
    ]
    suite = load_suite(project / "evals/policy.yaml")
    assert suite.spec.models == [  # each provider with its own config, as promptfoo runs it
        suite_format.ModelEntry(id="gpt-4o-mini", params={"temperature": 0, "max_tokens": 200}),
        suite_format.ModelEntry(id="ollama_chat/llama3.2:3b", params={"temperature": 0.7}),
    ]
    ids = [c.id for c in suite.cases]
    # the glob's files in order, then the JSONL lines (a glob var: one case per file), then inline
    assert ids == [
        "shipping-time",
        "warranty-unknown",
        "express-shipping",
        "case-4",
        "case-5",
        "refund-policy-from-the-text-file",
    ]
    shipping = (FIXTURES / "mixed/docs/shipping.txt").read_text().strip()
    refunds = (FIXTURES / "mixed/docs/refunds.txt").read_text().strip()
    assert suite.cases[0].vars["policy"] == shipping
    assert [c.vars["policy"] for c in suite.cases[3:5]] == [refunds, shipping]
    refund = suite.cases[5]
    assert refund.vars == {
        "policy": refunds,
        "product": '{"name":"Acme Router","warranty_years":2}',  # YAML as promptfoo passes it
        "question": "Can I get a refund after 40 days?",
    }
    group, python, words = refund.assert_
    assert (group.type, group.threshold, group.metric) == ("assert-set", 0.5, "grounded")
    assert [(a.type, a.value) for a in group.assert_ or []] == [
        ("icontains", "30 days"),
        ("not-icontains", "60 days"),
        ("similar", "No, refunds are only possible within 30 days."),
    ]
    assert python.type == "python" and python.value.endswith("mixed/checks.py:short_enough")
    assert (project / "evals" / python.value.removeprefix("file://").split(":")[0]).is_file()
    assert (words.type, words.value) == ("word-count", {"min": 3, "max": 80})
    assert [(a.type, a.weight) for a in suite.cases[1].assert_] == [
        ("icontains", 1.0),
        ("is-refusal", 0.0),
    ]
    prompt = PromptRegistry(project / "prompts").load("policy")
    assert prompt.input_schema == {"type": "object", "properties": {"product": {"default": ""}}}
    dry_run(cli, project)


def test_unsupported_items_are_each_reported_and_the_rest_imported(cli, tmp_path) -> None:
    project, result = run_import(cli, tmp_path, "unsupported")
    lines = result.stderr.splitlines()
    expected = [
        (
            "not imported: outputPath: not imported (llmops writes reports with "
            "--junit/--markdown/--json)"
        ),
        (
            "not imported: scenarios: not imported (llmops has no scenarios: write each "
            "combination of vars as a case)"
        ),
        (
            "not imported: prompts[1]: a prompt function (make_prompt.py:build) cannot be "
            "imported; skipped"
        ),
        (
            "not imported: providers[0]: 'exec:python run_model.py' runs a command, which llmops "
            "cannot do; skipped"
        ),
        (
            "not imported: providers[1]: 'https://example.com/v1/generate' calls an HTTP "
            "endpoint, which llmops cannot do; skipped"
        ),
        (
            "not imported: providers[2]: 'file://custom_provider.js' is a custom provider file, "
            "which llmops cannot call; skipped"
        ),
        "not imported: providers[3]: 'echo' echoes the prompt, which llmops cannot do; skipped",
        "not imported: providers[4].transform: not imported (llmops has no equivalent)",
        (
            "not imported: tests[1].options.transform: promptfoo's transforms are JavaScript "
            "and llmops' are Python: rewrite it as a `transform` (or `options: {transform}`) in "
            "the suite"
        ),
        (  # it would check the raw text, not the transform's output
            "not imported: tests[1].assert[0]: checks the output of a transform that is not "
            "imported (see above); skipped"
        ),
        "not imported: tests[0].assert[0]: type 'classifier' is not supported by llmops; skipped",
        (
            "not imported: tests[0].assert[1]: promptfoo's transforms are JavaScript and "
            "llmops' are Python: rewrite it as a `transform` (or `options: {transform}`) in the "
            "suite; skipped"
        ),
        "not imported: tests[0].assert[3]: type 'moderation' is not supported by llmops; skipped",
        (
            "not imported: tests[0].assert[4]: the value uses the filter 'shout', which llmops' "
            "sandbox does not have (Nunjucks' own and promptfoo's custom filters do not run in "
            "llmops); skipped"
        ),
        (
            "not imported: tests[0].provider: a per-test provider is not supported; the suite's "
            "models run it"
        ),
        "not imported: evaluateOptions.delay: not imported (llmops has no equivalent)",
    ]
    for line in expected:
        assert line in lines
    for key in ("sharing", "derivedMetrics", "nunjucksFilters", "rubricPrompt", "apiBaseUrl"):
        assert any(key in line for line in lines), key
    assert "1 prompt, 1 model; 22 items not imported" in result.stdout
    suite = load_suite(project / "evals/things-llmops-cannot-express.yaml")
    assert (suite.spec.concurrency, suite.spec.repeat) == (4, 2)
    assert [c.vars for c in suite.cases] == [
        {"topic": "weather", "items": "sun"},
        {"topic": "weather", "items": "rain"},
        {"topic": "snow"},
    ]
    assert suite.cases[2].assert_ == []
    assert [(a.type, a.value) for a in suite.cases[0].assert_] == [
        ("python", "len(output) < 200"),  # inline Python, as promptfoo runs it
        ("not-icontains", "knock knock"),
    ]
    prompt = PromptRegistry(project / "prompts").load("things-llmops-cannot-express")
    assert prompt.model == "gpt-4o-mini" and prompt.params == {"temperature": 0.3}
    assert prompt.spec.template == (
        'Tell a {{ tone | default("light") }} joke about {{ topic }}.\n'
        "{% if (items | length) > 1 %}Mention: {{ items | tojson }}{% endif %}\n"
        '{% if topic == "weather" %}Keep it short.{% elif topic != "rain" %}Any length.'
        "{% endif %}"
    )
    assert prompt.render(topic="weather", items=["a", "b"])[0]["content"].startswith(
        # llmops trims the line break after a block tag (Jinja's trim_blocks); Nunjucks not
        'Tell a light joke about weather.\nMention: ["a", "b"]Keep it short.'
    )
    dry_run(cli, project)


def test_an_outside_config_written_from_the_docs(cli, tmp_path: Path) -> None:
    """A config in another style (``targets:``, a JSON chat file, a glob of JSON tests,
    a markdown var file), written with promptfoo's docs and not tuned for the importer."""
    project, result = run_import(cli, tmp_path, "outside")
    assert result.stderr.splitlines() == []
    registry = PromptRegistry(project / "prompts")
    chat = registry.load("customer-bot-rag-answers/system-and-user")
    concise = registry.load("customer-bot-rag-answers/concise")
    assert chat.model == "gpt-4.1-mini" and chat.params == {"temperature": 0.5, "max_tokens": 1024}
    assert chat.render(context="C", query="Q") == [
        {
            "role": "system",
            "content": "You are a helpful customer support bot. Use this context:\nC",
        },
        {"role": "user", "content": "Q"},
    ]
    assert concise.render(query="Hi")[0]["content"] == "Reply concisely to: Hi"
    suite = load_suite(project / "evals/customer-bot-rag-answers-concise.yaml")
    assert suite.spec.judge == "anthropic/claude-sonnet-4-20250514"
    assert suite.spec.models == ["gpt-4.1-mini", "anthropic/claude-sonnet-4-20250514"]
    assert [(a.type, a.value, a.threshold) for a in suite.spec.defaults.assert_] == [
        ("latency", None, 3000),
        ("javascript", "output.length > 10", None),
    ]
    returns, injection, shipping = suite.cases
    assert returns.vars["context"] == (
        "# Returns\n\nItems can be returned within 30 days for a full refund."
    )
    assert [a.type for a in returns.assert_] == ["contains-all", "llm-rubric", "answer-relevance"]
    assert [a.type for a in injection.assert_] == ["is-refusal", "not-contains"]
    assert shipping.id == "shipping-question" and shipping.metadata == {"area": "shipping"}
    dry_run(cli, project)


# -- real configs' shapes (promptfoo's own examples) ---------------------------------------


def test_yaml_reads_as_javascript_reads_it(tmp_path: Path) -> None:
    """promptfoo's YAML is YAML 1.2 (js-yaml): `Yes`, `no`, `on` are words and `1:30` is
    text, not the booleans and number of PyYAML's YAML 1.1; the suite keeps them so."""
    config = write_config(
        tmp_path,
        """
        prompts: ["Rephrase: {{ body }} at {{ time }}"]
        providers: [openai:gpt-4o-mini]
        tests:
          - vars: {body: Yes, time: 1:30, n: 010, ok: true}
            assert: [{type: equals, value: No}, {type: contains, value: on}]
        """,
    )
    result = import_config(config)
    (case,) = suite_of(result)["cases"]
    assert case["vars"] == {"body": "Yes", "time": "1:30", "n": 10, "ok": True}
    assert case["assert"] == [
        {"type": "equals", "value": "No"},
        {"type": "contains", "value": "on"},
    ]


def test_a_filter_llmops_lacks_is_reported_not_a_crash(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        """
        prompts:
          - "Tone: {{ (style | load).tone }} {{ q }}"
          - "{{ q | allcaps }}"
        providers: [openai:gpt-4o-mini]
        tests: [{vars: {q: hi, style: '{"tone": "formal"}'}}]
        """,
    )
    result = import_config(config)
    assert result.notices == [
        "prompts[0]: the prompt uses promptfoo's `load` filter (JSON.parse), which llmops "
        "lacks: give the variable as a mapping in the cases and drop `| load`; written as is: "
        "fix it before running",
        "prompts[1]: the prompt uses the filter 'allcaps', which llmops' sandbox does not have "
        "(Nunjucks' own and promptfoo's custom filters do not run in llmops); written as is: "
        "fix it before running",
    ]


def test_chat_content_in_parts_and_anthropics_messages_file(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        """
        prompts: [file://prompt.yaml]
        providers: [anthropic:messages:claude-sonnet-4-20250514]
        tests: [{vars: {riddle: "What has keys?"}}]
        """,
    )
    (config.parent / "prompt.yaml").write_text(
        textwrap.dedent(
            """
            messages:
              - role: system
                content:
                  - {type: text, text: Be concise, cache_control: {type: ephemeral}}
              - role: user
                content:
                  - {type: text, text: "Answer this riddle:"}
                  - {type: text, text: "{{riddle}}"}
            """
        )
    )
    result = import_config(config)
    assert prompt_of(result)["messages"] == [
        {"role": "system", "content": "Be concise"},
        {"role": "user", "content": "Answer this riddle:\n\n{{riddle}}"},
    ]
    assert prompt_of(result)["model"] == "anthropic/claude-sonnet-4-20250514"
    assert result.notes == [
        "prompts[0] (prompt.yaml) message 1: cache_control is not imported (litellm's prompt "
        "caching settings go in the prompt's params)"
    ]
    header = result.files[result.suite_files[0]]
    assert "# Notes (imported, but check these):\n#   - prompts[0] (prompt.yaml)" in header


def test_a_config_whose_every_prompt_is_skipped_says_why(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        """
        prompts: [file://prompt.json]
        providers: [openai:gpt-4o-mini]
        """,
    )
    (config.parent / "prompt.json").write_text(
        '[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]'
    )
    with pytest.raises(ConfigFileError, match="no prompt could be imported: prompts"):
        import_config(config)


def test_a_rubric_without_its_text_and_a_split_grading_provider(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        """
        prompts: ["{{ q }}"]
        providers: [openai:gpt-4o-mini]
        defaultTest:
          options:
            provider:
              text: openai:gpt-4o
              embedding: openai:embedding:text-embedding-3-large
            rubricPrompt: Grade it
        tests:
          - vars: {q: hi}
            assert: [{type: llm-rubric}, {type: similar, value: hello}]
        """,
    )
    result = import_config(config)
    suite = suite_of(result)
    assert (suite["judge"], suite["embedder"]) == ("gpt-4o", "text-embedding-3-large")
    assert suite["cases"][0]["assert"] == [{"type": "similar", "value": "hello"}]
    assert (
        "tests[0].assert[0]: llm-rubric: value must be the rubric (what the judge checks the "
        "output for); skipped"
    ) in result.notices


def test_openais_legacy_functions_become_tools(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        """
        prompts: ["Weather in {{ city }}?"]
        providers:
          - id: openai:gpt-4o-mini
            config:
              functions: [{name: get_weather, parameters: {type: object}}]
              function_call: {name: get_weather}
        tests: [{vars: {city: Paris}, assert: [{type: is-valid-openai-function-call}]}]
        """,
    )
    result = import_config(config)
    assert prompt_of(result)["params"] == {
        "tools": [{"type": "function", "function": {"name": "get_weather",
                                                    "parameters": {"type": "object"}}}],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    }  # fmt: skip
    assert result.notices == []
    assert "providers[0].config.functions: written as `tools` (OpenAI's newer form)" in (
        result.notes
    )


def test_default_assertions_skip_a_test_whose_transform_is_not_imported(tmp_path: Path) -> None:
    """defaultTest's assertions stayed in `defaults.assert`, so they checked the raw text of
    a test whose own transform (which promptfoo runs before them) was left out, silently."""
    config = write_config(
        tmp_path,
        """
        prompts: ["{{ q }}"]
        providers: [openai:gpt-4o-mini]
        defaultTest:
          assert: [{type: is-json}]
        tests:
          - description: shaped
            vars: {q: a}
            options: {transform: "JSON.stringify({answer: output})"}
            assert: [{type: contains, value: answer}]
          - description: plain
            vars: {q: b}
            assert: [{type: contains, value: b}]
        """,
    )
    result = import_config(config)
    suite = suite_of(result)
    assert "assert" not in suite.get("defaults", {})
    shaped, plain = suite["cases"]
    assert "assert" not in shaped
    assert plain["assert"] == [{"type": "is-json"}, {"type": "contains", "value": "b"}]
    assert (
        "tests[0] (defaultTest.assert)[0]: checks the output of a transform that is not "
        "imported (see above); skipped"
    ) in result.notices
    assert not any("__no_default" in json.dumps(case) for case in suite["cases"])


def test_default_assertions_stay_defaults_when_no_test_has_a_transform(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        """
        prompts: ["{{ q }}"]
        providers: [openai:gpt-4o-mini]
        defaultTest: {assert: [{type: is-json}]}
        tests: [{vars: {q: a}}, {vars: {q: b}}]
        """,
    )
    suite = suite_of(import_config(config))
    assert suite["defaults"]["assert"] == [{"type": "is-json"}]
