"""Every assertion type, its negation, weights, thresholds and named metrics."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from llmops.errors import ConfigError
from llmops.evals.assertions import Context, check, levenshtein_distance
from llmops.evals.runner import case_score
from llmops.evals.suite import Assertion

CTX = Context(vars={"name": "Ann"}, cost_usd=0.002, latency_ms=850.0)
SCHEMA = {
    "type": "object",
    "required": ["category"],
    "properties": {"category": {"enum": ["billing", "bug"]}},
}


def run(kind: str, output: str, value=None, context: Context = CTX, **extra) -> tuple[bool, float]:
    outcome = check(Assertion(type=kind, value=value, **extra), output, context)
    return outcome.passed, outcome.score


@pytest.mark.parametrize(
    ("kind", "output", "value", "passed"),
    [
        ("equals", "Paris", "Paris", True),
        ("equals", " Paris\n", "Paris", True),
        ("equals", "paris", "Paris", False),
        ("equals", '{"a": 1}', {"a": 1}, True),
        ("equals", '{"a": 2}', {"a": 1}, False),
        ("contains", "Reset the router", "router", True),
        ("contains", "Reset the router", "Router", False),
        ("icontains", "Reset the router", "ROUTER", True),
        ("contains-any", "Press reset", ["reboot", "reset"], True),
        ("contains-any", "Press it", ["reboot", "reset"], False),
        ("icontains-any", "RESET now", ["reboot", "reset"], True),
        ("contains-all", "unplug then reset", ["unplug", "reset"], True),
        ("contains-all", "unplug it", ["unplug", "reset"], False),
        ("icontains-all", "UNPLUG then RESET", ["unplug", "reset"], True),
        ("starts-with", "  Hello there", "Hello", True),
        ("starts-with", "Oh, Hello", "Hello", False),
        ("regex", "Step 1. Unplug", r"\d\.\s", True),
        ("regex", "Unplug", r"\d\.\s", False),
        ("is-json", '{"category": "bug"}', None, True),
        ("is-json", "```json\n{}\n```", None, False),
        ("is-json", '{"category": "bug"}', SCHEMA, True),
        ("is-json", '{"category": "cats"}', SCHEMA, False),
        ("json-schema", '{"category": "billing"}', SCHEMA, True),
        ("json-schema", '{"kind": "billing"}', SCHEMA, False),
        ("json-schema", "not json", SCHEMA, False),
        ("levenshtein", "Pariss", "Paris", True),
        ("levenshtein", "London", "Paris", False),
        ("cost", "x", 0.005, True),
        ("cost", "x", 0.001, False),
        ("latency", "x", 1000, True),
        ("latency", "x", 500, False),
    ],
)
def test_assertion_types(kind: str, output: str, value, passed: bool) -> None:
    assert run(kind, output, value) == (passed, 1.0 if passed else 0.0)
    # not- flips the verdict and the score
    assert run(f"not-{kind}", output, value) == (not passed, 0.0 if passed else 1.0)


def test_json_schema_against_the_prompts_output_schema() -> None:
    context = Context(vars={}, output_schema=SCHEMA)
    assert run("json-schema", '{"category": "bug"}', None, context)[0]
    assert run("json-schema", '{"category": "bug"}', "output_schema", context)[0]
    assert not run("json-schema", '{"category": "x"}', None, context)[0]
    with pytest.raises(ConfigError, match="no output_schema"):
        run("json-schema", "{}", None, Context(vars={}))


def test_levenshtein_threshold_and_distance() -> None:
    assert levenshtein_distance("kitten", "sitting") == 3
    assert levenshtein_distance("", "abc") == 3
    assert run("levenshtein", "kitten", "sitting", threshold=2) == (False, 0.0)
    assert run("levenshtein", "kitten", "sitting", threshold=3) == (True, 1.0)


def test_unknown_cost_fails_the_cost_check() -> None:
    assert run("cost", "x", 1.0, Context(vars={}, cost_usd=None)) == (False, 0.0)


def test_python_assertions(tmp_path: Path) -> None:
    (tmp_path / "checks.py").write_text(
        "def get_assert(output, context):\n"
        "    return context['vars']['name'] in output\n"
        "def graded(output, context):\n"
        "    return len(output) / 10\n"
        "def explained(output, context):\n"
        "    return {'pass': False, 'score': 0.25, 'reason': 'too short'}\n"
    )
    context = Context(vars={"name": "Ann"}, base_dir=tmp_path)
    assert run("python", "Hi Ann", "checks.py", context) == (True, 1.0)
    assert run("python", "Hi Bob", "checks.py", context) == (False, 0.0)
    assert run("python", "12345678", "checks.py:graded", context) == (True, 0.8)
    assert run("python", "1234", "checks.py:graded", context) == (False, 0.4)
    assert run("python", "12345678", "checks.py:graded", context, threshold=0.9)[0] is False
    outcome = check(Assertion(type="python", value="checks.py:explained"), "x", context)
    assert (outcome.passed, outcome.score, outcome.reason) == (False, 0.25, "too short")
    # a dotted path to an importable module's function
    (tmp_path / "mychecks").mkdir()
    (tmp_path / "mychecks" / "__init__.py").write_text(
        "def shouty(output, context):\n    return output.isupper()\n"
    )
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        assert run("python", "HELLO", "mychecks.shouty", context) == (True, 1.0)
        assert run("python", "hello", "mychecks:shouty", context) == (False, 0.0)
    finally:
        sys.path.remove(str(tmp_path))
    with pytest.raises(ConfigError, match="no file"):
        run("python", "x", "missing.py", context)
    with pytest.raises(ConfigError, match="no function"):
        run("python", "x", "checks.py:nope", context)


def test_python_assertion_that_raises_fails_the_case(tmp_path: Path) -> None:
    (tmp_path / "boom.py").write_text("def get_assert(output, context):\n    raise KeyError('x')\n")
    outcome = check(Assertion(type="python", value="boom.py"), "x", Context({}, base_dir=tmp_path))
    assert not outcome.passed and "KeyError" in outcome.reason


def test_case_score_is_the_weighted_mean() -> None:
    outcomes = [
        check(Assertion(type="contains", value="a", weight=3), "abc", CTX),
        check(Assertion(type="contains", value="z", weight=1, metric="recall"), "abc", CTX),
    ]
    assert outcomes[1].metric == "recall"
    score, passed = case_score(outcomes, threshold=None)
    assert score == pytest.approx(0.75) and passed is False  # all must pass without a threshold
    assert case_score(outcomes, threshold=0.7) == (pytest.approx(0.75), True)
    assert case_score(outcomes, threshold=0.8) == (pytest.approx(0.75), False)
    assert case_score([], threshold=None) == (1.0, True)


def test_bad_values_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="non-empty list"):
        run("contains-any", "x", "not a list")
    with pytest.raises(ConfigError, match="regex"):
        run("regex", "x", "(unclosed")


# -- promptfoo's word-count, is-refusal, contains-json, is-xml, contains-xml --------------

XML = "<analysis><sentiment>positive</sentiment><score>0.9</score></analysis>"


@pytest.mark.parametrize(
    ("kind", "output", "value", "passed"),
    [
        ("word-count", "one two  three\nfour", 4, True),
        ("word-count", "one two three", 4, False),
        ("word-count", "one two three", "3", True),
        ("word-count", "one two three", {"min": 2, "max": 5}, True),
        ("word-count", "one", {"min": 2}, False),
        ("word-count", "a b c d e f", {"max": 5}, False),
        ("word-count", "   ", 0, True),
        ("is-refusal", "I'm sorry, but I can't help with that.", None, True),
        ("is-refusal", "I\u2019m unable to share that information.", None, True),
        ("is-refusal", "As an AI language model, I do not have opinions.", None, True),
        ("is-refusal", "", None, True),
        ("is-refusal", "Sorry to hear that! Unplug the router for ten seconds.", None, False),
        ("is-refusal", "Paris is the capital of France.", None, False),
        ("is-refusal", "I can help: press reset for 10 seconds.", None, False),
        ("contains-json", 'Here you go:\n```json\n{"category": "bug"}\n```', None, True),
        ("contains-json", "The set {a, b} and [1, 2", None, False),
        ("contains-json", 'First [1, 2], then {"category": "bug"}.', SCHEMA, True),
        ("contains-json", 'Only {"category": "cats"} here', SCHEMA, False),
        ("contains-json", "no json at all", None, False),
        ("is-xml", XML, None, True),
        ("is-xml", XML, "analysis.sentiment, analysis.score", True),
        ("is-xml", XML, ["sentiment"], True),
        ("is-xml", XML, {"requiredElements": ["analysis.reason"]}, False),
        ("is-xml", "<a><b></a>", None, False),
        ("is-xml", f"Result: {XML}", None, False),
        ("contains-xml", f"Result: {XML} -- done", "analysis.score", True),
        ("contains-xml", "Use <b>bold</b> and <i>it", None, True),
        ("contains-xml", "a < b and c > d", None, False),
        ("contains-xml", f"Result: {XML}", "analysis.reason", False),
    ],
)
def test_shape_assertions(kind: str, output: str, value, passed: bool) -> None:
    assert run(kind, output, value) == (passed, 1.0 if passed else 0.0)
    assert run(f"not-{kind}", output, value) == (not passed, 0.0 if passed else 1.0)


def test_xml_with_a_doctype_is_refused_without_expanding_it() -> None:
    """A billion-laughs document: refused at once (no entity is ever expanded)."""
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        + "".join(f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
        + "]><lolz>&lol9;</lolz>"
    ).replace("&lol0;", "&lol;")
    outcome = check(Assertion(type="is-xml"), bomb, CTX)
    assert not outcome.passed and "DOCTYPE" in outcome.reason
    outcome = check(Assertion(type="contains-xml"), f"see {bomb}", CTX)
    assert not outcome.passed


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        ("word-count", None, "word-count: value must be a whole number"),
        ("word-count", -1, "whole number"),
        ("word-count", 2.5, "whole number"),
        ("word-count", "many", "whole number"),
        ("word-count", {"min": 5, "max": 2}, "min 5 is more than max 2"),
        ("word-count", {"least": 2}, "{min: N, max: N}"),
        ("word-count", {}, "{min: N, max: N}"),
        ("contains-json", "a schema?", "contains-json: value must be a JSON Schema"),
        ("contains-json", {"type": "nonsense"}, "not a valid JSON Schema"),
        ("is-xml", 3, "is-xml: value must be element paths"),
    ],
)
def test_shape_assertion_values_are_checked_before_any_call(kind: str, value, message: str) -> None:
    from llmops.evals.assertions import static_problem

    problem = static_problem(Assertion(type=kind, value=value))
    assert problem is not None and message in problem, problem


# -- javascript (Node.js) ------------------------------------------------------------------

needs_node = pytest.mark.skipif(
    __import__("shutil").which("node") is None and not __import__("os").environ.get("CI"),
    reason="javascript assertions run in Node.js (apt-get install nodejs)",
)


@needs_node
@pytest.mark.parametrize(
    ("value", "output", "extra", "passed", "score"),
    [
        ("output.includes('Paris')", "It is Paris.", {}, True, 1.0),
        ("output.includes('Paris');", "It is Rome.", {}, False, 0.0),
        ("output.length / 10", "12345", {}, True, 0.5),  # a number passes above 0
        ("output.length / 10", "12345", {"threshold": 0.6}, False, 0.5),
        ("context.vars.name === 'Ann'", "x", {}, True, 1.0),
        ("const words = output.split(' '); words.length === 2", "two words", {}, True, 1.0),
        ("const n = output.length;\nreturn {pass: n > 3, score: 0.25, reason: 'len ' + n}",
         "four", {}, True, 0.25),
        ("Promise.resolve(output === 'ok')", "ok", {}, True, 1.0),
    ],
)  # fmt: skip
def test_javascript_assertions(value: str, output: str, extra: dict, passed: bool, score: float):
    outcome = check(Assertion(type="javascript", value=value, **extra), output, CTX)
    assert (outcome.passed, outcome.score, outcome.error) == (passed, score, None), outcome
    negated = check(Assertion(type="not-javascript", value=value, **extra), output, CTX)
    assert negated.passed is not passed


@needs_node
def test_javascript_from_a_file_and_its_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmops.evals import javascript

    monkeypatch.setattr(javascript, "TIMEOUT_S", 2.0)  # for the endless loop below
    (tmp_path / "checks.js").write_text(
        "module.exports = (output, context) => output.startsWith(context.vars.name);\n"
        "module.exports.short = (output) => ({pass: output.length < 5, reason: 'short?'});\n"
    )
    context = Context(vars={"name": "Ann"}, base_dir=tmp_path)
    assert check(Assertion(type="javascript", value="file://checks.js"), "Ann!", context).passed
    short = check(
        Assertion(type="javascript", value="file://checks.js:short"), "long text", context
    )
    assert (short.passed, short.reason) == (False, "short?")
    for value, message in [
        ("(() => { throw new Error('boom'); })()", "javascript threw: boom"),
        ("'a string'", "must return a boolean, a number or {pass, score, reason}"),
        ("output.(", "javascript threw"),
        ("file://checks.js:nothing", "exports no function nothing"),
        ("while (true) {}\nreturn true", "did not finish"),  # a function body: two lines
    ]:
        outcome = check(Assertion(type="javascript", value=value), "x", context)
        assert outcome.error is not None and message in outcome.error, (value, outcome)
        assert not outcome.passed  # an error, left out of the statistics, not a failure


@needs_node
def test_javascript_may_log_before_returning() -> None:
    """What the code prints is not its result: a check that logs (as promptfoo users' do)
    passes, and a passing check's reason says nothing of what it printed."""
    code = (
        "console.log('Prompt:', context.vars.name);\nconsole.info('info');\n"
        "console.debug('debug');\nconsole.warn('warn');\nconsole.error('error');\nreturn true;"
    )
    outcome = check(Assertion(type="javascript", value=code), "x", CTX)
    assert (outcome.passed, outcome.score, outcome.error) == (True, 1.0, None), outcome
    assert outcome.reason == "returned true"


@needs_node
def test_javascript_logging_a_megabyte_still_passes() -> None:
    code = "console.log('x'.repeat(1000000));\nreturn {pass: true, score: 0.75, reason: 'ok'};"
    outcome = check(Assertion(type="javascript", value=code), "x", CTX)
    assert (outcome.passed, outcome.score, outcome.error) == (True, 0.75, None), outcome.reason
    assert outcome.reason == "ok"  # a passing check's reason says nothing of what it printed


@needs_node
def test_javascript_stdout_garbage_then_false_fails_showing_what_it_printed() -> None:
    """process.stdout.write cannot corrupt the result; a failing or erroring check's reason
    ends with the last 500 characters the code printed, on one line."""
    code = "process.stdout.write('garbage');\nreturn false;"
    outcome = check(Assertion(type="javascript", value=code), "x", CTX)
    assert (outcome.passed, outcome.score, outcome.error) == (False, 0.0, None), outcome
    assert outcome.reason == "returned false; logged: garbage"

    long = "console.log('a'.repeat(10000));\nconsole.error('the end');\nreturn 0;"
    failed = check(Assertion(type="javascript", value=long), "x", CTX)
    assert not failed.passed and failed.error is None
    reason, logged = failed.reason.split("; logged: ")
    assert reason == "returned 0" and logged.endswith("a | the end") and len(logged) == 503

    thrown = "console.log('checking', output);\nthrow new Error('boom');"
    errored = check(Assertion(type="javascript", value=thrown), "x", CTX)
    assert errored.error == "javascript threw: boom; logged: checking x", errored


def test_javascript_without_node_is_skipped_saying_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without Node.js a javascript check is skipped (weight 0, no error): the case is
    scored by its other checks, and reports count the skipped ones."""
    from llmops.evals.runner import case_score

    monkeypatch.setenv("PATH", "/nonexistent")
    outcome = check(Assertion(type="not-javascript", value="false"), "x", CTX)
    assert outcome.skipped and outcome.error is None and outcome.weight == 0
    assert "need Node.js" in outcome.reason
    failing = check(Assertion(type="contains", value="y"), "x", CTX)
    assert case_score([outcome, failing], None) == (0.0, False)
    assert case_score([outcome], None) == (1.0, True)


# -- rouge-n and bleu ------------------------------------------------------------------------


def test_overlap_metrics_by_hand() -> None:
    from llmops.evals.overlap import bleu, rouge_n

    assert rouge_n("The cat sat on the mat.", "the cat sat on the mat.") == 1.0
    # "the cat" against six words: precision 1, recall 2/6, F1 = 0.5
    assert rouge_n("the cat", "the cat sat on the mat") == pytest.approx(0.5)
    assert rouge_n("dogs bark", "the cat sat") == 0.0
    assert bleu("the cat sat on the mat", ["the cat sat on the mat"]) == pytest.approx(1.0)
    # two words, both right: every usable precision is 1; brevity penalty exp(1 - 6/2)
    assert bleu("the cat", ["the cat sat on the mat"]) == pytest.approx(math.exp(-2))
    # the closest reference in length sets the penalty; the best reference the precision
    assert bleu("the cat", ["a dog", "the cat sat on the mat"]) == pytest.approx(1.0)
    assert bleu("", ["x"]) == 0.0


@pytest.mark.parametrize(
    ("kind", "output", "value", "extra", "passed"),
    [
        ("rouge-n", "the cat sat on the mat", "the cat sat on the mat", {}, True),
        ("rouge-n", "the cat", "the cat sat on the mat", {}, False),  # 0.5 < 0.75
        ("rouge-n", "the cat", "the cat sat on the mat", {"threshold": 0.5}, True),
        ("bleu", "the cat sat on the mat", "the cat sat on the mat", {}, True),
        ("bleu", "the cat", "the cat sat on the mat", {}, False),  # 0.135 < 0.5
        ("bleu", "the cat", ["a dog", "the cat sat on the mat"], {}, True),
    ],
)
def test_overlap_assertions(kind: str, output: str, value, extra: dict, passed: bool) -> None:
    outcome = check(Assertion(type=kind, value=value, **extra), output, CTX)
    assert outcome.passed is passed and outcome.error is None
    negated = check(Assertion(type=f"not-{kind}", value=value, **extra), output, CTX)
    assert negated.passed is not passed
    assert negated.score == pytest.approx(1 - outcome.score)


# -- assert-set -----------------------------------------------------------------------------


def test_assert_set_passes_at_its_threshold_or_when_all_pass() -> None:
    children = [
        {"type": "icontains", "value": "paris"},
        {"type": "contains", "value": "France", "weight": 3},
        {"type": "word-count", "value": {"max": 3}},
    ]
    every = Assertion.model_validate({"type": "assert-set", "assert": children})
    outcome = check(every, "Paris is lovely in France.", CTX)  # 5 words: the count fails
    assert not outcome.passed and outcome.score == pytest.approx(4 / 5)
    assert "2 of 3 passed; word-count" in outcome.reason
    lenient = Assertion.model_validate(
        {"type": "assert-set", "assert": children, "threshold": 0.75}
    )
    assert check(lenient, "Paris is lovely in France.", CTX).passed
    negated = Assertion.model_validate({"type": "not-assert-set", "assert": children})
    assert check(negated, "Paris is lovely in France.", CTX).passed
    nested = Assertion.model_validate(
        {"type": "assert-set", "assert": [{"type": "assert-set", "assert": children[:1]}]}
    )
    assert check(nested, "PARIS", CTX).passed


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"type": "assert-set"}, "assert-set: needs `assert`"),
        ({"type": "assert-set", "assert": []}, "at least one assertion"),
        ({"type": "contains", "value": "x", "assert": [{"type": "is-json"}]}, "belongs to"),
        ({"type": "assert-set", "assert": [{"type": "regex", "value": "("}]}, "assert[0]: regex"),
        ({"type": "assert-set", "threshold": 2, "assert": [{"type": "is-json"}]}, "0 to 1"),
    ],
)
def test_assert_set_problems_are_found_before_any_call(data: dict, message: str) -> None:
    from llmops.evals.assertions import static_problem

    problem = static_problem(Assertion.model_validate(data))
    assert problem is not None and message in problem, problem


def test_the_edit_distance_is_that_of_the_whole_table() -> None:
    """The bit-vector distance against the table it replaces, on strings long enough to
    take several machine words, and a comparison of 20,000-character texts in seconds."""
    import random

    def table(a: str, b: str) -> int:
        previous = list(range(len(b) + 1))
        for i, x in enumerate(a, start=1):
            current = [i]
            for j, y in enumerate(b, start=1):
                current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
            previous = current
        return previous[-1]

    rng = random.Random(7)
    for _ in range(300):
        alphabet = rng.choice(["ab", "abcdefghij", "é🙂x"])
        a = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 150)))
        b = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 150)))
        assert levenshtein_distance(a, b) == table(a, b), (a, b)
    long = "the router " * 2000
    assert levenshtein_distance(long, long.replace("router", "ROUTER", 3)) == 18
    huge = "x" * 1_000_000  # equal texts: a common start, nothing to count
    assert levenshtein_distance(huge, huge) == 0
    assert levenshtein_distance("a" + huge + "b", "c" + huge + "b") == 1  # one in between


def test_levenshtein_of_texts_far_apart_in_length_is_not_counted() -> None:
    outcome = check(Assertion(type="levenshtein", value="Paris"), "x" * 1_000_000, CTX)
    assert not outcome.passed and "edit distance at least 999995" in outcome.reason


def test_a_regex_that_backtracks_without_end_errors_its_check(monkeypatch) -> None:
    """A suite's pattern was searched with no limit: `(x+x+)+y` over one long output hung
    the whole CI run."""
    from llmops.evals import assertions

    monkeypatch.setattr(assertions, "TIME_LIMIT_S", 0.3)
    outcome = check(Assertion(type="regex", value="(x+x+)+y"), "x" * 5000, CTX)
    assert outcome.error is not None and "did not finish in 0.3 s" in outcome.error
    assert run("regex", "xxy", "(x+x+)+y") == (True, 1.0)


def test_a_json_schema_pattern_that_backtracks_errors_its_check(monkeypatch) -> None:
    """`is-json` checked the output with jsonschema's own `re` search: a schema pattern
    that backtracks hung the run on one output, as a `regex` check did."""
    from llmops.evals import assertions

    monkeypatch.setattr(assertions, "TIME_LIMIT_S", 0.3)
    schema = {"type": "object", "properties": {"code": {"type": "string", "pattern": "^(a|a)*$"}}}
    outcome = check(Assertion(type="is-json", value=schema), '{"code": "' + "a" * 40 + 'b"}', CTX)
    assert outcome.error is not None and "did not finish in 0.3 s" in outcome.error
    assert run("is-json", '{"code": "aaa"}', schema) == (True, 1.0)


def test_a_json_schema_ref_reads_no_file(tmp_path) -> None:
    """jsonschema fetched a `$ref`'s file:// or http:// URI; only references inside the
    schema resolve, as for prompts."""
    target = tmp_path / "schema.json"
    target.write_text('{"type": "integer"}')
    schema = {"type": "object", "properties": {"n": {"$ref": target.as_uri()}}}
    with pytest.raises(ConfigError, match=r"cannot resolve \$ref"):
        run("is-json", '{"n": 5}', schema)
    inside = {"properties": {"n": {"$ref": "#/$defs/n"}}, "$defs": {"n": {"type": "integer"}}}
    assert run("is-json", '{"n": 5}', inside) == (True, 1.0)
    assert run("is-json", '{"n": "x"}', inside)[0] is False


def test_a_pattern_broken_by_one_cases_variables_errors_that_case_only() -> None:
    """A value that renders into an invalid pattern for one case raised ConfigError after
    every model call of the run: no report, every result lost."""
    broken = Assertion(type="regex", value="{{ pat }}")
    outcome = check(broken, "N9 (beta", Context(vars={"pat": "N9 (beta"}))
    assert outcome.error is not None and "missing )" in outcome.error
    assert check(broken, "N8", Context(vars={"pat": "N8"})).passed
    with pytest.raises(ConfigError, match="regex"):  # the suite's own value: a config error
        run("regex", "x", "(unclosed")


@pytest.mark.parametrize(
    ("kind", "value", "problem"),
    [
        ("contains", None, "contains: value must be the text to look for"),
        ("not-icontains", "", "icontains: value must be the text to look for"),
        ("not-icontains", ["a", "b"], "icontains: value must be the text to look for"),
        ("starts-with", {"a": 1}, "starts-with: value must be the text to look for"),
        ("equals", None, "equals: value must be the text to compare"),
        ("equals", False, "equals: value false was read as a boolean"),
        ("contains", True, "contains: value true was read as a boolean"),
        ("contains-any", ["a", None], "contains-any: value[1] must be the text to look for"),
        ("contains-all", ["a", False], "contains-all: value[1] false was read as a boolean"),
    ],
)
def test_text_checks_without_a_text_are_found_when_the_suite_loads(kind, value, problem) -> None:
    """`not-contains` without a value compared the output with the text `null` and passed
    every output; a list became its JSON text, and YAML's `NO` the text `false`."""
    from llmops.evals.assertions import static_problem

    found = static_problem(Assertion(type=kind, value=value))
    assert found is not None and problem in found, found


@pytest.mark.parametrize(
    ("kind", "value"),
    [("contains", "a"), ("contains", 42), ("equals", {"a": 1}), ("equals", [1]), ("equals", "")],
)
def test_text_checks_take_texts_numbers_and_for_equals_json(kind, value) -> None:
    from llmops.evals.assertions import static_problem

    assert static_problem(Assertion(type=kind, value=value)) is None


def test_a_nan_score_errors_the_check_it_never_passes_or_fails() -> None:
    from llmops.evals.assertions import finish

    for score in (math.nan, math.inf, -0.5, 1.5):
        outcome = finish(Assertion(type="llm-rubric", value="x"), score, "judge")
        assert outcome.error is not None and not outcome.passed, score


def test_a_text_check_whose_value_renders_empty_errors_that_case() -> None:
    """The load-time check sees `{{ expected }}`; a case whose variable is empty (a blank
    CSV cell) made `contains` pass and `not-contains` fail every output."""
    context = Context(vars={"expected": ""})
    for kind, value in (
        ("contains", "{{ expected }}"),
        ("not-contains", "{{ expected }}"),
        ("contains-any", ["{{ expected }}", "zzz"]),
    ):
        outcome = check(Assertion(type=kind, value=value), "any output", context)
        assert outcome.error is not None and "as the case's variables render it" in outcome.error
    assert run("contains", "Hi Ann", "{{ name }}") == (True, 1.0)
