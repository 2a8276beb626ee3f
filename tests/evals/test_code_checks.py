"""python checks as promptfoo runs them (inline code, the context), transforms, javascript's
context, and file:// values read when a suite loads."""

from __future__ import annotations

import json
import shutil
import textwrap
import time
from pathlib import Path

import pytest

from llmops.errors import ConfigError, ConfigFileError
from llmops.evals import pycode
from llmops.evals.assertions import Context, check, static_problem
from llmops.evals.pycode import is_reference
from llmops.evals.suite import Assertion, load_suite

CTX = Context(
    vars={"name": "Ann"},
    cost_usd=0.002,
    latency_ms=850.0,
    prompt="Greet Ann",
    test={"id": "c1", "vars": {"name": "Ann"}},
    tool_calls=[{"id": "1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
    finish_reason="tool_calls",
    logprobs=[-0.5],
)


def py(value: str, output: str = "Hi Ann", context: Context = CTX, **extra):
    return check(Assertion(type="python", value=value, **extra), output, context)


@pytest.mark.parametrize(
    ("value", "reference"),
    [
        ("checks.py", True),
        ("checks.py:graded", True),
        ("file://checks.py:graded", True),
        ("file://sub/dir/checks.py", True),
        ("mychecks.shouty", True),
        ("mychecks:shouty", True),
        ("package.module:function", True),
        ("output.lower().startswith('hi')", False),
        ("len(output) > 3", False),
        ("True", False),
        ("'Ann' in output", False),
        ("x = 1\nreturn x", False),
        ("output.endswith('.py')", False),
    ],
)
def test_inline_code_or_a_reference(value: str, reference: bool) -> None:
    assert is_reference(value) is reference


def test_inline_expressions_and_bodies() -> None:
    assert py("output.lower().startswith('hi')").passed
    assert not py("output.lower().startswith('bye')").passed
    assert py("len(output) / 10").score == pytest.approx(0.6)
    assert py("context['vars']['name'] in output").passed
    body = (
        "words = output.split()\nif len(words) < 2:\n    return False\n"
        "return {'pass': True, 'score': 0.75, 'reason': 'two words'}"
    )
    result = py(body)
    assert (result.passed, result.score, result.reason) == (True, 0.75, "two words")
    assert py("json.loads(output)['a'] == 1", output='{"a": 1}').passed  # json is there
    assert not py("not output").passed
    assert py("not-x", output="x").error is not None  # a NameError: the check errors


def test_the_context_python_checks_get() -> None:
    seen = py(
        "return {'pass': True, 'score': 1, 'reason': json.dumps(context, sort_keys=True)}",
        config={"min": 2},
    )
    context = json.loads(seen.reason)
    assert context == {
        "config": {"min": 2},
        "cost": 0.002,
        "finish_reason": "tool_calls",
        "latency_ms": 850.0,
        "logprobs": [-0.5],
        "prompt": "Greet Ann",
        "test": {"id": "c1", "vars": {"name": "Ann"}},
        "tool_calls": CTX.tool_calls,
        "vars": {"name": "Ann"},
    }
    assert py("len(output) >= context['config']['min']", config={"min": 2}).passed
    # a check that changes its context changes nothing for the next one
    py("context['vars'].clear() or True")
    assert CTX.vars == {"name": "Ann"}


def test_inline_python_that_raises_or_loops_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    raised = py("1 / 0")
    assert raised.error is not None and "ZeroDivisionError" in raised.error
    monkeypatch.setattr(pycode, "TIME_LIMIT_S", 0.3)
    started = time.perf_counter()
    looped = py("while True: pass\nreturn True")
    assert looped.error is not None and "did not finish in 0.3 s" in looped.error
    swallowed = py("while True:\n    try:\n        pass\n    except Exception:\n        pass")
    assert swallowed.error is not None and "did not finish" in swallowed.error
    assert time.perf_counter() - started < 5
    assert py("True").passed  # the tracer is gone afterwards
    returned = py("'yes'")
    assert returned.error is not None and "expected bool, number or dict" in returned.error
    assert py("float('nan')").error is not None


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("output.startswith(", "python: inline code is not valid Python"),
        ("x = = 1\nreturn x", "not valid Python (line 1)"),
        ("return 1\n  return 2", "not valid Python (line 2)"),
        (r"'a\x00b' in output", None),  # escapes in a string literal are fine
        ("'a\x00b' in output", "cannot contain null bytes"),  # a NUL byte in the code
    ],
)
def test_inline_syntax_errors_are_found_when_the_suite_loads(value: str, problem: str) -> None:
    found = static_problem(Assertion(type="python", value=value), Path("."))
    assert (problem in str(found)) if problem else found is None


