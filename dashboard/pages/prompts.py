"""Prompts: every prompt version with its usage, cost, latency, feedback, eval and labels,
and a diff between two versions."""

from __future__ import annotations

import difflib
from datetime import datetime

import _common as c
import pandas as pd
import streamlit as st

from llmops.errors import LLMOpsError

WORKING = "(working tree)"

view = c.page_view("Prompts")
prompts_dir = str(view.settings.prompts_dir)
st.title("Prompts")

try:
    labels = c.labels(prompts_dir)
except LLMOpsError as exc:
    labels = {}
    st.warning(f"Cannot read the prompt labels in {prompts_dir}: {exc}", icon=":material/warning:")

versions = c.prompt_versions(view)
st.subheader(f"Versions in use, {view.label}" + (" (filtered)" if view.filtered else ""))
if not versions:
    c.no_data("No prompt calls in this range yet.")
else:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "Prompt": v.prompt_name,
                    "Version": v.prompt_version,
                    "Labels": ", ".join(labels.get((v.prompt_name, v.prompt_version), [])),
                    "Commit": c.short(v.git_commit, 10),
                    "Calls": c.num(v.calls),
                    "Errors": f"{c.num(v.errors)} ({c.pct(v.error_rate)})",
                    "Cost per call": c.usd(v.cost_per_call),
                    "Tokens per call": c.num(v.tokens_per_call, 1),
                    "Avg latency": c.ms(v.latency_avg_ms),
                    "Feedback": c.scores(v.feedback),
                    "Feedback scores": c.num(v.feedback_count),
                    "Eval pass rate": c.pct(v.eval_pass_rate),
                    "Eval suite": v.eval_suite or "",
                    "First seen": c.when(v.first_seen),
                    "Last seen": c.when(v.last_seen),
                }
                for v in versions
            ]
        ),
        hide_index=True,
        key="versions",
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
    st.warning(f"Cannot list the prompts in {prompts_dir}: {exc}", icon=":material/warning:")
if not names:
    st.info(f"No prompt files in {prompts_dir}.", icon=":material/info:")
    st.stop()

name = st.selectbox("Prompt", names, key="diff_prompt")
try:
    history = c.history(prompts_dir, name)
except LLMOpsError as exc:
    history = []
    st.warning(f"Cannot read the history of {name}: {exc}", icon=":material/warning:")

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
    return " · ".join([option, *([", ".join(tags)] if tags else []), described[option]])


if not ordered:
    st.info(f"No recorded or committed version of {name} to compare.", icon=":material/info:")
    st.stop()
older, newer = (1, 0) if len(ordered) > 1 else (0, 1)  # the two newest versions
left, right = st.columns(2)
old = left.selectbox("From", options, index=older, format_func=describe, key="diff_a")
new = right.selectbox("To", options, index=newer, format_func=describe, key="diff_b")


def source(option: str) -> str:
    return c.prompt_source(prompts_dir, name if option == WORKING else f"{name}@{option}")


try:
    before, after = source(old), source(new)
except LLMOpsError as exc:
    st.warning(f"Cannot load that version: {exc}", icon=":material/warning:")
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
