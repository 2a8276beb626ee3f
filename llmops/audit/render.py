"""The evidence report (:class:`llmops.audit.report.Report`) as Markdown, HTML or JSON.

Markdown and HTML are drawn from one list of blocks (headings, paragraphs, tables, code),
built once from the report with the same number formats, so a figure reads the same in
both; JSON is the report tree itself. The HTML is self-contained (inline CSS, no script,
no font, image or link to fetch) and printable: every section starts a page, tables wrap
instead of overflowing. Every value is escaped: prompt texts and commit messages are
written by people.
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from llmops.audit.report import (
    SECTION_TITLES,
    EvalRunInfo,
    Report,
)
from llmops.jsondata import finite
from llmops.money import DASH, amount, usd
from llmops.text import printable

__all__ = [
    "FORMATS",
    "SCHEMA_VERSION",
    "render",
    "report_data",
    "to_html",
    "to_json",
    "to_markdown",
]

FORMATS = ("md", "html", "json")
SCHEMA_VERSION = 1


# -- number formats (shared by Markdown and HTML) --------------------------------------------


def when(moment: datetime | None) -> str:
    return DASH if moment is None else f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def day(value: date) -> str:
    return value.isoformat()


def pct(value: float | None) -> str:
    if value is None or math.isnan(value):
        return DASH
    return f"{value * 100:.1f}%"


def interval(low: float | None, high: float | None) -> str:
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return DASH
    return f"{low * 100:.1f}%\N{EN DASH}{high * 100:.1f}%"


def ms(value: float | None) -> str:
    return DASH if value is None else f"{value:,.1f} ms"


def number(value: float | None, digits: int = 2) -> str:
    return DASH if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def p_value(value: float) -> str:
    return f"{value:.4f}"


def yes(flag: bool) -> str:
    return "yes" if flag else "no"


def short(sha: str | None) -> str:
    return DASH if not sha else sha[:12]


# -- blocks ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Table:
    headers: Sequence[str]
    rows: Sequence[Sequence[str]]
    empty: str = "None."


@dataclass(frozen=True)
class Code:
    text: str
    language: str = ""


Block = Heading | Paragraph | Table | Code


def blocks(report: Report) -> list[Block]:
    """The report as blocks, section by section (level-2 headings are the sections)."""
    return [
        *_header(report),
        *_identity(report),
        *_texts(report),
        *_testing(report),
        *_operation(report),
        *_integrity(report),
        *_articles(report),
    ]


def _pairs(rows: Sequence[tuple[str, str]]) -> Table:
    return Table(["Item", "Value"], [list(r) for r in rows])


def _header(report: Report) -> Iterator[Block]:
    yield Heading(1, report.title)
    yield _pairs(
        [
            ("Period", f"{when(report.period.start)} to {when(report.period.end)} (end excluded)"),
            ("Generated", when(report.generated_at)),
            ("Database", report.database),
            ("llmops", report.llmops_version),
        ]
    )


def _identity(report: Report) -> Iterator[Block]:
    identity = report.identity
    yield Heading(2, SECTION_TITLES["identity"])
    yield _pairs(
        [
            ("Prompt", identity.prompt),
            ("Reference", identity.ref or "(every version of the period)"),
            ("File", identity.file),
            ("Repository", identity.repository or DASH),
        ]
    )
    yield Heading(3, "Versions and commits")
    yield Paragraph(
        "A version is the content hash llmops computes from the parsed prompt file; the "
        "commits are those that wrote it, oldest first."
    )
    rows = []
    for v in identity.versions:
        labels = ", ".join(v.labels_now) or DASH
        if not v.commits:
            rows.append([v.version, "not committed", DASH, DASH, DASH, labels])
        for c in v.commits:
            rows.append(
                [
                    v.version,
                    short(c.sha),
                    when(c.date),
                    f"{c.author} <{c.email}>",
                    c.subject,
                    labels,
                ]
            )
    yield Table(["Version", "Commit", "Date", "Author", "Message", "Labels now"], rows)
    yield Heading(3, "Label history")
    yield Paragraph(
        f"From the git history of {identity.labels_file}: each commit that changed a label of "
        "this prompt, with who committed it and when."
    )
    yield Table(
        ["When", "Label", "Version", "Previous", "Commit", "Who", "Message", "In period"],
        [
            [
                when(c.at),
                c.label,
                c.version or "(removed)",
                c.previous or DASH,
                short(c.commit),
                f"{c.author} <{c.email}>",
                c.subject,
                yes(c.in_period),
            ]
            for c in identity.label_history
        ],
        empty="No label was ever committed for this prompt.",
    )
    if identity.labels_uncommitted:
        yield Paragraph(
            f"Note: the working tree's {identity.labels_file} differs from its last commit "
            "for this prompt; uncommitted label changes are not evidence."
        )


def _texts(report: Report) -> Iterator[Block]:
    yield Heading(2, SECTION_TITLES["texts"])
    for v in report.texts.versions:
        yield Heading(3, f"Version {v.version}")
        yield Paragraph(f"Text from {v.source_from}.")
        if v.source is not None:
            yield Code(v.source, "yaml")
        yield Heading(4, "Input schema")
        yield _schema(v.input_schema)
        yield Heading(4, "Output schema")
        yield _schema(v.output_schema)
        yield Heading(4, f"Diff from {v.diff_from}" if v.diff_from else "Diff")
        if v.diff_from is None:
            yield Paragraph("The first version in the history: nothing to compare with.")
        elif v.diff:
            yield Code(v.diff, "diff")
        else:
            yield Paragraph("The text is the same (only the parsed content's hash differs).")


def _schema(schema: dict[str, Any] | None) -> Block:
    if schema is None:
        return Paragraph("None.")
    return Code(json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True), "json")


def _verdict(run: EvalRunInfo) -> tuple[str, str]:
    c = run.comparison
    if c is None:
        return DASH, DASH
    return f"{c.verdict} vs {c.baseline_version}", p_value(c.p_value)


def _testing(report: Report) -> Iterator[Block]:
    testing = report.testing
    yield Heading(2, SECTION_TITLES["testing"])
    yield Paragraph(testing.passing_rule)
    yield Heading(3, "Eval runs in the period")
    rows = []
    for r in testing.runs:
        verdict, p = _verdict(r)
        rows.append(
            [
                when(r.started_at),
                r.suite,
                r.version,
                r.role,
                r.model,
                f"{r.completed_cases}/{r.cases}",
                pct(r.pass_rate),
                interval(r.pass_rate_low, r.pass_rate_high),
                pct(r.threshold),
                yes(r.passing),
                verdict,
                p,
                short(r.id),
            ]
        )
    yield Table(
        [
            "Started",
            "Suite",
            "Version",
            "Role",
            "Model",
            "Cases",
            "Pass rate",
            "95% CI",
            "Threshold",
            "Passing",
            "Comparison",
            "p",
            "Run",
        ],
        rows,
        empty="No eval run of these versions in the period.",
    )
    flipped = [
        [short(r.id), r.version, f.case_id, f.direction]
        for r in testing.runs
        if r.comparison is not None
        for f in r.comparison.flipped
    ]
    yield Heading(3, "Flipped cases")
    yield Table(
        ["Run", "Version", "Case", "Direction"],
        flipped,
        empty="No case changed outcome against its baseline.",
    )
    yield Heading(3, "Promotions to production")
    yield Table(
        ["Promoted", "Version", "Commit", "Passing eval before", "Run", "Pass rate", "Note"],
        [
            [
                when(p.promoted_at),
                p.version,
                short(p.commit),
                yes(p.evaluated_before),
                short(p.run_id),
                pct(p.run_pass_rate),
                p.note,
            ]
            for p in testing.promotions
        ],
        empty="None of these versions was promoted to production.",
    )


def _operation(report: Report) -> Iterator[Block]:
    op = report.operation
    t = op.totals
    yield Heading(2, SECTION_TITLES["operation"])
    yield Paragraph(f"Calls counted: {op.sources}.")
    yield _pairs(
        [
            ("Calls (blocked included)", f"{t.calls:,}"),
            ("Calls sent", f"{t.sent:,}"),
            ("Errors", f"{t.errors:,}"),
            ("Error rate", pct(t.error_rate)),
            ("Cancelled", f"{t.cancelled:,}"),
            ("Blocked by a budget", f"{t.blocked:,}"),
            ("Prompt tokens", f"{t.prompt_tokens:,}"),
            ("Completion tokens", f"{t.completion_tokens:,}"),
            ("Cost", usd(t.cost_usd)),
            ("Unpriced calls", f"{t.unpriced_calls:,}"),
            ("Latency p50", ms(t.latency_p50_ms)),
            ("Latency p95", ms(t.latency_p95_ms)),
            ("Latency p99", ms(t.latency_p99_ms)),
            ("Eval calls (not above)", f"{t.eval_calls:,}"),
        ]
    )
    yield Heading(3, "Error types")
    yield Table(
        ["Error type", "Calls"],
        [[e.error_type, f"{e.calls:,}"] for e in op.error_types],
        empty="No failed call.",
    )
    yield Heading(3, "Cost per model")
    yield Table(
        ["Model", "Calls", "Cost", "Unpriced calls"],
        [
            [m.model, f"{m.calls:,}", usd(m.cost_usd), f"{m.unpriced_calls:,}"]
            for m in op.cost_by_model
        ],
    )
    yield Heading(3, "Cost per day and model")
    yield Table(
        ["Date", "Model", "Calls", "Prompt tokens", "Completion tokens", "Cost", "Unpriced"],
        [
            [
                day(r.date),
                r.model,
                f"{r.calls:,}",
                f"{r.prompt_tokens:,}",
                f"{r.completion_tokens:,}",
                usd(r.cost_usd),
                f"{r.unpriced_calls:,}",
            ]
            for r in op.cost_by_day_model
        ],
    )
    yield Heading(3, "Versions in use")
    yield Table(
        [
            "Version",
            "Calls",
            "Errors",
            "Error rate",
            "Cost per call",
            "Average latency",
            "First call",
            "Last call",
        ],
        [
            [
                v.version or "(none)",
                f"{v.calls:,}",
                f"{v.errors:,}",
                pct(v.error_rate),
                usd(v.cost_per_call_usd),
                ms(v.latency_avg_ms),
                when(v.first_seen),
                when(v.last_seen),
            ]
            for v in op.versions
        ],
    )
    yield Heading(3, "Blocked calls and budget events")
    yield Paragraph(
        f"{t.blocked:,} call(s) refused by a blocking budget; {op.budget_alerts} budget alert "
        "event(s) in the period (listed with the alerts below)."
    )
    yield Table(
        ["Date", "Blocked calls"],
        [[day(b.date), f"{b.calls:,}"] for b in op.blocked_by_day],
        empty="No blocked call.",
    )
    yield Heading(3, "Feedback")
    yield Paragraph("Each feedback name on its own scale; by the time of the call it scores.")
    yield Table(
        ["Name", "Scores", "Average", "95% CI", "Scale seen"],
        [
            [
                f.name,
                f"{f.count:,}",
                number(f.average, 3),
                f"{number(f.low, 3)}\N{EN DASH}{number(f.high, 3)}",
                f"{number(f.lowest, 0)}\N{EN DASH}{number(f.highest, 0)}",
            ]
            for f in op.feedback
        ],
        empty="No feedback.",
    )
    yield Heading(3, "Feedback trend per day")
    yield Table(
        ["Date", "Name", "Scores", "Average"],
        [[day(p.date), p.name, f"{p.count:,}", number(p.average, 3)] for p in op.feedback_trend],
        empty="No feedback.",
    )
    yield Heading(3, "Alerts")
    yield Paragraph("Every alert event of the period, whatever it was about (alerts are global).")
    yield Table(
        ["At", "Event", "Rule", "Kind", "Subject", "Value", "Threshold", "Message"],
        [
            [
                when(a.at),
                a.event,
                a.rule,
                a.kind,
                a.subject or DASH,
                number(a.value, 4),
                number(a.threshold, 4),
                a.message or DASH,
            ]
            for a in op.alerts
        ],
        empty="No alert event in the period.",
    )


def _events_table(events: Sequence[Any], empty: str) -> Table:
    return Table(
        ["#", "At", "Kind", "Who", "Rows", "Command", "Details", "Hash intact"],
        [
            [
                str(e.seq),
                when(e.at),
                e.kind,
                e.actor,
                f"{e.rows:,}",
                e.command,
                json.dumps(e.details, sort_keys=True, ensure_ascii=False, default=str)
                if e.details
                else DASH,
                yes(e.intact),
            ]
            for e in events
        ],
        empty=empty,
    )


def _integrity(report: Report) -> Iterator[Block]:
    integrity = report.integrity
    yield Heading(2, SECTION_TITLES["integrity"])
    yield Heading(3, "Hash-chain verification")
    yield _pairs(
        [
            ("Result", "ok" if integrity.ok else "BROKEN"),
            ("Summary", integrity.note),
            ("Chains", f"{integrity.chains:,}"),
            ("Broken links", f"{integrity.broken:,}"),
            *((f"Rows checked: {k}", f"{v:,}") for k, v in sorted(integrity.checked.items())),
            *(
                (f"Rows without a chain: {k}", f"{v:,}")
                for k, v in sorted(integrity.unchained.items())
            ),
            *(
                (f"Expected without a chain: {k}", f"{v:,}")
                for k, v in sorted(integrity.expected_unchained.items())
            ),
            ("Seconds", number(integrity.seconds, 2)),
        ]
    )
    yield Table(
        ["Table", "Chain", "Seq", "Row", "Created", "Problem"],
        [
            [
                b.table,
                b.chain_id or DASH,
                DASH if b.seq is None else str(b.seq),
                b.row_id or DASH,
                when(b.created_at),
                b.problem,
            ]
            for b in integrity.breaks
        ],
        empty="No break.",
    )
    yield Heading(3, "Audit events of the period")
    yield _events_table(integrity.events, "No audit event in the period.")
    retention = report.retention
    yield Heading(3, "Retention")
    yield _pairs(
        [
            ("Drop content after (days)", _days(retention.content_days)),
            ("Delete calls after (days)", _days(retention.calls_days)),
            ("Minimum kept (days)", f"{retention.minimum_days:,}"),
            ("Calls stored", f"{retention.calls_stored:,}"),
            ("Oldest call", when(retention.oldest_call_at)),
            ("Newest call", when(retention.newest_call_at)),
            ("Six months kept", yes(retention.six_months_kept)),
            ("Summary", retention.note),
        ]
    )
    yield Heading(4, "Prune events (all time)")
    yield _events_table(retention.prune_events, "No call was ever pruned.")


def _days(value: int | None) -> str:
    return "never (not configured)" if value is None else f"{value:,}"


def _articles(report: Report) -> Iterator[Block]:
    yield Heading(2, SECTION_TITLES["articles"])
    yield Table(
        ["Article", "Requirement", "Sections of this report", "Evidence"],
        [
            [a.article, a.requirement, "; ".join(a.sections), a.evidence]
            for a in report.articles.rows
        ],
    )
    yield Paragraph(report.articles.disclaimer)


# -- what no output may carry raw ------------------------------------------------------------


def _safe(text: str) -> str:
    """Control characters (ESC, BEL: the Markdown goes to a terminal), characters that
    reorder or hide text (U+202E) and non-characters (which HTML forbids) as a visible
    escape (``\\x1b``, ``\\u202e``), lines and tabs kept: recorded values (a feedback name, a
    model) are chosen by apps and their users, prompt texts and commit messages by people."""
    return printable(text, lines=True)


def _html(text: str) -> str:
    return html.escape(_safe(text))


# -- Markdown -------------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#&])")  # & too: "&rlm;" is a character


def _md(text: str) -> str:
    """Inline text with Markdown's (and HTML's) special characters escaped, on one line."""
    return _MD_SPECIAL.sub(r"\\\1", _safe(" ".join(text.split())))


def _fence(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def to_markdown(report: Report) -> str:
    out: list[str] = []
    for block in blocks(report):
        if isinstance(block, Heading):
            out += ["#" * block.level + " " + _md(block.text), ""]
        elif isinstance(block, Paragraph):
            out += [_md(block.text), ""]
        elif isinstance(block, Code):
            fence = _fence(block.text)
            out += [fence + block.language, _safe(block.text.rstrip("\n")), fence, ""]
        elif not block.rows:
            out += [_md(block.empty), ""]
        else:
            out.append("| " + " | ".join(_md(h) for h in block.headers) + " |")
            out.append("|" + "|".join("---" for _ in block.headers) + "|")
            out += ["| " + " | ".join(_md(c) for c in row) + " |" for row in block.rows]
            out.append("")
    return "\n".join(out)


# -- HTML -----------------------------------------------------------------------------------

CSS = """
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
  max-width: 72rem; padding: 0 1rem; color: #1a1a1a; line-height: 1.45; font-size: 14px; }
