"""Suite files: validated against the JSON Schema, errors name the file, line and case."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from llmops.errors import ConfigFileError
from llmops.evals.runner import plan
from llmops.evals.suite import load_suite, suite_json_schema
from tests.conftest import PromptRepo, prompt_yaml


def write(tmp_path: Path, text: str, name: str = "suite.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_inline_and_file_cases(tmp_path: Path) -> None:
    (tmp_path / "more.jsonl").write_text(
        json.dumps(
            {"id": "j1", "vars": {"name": "Jo"}, "assert": [{"type": "contains", "value": "Jo"}]}
        )
        + "\n\n"
        + json.dumps({"vars": {"name": "Al"}})
        + "\n"
    )
    path = write(
        tmp_path,
        """\
        prompt: greet
        defaults:
          vars: {lang: en}
          assert: [{type: cost, value: 0.01}]
        cases:
          - id: ann
            vars: {name: Ann}
            assert: [{type: icontains, value: ann}]
          - vars: {name: Bo, lang: fr}
        cases_file: more.jsonl
        """,
    )
    suite = load_suite(path)
    assert [c.id for c in suite.cases] == ["ann", "case-2", "j1", "case-4"]
    assert suite.case_vars(suite.cases[1]) == {"lang": "fr", "name": "Bo"}
    assert [a.type for a in suite.case_assertions(suite.cases[0])] == ["cost", "icontains"]
    assert suite.case_lines["ann"] == 6 and suite.case_lines["j1"] == 1


def test_csv_cases(tmp_path: Path) -> None:
    (tmp_path / "cases.csv").write_text(
        "id,name,__expected\nc1,Ann,contains: Ann\nc2,Bo,Hello Bo!\n"
    )
    suite = load_suite(write(tmp_path, "prompt: greet\ncases_file: cases.csv\n"))
    assert [c.vars for c in suite.cases] == [{"name": "Ann"}, {"name": "Bo"}]
    assert suite.cases[0].assert_[0].type == "contains"
    assert (suite.cases[1].assert_[0].type, suite.cases[1].assert_[0].value) == (
        "equals",
        "Hello Bo!",
    )


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            "prompt: p\ncases:\n  - id: c1\n    assert:\n"
            "      - type: containz\n        value: x\n",
            5,
            "case c1.assert[0].type: unknown assertion type 'containz'",
        ),
        ("prompt: p\ncases:\n  - id: c1\n    varz: {}\n", 3, "case c1: unknown field ('varz'"),
        ("prompt: p\ncases: []\nrepeat: 0\n", 3, "repeat"),
        (
            "cases:\n  - vars: {}\n",
            1,
            "'prompts' or 'target'",
        ),
        ("prompt: p\n", 1, "needs 'cases' or 'cases_file'"),
        ("prompt: p\nthreshold: 2\ncases: [{}]\n", 2, "threshold"),
        ("prompt: p\ncases: [{}, {id: case-1}]\n", 2, "used twice"),
        ("prompt: p\ncases_file: x.txt\n", None, "must be .jsonl or .csv"),
    ],
)
def test_bad_suites(tmp_path: Path, text: str, line: int | None, message: str) -> None:
    (tmp_path / "x.txt").write_text("")
    path = write(tmp_path, text)
    with pytest.raises(ConfigFileError) as info:
        load_suite(path)
    assert message in str(info.value)
    assert info.value.file.endswith("suite.yaml") or info.value.file.endswith("x.txt")
    if line is not None:
        assert info.value.line == line


def test_bad_jsonl_case_names_its_line(tmp_path: Path) -> None:
    (tmp_path / "c.jsonl").write_text('{"vars": {}}\n{"assert": [{"type": "nope"}]}\n')
    with pytest.raises(ConfigFileError, match=r"unknown assertion type|does not match") as info:
        load_suite(write(tmp_path, "prompt: p\ncases_file: c.jsonl\n"))
    assert info.value.file.endswith("c.jsonl") and info.value.line == 2


def test_missing_prompt_and_bad_reference_are_reported(repo: PromptRepo) -> None:
    repo.write("greet.yaml", prompt_yaml())
    repo.commit("greet")
    missing = write(repo.root, "prompt: nope\ncases: [{vars: {name: A}}]\n")
    with pytest.raises(ConfigFileError, match="no prompt 'nope'") as info:
        plan(load_suite(missing), repo.registry)
    assert info.value.file.endswith("suite.yaml")
    bad_ref = write(
        repo.root, "prompt: greet\nversions: [working, prod]\ncases: [{vars: {name: A}}]\n"
    )
    with pytest.raises(ConfigFileError, match="version 'prod'"):
        plan(load_suite(bad_ref), repo.registry)


def test_case_that_cannot_render_names_the_case(repo: PromptRepo) -> None:
    repo.write("greet.yaml", prompt_yaml())
    path = write(
        repo.root, "prompt: greet\ncases:\n  - id: ok\n    vars: {name: A}\n  - id: empty\n"
    )
    with pytest.raises(
        ConfigFileError, match=r"case empty.*missing required variable 'name'"
    ) as info:
        plan(load_suite(path), repo.registry)
    assert info.value.line == 5


def test_default_versions_are_working_tree_and_production(repo: PromptRepo) -> None:
    repo.write("greet.yaml", prompt_yaml("Hello"))
    repo.commit("v1")
    old = repo.registry.load("greet").version
    repo.registry.promote("greet", old, "production")
    repo.write("greet.yaml", prompt_yaml("Howdy"))
    suite = load_suite(write(repo.root, "prompt: greet\ncases: [{vars: {name: A}}]\nrepeat: 3\n"))
    made = plan(suite, repo.registry)
    assert [(t.role, t.ref, t.model) for t in made.targets] == [
        ("candidate", "working", "gpt-4o-mini"),
        ("baseline", "production", "gpt-4o-mini"),
    ]
    assert made.targets[1].prompt.version == old
    assert len(made.jobs) == 2 * 1 * 3
    overridden = plan(
        suite, repo.registry, version="production", baseline="none", models=["o3-mini"]
    )
    assert [(t.role, t.ref, t.model) for t in overridden.targets] == [
        ("candidate", "production", "o3-mini")
    ]


def test_schema_is_json_schema() -> None:
    schema = suite_json_schema()
    assert schema["additionalProperties"] is False
    # one prompt (with versions), several prompts, or an app target
    assert schema["anyOf"] == [
        {"required": ["prompt"]},
        {"required": ["prompts"]},
        {"required": ["target"]},
    ]


PROMPTFOO_CSV = "\n".join(
    [
        "question,__expected,__expected2,__expected3,__metric,__threshold,__description,"
        "__metadata:topic,__metadata:tags[],__config:__expected2:threshold",
        'Capital of France?,contains: Paris,not-icontains: sorry,"contains-any: Paris, '
        '""Paris, France""",geo,0.5,capital,geography,"easy, europe",',
        "Spell it,levenshtein(2): Paris,word-count: 1,,,,,,,",
        "Your answer,Answer: 42,,,,,,,,",
        "Be kind,grade: answers politely,python: checks.py:polite,,,,,,,0.8",
        "JSON please,contains-json,is-xml: root.item,not-is-refusal,,,,,,",
        "",
    ]
)


