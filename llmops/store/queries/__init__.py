"""Every figure the CLI and the dashboard show, aggregated in SQL. The one place that does
arithmetic on stored calls: callers format what these functions return.

All functions take an Engine and return small lists of dataclasses or dicts, never raw
tables. Dates are UTC. Queries are parameterized (SQLAlchemy Core); nothing user-supplied
is pasted into SQL.

Sums over a time range read the daily rollups (``llm_calls_daily``, ``feedback_daily``,
kept exact by triggers) for the whole UTC days of the range and the calls themselves only
for the partial days at its ends, so that 30 days of a million calls sum a few thousand
rows. Latency and TTFT percentiles merge the daily histograms of the whole days (within 1%,
see ``timing``) and read the calls of the partial days. A split by user and a filter on users
sum the per-user rollup (keyed by user and every other filter) for spend; the other figures
of a filter on users sum the rollups of the users' busy days (1,000 calls or more a day,
migration 0021) and read the calls of their other days.

One module per subject: ``spend`` (periods, days, splits, overview, percentiles),
``budgets`` (spend against each budget in its window), ``prompts`` (versions side by side),
``evals`` (stored runs and results), ``calls`` (single calls, feedback, filter choices),
``metrics`` (all-time totals and recent percentiles for the Prometheus exporter),
``alerts`` (the figures alert rules compare, and the alert state);
``timing`` (latency and TTFT percentiles, exact or from the histograms);
``sizes`` (the disk each table takes, and so each call);
``filters`` (what a figure covers) and ``rollups`` (one call's rollup key and figures, and
which rows a sum reads) serve them all.
"""

from __future__ import annotations

from llmops.store.queries.alerts import (
    AlertEventRow,
    AlertStateRow,
    ErrorCount,
    EvalSeries,
    FeedbackAverage,
    LatencyP95,
    alert_events,
    alert_states,
    claim_alert_state,
    error_counts,
    eval_series,
    feedback_averages,
    latency_p95,
    record_alert_event,
    remove_alert_state,
    spend_in_spans,
)
from llmops.store.queries.budgets import BudgetStatus, budget_status, window_span
from llmops.store.queries.calls import (
    CALL_LIST_COLUMNS,
    CALL_ORDERS,
    FeedbackDay,
    ScoreCount,
    call_detail,
    calls_page,
    feedback_comments,
    feedback_distribution,
    feedback_trend,
    filter_options,
    stored_calls,
    version_prompts,
)
from llmops.store.queries.evals import EvalResultRow, EvalRunRow, eval_results, eval_runs
from llmops.store.queries.filters import Filters
from llmops.store.queries.metrics import (
    CallTotals,
    RecentLatency,
    call_totals,
    recent_latency,
    rollup_signature,
)
from llmops.store.queries.prompts import (
    FeedbackInterval,
    VersionSide,
    VersionStats,
    compare_versions,
    latest_eval_by_version,
    prompt_versions,
)
from llmops.store.queries.rollups import FeedbackScore
from llmops.store.queries.sizes import DatabaseSize, TableSize, database_size
from llmops.store.queries.spend import (
    GROUPINGS,
    OTHER,
    DayTotal,
    MonthBudget,
    Overview,
    Period,
    SpendRow,
    SpendTotal,
    daily_spend,
    daily_totals,
    month_budget,
    month_forecast,
    overview,
    period_spans,
    spend_periods,
    spend_total,
)
from llmops.store.queries.timing import percentiles, timing_percentiles

__all__ = [
    "CALL_LIST_COLUMNS",
    "CALL_ORDERS",
    "GROUPINGS",
    "OTHER",
    "AlertEventRow",
    "AlertStateRow",
    "BudgetStatus",
    "CallTotals",
    "DatabaseSize",
    "DayTotal",
    "ErrorCount",
    "EvalResultRow",
    "EvalRunRow",
    "EvalSeries",
    "FeedbackAverage",
    "FeedbackDay",
    "FeedbackInterval",
    "FeedbackScore",
    "Filters",
    "LatencyP95",
    "MonthBudget",
    "Overview",
    "Period",
    "RecentLatency",
    "ScoreCount",
    "SpendRow",
    "SpendTotal",
    "TableSize",
    "VersionSide",
    "VersionStats",
    "alert_events",
    "alert_states",
    "budget_status",
    "call_detail",
    "call_totals",
    "calls_page",
    "claim_alert_state",
    "compare_versions",
    "daily_spend",
    "daily_totals",
    "database_size",
    "error_counts",
    "eval_results",
    "eval_runs",
    "eval_series",
    "feedback_averages",
    "feedback_comments",
    "feedback_distribution",
    "feedback_trend",
    "filter_options",
    "latency_p95",
    "latest_eval_by_version",
    "month_budget",
    "month_forecast",
    "overview",
    "percentiles",
    "period_spans",
    "prompt_versions",
    "recent_latency",
    "record_alert_event",
    "remove_alert_state",
    "rollup_signature",
    "spend_in_spans",
    "spend_periods",
    "spend_total",
    "stored_calls",
    "timing_percentiles",
    "version_prompts",
    "window_span",
]
