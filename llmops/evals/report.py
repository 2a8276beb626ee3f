"""Reports of eval runs: the gates and exit code, console text, JUnit XML, Markdown, JSON."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree as ET

from llmops.evals.assertions import Outcome
from llmops.evals.nway import NWay, Pair
from llmops.evals.runner import CaseResult, RunResult, SuiteReport, version_name
from llmops.evals.stats import Comparison, Interval, pass_fraction

EXIT_OK, EXIT_FAILED, EXIT_INCONCLUSIVE = 0, 1, 3
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_MD_CELL = 120  # characters of an output or expectation shown in a Markdown table cell


@dataclass
class Gates:
    """What one ``llmops eval run`` decides: exit 0 (every gate passed), 1 (a candidate's
    pass rate is below its suite's threshold, or, with ``fail_on_regression``, a
    significant regression), or 3 (inconclusive: more results errored than
    ``max_errors``); a failed gate wins over an inconclusive run."""

    reports: list[SuiteReport]
    fail_on_regression: bool = False
    max_errors: int = 0

    @property
    def below_threshold(self) -> list[tuple[SuiteReport, RunResult]]:
        return [(r, run) for r in self.reports for run in r.below_threshold()]

    @property
    def regressions(self) -> list[tuple[SuiteReport, str, Comparison]]:
        return [(r, m, c) for r in self.reports for m, c in r.regressions().items()]

    @property
    def errors(self) -> int:
        return sum(r.errors() for r in self.reports)

    @property
    def results(self) -> int:
        return sum(len(run.results) for r in self.reports for run in r.runs)

    @property
    def exit_code(self) -> int:
        if self.below_threshold or (self.fail_on_regression and self.regressions):
            return EXIT_FAILED
        if self.errors > self.max_errors:
            return EXIT_INCONCLUSIVE
        return EXIT_OK

    @property
    def headline(self) -> str:
        code = self.exit_code
        if code == EXIT_FAILED:
            return "❌ gate failed"
        if code == EXIT_INCONCLUSIVE:
            return "⚠️ inconclusive"
        if self.regressions:
            return "⚠️ regression (not gating)"
        return "✅ passed"

    def summary(self) -> list[tuple[str, str]]:
        """The closing lines of the console output, with their colour."""
        lines = []
        for report, run in self.below_threshold:
            lines.append(
                (
                    f"Gate failed: {report.suite.name} on {run.model}: pass rate "
                    f"{_rate(run.interval)} is below the threshold {report.threshold:.0%}",
                    "red",
                )
            )
        for report, model, comparison in self.regressions:
            gating = "" if self.fail_on_regression else " (not gating: add --fail-on-regression)"
            lines.append(
                (
                    f"Significant regression: {report.suite.name} on {model}: "
                    f"{_test(comparison)}{gating}",
                    "red" if self.fail_on_regression else "yellow",
                )
            )
        if self.errors:
            allowed = self.errors <= self.max_errors
            lines.append(
                (
                    f"{'Errors' if allowed else 'Inconclusive'}: {self.errors} of {self.results}"
                    " results errored (model, judge or check calls failed; left out of the "
                    f"statistics); --max-errors {self.max_errors}"
                    + ("" if allowed else f": exit {EXIT_INCONCLUSIVE}"),
                    "yellow",
                )
            )
        for report in self.reports:
            for model, comparison in report.comparisons.items():
                if not comparison.can_gate:
                    lines.append((_too_small(report, model, comparison), "yellow"))
        return lines


def _too_small(report: SuiteReport, model: str, comparison: Comparison) -> str:
    return (
        f"Note: {report.suite.name} on {model} compares {comparison.paired} cases; a "
        f"regression is significant only with at least {comparison.min_regressions} "
        "cases worse and none better: this suite cannot gate on regressions."
    )


def _rate(interval: Interval) -> str:
    if math.isnan(interval.rate):
        return "n/a"
    return f"{interval.rate:.1%} [{interval.low:.1%}, {interval.high:.1%}]"


def _p(value: float) -> str:
    return f"{value:.3g}"


def _test(comparison: Comparison) -> str:
    """The test's figures in words."""
    holm = (
        f", Holm-adjusted over {comparison.tests} comparisons {_p(comparison.adjusted_p)}"
        if comparison.adjusted_p is not None and comparison.tests > 1
        else ""
    )
    counts = (
        f"{len(comparison.regressions)} cases worse, {len(comparison.improvements)} better of "
        f"{comparison.paired} compared"
    )
    if len(comparison.improvements) > len(comparison.regressions):
        # the p-value of the direction the verdict is about: here, that it got better
        p = f"one-sided exact p (better) = {_p(comparison.p_improvement)}"
        return f"{counts}; {p} (alpha {comparison.alpha:g})"
    p = f"one-sided exact p = {_p(comparison.p_value)}{holm}"
    return f"{counts}; {p} (alpha {comparison.alpha:g})"


