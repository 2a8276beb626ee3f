"""Strict rendering: schema-checked variables, strict undefined, and the sandbox."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from llmops.errors import (
    MissingVariableError,
    PromptFileError,
    RenderError,
    SandboxViolationError,
    TemplateLimitError,
    VariableValidationError,
)
from tests.conftest import PromptRepo, prompt_yaml


def test_render_messages(repo: PromptRepo) -> None:
    repo.write(
        "support/answer.yaml",
        """\
        model: gpt-4o-mini
        messages:
          - role: system
            content: You help with {{ product }}.
          - role: user
            content: "{{ question }}"
        """,
    )
    prompt = repo.registry.load("support/answer")
    assert prompt.name == "support/answer"
    assert prompt.variables == ["product", "question"]
    assert prompt.render(product="Mesh", question="Why?") == [
        {"role": "system", "content": "You help with Mesh."},
        {"role": "user", "content": "Why?"},
    ]
    # a mapping works too, and keywords override it
    assert prompt.render({"product": "A", "question": "B"}, question="C")[1]["content"] == "C"


def test_template_shorthand_is_one_user_message_with_loops(repo: PromptRepo) -> None:
    repo.write(
        "sum.yaml",
        "template: |\n  {% for m in items %}- {{ m.text }}\n  {% endfor %}\n",
    )
    messages = repo.registry.load("sum").render(items=[{"text": "a"}, {"text": "b"}])
    assert messages == [{"role": "user", "content": "- a\n- b\n"}]


def test_missing_variable_names_prompt_and_variable(repo: PromptRepo) -> None:
    repo.write("p.yaml", "template: Hello {{ name }} from {{ place }}\n")
    with pytest.raises(MissingVariableError) as info:
        repo.registry.load("p").render(name="Ann")
    assert info.value.prompt == "p"
    assert info.value.variable == "place"
    assert "prompt 'p'" in str(info.value) and "'place'" in str(info.value)


def test_required_variable_from_schema(repo: PromptRepo) -> None:
    repo.write("greet.yaml", prompt_yaml())
    with pytest.raises(MissingVariableError) as info:
        repo.registry.load("greet").render()
    assert info.value.variable == "name"
    assert "missing required variable 'name'" in str(info.value)


def test_variable_failing_the_schema_is_named(repo: PromptRepo) -> None:
    repo.write("greet.yaml", prompt_yaml())
    with pytest.raises(VariableValidationError) as info:
        repo.registry.load("greet").render(name=42)
    assert info.value.variable == "name"
    assert "variable 'name' fails input_schema" in str(info.value)
    assert "not of type 'string'" in str(info.value)


def test_schema_defaults_fill_missing_variables(repo: PromptRepo) -> None:
    repo.write(
        "d.yaml",
        "input_schema:\n  type: object\n  properties:\n    tone: {type: string, default: kind}\n"
        "template: Be {{ tone }}.\n",
    )
    prompt = repo.registry.load("d")
    assert prompt.render()[0]["content"] == "Be kind."
    assert prompt.render(tone="brief")[0]["content"] == "Be brief."


def test_additional_properties_false_rejects_unknown_variables(repo: PromptRepo) -> None:
    repo.write(
        "s.yaml",
        "input_schema:\n  type: object\n  additionalProperties: false\n"
        "  properties:\n    a: {type: string}\ntemplate: '{{ a }}'\n",
    )
    with pytest.raises(VariableValidationError, match="'b' was unexpected"):
        repo.registry.load("s").render(a="x", b="y")


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ x.__class__.__base__.__subclasses__() }}",
        "{{ x.__init__.__globals__ }}",
        "{{ cycler.__init__.__globals__.os }}",
    ],
)
def test_sandbox_escapes_are_blocked(repo: PromptRepo, template: str) -> None:
    repo.write("evil.yaml", f'template: "{template}"\n')
    with pytest.raises((SandboxViolationError, MissingVariableError)) as info:
        repo.registry.load("evil").render(x="s")
    assert info.value.prompt == "evil"
    assert "__" not in info.value.variable if info.value.variable else True


def test_sandbox_escape_is_a_sandbox_error(repo: PromptRepo) -> None:
    repo.write("evil.yaml", "template: \"{{ ''.__class__.__mro__ }}\"\n")
    with pytest.raises(SandboxViolationError, match="sandbox") as info:
        repo.registry.load("evil").render()
    assert "prompt 'evil'" in str(info.value)


def test_sandbox_blocks_mutating_inputs(repo: PromptRepo) -> None:
    repo.write("mut.yaml", 'template: "{{ items.append(1) }}"\n')
    items: list[int] = []
    with pytest.raises(SandboxViolationError):
        repo.registry.load("mut").render(items=items)
    assert items == []


def test_runtime_template_error_is_a_render_error(repo: PromptRepo) -> None:
    repo.write("t.yaml", "template: \"{{ n + 'x' }}\"\n")
    with pytest.raises(RenderError, match="prompt 't': template failed"):
        repo.registry.load("t").render(n=1)


@pytest.mark.parametrize(
    ("template", "plain"),
    [
        ("Hello {{ name }}, {% if vip %}welcome back{% endif %}", True),
        ("{{ user.name }} asks: {{ question }}", True),
        ("{% for item in items %}{{ item }}{% endfor %}", False),  # the variables decide
        ("{{ name | upper }}", False),
        ("{{ name * 3 }}", False),
    ],
)
def test_a_prompt_is_plain_when_no_template_can_repeat_work(
    repo: PromptRepo, template: str, plain: bool
) -> None:
    """A plain prompt renders in the time of its source and variables: the gateway's async
    calls render it on the event loop; any other in a thread."""
    repo.write("p.yaml", f"model: gpt-4o-mini\ntemplate: {template!r}\n")
    assert repo.registry.load("p").plain is plain


@pytest.mark.parametrize(
    "ref", ["#/definitions/missing", "http://example.com/schema.json", "file:///etc/passwd"]
)
def test_an_input_schema_ref_that_resolves_nowhere_is_a_file_error(
    repo: PromptRepo, ref: str
) -> None:
    """A $ref to nothing (or to a document jsonschema does not fetch) is the file's
    error, named as such, not a referencing exception from the validator."""
    repo.write(
        "r.yaml",
        "template: '{{ a }}'\ninput_schema:\n  type: object\n"
        f"  properties:\n    a: {{$ref: '{ref}'}}\n",
    )
    prompt = repo.registry.load("r")
    with pytest.raises(PromptFileError, match=r"input_schema: cannot resolve \$ref") as info:
        prompt.render(a=1)
    assert info.value.file == prompt.file


@pytest.mark.parametrize(
    ("template", "variables"),
    [("{{ '%c' % 55296 }} ok", {}), ("Hi {{ name }}", {"name": "\udced\udca0"})],
)
def test_a_rendered_text_that_is_not_unicode_is_a_render_error(
    repo: PromptRepo, template: str, variables: dict[str, str]
) -> None:
    """A lone surrogate (made by '%c' or passed in, as Python reads bytes of argv that are
    not UTF-8) cannot be encoded for a model, the terminal or the database: a RenderError
    naming the prompt, not a UnicodeEncodeError later."""
    repo.write("s.yaml", f"template: {template!r}\n")
    with pytest.raises(RenderError, match=r"prompt 's': the rendered text .* lone surrogate"):
        repo.registry.load("s").render(variables)


def test_an_input_schema_ref_never_reads_a_file_or_the_network(
    repo: PromptRepo, tmp_path: Path
) -> None:
    """jsonschema's deprecated fallback fetched a $ref's URI at every render: a file:// ref
    read the local file and an http:// one made a request (unbounded in time, from the
    gateway's process). Only references inside the schema resolve."""
    schema = tmp_path / "schema.json"
    schema.write_text('{"type": "integer"}')
    repo.write(
        "r.yaml",
        "template: '{{ a }}'\ninput_schema:\n  type: object\n"
        f"  properties:\n    a: {{$ref: '{schema.as_uri()}'}}\n"
        "  $defs: {local: {type: string}}\n",
    )
    with pytest.raises(PromptFileError, match=r"cannot resolve \$ref"):
        repo.registry.load("r").render(a=5)
    repo.write(
        "ok.yaml",
        "template: '{{ a }}'\n"
        "input_schema: {properties: {a: {$ref: '#/$defs/s'}}, $defs: {s: {type: string}}}\n",
    )
    with pytest.raises(VariableValidationError):
        repo.registry.load("ok").render(a=5)
    assert repo.registry.load("ok").render(a="x")[0]["content"] == "x"


