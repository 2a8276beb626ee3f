"""Calls: a paged table of the calls in the range, and everything stored about one call."""

from __future__ import annotations

import math
from typing import Any

import _common as c
import streamlit as st

SIZES = [25, 50, 100, 200]
ORDERS = {  # queries.CALL_ORDERS: the sort is over every matching call, not one page
    "newest": "Newest first",
    "oldest": "Oldest first",
    "cost": "Dearest first",
    "latency": "Slowest first",
    "tokens": "Most tokens first",
}

view = c.page_view("Calls")
st.title("Calls")


# -- the table ----------------------------------------------------------------------------
top = st.columns([1, 1, 1, 2])
c.bound_choice("size", SIZES, 50, int)
size = top[0].selectbox("Rows per page", SIZES, key="size")
c.publish("size", str(size))
c.bound_choice("sort", list(ORDERS), "newest")
order = top[1].selectbox("Sort", list(ORDERS), format_func=ORDERS.get, key="sort")
c.publish("sort", None if order == "newest" else order)

wanted = c.url_int("page", 1, c.MAX_PAGE)
if wanted is not None:
    st.session_state["page"] = wanted
page = st.session_state.get("page")
page = page if isinstance(page, int) and page >= 1 else 1
rows, total = c.calls_page(view, size, (page - 1) * size, order)
pages = max(1, math.ceil(total / size))  # pagination, not a figure about calls
if page > pages:
    page = pages
    rows, total = c.calls_page(view, size, (page - 1) * size, order)
st.session_state["page"] = page
top[2].number_input("Page", min_value=1, max_value=pages, step=1, key="page")
c.publish("page", str(page))

if total == 0:
    c.no_data()
else:
    first = (page - 1) * size + 1
    top[3].markdown(f"\n\nRows {first:,}\u2013{first + len(rows) - 1:,} of {total:,}")
    # numbers stay numbers (a column sorts as numbers); a click on a row opens the call
    picked = st.dataframe(
        c.table(
            [
                {
                    "Time": c.when(r["created_at"]),
                    "Model": r["model"],
                    "Prompt": f"{r['prompt_name']}@{r['prompt_version']}"
                    if r["prompt_name"]
                    else c.DASH,
                    "User": r["user_id"] or "",
                    "Key": r["api_key"] or "",  # the virtual key of `llmops serve`
                    "Status": r["status"],
                    "Input tokens": r["prompt_tokens"],
                    "Output tokens": r["completion_tokens"],
                    "Cost (USD)": r["cost_usd"] if r["cost_status"] != "unpriced" else None,
                    "Priced": "unpriced" if r["cost_status"] == "unpriced" else r["cost_status"],
                    "Latency": r["latency_ms"],
                    "Source": r["source"],
                    "Call id": r["id"],
                }
                for r in rows
            ]
        ),
        hide_index=True,
        placeholder=c.DASH,
        key="calls",
        on_select="rerun",
        selection_mode="single-row",
        column_config={
            "Input tokens": st.column_config.NumberColumn(format="localized"),
            "Output tokens": st.column_config.NumberColumn(format="localized"),
            "Cost (USD)": st.column_config.NumberColumn(
                # 15 significant digits: every digit stored, none of a float's noise
                # (7059.111105, not 7059.111104999999)
                format="%.15g",
                help="Every digit stored; \u2014 when unpriced (see Priced).",
            ),
            "Latency": st.column_config.NumberColumn(format="%.0f ms"),
        },
    )
    chosen_rows = c.selected(picked, "rows")
    if chosen_rows and chosen_rows[0] < len(rows):
        clicked = rows[chosen_rows[0]]["id"]
        if st.session_state.get("_clicked") != clicked:  # a new click: open that call
            st.session_state["_clicked"] = clicked
            st.session_state["call"] = clicked

# -- one call -----------------------------------------------------------------------------
st.subheader("Call detail")
summaries = {
    r["id"]: c.visible(f"{c.when(r['created_at'])} · {r['model']} · {r['status']} · {r['id'][:8]}")
    for r in rows
}
linked = c.url_value("call")
if linked is not None:
    if c.is_call_id(linked):
        st.session_state["call"] = linked
    else:
        c.link_warning("Ignored `call` in the link: not a call id.")
