"""The URL query string mirrors the sidebar both ways; the password gate shows nothing else."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import _common as c
from tests.dashboard.conftest import APP, goto, metrics, open_app, shown_rows, table, texts
from tests.dashboard.seed import Seed


def test_a_link_reproduces_the_view_and_widgets_update_the_link(seeded: Seed) -> None:
    at = open_app({"days": "7", "model": ["gpt-4o", "gpt-4o-mini"], "status": "ok", "by": "tag"})
    # the URL -> the widgets -> the figures
    assert at.selectbox(key="days").value == 7
    assert at.multiselect(key="model").value == ["gpt-4o", "gpt-4o-mini"]
    assert at.multiselect(key="status").value == ["ok"]
    assert at.radio(key="by").value == "tag"
    calls = [
        call
        for call in seeded.in_days(7)
        if call.model in ("gpt-4o", "gpt-4o-mini") and call.status == "ok"
    ]
    assert metrics(at)["Calls"] == str(len(calls)) == "26"  # 20 eval calls and 6 app calls
    spend: dict[tuple[str, str], float] = defaultdict(float)
    for call in calls:
        for tag in call.tags or ["(none)"]:
            spend[call.day.isoformat(), tag] += call.cost or 0
    assert {(r["Day"], r["Tag"]): r["Spend"] for r in table(at, "Tag")} == {
        key: c.usd(value) for key, value in spend.items()
    }

    # the widgets -> the URL
    at.selectbox(key="days").set_value(90).run()
    assert at.query_params["days"] == "90"
    at.multiselect(key="model").set_value(["gpt-4o"]).run()
    assert at.query_params["model"] == "gpt-4o"
    at.multiselect(key="status").set_value([]).run()
    assert "status" not in at.query_params
    at.radio(key="by").set_value("source").run()
    assert not at.exception
    assert at.query_params == {"days": "90", "model": "gpt-4o", "by": "source"}
    assert metrics(at)["Calls"] == "4"  # every gpt-4o call

    # a custom range
    at.selectbox(key="days").set_value("custom").run()
    assert "days" not in at.query_params and {"from", "to"} <= set(at.query_params)
    first, last = seeded.today - timedelta(days=5), seeded.today - timedelta(days=1)
    at.date_input(key="range").set_value((first, last)).run()
    assert not at.exception
    assert (at.query_params["from"], at.query_params["to"]) == (str(first), str(last))
    window = [c for c in seeded.calls if first <= c.day <= last and c.model == "gpt-4o"]
    assert metrics(at)["Calls"] == str(len(window)) == "2"  # the days 1 and 3 ago

    # the filters follow to another page, whose own parameters join the URL
    at.query_params.update({"size": "25", "page": "1"})
    goto(at, "calls")
    assert at.multiselect(key="model").value == ["gpt-4o"]
    assert at.date_input(key="range").value == (first, last)
    assert shown_rows(1, 2, 2) in texts(at.markdown)
    assert at.query_params == {
        "from": str(first),
        "to": str(last),
        "model": "gpt-4o",
        "size": "25",
        "page": "1",
    }  # "by" belongs to the overview


def test_a_link_with_a_custom_range_and_a_page(seeded: Seed) -> None:
    first, last = seeded.today - timedelta(days=3), seeded.today
    at = open_app({"from": str(first), "to": str(last)})
    assert at.selectbox(key="days").value == "custom"
    assert at.date_input(key="range").value == (first, last)
    calls = [call for call in seeded.calls if first <= call.day <= last]
    assert metrics(at)["Calls"] == str(len(calls))
    at.query_params.update({"size": "25", "page": "2"})
    goto(at, "calls")
    assert at.selectbox(key="size").value == 25
    assert at.number_input(key="page").value == 2
    assert shown_rows(26, len(calls), len(calls)) in texts(at.markdown)


def test_bad_values_in_the_url_are_ignored(dashboard_env) -> None:
    at = open_app(
        {"days": "bogus", "from": "2026-02-30", "to": "never", "by": "weather", "model": "x"}
    )
    assert at.selectbox(key="days").value == 30  # the default
    assert at.multiselect(key="model").value == ["x"]  # kept: a link may name any model
    assert texts(at.warning) == [  # each ignored part of the link is named, not echoed
        "Ignored the link's date range: `from` and `to` must be YYYY-MM-DD.",
        "Ignored `days` in the link: expected a whole number of days from 1 to 3,660.",
    ]  # (and `by` is not read: without calls the overview stops before its chart)
    at.query_params.update({"size": "7", "page": "-1", "call": "not-a-call", "batch": "nope"})
    goto(at, "calls")
    assert at.selectbox(key="size").value == 50 and at.number_input(key="page").value == 1
    assert texts(at.warning) == [
        "Ignored `size` in the link: not one of the choices.",
        "Ignored `page` in the link: not a whole number.",
        "Ignored `call` in the link: not a call id.",
    ]
    goto(at, "evals")
    assert "No eval runs yet: `llmops eval run` records them." in texts(at.info)


def locked(at) -> bool:
    """Only the password form: a title, one password field, one button; no sidebar."""
    return (
        texts(at.title) == ["llmops"]
        and len(at.text_input) == 1
        and len(at.button) == 1
        and not at.sidebar.children
        and not (at.metric or at.dataframe or at.selectbox or at.multiselect or at.info)
    )


def test_the_password_gate(dashboard_env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMOPS_DASHBOARD_PASSWORD", "s3cret")
    at = open_app({"days": "7"})
    assert locked(at)
    goto(at, "calls")  # every page is locked, not only the default one
    assert locked(at)

    at.text_input(key="password").input("S3CRET")
    at.button[0].click().run()
    assert not at.exception
    assert texts(at.error) == ["Wrong password."]
    assert texts(at.title) == ["llmops"] and not at.metric and not at.sidebar.children

    at.text_input(key="password").input("s3cret")
    at.button[0].click().run()
    assert not at.exception
    assert texts(at.title) == ["Calls"]  # the page that was asked for
    assert "No calls in this range yet." in texts(at.info)
    assert at.selectbox(key="days").value == 7  # the link's range
    assert at.button(key="sign_out")  # and no "open to anyone" notice
    assert not any("open to anyone" in text for text in texts(at.sidebar.caption))
    goto(at, "overview")  # signed in for the session
    assert texts(at.title) == ["Overview"] and metrics(at)["Spend today"] == "$0.00"

    at.button(key="sign_out").click().run()
    assert not at.exception
    assert locked(at)


@pytest.mark.parametrize("page", ["overview", "prompts", "evals", "calls", "feedback"])
def test_a_page_run_on_its_own_is_locked_too(
    dashboard_env, monkeypatch: pytest.MonkeyPatch, page: str
) -> None:
    """Streamlit runs a page file without app.py for the first request of a fresh server
    process that asks for that page's URL (a pages/ folder sits next to app.py)."""
    monkeypatch.setenv("LLMOPS_DASHBOARD_PASSWORD", "s3cret")
    monkeypatch.syspath_prepend(str(APP.parent))  # where that page finds _common
    at = AppTest.from_file(str(APP.parent / "pages" / f"{page}.py"), default_timeout=30).run()
    assert not at.exception
    assert locked(at)
    at.text_input(key="password").input("s3cret")
    at.button[0].click().run()
    assert not at.exception
    assert texts(at.title) == [page.capitalize()]
