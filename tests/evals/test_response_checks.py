"""finish-reason, is-sql, perplexity, perplexity-score, tool calls: values worked by hand."""

from __future__ import annotations

import json
import math
import time

import pytest

from llmops.evals.assertions import Context, check, static_problem
from llmops.evals.response import normalize_finish_reason
from llmops.evals.sql import sql_problem
from llmops.evals.suite import Assertion

WEATHER = {
    "name": "get_weather",
    "parameters": {
        "type": "object",
        "required": ["city"],
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "additionalProperties": False,
    },
}
NOTIFY = {"name": "notify", "parameters": {"type": "object"}}


def call(name: str, arguments: object) -> dict[str, object]:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": "c1", "type": "function", "function": {"name": name, "arguments": text}}


def outcome(kind: str, output: str = "", context: Context | None = None, **extra):
    return check(Assertion(type=kind, **extra), output, context or Context(vars={}))


# -- finish-reason ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expected", "actual", "passed"),
    [
        ("stop", "stop", True),
        ("stop", "end_turn", True),  # Anthropic's name for a natural stop
        ("length", "max_tokens", True),
        ("tool_calls", "tool_use", True),
        ("STOP", "stop", True),
        ("end_turn", "stop", True),  # the expected reason is normalized too
        ("stop", "length", False),
        ("content_filter", "refusal", True),
        ("stop", None, False),
    ],
)
def test_finish_reason(expected: str, actual: str | None, passed: bool) -> None:
    result = outcome(
        "finish-reason", context=Context(vars={}, finish_reason=actual), value=expected
    )
    assert (result.passed, result.score, result.error) == (passed, float(passed), None)


def test_finish_reason_negated_and_unknown_reasons() -> None:
    ctx = Context(vars={}, finish_reason="length")
    assert outcome("not-finish-reason", context=ctx, value="stop").passed
    assert normalize_finish_reason(" Weird_Reason ") == "weird_reason"
    assert normalize_finish_reason("") is None
    result = outcome("finish-reason", context=Context(vars={}), value="stop")
    assert "no finish reason" in result.reason


# -- perplexity ---------------------------------------------------------------------------

HALF = math.log(0.5)  # two tokens at probability 1/2: perplexity 2, score 1 / (1 + 2)


def test_perplexity_from_logprobs() -> None:
    ctx = Context(vars={}, logprobs=[HALF, HALF])
    assert outcome("perplexity", context=ctx).passed  # no threshold: it passes (promptfoo)
    assert "perplexity 2.000" in outcome("perplexity", context=ctx).reason
    assert outcome("perplexity", context=ctx, threshold=2.0).passed
    assert not outcome("perplexity", context=ctx, threshold=1.99).passed
    assert outcome("not-perplexity", context=ctx, threshold=1.5).passed
    # mean of -0.25 and -1.5 is -0.875: perplexity e^0.875 = 2.3989
    ctx = Context(vars={}, logprobs=[-0.25, -1.5])
    assert outcome("perplexity", context=ctx, threshold=2.4).passed
    assert not outcome("perplexity", context=ctx, threshold=2.39).passed


def test_perplexity_score_is_the_logistic_of_the_mean_logprob() -> None:
    ctx = Context(vars={}, logprobs=[HALF, HALF])
    result = outcome("perplexity-score", context=ctx)
    assert result.passed and result.score == pytest.approx(1 / 3)
    assert not outcome("perplexity-score", context=ctx, threshold=0.34).passed
    assert outcome("perplexity-score", context=ctx, threshold=0.33).passed
    negated = outcome("not-perplexity-score", context=ctx, threshold=0.5)
    assert negated.passed and negated.score == pytest.approx(2 / 3)
    # 1 / (1 + e^0.875) = 0.29422
    score = outcome("perplexity-score", context=Context(vars={}, logprobs=[-0.25, -1.5])).score
    assert score == pytest.approx(0.29422, abs=1e-5)


@pytest.mark.parametrize("kind", ["perplexity", "perplexity-score"])
@pytest.mark.parametrize("logprobs", [None, []])
def test_perplexity_without_logprobs_is_an_error(kind: str, logprobs: list[float] | None) -> None:
    result = outcome(kind, context=Context(vars={}, logprobs=logprobs))
    assert result.error is not None and "`logprobs: true`" in result.error
    assert not result.passed