chosen = st.session_state.setdefault("call", None)
ids = list(summaries)
if chosen and chosen not in summaries:
    ids.insert(0, chosen)  # a linked call that is not on this page
if not ids:
    st.stop()
call_id = st.selectbox(
    "Call",
    ids,
    format_func=lambda i: summaries.get(i, i),
    placeholder="Choose a call of this page",
    key="call",
)
c.publish("call", call_id)
if call_id is None:
    st.stop()

detail = c.call_detail(view, call_id)
if detail is None:
    st.warning(f"No call with id {c.plain(call_id)}.", icon=":material/warning:")
    st.stop()

prompt = f"{detail['prompt_name']}@{detail['prompt_version']}" if detail["prompt_name"] else "raw"
st.markdown(
    f"**{detail['status']}** · {c.plain(detail['model'])}"
    f" ({c.plain(detail['provider'] or 'unknown provider')}) · prompt {c.plain(prompt)}"
    + (f" · commit `{detail['git_commit'][:10]}`" if detail["git_commit"] else "")
    + f" · {c.when(detail['created_at'])} UTC · source {detail['source']}"
)
if detail["status"] != "ok":
    st.error(
        f"Call {detail['status']}: {c.plain(detail['error_type'] or 'no error type recorded')}"
    )
    if detail["error_message"]:
        st.code(detail["error_message"], language=None, wrap_lines=True)

row = st.columns([1.6, 1, 1, 1, 1, 1])  # the cost keeps all its digits
row[0].metric(
    "Cost",
    c.cost(detail["cost_usd"], detail["cost_status"]),
    help=f"cost status: {detail['cost_status']}; prices: {detail['price_source'] or c.DASH}",
)
row[1].metric("Cost status", detail["cost_status"])
c.ms_tile(row[2], "Latency", detail["latency_ms"])
c.ms_tile(row[3], "TTFT", detail["ttft_ms"])
c.num_tile(row[4], "Input tokens", detail["prompt_tokens"])
c.num_tile(row[5], "Output tokens", detail["completion_tokens"])
usage = {
    "prompt_tokens": detail["prompt_tokens"],
    "completion_tokens": detail["completion_tokens"],
    "cached_tokens": detail["cached_tokens"],
    "cache_write_tokens": detail["cache_write_tokens"],
    "reasoning_tokens": detail["reasoning_tokens"],
    "tokens_estimated": detail["tokens_estimated"],
}
who = {
    "user": detail["user_id"],
    "key": detail["api_key"],
    "session": detail["session_id"],
    "tags": detail["tags"],
    "metadata": detail["metadata"],
}

request: dict[str, Any] = detail["request"] or {}
messages = request.get("messages")
left, right = st.columns([3, 2])
with left:
    st.markdown("##### Messages")
    if messages is None:
        st.caption('Not stored (content mode "none", or dropped by `llmops db prune`).')
    for message in messages or []:
        role = str(message.get("role", "?")) if isinstance(message, dict) else "?"
        content = message.get("content") if isinstance(message, dict) else message
        with st.chat_message(role):
            st.caption(role)
            st.text(content if isinstance(content, str) else str(content))
    st.markdown("##### Response")
    if detail["response_text"] is None:
        st.caption("No response stored.")
    else:
        st.text(detail["response_text"])
    if request.get("tool_calls"):
        st.markdown("##### Tool calls")
        st.json(request["tool_calls"], expanded=True)
with right:
    if request.get("variables"):
        st.markdown("##### Variables")
        st.json(request["variables"], expanded=True)
    st.markdown("##### Parameters")
    st.json(request.get("params") or {}, expanded=True)
    st.markdown("##### Usage")
    st.json(usage, expanded=True)
    st.markdown("##### User, tags and metadata")
    st.json(c.visible(who), expanded=True)

st.markdown("##### Feedback")
if not detail["feedback"]:
    st.caption("No feedback for this call.")
else:
    st.dataframe(
        c.table(
            [
                {
                    "Time": c.when(f["created_at"]),
                    "Name": f["name"],
                    "Score": c.num(f["score"], 2),
                    "Comment": f["comment"] or "",
                    "User": f["user_id"] or "",
                }
                for f in detail["feedback"]
            ]
        ),
        hide_index=True,
        placeholder=c.DASH,
        key="call_feedback",
    )
