"""``llmops audit report``: the evidence an auditor asks for about one prompt, in one place.

The report is built once, as a tree of typed dataclasses (:class:`Report`), from git (the
prompt's versions, their commits and the history of ``labels.yaml``), from the stored eval
runs and from the stored calls; :mod:`llmops.audit.render` then writes that same tree as
Markdown, HTML or JSON, so the three formats cannot disagree.

Figures come from the query modules (``llmops.store.queries``) that the dashboard uses too;
this module only decides what belongs to the report and in which order.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine

from llmops.audit.verify import Break, verify
from llmops.config import Retention as RetentionSettings
from llmops.errors import ConfigError, LLMOpsError, PromptFileError
from llmops.prompts import LABELS_FILE, PromptRegistry, PromptVersion, parse_labels, split_ref
from llmops.store.queries.audit import FeedbackSummary

if TYPE_CHECKING:
    from llmops.evals.history import BatchComparison
    from llmops.store.audit_log import AuditEvent
    from llmops.store.queries import Filters, VersionStats
    from llmops.store.queries.audit import AuditEvalRun

__all__ = [
    "DEFAULT_DAYS",
    "PRODUCTION",
    "SIX_MONTHS",
    "Report",
    "build_report",
]

DEFAULT_DAYS = 183  # about six months: what Art. 19 / 26(6) ask logs to be kept for
SIX_MONTHS = timedelta(days=183)
PRODUCTION = "production"
SOURCES = ("app",)  # operation figures: the app's calls; eval calls are counted apart


# -- the report tree ------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """``[start, end)``, UTC."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    date: datetime
    author: str
    email: str
    subject: str


@dataclass(frozen=True)
class VersionIdentity:
    """One content version (the hash llmops computes from the parsed file) and the commits
    that wrote it, oldest first. ``committed`` is False for a version known only from calls
    or from the working tree."""

    version: str
    committed: bool
    commits: list[CommitInfo]
    first_committed_at: datetime | None
    labels_now: list[str]


@dataclass(frozen=True)
class LabelChange:
    """A commit of ``labels.yaml`` that pointed ``label`` at ``version`` (None: removed)."""

    label: str
    version: str | None
    previous: str | None
    commit: str
    at: datetime
    author: str
    email: str
    subject: str
    in_period: bool


@dataclass(frozen=True)
class Identity:
    prompt: str
    ref: str | None
    file: str
    repository: str | None
    versions: list[VersionIdentity]
    labels_file: str
    label_history: list[LabelChange]
    labels_uncommitted: bool  # the working tree's labels differ from the last commit's


@dataclass(frozen=True)
class VersionText:
    version: str
    source: str | None  # None: the text is in neither git nor the working tree
    source_from: str  # "commit SHA" or "working tree" or "unavailable"
    input_schema: dict[str, Any] | None
    output_schema: dict[str, Any] | None
    diff_from: str | None  # the version before it in the history
    diff: str | None  # unified diff from ``diff_from``


@dataclass(frozen=True)
class Texts:
    versions: list[VersionText]


@dataclass(frozen=True)
class FlippedCaseInfo:
    case_id: str
    direction: str  # "worse" or "better"


@dataclass(frozen=True)
class ComparisonInfo:
    """The candidate run against the baseline run of its batch (same model)."""

    baseline_run_id: str
    baseline_version: str
    baseline_pass_rate: float | None
    verdict: str
    p_value: float  # one-sided exact sign test, per comparison (not Holm-adjusted)
    paired_cases: int
    regressions: int
    improvements: int
    flipped: list[FlippedCaseInfo]


@dataclass(frozen=True)
class EvalRunInfo:
    id: str
    batch_id: str
    role: str
    suite: str
    model: str
    version: str
    git_commit: str | None
    started_at: datetime
    finished_at: datetime | None
    cases: int  # distinct cases run
    completed_cases: int  # with at least one completed repeat: the interval's n
    results: int
    passed_results: int
    pass_rate: float | None
    pass_rate_low: float | None
    pass_rate_high: float | None
    threshold: float
    threshold_from: str
    passing: bool
    comparison: ComparisonInfo | None


