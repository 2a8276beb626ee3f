"""Overview: spend per period, daily spend against the budget, calls, errors, latency."""

from __future__ import annotations

import _common as c
import altair as alt
import pandas as pd
import streamlit as st

from llmops.money import axis_format
from llmops.store import queries

GROUP_LABELS = {
    "model": "Model",
    "prompt": "Prompt",
    "user": "User",
    "tag": "Tag",
    "source": "Source",
    "key": "Key",
}
# what each period is compared with: like with like (see queries.period_spans)
PERIOD_BEFORE = {
    "today": "yesterday until this time",
    "yesterday": "the day before",
    "this week": "last week until this time",
    "this month": "the same days of last month",
}

view = c.page_view("Overview")
budget = c.daily_budget(view)
st.title("Overview")

# -- spend per calendar period (not filtered: always all calls) ---------------------------
st.subheader("Spend")
st.caption("Calendar periods in UTC (weeks from Monday), every call: the filters do not apply.")
periods = c.spend_periods(view)
month = c.month_budget(view)
columns = st.columns(len(periods) + 2)
for column, period in zip(columns, periods, strict=False):
    before = PERIOD_BEFORE.get(period.name, "the period before")
    c.usd_tile(
        column,
        f"Spend {period.name}",
        period.cost_usd,
        delta=c.change(period.change),
        delta_color="inverse",
        help=f"{c.num(period.calls)} calls; {c.usd(period.previous_usd)} {before} (the "
        "change compares with that)."
        + ("" if period.change is not None else f" No spend {before}: no change to show."),
    )
c.usd_tile(
    columns[-2],
    "Forecast this month",
    month.forecast_usd,
    help="The month's spend at the rate so far: month-to-date spend over the share of the "
    "month gone by."
    + (f" Budget {c.usd(month.budget_usd)}." if month.budget_usd is not None else ""),
)
if month.budget_usd is None:
    columns[-1].metric(
        "Monthly budget used",
        c.DASH,
        help="No monthly budget set (LLMOPS_MONTHLY_BUDGET, or `budgets.monthly_usd` in "
        "llmops.yaml).",
    )
else:
    columns[-1].metric(
        "Monthly budget used",
        c.pct(month.used),
        help=f"{c.usd(month.month_to_date_usd)} of {c.usd(month.budget_usd)} this month.",
    )
    st.progress(
        min(max(month.used or 0.0, 0.0), 1.0),
        text=f"Monthly budget: {c.usd(month.month_to_date_usd)} of "
        f"{c.usd(month.budget_usd)} used ({c.pct(month.used)})",
    )
    if month.over:
        st.error(f"Over the monthly budget of {c.usd(month.budget_usd)}.")
    elif month.forecast_over:
        st.warning(
            f"At the rate so far this month ends at {c.usd(month.forecast_usd)}, over the "
            f"monthly budget of {c.usd(month.budget_usd)}.",
            icon=":material/trending_up:",
        )

budgets = c.budget_status(view) if view.settings.budgets else []
if budgets:
    st.caption(
        "Budgets (`budgets.limits` in llmops.yaml), each in its current UTC window; projected:"
        " the spend so far at the same rate to the window's end. `block` budgets refuse calls"
        " that could pass their limit (status `blocked` in Calls)."
    )
    over = [b for b in budgets if b.exhausted]
    if over:
        names = ", ".join(c.plain(b.budget.name + (f" ({b.key})" if b.key else "")) for b in over)
        st.error(f"Over budget: {names}.", icon=":material/warning:")
    st.dataframe(
        c.table(
            [
                {
                    "Budget": b.budget.name,
                    "Scope": b.key if b.key is not None else b.budget.describe_scope(),
                    "Window": f"{b.budget.window} from {b.window_start:%Y-%m-%d}",
                    "Action": b.budget.action,
                    "Spent": c.usd(b.spent_usd),
                    "Limit": c.usd(b.limit_usd),
                    "Used": c.pct(b.used),
                    "Projected": c.usd(b.projected_usd),
                    "State": b.state,
                }
                for b in budgets
            ]
        ),
        hide_index=True,
        placeholder=c.DASH,
        key="budgets",
    )

# -- the selected range -------------------------------------------------------------------
st.subheader(f"Calls, {view.label}" + (" (filtered)" if view.filtered else ""))
summary = c.overview(view)
if summary.calls == 0:
    c.no_data()
    st.stop()