def test_an_input_schema_pattern_that_backtracks_stops_at_the_time_limit(
    repo: PromptRepo,
) -> None:
    """A pattern such as ^(a|a)*$ backtracks exponentially on 'aaa...b' (31 characters:
    two minutes; 40: hours), and the variable may come from an end user: its check stops
    at the render time limit, a TemplateLimitError naming the prompt and the variable."""
    repo.write(
        "p.yaml",
        "template: '{{ q }}'\ninput_schema:\n  type: object\n  properties:\n"
        "    q: {type: string, pattern: '^(a|a)*$'}\n"
        "  patternProperties: {'^(x|x)*$': {type: string}}\n",
    )
    prompt = repo.registry.load("p")
    started = time.monotonic()
    with pytest.raises(TemplateLimitError, match=r"prompt 'p': .*variable 'q'.* 1 s") as info:
        prompt.render(q="a" * 40 + "b")
    assert time.monotonic() - started < 10  # unbounded: hours
    assert info.value.limit == "time"
    with pytest.raises(TemplateLimitError):
        prompt.render(q="a", **{"x" * 40 + "y": "v"})
    assert prompt.render(q="aaa")[0]["content"] == "aaa"
    with pytest.raises(VariableValidationError, match="does not match"):
        prompt.render(q="b")


def test_unique_items_is_checked_in_linear_time(repo: PromptRepo) -> None:
    """jsonschema compares every pair of unhashable items: 8,000 small objects (a 100 KB
    request) took two minutes. Same answers, as JSON Schema compares (1 == 1.0, not True)."""
    repo.write(
        "u.yaml",
        "template: '{{ x|length }}'\ninput_schema:\n  type: object\n"
        "  properties: {x: {type: array, uniqueItems: true}}\n",
    )
    prompt = repo.registry.load("u")
    started = time.monotonic()
    assert prompt.render(x=[{"a": i, "b": [i]} for i in range(20_000)])[0]["content"] == "20000"
    assert time.monotonic() - started < 10  # quadratic: hours
    for same in ([1, 1.0], [{"a": 1}, {"a": 1.0}], [[1, "x"], [1, "x"]], [None, None]):
        with pytest.raises(VariableValidationError, match="non-unique"):
            prompt.render(x=same)
    for different in ([1, True], [[1], [True]], [{"a": 1}, {"b": 1}], [0, False], ["1", 1]):
        assert prompt.render(x=different)