@dataclass(frozen=True)
class PromotionCheck:
    """Whether a version had a passing eval run before it became production."""

    version: str
    label: str
    promoted_at: datetime
    commit: str
    evaluated_before: bool
    run_id: str | None  # the newest passing run before the promotion
    run_suite: str | None
    run_started_at: datetime | None
    run_pass_rate: float | None
    runs_before: int  # every run of the version before the promotion, passing or not
    note: str


@dataclass(frozen=True)
class Testing:
    passing_rule: str
    runs: list[EvalRunInfo]
    promotions: list[PromotionCheck]


@dataclass(frozen=True)
class OperationTotals:
    calls: int  # attempts, blocked included
    sent: int
    errors: int
    error_rate: float | None
    cancelled: int
    blocked: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    unpriced_calls: int
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    eval_calls: int  # the eval runner's calls of the same prompt, not in the figures above


@dataclass(frozen=True)
class ErrorTypeRow:
    error_type: str
    calls: int


@dataclass(frozen=True)
class CostRow:
    date: date
    model: str
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    unpriced_calls: int


@dataclass(frozen=True)
class ModelCost:
    model: str
    calls: int
    cost_usd: float
    unpriced_calls: int


@dataclass(frozen=True)
class VersionUsage:
    version: str | None
    calls: int
    errors: int
    error_rate: float
    cost_per_call_usd: float | None
    latency_avg_ms: float | None
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True)
class BlockedDayRow:
    date: date
    calls: int


@dataclass(frozen=True)
class FeedbackPoint:
    date: date
    name: str
    count: int
    average: float


@dataclass(frozen=True)
class AlertRow:
    at: datetime
    event: str
    rule: str
    kind: str
    subject: str
    value: float | None
    threshold: float | None
    message: str | None


@dataclass(frozen=True)
class Operation:
    sources: str
    totals: OperationTotals
    error_types: list[ErrorTypeRow]
    cost_by_day_model: list[CostRow]
    cost_by_model: list[ModelCost]
    versions: list[VersionUsage]
    blocked_by_day: list[BlockedDayRow]
    budget_alerts: int
    feedback: list[FeedbackSummary]  # each name on its own scale, with its interval
    feedback_trend: list[FeedbackPoint]
    alerts: list[AlertRow]


@dataclass(frozen=True)
class AuditEventInfo:
    seq: int
    at: datetime
    kind: str
    actor: str
    command: str
    rows: int
    details: dict[str, Any] | None
    intact: bool


@dataclass(frozen=True)
class Retention:
    content_days: int | None  # ``retention:`` of the config: what `llmops db prune` drops
    calls_days: int | None
    minimum_days: int
    calls_stored: int
    oldest_call_at: datetime | None
    newest_call_at: datetime | None
    six_months_kept: bool  # the oldest stored call is at least six months old
    prune_events: list[AuditEventInfo]
    note: str


@dataclass(frozen=True)
class Integrity:
    ok: bool
    note: str
    checked: dict[str, int] = field(default_factory=dict)
    chains: int = 0
    broken: int = 0  # every broken link (``breaks`` lists the first ones)
    unchained: dict[str, int] = field(default_factory=dict)
    expected_unchained: dict[str, int] = field(default_factory=dict)
    breaks: list[Break] = field(default_factory=list)
    events: list[AuditEventInfo] = field(default_factory=list)
    seconds: float = 0.0


@dataclass(frozen=True)
class ArticleRow:
    article: str
    requirement: str
    sections: list[str]
    evidence: str


@dataclass(frozen=True)
class Articles:
    rows: list[ArticleRow]
    disclaimer: str


@dataclass(frozen=True)
class Report:
    title: str
    generated_at: datetime
    llmops_version: str
    database: str
    period: Period
    identity: Identity
    texts: Texts
    testing: Testing
    operation: Operation
    retention: Retention
    integrity: Integrity
    articles: Articles


SECTION_TITLES = {
    "identity": "1. Identity",
    "texts": "2. Text",
    "testing": "3. Testing evidence",
    "operation": "4. Operation",
    "integrity": "5. Integrity",
    "articles": "6. Article mapping",
}
"""The section headings every format shows (the browser test looks for each)."""

DISCLAIMER = (
    "This mapping lists the records llmops keeps and where they appear in this report. It "
    "is evidence for an assessment, not a legal opinion: whether a system complies with the "
    "EU AI Act is for its provider, deployer and their advisers to decide."
)


