"""``llmops eval run`` end to end (the in-process ``cli``): exit codes, reports, cache, dry run."""

from __future__ import annotations

import json
import textwrap
from xml.etree import ElementTree as ET

import pytest

from tests.conftest import TEN_CASES as CASES
from tests.conftest import PromptRepo


def write_suite(repo: PromptRepo, body: str, name: str = "greet.yaml") -> None:
    path = repo.root / "evals" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(textwrap.dedent(body))


@pytest.fixture
def run_eval(cli, server, project, tmp_path):
    """``llmops eval run`` against the echo server (litellm reads OPENAI_API_BASE)."""
    env = {
        "OPENAI_API_BASE": server.base_url,
        "OPENAI_API_KEY": "sk-test",
        "LLMOPS_HOME": str(tmp_path / "home"),
        "LLMOPS_DATABASE_URL": f"sqlite:///{tmp_path / 'calls.db'}",
    }
    return lambda *args: cli("eval", "run", *args, cwd=project.root, env=env)


def test_an_unreachable_database_stops_the_run_before_any_model_call(
    run_eval, project, server
) -> None:
    """The database was first opened to store the results: every case was run (and paid
    for), then the run ended with `error: database: ...` and no report."""
    write_suite(project, f"prompt: greet\ncases:\n{CASES}\n")
    result = run_eval("--database-url", "postgresql://nobody@127.0.0.1:1/none")
    assert result.code == 1 and result.stderr.startswith("error: database:"), result.stderr
    assert server.requests == []


def test_passing_suite_exits_0_and_writes_reports(run_eval, project, server, tmp_path) -> None:
    write_suite(
        project,
        f"prompt: greet\ndefaults:\n  assert: [{{type: icontains, value: n}}]\ncases:\n{CASES}\n",
    )
    junit, markdown, as_json = (tmp_path / f"report.{x}" for x in ("xml", "md", "json"))
    result = run_eval("--junit", str(junit), "--markdown", str(markdown), "--json", str(as_json))
    assert result.code == 0, result.stdout + result.stderr
    assert "candidate  working" in result.stdout and "baseline   production" in result.stdout
    assert "100.0% [72.2%, 100.0%]" in result.stdout  # Wilson interval of 10/10
    assert "Pass-rate gate (>= 100% of cases): ok" in result.stdout
    assert len(server.requests) == 20
    for report in (junit, markdown, as_json):  # they hold the outputs: owner-only
        assert report.stat().st_mode & 0o777 == 0o600, report
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites" and root.get("tests") == "10" and root.get("failures") == "0"
    (suite,) = root.findall("testsuite")  # the candidate; its baseline is in the properties
    assert len(suite.findall("testcase")) == 10
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties["verdict"] == "no difference"
    assert properties["baseline"].startswith("production (")
    assert "| candidate | `working`" in markdown.read_text()
    data = json.loads(as_json.read_text())
    (suite,) = data["suites"]
    assert [r["role"] for r in suite["runs"]] == ["candidate", "baseline"]
    assert suite["comparisons"]["gpt-4o-mini"]["verdict"] == "no difference"
    # a second run replays the cache: no new model calls
    again = run_eval()
    assert again.code == 0 and len(server.requests) == 20
    # --no-cache calls again
    assert run_eval("--no-cache", "--baseline", "none").code == 0
    assert len(server.requests) == 30


