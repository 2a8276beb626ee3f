"""The prompt file format: every malformed file is a PromptFileError naming file and line."""

from __future__ import annotations

import hashlib
import json
import time

import pytest
import yaml

from llmops.errors import ConfigError, PromptFileError
from llmops.prompts import PromptRegistry
from tests.conftest import PromptRepo, prompt_yaml


def load_error(repo: PromptRepo, text: str) -> PromptFileError:
    repo.write("broken.yaml", text)
    with pytest.raises(PromptFileError) as info:
        repo.registry.load("broken")
    return info.value


def test_bad_yaml_names_file_and_line(repo: PromptRepo) -> None:
    error = load_error(repo, "model: gpt-4o-mini\ntemplate: [unclosed\nparams: {}\n")
    assert error.file.endswith("prompts/broken.yaml")
    assert error.line == 3
    assert str(error).startswith(f"{error.file}:3: invalid YAML")
    assert isinstance(error, ConfigError) and error.exit_code == 2


def test_unknown_field_is_an_error_with_a_suggestion(repo: PromptRepo) -> None:
    error = load_error(repo, "model: m\ntemplate: hi\ntemprature: 0.3\n")
    assert error.line == 3
    assert "unknown field 'temprature'" in str(error)
    assert "did you mean" not in str(error) or "'template'" in str(error)


def test_unknown_field_inside_a_message_names_its_line(repo: PromptRepo) -> None:
    error = load_error(repo, "messages:\n  - role: user\n    content: hi\n    contnt: x\n")
    assert error.line == 4
    assert "messages.0.contnt" in str(error)
    assert "did you mean 'content'" in str(error)


def test_wrong_field_type_names_the_field_and_line(repo: PromptRepo) -> None:
    error = load_error(repo, "template: hi\nparams:\n  - 1\n  - 2\ntags: [a]\n")
    assert error.line == 2
    assert "params" in str(error)


def test_bad_role_is_reported(repo: PromptRepo) -> None:
    error = load_error(repo, "messages:\n  - role: robot\n    content: hi\n")
    assert error.line == 2
    assert "messages.0.role" in str(error)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("model: m\n", "exactly one of 'messages' or 'template'"),
        ("template: hi\nmessages:\n  - {role: user, content: hi}\n", "exactly one"),
        ("messages: []\n", "at least one message"),
        ("", "empty file"),
        ("- just\n- a list\n", "got a list"),
    ],
)
def test_structural_errors(repo: PromptRepo, text: str, expected: str) -> None:
    assert expected in str(load_error(repo, text))


def test_invalid_input_schema_names_its_line(repo: PromptRepo) -> None:
    error = load_error(repo, "template: hi\ninput_schema:\n  type: object\n  required: name\n")
    assert error.line == 2
    assert "input_schema is not a valid JSON Schema" in str(error)


def test_invalid_output_schema_is_reported(repo: PromptRepo) -> None:
    error = load_error(repo, "template: hi\noutput_schema:\n  type: 12\n")
    assert "output_schema is not a valid JSON Schema" in str(error)


def test_template_syntax_error_names_the_line_in_the_file(repo: PromptRepo) -> None:
    error = load_error(
        repo,
        "model: m\nmessages:\n  - role: system\n    content: ok\n"
        "  - role: user\n    content: |\n      line one\n      {% if x %}never closed\n",
    )
    assert "template syntax error" in str(error)
    assert error.line is not None and 6 <= error.line <= 8


def test_file_that_is_not_utf8(repo: PromptRepo) -> None:
    (repo.prompts / "latin.yaml").write_bytes(b"template: caf\xe9\n")
    with pytest.raises(PromptFileError, match="not UTF-8"):
        repo.registry.load("latin")