# -- building it ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _History:
    """The prompt's git history grouped by version, oldest version first."""

    rows: list[PromptVersion]  # oldest first
    order: list[str]  # versions in order of their first commit

    def commits_of(self, version: str) -> list[PromptVersion]:
        return [row for row in self.rows if row.version == version]

    def previous(self, version: str) -> str | None:
        index = self.order.index(version) if version in self.order else -1
        return self.order[index - 1] if index > 0 else None


def build_report(
    engine: Engine,
    registry: PromptRegistry,
    prompt_ref: str,
    start: datetime,
    end: datetime,
    *,
    database: str,
    retention_settings: RetentionSettings | None = None,
    now: datetime | None = None,
) -> Report:
    """Collect every section of the report on ``prompt_ref`` (``NAME`` or ``NAME@REF``) for
    ``[start, end)``. Bad input (an unknown prompt or reference, an empty period) raises a
    :class:`~llmops.errors.ConfigError` before any figure is read. ``retention_settings``:
    the ``retention:`` of the config file, shown as the retention evidence."""
    from llmops import __version__
    from llmops.store import queries

    now = now or datetime.now(UTC)
    if end <= start:
        raise ConfigError(
            f"--to {end:%Y-%m-%d %H:%M:%S} is not after --from {start:%Y-%m-%d %H:%M:%S}"
        )
    name, ref = split_ref(prompt_ref)
    registry.path_of(name)  # a malformed name is refused here
    history = _history(registry, name)
    wanted = registry.load(prompt_ref).version if ref is not None else None
    period = Period(start, end)
    filters = queries.Filters(start, end, prompts=(name,), sources=SOURCES)
    if wanted is not None:
        filters = replace(filters, versions=(wanted,))
    label_history = _label_history(registry, name, period)
    versions = _versions(engine, registry, name, history, label_history, period, wanted)
    identity = _identity(registry, name, ref, history, versions, label_history)
    texts = Texts([_text(registry, name, history, version) for version in versions])
    testing = _testing(engine, registry, name, versions, label_history, period)
    operation = _operation(engine, filters, period)
    retention = _retention(engine, now, retention_settings or RetentionSettings())
    integrity = _integrity(engine, period)
    articles = _articles(operation, testing, identity, retention, integrity)
    shown = name if ref is None else f"{name}@{ref}"
    return Report(
        title=f"Evidence report: prompt {shown}",
        generated_at=now,
        llmops_version=__version__,
        database=database,
        period=period,
        identity=identity,
        texts=texts,
        testing=testing,
        operation=operation,
        retention=retention,
        integrity=integrity,
        articles=articles,
    )


def check_prompt(registry: PromptRegistry, prompt_ref: str) -> None:
    """Refuse an unknown prompt or reference (a ConfigError) before any database is read."""
    name, ref = split_ref(prompt_ref)
    registry.path_of(name)  # a malformed name
    _history(registry, name)  # an unknown prompt, or a shallow clone's history
    if ref is not None:
        registry.load(prompt_ref)  # an unknown reference


def _history(registry: PromptRegistry, name: str) -> _History:
    if registry.repo.shallow:  # who wrote a version, and when, would be guessed
        raise ConfigError(
            "the evidence report needs the whole git history, and this is a shallow clone "
            "(git clone --depth): fetch it with `git fetch --unshallow` (in GitHub Actions, "
            "actions/checkout with `fetch-depth: 0`)"
        )
    rows = list(reversed(registry.history(name)))  # oldest first
    order = list(dict.fromkeys(row.version for row in rows if row.version is not None))
    return _History(rows, order)


def _in(moment: datetime, period: Period) -> bool:
    return period.start <= moment < period.end


def _versions(
    engine: Engine,
    registry: PromptRegistry,
    name: str,
    history: _History,
    labels: list[LabelChange],
    period: Period,
    wanted: str | None,
) -> list[str]:
    """The versions the report covers: the one asked for, or every version committed, called,
    evaluated or labelled in the period, in the order of their first commit (versions never
    committed last)."""
    if wanted is not None:
        return [wanted]
    from llmops.store import queries
    from llmops.store.queries.audit import eval_runs_of_prompt

    found: set[str] = set()
    found.update(r.version for r in history.rows if r.version is not None and _in(r.date, period))
    used = queries.prompt_versions(
        engine, queries.Filters(period.start, period.end, prompts=(name,))
    )
    found.update(v.prompt_version for v in used if v.prompt_version)
    found.update(
        r.prompt_version for r in eval_runs_of_prompt(engine, name, period.start, period.end)
    )
    found.update(c.version for c in labels if c.in_period and c.version is not None)
    found.update(_labels_at(labels, period.start).values())
    rank = {version: index for index, version in enumerate(history.order)}
    return sorted(found, key=lambda v: (rank.get(v, len(rank)), v))


