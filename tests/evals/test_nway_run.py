"""Three prompt versions through a real Gateway and the fake model server: the N-way report
says which one is worse, the gate stays candidate vs baseline; model entries' params reach
the provider."""

from __future__ import annotations

import json
import textwrap

import pytest

from llmops.evals import report as render
from llmops.evals.history import version_comparisons
from llmops.evals.runner import Runner, plan
from llmops.evals.storage import save_report
from llmops.evals.suite import load_suite
from llmops.testing import RecordedRequest, Reply
from tests.conftest import PromptRepo, prompt_yaml

TWELVE = "\n".join(f"  - id: c{i:02d}\n    vars: {{name: N{i}}}" for i in range(12))


def routes(server):
    return lambda model: {"api_base": server.base_url, "api_key": "sk-test", "num_retries": 0}


def by_prompt(request: RecordedRequest) -> Reply:
    """Helpful unless the prompt opens with 'Yo' (the version that is clearly worse)."""
    text = request.body["messages"][-1]["content"]
    return Reply(text="whatever" if text.startswith("Yo") else f"Glad to help: {text}")


@pytest.fixture
def three_versions(repo: PromptRepo) -> tuple[PromptRepo, str]:
    """``greet``: Hello (production), then Yo (committed, the worse one), then Hi (working)."""
    repo.write("greet.yaml", prompt_yaml("Hello"))
    repo.commit("v1")
    repo.registry.promote("greet", "HEAD", "production")
    repo.write("greet.yaml", prompt_yaml("Yo"))
    worse = repo.commit("v2")[:12]
    repo.write("greet.yaml", prompt_yaml("Hi"))
    return repo, worse


def write_suite(repo: PromptRepo, body: str) -> object:
    path = repo.root / "evals" / "greet.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(textwrap.dedent(body))
    return load_suite(path)


def test_three_versions_one_clearly_worse(
    three_versions, server, make_gateway, database_url
) -> None:
    repo, worse = three_versions
    suite = write_suite(
        repo,
        f"prompt: greet\nversions: [working, production, {worse}]\n"
        f"defaults:\n  assert: [{{type: icontains, value: glad}}]\ncases:\n{TWELVE}\n",
    )
    server.set_responder(by_prompt)
    gateway = make_gateway(prompts=repo.prompts, source="eval")
    report = Runner(gateway, call_kwargs=routes(server)).run(plan(suite, repo.registry))
    assert len(server.requests) == 36
    assert [run.passed for run in report.runs] == [12, 12, 0]
    # the gate: candidate vs baseline only, and they agree
    assert report.comparisons["gpt-4o-mini"].verdict == "no difference"
    gates = render.Gates([report], fail_on_regression=True)
    assert gates.exit_code == 0
    # N-way: 12 cases better with each good version than with the worse one:
    # p = 2 / 2**12, Holm over 3 pairs: 3 x, 2 x (then monotone); the good two are alike
    nway = report.nway["gpt-4o-mini"]
    pairs = {(p.first, p.second): p for p in nway.pairs}
    assert set(pairs) == {("working", "production"), ("working", worse), ("production", worse)}
    assert pairs[("working", "production")].verdict == "indistinguishable"
    assert pairs[("working", "production")].holm_p == 1.0
    for good in ("working", "production"):
        found = pairs[(good, worse)]
        assert (len(found.first_better), len(found.second_better)) == (12, 0)
        assert found.p_value == 2 / 4096 and found.better == good
    assert sorted(pairs[(g, worse)].holm_p for g in ("working", "production")) == [
        pytest.approx(3 * 2 / 4096),
        pytest.approx(3 * 2 / 4096),  # Holm is monotone: max(3p, 2p)
    ]
    ranking = nway.ranking()
    assert [r.key for r in ranking] == ["working", "production", worse]
    assert ranking[2].worse_than == ["working", "production"]

    console = render.console(report)
    assert "All versions on gpt-4o-mini (exact two-sided sign tests, Holm-adjusted over the " in (
        console
    )
    assert f"working vs {worse}: working better than {worse}; 12 cases better with working" in (
        console
    )
    assert "working vs production: indistinguishable" in console
    assert "informational, never gates" in console

    markdown = render.markdown([report], gates)
    assert "**All versions on gpt-4o-mini**" in markdown
    assert f"| 3 | `{worse}` (" in markdown
    assert "| 0.0% [0.0%, 24.2%] | - | working, production | - |" in markdown
    assert "## llmops eval: ✅ passed" in markdown

    data = json.loads(json.dumps(render.to_json([report], gates)))
    (suite_data,) = data["suites"]
    shown = suite_data["nway"]["gpt-4o-mini"]
    assert shown["gates"] is False
    assert [r["name"] for r in shown["ranking"]] == ["working", "production", worse]
    assert shown["ranking"][2]["worse_than"] == ["working", "production"]
    assert shown["ranking"][0]["indistinguishable_from"] == ["production"]
    assert {(p["a"], p["b"]): p["significant"] for p in shown["pairs"]} == {
        ("working", "production"): False,
        ("working", worse): True,
        ("production", worse): True,
    }

    # stored per target: the same comparison again from the database
    save_report(gateway.engine, report)
    again = version_comparisons(gateway.engine, report.batch_id, "greet")
    assert [(p.first, p.second, p.p_value, p.adjusted_p) for p in again["gpt-4o-mini"].pairs] == [
        (p.first, p.second, p.p_value, p.adjusted_p) for p in nway.pairs
    ]