def test_version_id_is_sha256_of_canonical_content(repo: PromptRepo) -> None:
    text = prompt_yaml("Hi")
    repo.write("greet.yaml", text)
    expected = hashlib.sha256(
        json.dumps(yaml.safe_load(text), sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()[:12]
    assert repo.registry.load("greet").version == expected


def test_version_ignores_comments_order_and_quoting_but_not_content(repo: PromptRepo) -> None:
    repo.write("a.yaml", "model: m\ntemplate: 'Hi {{ x }}'\n")
    repo.write("b.yaml", '# a comment\ntemplate: "Hi {{ x }}"   # trailing\r\nmodel: m\r\n')
    repo.write("c.yaml", "model: m\ntemplate: 'Hi  {{ x }}'\n")
    registry = PromptRegistry(repo.prompts)
    a, b, c = (registry.load(n).version for n in "abc")
    assert a == b
    assert a != c
    assert len(a) == 12 and int(a, 16) >= 0


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ('model: m\ntemplate: "Hi \\ud800"\n', 2, "lone surrogate"),
        ("template: hi\nparams:\n  stop: !!binary /w==\n", 3, "not UTF-8"),
        ('template: hi\nparams:\n  bias: {? "\\udc80" : 1}\n', 3, "lone surrogate"),
    ],
)
def test_text_a_version_id_cannot_hold_is_a_file_error(
    repo: PromptRepo, text: str, line: int, problem: str
) -> None:
    """YAML escapes can make what no UTF-8 file holds (a lone surrogate), and !!binary
    bytes that are not text: named with the line, not an internal error in the version id,
    and `prompts list` still lists the other prompts."""
    error = load_error(repo, text)
    assert error.line == line
    assert problem in str(error)
    repo.write("ok.yaml", "template: hi\n")
    assert repo.registry.validate()[0].line == line


def test_nan_infinity_and_null_are_different_versions(repo: PromptRepo) -> None:
    """The canonical JSON keeps NaN and the infinities (pydantic's JSON mode would make
    them all null), so a changed value is a new version."""
    values = ("null", ".nan", ".inf", "-.inf")
    for index, value in enumerate(values):
        repo.write(f"p{index}.yaml", f"template: hi\nparams: {{temperature: {value}}}\n")
    versions = {repo.registry.load(f"p{index}").version for index in range(len(values))}
    assert len(versions) == len(values)


@pytest.mark.parametrize(
    ("schema", "where"),
    [("{$schema: 1, type: object}", "$schema"), ("{$schema: [a], type: object}", "$schema")],
)
def test_a_schema_whose_dialect_is_not_a_string_is_a_file_error(
    repo: PromptRepo, schema: str, where: str
) -> None:
    error = load_error(repo, f"template: hi\ninput_schema: {schema}\n")
    assert error.line == 2
    assert "input_schema is not a valid JSON Schema" in str(error)
    assert where in str(error)


@pytest.mark.parametrize(
    "template",
    [
        "{{ " + "(" * 200 + "1" + ")" * 200 + " }}",
        "{{ " + "-" * 1500 + "1 }}",
        "{{ a" + ".b" * 1500 + " }}",
        "{% if a %}" * 1000 + "x" + "{% endif %}" * 1000,
        "{% if a %}" * 120 + "x" + "{% endif %}" * 120,  # Python: too many indentation levels
        "{% for a in b %}" * 25 + "{% endfor %}" * 25,  # Python: too many nested blocks
    ],
)
def test_a_template_nested_too_deeply_is_a_file_error(repo: PromptRepo, template: str) -> None:
    """Jinja's parser and compiler recurse once per level, and Python limits the nesting of
    the code Jinja makes: a deep template is a PromptFileError naming the line, never a
    RecursionError or SyntaxError."""
    error = load_error(repo, f"model: m\ntemplate: '{template}'\n")
    assert error.line == 2
    assert "nested too deeply" in str(error)


def test_a_template_of_too_many_tags_is_refused_before_it_is_compiled(repo: PromptRepo) -> None:
    """Compiling takes about 0.2 ms a tag: a 2 MB file of ``{{ a }}`` took a minute and
    3.6 GB to load (in `prompts list`, in the gateway). Over MAX_TEMPLATE_TAGS it is a file
    error; a long filter chain compiles at once (Jinja's optimizer folded it in cubic time:
    100 filters took 0.8 s)."""
    from llmops.prompts.sandbox import MAX_TEMPLATE_TAGS

    error = load_error(repo, "model: m\ntemplate: '" + "{{a}}" * (MAX_TEMPLATE_TAGS + 1) + "'\n")
    assert error.line == 2 and f"more than {MAX_TEMPLATE_TAGS:,}" in str(error)
    repo.write("chain.yaml", "template: '{{ a" + "|upper" * 150 + " }}'\n")
    started = time.monotonic()
    assert repo.registry.load("chain").render(a="x")[0]["content"] == "X"
    assert time.monotonic() - started < 1  # the optimizer: 2.7 s