def _labels_at(labels: list[LabelChange], moment: datetime) -> dict[str, str]:
    """label -> version as committed before ``moment``: what was live when the period began."""
    state: dict[str, str] = {}
    for change in labels:
        if change.at >= moment:
            break
        if change.version is None:
            state.pop(change.label, None)
        else:
            state[change.label] = change.version
    return state


def _label_history(registry: PromptRegistry, name: str, period: Period) -> list[LabelChange]:
    """Every change to ``name``'s labels in the commits of ``labels.yaml``, oldest first,
    with the commit's author and date (the promotion time). A commit whose file does not
    parse is skipped: it changed no label that llmops could have read."""
    repo = registry.repo
    path = registry.root.resolve() / LABELS_FILE
    rel = repo.relative(path)
    commits = list(reversed(repo.log(rel)))
    texts = repo.read([(c.sha, c.path) for c in commits])
    changes: list[LabelChange] = []
    before: dict[str, str] = {}
    for commit, text in zip(commits, texts, strict=True):
        try:
            now = parse_labels(text or "", f"{commit.path}@{commit.sha[:12]}").of(name)
        except PromptFileError:
            continue
        for label in sorted(set(before) | set(now)):
            if before.get(label) == now.get(label):
                continue
            changes.append(
                LabelChange(
                    label=label,
                    version=now.get(label),
                    previous=before.get(label),
                    commit=commit.sha,
                    at=commit.date,
                    author=commit.author,
                    email=commit.email,
                    subject=commit.subject,
                    in_period=_in(commit.date, period),
                )
            )
        before = now
    return changes


def _identity(
    registry: PromptRegistry,
    name: str,
    ref: str | None,
    history: _History,
    versions: list[str],
    label_history: list[LabelChange],
) -> Identity:
    current = registry.labels().of(name)
    committed: dict[str, str] = {}
    for change in label_history:
        if change.version is None:
            committed.pop(change.label, None)
        else:
            committed[change.label] = change.version
    rows = []
    for version in versions:
        commits = [
            CommitInfo(c.commit, c.date, c.author, c.email, c.subject)
            for c in history.commits_of(version)
        ]
        rows.append(
            VersionIdentity(
                version=version,
                committed=bool(commits),
                commits=commits,
                first_committed_at=commits[0].date if commits else None,
                labels_now=sorted(label for label, v in current.items() if v == version),
            )
        )
    repo = registry.repo
    return Identity(
        prompt=name,
        ref=ref,
        file=repo.relative(registry.path_of(name).resolve()),
        repository=str(repo.root),
        versions=rows,
        labels_file=repo.relative(registry.root.resolve() / LABELS_FILE),
        label_history=label_history,
        labels_uncommitted=committed != current,
    )


def _text(registry: PromptRegistry, name: str, history: _History, version: str) -> VersionText:
    """The version's file text (as its first commit wrote it), its schemas and its diff from
    the version before it."""
    commits = history.commits_of(version)
    source: str | None = None
    source_from = "unavailable"
    if commits:
        source, source_from = commits[0].source, f"commit {commits[0].commit}"
    input_schema = output_schema = None
    try:
        prompt = registry.load(f"{name}@{version}")
    except LLMOpsError:
        prompt = None
    if prompt is not None:
        input_schema, output_schema = prompt.input_schema, prompt.output_schema
        if source is None:
            source, source_from = prompt.source, "working tree"
    previous = history.previous(version)
    diff = None
    if previous is not None and source is not None:
        old = history.commits_of(previous)[0].source
        diff = "".join(
            difflib.unified_diff(
                old.splitlines(keepends=True),
                source.splitlines(keepends=True),
                fromfile=f"{name}@{previous}",
                tofile=f"{name}@{version}",
            )
        )
    return VersionText(version, source, source_from, input_schema, output_schema, previous, diff)