def _run_label(run: RunResult) -> str:
    return f"{_version(run)} ({run.target.version})"


def _version(run: RunResult) -> str:
    """The reference, or with several prompts ``name@ref``."""
    return version_name(run.target, several_prompts=run.suite.spec.prompts is not None)


def _cases(run: RunResult) -> str:
    """``15/24 passed`` over completed cases (a flaky case counts its fraction)."""
    fractions = [f for f in map(pass_fraction, run.by_case().values()) if f is not None]
    passed = sum(f == 1 for f in fractions)
    return f"{passed}/{len(fractions)}"


# -- console --------------------------------------------------------------------------


def console(report: SuiteReport) -> str:
    """A plain-text summary for the terminal and CI logs."""
    lines = [f"Suite {report.suite.name} — {_prompt_title(report)}"]
    header = ["ROLE", "VERSION", "MODEL", "PASS RATE [95% CI]", "CASES", "ERRORED", "COST"]
    rows = [
        [
            run.target.role,
            _run_label(run),
            run.model,
            _rate(run.interval),
            _cases(run),
            str(len(run.results) - run.completed),
            f"${run.cost_usd:.4f}" + (f" ({run.cached} cached)" if run.cached else ""),
        ]
        for run in report.runs
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    for model, comparison in report.comparisons.items():
        lines.append("")
        lines.append(f"Candidate vs baseline on {model}: {comparison.verdict}")
        lines.append(f"  {_test(comparison)}")
        lines.extend(_case_lines(comparison))
    for run in report.candidates():
        baseline = report.baseline_for(run.model)
        for side, measured in (("Candidate", run), ("Baseline", baseline)):
            metrics = measured.metrics() if measured is not None else {}
            if metrics:
                shown = ", ".join(f"{name} {value:.2f}" for name, value in metrics.items())
                lines.append(f"{side} metrics on {run.model}: {shown}")
        failed = _still_failing(run)
        if failed:
            lines.append(f"Failing cases ({run.model}): {', '.join(failed)}")
        errored = run.errored_cases()
        if errored:
            lines.append(f"Errored cases ({run.model}): {', '.join(errored)}")
            for case in errored[:ERRORS_SHOWN]:
                lines.append(f"  {case}: {_first_error(run, case)}")
            if len(errored) > ERRORS_SHOWN:
                lines.append(f"  ... {len(errored) - ERRORS_SHOWN} more (--json has them all)")
        skipped = [o for r in run.results for o in r.outcomes if o.skipped]
        if skipped:
            lines.append(f"Skipped checks ({run.model}): {len(skipped)}; {skipped[0].reason}")
    for model, nway in report.nway.items():
        lines.append("")
        lines.extend(_console_nway(report, model, nway))
    lines.append("")
    gate = "FAIL" if report.below_threshold() else "ok"
    lines.append(f"Pass-rate gate (>= {report.threshold:.0%} of cases): {gate}")
    return "\n".join(lines)


ERRORS_SHOWN = 5  # errored cases whose first error the console prints


def _case_lines(comparison: Comparison) -> list[str]:
    lines = []
    if comparison.regressions:
        lines.append(
            f"  worse (pass -> fail or fewer repeats passing): {', '.join(comparison.regressions)}"
        )
    if comparison.improvements:
        lines.append(f"  better: {', '.join(comparison.improvements)}")
    if comparison.flaky:
        lines.append(
            f"  flaky (repeats disagree; compared by pass fraction): {', '.join(comparison.flaky)}"
        )
    if comparison.errored:
        lines.append(f"  errored (left out): {', '.join(comparison.errored)}")
    return lines


def _still_failing(run: RunResult) -> list[str]:
    return [
        case
        for case, passes in run.by_case().items()
        if (fraction := pass_fraction(passes)) is not None and fraction < 1
    ]


def _prompt_title(report: SuiteReport) -> str:
    spec = report.suite.spec
    if spec.target is not None:
        return f"target {spec.prompt_title}"
    return f"prompt {spec.prompt}" if spec.prompts is None else f"prompts {spec.prompt_title}"


# -- N-way: every version against every other (informational) -------------------------


def _nway_rule(nway: NWay) -> str:
    tests = nway.pairs[0].tests if nway.pairs else 0
    alpha = nway.pairs[0].alpha if nway.pairs else 0.0
    return (
        f"exact two-sided sign tests, Holm-adjusted over the suite's {tests} pairs, "
        f"alpha {alpha:g}; informational, never gates"
    )


def _pair_counts(pair: Pair) -> str:
    return (
        f"{len(pair.first_better)} cases better with {pair.first}, "
        f"{len(pair.second_better)} with {pair.second}, of {pair.paired} compared"
    )


def _nway_runs(report: SuiteReport, model: str) -> dict[str, RunResult]:
    return {report.version_name(run): run for run in report.runs if run.model == model}


def _console_nway(report: SuiteReport, model: str, nway: NWay) -> list[str]:
    runs = _nway_runs(report, model)
    lines = [f"All versions on {model} ({_nway_rule(nway)}):"]
    header = ["#", "VERSION", "PASS RATE [95% CI]", "BETTER THAN", "WORSE THAN", "SAME AS"]
    rows = [
        [
            str(rank),
            _run_label(runs[entry.key]),
            _rate(entry.interval),
            ", ".join(entry.better_than) or "-",
            ", ".join(entry.worse_than) or "-",
            ", ".join(entry.same_as) or "-",
        ]
        for rank, entry in enumerate(nway.ranking(), start=1)
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        lines.append(
            "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        )
    for pair in nway.pairs:
        lines.append(
            f"  {pair.first} vs {pair.second}: {pair.verdict}; {_pair_counts(pair)}; "
            f"p = {_p(pair.p_value)}, Holm {_p(pair.holm_p)}"
        )
    return lines


def _markdown_nway(report: SuiteReport, model: str, nway: NWay) -> list[str]:
    runs = _nway_runs(report, model)
    lines = [
        "",
        f"**All versions on {_md(model)}** ({_nway_rule(nway)}):",
        "",
        "| rank | version | pass rate (95% CI) | better than | worse than "
        "| indistinguishable from |",
        "|---|---|---|---|---|---|",
    ]
    for rank, entry in enumerate(nway.ranking(), start=1):
        run = runs[entry.key]
        names = [_md(", ".join(k)) or "-" for k in (entry.better_than, entry.worse_than)]
        lines.append(
            f"| {rank} | `{_md(entry.key)}` ({run.target.version}) | "
            f"{_rate(entry.interval)} | {names[0]} | {names[1]} | "
            f"{_md(', '.join(entry.same_as)) or '-'} |"
        )
    rows = ["| A | B | better with A | better with B | compared | p | Holm p | verdict |"]
    rows.append("|---|---|---|---|---|---|---|---|")
    for pair in nway.pairs:
        rows.append(
            f"| `{_md(pair.first)}` | `{_md(pair.second)}` | {len(pair.first_better)} | "
            f"{len(pair.second_better)} | {pair.paired} | {_p(pair.p_value)} | "
            f"{_p(pair.holm_p)} | {_md(pair.verdict)} |"
        )
    lines.extend(_details(f"{len(nway.pairs)} pairs on {model}", rows))
    return lines


def _json_nway(report: SuiteReport, nway: NWay) -> dict[str, Any]:
    runs = _nway_runs(report, nway.model)
    return {
        "gates": False,
        "ranking": [
            {
                "name": entry.key,
                "run_id": runs[entry.key].id,
                "pass_rate": None if math.isnan(entry.interval.rate) else entry.interval.rate,
                "low": entry.interval.low,
                "high": entry.interval.high,
                "n": entry.interval.n,
                "better_than": entry.better_than,
                "worse_than": entry.worse_than,
                "indistinguishable_from": entry.same_as,
            }
            for entry in nway.ranking()
        ],
        "pairs": [
            {
                "a": pair.first,
                "b": pair.second,
                "better_with_a": pair.first_better,
                "better_with_b": pair.second_better,
                "paired": pair.paired,
                "errored": pair.errored,
                "p_value": pair.p_value,
                "p_value_holm": pair.holm_p,
                "pairs_in_family": pair.tests,
                "alpha": pair.alpha,
                "significant": pair.significant,
                "better": pair.better,
            }
            for pair in nway.pairs
        ],
    }


# -- JUnit ----------------------------------------------------------------------------


def xml_text(value: Any) -> str:
    """Text XML 1.0 can hold: each forbidden character (ESC and the other C0 controls,
    lone surrogates, U+FFFE/FFFF) written as its escape, e.g. ``\\x1b``."""
    return _NOT_XML.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), str(value))


def _element(
    parent: ET.Element, tag: str, text: str | None = None, **attributes: Any
) -> ET.Element:
    element = ET.SubElement(parent, tag, {k: xml_text(v) for k, v in attributes.items()})
    if text is not None:
        element.text = xml_text(text)
    return element


def junit(reports: list[SuiteReport]) -> str:
    """JUnit XML: one testsuite per suite, candidate and model, one testcase per case.

    A case whose repeats all errored is an ``<error>``; one that did not pass every
    completed repeat is a ``<failure>``. The baseline it was compared with, the verdict and
    the test's figures are the testsuite's properties: baselines are never suites of their
    own, so they never show as failing tests.
    """
    root = ET.Element("testsuites", name="llmops eval")
    total = failures = errors = 0
    for report in reports:
        for run in [r for r in report.runs if r.target.role != "baseline"]:
            by_case = _results_by_case(run)
            failed = [c for c, rs in by_case.items() if _case_state(rs) == "failure"]
            errored = [c for c, rs in by_case.items() if _case_state(rs) == "error"]
            suite = _element(
                root,
                "testsuite",
                name=f"{report.suite.name} [{run.target.role}: {_run_label(run)} on {run.model}]",
                tests=len(by_case),
                failures=len(failed),
                errors=len(errored),
                skipped=0,
                time=f"{sum((r.latency_ms or 0) for r in run.results) / 1000:.3f}",
            )
            _properties(suite, report, run)
            for case_id, results in by_case.items():
                _testcase(suite, report, run, case_id, results)
            total += len(by_case)
            failures += len(failed)
            errors += len(errored)
    root.set("tests", str(total))
    root.set("failures", str(failures))
    root.set("errors", str(errors))
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def _results_by_case(run: RunResult) -> dict[str, list[CaseResult]]:
    cases: dict[str, list[CaseResult]] = {}
    for result in run.results:
        cases.setdefault(result.case_id, []).append(result)
    return cases


def _case_state(results: list[CaseResult]) -> str:
    completed = [r for r in results if not r.errored]
    if not completed:
        return "error"
    return "ok" if all(r.passed for r in completed) else "failure"


def _properties(suite: ET.Element, report: SuiteReport, run: RunResult) -> None:
    properties = _element(suite, "properties")
    values: dict[str, Any] = {
        "prompt": run.target.name,
        "version": run.target.version,
        "pass_rate": _rate(run.interval),
        "threshold": report.threshold,
    }
    baseline = report.baseline_for(run.model) if run.target.role == "candidate" else None
    comparison = report.comparisons.get(run.model) if baseline else None
    if baseline is not None and comparison is not None:
        values.update(
            {
                "baseline": _run_label(baseline),
                "baseline_pass_rate": _rate(baseline.interval),
                "verdict": comparison.verdict,
                "cases_worse": len(comparison.regressions),
                "cases_better": len(comparison.improvements),
                "cases_compared": comparison.paired,
                "p_value_one_sided": _p(comparison.p_value),
                "p_value_holm": _p(comparison.gate_p),
                "alpha": comparison.alpha,
            }
        )
    for name, value in values.items():
        _element(properties, "property", name=name, value=value)


def _testcase(
    suite: ET.Element, report: SuiteReport, run: RunResult, case_id: str, results: list[CaseResult]
) -> None:
    case = _element(
        suite,
        "testcase",
        classname=f"{report.suite.name}.{run.target.role}",
        name=case_id,
        time=f"{sum((r.latency_ms or 0) for r in results) / 1000:.3f}",
    )
    state = _case_state(results)
    if state == "error":
        reason = results[0].error_reason or "errored"
        _element(case, "error", text=reason, message=reason[:500], type="error")
    elif state == "failure":
        completed = [r for r in results if not r.errored]
        failing = [r for r in completed if not r.passed]
        reasons = [o.reason for o in failing[0].outcomes if not o.passed]
        message = "; ".join(reasons) or "below the case threshold"
        if len(completed) > 1:
            message = f"failed {len(failing)} of {len(completed)} repeats: {message}"
        text = f"score {failing[0].score:.3f}\noutput:\n{failing[0].output}"
        _element(case, "failure", text=text, message=message[:500], type="assertion")
    _element(case, "system-out", text=results[0].output)


# -- Markdown -------------------------------------------------------------------------


def markdown(reports: list[SuiteReport], gates: Gates | None = None) -> str:
    """A summary fit for a merge-request comment: the verdict and whether it gates, the
    rule, each suite's pass rates with intervals and metric changes, and, folded, each
    regressed case with the check that failed, and the cases still failing."""
    gates = gates or Gates(reports)
    lines = [f"## llmops eval: {gates.headline}", ""]
    comparisons = [c for r in reports for c in r.comparisons.values()]
    alphas = sorted({c.alpha for c in comparisons} or {r.suite.spec.alpha for r in reports})
    lines.append(
        f"Rule: per case, a one-sided exact sign test (alpha {', '.join(f'{a:g}' for a in alphas)}"
        f"{f', Holm-adjusted over {len(comparisons)} comparisons' if len(comparisons) > 1 else ''}"
        f"); errored cases left out{'; regressions gate' if gates.fail_on_regression else ''}."
    )
    for line, _ in gates.summary():
        lines.append(f"- {line}")
    lines.append("")
    for report in reports:
        lines.extend(_markdown_suite(report, gates))
    return "\n".join(lines).rstrip() + "\n"


def _markdown_suite(report: SuiteReport, gates: Gates) -> list[str]:
    below = bool(report.below_threshold())
    regressed = bool(report.regressions())
    mark = "❌" if below or (regressed and gates.fail_on_regression) else "⚠️" if regressed else "✅"
    lines = [f"### {mark} {_md(report.suite.name)} (`{_md(report.suite.spec.prompt_title)}`)", ""]
    lines.append("| role | version | model | pass rate (95% CI) | cases passed | errored | cost |")
    lines.append("|---|---|---|---|---|---|---|")
    for run in report.runs:
        lines.append(
            f"| {run.target.role} | `{_md(_version(run))}` ({run.target.version}) | "
            f"{_md(run.model)} | {_rate(run.interval)} | {_cases(run)} | "
            f"{len(run.results) - run.completed} | ${run.cost_usd:.4f} |"
        )
    lines.append("")
    lines.append(f"Threshold {report.threshold:.0%} of cases: {'❌ below' if below else '✅ met'}.")
    for model, comparison in report.comparisons.items():
        lines.append(f"**{_md(model)}: {comparison.verdict}.** {_test(comparison)}.")
        if not comparison.can_gate:
            lines.append(_too_small(report, model, comparison))
        candidate = next(r for r in report.candidates() if r.model == model)
        baseline = report.baseline_for(model)
        deltas = _metric_deltas(candidate, baseline)
        if deltas:
            lines.append(f"Metrics: {deltas}.")
        if comparison.regressions:
            lines.extend(_details(
                f"{len(comparison.regressions)} cases worse than the baseline",
                _case_rows(candidate, comparison.regressions),
            ))  # fmt: skip
    for run in report.candidates():
        failing = _still_failing(run)
        if failing:
            lines.extend(
                _details(
                    f"{len(failing)} cases failing in the candidate on {run.model}",
                    _case_rows(run, failing),
                )
            )
        errored = run.errored_cases()
        if errored:
            reasons = [f"| {_md(case)} | {_md(_first_error(run, case))} |" for case in errored[:50]]
            lines.extend(
                _details(
                    f"{len(errored)} cases errored on {run.model}",
                    ["| case | error |", "|---|---|", *reasons],
                )
            )
    for model, nway in report.nway.items():
        lines.extend(_markdown_nway(report, model, nway))
    lines.append("")
    return lines


def _details(summary: str, body: list[str]) -> list[str]:
    return ["", f"<details><summary>{_md(summary)}</summary>", "", *body, "", "</details>", ""]


def _case_rows(run: RunResult, cases: list[str], limit: int = 50) -> list[str]:
    """A table of cases: the check that failed, what it expected, the output (truncated)."""
    rows = ["| case | failed check | expected | output |", "|---|---|---|---|"]
    by_case = _results_by_case(run)
    for case in cases[:limit]:
        failing = [r for r in by_case.get(case, []) if not r.errored and not r.passed]
        result = failing[0] if failing else None
        place = _first_failed(result.outcomes) if result else None
        outcome = result.outcomes[place] if result and place is not None else None
        expected = _expected(run, case, place, outcome)
        rows.append(
            f"| {_md(case)} | {_md(outcome.reason if outcome else 'passed')} | {_md(expected)} | "
            f"{_md(result.output if result else '')} |"
        )
    if len(cases) > limit:
        rows.append(f"| … {len(cases) - limit} more | | | |")
    return rows


def _first_failed(outcomes: list[Outcome]) -> int | None:
    """The place of the first check that failed (outcomes are in the case's assertions'
    order)."""
    return next((i for i, o in enumerate(outcomes) if not o.passed), None)


def _expected(run: RunResult, case_id: str, place: int | None, outcome: Outcome | None) -> str:
    """The failed check as the suite wrote it: its type and value."""
    if outcome is None or place is None:
        return ""
    suite = run.suite
    case = next((c for c in suite.cases if str(c.id) == case_id), None)
    assertions = suite.case_assertions(case) if case is not None else []
    if place < len(assertions) and assertions[place].type == outcome.type:
        return f"{outcome.type}: {assertions[place].value}"
    return outcome.type


def _first_error(run: RunResult, case: str) -> str:
    return next((r.error_reason or "" for r in run.results if r.case_id == case), "")


def _metric_deltas(candidate: RunResult, baseline: RunResult | None) -> str:
    new = candidate.metrics()
    old = baseline.metrics() if baseline else {}
    parts = []
    for name, value in new.items():
        if name in old:
            parts.append(f"{_md(name)} {value:.2f} ({value - old[name]:+.2f})")
        else:
            parts.append(f"{_md(name)} {value:.2f}")
    return ", ".join(parts)


def _md(value: Any) -> str:
    """Text safe in a Markdown table cell: one line, pipes escaped, truncated."""
    text = " ".join(str(value).split())
    if len(text) > _MD_CELL:
        text = text[: _MD_CELL - 1] + "…"
    return text.replace("|", "\\|").replace("<", "&lt;")


# -- JSON -----------------------------------------------------------------------------


def to_json(reports: list[SuiteReport], gates: Gates | None = None) -> dict[str, Any]:
    """Everything, as plain data."""
    gates = gates or Gates(reports)

    def interval(value: Interval) -> dict[str, Any]:
        rate = None if math.isnan(value.rate) else value.rate
        return {"rate": rate, "low": value.low, "high": value.high, "n": value.n}

    return {
        "exit_code": gates.exit_code,
        "errors": gates.errors,
        "max_errors": gates.max_errors,
        "suites": [
            {
                "suite": report.suite.name,
                "file": report.suite.file,
                "prompt": report.suite.spec.prompt_title,
                "batch_id": report.batch_id,
                "threshold": report.threshold,
                "alpha": report.suite.spec.alpha,
                "below_threshold": [run.id for run in report.below_threshold()],
                "runs": [
                    {
                        "id": run.id,
                        "role": run.target.role,
                        "ref": run.target.ref,
                        "prompt": run.target.name,
                        "name": _version(run),
                        "version": run.target.version,
                        "commit": run.target.commit,
                        "model": run.model,
                        "model_id": run.target.model,
                        "params": run.target.call_params,
                        "pass_rate": interval(run.interval),
                        "passed": run.passed,
                        "completed": run.completed,
                        "results": len(run.results),
                        "errored_cases": run.errored_cases(),
                        "cost_usd": run.cost_usd,
                        "cached": run.cached,
                        "flaky": run.flaky(),
                        "metrics": run.metrics(),
                        "cases": [
                            {
                                "case": r.case_id,
                                "repeat": r.repeat,
                                "passed": None if r.errored else r.passed,
                                "score": r.score,
                                "output": r.output,
                                "error": r.error_reason,
                                "cached": r.cached,
                                "assertions": [o.to_dict() for o in r.outcomes],
                            }
                            for r in run.results
                        ],
                    }
                    for run in report.runs
                ],
                "comparisons": {
                    model: {
                        "verdict": c.verdict,
                        "p_value": c.p_value,
                        "p_value_adjusted": c.adjusted_p,
                        "comparisons_in_run": c.tests,
                        "alpha": c.alpha,
                        "significant_regression": c.significant_regression,
                        "min_regressions": c.min_regressions,
                        "can_gate": c.can_gate,
                        "candidate": interval(c.candidate),
                        "baseline": interval(c.baseline),
                        "worse": c.regressions,
                        "better": c.improvements,
                        "flaky": c.flaky,
                        "errored": c.errored,
                        "paired": c.paired,
                    }
                    for model, c in report.comparisons.items()
                },
                "nway": {model: _json_nway(report, nway) for model, nway in report.nway.items()},
            }
            for report in reports
        ],
    }