def test_gates_and_exit_codes(run_eval, project, server, tmp_path) -> None:
    write_suite(
        project,
        f"prompt: greet\nthreshold: 0.5\ndefaults:\n  assert: [{{type: contains, value: Hello}}]\n"
        f"cases:\n{CASES}\n",
    )
    junit = tmp_path / "junit.xml"
    # all ten cases flip pass -> fail: a significant regression, and below the threshold
    failed = run_eval("--junit", str(junit))
    assert failed.code == 1
    assert "Candidate vs baseline on gpt-4o-mini: significant regression" in failed.stdout
    assert "10 cases worse, 0 better of 10 compared; one-sided exact p = 0.000977" in failed.stdout
    assert "worse (pass -> fail or fewer repeats passing): c0, c1" in failed.stdout
    assert "Gate failed: greet on gpt-4o-mini: pass rate 0.0%" in failed.stdout
    assert ET.parse(junit).getroot().get("failures") == "10"
    # the baseline itself passes: no regression and above the threshold
    assert run_eval("--version", "production", "--baseline", "none").code == 0
    # a regression without a threshold failure gates only with --fail-on-regression
    write_suite(
        project,
        f"prompt: greet\nthreshold: 0\ndefaults:\n  assert: [{{type: contains, value: Hello}}]\n"
        f"cases:\n{CASES}\n",
    )
    warned = run_eval()
    assert warned.code == 0 and "add --fail-on-regression" in warned.stdout
    assert run_eval("--fail-on-regression").code == 1
    # the other way round it got better: the p-value shown is that direction's
    better = run_eval("--version", "production", "--baseline", "working", "--fail-on-regression")
    assert better.code == 0, better.stdout + better.stderr
    assert "significant improvement" in better.stdout
    assert "10 better of 10 compared; one-sided exact p (better) = 0.000977" in better.stdout


@pytest.mark.parametrize(
    ("suite", "args", "message"),
    [
        (
            "prompt: greet\ncases:\n  - assert: [{type: smells-good}]\n",
            (),
            "unknown assertion type",
        ),
        ("prompt: nope\ncases: [{vars: {name: A}}]\n", (), "no prompt 'nope'"),
        ("prompt: greet\ncases: [{vars: {name: A}}]\n", ("--baseline", "zzz"), "version 'zzz'"),
        ("prompt: greet\ncases: [{vars: {name: A}}]\n", ("missing-dir",), "no such suite"),
    ],
)
def test_bad_input_exits_2(run_eval, project, server, suite, args, message) -> None:
    write_suite(project, suite)
    result = run_eval(*args)
    assert result.code == 2, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert server.requests == []


def test_dry_run_counts_calls_and_estimates_cost(run_eval, project, server) -> None:
    write_suite(project, f"prompt: greet\nrepeat: 2\ncases:\n{CASES}\n")
    result = run_eval("--dry-run")
    assert result.code == 0, result.stderr
    assert "40 case runs: 40 model call(s), 0 from the cache" in result.stdout
    assert "estimated cost at most $0.0" in result.stdout
    assert server.requests == []


def test_dry_run_counts_the_judge_calls_of_model_graded_assertions(run_eval, project) -> None:
    """g-eval asks twice (steps, then the score), factuality once, similar no judge."""
    write_suite(
        project,
        "prompt: greet\ndefaults:\n  assert:\n    - {type: g-eval, value: warm}\n"
        "    - {type: factuality, value: Howdy}\n    - {type: similar, value: Howdy}\n"
        f"cases:\n{CASES}\n",
    )
    result = run_eval("--dry-run")
    assert result.code == 0, result.stderr
    assert "20 case runs: 20 model call(s), 0 from the cache, up to 60 judge call(s)" in (
        result.stdout
    )


def test_a_run_with_similar_through_the_cli(run_eval, project, server) -> None:
    """The CLI's Gateway embeds through the same server: the echo is similar to itself."""
    write_suite(
        project,
        "prompt: greet\nversions: [working]\ndefaults:\n  assert:\n"
        "    - {type: similar, value: 'Echo: Howdy, {{ name }}!'}\n"
        f"cases:\n{CASES}\n",
    )
    result = run_eval()
    assert result.code == 0, result.stdout + result.stderr
    embedded = [r for r in server.requests if r.path.endswith("/embeddings")]
    assert len(embedded) == 10 and embedded[0].body["model"] == "text-embedding-3-small"


# -- verdicts that never cry wolf (an outage, flaky answers, broken checks) ------------------


def asks(request, word: str) -> bool:
    return word in json.dumps(request.body)