# -- testing evidence -----------------------------------------------------------------------


def _threshold(registry: PromptRegistry, suite: str) -> tuple[float, str]:
    """The suite's pass-rate threshold from ``evals/SUITE.yaml`` of the working tree (the
    runs do not store it); 1.0, the suites' default, when that file is not there."""
    from llmops.evals.suite import load_suite

    path = registry.repo.root / "evals" / f"{suite}.yaml"
    try:
        return load_suite(path).spec.threshold, f"evals/{suite}.yaml"
    except (LLMOpsError, OSError):
        return 1.0, "default (suite file not found)"


def _testing(
    engine: Engine,
    registry: PromptRegistry,
    name: str,
    versions: list[str],
    labels: list[LabelChange],
    period: Period,
) -> Testing:
    from llmops.store.queries.audit import eval_runs_of_prompt

    every = _run_infos(engine, registry, eval_runs_of_prompt(engine, name, None, None, versions))
    runs = [run for run in every if _in(run.started_at, period)]
    promotions = [
        _promotion_check(change, every)
        for change in labels
        if change.label == PRODUCTION and change.version in versions
    ]
    rule = (
        "A run passes when its pass rate (mean pass fraction of its completed cases) is at "
        "least its suite's threshold and its batch shows no significant regression against "
        "the baseline. p-values are one-sided exact sign tests per comparison (not adjusted "
        "across the run's comparisons)."
    )
    return Testing(rule, runs, promotions)


def _run_infos(
    engine: Engine, registry: PromptRegistry, runs: Sequence[AuditEvalRun]
) -> list[EvalRunInfo]:
    from llmops.evals.history import comparisons
    from llmops.evals.stats import pass_fraction, rate
    from llmops.store.queries import eval_results

    passes: dict[str, dict[str, list[bool | None]]] = {run.id: {} for run in runs}
    for result in eval_results(engine, [run.id for run in runs]) if runs else []:
        outcome = None if result.error is not None else result.passed
        passes[result.run_id].setdefault(result.case_id, []).append(outcome)
    batches: dict[str, list[BatchComparison]] = {}
    thresholds: dict[str, tuple[float, str]] = {}
    infos = []
    for run in runs:
        if run.batch_id not in batches:
            batches[run.batch_id] = comparisons(engine, run.batch_id)
        if run.suite not in thresholds:
            thresholds[run.suite] = _threshold(registry, run.suite)
        comparison = next(
            (_comparison(c) for c in batches[run.batch_id] if c.candidate.id == run.id), None
        )
        interval = rate(passes[run.id])
        completed = sum(pass_fraction(p) is not None for p in passes[run.id].values())
        threshold, threshold_from = thresholds[run.suite]
        known = not math.isnan(interval.rate)
        regression = comparison is not None and comparison.verdict == "significant regression"
        infos.append(
            EvalRunInfo(
                id=run.id,
                batch_id=run.batch_id,
                role=run.role,
                suite=run.suite,
                model=run.model,
                version=run.prompt_version,
                git_commit=run.git_commit,
                started_at=run.started_at,
                finished_at=run.finished_at,
                cases=len(passes[run.id]),
                completed_cases=completed,
                results=run.results,
                passed_results=run.passed,
                pass_rate=interval.rate if known else None,
                pass_rate_low=interval.low if known else None,
                pass_rate_high=interval.high if known else None,
                threshold=threshold,
                threshold_from=threshold_from,
                passing=known and interval.rate >= threshold and not regression,
                comparison=comparison,
            )
        )
    return infos


def _comparison(found: BatchComparison) -> ComparisonInfo:
    stats = found.comparison
    return ComparisonInfo(
        baseline_run_id=found.baseline.id,
        baseline_version=found.baseline.prompt_version,
        baseline_pass_rate=found.baseline.pass_rate,
        verdict=stats.verdict,
        p_value=stats.p_value,
        paired_cases=stats.paired,
        regressions=len(stats.regressions),
        improvements=len(stats.improvements),
        flipped=[FlippedCaseInfo(f.case_id, f.direction) for f in found.flipped],
    )


