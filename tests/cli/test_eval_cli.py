"""``llmops eval run`` end to end in a real process: exit codes, reports, cache, dry run."""

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
    assert "Pass-rate gate (>= 100%): ok" in result.stdout
    assert len(server.requests) == 20
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites" and root.get("tests") == "20" and root.get("failures") == "0"
    suites = root.findall("testsuite")
    assert len(suites) == 2 and all(len(s.findall("testcase")) == 10 for s in suites)
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
    assert "significant regression (exact McNemar p = 0.00195" in failed.stdout
    assert "pass -> fail: c0, c1" in failed.stdout
    assert "Gate failed: pass rate below threshold in greet" in failed.stdout
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