def test_two_versions_make_no_nway_table(three_versions, server, make_gateway) -> None:
    repo, _ = three_versions
    suite = write_suite(repo, f"prompt: greet\ncases:\n{TWELVE}\n")
    report = Runner(make_gateway(prompts=repo.prompts), call_kwargs=routes(server)).run(
        plan(suite, repo.registry)
    )
    assert len(report.runs) == 2 and report.nway == {}
    assert "All versions" not in render.console(report)


def test_model_params_reach_the_provider(three_versions, server, make_gateway, tmp_path) -> None:
    """The same model twice with other params: two targets, named by their labels, each
    request with its own params over the prompt's (temperature 0.1)."""
    from llmops.evals.cache import ResponseCache

    repo, _ = three_versions
    suite = write_suite(
        repo,
        """\
        prompts: [greet, greet@production]
        models:
          - gpt-4o-mini
          - {id: gpt-4o, params: {temperature: 0, max_tokens: 50}, label: gpt-4o-t0}
          - {id: gpt-4o, params: {temperature: 0.9, seed: 7}, label: gpt-4o-hot}
        cases:
          - id: only
            vars: {name: Ann}
        """,
    )
    gateway = make_gateway(prompts=repo.prompts, source="eval")
    cache = ResponseCache(tmp_path / "cache.db")
    report = Runner(gateway, cache=cache, call_kwargs=routes(server)).run(
        plan(suite, repo.registry)
    )
    sent = sorted(
        (
            r.body["model"],
            r.body["messages"][0]["content"],
            r.body.get("temperature"),
            r.body.get("max_tokens"),
            r.body.get("seed"),
        )
        for r in server.requests
    )
    assert sent == [
        ("gpt-4o", "Hello, Ann!", 0, 50, None),
        ("gpt-4o", "Hello, Ann!", 0.9, None, 7),
        ("gpt-4o", "Hi, Ann!", 0, 50, None),
        ("gpt-4o", "Hi, Ann!", 0.9, None, 7),
        ("gpt-4o-mini", "Hello, Ann!", 0.1, None, None),
        ("gpt-4o-mini", "Hi, Ann!", 0.1, None, None),
    ]
    assert [(run.target.role, run.model) for run in report.runs] == [
        ("candidate", "gpt-4o-mini"),
        ("candidate", "gpt-4o-t0"),
        ("candidate", "gpt-4o-hot"),
        ("baseline", "gpt-4o-mini"),
        ("baseline", "gpt-4o-t0"),
        ("baseline", "gpt-4o-hot"),
    ]
    # each candidate is compared with the baseline of its own entry
    assert set(report.comparisons) == {"gpt-4o-mini", "gpt-4o-t0", "gpt-4o-hot"}
    console = render.console(report)
    assert "prompts greet, greet@production" in console
    assert "candidate  greet (" in console and "gpt-4o-hot" in console
    # the labels are what is stored; a second run is answered from the cache, per entry
    save_report(gateway.engine, report)
    from llmops.store.queries import eval_runs

    stored = {(r.model, r.prompt_name, r.prompt_ref) for r in eval_runs(gateway.engine)}
    assert ("gpt-4o-t0", "greet", "production") in stored and len(stored) == 6
    again = Runner(gateway, cache=cache, call_kwargs=routes(server)).run(plan(suite, repo.registry))
    assert len(server.requests) == 6 and all(run.cached == 1 for run in again.runs)


@pytest.mark.parametrize(
    ("baseline", "roles"),
    [
        (None, ["candidate", "baseline", "other"]),
        ("none", ["candidate", "other"]),  # no baseline: the third version is not promoted
        ("production", ["candidate", "baseline", "other"]),
    ],
)
def test_baseline_none_leaves_the_other_versions_others(three_versions, baseline, roles) -> None:
    """`--baseline none` with three listed versions made the third one the baseline, and
    the run gated against it."""
    from llmops.evals.runner import resolve_targets

    repo, worse = three_versions
    suite = write_suite(repo, f"prompt: greet\nversions: [working, production, {worse}]\n"
                              "cases:\n  - id: a\n")  # fmt: skip
    targets = resolve_targets(suite, repo.registry, baseline=baseline)
    assert [t.role for t in targets] == roles
    assert targets[-1].ref == worse


def test_a_baseline_that_is_the_candidate_is_no_baseline(three_versions) -> None:
    from llmops.evals.runner import resolve_targets

    repo, worse = three_versions
    suite = write_suite(repo, f"prompt: greet\nversions: [working, working, {worse}]\n"
                              "cases:\n  - id: a\n")  # fmt: skip
    targets = resolve_targets(suite, repo.registry)
    assert [(t.role, t.ref) for t in targets] == [("candidate", "working"), ("other", worse)]