row = st.columns(6)
c.num_tile(
    row[0],
    "Calls",
    summary.calls,
    help=f"{c.num(summary.blocked)} refused by blocking budgets (status blocked)."
    if summary.blocked
    else None,
)
row[1].metric(
    "Error rate",
    c.pct(summary.error_rate),
    help=f"{c.num(summary.errors)} errors, {c.num(summary.cancelled)} cancelled, "
    "among the calls sent.",
)
c.usd_tile(row[2], "Cost", summary.cost_usd, help="Priced calls only.")
c.num_tile(row[3], "Input tokens", summary.prompt_tokens)
c.num_tile(row[4], "Output tokens", summary.completion_tokens)
c.num_tile(
    row[5],
    "Feedback scores",
    summary.feedback_count,
    help="Scores given to the calls of the range, of every name (averages per name below).",
)
row = st.columns(6)
c.ms_tile(row[0], "Latency p50", summary.latency_p50)
c.ms_tile(row[1], "Latency p95", summary.latency_p95)
c.ms_tile(row[2], "Latency p99", summary.latency_p99)
c.ms_tile(row[3], "TTFT p50", summary.ttft_p50, help="Time to first token (streams).")
c.ms_tile(row[4], "TTFT p95", summary.ttft_p95)
c.ms_tile(row[5], "TTFT p99", summary.ttft_p99)
if summary.feedback:  # each name on its own scale: thumbs 0/1 and stars 1-5 never mixed
    shown = summary.feedback[:6]
    row = st.columns(6)
    for column, score in zip(row, shown, strict=False):
        column.metric(
            f"Feedback: {c.plain(score.name)}",
            c.score(score.average),
            help=f"The average of {c.num(score.count)} {c.plain(score.name)} scores.",
        )
    if len(summary.feedback) > len(shown):
        st.caption("More feedback names: " + c.scores(summary.feedback[len(shown) :]))

if summary.unpriced_models:
    st.warning(
        f"{c.plural(summary.unpriced_calls, 'call')} in this range "
        f"{'is' if summary.unpriced_calls == 1 else 'are'} unpriced: no known price "
        f"for {', '.join(c.plain(m) for m in summary.unpriced_models)}. The cost figures "
        "leave them out. Add the "
        "model to prices.yaml and run `llmops costs recompute`.",
        icon=":material/warning:",
    )
elif summary.unpriced_calls:
    st.caption(
        f"{c.plural(summary.unpriced_calls, 'cancelled call')} without usage: their cost is "
        "unknown and left out."
    )
if summary.approximate_calls:
    st.info(
        f"{c.plural(summary.approximate_calls, 'call')} priced approximately: the price map "
        f"lacks a rate they used ({', '.join(summary.approximate_models)}). Each call's "
        "usage details say which; add the rate to prices.yaml and run "
        "`llmops costs recompute`.",
        icon=":material/info:",
    )
if summary.estimated_calls:
    st.info(
        f"{c.plural(summary.estimated_calls, 'call')} with estimated token counts (the provider "
        "sent no usage).",
        icon=":material/info:",
    )

# -- daily spend --------------------------------------------------------------------------
st.subheader("Daily spend")
c.bound_choice("by", list(queries.GROUPINGS), "model")
by = st.radio(
    "Split by",
    list(queries.GROUPINGS),
    format_func=GROUP_LABELS.get,
    horizontal=True,
    key="by",
)
c.publish("by", by)

spend = c.daily_spend(view, by)
totals = c.daily_totals(view)
days = c.days(view)  # every day of the range, as the other charts write them
x = alt.X("date:O", title=None, scale=alt.Scale(domain=days), axis=alt.Axis(labelAngle=-45))
bars = pd.DataFrame(
    [
        {
            "date": r.date.isoformat(),
            "key": r.key,  # as stored: a click filters the Calls page on it
            "label": c.visible(r.key),  # as the legend and the tooltip show it
            "cost": r.cost_usd,
            "spend": c.spend_text(r.cost_usd, r.unpriced_calls),
            "calls": r.calls,
        }
        for r in spend
    ],
    columns=["date", "key", "label", "cost", "spend", "calls"],
)
layers: list[alt.Chart] = []
# ticks with enough decimals to tell apart (fractions of a cent on a quiet day)
money_axis = axis_format(max([t.cost_usd for t in totals] + [budget or 0.0], default=None))
over = pd.DataFrame(
    [
        {"date": t.date.isoformat(), "cost": t.cost_usd, "spend": c.usd(t.cost_usd)}
        for t in totals
        if t.over_budget
    ],
    columns=["date", "cost", "spend"],
)
if len(over):
    layers.append(
        alt.Chart(over)
        .mark_rect(color=c.ALERT_RED, opacity=0.12)
        .encode(x=x, tooltip=[alt.Tooltip("date:O", title="Over budget"), "spend:N"])
    )
