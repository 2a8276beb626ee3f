"""Dashboard tests run the real Streamlit app with ``AppTest`` on SQLite and PostgreSQL.

How pages are reached: ``AppTest.from_file(dashboard/app.py)`` runs the entry script (the
password gate, the sidebar, ``st.navigation``) and renders the default page, Overview. Then
``at.switch_page("pages/<page>.py")`` renders another page. Note that AppTest resets
Streamlit's "uses a pages/ directory" flag before every run, so for a switched-to page it
runs the page file itself (Streamlit's multipage v1 emulation) rather than app.py; that is
also what a real server does for the first request of a fresh process that goes straight to
a page's URL. Every page therefore starts with ``_common.page_view()``, which applies the
password gate and builds the sidebar when app.py did not, so both paths are tested.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.dashboard.seed import DAILY_BUDGET, MONTHLY_BUDGET, Seed, seed

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
PAGES = ("overview", "prompts", "evals", "calls", "feedback")


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    """Streamlit's caches are process-wide: no test sees another test's engine or results.
    Neither does it see another test's wrong passwords (the sign-in back-off is process-wide
    too, in the ``_common`` module the app scripts import)."""
    st.cache_data.clear()
    st.cache_resource.clear()
    _reset_backoff()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()
    _reset_backoff()


def _reset_backoff() -> None:
    for name in ("_common", "dashboard._common"):
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "reset_sign_in_backoff"):
            module.reset_sign_in_backoff()


@pytest.fixture
def dashboard_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str
) -> dict[str, str]:
    """The dashboard's settings: the test database, no password, no budgets, no config."""
    for key in (
        "LLMOPS_DASHBOARD_PASSWORD",
        "LLMOPS_DAILY_BUDGET",
        "LLMOPS_MONTHLY_BUDGET",
        "LLMOPS_CONFIG",
    ):
        monkeypatch.delenv(key, raising=False)
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)  # no llmops.yaml or prices.yaml from the checkout
    env = {
        "LLMOPS_DATABASE_URL": database_url,
        "LLMOPS_HOME": str(tmp_path / "dashboard-home"),
        "LLMOPS_PROMPTS_DIR": str(tmp_path / "no-prompts"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def seeded(
    dashboard_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
    repo: Any,
    server: Any,
    make_gateway: Any,
) -> Seed:
    """The seeded database, with the prompt repository and both budgets configured."""
    data = seed(database_url, repo, server, make_gateway)
    monkeypatch.setenv("LLMOPS_PROMPTS_DIR", str(repo.prompts))
    monkeypatch.setenv("LLMOPS_DAILY_BUDGET", str(DAILY_BUDGET))
    monkeypatch.setenv("LLMOPS_MONTHLY_BUDGET", str(MONTHLY_BUDGET))
    return data


def open_app(query: dict[str, Any] | None = None) -> AppTest:
    """Run the dashboard once (Overview), optionally from a URL query string."""
    at = AppTest.from_file(str(APP), default_timeout=30)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, at.exception
    return at


def goto(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


def metrics(at: AppTest) -> dict[str, str]:
    """Displayed metric values by label."""
    return {m.label: m.value for m in at.metric}


def exact(at: AppTest) -> dict[str, str]:
    """Metric values by label as their help gives them when the tile shows them short
    (``Exactly 1,851,000.``: the tile reads ``1.85M``), else as displayed."""
    found = {}
    for m in at.metric:
        match = re.match(r"Exactly (.+?)\.(?: |$)", m.help or "")
        found[m.label] = match.group(1) if match else m.value
    return found


def deltas(at: AppTest) -> dict[str, str]:
    return {m.label: m.delta for m in at.metric}


def texts(elements: Any) -> list[str]:
    return [e.value for e in elements]


def shown_rows(first: int, last: int, total: int) -> str:
    """The calls page's "Rows x\u2013y of N"."""
    return f"Rows {first}\u2013{last} of {total}"


def table(at: AppTest, column: str) -> list[dict[str, Any]]:
    """The rows of the (first) dataframe that has that column."""
    for frame in at.dataframe:
        value = frame.value
        if column in value.columns:
            return value.to_dict("records")
    raise AssertionError(f"no dataframe with a {column!r} column")


def charts(at: AppTest) -> list[dict[str, Any]]:
    """The Vega-Lite specs of the charts on the page."""
    return [json.loads(chart.proto.spec) for chart in at.get("vega_lite_chart")]


def marks(spec: dict[str, Any]) -> set[str]:
    """The mark types of a (layered) Vega-Lite spec."""
    found = set()
    for layer in [spec, *spec.get("layer", [])]:
        mark = layer.get("mark")
        if mark:
            found.add(mark if isinstance(mark, str) else mark["type"])
    return found
