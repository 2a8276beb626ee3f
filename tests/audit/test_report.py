"""``llmops audit report``: every figure of the report against what the fixture seeded (or,
for latencies, against the stored values), on SQLite and PostgreSQL; the three formats
carrying the same content; the JSON against its schema; bad arguments as one-line errors."""

from __future__ import annotations

import html
import json
import math
import re
import stat
import sys
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import sqlalchemy as sa

from llmops.audit.render import render, report_data, to_html, to_json, to_markdown
from llmops.audit.report import SECTION_TITLES, Report
from llmops.money import usd
from llmops.prompts import PromptRegistry
from llmops.store.engine import check_schema, create_engine
from llmops.store.queries.timing import RELATIVE_ERROR
from tests.audit.conftest import HOSTILE, PROMPT, THRESHOLD, History, build
from tests.conftest import PromptRepo, prompt_yaml

SCHEMA = Path(__file__).parents[2] / "llmops" / "audit" / "report.schema.json"
Z = 1.959963984540054


# -- arithmetic done here, independently of llmops ---------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def wilson(successes: float, n: int) -> tuple[float, float]:
    p = successes / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / (1 + Z * Z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_and_interval(scores: list[float]) -> tuple[float, float, float]:
    """Wilson for 0/1 scores, else mean +- z * s / sqrt(n) within the scores' range."""
    n = len(scores)
    mean = sum(scores) / n
    if set(scores) <= {0.0, 1.0}:
        return (mean, *wilson(sum(scores), n))
    s = math.sqrt(sum((x - mean) ** 2 for x in scores) / (n - 1))
    return (
        mean,
        max(min(scores), mean - Z * s / math.sqrt(n)),
        min(max(scores), mean + Z * s / math.sqrt(n)),
    )


def sign_test(worse: int, better: int) -> float:
    n = worse + better
    return sum(math.comb(n, i) for i in range(worse, n + 1)) / 2**n


# -- 1. identity --------------------------------------------------------------------------------


def test_versions_commits_and_label_history_are_the_seeded_ones(history: History) -> None:
    report = build(history)
    identity = report.identity
    assert identity.prompt == PROMPT and identity.file == f"prompts/{PROMPT}.yaml"
    keys = ["v1", "v2", "v3"]
    assert [v.version for v in identity.versions] == [history.versions[k] for k in keys]
    for key, version in zip(keys, identity.versions, strict=True):
        (commit,) = version.commits
        assert commit.sha == history.commits[key]
        assert (commit.author, commit.email) == ("Ada Tester", "ada@example.com")
        assert commit.subject.startswith(f"{PROMPT}: say ")
    assert identity.versions[-1].commits[0].subject.endswith(HOSTILE)
    assert identity.versions[-1].labels_now == ["production"]
    assert identity.versions[1].labels_now == ["staging"]
    changes = [
        (c.label, c.version, c.previous, c.at, c.commit, c.author) for c in identity.label_history
    ]
    expected = [
        (p.label, p.version, p.previous, p.at, p.commit, p.author) for p in history.promotions
    ]
    assert changes == expected
    assert all(c.in_period for c in identity.label_history)
    assert not identity.labels_uncommitted


def test_a_label_change_left_uncommitted_is_flagged(history: History) -> None:
    PromptRegistry(history.prompts).promote(PROMPT, history.versions["v1"], "production")
    report = build(history)
    assert report.identity.labels_uncommitted
    assert len(report.identity.label_history) == len(history.promotions)  # not evidence


# -- 2. text ------------------------------------------------------------------------------------


def test_texts_schemas_and_diffs(history: History) -> None:
    report = build(history)
    texts = {t.version: t for t in report.texts.versions}
    v = history.versions
    for key in ("v1", "v2", "v3"):
        text = texts[v[key]]
        assert text.source == history.sources[key]
        assert text.source_from == f"commit {history.commits[key]}"
        assert text.input_schema == {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string"}},
        }
        assert text.output_schema is None
    assert texts[v["v1"]].diff_from is None and texts[v["v1"]].diff is None
    for old, new, said, says in (("v1", "v2", "Hello", "Hi"), ("v2", "v3", "Hi", "Hey")):
        text = texts[v[new]]
        assert text.diff_from == v[old]
        lines = (text.diff or "").splitlines()
        assert lines[:2] == [f"--- {PROMPT}@{v[old]}", f"+++ {PROMPT}@{v[new]}"]
        removed = [line for line in lines[2:] if line.startswith("-")]
        added = [line for line in lines[2:] if line.startswith("+")]
        assert removed == [f'-    content: "{said}, {{{{ name }}}}!"']
        assert added == [f'+    content: "{says}, {{{{ name }}}}!"']
        assert patch(history.sources[old], text.diff or "") == history.sources[new]


def patch(old: str, diff: str) -> str:
    """Apply a unified diff to ``old``, checking every context and removed line."""
    source, result, at = old.splitlines(), [], 0
    for line in diff.splitlines()[2:]:
        hunk = re.match(r"@@ -(\d+)(?:,\d+)? \+\d+(?:,\d+)? @@", line)
        if hunk:
            start = int(hunk[1]) - 1
            result += source[at:start]
            at = start
        elif line.startswith((" ", "-")):
            assert source[at] == line[1:], (source[at], line)
            at += 1
            if line.startswith(" "):
                result.append(line[1:])
        else:
            assert line.startswith("+"), line
            result.append(line[1:])
    return "\n".join(result + source[at:]) + "\n"


# -- 3. testing evidence ------------------------------------------------------------------------


def test_eval_runs_pass_rates_comparisons_and_promotions(history: History) -> None:
    report = build(history)
    runs = report.testing.runs
    assert [(r.id, r.role, r.version, r.started_at) for r in runs] == [
        (s.id, s.role, s.version, s.started_at)
        for s in sorted(history.runs, key=lambda s: (s.started_at, s.id))
    ]
    seeded = {s.id: s for s in history.runs}
    for run in runs:
        s = seeded[run.id]
        assert (run.cases, run.completed_cases) == (s.cases, s.cases)
        assert run.pass_rate == pytest.approx(s.passed_cases / s.cases)
        low, high = wilson(s.passed_cases, s.cases)
        assert (run.pass_rate_low, run.pass_rate_high) == (pytest.approx(low), pytest.approx(high))
        assert run.threshold == THRESHOLD and run.threshold_from == f"evals/{PROMPT}.yaml"
        assert run.passing == (s.passed_cases / s.cases >= THRESHOLD)
    v = history.versions
    rates = {(r.version, r.role): r.passed_results for r in runs}
    assert rates[(v["v1"], "candidate")] == 9 and rates[(v["v2"], "candidate")] == 10
    assert rates[(v["v3"], "candidate")] == 9
    compared = {r.version: r.comparison for r in runs if r.comparison is not None}
    assert set(compared) == {v["v2"], v["v3"]}
    better, worse = compared[v["v2"]], compared[v["v3"]]
    assert better is not None and worse is not None
    assert (better.baseline_version, better.improvements, better.regressions) == (v["v1"], 1, 0)
    assert better.p_value == pytest.approx(sign_test(0, 1))
    assert [(f.case_id, f.direction) for f in better.flipped] == [("c9", "better")]
    assert (worse.baseline_version, worse.improvements, worse.regressions) == (v["v2"], 0, 1)
    assert worse.p_value == pytest.approx(sign_test(1, 0))
    assert worse.verdict == "no significant difference"
    assert [(f.case_id, f.direction) for f in worse.flipped] == [("c9", "worse")]

    checks = {p.version: p for p in report.testing.promotions}
    assert [p.version for p in report.testing.promotions] == [v["v1"], v["v2"], v["v3"]]
    first = next(s for s in history.runs if s.version == v["v1"] and s.role == "candidate")
    second = next(s for s in history.runs if s.version == v["v2"] and s.role == "candidate")
    assert checks[v["v1"]].evaluated_before and checks[v["v1"]].run_id == first.id
    assert checks[v["v2"]].evaluated_before and checks[v["v2"]].run_id == second.id
    assert not checks[v["v3"]].evaluated_before and checks[v["v3"]].runs_before == 0
    assert checks[v["v3"]].note == "no eval run of this version before the promotion"
    promoted = [p for p in history.promotions if p.label == "production"]
    assert [c.promoted_at for c in report.testing.promotions] == [p.at for p in promoted]


# -- 4. operation -------------------------------------------------------------------------------


def stored_latencies(history: History, calls: list[Any]) -> list[float]:
    return [history.latency_ms[c.id] for c in calls if c.id in history.latency_ms]


def test_operation_figures_equal_the_seeded_traffic(history: History) -> None:
    report = build(history)
    op = report.operation
    t = op.totals
    calls = history.calls
    ok = [c for c in calls if c.status == "ok"]
    errors = [c for c in calls if c.status == "error"]
    assert (t.calls, t.errors, t.blocked, t.cancelled) == (len(calls), len(errors), 1, 0)
    assert t.sent == len(calls) - 1
    assert t.error_rate == pytest.approx(len(errors) / (len(calls) - 1))
    assert t.prompt_tokens == sum(c.prompt_tokens for c in ok)
    assert t.completion_tokens == sum(c.completion_tokens for c in ok)
    assert t.cost_usd == pytest.approx(sum(c.cost for c in ok), rel=1e-9)
    assert t.eval_calls == history.eval_calls
    latencies = stored_latencies(history, calls)
    assert len(latencies) == len(calls) - 1  # the blocked call has none
    for value, q in ((t.latency_p50_ms, 0.5), (t.latency_p95_ms, 0.95), (t.latency_p99_ms, 0.99)):
        # whole days merged from the histograms (llmops.store.queries.timing): within 1%
        assert value == pytest.approx(percentile(latencies, q), rel=RELATIVE_ERROR)
    assert sum(e.calls for e in op.error_types) == len(errors)

    by_day_model: dict[tuple[date, str], list[Any]] = defaultdict(list)
    for c in calls:
        by_day_model[(c.at.date(), c.model)].append(c)
    assert [(r.date, r.model) for r in op.cost_by_day_model] == sorted(by_day_model)
    for row in op.cost_by_day_model:
        group = by_day_model[(row.date, row.model)]
        assert row.calls == len(group)
        assert row.cost_usd == pytest.approx(sum(c.cost for c in group), rel=1e-9)
    models = {m.model: m for m in op.cost_by_model}
    for model in ("gpt-4o", "gpt-4o-mini"):
        assert models[model].cost_usd == pytest.approx(
            sum(c.cost for c in calls if c.model == model), rel=1e-9
        )
        assert models[model].calls == sum(c.model == model for c in calls)

    usage = {u.version: u for u in op.versions}
    for key, version in history.versions.items():
        mine = [c for c in calls if c.version == version]
        assert usage[version].calls == len(mine), key
        assert usage[version].errors == sum(c.status == "error" for c in mine)

    assert [(b.date, b.calls) for b in op.blocked_by_day] == [
        (c.at.date(), 1) for c in calls if c.status == "blocked"
    ]
    assert op.budget_alerts == 1
    assert [a.message for a in op.alerts] == ["cap at 90%"]  # the old one is outside

    scores: dict[str, list[float]] = defaultdict(list)
    daily: dict[tuple[str, date], list[float]] = defaultdict(list)
    for c in calls:
        for name, score in c.feedback:
            scores[name].append(score)
            daily[(name, c.at.date())].append(score)
    assert {f.name for f in op.feedback} == {"thumbs", "stars"}
    for f in op.feedback:
        mean, low, high = mean_and_interval(scores[f.name])
        assert f.count == len(scores[f.name])
        assert (f.average, f.low, f.high) == (
            pytest.approx(mean),
            pytest.approx(low),
            pytest.approx(high),
        )
        assert (f.lowest, f.highest) == (min(scores[f.name]), max(scores[f.name]))
    trend = {(p.name, p.date): (p.count, p.average) for p in op.feedback_trend}
    assert trend == {
        key: (len(values), pytest.approx(sum(values) / len(values)))
        for key, values in daily.items()
    }


def test_a_period_and_a_reference_narrow_the_report(history: History) -> None:
    start, end = (
        history.now - timedelta(days=7, hours=12),
        history.now - timedelta(days=4, hours=12),
    )
    report = build(history, start=start, end=end)
    inside = [c for c in history.calls if start <= c.at < end]
    assert report.operation.totals.calls == len(inside) > 0
    v = history.versions
    # v2 was production and staging when the period began and the only version called;
    # nothing was committed, evaluated or promoted in it
    assert [x.version for x in report.identity.versions] == [v["v2"]]
    assert [r.version for r in report.testing.runs] == []  # the eval runs are outside
    flags = [(c.version, c.label, c.in_period) for c in report.identity.label_history]
    assert flags == [(p.version, p.label, start <= p.at < end) for p in history.promotions]

    only = build(history, f"{PROMPT}@production")
    assert [x.version for x in only.identity.versions] == [v["v3"]]
    mine = [c for c in history.calls if c.version == v["v3"]]
    assert only.operation.totals.calls == len(mine)
    assert {r.version for r in only.testing.runs} == {v["v3"]}
    assert [p.version for p in only.testing.promotions] == [v["v3"]]


# -- 5. integrity and retention ------------------------------------------------------------------


def test_retention_reads_the_calls_table(history: History) -> None:
    report = build(history)
    engine = create_engine(history.database_url)
    try:
        with engine.connect() as connection:
            count, oldest = connection.execute(
                sa.text("SELECT count(*), min(created_at) FROM llm_calls")
            ).one()
    finally:
        engine.dispose()
    oldest = oldest if isinstance(oldest, datetime) else datetime.fromisoformat(str(oldest))
    oldest = oldest.replace(tzinfo=UTC) if oldest.tzinfo is None else oldest
    r = report.retention
    assert r.calls_stored == count and r.oldest_call_at == oldest
    assert not r.six_months_kept and "less than six months" in r.note
    assert r.prune_events == []


def test_a_prune_is_retention_and_integrity_evidence(history: History) -> None:
    from llmops.audit.retention import prune
    from llmops.config import Retention

    engine = create_engine(history.database_url)
    try:
        pruned = prune(engine, content_days=10, now=history.now)
    finally:
        engine.dispose()
    report = build(
        history,
        now=history.now + timedelta(seconds=1),
        retention_settings=Retention(content_days=10, minimum_days=200),
    )
    assert pruned.event is not None and pruned.content_calls > 0
    r = report.retention
    assert (r.content_days, r.calls_days, r.minimum_days) == (10, None, 200)
    assert [(e.seq, e.kind, e.rows) for e in r.prune_events] == [
        (pruned.event.seq, "prune", pruned.rows)
    ]
    assert r.prune_events[0].intact
    assert [e.seq for e in report.integrity.events] == [pruned.event.seq]
    assert report.integrity.ok is True  # a prune is accounted for, not a break
    assert "calls kept at least 200 days" in report.articles.rows[2].evidence
    markdown = to_markdown(report)
    assert "| Drop content after (days) | 10 |" in markdown
    assert "| Minimum kept (days) | 200 |" in markdown


def test_integrity_runs_the_hash_chain_verification(history: History) -> None:
    integrity = build(history).integrity
    assert integrity.ok is True and integrity.breaks == []
    assert integrity.checked.get("llm_calls", 0) > 0


# -- formats ------------------------------------------------------------------------------------


def test_json_validates_against_the_schema_and_carries_the_report(history: History) -> None:
    report = build(history)
    data = json.loads(to_json(report))
    schema = json.loads(SCHEMA.read_text("utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(
        data
    )
    assert data == report_data(report)
    t = data["operation"]["totals"]
    assert t["calls"] == len(history.calls)
    assert t["cost_usd"] == pytest.approx(sum(c.cost for c in history.calls), rel=1e-9)
    assert [v["version"] for v in data["identity"]["versions"]] == list(history.versions.values())
    # the schema is strict: an unknown field or a missing one is refused
    broken = json.loads(to_json(report))
    broken["operation"]["totals"]["surprise"] = 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)
    del broken["operation"]["totals"]["surprise"], broken["testing"]["runs"][0]["pass_rate"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def figures(report: Report) -> list[str]:
    """Figures as the Markdown and HTML show them."""
    t = report.operation.totals
    shown = [
        usd(t.cost_usd),
        f"{t.error_rate * 100:.1f}%" if t.error_rate else "",
        f"{t.latency_p95_ms:,.1f} ms",
        f"{t.prompt_tokens:,}",
    ]
    shown += [f"{r.pass_rate * 100:.1f}%" for r in report.testing.runs if r.pass_rate is not None]
    shown += [f"{f.average:,.3f}" for f in report.operation.feedback]
    shown += [usd(m.cost_usd) for m in report.operation.cost_by_model]
    shown += [v.version for v in report.identity.versions]
    shown += [c.commit[:12] for c in report.identity.label_history]
    return shown


def test_markdown_html_and_json_carry_the_same_content(history: History) -> None:
    report = build(history)
    markdown, page, data = to_markdown(report), to_html(report), json.loads(to_json(report))
    text = html.unescape(re.sub(r"<[^>]+>", "", page))
    plain_md = re.sub(r"\\(.)", r"\1", markdown)
    for shown in figures(report):
        assert shown in plain_md, shown
        assert shown in text, shown
    for title in SECTION_TITLES.values():
        assert f"## {title}" in markdown and f"<h2>{html.escape(title)}</h2>" in page
    # the same numbers in JSON
    t = report.operation.totals
    assert data["operation"]["totals"]["latency_p95_ms"] == t.latency_p95_ms
    assert data["operation"]["totals"]["error_rate"] == t.error_rate
    assert data["identity"]["versions"][-1]["commits"][0]["subject"].endswith(HOSTILE)
    # a commit message is text, never markup
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "<script>" not in markdown and "\\<script\\>" in markdown
    assert render(report, "md") == markdown and render(report, "html") == page


def test_what_would_act_on_a_terminal_or_break_html_shows_escaped(history: History) -> None:
    """Recorded values (a model, a feedback name) and prompt texts went out raw: ESC[2J
    cleared the terminal the Markdown was printed to, U+202E turned a table row around, and
    the HTML held code points HTML forbids (BEL, ESC, U+FFFE)."""
    import dataclasses

    hostile = "gpt\u202eevil\x1b[2J\x07\x7f\ufffe\u200b\u061c\U000e0041\u180e\U0001fffe&rlm;"
    report = build(history)
    operation = report.operation
    models = [dataclasses.replace(operation.cost_by_model[0], model=hostile)]
    texts = [
        dataclasses.replace(v, source=f"line one {hostile}\nline\ttwo")
        for v in report.texts.versions
    ]
    report = dataclasses.replace(
        report,
        title=f"Report {hostile}",
        operation=dataclasses.replace(operation, cost_by_model=models),
        texts=dataclasses.replace(report.texts, versions=texts),
    )
    forbidden = re.compile(
        "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b\u202e\u061c\u180e\ufffe\uffff"
        "\U000e0000-\U000e007f\U0001fffe]"
    )
    for output in (to_markdown(report), to_html(report)):
        assert not forbidden.search(output), forbidden.findall(output)
        assert "u202eevil" in output and "x1b[2J" in output.replace("\\[", "[")
        assert "line\ttwo" in output  # a text keeps its lines and tabs
    assert "\\&rlm;" in to_markdown(report)  # a character reference stays text
    assert json.loads(to_json(report))["title"] == f"Report {hostile}"  # data as it is


def test_the_html_fetches_nothing_and_prints(history: History) -> None:
    page = to_html(build(history))
    assert not re.search(r"(?i)\b(src|href)\s*=", page)
    assert not re.search(r"(?i)url\(|@import|<script|<link", page)
    assert "@media print" in page and "break-before: page" in page


# -- the command --------------------------------------------------------------------------------


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str


def _registered() -> bool:
    from llmops.cli import app

    groups = [g.typer_instance for g in app.registered_groups if g.name == "audit"]
    return any(c.name == "report" for g in groups if g for c in g.registered_commands)


@pytest.fixture
def run(cli: Any) -> Any:
    """``llmops audit report ARGS`` through ``llmops.cli.main`` once the lead has registered
    it; until then the function under a one-command Typer app, with the entry point's one
    rule applied (an LLMOpsError is ``error: ...`` and its exit code)."""
    import typer
    from typer.testing import CliRunner

    from llmops.cli.audit_report import report
    from llmops.errors import LLMOpsError

    def go(*args: str, cwd: Path) -> Outcome:
        if _registered():
            result = cli("audit", "report", *args, cwd=cwd)
            return Outcome(result.code, result.stdout, result.stderr)
        app = typer.Typer(add_completion=False)
        app.command()(report)
        outcome = CliRunner().invoke(app, list(args), catch_exceptions=True)
        if isinstance(outcome.exception, LLMOpsError):
            return Outcome(
                outcome.exception.exit_code, outcome.stdout, f"error: {outcome.exception}\n"
            )
        assert outcome.exception is None or isinstance(outcome.exception, SystemExit), (
            outcome.exception
        )
        return Outcome(outcome.exit_code, outcome.stdout, outcome.stderr)

    return go


def test_the_command_writes_markdown_and_owner_only_files(
    history: History, run: Any, tmp_path: Path
) -> None:
    common = ["--prompts-dir", str(history.prompts), "--database-url", history.database_url]
    shown = run(PROMPT, *common, cwd=tmp_path)
    assert shown.code == 0, shown.stderr
    assert shown.stdout.startswith(f"# Evidence report: prompt {PROMPT}")
    assert usd(sum(c.cost for c in history.calls)) in shown.stdout
    out = tmp_path / "report.html"
    out.write_text("old", "utf-8")
    out.chmod(0o644)
    written = run(PROMPT, *common, "--format", "html", "--out", str(out), cwd=tmp_path)
    assert written.code == 0, written.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert out.read_text("utf-8").startswith("<!DOCTYPE html>")
    day = (history.now - timedelta(days=6)).date().isoformat()
    narrowed = run(
        f"{PROMPT}@production",
        *common,
        "--format",
        "json",
        "--from",
        day,
        "--to",
        day,
        cwd=tmp_path,
    )
    assert narrowed.code == 0, narrowed.stderr
    data = json.loads(narrowed.stdout)
    assert data["period"]["start"] == f"{day}T00:00:00+00:00"
    assert (
        data["period"]["end"]
        == (date.fromisoformat(day) + timedelta(days=1)).isoformat() + "T00:00:00+00:00"
    )
    assert data["operation"]["totals"]["calls"] == 0  # v3 was not in use six days ago


@pytest.fixture
def small(repo: PromptRepo, tmp_path: Path) -> tuple[PromptRepo, str]:
    """One committed prompt and an empty, current database (SQLite)."""
    repo.write(f"{PROMPT}.yaml", prompt_yaml("Hello"))
    repo.commit("v1")
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = create_engine(url)
    check_schema(engine)
    engine.dispose()
    return repo, url


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "error: no prompt 'nope' in"),
        (
            [f"{PROMPT}@nolabel"],
            f"error: prompt '{PROMPT}' has no label, version or commit 'nolabel'",
        ),
        (
            [PROMPT, "--from", "2026-05-02", "--to", "2026-05-01"],
            "error: --to 2026-05-01 is not after --from 2026-05-02",
        ),
        ([PROMPT, "--from", "yesterday"], "error: --from 'yesterday': expected a date"),
        (
            [PROMPT, "--out", "/nonexistent/folder/r.md"],
            "error: /nonexistent/folder/r.md: cannot write the report: no folder",
        ),
        (
            [PROMPT, "--database-url", "sqlite:///{tmp}/missing.db"],
            "error: no database at sqlite:///",
        ),
        (
            [PROMPT, "--database-url", "sqlite:///{tmp}/empty.db"],
            "has no llmops schema; run `llmops db upgrade`",
        ),
    ],
)
def test_bad_arguments_are_one_line_errors(
    small: tuple[PromptRepo, str], run: Any, tmp_path: Path, args: list[str], message: str
) -> None:
    repo, url = small
    (tmp_path / "empty.db").touch()
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "--database-url" not in args:
        args += ["--database-url", url]
    result = run(*args, "--prompts-dir", str(repo.prompts), cwd=tmp_path)
    assert result.code == 2, (result.stdout, result.stderr)
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_an_unknown_format_is_a_usage_error(
    small: tuple[PromptRepo, str], run: Any, tmp_path: Path
) -> None:
    repo, url = small
    result = run(
        PROMPT,
        "--format",
        "pdf",
        "--database-url",
        url,
        "--prompts-dir",
        str(repo.prompts),
        cwd=tmp_path,
    )
    assert result.code == 2
    assert "'pdf' is not one of" in result.stderr + result.stdout