drill = alt.selection_point(name="drill", fields=["date", "key"], on="click")
layers.append(
    alt.Chart(bars)
    .mark_bar(cursor="pointer")
    .add_params(drill)
    .encode(
        x=x,
        y=alt.Y("cost:Q", stack="zero", title="USD", axis=alt.Axis(format=money_axis)),
        color=c.series_colour(
            "label",
            GROUP_LABELS[by],
            list(bars["label"]),
            c.visible(c.known_keys(view, by)),
            bottom=False,
        ),
        tooltip=[
            alt.Tooltip("date:O", title="Day"),
            alt.Tooltip("label:N", title=GROUP_LABELS[by]),
            alt.Tooltip("spend:N", title="Spend"),
            alt.Tooltip("calls:Q", title="Calls"),
        ],
    )
)
if budget is not None:
    layers.append(
        alt.Chart(pd.DataFrame({"budget": [budget], "label": [f"budget {c.usd(budget)}/day"]}))
        .mark_rule(color=c.ALERT_RED, strokeDash=[6, 4])
        .encode(y="budget:Q", tooltip=[alt.Tooltip("label:N", title="Daily budget")])
    )
    layers.append(  # the line says what it is
        alt.Chart(pd.DataFrame({"budget": [budget], "label": [f"budget {c.usd(budget)}/day"]}))
        .mark_text(align="left", dx=4, dy=-7, color=c.ALERT_RED, fontWeight="bold")
        .encode(y="budget:Q", x=alt.value(0), text="label:N")
    )
if len(over):
    layers.append(
        alt.Chart(over)
        .mark_text(text="over", color=c.ALERT_RED, dy=-8, fontWeight="bold")
        .encode(x=x, y="cost:Q")
    )
# a click on a bar opens its calls: that day, that model (prompt, user, source)
clicked = c.altair_chart(
    alt.layer(*layers), width="stretch", on_select="rerun", selection_mode="drill", key="spend"
)
st.caption("Click a bar, or a row of the tables below, to see its calls.")
for point in c.selected(clicked, "drill"):
    if isinstance(point, dict) and point.get("date"):
        st.switch_page(
            "pages/calls.py",
            query_params=c.drill_down(view, str(point["date"]), by, point.get("key")),
        )
if view.settings.daily_budget_usd is None:
    st.caption("No daily budget set (LLMOPS_DAILY_BUDGET, or `budgets.daily_usd` in llmops.yaml).")
elif budget is None:
    st.caption(
        f"The daily budget of {c.usd(view.settings.daily_budget_usd)} is for all calls: "
        "clear the filters to see the days against it."
    )
elif len(over):
    st.warning(
        f"Over the daily budget of {c.usd(budget)} on "
        + ", ".join(f"{d} ({s})" for d, s in zip(over["date"], over["spend"], strict=True)),
        icon=":material/warning:",
    )
else:
    st.caption(f"Every day stayed within the daily budget of {c.usd(budget)}.")

with st.expander("Daily totals"):
    picked_day = st.dataframe(
        c.table(
            [
                {
                    "Day": t.date.isoformat(),
                    "Calls": c.num(t.calls),
                    "Spend": c.usd(t.cost_usd),
                    "Over budget": "yes" if t.over_budget else "",
                }
                for t in totals
            ]
        ),
        hide_index=True,
        placeholder=c.DASH,
        key="daily_totals",
        on_select="rerun",
        selection_mode="single-row",
    )
    for index in c.selected(picked_day, "rows")[:1]:
        day = totals[index].date.isoformat()
        st.switch_page("pages/calls.py", query_params=c.drill_down(view, day))
with st.expander(f"Spend per day and {GROUP_LABELS[by].lower()}"):
    picked_row = st.dataframe(
        c.table(
            [
                {
                    "Day": r.date.isoformat(),
                    GROUP_LABELS[by]: r.key,
                    "Calls": c.num(r.calls),
                    "Input tokens": c.num(r.prompt_tokens),
                    "Output tokens": c.num(r.completion_tokens),
                    "Spend": c.usd(r.cost_usd),
                    "Unpriced calls": c.num(r.unpriced_calls),
                }
                for r in spend
            ]
        ),
        hide_index=True,
        placeholder=c.DASH,
        key="daily_spend",
        on_select="rerun",
        selection_mode="single-row",
    )
    for index in c.selected(picked_row, "rows")[:1]:
        row = spend[index]
        st.switch_page(
            "pages/calls.py", query_params=c.drill_down(view, row.date.isoformat(), by, row.key)
        )
