"""The example prompts shipped in prompts/ are valid, render, and their labels resolve."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest

from llmops.prompts import PromptRegistry

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = {
    "support/answer": {"question": "How do I reset my router?", "product": "Acme Router"},
    "extract/ticket": {"email": "Hi, I was billed twice this month. Please refund. - Kim"},
    "summarize/thread": {"messages": [{"author": "customer", "text": "Wi-Fi drops hourly."}]},
}


@pytest.fixture(scope="module")
def registry() -> PromptRegistry:
    return PromptRegistry(ROOT / "prompts")


def test_examples_validate(registry: PromptRegistry) -> None:
    assert registry.names() == sorted(SAMPLES)
    assert [str(p) for p in registry.validate()] == []


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_examples_render(registry: PromptRegistry, name: str) -> None:
    prompt = registry.load(name)
    messages = prompt.render(SAMPLES[name])
    assert messages[-1]["role"] == "user"
    assert all(m["content"].strip() for m in messages)
    assert prompt.model and prompt.description


def test_extraction_prompt_has_a_usable_output_schema(registry: PromptRegistry) -> None:
    schema = registry.load("extract/ticket").output_schema
    assert schema is not None
    good = {"category": "billing", "priority": "high", "summary": "Billed twice", "product": None}
    jsonschema.validate(good, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**good, "priority": "whenever"}, schema)


def test_production_label_names_an_older_committed_version(registry: PromptRegistry) -> None:
    production = registry.load("support/answer@production")
    current = registry.load("support/answer")
    assert production.commit is not None
    assert production.version != current.version  # the working tree is the candidate


@pytest.mark.integration  # `python -m llmops eval run` in a real process
def test_example_suites_run_offline_and_pass_their_gates(tmp_path) -> None:
    """The shipped suites (20+ cases) run offline, end to end, and pass."""
    import json
    import os
    import subprocess
    import sys

    from llmops.evals.suite import load_suite

    support = load_suite(ROOT / "evals" / "support.yaml")
    assert len(support.cases) >= 20
    out = tmp_path / "report.json"
    env = {
        **os.environ,
        "LLMOPS_HOME": str(tmp_path / "home"),
        "LLMOPS_DATABASE_URL": f"sqlite:///{tmp_path / 'calls.db'}",
    }
    result = subprocess.run(
        [sys.executable, "-m", "llmops", "eval", "run", "--offline", "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    suites = {s["suite"]: s for s in json.loads(out.read_text())["suites"]}
    assert set(suites) == {"support", "ticket"}
    runs = {r["role"]: r for r in suites["support"]["runs"]}
    # the working-tree prompt is the better one: the comparison must show it
    assert runs["candidate"]["pass_rate"]["rate"] >= 0.8
    assert runs["candidate"]["passed"] > runs["baseline"]["passed"]
    comparison = suites["support"]["comparisons"]["gpt-4o-mini"]
    assert not comparison["significant_regression"] and comparison["better"]