def test_existing_reference_forms_still_work(tmp_path: Path) -> None:
    (tmp_path / "checks.py").write_text("def get_assert(output, context):\n    return True\n")
    context = Context(vars={}, base_dir=tmp_path)
    assert check(Assertion(type="python", value="checks.py"), "x", context).passed
    assert check(Assertion(type="python", value="file://checks.py"), "x", context).passed
    with pytest.raises(ConfigError, match="no file"):
        check(Assertion(type="python", value="missing.py"), "x", context)


# -- transforms ---------------------------------------------------------------------------


def test_an_assertion_transform_applies_before_it(tmp_path: Path) -> None:
    context = Context(vars={"name": "Ann"}, base_dir=tmp_path)
    upper = Assertion(type="equals", value="HI ANN", transform="output.upper()")
    assert check(upper, "Hi Ann", context).passed
    parsed = Assertion(type="equals", value="Paris", transform="json.loads(output)['city']")
    assert check(parsed, '{"city": "Paris"}', context).passed
    # not text: JSON-encoded
    keys = Assertion(type="equals", value=["a"], transform="sorted(json.loads(output))")
    assert check(keys, '{"a": 1}', context).passed
    (tmp_path / "shape.py").write_text(
        "def first_line(output, context):\n"
        "    return output.splitlines()[0] + context['vars']['name']\n"
    )
    from_file = Assertion(type="equals", value="oneAnn", transform="file://shape.py:first_line")
    assert check(from_file, "one\ntwo", context).passed
    inside = Assertion(
        type="assert-set",
        transform="output.strip()",
        **{"assert": [{"type": "equals", "value": "x", "transform": "output + 'x'"}]},
    )
    assert check(inside, "  ", context).passed  # the set's, then its assertion's


def test_a_transform_that_raises_errors_the_assertion(monkeypatch: pytest.MonkeyPatch) -> None:
    context = Context(vars={})
    result = check(
        Assertion(type="contains", value="a", transform="json.loads(output)"), "x", context
    )
    assert result.error is not None and "transform raised JSONDecodeError" in result.error
    none = check(Assertion(type="contains", value="a", transform="None"), "x", context)
    assert none.error is not None and "returned None" in none.error
    monkeypatch.setattr(pycode, "TIME_LIMIT_S", 0.2)
    looped = check(
        Assertion(type="contains", value="a", transform="while True:\n  pass"), "x", context
    )
    assert looped.error is not None and "did not finish" in looped.error


@pytest.mark.parametrize(
    ("transform", "problem"),
    [
        ("output.upper(", "transform is not valid Python"),
        ("file://nope.py:f", "no file"),
        ("shape.py:missing", "no function 'missing'"),
        ("", "transform must be Python code"),
    ],
)
def test_transform_problems_are_found_when_the_suite_loads(
    tmp_path: Path, transform: str, problem: str
) -> None:
    (tmp_path / "shape.py").write_text("def f(output, context):\n    return output\n")
    found = static_problem(Assertion(type="contains", value="a", transform=transform), tmp_path)
    assert problem in str(found)


# -- javascript gets the same context -----------------------------------------------------


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js")
def test_javascript_checks_get_the_same_context() -> None:
    code = "const seen = JSON.stringify(context);\nreturn {pass: true, score: 1, reason: seen};"
    result = check(Assertion(type="javascript", value=code, config={"k": 1}), "x", CTX)
    seen = json.loads(result.reason)
    assert seen["config"] == {"k": 1} and seen["prompt"] == "Greet Ann"
    assert seen["tool_calls"] == CTX.tool_calls and seen["finish_reason"] == "tool_calls"
    assert seen["test"]["id"] == "c1" and seen["latency_ms"] == 850.0


