"""Reports of eval runs: console text, JUnit XML, Markdown and JSON."""

from __future__ import annotations

import math
from typing import Any
from xml.etree import ElementTree as ET

from llmops.evals.runner import RunResult, SuiteReport
from llmops.evals.stats import Comparison, Interval


def _pct(interval: Interval) -> str:
    if math.isnan(interval.rate):
        return "n/a"
    return f"{interval.rate:.1%} [{interval.low:.1%}, {interval.high:.1%}]"


def _run_label(run: RunResult) -> str:
    return f"{run.target.ref} ({run.target.prompt.version})"


def console(report: SuiteReport) -> str:
    """A plain-text summary for the terminal and CI logs."""
    lines = [f"Suite {report.suite.name} — prompt {report.suite.spec.prompt}"]
    header = ["ROLE", "VERSION", "MODEL", "PASS RATE [95% CI]", "PASSED", "COST", "CACHED"]
    rows = [
        [
            run.target.role,
            _run_label(run),
            run.target.model,
            _pct(run.interval),
            f"{run.passed}/{len(run.results)}",
            f"${run.cost_usd:.4f}",
            str(run.cached),
        ]
        for run in report.runs
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    for model, comparison in report.comparisons.items():
        lines.append("")
        lines.append(f"Candidate vs baseline on {model}: {_verdict(comparison)}")
        lines.extend(_flip_lines(comparison))
    for run in report.candidates():
        metrics = run.metrics()
        if metrics:
            shown = ", ".join(f"{name} {value:.2f}" for name, value in metrics.items())
            lines.append(f"Metrics ({run.target.model}): {shown}")
        failed = sorted({r.case_id for r in run.results if not r.passed})
        if failed:
            lines.append(f"Failed cases ({run.target.model}): {', '.join(failed)}")
    lines.append("")
    gate = "FAIL" if report.below_threshold() else "ok"
    lines.append(f"Pass-rate gate (>= {report.threshold:.0%}): {gate}")
    return "\n".join(lines)


def _verdict(comparison: Comparison) -> str:
    return (
        f"{comparison.verdict} (exact McNemar p = {comparison.p_value:.3g}; "
        f"{len(comparison.regressions)} pass->fail, {len(comparison.improvements)} fail->pass, "
        f"{comparison.paired} paired cases)"
    )


def _flip_lines(comparison: Comparison) -> list[str]:
    lines = []
    if comparison.regressions:
        lines.append(f"  pass -> fail: {', '.join(comparison.regressions)}")
    if comparison.improvements:
        lines.append(f"  fail -> pass: {', '.join(comparison.improvements)}")
    if comparison.flaky:
        lines.append(f"  flaky (not counted): {', '.join(comparison.flaky)}")
    return lines


def junit(reports: list[SuiteReport]) -> str:
    """JUnit XML: a testsuite per suite, version and model; a testcase per case and repeat."""
    root = ET.Element("testsuites", name="llmops eval")
    total = failures = 0
    for report in reports:
        for run in report.runs:
            label = f"{run.target.role}: {_run_label(run)} on {run.target.model}"
            suite = ET.SubElement(
                root,
                "testsuite",
                name=f"{report.suite.name} [{label}]",
                tests=str(len(run.results)),
                failures=str(len(run.results) - run.passed),
                errors="0",
                skipped="0",
                time=f"{sum((r.latency_ms or 0) for r in run.results) / 1000:.3f}",
            )
            for result in run.results:
                name = result.case_id + (
                    f" #{result.repeat + 1}"
                    if report.suite.spec.repeat > 1 or result.repeat
                    else ""
                )
                case = ET.SubElement(
                    suite,
                    "testcase",
                    classname=f"{report.suite.name}.{run.target.role}",
                    name=name,
                    time=f"{(result.latency_ms or 0) / 1000:.3f}",
                )
                total += 1
                if not result.passed:
                    failures += 1
                    reasons = [o.reason for o in result.outcomes if not o.passed]
                    message = result.error or "; ".join(reasons) or "below the case threshold"
                    failure = ET.SubElement(
                        case, "failure", message=message[:500], type="assertion"
                    )
                    failure.text = f"score {result.score:.3f}\noutput:\n{result.output}"
                out = ET.SubElement(case, "system-out")
                out.text = result.output
    root.set("tests", str(total))
    root.set("failures", str(failures))
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def markdown(reports: list[SuiteReport]) -> str:
    """A summary fit for a merge-request comment."""
    lines = ["## llmops eval", ""]
    for report in reports:
        gate = "❌ below threshold" if report.below_threshold() else "✅"
        regress = " ❌ significant regression" if report.regressions() else ""
        lines.append(f"### {report.suite.name} ({report.suite.spec.prompt}) {gate}{regress}")
        lines.append("")
        lines.append("| role | version | model | pass rate (95% CI) | passed | cost |")
        lines.append("|---|---|---|---|---|---|")
        for run in report.runs:
            lines.append(
                f"| {run.target.role} | `{run.target.ref}` ({run.target.prompt.version}) | "
                f"{run.target.model} | {_pct(run.interval)} | {run.passed}/{len(run.results)} | "
                f"${run.cost_usd:.4f} |"
            )
        for model, comparison in report.comparisons.items():
            lines.append("")
            lines.append(f"**{model}:** {_verdict(comparison)}")
            for line in _flip_lines(comparison):
                lines.append(f"- {line.strip()}")
        lines.append("")
    return "\n".join(lines)


def to_json(reports: list[SuiteReport]) -> dict[str, Any]:
    """Everything, as plain data."""

    def interval(value: Interval) -> dict[str, Any]:
        rate = None if math.isnan(value.rate) else value.rate
        return {"rate": rate, "low": value.low, "high": value.high, "n": value.n}

    return {
        "suites": [
            {
                "suite": report.suite.name,
                "file": report.suite.file,
                "prompt": report.suite.spec.prompt,
                "batch_id": report.batch_id,
                "threshold": report.threshold,
                "below_threshold": [run.id for run in report.below_threshold()],
                "runs": [
                    {
                        "id": run.id,
                        "role": run.target.role,
                        "ref": run.target.ref,
                        "version": run.target.prompt.version,
                        "commit": run.target.prompt.commit,
                        "model": run.target.model,
                        "pass_rate": interval(run.interval),
                        "passed": run.passed,
                        "results": len(run.results),
                        "cost_usd": run.cost_usd,
                        "cached": run.cached,
                        "flaky": run.flaky(),
                        "metrics": run.metrics(),
                        "cases": [
                            {
                                "case": r.case_id,
                                "repeat": r.repeat,
                                "passed": r.passed,
                                "score": r.score,
                                "output": r.output,
                                "error": r.error,
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
                        "significant_regression": c.significant_regression,
                        "candidate": interval(c.candidate),
                        "baseline": interval(c.baseline),
                        "pass_to_fail": c.regressions,
                        "fail_to_pass": c.improvements,
                        "flaky": c.flaky,
                        "paired": c.paired,
                    }
                    for model, c in report.comparisons.items()
                },
            }
            for report in reports
        ]
    }
