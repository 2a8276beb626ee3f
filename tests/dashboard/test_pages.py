"""Every page on an empty and on a seeded database (SQLite and PostgreSQL): the figures shown
equal the figures computed here from what was seeded."""

from __future__ import annotations

import difflib
import math
import statistics
from collections import defaultdict
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import streamlit as st
from sqlalchemy.engine import make_url

from dashboard import _common as c
from llmops.money import axis_format
from llmops.store.engine import create_engine, upgrade
from llmops.store.queries.timing import RELATIVE_ERROR
from tests.dashboard.conftest import (
    PAGES,
    charts,
    deltas,
    exact,
    goto,
    marks,
    metrics,
    open_app,
    shown_rows,
    table,
    texts,
)
from tests.dashboard.seed import (
    DAILY_BUDGET,
    MONTHLY_BUDGET,
    Call,
    Seed,
    percentile,
    periods,
    sign_test,
    wilson,
)
from tests.fixtures.postgres import free_port


def test_every_page_works_on_an_empty_database(dashboard_env) -> None:
    at = open_app()
    assert "No calls in this range yet." in texts(at.info)
    assert metrics(at) == {
        "Spend today": "$0.00",
        "Spend yesterday": "$0.00",
        "Spend this week": "$0.00",
        "Spend this month": "$0.00",
        "Forecast this month": "$0.00"
        if datetime.now(UTC).day > 1
        else metrics(at).get("Forecast this month"),  # none in the month's first hour
        "Monthly budget used": "—",
    }
    assert any("open to anyone" in text for text in texts(at.sidebar.caption))
    expected = {
        "prompts": "No prompt calls in this range yet.",
        "evals": "No eval runs yet: `llmops eval run` records them.",
        "calls": "No calls in this range yet.",
        "feedback": "No feedback on prompt calls in this range yet.",
        "overview": "No calls in this range yet.",
    }
    for page in PAGES[1:] + PAGES[:1]:
        goto(at, page)
        assert expected[page] in texts(at.info), page
        assert not at.error and not at.warning, page


# -- overview ---------------------------------------------------------------------------


def test_overview_shows_the_seeded_figures(seeded: Seed) -> None:
    at = open_app()  # the default range: the last 30 days
    now = datetime.now(UTC)
    calls = seeded.in_days(30)
    shown = metrics(at)

    # spend today / this week / this month, against the period before
    for name, (spend, before) in periods(seeded, now).items():
        assert shown[f"Spend {name}"] == c.usd(spend), name
        change = (spend - before) / before if before else None
        assert deltas(at)[f"Spend {name}"] == (c.change(change) or ""), name
    month = periods(seeded, now)["this month"][0]
    assert shown["Monthly budget used"] == c.pct(month / MONTHLY_BUDGET)
    start = datetime.combine(now.date().replace(day=1), time.min, UTC)
    length = ((start + timedelta(days=32)).replace(day=1) - start).total_seconds()
    elapsed = (now - start).total_seconds()
    if elapsed > 3600:  # the month's rate so far, over the whole month
        assert shown["Forecast this month"] == c.usd(month * length / elapsed)

    # the range
    assert shown["Calls"] == str(len(calls)) == "29"
    assert shown["Error rate"] == c.pct(1 / len(calls)) == "3.4%"
    assert shown["Cost"] == c.usd(sum(call.cost or 0 for call in calls))
    tokens = sum(call.prompt_tokens or 0 for call in calls)
    assert exact(at)["Input tokens"] == c.num(tokens)
    assert shown["Input tokens"] == c.short_num(tokens)
    tokens = sum(call.completion_tokens or 0 for call in calls)
    assert exact(at)["Output tokens"] == c.num(tokens)
    assert shown["Output tokens"] == c.short_num(tokens)
    names = {f.name for call in calls for f in call.feedback}
    assert names and shown["Feedback scores"] == str(sum(len(call.feedback) for call in calls))
    for name in names:  # each name on its own scale
        scores = [f.score for call in calls for f in call.feedback if f.name == name]
        assert shown[f"Feedback: {name}"] == c.score(statistics.mean(scores))
    latencies = seeded.latencies(calls)
    ttfts = [call.ttft_ms for call in calls if call.ttft_ms is not None]
    assert len(latencies) == 29 and len(ttfts) == 2
    for q in (50, 95, 99):  # whole days from the histograms: within 1% (and rounding)
        assert_ms_within(shown[f"Latency p{q}"], percentile(latencies, q / 100))
        assert_ms_within(shown[f"TTFT p{q}"], percentile(ttfts, q / 100))
    unpriced = sum(call.unpriced for call in calls)
    assert any(
        text.startswith(f"{c.plural(unpriced, 'call')} in this range") for text in texts(at.warning)
    )

    # daily totals: every day of the range, flagged over the daily budget
    by_day: dict[str, list[Call]] = defaultdict(list)
    for call in calls:
        by_day[call.day.isoformat()].append(call)
    days = [(seeded.today - timedelta(days=n)).isoformat() for n in range(29, -1, -1)]
    expected = [
        {
            "Day": day,
            "Calls": c.num(len(by_day[day])),
            "Spend": c.usd(sum(call.cost or 0 for call in by_day[day])),
            "Over budget": "yes"
            if sum(call.cost or 0 for call in by_day[day]) > DAILY_BUDGET
            else "",
        }
        for day in days
    ]
    assert table(at, "Over budget") == expected
    over = [row["Day"] for row in expected if row["Over budget"]]
    assert over == [(seeded.today - timedelta(days=3)).isoformat()]  # the $1.40 day
    assert any(
        text.startswith(f"Over the daily budget of $1.00 on {over[0]}")
        for text in texts(at.warning)
    )
    (chart,) = charts(at)
    assert marks(chart) == {"rect", "bar", "rule", "text"}  # over-budget band, spend, budget
    (bars,) = [layer for layer in chart["layer"] if layer["mark"]["type"] == "bar"]
    largest = max(sum(call.cost or 0 for call in by_day[day]) for day in days)
    assert bars["encoding"]["y"]["axis"]["format"] == axis_format(max(largest, DAILY_BUDGET))
    labels = [layer["encoding"].get("text") for layer in chart["layer"]]
    assert any(label and label.get("field") == "label" for label in labels)  # budget, named