# -- file:// values -----------------------------------------------------------------------


def write_suite(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(body))
    return path


def test_file_values_are_read_when_the_suite_loads(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "answer.txt").write_text("Paris\n")
    (tmp_path / "data" / "schema.json").write_text('{"type": "object", "required": ["city"]}')
    (tmp_path / "data" / "words.yaml").write_text("- bonjour\n- salut\n")
    (tmp_path / "data" / "question.txt").write_text("Where is the Louvre?")
    suite = load_suite(
        write_suite(
            tmp_path,
            """\
            prompt: greet
            defaults:
              vars: {question: file://data/question.txt}
            cases:
              - id: a
                vars: {name: file://data/words.yaml, plain: not a file}
                assert:
                  - {type: equals, value: file://data/answer.txt}
                  - {type: is-json, value: file://data/schema.json}
                  - type: assert-set
                    assert: [{type: icontains-any, value: file://data/words.yaml}]
                  - {type: python, value: "file://checks.py"}
            """.replace("file://checks.py", "output != ''"),
        )
    )
    (case,) = suite.cases
    equals, schema, group, _ = suite.case_assertions(case)
    assert equals.value == "Paris\n"
    assert schema.value == {"type": "object", "required": ["city"]}
    assert group.assert_[0].value == ["bonjour", "salut"]
    assert suite.case_vars(case) == {
        "question": "Where is the Louvre?",
        "name": ["bonjour", "salut"],
        "plain": "not a file",
    }


@pytest.mark.parametrize(
    ("files", "value", "message"),
    [
        ({}, "file://missing.txt", "line 5: case a.assert[0].value: file://missing.txt: "),
        ({"bad.json": "{nope"}, "file://bad.json", "bad.json:1: invalid JSON"),
        ({"bin.txt": b"\x00\x01\xff"}, "file://bin.txt", "not a text file"),
        ({"big.txt": "x" * (2 * 1024 * 1024 + 1)}, "file://big.txt", "larger than 2 MB"),
        ({"bomb.yaml": "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
            f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)},"
            f" *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)},"
            f" *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(8)
        )}, "file://bomb.yaml", "bomb.yaml"),
        ({"gen.py": "x = 1"}, "file://gen.py", "a script as a value is not supported"),
        ({}, "file://", "names no file"),
        ({"d": None}, "file://d", "it is a directory"),
    ],
)  # fmt: skip
def test_file_value_problems_name_the_suite_file_and_line(
    tmp_path: Path, files: dict[str, object], value: str, message: str
) -> None:
    for name, content in files.items():
        if content is None:
            (tmp_path / name).mkdir()
        elif isinstance(content, bytes):
            (tmp_path / name).write_bytes(content)
        else:
            (tmp_path / name).write_text(str(content))
    body = "prompt: greet\ncases:\n  - id: a\n    assert:\n"
    body += f"      - {{type: equals, value: '{value}'}}\n"
    with pytest.raises(ConfigFileError) as raised:
        load_suite(write_suite(tmp_path, body))
    text = str(raised.value)
    assert text.startswith(f"{tmp_path / 's.yaml'}:5: case a.assert[0].value: "), text
    assert message.removeprefix("line 5: case a.assert[0].value: ") in text


