"""Absurd links and password guessing: a warning or a delay, never a traceback."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import _common as c
from tests.dashboard.conftest import APP, PAGES, goto, metrics, open_app, texts
from tests.dashboard.seed import Seed


def warnings(at: AppTest) -> list[str]:
    return texts(at.warning)


def test_a_range_from_year_1_to_9999_is_clamped_on_every_page(seeded: Seed) -> None:
    at = open_app({"from": "0001-01-01", "to": "9999-12-31"})
    today = datetime.now(UTC).date()
    last = today + timedelta(days=366)
    first = last - timedelta(days=c.MAX_RANGE_DAYS - 1)
    assert at.selectbox(key="days").value == "custom"
    assert at.date_input(key="range").value == (first, last)
    assert any("clamped to" in w for w in warnings(at))
    assert metrics(at)["Calls"] == str(len(seeded.calls))  # every seeded call is in range
    assert (at.query_params["from"], at.query_params["to"]) == (str(first), str(last))
    for page in PAGES[1:]:
        goto(at, page)  # asserts no exception


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"from": "1969-12-31", "to": "1970-01-05"}, "clamped to 1970-01-01 to 1970-01-05"),
        ({"from": "2026-01-01", "to": "x" * 5000}, "must be YYYY-MM-DD"),
        ({"days": "\u00b2"}, "Ignored `days`"),  # a digit for str.isdigit, not for int()
        ({"days": "9" * 40}, "Ignored `days`"),
        ({"days": "0"}, "Ignored `days`"),
        ({"days": "3661"}, "from 1 to 3,660"),
        ({"model": [f"m{i}" for i in range(60)]}, "Ignored `model`"),
        ({"user": "u" * 1000}, "Ignored `user`"),
    ],
)
def test_malformed_links_warn_and_show_the_defaults(
    dashboard_env, query: dict[str, Any], expected: str
) -> None:
    at = open_app(query)
    assert any(expected in w for w in warnings(at)), warnings(at)
    assert texts(at.title) == ["Overview"]


LAST = -1  # the last page


@pytest.mark.parametrize(
    ("query", "page", "expected"),
    [
        ({"page": "99999999999999999999"}, LAST, "`page` in the link is out of range"),
        ({"page": "-3"}, 1, "Ignored `page`"),
        ({"page": "0"}, 1, "`page` in the link is out of range"),
        ({"page": "\u0663"}, 1, "Ignored `page`"),  # ARABIC-INDIC DIGIT THREE
        ({"size": "abc"}, 1, "Ignored `size`"),
        ({"size": "99999999999999999999999"}, 1, "Ignored `size`"),
        ({"call": "<script>alert(1)</script>"}, 1, "Ignored `call` in the link: not a call"),
        ({"call": "[sign in again](https://evil.example)"}, 1, "Ignored `call`"),
    ],
)
def test_absurd_calls_page_links(
    seeded: Seed, query: dict[str, str], page: int, expected: str
) -> None:
    at = open_app()
    at.query_params.update(query)
    goto(at, "calls")
    assert any(expected in w for w in warnings(at)), warnings(at)
    assert not any("<script>" in w or "evil" in w for w in warnings(at))  # never echoed
    last = -(-len(seeded.in_days(c.DEFAULT_DAYS)) // 50)
    assert at.number_input(key="page").value == (last if page == LAST else page)
    assert at.selectbox(key="size").value == 50


def test_an_absurd_grouping_in_the_link(seeded: Seed) -> None:
    at = open_app({"by": "9" * 300})
    assert "Ignored `by` in the link: not one of the choices." in warnings(at)
    assert at.radio(key="by").value == "model"


def test_a_linked_call_id_that_is_not_stored(seeded: Seed) -> None:
    at = open_app()
    at.query_params["call"] = "6f1c3a52-0c5e-4a7e-9d55-2f0e8a7b1c01"
    goto(at, "calls")
    assert warnings(at) == ["No call with id 6f1c3a52-0c5e-4a7e-9d55-2f0e8a7b1c01."]


# -- the password gate's back-off -------------------------------------------------------------


@pytest.fixture
def delays(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The sign-in's sleeps, recorded instead of slept, in the ``_common`` the app imports."""
    monkeypatch.syspath_prepend(str(APP.parent))
    import _common  # the module object the app scripts share

    recorded: list[float] = []
    monkeypatch.setattr(_common, "_sleep", recorded.append)
    _common.reset_sign_in_backoff()
    monkeypatch.setenv("LLMOPS_DASHBOARD_PASSWORD", "s3cret")
    assert sys.modules["_common"] is _common
    return recorded


def sign_in(at: AppTest, password: str) -> AppTest:
    at.text_input(key="password").input(password)
    at.button[0].click().run()
    assert not at.exception, at.exception
    return at


def test_wrong_passwords_wait_longer_each_time(dashboard_env, delays: list[float]) -> None:
    at = open_app()
    for _ in range(6):
        sign_in(at, "guess")
        assert texts(at.error) == ["Wrong password."]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]  # doubling, capped at 8 s
    assert any("waited 8 s" in caption for caption in texts(at.caption))
    sign_in(at, "s3cret")  # the right password still works at once
    assert delays[-1] == 8.0 and len(delays) == 6
    assert texts(at.title) == ["Overview"]


def test_the_back_off_is_shared_by_the_sessions_of_one_client(
    dashboard_env, delays: list[float]
) -> None:
    first = open_app()
    for _ in range(3):
        sign_in(first, "guess")
    second = open_app()  # a new session (a new tab, or a script starting over)
    sign_in(second, "again")
    assert delays == [0.5, 1.0, 2.0, 4.0]
    sign_in(second, "s3cret")
    assert texts(second.title) == ["Overview"]
    third = open_app()  # a right password resets the count for that client
    sign_in(third, "typo")
    assert delays[-1] == 0.5


def test_backoff_schedule() -> None:
    assert [c.backoff(n) for n in range(7)] == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert c.backoff(10**9) == c.BACKOFF_MAX


def test_any_number_of_days_the_cli_takes(dashboard_env) -> None:
    """`?days=365` (as `llmops spend --days 365`): the last 365 days, not dropped."""
    at = open_app({"days": "365"})
    today = datetime.now(UTC).date()
    assert not warnings(at)
    assert at.selectbox(key="days").value == "custom"
    assert (at.query_params["from"], at.query_params["to"]) == (
        str(today - timedelta(days=364)), str(today))  # fmt: skip
