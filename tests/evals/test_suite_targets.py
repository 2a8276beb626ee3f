"""What a suite runs: several prompts (``prompts:``) and model entries with their own
parameters and labels; their errors name the file and line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from llmops.errors import ConfigFileError
from llmops.evals.cache import cache_key
from llmops.evals.runner import plan
from llmops.evals.suite import load_suite
from tests.conftest import PromptRepo, prompt_yaml


def write(root: Path, text: str) -> Path:
    path = root / "suite.yaml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def two_prompts(repo: PromptRepo) -> PromptRepo:
    """``greet`` (Hello, production) and ``welcome`` (Welcome; its working tree says Hi)."""
    repo.write("greet.yaml", prompt_yaml("Hello"))
    repo.write("welcome.yaml", prompt_yaml("Welcome", model="gpt-4o"))
    repo.commit("v1")
    repo.registry.promote("greet", "HEAD", "production")
    repo.registry.promote("welcome", "HEAD", "production")
    repo.write("welcome.yaml", prompt_yaml("Hi", model="gpt-4o"))
    return repo


def test_several_prompts_render_the_same_case(two_prompts: PromptRepo) -> None:
    suite = load_suite(
        write(
            two_prompts.root,
            "prompts: [greet, welcome@production, welcome]\nmodels: [gpt-4o-mini]\n"
            "cases: [{id: a, vars: {name: Ann}}]\n",
        )
    )
    made = plan(suite, two_prompts.registry)
    assert [(t.role, t.prompt.name, t.ref) for t in made.targets] == [
        ("candidate", "greet", "working"),
        ("baseline", "welcome", "production"),
        ("other", "welcome", "working"),
    ]
    texts = [made.messages[(t.prompt.version, "a")][0]["content"] for t in made.targets]
    assert texts == ["Hello, Ann!", "Welcome, Ann!", "Hi, Ann!"]
    assert suite.spec.prompt_title == "greet, welcome@production, welcome"
    # no automatic production baseline with an explicit list
    two = load_suite(write(two_prompts.root, "prompts: [welcome]\ncases: [{vars: {name: A}}]\n"))
    assert [t.ref for t in plan(two, two_prompts.registry).targets] == ["working"]


def test_version_and_baseline_options_change_the_first_two_references(
    two_prompts: PromptRepo,
) -> None:
    suite = load_suite(
        write(
            two_prompts.root,
            "prompts: [greet, welcome, greet@production]\ncases: [{vars: {name: A}}]\n",
        )
    )
    targets = plan(suite, two_prompts.registry, version="production", baseline="production").targets
    # the prompt names stay; greet@production, now the candidate, is not run twice
    assert [(t.role, t.prompt.name, t.ref) for t in targets] == [
        ("candidate", "greet", "production"),
        ("baseline", "welcome", "production"),
    ]
    alone = plan(suite, two_prompts.registry, baseline="none").targets
    assert [(t.role, t.prompt.name, t.ref) for t in alone] == [
        ("candidate", "greet", "working"),
        ("other", "greet", "production"),  # no comparison: the third is not the baseline
    ]


def test_model_entries_carry_params_and_labels(two_prompts: PromptRepo) -> None:
    suite = load_suite(
        write(
            two_prompts.root,
            """\
            prompt: greet
            versions: [working]
            models:
              - gpt-4o-mini
              - {id: gpt-4o, params: {temperature: 0, max_tokens: 200}, label: gpt-4o-t0}
              - {id: gpt-4o, params: {temperature: 1}, label: gpt-4o-t1}
            cases: [{vars: {name: A}}]
            """,
        )
    )
    targets = plan(suite, two_prompts.registry).targets
    assert [(t.model, t.model_label, t.params) for t in targets] == [
        ("gpt-4o-mini", "gpt-4o-mini", {}),
        ("gpt-4o", "gpt-4o-t0", {"temperature": 0, "max_tokens": 200}),
        ("gpt-4o", "gpt-4o-t1", {"temperature": 1}),
    ]
    # the prompt's params (temperature 0.1), overridden per entry
    assert [t.call_params for t in targets] == [
        {"temperature": 0.1},
        {"temperature": 0, "max_tokens": 200},
        {"temperature": 1},
    ]
    # the same model with other params is another cache entry
    messages = [{"role": "user", "content": "Hello, A!"}]
    keys = {cache_key(t.model, messages, t.call_params, 0, "live") for t in targets}
    assert len(keys) == 3
    # --model replaces the entries with plain models
    plain = plan(suite, two_prompts.registry, models=["o3-mini"]).targets
    assert [(t.model, t.model_label, t.params) for t in plain] == [("o3-mini", "o3-mini", {})]


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            "prompts: [greet, greet@prod]\nversions: [working]\ncases: [{}]\n",
            2,
            "versions: give references in prompts ('name@ref') instead, not both",
        ),
        ("prompt: greet\nprompts: [greet]\ncases: [{}]\n", 1, "'prompts' or 'target', only one"),
        ("prompts: []\ncases: [{}]\n", 1, "prompts: [] should be non-empty"),
        ("prompts: [greet, '@production']\ncases: [{}]\n", 1, "prompts[1]: '@production' is not"),
        ("prompts: [greet, a@b@c]\ncases: [{}]\n", 1, "prompts[1]: 'a@b@c' is not"),
        (
            "prompts:\n  - greet\n  - welcome\n  - greet@working\ncases: [{}]\n",
            4,
            "prompts[2]: 'greet@working' is listed twice (entries 1 and 3)",
        ),
        (
            "prompt: greet\nmodels:\n  - gpt-4o\n  - {id: gpt-4o, params: {temperature: 0}}\n"
            "cases: [{}]\n",
            4,
            "models[1]: 'gpt-4o' is listed twice (entries 1 and 2): give each a label",
        ),
        (
            "prompt: greet\nmodels:\n  - {id: a, label: x}\n  - {id: b, label: x}\ncases: [{}]\n",
            4,
            "models[1]: 'x' is listed twice (entries 1 and 2)",
        ),
        (
            "prompt: greet\nmodels:\n  - id: gpt-4o\n    params:\n      temperature: 0\n"
            "      stream: true\ncases: [{}]\n",
            6,
            "models[0].params.stream: set by the eval runner",
        ),
        (
            "prompt: greet\nmodels:\n  - {id: gpt-4o, temprature: 0}\ncases: [{}]\n",
            3,
            "models[0]: unknown field ('temprature' was unexpected)",
        ),
        ("prompt: greet\nmodels:\n  - {params: {}}\ncases: [{}]\n", 3, "'id' is a required"),
        ("prompt: greet\nmodels: [7]\ncases: [{}]\n", 2, "models[0]: 7 is not of type 'string'"),
        (
            "prompt: greet\nmodels:\n  - {id: a, params: [temperature]}\ncases: [{}]\n",
            3,
            "models[0].params: ['temperature'] is not of type 'object'",
        ),
        (
            f"prompt: greet\nmodels:\n  - {{id: a, label: {'x' * 201}}}\ncases: [{{}}]\n",
            3,
            "is too long",
        ),
    ],
)
def test_bad_prompts_and_models(tmp_path: Path, text: str, line: int, message: str) -> None:
    with pytest.raises(ConfigFileError) as info:
        load_suite(write(tmp_path, text))
    assert message in str(info.value)
    assert info.value.file.endswith("suite.yaml") and info.value.line == line


def test_an_unknown_prompt_in_the_list_names_it(two_prompts: PromptRepo) -> None:
    suite = load_suite(
        write(two_prompts.root, "prompts: [greet, welcome@nope]\ncases: [{vars: {name: A}}]\n")
    )
    with pytest.raises(ConfigFileError, match="prompt 'welcome@nope'") as info:
        plan(suite, two_prompts.registry)
    assert info.value.file.endswith("suite.yaml")