def test_file_values_in_vars_and_a_cases_file(tmp_path: Path) -> None:
    (tmp_path / "q.txt").write_text("What?")
    (tmp_path / "cases").mkdir()
    (tmp_path / "cases" / "more.jsonl").write_text(
        json.dumps({"id": "j", "vars": {"q": "file://q.txt"}, "assert": [
            {"type": "contains", "value": "file://q.txt"}]}) + "\n"
        + json.dumps({"id": "k", "vars": {"q": "file://nope.txt"}}) + "\n"
    )  # fmt: skip
    path = write_suite(tmp_path, "prompt: greet\ncases_file: cases/more.jsonl\n")
    with pytest.raises(ConfigFileError) as raised:
        load_suite(path)
    assert str(raised.value).startswith(f"{tmp_path / 'cases' / 'more.jsonl'}:2: case k.vars.q")
    (tmp_path / "cases" / "more.jsonl").write_text(
        json.dumps({"id": "j", "vars": {"q": "file://q.txt"}, "assert": [
            {"type": "contains", "value": "file://q.txt"}]}) + "\n"
    )  # fmt: skip
    (case,) = load_suite(path).cases  # relative to the suite file, as promptfoo
    assert case.vars == {"q": "What?"} and case.assert_[0].value == "What?"
    body = "prompt: greet\ncases:\n  - id: a\n    vars:\n      q: file://none.txt\n"
    with pytest.raises(ConfigFileError, match=r"s.yaml:5: case a.vars.q: file://none.txt"):
        load_suite(write_suite(tmp_path, body))


def test_case_options_and_assertion_fields_when_the_suite_loads(tmp_path: Path) -> None:
    body = """\
        prompt: greet
        defaults:
          options: {transform: output.strip()}
        cases:
          - id: a
            options: {transform: "output.upper()"}
            assert:
              - {type: contains, value: A, config: {min: 1}, transform: output}
          - id: b
        """
    suite = load_suite(write_suite(tmp_path, body))
    first, second = suite.cases
    assert suite.case_transform(first) == "output.upper()"
    assert suite.case_transform(second) == "output.strip()"
    assert first.assert_[0].config == {"min": 1}
    for bad, message in [
        ("cases:\n  - id: a\n    options: {transform: 'output.('}\n",
         "s.yaml:4: case a.options.transform: transform is not valid Python"),
        ("cases:\n  - id: a\n    options: {prefix: x}\n", "unknown field"),
        ("defaults:\n  options: {transform: 'nope.py:f'}\ncases: [{id: a}]\n",
         "s.yaml:3: defaults.options.transform: transform: no file"),
        ("cases:\n  - id: a\n    assert:\n      - {type: contains, value: a, config: 3}\n",
         "s.yaml:5: case a.assert[0].config"),
        ("cases:\n  - id: a\n    assert:\n      - {type: contains, value: a, transform: 'x y'}\n",
         "s.yaml:5: case a.assert[0]: transform is not valid Python"),
    ]:  # fmt: skip
        with pytest.raises(ConfigFileError) as raised:
            load_suite(write_suite(tmp_path, "prompt: greet\n" + bad))
        assert message in str(raised.value), str(raised.value)


def test_a_python_checks_pass_decides_as_promptfoos_does() -> None:
    """`{'pass': False, 'score': 0.9}` passed its case (only the score was read, against
    the default threshold 0.5), and `{'pass': True, 'score': 0.2}` failed it."""
    failing = py("{'pass': False, 'score': 0.9, 'reason': 'no'}")
    assert (failing.passed, failing.score, failing.reason) == (False, 0.9, "no")
    assert (py("{'pass': True, 'score': 0.2}").passed, py("{'pass': True}").score) == (True, 1.0)
    negated = Assertion(type="not-python", value="{'pass': True, 'score': 0.2}")
    assert not check(negated, "Hi Ann", CTX).passed
    assert py("{'score': 0.7}").passed and not py("{'score': 0.3}").passed  # the threshold
    assert py("{'pass': True, 'score': 2}").error is not None  # a score outside [0, 1]


def test_a_python_checks_pass_must_be_a_boolean_and_meets_its_threshold() -> None:
    """`{'pass': 'false'}` passed (any non-empty text is true), `pass_` (Python's spelling,
    which promptfoo reads) was not read, and an explicit threshold was ignored."""
    assert py("{'pass': 'false'}").error is not None
    assert py("{'pass': float('nan')}").error is not None
    assert not py("{'pass_': False, 'score': 0.9}").passed
    assert not py("{'pass': True, 'score': 0.2}", threshold=0.5).passed
    assert py("{'pass': True, 'score': 0.6}", threshold=0.5).passed