def test_an_outage_is_inconclusive_not_a_regression(run_eval, project, server, tmp_path):
    """Issue: every candidate call answering 503 was reported as a significant regression
    (exit 1), and the JUnit file said errors="0"."""
    from llmops.testing import Reply

    write_suite(
        project,
        f"prompt: greet\nthreshold: 0.5\ndefaults:\n  assert: [{{type: contains, value: Hello}}]"
        f"\ncases:\n{CASES}\n",
    )
    server.set_responder(
        lambda request: Reply(status=503, text="overloaded") if asks(request, "Howdy") else None
    )
    junit, markdown = tmp_path / "junit.xml", tmp_path / "summary.md"
    result = run_eval("--fail-on-regression", "--junit", str(junit), "--markdown", str(markdown))
    assert result.code == 3, result.stdout + result.stderr
    assert "significant regression" not in result.stdout
    assert "Inconclusive: 10 of 20 results errored" in result.stdout
    root = ET.parse(junit).getroot()
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("10", "0", "10")
    errors = [e.get("message") for e in root.iter("error")]
    assert len(errors) == 10 and all("model call failed" in m for m in errors)
    summary = markdown.read_text()
    assert summary.startswith("## llmops eval: ⚠️ inconclusive")
    assert "10 cases errored on gpt-4o-mini" in summary
    # some errors may be allowed
    allowed = run_eval("--fail-on-regression", "--max-errors", "10")
    assert allowed.code == 0, allowed.stdout
    assert "Errors: 10 of 20 results errored" in allowed.stdout


def test_pass_to_flaky_is_a_regression(run_eval, project, server, tmp_path) -> None:
    """Issue: cases that always passed and now fail 2 of 3 repeats gave "no difference"."""
    import threading

    from llmops.testing import Reply

    write_suite(
        project,
        f"prompt: greet\nthreshold: 0\nrepeat: 3\n"
        f"defaults:\n  assert: [{{type: contains, value: Hello}}]\ncases:\n{CASES}\n",
    )
    calls: dict[str, int] = {}
    lock = threading.Lock()

    def answer(request):
        if not asks(request, "Howdy"):
            return None  # the baseline: "Echo: Hello, N!" passes every time
        with lock:
            key = json.dumps(request.body["messages"])
            calls[key] = calls.get(key, 0) + 1
            return Reply(text="Hello!") if calls[key] == 3 else None  # passes 1 of 3

    server.set_responder(answer)
    as_json = tmp_path / "out.json"
    result = run_eval("--fail-on-regression", "--json", str(as_json))
    assert result.code == 1, result.stdout + result.stderr
    assert "Candidate vs baseline on gpt-4o-mini: significant regression" in result.stdout
    comparison = json.loads(as_json.read_text())["suites"][0]["comparisons"]["gpt-4o-mini"]
    assert len(comparison["worse"]) == 10 and len(comparison["flaky"]) == 10
    assert comparison["candidate"]["n"] == 10  # cases, not repeats
    assert comparison["candidate"]["rate"] == pytest.approx(1 / 3)


def test_a_score_out_of_range_is_an_error_not_a_pass(run_eval, project, server, tmp_path):
    """Issue: a python check returning 250 made a case with two failed checks pass."""
    (project.root / "evals").mkdir(exist_ok=True)
    (project.root / "evals" / "checks.py").write_text(
        "def huge(output, context):\n    return 250\n"
    )
    write_suite(
        project,
        "prompt: greet\nthreshold: 0\ncases:\n  - id: one\n    vars: {name: A}\n"
        "    threshold: 0.5\n    assert:\n      - {type: python, value: 'file://checks.py:huge'}\n"
        "      - {type: contains, value: zzz}\n      - {type: contains, value: yyy}\n",
    )
    as_json = tmp_path / "out.json"
    result = run_eval("--baseline", "none", "--json", str(as_json))
    assert result.code == 3, result.stdout + result.stderr
    (case,) = json.loads(as_json.read_text())["suites"][0]["runs"][0]["cases"]
    assert case["passed"] is None
    assert case["error"] == "python returned score 250.0, outside [0, 1]"


def test_junit_is_well_formed_whatever_the_output(run_eval, project, server, tmp_path) -> None:
    """Issue: an ANSI escape in an output made the JUnit file unreadable (GitLab drops it)."""
    from llmops.testing import Reply

    forbidden = "".join(chr(c) for c in range(32) if chr(c) not in "\t\n\r") + "\ufffe\uffff"
    server.set_responder(lambda request: Reply(text=f"\x1b[31mred{forbidden}end"))
    assertion = "defaults:\n  assert: [{type: contains, value: Hello}]\n"
    write_suite(project, f"prompt: greet\n{assertion}cases:\n{CASES}\n")
    junit = tmp_path / "junit.xml"
    run_eval("--junit", str(junit))
    root = ET.parse(junit).getroot()  # raises on a file that is not well-formed
    failure = next(root.iter("failure"))
    assert "\\x1b[31mred" in failure.text and "\\x00" in failure.text and "end" in failure.text