def test_the_dashboard_reads_a_replica_when_one_is_named(
    seeded: Seed, monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path
) -> None:
    """LLMOPS_DASHBOARD_DATABASE_URL (a read replica) wins over LLMOPS_DATABASE_URL (the
    primary the apps write): here the primary is an empty database."""
    empty = f"sqlite:///{tmp_path / 'primary.db'}"
    upgrade(create_engine(empty))
    monkeypatch.setenv("LLMOPS_DATABASE_URL", empty)
    monkeypatch.setenv("LLMOPS_DASHBOARD_DATABASE_URL", database_url)
    assert metrics(open_app())["Calls"] == str(len(seeded.in_days(30))) == "29"
    monkeypatch.delenv("LLMOPS_DASHBOARD_DATABASE_URL")
    assert metrics(open_app()).get("Calls", "0") == "0"  # the empty primary, as before


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_every_page_reads_a_streaming_replica(
    seeded: Seed,
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
    postgres_server: Any,
    postgres_standby: Any,
) -> None:
    """A real hot standby (PostgreSQL streaming replication: read-only, every write refused)
    as LLMOPS_DASHBOARD_DATABASE_URL, the primary out of reach: every page shows what it
    shows from the primary, and nothing on the way tries to write."""

    def pages() -> dict[str, Any]:
        st.cache_data.clear()
        st.cache_resource.clear()
        at, shown = open_app(), {}
        for page in PAGES:
            if page != "overview":
                goto(at, page)
            figures = {k: v for k, v in metrics(at).items() if k != "Forecast this month"}
            frames = [frame.value.to_csv() for frame in at.dataframe]  # NaN as NaN
            shown[page] = (figures, frames, texts(at.markdown), [e.value for e in at.warning])
        return shown

    primary = pages()
    postgres_server.wait_replayed(postgres_standby)
    replica = postgres_standby.url_for(make_url(database_url).database)
    with psycopg.connect(replica.replace("+psycopg", ""), autocommit=True) as connection:
        assert connection.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
    monkeypatch.setenv("LLMOPS_DASHBOARD_DATABASE_URL", replica)
    monkeypatch.setenv(
        "LLMOPS_DATABASE_URL", f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/llmops"
    )
    assert pages() == primary
    assert primary["overview"][0]["Calls"] == "29" and primary["calls"][1]


