"""Feedback: score distribution and trend per prompt version, and the latest comments."""

from __future__ import annotations

import _common as c
import altair as alt
import streamlit as st

view = c.page_view("Feedback")
st.title("Feedback")
st.caption(f"Feedback on the calls of {view.label}" + (" (filtered)." if view.filtered else "."))

distribution = c.feedback_distribution(view)
if not distribution:
    c.no_data("No feedback on prompt calls in this range yet.")
    st.stop()


def version(prompt_name: str, prompt_version: str) -> str:
    return f"{prompt_name}@{prompt_version}"


# -- distribution -------------------------------------------------------------------------
st.subheader("Scores per prompt version")
counts = c.table(
    [
        {
            "version": version(s.prompt_name, s.prompt_version),
            "feedback": s.name,
            "score": f"{s.score:g}",
            "count": s.count,
        }
        for s in distribution
    ]
)
for name in dict.fromkeys(counts["feedback"]):
    part = counts[counts["feedback"] == name]
    st.markdown(f"##### {c.plain(name)}")
    c.altair_chart(
        alt.Chart(part)
        .mark_bar()
        .encode(
            x=alt.X("score:O", title="Score"),
            xOffset="version:N",
            y=alt.Y("count:Q", title="Scores given", axis=alt.Axis(tickMinStep=1, format="d")),
            color=c.series_colour("version", "Prompt version", list(counts["version"])),
            tooltip=["version:N", "score:O", "count:Q"],
        ),
        width="stretch",
    )
with st.expander("Score counts"):
    st.dataframe(
        counts.rename(
            columns={
                "version": "Prompt version",
                "feedback": "Feedback",
                "score": "Score",
                "count": "Count",
            }
        ),
        hide_index=True,
        placeholder=c.DASH,
        key="score_counts",
    )

# -- trend --------------------------------------------------------------------------------
st.subheader("Average score per day")
st.caption("One chart per feedback name, each on its own scale (thumbs 0-1, stars 1-5, ...).")
trend = c.table(
    [
        {
            "day": d.date.isoformat(),
            "version": version(d.prompt_name, d.prompt_version),
            "feedback": d.name,
            "average": d.average,
            "shown": c.score(d.average),
            "count": d.count,
        }
        for d in c.feedback_trend(view)
    ],
    columns=["day", "version", "feedback", "average", "shown", "count"],
)
days = c.days(view)
for name in dict.fromkeys(trend["feedback"]):
    part = trend[trend["feedback"] == name]
    st.markdown(f"##### {c.plain(name)}")
    # one line, and short enough for the axis (a line break stopped Vega drawing the chart)
    title = " ".join(str(name).split())
    title = title if len(title) <= 40 else title[:39] + "…"
    c.altair_chart(
        alt.Chart(part)
        .mark_line(point=True)
        .encode(
            # every day of the range, written as the Overview writes them
            x=alt.X(
                "day:O", title=None, scale=alt.Scale(domain=days), axis=alt.Axis(labelAngle=-45)
            ),
            y=alt.Y("average:Q", title=f"Average {title}", scale=alt.Scale(zero=False)),
            color=c.series_colour("version", "Prompt version", list(part["version"])),
            tooltip=[
                alt.Tooltip("version:N", title="Prompt version"),
                alt.Tooltip("day:O", title="Day"),
                alt.Tooltip("shown:N", title=f"Average {title}"),
                alt.Tooltip("count:Q", title="Scores"),
            ],
        ),
        width="stretch",
    )

# -- comments -----------------------------------------------------------------------------
st.subheader("Latest comments")
comments = c.feedback_comments(view)
if not comments:
    st.caption("No comments in this range.")
else:
    st.dataframe(
        c.table(
            [
                {
                    "Time": c.when(f["created_at"]),
                    "Prompt version": version(f["prompt_name"], f["prompt_version"]),
                    "Feedback": f["name"],
                    "Score": c.score(f["score"]),
                    "Comment": f["comment"],
                    "User": f["user_id"] or "",
                    "Call id": f["call_id"],
                }
                for f in comments
            ]
        ),
        hide_index=True,
        placeholder=c.DASH,
        key="comments",
    )