def test_the_summary_tells_a_reviewer_what_changed(run_eval, project, server, tmp_path) -> None:
    write_suite(
        project,
        f"prompt: greet\nthreshold: 0\ndefaults:\n  assert: [{{type: contains, value: Hello,"
        f" metric: greeting}}]\ncases:\n{CASES}\n",
    )
    markdown = tmp_path / "summary.md"
    warned = run_eval("--markdown", str(markdown))
    assert warned.code == 0
    summary = markdown.read_text()
    assert summary.startswith("## llmops eval: ⚠️ regression (not gating)")  # exit 0: no ❌
    assert "one-sided exact sign test (alpha 0.025)" in summary
    assert "| candidate | `working`" in summary and "[0.0%, 27.8%]" in summary
    assert "Metrics: greeting 0.00 (-1.00)." in summary
    assert "<details><summary>10 cases worse than the baseline</summary>" in summary
    assert "| c0 | missing 'Hello' | contains: Hello | Echo: Howdy, N0! |" in summary
    gated = run_eval("--fail-on-regression", "--markdown", str(markdown))
    assert gated.code == 1 and markdown.read_text().startswith("## llmops eval: ❌ gate failed")


def test_alpha_is_a_setting_and_small_suites_are_told(run_eval, project, server) -> None:
    assertion = "defaults:\n  assert: [{type: contains, value: Hello}]\n"
    write_suite(
        project, f"prompt: greet\nthreshold: 0\nalpha: 0.0005\n{assertion}cases:\n{CASES}\n"
    )
    strict = run_eval("--fail-on-regression")
    assert strict.code == 0 and "(alpha 0.0005)" in strict.stdout  # p = 0.000977 > 0.0005
    assert run_eval("--fail-on-regression", "--alpha", "0.01").code == 1
    five = "\n".join(f"  - id: c{i}\n    vars: {{name: N{i}}}" for i in range(5))
    write_suite(project, f"prompt: greet\nthreshold: 0\n{assertion}cases:\n{five}\n")
    small = run_eval("--fail-on-regression")
    assert small.code == 0  # 5 of 5 worse: p = 0.031, above 0.025
    assert "a regression is significant only with at least 6 cases worse" in small.stdout


def test_offline_answers_every_provider(cli, project, tmp_path) -> None:
    """`--offline` answers a model of any provider from the simulated model: Azure's
    deployment paths, Replicate's and Ollama's own APIs and Groq's response checks went
    to the network or failed before."""
    models = [
        "gpt-4o-mini", "anthropic/claude-sonnet-4-20250514", "azure/my-gpt-4o",
        "groq/llama-3.3-70b-versatile", "replicate/meta/llama-2-70b-chat",
        "ollama_chat/llama3.2:3b", "mistral/mistral-large-latest", "gemini/gemini-2.0-flash",
    ]  # fmt: skip
    write_suite(
        project,
        f"""
        prompt: greet
        versions: [working]
        models: {json.dumps(models)}
        cases:
          - {{id: ann, vars: {{name: Ann}}, assert: [{{type: latency, threshold: 60000}}]}}
        """,
    )
    report = tmp_path / "report.json"
    env = {
        "LLMOPS_HOME": str(tmp_path / "home"),
        "LLMOPS_DATABASE_URL": f"sqlite:///{tmp_path / 'calls.db'}",
        "OLLAMA_API_BASE": "http://127.0.0.1:9",  # nothing listens: offline must not go there
    }
    result = cli("eval", "run", "--offline", "--json", str(report), cwd=project.root, env=env)
    assert result.code == 0, result.stdout + result.stderr
    (suite,) = json.loads(report.read_text())["suites"]
    assert sorted(r["model"] for r in suite["runs"]) == sorted(models)
    assert all(r["errored_cases"] == [] and r["passed"] == 1 for r in suite["runs"])