h1 { font-size: 1.6rem; border-bottom: 2px solid #1a1a1a; padding-bottom: .3rem; }
h2 { font-size: 1.3rem; margin-top: 2.2rem; border-bottom: 1px solid #999; }
h3 { font-size: 1.1rem; margin-top: 1.4rem; }
h4 { font-size: 1rem; margin: 1rem 0 .3rem; }
table { border-collapse: collapse; width: 100%; table-layout: auto; margin: .5rem 0 1rem; }
th, td { border: 1px solid #bbb; padding: .25rem .45rem; text-align: left; vertical-align: top;
  overflow-wrap: break-word; }  /* words stay whole; only a too-long one breaks */
th { background: #eee; }
pre { background: #f6f6f6; border: 1px solid #ddd; padding: .6rem; white-space: pre-wrap;
  overflow-wrap: anywhere; font-size: 12px; }
.add { color: #05620f; } .del { color: #a30000; } .hunk { color: #555; }
.empty { color: #555; font-style: italic; }
@media print {
  body { margin: 0; max-width: none; font-size: 10.5pt; }
  section.part { break-before: page; page-break-before: always; }
  h2, h3, h4 { break-after: avoid; page-break-after: avoid; }
  tr, pre { break-inside: avoid; page-break-inside: avoid; }
  pre { white-space: pre-wrap; }
  table { table-layout: fixed; }
  @page { size: A4; margin: 15mm; }
}
"""


def _code_html(code: Code) -> str:
    if code.language != "diff":
        return f"<pre><code>{_html(code.text)}</code></pre>"
    lines = []
    for line in code.text.splitlines():
        kind = (
            "hunk"
            if line.startswith("@@")
            else "add"
            if line.startswith("+") and not line.startswith("+++")
            else "del"
            if line.startswith("-") and not line.startswith("---")
            else ""
        )
        text = _html(line)
        lines.append(f'<span class="{kind}">{text}</span>' if kind else text)
    return "<pre><code>" + "\n".join(lines) + "</code></pre>"


def _table_html(table: Table) -> str:
    if not table.rows:
        return f'<p class="empty">{_html(table.empty)}</p>'
    head = "".join(f"<th>{_html(h)}</th>" for h in table.headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{_html(c)}</td>" for c in row) + "</tr>" for row in table.rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def to_html(report: Report) -> str:
    parts: list[str] = []
    open_section = False
    for block in blocks(report):
        if isinstance(block, Heading):
            if block.level == 2:
                if open_section:
                    parts.append("</section>")
                parts.append('<section class="part">')
                open_section = True
            parts.append(f"<h{block.level}>{_html(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            parts.append(f"<p>{_html(block.text)}</p>")
        elif isinstance(block, Code):
            parts.append(_code_html(block))
        else:
            parts.append(_table_html(block))
    if open_section:
        parts.append("</section>")
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        # no request may leave the page: nothing is loaded, and the policy says so too
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_html(report.title)}</title>\n<style>{CSS}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )


# -- JSON -----------------------------------------------------------------------------------


def _round_money(data: Any) -> Any:
    if isinstance(data, dict):
        return {
            k: amount(v) if k.endswith("_usd") and isinstance(v, float) else _round_money(v)
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [_round_money(v) for v in data]
    return data


def report_data(report: Report) -> dict[str, Any]:
    """The report tree as JSON data (what ``--format json`` writes)."""
    # JSON-ready: dates as ISO strings, NaN and infinities as null, money rounded like the
    # CLI's JSON (:func:`llmops.money.amount`)
    data = _round_money(finite(dataclasses.asdict(report), dates=True))
    return {"schema_version": SCHEMA_VERSION, **data}


def to_json(report: Report) -> str:
    return json.dumps(report_data(report), indent=2, ensure_ascii=False) + "\n"


def render(report: Report, fmt: str) -> str:
    """The report in ``fmt`` (one of :data:`FORMATS`)."""
    if fmt == "md":
        return to_markdown(report)
    if fmt == "html":
        return to_html(report)
    if fmt == "json":
        return to_json(report)
    raise ValueError(f"unknown format {fmt!r}")
