"""Evals: pass rates over time per suite, and one batch's candidate against its baseline."""

from __future__ import annotations

import _common as c
import altair as alt
import streamlit as st

from llmops.evals.stats import Interval

VERDICT_STYLE = {
    "significant regression": st.error,
    "significant improvement": st.success,
}

view = c.page_view("Evals", filters=False)
st.title("Evals")
st.caption("Every stored eval run (`llmops eval run`), whatever the date range and filters.")

runs = c.eval_runs(view)
if not runs:
    c.no_data("No eval runs yet: `llmops eval run` records them.")
    st.stop()

# -- pass rate over time ------------------------------------------------------------------
st.subheader("Pass rate over time")
history = c.table(
    [
        {
            "started": r.started_at,
            "pass_rate": r.pass_rate,
            "series": f"{r.suite} · {r.role}",
            "run": f"{r.prompt_ref} ({c.short(r.prompt_version)}) on {r.model}",
            "shown": c.pct(r.pass_rate),
        }
        for r in runs
        if r.pass_rate is not None
    ],
    columns=["started", "pass_rate", "series", "run", "shown"],
)
c.altair_chart(
    alt.Chart(history)
    .mark_line(point=True)
    .encode(
        x=alt.X(
            "started:T",
            title="Started (UTC)",
            axis=alt.Axis(format="%Y-%m-%d %H:%M", labelAngle=-45),
            scale=alt.Scale(padding=40),  # one or two runs: points off the plot's edges
        ),
        y=alt.Y(
            "pass_rate:Q",
            title="Pass rate",
            scale=alt.Scale(domain=[0, 1]),
            axis=alt.Axis(format="%"),
        ),
        color=c.series_colour("series", "Suite · role", list(history["series"])),
        tooltip=[
            alt.Tooltip("series:N", title="Suite · role"),
            alt.Tooltip("run:N", title="Run"),
            alt.Tooltip("shown:N", title="Pass rate"),
            alt.Tooltip("started:T", title="Started", format="%Y-%m-%d %H:%M"),
        ],
    ),
    width="stretch",
)

with st.expander("Every run"):
    st.dataframe(
        c.table(
            [
                {
                    "Started": c.when(r.started_at),
                    "Suite": r.suite,
                    "Role": r.role,
                    "Prompt": r.prompt_ref,
                    "Version": r.prompt_version,
                    "Model": r.model,
                    "Results": c.num(r.results),
                    "Passed": c.num(r.passed),
                    "Pass rate": c.pct(r.pass_rate),
                    "Cost": c.usd(r.cost_usd),
                    "Cached": c.num(r.cached),
                    "Batch": r.batch_id,
                }
                for r in runs
            ]
        ),
        hide_index=True,
        placeholder=c.DASH,
        key="runs",
    )

# -- one batch: candidate against baseline ------------------------------------------------
st.subheader("Candidate against baseline")
batches: dict[str, str] = {}
for r in runs:  # newest first
    batches.setdefault(r.batch_id, f"{c.when(r.started_at)} · {r.suite} · {r.batch_id[:8]}")
# by default the newest batch that compares two different versions (a batch whose
# candidate is its baseline's version shows nothing worth reading)
versions: dict[str, set[str | None]] = {}
for r in runs:
    versions.setdefault(r.batch_id, set()).add(r.prompt_version)
default = next((b for b in batches if len(versions.get(b, ())) > 1), next(iter(batches)))
c.bound_choice("batch", list(batches), default)
batch = st.selectbox(
    "Batch", list(batches), format_func=lambda b: c.visible(batches[b]), key="batch"
)
c.publish("batch", batch)

comparisons = c.eval_comparisons(view, batch)
if not comparisons:
    st.info("This batch has no baseline run to compare with.", icon=":material/info:")
    st.stop()


def interval(rate: Interval) -> str:
    return f"95% interval {c.pct(rate.low)} to {c.pct(rate.high)} (n = {rate.n})"


for comparison in comparisons:
    stats = comparison.comparison
    candidate, baseline = comparison.candidate, comparison.baseline
    st.markdown(f"#### {c.plain(candidate.suite)} on {c.plain(candidate.model)}")
    left, right, verdict_column = st.columns(3)
    left.metric(
        "Candidate pass rate",
        c.pct(stats.candidate.rate),
        help=c.plain(f"{candidate.prompt_ref} ({candidate.prompt_version})"),
    )
    left.caption(interval(stats.candidate))
    right.metric(
        "Baseline pass rate",
        c.pct(stats.baseline.rate),
        help=c.plain(f"{baseline.prompt_ref} ({baseline.prompt_version})"),
    )
    right.caption(interval(stats.baseline))
    verdict_column.metric("One-sided p (worse)", f"{stats.p_value:.4g}")
    verdict_column.caption(
        f"exact sign test on {stats.paired} cases compared, alpha {stats.alpha:g}"
        + (f"; {len(stats.errored)} errored, left out" if stats.errored else "")
    )
    show = VERDICT_STYLE.get(stats.verdict, st.info)
    show(
        f"Verdict: {stats.verdict}: {len(stats.regressions)} cases worse, "
        f"{len(stats.improvements)} better"
        + (f", {len(stats.flaky)} flaky ({', '.join(stats.flaky)})" if stats.flaky else "")
    )
    if not comparison.flipped:
        st.caption("No case changed outcome.")
    for flip in comparison.flipped:
        st.markdown(f"**{c.plain(flip.case_id)}**: {flip.direction}")
        mine, theirs = st.columns(2)
        mine.caption(f"Candidate: {candidate.prompt_ref} ({c.short(candidate.prompt_version)})")
        mine.code(flip.candidate_output, language=None, wrap_lines=True)
        for check in flip.candidate_failed:
            mine.markdown(f":red[failed] {c.plain(check)}")
        theirs.caption(f"Baseline: {baseline.prompt_ref} ({c.short(baseline.prompt_version)})")
        theirs.code(flip.baseline_output, language=None, wrap_lines=True)
        for check in flip.baseline_failed:
            theirs.markdown(f":red[failed] {c.plain(check)}")