@pytest.mark.integration
def test_the_real_command_line(
    small: tuple[PromptRepo, str], tmp_path: Path, real_cli: Any
) -> None:
    if not _registered():
        pytest.skip("`llmops audit report` is not registered in llmops/cli/audit.py yet")
    repo, url = small
    common = ["--database-url", url, "--prompts-dir", str(repo.prompts)]
    good = real_cli("audit", "report", PROMPT, *common, "--format", "json", cwd=tmp_path)
    assert good.code == 0, good.stderr
    assert json.loads(good.stdout)["identity"]["prompt"] == PROMPT
    bad = real_cli("audit", "report", "nope", *common, cwd=tmp_path)
    assert bad.code == 2 and bad.stderr.startswith("error: no prompt 'nope'")
    assert sys.executable  # the same interpreter runs it


def test_a_calls_prune_keeps_the_reports_totals(history: History) -> None:
    """The daily rollups stay when old calls go: the report's calls, tokens and cost per day
    and model read the same after a prune of every call older than five days."""
    from llmops.audit.retention import prune

    before = build(history).operation
    engine = create_engine(history.database_url)
    try:
        pruned = prune(engine, calls_days=5, minimum_days=0, now=history.now)
    finally:
        engine.dispose()
    assert pruned.calls_removed > 0
    after = build(history)
    kept = ("calls", "sent", "errors", "blocked", "prompt_tokens", "completion_tokens")
    for name in kept:
        assert getattr(after.operation.totals, name) == getattr(before.totals, name), name
    assert after.operation.totals.cost_usd == pytest.approx(before.totals.cost_usd, rel=1e-9)
    assert after.operation.cost_by_day_model == before.cost_by_day_model
    assert after.integrity.ok is True


def test_edited_rollups_are_not_reported_as_verified(history: History) -> None:
    """The report's figures of whole days come from the daily rollups, which the chains do
    not cover: edited (9,013 calls instead of 13, every thumbs up), they changed the
    evidence while its integrity section said "every chained row of the period verified"
    and verify passed. Verify now checks the rollups against the rows of their days."""
    before = build(history)
    assert before.integrity.ok and "rollups" in before.integrity.note
    engine = create_engine(history.database_url)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "UPDATE llm_calls_daily SET calls = calls + 1000 "
                "WHERE prompt_name = :p AND source = 'app' AND status = 'ok'"
            ),
            {"p": PROMPT},
        )
    engine.dispose()
    after = build(history)
    assert after.operation.totals.calls == before.operation.totals.calls + 9000
    assert not after.integrity.ok
    assert all(b.table == "llm_calls_daily" for b in after.integrity.breaks)