# -- is-sql -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("SELECT name FROM users WHERE id = 1", True),
        ("select id, name from users order by name limit 5;", True),
        ("WITH c AS (SELECT a FROM t) SELECT a FROM c", True),
        ("UPDATE t SET a = 1 WHERE id = 2; DELETE FROM t WHERE a = 3", True),
        ("INSERT INTO t (a, b) VALUES (1, 2)", True),
        ("SELECT FROM", False),
        ("SELEC * FROM t", False),
        ("SELECT * FROM t WHERE", False),
        ("hello world", False),  # sqlglot reads it as an alias: not a statement
        ("The answer is 42", False),
        ("", False),
        ("   ", False),
    ],
)
def test_is_sql(text: str, valid: bool) -> None:
    result = outcome("is-sql", text)
    assert (result.passed, result.error) == (valid, None), result.reason


def test_is_sql_dialects() -> None:
    tsql = "SELECT TOP 5 name FROM users"
    assert outcome("is-sql", tsql, value={"databaseType": "TransactSQL"}).passed
    assert not outcome("is-sql", tsql).passed  # MySQL by default, as promptfoo
    assert not outcome("is-sql", tsql, value={"databaseType": "postgresql"}).passed
    quoted = "SELECT `name` FROM users"
    assert outcome("is-sql", quoted).passed
    assert not outcome("is-sql", quoted, value={"databaseType": "PostgresQL"}).passed


def test_is_sql_allowed_tables_and_columns() -> None:
    """node-sql-parser's whitelist entries, regular expressions matched whole."""
    sql = "SELECT u.name, id FROM users u JOIN orders o ON o.uid = u.id"
    tables = ["select::null::users", "select::null::orders"]
    assert outcome("is-sql", sql, value={"allowedTables": tables}).passed
    denied = outcome("is-sql", sql, value={"allowedTables": ["select::null::users"]})
    assert not denied.passed and "select::null::orders" in denied.reason
    assert outcome("is-sql", sql, value={"allowedTables": ["select::null::(users|orders)"]}).passed
    # columns: an alias is its table; an unqualified column has the table null, and an
    # allowed table::column allows null::column too (promptfoo)
    columns = ["select::users::name", "select::users::id", "select::orders::uid"]
    assert outcome("is-sql", sql, value={"allowedColumns": columns}).passed
    result = outcome("is-sql", sql, value={"allowedColumns": columns[:2]})
    assert not result.passed and "select::orders::uid" in result.reason
    # writes are their own kind; the WHERE of an UPDATE is read
    update = "UPDATE t SET a = 1 WHERE id = 2"
    assert sql_problem(update, {"allowedTables": ["update::null::t"]}) is None
    assert sql_problem(update, {"allowedTables": ["select::null::t"]}) is not None
    assert sql_problem(update, {"allowedColumns": ["update::null::a", "select::null::id"]}) is None
    assert "select::null::id" in str(sql_problem(update, {"allowedColumns": ["update::null::a"]}))
    assert sql_problem("SELECT * FROM t", {"allowedColumns": ["select::null::name"]}) is not None
    assert sql_problem("SELECT * FROM t", {"allowedColumns": [r"select::null::\(\.\*\)"]}) is None


def test_is_sql_attack_inputs_do_not_hang() -> None:
    started = time.perf_counter()
    deep = "SELECT " + "(" * 5000 + "1" + ")" * 5000
    assert not outcome("is-sql", deep).passed
    huge = outcome("is-sql", "SELECT " + "a," * 60_000 + "a FROM t")
    assert not huge.passed and "longer than 100,000" in huge.reason
    assert not outcome("is-sql", "\x00\x01 SELECT").passed
    assert time.perf_counter() - started < 10


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("SELECT", "must be a mapping"),
        ({"databaseType": "Oracle9"}, "not supported"),
        ({"databaseType": "DB2"}, "not supported"),
        ({"database": "MySQL"}, "unknown option 'database'"),
        ({"allowedTables": "users"}, "must be a list of strings"),
        ({"allowedTables": ["select::null::(users"]}, "not a valid pattern"),
    ],
)
def test_is_sql_options_that_cannot_be_honoured(value: object, problem: str) -> None:
    assert problem in str(static_problem(Assertion(type="is-sql", value=value)))