def _promotion_check(change: LabelChange, runs: list[EvalRunInfo]) -> PromotionCheck:
    version = change.version or ""
    before = [r for r in runs if r.version == version and r.started_at < change.at]
    passing = [r for r in before if r.passing]
    best = passing[-1] if passing else None
    if best is not None:
        note = f"passing run {best.id} ({best.suite}) before the promotion"
    elif before:
        note = f"{len(before)} run(s) before the promotion, none passing"
    else:
        note = "no eval run of this version before the promotion"
    return PromotionCheck(
        version=version,
        label=change.label,
        promoted_at=change.at,
        commit=change.commit,
        evaluated_before=best is not None,
        run_id=best.id if best else None,
        run_suite=best.suite if best else None,
        run_started_at=best.started_at if best else None,
        run_pass_rate=best.pass_rate if best else None,
        runs_before=len(before),
        note=note,
    )


# -- operation ------------------------------------------------------------------------------


def _operation(engine: Engine, filters: Filters, period: Period) -> Operation:
    from llmops.store import queries
    from llmops.store.queries import audit

    overview = queries.overview(engine, filters)
    eval_calls = queries.overview(engine, replace(filters, sources=("eval",))).calls
    sent = overview.calls - overview.blocked
    totals = OperationTotals(
        calls=overview.calls,
        sent=sent,
        errors=overview.errors,
        error_rate=overview.error_rate,
        cancelled=overview.cancelled,
        blocked=overview.blocked,
        prompt_tokens=overview.prompt_tokens,
        completion_tokens=overview.completion_tokens,
        cost_usd=overview.cost_usd,
        unpriced_calls=overview.unpriced_calls,
        latency_p50_ms=overview.latency_p50,
        latency_p95_ms=overview.latency_p95,
        latency_p99_ms=overview.latency_p99,
        eval_calls=eval_calls,
    )
    cost_rows = [
        CostRow(
            r.date,
            r.key,
            r.calls,
            r.prompt_tokens,
            r.completion_tokens,
            r.cost_usd,
            r.unpriced_calls,
        )
        for r in queries.daily_spend(engine, filters, by="model")
    ]
    alerts = [
        AlertRow(a.at, a.event, a.rule, a.kind, a.subject, a.value, a.threshold, a.message)
        for a in audit.alert_events_between(engine, period.start, period.end)
    ]
    return Operation(
        sources="app only: calls the eval runner made are counted apart (eval calls)",
        totals=totals,
        error_types=[
            ErrorTypeRow(e.error_type, e.calls) for e in audit.error_types(engine, filters)
        ],
        cost_by_day_model=cost_rows,
        cost_by_model=_by_model(cost_rows),
        versions=[_usage(v) for v in queries.prompt_versions(engine, filters)],
        blocked_by_day=[
            BlockedDayRow(b.date, b.calls) for b in audit.blocked_by_day(engine, filters)
        ],
        budget_alerts=sum(a.kind == "budget" for a in alerts),
        feedback=audit.feedback_summaries(engine, filters),
        feedback_trend=[
            FeedbackPoint(p.date, p.name, p.count, p.average)
            for p in audit.feedback_by_day(engine, filters)
        ],
        alerts=alerts,
    )


def _by_model(rows: list[CostRow]) -> list[ModelCost]:
    """The day-and-model rows summed per model, dearest first."""
    totals: dict[str, ModelCost] = {}
    for row in rows:
        known = totals.get(row.model, ModelCost(row.model, 0, 0.0, 0))
        totals[row.model] = ModelCost(
            row.model,
            known.calls + row.calls,
            known.cost_usd + row.cost_usd,
            known.unpriced_calls + row.unpriced_calls,
        )
    return sorted(totals.values(), key=lambda m: (-m.cost_usd, m.model))


def _usage(stats: VersionStats) -> VersionUsage:
    return VersionUsage(
        version=stats.prompt_version,
        calls=stats.calls,
        errors=stats.errors,
        error_rate=stats.error_rate,
        cost_per_call_usd=stats.cost_per_call,
        latency_avg_ms=stats.latency_avg_ms,
        first_seen=_aware(stats.first_seen),
        last_seen=_aware(stats.last_seen),
    )


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# -- retention and integrity ----------------------------------------------------------------


def _event_info(event: AuditEvent) -> AuditEventInfo:
    return AuditEventInfo(
        seq=event.seq,
        at=event.at,
        kind=event.kind,
        actor=event.actor,
        command=event.command,
        rows=event.rows,
        details=event.details,
        intact=event.intact,
    )