def test_a_missing_value_reads_as_a_dash_in_every_table(seeded: Seed) -> None:
    """Streamlit writes a missing value as "None" unless told otherwise (a version without
    an eval run, an unpriced call's cost)."""
    at, tables = open_app(), 0
    for page in PAGES:
        if page != "overview":
            goto(at, page)
        for frame in at.dataframe:
            assert frame.proto.placeholder == c.DASH, (page, frame.value.columns)
            tables += 1
    assert tables >= 6


def test_overview_split_by_user_and_filtered_by_model(seeded: Seed) -> None:
    at = open_app({"by": "user", "model": "gpt-4o"})
    calls = [call for call in seeded.in_days(30) if call.model == "gpt-4o"]
    assert metrics(at)["Calls"] == str(len(calls)) == "4"
    assert metrics(at)["Cost"] == c.usd(sum(call.cost for call in calls))
    spend: dict[tuple[str, str], float] = defaultdict(float)
    for call in calls:
        spend[call.day.isoformat(), call.user or "(none)"] += call.cost or 0
    rows = table(at, "User")
    assert {(r["Day"], r["User"]): r["Spend"] for r in rows} == {
        key: c.usd(value) for key, value in spend.items()
    }


# -- prompts ----------------------------------------------------------------------------


def test_prompts_page_lists_versions_with_labels_evals_and_a_diff(seeded: Seed) -> None:
    at = goto(open_app(), "prompts")
    calls = seeded.in_days(30)
    v = seeded.versions
    expected_labels = {
        v["answer-v1"]: "production",
        v["answer-v2"]: "staging",
        v["greet-prod"]: "production",
        v["greet-working"]: "",
    }
    expected_evals = {v["greet-prod"]: "90.0%", v["greet-working"]: "40.0%"}
    rows = {row["Version"]: row for row in table(at, "Eval pass rate")}
    assert set(rows) == set(expected_labels)
    for version, row in rows.items():
        mine = [call for call in calls if call.prompt_version == version]
        priced = [call.cost for call in mine if call.cost is not None]
        scores = [f.score for call in mine for f in call.feedback]
        tokens = [(call.prompt_tokens or 0) + (call.completion_tokens or 0) for call in mine]
        assert row["Prompt"] == mine[0].prompt_name
        assert row["Calls"] == len(mine)  # numbers stay numbers: they sort as numbers
        assert row["Error rate"] == pytest.approx(
            sum(call.status == "error" for call in mine) / len(mine)
        )
        assert row["Cost per call (USD)"] == pytest.approx(statistics.mean(priced))
        assert row["Tokens per call"] == pytest.approx(statistics.mean(tokens))
        assert row["Avg latency"] == pytest.approx(statistics.mean(seeded.latencies(mine)))
        by_name: dict[str, list[float]] = defaultdict(list)
        for call in mine:
            for f in call.feedback:
                by_name[f.name].append(f.score)
        expected_feedback = " · ".join(
            f"{name} {c.score(statistics.mean(s))} ({len(s)})"
            for name, s in sorted(by_name.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        )
        assert row["Feedback"] == (expected_feedback or "—")
        assert sum(len(s) for s in by_name.values()) == len(scores)
        assert row["Labels"] == expected_labels[version]
        rate = row["Eval pass rate"]
        assert (c.pct(rate) if rate == rate else "—") == expected_evals.get(version, "—")
    assert rows[v["answer-v1"]]["Cost per call (USD)"] == 0.42  # (0.21+0.70+0.35)/3

    # the two newest versions are compared: greet's production one against the working tree
    assert at.selectbox(key="diff_prompt").value == "greet"
    assert at.selectbox(key="diff_a").value == v["greet-prod"]
    assert at.selectbox(key="diff_b").value == v["greet-working"]
    assert '-    content: "Hello, {{ name }}!"' in at.code[0].value.splitlines()

    # the diff of support/answer: v1 (production) -> v2 (staging), the two newest commits
    at.selectbox(key="diff_prompt").set_value("support/answer").run()
    assert not at.exception
    assert at.selectbox(key="diff_a").value == v["answer-v1"]
    assert at.selectbox(key="diff_b").value == v["answer-v2"]
    assert "production" in at.selectbox(key="diff_a").format_func(v["answer-v1"])
    (code,) = at.code
    assert code.language == "diff"
    expected_diff = difflib.unified_diff(
        seeded.sources["answer-v1"].splitlines(),
        seeded.sources["answer-v2"].splitlines(),
        f"support/answer@{v['answer-v1']}",
        f"support/answer@{v['answer-v2']}",
        lineterm="",
    )
    assert code.value == "\n".join(expected_diff)
    assert '+    content: "Hi there, {{ name }}!"' in code.value.splitlines()
    # ... and side by side as they did in use: calls, feedback with its interval
    compared = next(f.value for f in at.dataframe if "Calls" in f.value.index)
    for column, key in zip(compared.columns, ("answer-v1", "answer-v2"), strict=True):
        assert column.startswith(v[key])
        mine = [call for call in calls if call.prompt_version == v[key]]
        assert compared.loc["Calls", column] == str(len(mine))
        thumbs = [f.score for call in mine for f in call.feedback if f.name == "thumbs"]
        if thumbs:
            shown = compared.loc["Feedback: thumbs", column]
            assert shown.startswith(c.score(statistics.mean(thumbs)) + " (95% ")
            assert shown.endswith(f"n = {len(thumbs)})")

    # the version filter names each version's prompt, and picks what to compare
    version_filter = at.sidebar.multiselect(key="version")
    assert version_filter.format_func(v["answer-v2"]) == f"support/answer@{v['answer-v2']}"
    fresh = goto(open_app({"version": [v["answer-v2"], v["answer-v1"]]}), "prompts")
    assert not fresh.exception
    assert fresh.selectbox(key="diff_prompt").value == "support/answer"
    assert fresh.selectbox(key="diff_a").value == v["answer-v1"]
    assert fresh.selectbox(key="diff_b").value == v["answer-v2"]


# -- evals ------------------------------------------------------------------------------


def test_evals_page_compares_candidate_and_baseline(seeded: Seed) -> None:
    at = goto(open_app(), "evals")
    assert at.selectbox(key="batch").value == seeded.eval_batch
    shown = metrics(at)
    assert shown["Candidate pass rate"] == "40.0%"  # c6-c9 pass
    assert shown["Baseline pass rate"] == "90.0%"  # c0-c8 pass
    captions = texts(at.caption)
    for passed in (4, 9):
        low, high = wilson(passed, 10)
        assert f"95% interval {c.pct(low)} to {c.pct(high)} (n = 10)" in captions
    p_value = sign_test(6, 1)  # c0-c5 pass -> fail, c9 fail -> pass
    assert shown["One-sided p (worse)"] == f"{p_value:.4g}" == "0.0625"
    assert texts(at.info) == ["Verdict: no significant difference: 6 cases worse, 1 better"]
    flipped = [t for t in texts(at.markdown) if t.startswith("**c")]
    assert flipped == [f"**c{i}**: worse" for i in range(6)] + ["**c9**: better"]
    # which assertion failed, next to each flipped output: c0-c5 (worse) fail "hello" on the
    # candidate's side, c9 (better) fails "howdy" on the baseline's
    failed = [t for t in texts(at.markdown) if t.startswith(":red[failed]")]
    assert len(failed) == 7  # the check's reason escaped: it may quote the model's answer
    assert all(t.startswith(":red[failed] icontains\\: ") for t in failed), failed
    assert sum("hello" in t for t in failed) == 6 and sum("howdy" in t for t in failed) == 1
    # the sidebar's range and filters do not apply here: folded away
    assert [e.label for e in at.sidebar.expander] == [
        "Date range and filters (not used on this page)"
    ]
    outputs = [(a.value, b.value) for a, b in zip(at.code[::2], at.code[1::2], strict=True)]
    assert outputs == [
        (f"Echo: Howdy, N{i}!", f"Echo: Hello, N{i}!") for i in (0, 1, 2, 3, 4, 5, 9)
    ]
    runs = table(at, "Pass rate")
    assert sorted((r["Role"], r["Pass rate"], r["Results"]) for r in runs) == [
        ("baseline", "90.0%", "10"),
        ("candidate", "40.0%", "10"),
    ]
    (history, *_) = charts(at)
    assert marks(history) == {"line"}


# -- calls ------------------------------------------------------------------------------


def test_calls_page_pages_through_calls_and_shows_one(seeded: Seed) -> None:
    at = goto(open_app(), "calls")
    # newest first; calls of the same time (the eval calls) by id
    calls = sorted(seeded.in_days(30), key=lambda call: call.id or "")
    calls.sort(key=lambda call: call.created_at, reverse=True)
    assert shown_rows(1, 29, 29) in texts(at.markdown)
    rows = table(at, "Call id")
    assert [r["Call id"] for r in rows] == [call.id for call in calls]
    by_id = {r["Call id"]: r for r in rows}
    for call in calls:  # numbers stay numbers, so that columns sort as numbers
        row = by_id[call.id]
        if call.unpriced:
            assert math.isnan(row["Cost (USD)"]) and row["Priced"] == "unpriced"
        else:
            assert row["Cost (USD)"] == pytest.approx(call.cost or 0, rel=1e-9)
        assert row["Latency"] == pytest.approx(seeded.latency_ms[call.id])
        assert row["Input tokens"] == (call.prompt_tokens or 0) or math.isnan(row["Input tokens"])
        assert row["Key"] == (call.key or "")
    assert any(row["Key"] == "web" for row in rows)

    # sorted over every matching call, not within the page: the dearest first
    at.selectbox(key="sort").set_value("cost").run()
    assert at.query_params["sort"] == ["cost"] or at.query_params["sort"] == "cost"
    dearest = [r["Call id"] for r in table(at, "Call id")]
    priced = sorted((call for call in calls if not call.unpriced and call.cost is not None),
                    key=lambda call: -(call.cost or 0))  # fmt: skip
    assert dearest[: len(priced)][:3] == [call.id for call in priced][:3]
    at.selectbox(key="sort").set_value("newest").run()

    # a click on a row (the table's selection) opens that call below
    assert at.selectbox(key="call").value is None
    clicked = table(at, "Call id")[2]["Call id"]
    at.session_state["calls"] = {"selection": {"rows": [2], "columns": [], "cells": []}}
    at.run()
    assert not at.exception and at.selectbox(key="call").value == clicked
    assert clicked[:8] in at.selectbox(key="call").format_func(clicked)

    at.selectbox(key="size").set_value(25).run()
    assert shown_rows(1, 25, 29) in texts(at.markdown)
    at.number_input(key="page").set_value(2).run()
    assert shown_rows(26, 29, 29) in texts(at.markdown)
    assert [r["Call id"] for r in table(at, "Call id")] == [call.id for call in calls[25:]]

    # one call: the $0.35 gpt-4o call of today, with its feedback
    first = next(call for call in seeded.calls if call.model == "gpt-4o")
    at.query_params["call"] = first.id  # a link to a call that is not on this page
    at.run()
    assert not at.exception
    shown = metrics(at)
    assert shown["Cost"] == c.usd(first.cost) == "$0.35"
    assert at.selectbox(key="call").value == first.id
    assert shown["Cost status"] == "priced"
    assert shown["Latency"] == c.ms(seeded.latency_ms[first.id])
    assert shown["TTFT"] == "—"
    assert (shown["Input tokens"], shown["Output tokens"]) == ("100,000", "10,000")
    assert [m.name for m in at.chat_message] == ["user"]
    assert "Hi there, Ada!" in texts(at.text)  # the rendered v2 prompt
    assert "Echo: Hi there, Ada!" in texts(at.text)  # the response
    assert "##### Variables" in texts(at.markdown)  # the prompt's, as stored
    assert any(j.value == '{"name": "Ada"}' for j in at.json)
    (feedback,) = [r for r in table(at, "Comment")]
    assert (feedback["Score"], feedback["Comment"]) == ("1.00", "Great answer")

    # the unpriced call, recorded with content="none"
    private = next(call for call in seeded.calls if call.unpriced and call.status == "ok")
    at.query_params["call"] = private.id
    at.run()
    assert metrics(at)["Cost"] == "unpriced" and metrics(at)["Cost status"] == "unpriced"
    assert 'Not stored (content mode "none", or dropped by `llmops db prune`).' in texts(at.caption)


# -- feedback ---------------------------------------------------------------------------


def test_feedback_page_shows_distribution_trend_and_comments(seeded: Seed) -> None:
    at = goto(open_app(), "feedback")
    calls = seeded.in_days(30)
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for call in calls:
        for f in call.feedback:
            counts[f"{call.prompt_name}@{call.prompt_version}", f"{f.score:g}"] += 1
    rows = table(at, "Count")
    assert {(r["Prompt version"], r["Score"]): r["Count"] for r in rows} == counts
    assert set(counts.values()) == {3, 4}  # v1 got three 0s, v2 four 1s

    comments = sorted(
        ((f.created_at, f.comment) for call in calls for f in call.feedback if f.comment),
        reverse=True,
    )
    assert [r["Comment"] for r in table(at, "Comment")] == [text for _, text in comments]
    assert len(comments) == 4
    assert [marks(spec) for spec in charts(at)] == [{"bar"}, {"line"}]
    trend = charts(at)[1]["encoding"]
    assert trend["y"]["title"] == "Average thumbs"  # one chart per name, on its own scale
    assert trend["x"]["field"] == "day" and trend["x"]["type"] == "ordinal"  # as the Overview
    assert trend["color"]["legend"]["labelLimit"] == 0  # full version names in the legend
    assert c.ALERT_RED not in trend["color"]["scale"]["range"]

    # the trend follows the sidebar filters
    at.multiselect(key="version").set_value([seeded.versions["answer-v1"]]).run()
    assert not at.exception
    rows = table(at, "Count")
    assert [(r["Score"], r["Count"]) for r in rows] == [("0", 3)]


def test_overview_lists_the_budgets_of_the_config_file(seeded: Seed, tmp_path, monkeypatch) -> None:
    from llmops.store.queries import window_span

    config = tmp_path / "team.yaml"
    config.write_text(
        "budgets:\n  limits:\n"
        "    - {name: month-all, window: month, limit_usd: 1000}\n"
        "    - {name: tiny-week, window: week, limit_usd: 0.000001, action: block}\n"
    )
    monkeypatch.setenv("LLMOPS_CONFIG", str(config))
    at = open_app()
    now = datetime.now(UTC)
    rows = {row["Budget"]: row for row in table(at, "Budget")}
    assert set(rows) == {"month-all", "tiny-week"}
    for name, window, limit in (("month-all", "month", 1000), ("tiny-week", "week", 0.000001)):
        start, end = window_span(window, now)
        spent = sum(call.cost or 0 for call in seeded.calls if start <= call.created_at < end)
        assert rows[name]["Spent"] == c.usd(spent), name
        assert rows[name]["Used"] == c.pct(spent / limit), name
        assert rows[name]["Window"] == f"{window} from {start:%Y-%m-%d}"
        assert rows[name]["Scope"] == "all calls"
    assert (rows["month-all"]["Action"], rows["tiny-week"]["Action"]) == ("alert", "block")
    assert rows["month-all"]["State"] == "ok"
    assert rows["tiny-week"]["State"] == "over"  # the seed has priced calls today
    assert any(t.startswith("Over budget: tiny-week") for t in texts(at.error))


def test_a_click_on_a_bar_or_a_row_opens_its_calls(seeded: Seed) -> None:
    at = open_app()
    day = next(call for call in seeded.calls if call.model == "gpt-4o").day.isoformat()
    expected = {
        call.id
        for call in seeded.in_days(30)
        if call.model == "gpt-4o" and call.day.isoformat() == day
    }
    # the chart's selection, as a click on the bar (day, gpt-4o) makes it
    at.session_state["spend"] = {"selection": {"drill": [{"date": day, "key": "gpt-4o"}]}}
    at.run()
    assert not at.exception and texts(at.title) == ["Calls"]
    assert {r["Call id"] for r in table(at, "Call id")} == expected
    assert at.sidebar.multiselect(key="model").value == ["gpt-4o"]

    # a row of "Spend per day and model": the same calls
    at = open_app()
    spend_rows = table(at, "Input tokens")
    index = next(i for i, r in enumerate(spend_rows) if r["Day"] == day and r["Model"] == "gpt-4o")
    at.session_state["daily_spend"] = {"selection": {"rows": [index], "columns": [], "cells": []}}
    at.run()
    assert not at.exception and texts(at.title) == ["Calls"]
    assert {r["Call id"] for r in table(at, "Call id")} == expected


def assert_ms_within(shown: str, exact: float) -> None:
    """``shown`` (``c.ms``) is a figure within the histograms' 1% of ``exact``, rounded."""
    low, high = exact * (1 - RELATIVE_ERROR), exact * (1 + RELATIVE_ERROR)
    step = 0.05 if abs(exact) < 10 else 0.5  # half the last shown digit
    value = float(shown.removesuffix(" ms").replace(",", ""))
    assert low - step <= value <= high + step, (shown, exact)