def test_a_csv_metadata_list_keeps_its_escaped_commas(tmp_path: Path) -> None:
    """promptfoo splits a `__metadata:KEY[]` cell at commas, but not at `\\,`."""
    (tmp_path / "cases.csv").write_text(
        "question,__metadata:tags[]\n"
        'Why?,"physics,advanced\\,theory, quantum"\n'
        'How?,"global\\,warming"\n'
    )
    suite = load_suite(write(tmp_path, "prompt: greet\ncases_file: cases.csv\n"))
    assert [c.metadata["tags"] for c in suite.cases] == [
        ["physics", "advanced,theory", "quantum"],
        ["global,warming"],
    ]


def test_promptfoo_csv_columns_and_assertion_cells(tmp_path: Path) -> None:
    """promptfoo's CSV semantics: `type: value` cells with not- and (threshold), lists with
    quoted commas, grade:/python:, several __expected columns, __metric, __threshold,
    __description, __metadata and __config; any other text is the expected output."""
    (tmp_path / "checks.py").write_text("def polite(output, context):\n    return True\n")
    (tmp_path / "cases.csv").write_text(PROMPTFOO_CSV)
    suite = load_suite(write(tmp_path, "prompt: greet\ncases_file: cases.csv\n"))
    first, second, third, fourth, fifth = suite.cases
    assert first.vars == {"question": "Capital of France?"}
    assert [(a.type, a.value, a.metric) for a in first.assert_] == [
        ("contains", "Paris", "geo"),
        ("not-icontains", "sorry", "geo"),
        ("contains-any", ["Paris", "Paris, France"], "geo"),
    ]
    assert (first.threshold, first.description) == (0.5, "capital")
    assert first.metadata == {"topic": "geography", "tags": ["easy", "europe"]}
    assert [(a.type, a.value, a.threshold) for a in second.assert_] == [
        ("levenshtein", "Paris", 2.0),
        ("word-count", 1, None),
    ]
    assert [(a.type, a.value) for a in third.assert_] == [("equals", "Answer: 42")]
    assert [(a.type, a.value, a.threshold) for a in fourth.assert_] == [
        ("llm-rubric", "answers politely", None),
        ("python", "checks.py:polite", 0.8),  # __config:__expected2:threshold
    ]
    assert [(a.type, a.value) for a in fifth.assert_] == [
        ("contains-json", None),
        ("is-xml", "root.item"),
        ("not-is-refusal", None),
    ]