def _retention(engine: Engine, now: datetime, settings: RetentionSettings) -> Retention:
    from llmops.store.audit_log import list_events
    from llmops.store.queries.audit import stored_calls

    stored = stored_calls(engine)
    kept = stored.oldest is not None and stored.oldest <= now - SIX_MONTHS
    prunes = [_event_info(e) for e in list_events(engine, kinds=["prune"])]
    if stored.oldest is None:
        note = "No call is stored."
    elif kept:
        note = f"Calls are stored from {stored.oldest:%Y-%m-%d}: more than six months back."
    else:
        note = (
            f"The oldest stored call is from {stored.oldest:%Y-%m-%d}, less than six months "
            "back: either the database is younger than that or calls were removed (see the "
            "prune events)."
        )
    return Retention(
        content_days=settings.content_days,
        calls_days=settings.calls_days,
        minimum_days=settings.minimum_days,
        calls_stored=stored.calls,
        oldest_call_at=stored.oldest,
        newest_call_at=stored.newest,
        six_months_kept=kept,
        prune_events=prunes,
        note=note,
    )


def _integrity(engine: Engine, period: Period) -> Integrity:
    """The hash-chain verification of the period (``llmops audit verify``)."""
    result = verify(engine, since=period.start, until=period.end)
    note = (
        "every chained row of the period verified, and the daily rollups its figures come "
        "from agree with them"
        if result.ok
        else f"{result.broken} broken link(s) found: the first ones below"
    )
    if result.rollup_days_pruned:
        note += (
            f" ({result.rollup_days_pruned} day(s) before a prune's cutoff keep the rollups "
            "of calls it removed: not checked)"
        )
    return Integrity(
        ok=result.ok,
        note=note,
        checked=dict(result.checked),
        chains=result.chains,
        broken=result.broken,
        unchained=dict(result.unchained),
        expected_unchained=dict(result.expected_unchained),
        breaks=list(result.breaks),
        events=[_event_info(e) for e in result.events],
        seconds=result.seconds,
    )


# -- article mapping ------------------------------------------------------------------------


def _articles(
    operation: Operation,
    testing: Testing,
    identity: Identity,
    retention: Retention,
    integrity: Integrity,
) -> Articles:
    t = operation.totals
    chain = "hash chains verified" if integrity.ok else "hash-chain verification found breaks"
    checked = sum(1 for p in testing.promotions if p.evaluated_before)
    oldest = f"{retention.oldest_call_at:%Y-%m-%d}" if retention.oldest_call_at else "none"
    rows = [
        ArticleRow(
            "Art. 12",
            "Record-keeping: automatic logging of events over the system's lifetime",
            [SECTION_TITLES["operation"], SECTION_TITLES["integrity"]],
            f"{t.calls} app calls and {t.eval_calls} eval calls logged automatically in the "
            f"period; {chain}.",
        ),
        ArticleRow(
            "Art. 17(1)(a), (d)",
            "Quality management: change management; examination, test and validation "
            "before, during and after release",
            [SECTION_TITLES["identity"], SECTION_TITLES["texts"], SECTION_TITLES["testing"]],
            f"{len(identity.versions)} version(s) with commits, authors and diffs; "
            f"{len(identity.label_history)} label change(s); {len(testing.runs)} eval run(s) "
            f"in the period; {checked} of {len(testing.promotions)} promotion(s) to production "
            "had a passing eval run before them.",
        ),
        ArticleRow(
            "Art. 19, Art. 26(6)",
            "Automatically generated logs kept for at least six months",
            [SECTION_TITLES["integrity"]],
            f"{retention.calls_stored} calls stored, the oldest from {oldest}; calls kept at "
            f"least {retention.minimum_days} days by configuration; "
            f"{len(retention.prune_events)} prune event(s).",
        ),
        ArticleRow(
            "Art. 72",
            "Post-market monitoring: collect and analyse performance data",
            [SECTION_TITLES["operation"]],
            f"error rate, latency, cost, {sum(f.count for f in operation.feedback)} feedback "
            f"score(s) with their daily trend and {len(operation.alerts)} alert event(s) in "
            "the period.",
        ),
    ]
    return Articles(rows, DISCLAIMER)
