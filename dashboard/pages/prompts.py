"""Prompts: every prompt version with its usage, cost, latency, feedback, eval and labels,
and a diff between two versions."""

from __future__ import annotations

import difflib
from datetime import datetime

import _common as c
import streamlit as st

from llmops.errors import LLMOpsError
from llmops.money import amount

WORKING = "(working tree)"

view = c.page_view("Prompts")
prompts_dir = str(view.settings.prompts_dir)
st.title("Prompts")

try:
    labels = c.labels(prompts_dir)
except LLMOpsError as exc:
    labels = {}
    st.warning(
        c.plain(f"Cannot read the prompt labels in {prompts_dir}: {exc}"), icon=":material/warning:"
    )

versions = c.prompt_versions(view)
st.subheader(f"Versions in use, {view.label}" + (" (filtered)" if view.filtered else ""))
if not versions:
    c.no_data("No prompt calls in this range yet.")
else:
    # the columns a reader compares come first and fit the page; numbers stay numbers
    st.dataframe(
        c.table(
            [
                {
                    "Prompt": v.prompt_name,
                    "Version": v.prompt_version,
                    "Labels": ", ".join(labels.get((v.prompt_name, v.prompt_version), [])),
                    "Calls": v.calls,
                    "Error rate": v.error_rate,
                    # shown to the digit, without float noise (0.00021, not 0.000210...01)
                    "Cost per call (USD)": amount(v.cost_per_call),
                    "Tokens per call": v.tokens_per_call,
                    "Avg latency": v.latency_avg_ms,
                    "Feedback": c.scores(v.feedback),
                    "Eval pass rate": v.eval_pass_rate,
                    "Eval suite": v.eval_suite or "",
                    "Last seen": c.when(v.last_seen),
                    "Commit": c.short(v.git_commit, 10),
                }
                for v in versions
            ]
        ),
        hide_index=True,
        placeholder=c.DASH,
        key="versions",
        column_config={
            "Calls": st.column_config.NumberColumn(format="localized"),
            "Error rate": st.column_config.NumberColumn(format="percent"),
            "Cost per call (USD)": st.column_config.NumberColumn(format="%.6g"),
            "Tokens per call": st.column_config.NumberColumn(format="%.0f"),
            "Avg latency": st.column_config.NumberColumn(format="%.0f ms"),
            "Feedback": st.column_config.TextColumn(
                help="Average per feedback name, each on its own scale (number of scores)"
            ),
            "Eval pass rate": st.column_config.NumberColumn(format="percent"),
        },
    )
    st.caption(
        "Cost per call averages the priced calls; the eval pass rate is the newest eval run "
        "of that version."
    )

# -- diff between two versions ------------------------------------------------------------
st.subheader("Compare two versions")
try:
    names = sorted(set(c.prompt_names(prompts_dir)) | {v.prompt_name for v in versions})
except LLMOpsError as exc:
    names = sorted({v.prompt_name for v in versions})
    st.warning(
        c.plain(f"Cannot list the prompts in {prompts_dir}: {exc}"), icon=":material/warning:"
    )
if not names:
    st.info(f"No prompt files in {prompts_dir}.", icon=":material/info:")
    st.stop()

# By default the prompt worth comparing: the one of the version filter, else one with two
# or more versions in use, and those versions preselected.
picked_versions = list(view.key.versions)
in_use: dict[str, list[str]] = {}
for v in sorted(versions, key=lambda v: v.last_seen, reverse=True):
    if v.prompt_version:
        in_use.setdefault(v.prompt_name, []).append(v.prompt_version)
if picked_versions:
    filtered = [n for n in names if any(p in in_use.get(n, []) for p in picked_versions)]
    default_name = filtered[0] if filtered else names[0]
else:
    default_name = next((n for n in names if len(in_use.get(n, [])) > 1), names[0])
if st.session_state.get("diff_prompt") not in names:
    st.session_state["diff_prompt"] = default_name