@pytest.mark.parametrize(
    ("header", "cell", "message"),
    [
        ("__expected", "classifier(0.8): hello world", "'classifier' assertion"),
        ("__expected", "not-moderation: hello", "'moderation' assertion"),
        ("__expected2", "pi: Paris is in France", "'pi' assertion"),
        ("__expected", "similar: ", "similar: value must be the expected text"),
        ("__prefix", "You are terse.", "'__prefix': a promptfoo column llmops does not support"),
        ("__providerOutput", "cached", "'__providerOutput'"),
        ("_expected", "contains: x", "did you mean '__expected'"),
        ("__threshold", "high", "'__threshold': 'high' is not a number"),
        ("__config:__expected:weight", "2", "expected __config:__expectedN:threshold"),
        ("__expected", "word-count: many", "word-count: value must be a whole number"),
    ],
)
def test_promptfoo_csv_cells_llmops_cannot_honour_are_errors(
    tmp_path: Path, header: str, cell: str, message: str
) -> None:
    """Once read as `equals` on the cell's text (a case that could never pass) or as a
    variable; now the file and line, and what to do."""
    (tmp_path / "cases.csv").write_text(f'name,{header}\nAnn,"{cell}"\n')
    with pytest.raises(ConfigFileError, match=re.escape(message)) as caught:
        load_suite(write(tmp_path, "prompt: greet\ncases_file: cases.csv\n"))
    assert caught.value.file is not None and caught.value.file.endswith("cases.csv")
    assert caught.value.line == 2


def test_promptfoo_csv_model_graded_cells(tmp_path: Path) -> None:
    """promptfoo's model-graded assertions read from CSV cells, thresholds included."""
    (tmp_path / "cases.csv").write_text(
        "name,__expected,__expected2,__expected3,__expected4\n"
        "Ann,similar(0.8): hello world,not-similar:dot: bye,factuality: Paris is in France,"
        "g-eval: The answer is polite\n"
    )
    suite = load_suite(write(tmp_path, "prompt: greet\ncases_file: cases.csv\n"))
    assert [(a.type, a.value, a.threshold) for a in suite.cases[0].assert_] == [
        ("similar", "hello world", 0.8),
        ("not-similar:dot", "bye", None),
        ("factuality", "Paris is in France", None),
        ("g-eval", "The answer is polite", None),
    ]


def test_promptfoo_csv_javascript_cells(tmp_path: Path) -> None:
    """`fn:`, `eval:`, `javascript:` and `file://x.js` cells are javascript assertions."""
    (tmp_path / "checks.js").write_text("module.exports = (output) => output.length > 0;\n")
    (tmp_path / "cases.csv").write_text(
        "name,__expected,__expected2,__expected3,__expected4\n"
        "Ann,fn: output.length < 10,eval: output === 'x',"
        "\"javascript: output.startsWith('A')\",file://checks.js\n"
    )
    suite = load_suite(write(tmp_path, "prompt: greet\ncases_file: cases.csv\n"))
    assert [(a.type, a.value) for a in suite.cases[0].assert_] == [
        ("javascript", "output.length < 10"),
        ("javascript", "output === 'x'"),
        ("javascript", "output.startsWith('A')"),
        ("javascript", "file://checks.js"),
    ]
    (tmp_path / "cases.csv").write_text("name,__expected\nAnn,file://missing.js\n")
    with pytest.raises(ConfigFileError, match="javascript: no file"):
        load_suite(write(tmp_path, "prompt: greet\ncases_file: cases.csv\n"))