# -- tool calls ---------------------------------------------------------------------------


def tools_ctx(*calls: dict[str, object], tools=(WEATHER, NOTIFY)) -> Context:
    return Context(vars={}, tool_calls=list(calls), tools=None if tools is None else list(tools))


@pytest.mark.parametrize(
    ("calls", "passed", "reason"),
    [
        ([call("get_weather", {"city": "Paris"})], True, "1 valid"),
        ([call("get_weather", {"city": "Paris", "days": 3}), call("notify", {})], True, "2 valid"),
        ([call("get_weather", {"days": 3})], False, "'city' is a required property"),
        ([call("get_weather", {"city": "Paris", "days": "3"})], False, "days: '3' is not of type"),
        ([call("get_weather", {"city": "P", "x": 1})], False, "Additional properties"),
        ([call("get_weather", "{city: Paris}")], False, "not valid JSON"),
        ([call("get_weather", "")], False, "'city' is a required property"),
        ([call("launch", {})], False, "'launch', which the request did not offer"),
        ([], False, "no tool calls"),
    ],
)
def test_is_valid_openai_tools_call(calls: list, passed: bool, reason: str) -> None:
    result = outcome("is-valid-openai-tools-call", context=tools_ctx(*calls))
    assert (result.passed, result.error) == (passed, None)
    assert reason in result.reason


def test_tools_call_without_offered_tools_or_with_a_bad_schema_is_an_error() -> None:
    result = outcome(
        "is-valid-openai-tools-call", context=tools_ctx(call("notify", {}), tools=None)
    )
    assert result.error is not None and "params as `tools`" in result.error
    broken_tool = {"name": "notify", "parameters": {"type": "nonsense"}}
    ctx = tools_ctx(call("notify", {}), tools=[broken_tool])
    assert outcome("is-valid-openai-tools-call", context=ctx).error is not None
    function = outcome("is-valid-openai-function-call", context=tools_ctx(call("notify", {})))
    assert function.passed


@pytest.mark.parametrize(
    ("expected", "called", "score"),
    [
        (["a", "b"], ["a", "b"], 1.0),
        (["a", "b"], ["b", "a", "a"], 1.0),  # sets: order and repeats do not count
        (["a", "b"], ["a", "c"], 0.5),  # precision 1/2, recall 1/2
        (["a", "b", "c"], ["a"], 0.5),  # precision 1, recall 1/3: 2 * (1/3) / (4/3)
        ("a, b", ["a"], 2 / 3),  # precision 1, recall 1/2
        (["a"], [], 0.0),
    ],
)
def test_tool_call_f1(expected: object, called: list[str], score: float) -> None:
    ctx = tools_ctx(*(call(name, {}) for name in called))
    result = outcome("tool-call-f1", context=ctx, value=expected)
    assert result.score == pytest.approx(score)
    assert result.passed is (score == 1.0)  # default threshold 1.0, as promptfoo
    assert outcome("tool-call-f1", context=ctx, value=expected, threshold=0.5).passed is (
        score >= 0.5
    )


@pytest.mark.parametrize(
    ("assertion", "problem"),
    [
        ({"type": "finish-reason"}, "value must be the expected reason"),
        ({"type": "finish-reason", "value": 3}, "value must be the expected reason"),
        ({"type": "perplexity", "value": 3}, "give the bound as threshold"),
        ({"type": "perplexity", "threshold": -1}, "at least 0"),
        ({"type": "not-perplexity"}, "needs a threshold"),
        ({"type": "tool-call-f1"}, "expected tool names"),
        ({"type": "tool-call-f1", "value": " , "}, "expected tool names"),
        ({"type": "tool-call-f1", "value": ["a"], "threshold": 2}, "from 0 to 1"),
        ({"type": "is-valid-openai-tools-call", "value": "x"}, "takes no value"),
    ],
)
def test_load_time_problems(assertion: dict[str, object], problem: str) -> None:
    assert problem in str(static_problem(Assertion.model_validate(assertion)))