name = st.selectbox("Prompt", names, format_func=c.visible, key="diff_prompt")
try:
    history = c.history(prompts_dir, name)
except LLMOpsError as exc:
    history = []
    st.warning(c.plain(f"Cannot read the history of {name}: {exc}"), icon=":material/warning:")

# Every known version of the prompt, newest first: born at its first commit, or at its
# first call when it was never committed; the working-tree file last.
born: dict[str, datetime] = {}
described: dict[str, str] = {}
for version, commit, day, subject in history:  # newest commit first
    born[version] = day
    described.setdefault(version, f"{day.date().isoformat()} {commit[:7]} {subject}")
for v in versions:
    if v.prompt_name == name:
        first = c.utc(v.first_seen)
        born[v.prompt_version] = min(born.get(v.prompt_version, first), first)
        described.setdefault(v.prompt_version, f"first called {c.when(v.first_seen)}")
ordered = sorted(born, key=lambda version: born[version], reverse=True)
options = [*ordered, WORKING]


def describe(option: str) -> str:
    if option == WORKING:
        return WORKING
    tags = labels.get((name, option), [])
    return c.visible(" · ".join([option, *([", ".join(tags)] if tags else []), described[option]]))


if not ordered:
    st.info(f"No recorded or committed version of {name} to compare.", icon=":material/info:")
    st.stop()
# the two versions the filter picked (older first), else the two newest
chosen = [option for option in ordered if option in picked_versions]
if len(chosen) >= 2:
    older, newer = ordered.index(chosen[1]), ordered.index(chosen[0])
else:
    older, newer = (1, 0) if len(ordered) > 1 else (0, 1)
left, right = st.columns(2)
old = left.selectbox("From", options, index=older, format_func=describe, key="diff_a")
new = right.selectbox("To", options, index=newer, format_func=describe, key="diff_b")


# the two versions side by side, as they did in use: figures, feedback with intervals, evals
in_range = [option for option in (old, new) if option != WORKING]
sides = c.compare_versions(view, name, tuple(dict.fromkeys(in_range))) if in_range else []
if sides:
    st.markdown(f"##### In use, {view.label}")
    figures: dict[str, dict[str, str]] = {}
    for side in sides:
        v = side.stats
        column = {
            "Calls": c.num(v.calls),
            "Error rate": c.pct(v.error_rate),
            "Cost per call": c.usd(v.cost_per_call),
            "Tokens per call": c.num(v.tokens_per_call, 1),
            "Latency p50": c.ms(side.latency_p50_ms),
            "Latency p95": c.ms(side.latency_p95_ms),
            "Eval pass rate": c.pct(v.eval_pass_rate)
            + (f" ({v.eval_suite})" if v.eval_suite else ""),
        }
        for f in side.feedback:
            column[f"Feedback: {f.name}"] = (
                f"{c.score(f.average)} (95% {c.score(f.low)} to {c.score(f.high)}, n = {f.count})"
            )
        figures[describe(v.prompt_version or "")] = column
    st.dataframe(c.table(figures), placeholder=c.DASH, key="compared")
    st.caption(
        "Feedback intervals: Wilson's for thumbs (0/1), else the mean's normal approximation; "
        "intervals that do not overlap mean a real difference."
    )
else:
    st.caption(f"Neither version has calls in {view.label}: only their text is compared.")


def source(option: str) -> str:
    return c.prompt_source(prompts_dir, name if option == WORKING else f"{name}@{option}")


try:
    before, after = source(old), source(new)
except LLMOpsError as exc:
    st.warning(c.plain(f"Cannot load that version: {exc}"), icon=":material/warning:")
    st.stop()
diff = "\n".join(
    difflib.unified_diff(
        before.splitlines(),
        after.splitlines(),
        fromfile=f"{name}@{old}",
        tofile=f"{name}@{new}",
        lineterm="",
    )
)
if diff:
    st.code(diff, language="diff")
else:
    st.info("The two versions have the same text.", icon=":material/info:")
