"""The dashboard in a real browser: `llmops dashboard` in its own process, Chromium headless.

Calls with scripted token counts go through the real Gateway (to the local fake model
server) into a SQLite file, at chosen times: today, yesterday, ten days ago and forty days
ago. The dashboard then runs exactly as a user starts it (``python -m llmops dashboard``),
and Chromium (Debian's, through Playwright) opens the overview page. The spend metrics
must show the costs worked out here by hand from gpt-4o-mini's list price ($0.15 per
million input tokens, $0.60 per million output tokens), and the call count the calls of
the last 30 days.

A second test opens the richer database of the AppTest tests (tests/dashboard/seed.py)
and reads the charts as a person does: tick labels told apart and not all zero, legends
whole and inside the chart; then clicks a bar of the daily spend with the mouse and lands on
that day's and that model's calls. Screenshots of every page are kept in ``screenshots/`` at
the top of the repository (or ``$LLMOPS_SCREENSHOTS``), for people and CI artifacts to look
at. The dashboard draws its charts as SVG, which is what makes their text readable here.

Needs Debian's ``chromium`` (``apt-get install chromium``; CI: .ci/install-system-packages)
and the ``playwright`` Python package (the dev extras), but no ``playwright install``:
Playwright drives /usr/bin/chromium. Without them the test is skipped, or fails when the
``CI`` environment variable is set.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import parse_qs, urlsplit

import pytest

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
PRICE_IN, PRICE_OUT = 0.15 / 1e6, 0.60 / 1e6  # gpt-4o-mini, USD per token
START_TIMEOUT = 90  # seconds for the dashboard to answer its health check
PAGE_TIMEOUT_MS = 90_000
READY = "[data-testid='stApp'][data-test-script-state='notRunning']"
PORT_ATTEMPTS = 3
VIEWPORT = {"width": 1440, "height": 1100}
ROW_HEIGHT = 35  # pixels of a row (and of the header) of Streamlit's data grid


def unavailable(reason: str) -> NoReturn:
    """Skip with ``reason``; under CI (``CI`` set) a missing browser fails instead."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}\n(CI is set: the browser test must run there)", pytrace=False)
    pytest.skip(reason)


def chromium_path() -> str:
    found = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None
    )
    if found is None:
        unavailable(
            "Debian's chromium is not installed: `apt-get install chromium` "
            "(CI runs .ci/install-system-packages)"
        )
    return found


def playwright_api() -> Any:
    """Playwright's ``sync_playwright`` (skip, or fail under CI, without the package)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable(
            "the playwright Python package is not installed: `pip install -e '.[dev]'` "
            "(or `pip install playwright`; no `playwright install` needed, it drives chromium)"
        )
    return sync_playwright


def screenshots() -> Path:
    """Where screenshots go: ``$LLMOPS_SCREENSHOTS``, or ``screenshots/`` at the top of the
    repository (CI keeps that folder as an artifact)."""
    shots = Path(os.environ.get("LLMOPS_SCREENSHOTS") or Path(__file__).parents[2] / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    return shots


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- the data ---------------------------------------------------------------------------


def seed(url: str, home: Path, server: Any, calls: list[tuple[datetime, int, int]]) -> None:
    """One gpt-4o-mini call per (time, prompt tokens, completion tokens), via the Gateway."""
    from llmops import Gateway
    from llmops.testing import Reply

    times = iter([when for when, _, _ in calls])
    gateway = Gateway(
        database_url=url, home=home, prompts=home / "no-prompts", clock=lambda: next(times)
    )
    try:
        for _, prompt_tokens, completion_tokens in calls:
            server.enqueue(
                Reply(text="ok", prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
            )
            result = gateway.complete(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "How do I reset my router?"}],
                api_base=server.base_url,
                api_key="sk-test",
                num_retries=0,
                max_retries=0,
            )
            expected = prompt_tokens * PRICE_IN + completion_tokens * PRICE_OUT
            assert result.cost_usd == pytest.approx(expected, rel=1e-9)
        assert gateway.flush(timeout=30)
    finally:
        gateway.close()


def usd(value: float) -> str:
    """How the dashboard shows an amount of at least ten cents (or zero)."""
    assert value == 0 or value >= 0.1, "keep the scripted amounts readable"
    return f"${value:,.2f}"


# -- the dashboard process -------------------------------------------------------------


@contextlib.contextmanager
def dashboard(
    url: str, cwd: Path, log: Path, settings: dict[str, str] | None = None
) -> Iterator[str]:
    """``python -m llmops dashboard`` on a free port; yields its address once healthy.

    Another process (a parallel test run, any client's ephemeral port) may take the free
    port before Streamlit binds it; Streamlit then exits, and the dashboard starts again on
    another free port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMOPS_")}
    env["HOME"] = str(cwd)  # no ~/.streamlit of the developer
    env.update(settings or {})
    for attempt in range(1, PORT_ATTEMPTS + 1):
        port = free_port()
        with open(log, "wb") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "llmops", "dashboard", "--port", str(port),
                 "--database-url", url],
                cwd=cwd,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            if wait_healthy(port, process, log, retry=attempt < PORT_ATTEMPTS):
                break
        except BaseException:
            stop(process)
            raise
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


@contextlib.contextmanager
def in_chromium(
    url: str, cwd: Path, log: Path, settings: dict[str, str] | None = None
) -> Iterator[tuple[str, Any]]:
    """The dashboard on ``url`` (see ``dashboard``) and a page of headless Chromium, of the
    size of ``VIEWPORT``: yields the dashboard's address and the page."""
    executable, sync_playwright = chromium_path(), playwright_api()
    with dashboard(url, cwd, log, settings) as address, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield address, browser.new_page(viewport=VIEWPORT)
        finally:
            browser.close()


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=15)


def health(port: int) -> str | None:
    """What ``/_stcore/health`` answers, or None while nothing listens."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/_stcore/health")
        return connection.getresponse().read().decode().strip()
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


def wait_healthy(
    port: int, process: subprocess.Popen[bytes], log: Path, *, retry: bool = False
) -> bool:
    """True once the dashboard answers; False if it exited because its port was taken
    (and ``retry``: the caller tries another port). Fails the test otherwise."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = log.read_text()
            if retry and f"Port {port} is not available" in output:
                return False
            pytest.fail(f"the dashboard exited with {process.returncode}:\n{output}")
        if health(port) == "ok":
            return True
        time.sleep(0.2)
    pytest.fail(f"the dashboard did not become healthy in {START_TIMEOUT} s:\n{log.read_text()}")


# -- the test ---------------------------------------------------------------------------


def test_overview_shows_the_spend_in_a_real_browser(tmp_path: Path, server: Any) -> None:

    now = datetime.now(UTC)
    midnight = datetime.combine(now.date(), datetime.min.time(), UTC)
    calls = [  # (when, prompt tokens, completion tokens)
        (midnight + (now - midnight) / 2, 1_000_000, 500_000),  # today: $0.45
        (midnight - timedelta(hours=12), 2_000_000, 1_000_000),  # yesterday: $0.90
        (midnight - timedelta(days=10), 400_000, 200_000),  # 10 days ago: $0.18
        (midnight - timedelta(days=40), 10_000_000, 0),  # 40 days ago: $1.50
    ]
    url = f"sqlite:///{tmp_path / 'llmops.db'}"
    seed(url, tmp_path / "home", server, calls)

    # The expected figures, by hand: calendar periods in UTC, weeks from Monday.
    week = midnight - timedelta(days=midnight.weekday())
    month = midnight.replace(day=1)
    window = midnight - timedelta(days=29)  # the default range: the last 30 days

    previous_month = (month - timedelta(days=1)).replace(day=1)

    def spend(since: datetime, until: datetime = now) -> float:
        return sum(p * PRICE_IN + c * PRICE_OUT for when, p, c in calls if since <= when <= until)

    def change(current: float, before: float) -> str | None:
        """The metric's delta: the change against the period before; none after no spend."""
        return f"{(current - before) / before:+.1%}" if before else None

    day, tick = timedelta(days=1), timedelta(microseconds=1)
    yesterday = midnight - day
    expected = {
        "Spend today": usd(spend(midnight)),
        "Spend yesterday": usd(spend(yesterday, midnight - tick)),
        "Spend this week": usd(spend(week)),
        "Spend this month": usd(spend(month)),
        "Calls": str(sum(1 for when, _, _ in calls if when >= window)),
        "Cost": usd(spend(window)),
    }
    same_days = previous_month + (now - month)  # like with like: up to the same point
    before = {
        "Spend today": spend(yesterday, now - day),
        "Spend yesterday": spend(yesterday - day, yesterday - tick),
        "Spend this week": spend(week - 7 * day, now - 7 * day),
        "Spend this month": spend(previous_month, min(same_days, month - tick)),
    }
    current = {
        "Spend today": spend(midnight),
        "Spend yesterday": spend(yesterday, midnight - tick),
        "Spend this week": spend(week),
        "Spend this month": spend(month),
    }
    deltas = {label: change(current[label], before[label]) for label in current}
    assert expected["Spend today"] == "$0.45" and expected["Spend yesterday"] == "$0.90"
    # today's call is at half of today, yesterday's at noon: until this time yesterday
    assert deltas["Spend today"] == ("-50.0%" if now - day >= yesterday + day / 2 else None)
    assert expected["Calls"] == "3"
    assert expected["Cost"] == "$1.53"

    screenshot_path = screenshots() / "overview-periods.png"
    with in_chromium(url, tmp_path, tmp_path / "dashboard.log") as (address, page):
        fetched: list[str] = []  # every URL the page asks for: all must be the server's
        page.on("request", lambda request: fetched.append(request.url))
        page.goto(address, timeout=PAGE_TIMEOUT_MS)
        page.wait_for_selector("[data-testid='stMetric']", timeout=PAGE_TIMEOUT_MS)
        page.wait_for_selector(READY, timeout=PAGE_TIMEOUT_MS)
        page.wait_for_function(
            "() => !document.querySelector(\"[data-testid='stSkeleton']\")",
            timeout=PAGE_TIMEOUT_MS,
        )
        page.wait_for_selector(
            "[data-testid='stVegaLiteChart'] canvas, [data-testid='stVegaLiteChart'] svg",
            timeout=PAGE_TIMEOUT_MS,
        )
        metrics, shown_deltas = {}, {}
        for metric in page.locator("[data-testid='stMetric']").all():
            label = metric.locator("[data-testid='stMetricLabel']").inner_text().strip()
            metrics[label] = metric.locator("[data-testid='stMetricValue']").inner_text()
            delta = metric.locator("[data-testid='stMetricDelta']")
            shown_deltas[label] = delta.inner_text() if delta.count() else None
        text = page.locator("body").inner_text()
        exceptions = page.locator("[data-testid='stException']").count()
        screenshot(page, screenshot_path)
        # every other page, as a person opens it: no error (and nothing from outside)
        for name in ("prompts", "evals", "calls", "feedback"):
            open_page(page, f"{address}/{name}")

    assert exceptions == 0, text
    # offline: no font, icon or script from the internet (the favicon once came from
    # fonts.gstatic.com)
    outside = [u for u in fetched if not u.startswith((address, "data:", "blob:"))]
    assert fetched and not outside, outside
    assert any("icon" in u or u.endswith(".png") for u in fetched), fetched
    assert "Overview" in text
    for label, value in expected.items():
        assert metrics.get(label, "").strip() == value, (label, metrics)
        assert label in text and value in text
    for label, delta in deltas.items():
        shown = shown_deltas.get(label)
        if delta is None:
            assert shown is None, (label, shown_deltas)
        else:
            assert shown is not None and delta in shown, (label, delta, shown_deltas)
    data = screenshot_path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 20_000, f"{screenshot_path} is only {len(data)} bytes"


# -- what a person reads on the charts, and where a click leads ---------------------------

# Each chart of the page as the browser draws it (the dashboard draws charts as SVG): its
# box, its axes (Vega's aria label says which, "X-axis ..." or "Y-axis ...") with their tick
# labels as shown, and its legends' labels with where each is drawn.
READ_CHARTS = """
() => [...document.querySelectorAll("[data-testid='stVegaLiteChart']")].map(chart => {
  const box = r => { const b = r.getBoundingClientRect();
    return {left: b.left, right: b.right, top: b.top, bottom: b.bottom}; };
  return {
    box: box(chart),
    svg: chart.querySelector("svg.marks") !== null,
    axes: [...chart.querySelectorAll("g.role-axis")].map(axis => ({
      aria: axis.getAttribute("aria-label") || "",
      ticks: [...axis.querySelectorAll("g.role-axis-label text")]
        .filter(t => getComputedStyle(t).opacity !== "0" && t.getAttribute("opacity") !== "0")
        .map(t => t.textContent),
    })),
    legends: [...chart.querySelectorAll("g.role-legend")].map(legend => ({
      title: [...legend.querySelectorAll("g.role-legend-title text")].map(t => t.textContent),
      labels: [...legend.querySelectorAll("g.role-legend-label text")]
        .map(t => ({text: t.textContent, ...box(t)})),
    })),
  };
})
"""


def test_a_leads_figures_fit_their_tiles(tmp_path: Path, server: Any) -> None:
    """An app that costs tens of thousands of dollars a day, at hundreds of billions of
    tokens a month: every metric tile shows its whole value, none cut with an ellipsis (a
    tile of six a row cut "$21,004.78" to "$21,00…")."""
    now = datetime.now(UTC)
    midnight = datetime.combine(now.date(), datetime.min.time(), UTC)
    calls = [  # $420 each (2e9 input tokens: $300, 2e8 output: $120), 50 a day: $21,000
        (midnight - timedelta(days=days, hours=6, minutes=minute), 2_000_000_000, 200_000_000)
        for days in (0, 1, 2)
        for minute in range(50)
    ]
    url = f"sqlite:///{tmp_path / 'llmops.db'}"
    seed(url, tmp_path / "home", server, calls)
    with in_chromium(url, tmp_path, tmp_path / "dashboard.log") as (address, page):
        open_page(page, address)
        tiles = page.evaluate(
            """() => [...document.querySelectorAll("[data-testid='stMetric']")].map(m => {
                 const value = m.querySelector("[data-testid='stMetricValue']");
                 const cut = [value, ...value.querySelectorAll("*")]
                   .some(e => e.scrollWidth > e.clientWidth + 1);
                 return [m.querySelector("[data-testid='stMetricLabel']").innerText.trim(),
                         value.innerText.trim(), cut];
               })"""
        )
        screenshot(page, screenshots() / "overview-large-figures.png")
    shown = {label: value for label, value, _ in tiles}
    assert [t for t in tiles if t[2]] == [], tiles
    assert shown["Spend yesterday"] == "$21,000" and shown["Cost"] == "$63,000", shown
    assert shown["Input tokens"] == "300.0B" and shown["Output tokens"] == "30.0B", shown
    assert shown["Calls"] == "150"


def test_a_database_that_stops_under_the_dashboard_is_one_line(
    tmp_path: Path, server: Any, postgres_url: str, postgres_server: Any
) -> None:
    """PostgreSQL stops while the dashboard runs (its engine made, its pages seen): every
    page then says so in one line, and shows its figures again once the database is back;
    never Streamlit's red traceback."""
    now = datetime.now(UTC)
    seed(postgres_url, tmp_path / "home", server, [(now - timedelta(hours=1), 1_000, 100)])
    shown: dict[str, tuple[int, str]] = {}
    with in_chromium(postgres_url, tmp_path, tmp_path / "dashboard.log") as (address, page):
        open_page(page, address)
        postgres_server.stop()
        try:
            for name in ("", "prompts", "evals", "calls", "feedback"):
                page.goto(f"{address}/{name}", timeout=PAGE_TIMEOUT_MS)
                page.wait_for_selector(READY, timeout=PAGE_TIMEOUT_MS)
                errors = page.locator("[data-testid='stAlertContentError']").all_inner_texts()
                shown[name] = (
                    page.locator("[data-testid='stException']").count(),
                    " ".join(errors),
                )
            screenshot(page, screenshots() / "database-down.png")
        finally:
            postgres_server.start()
        open_page(page, address)  # back: the figures again
        calls = page.locator("[data-testid='stMetric']").filter(has_text="Calls")
        assert calls.first.locator("[data-testid='stMetricValue']").inner_text() == "1"
    assert shown[""] == (0, "")  # seen before the stop: its figures, from the cache (30 s)
    for name, (exceptions, error) in list(shown.items())[1:]:
        assert exceptions == 0 and "The database is not answering" in error, (name, error)
        assert "connection failed" in error and "Traceback" not in error, (name, error)


def open_page(page: Any, url: str) -> None:
    """Go to ``url`` and wait until the app has run and drawn its charts."""
    page.goto(url, timeout=PAGE_TIMEOUT_MS)
    wait_ready(page)


def wait_ready(page: Any) -> None:
    page.wait_for_selector(READY, timeout=PAGE_TIMEOUT_MS)
    page.wait_for_function(
        "() => !document.querySelector(\"[data-testid='stSkeleton']\")", timeout=PAGE_TIMEOUT_MS
    )
    page.wait_for_function(  # every chart drawn (Vega renders after the script has run)
        """() => [...document.querySelectorAll("[data-testid='stVegaLiteChart']")]
                 .every(c => c.querySelector("svg.marks g"))""",
        timeout=PAGE_TIMEOUT_MS,
    )
    assert page.locator("[data-testid='stException']").count() == 0, page.inner_text("body")


def screenshot(page: Any, path: Path) -> None:
    """The whole page, charts below the fold included: Streamlit scrolls inside its own
    container, so the window is made as tall as the content for the picture."""
    height = page.evaluate(
        """() => Math.max(...[...document.querySelectorAll(
                 "[data-testid='stMain'], [data-testid='stSidebarContent']")]
                 .map(e => e.scrollHeight), 0)"""
    )
    page.set_viewport_size({"width": VIEWPORT["width"], "height": max(VIEWPORT["height"], height)})
    try:
        wait_ready(page)
        page.screenshot(path=str(path), full_page=True)
    finally:
        page.set_viewport_size(VIEWPORT)


def money(tick: str) -> float:
    """``$1,234.50`` -> 1234.5"""
    return float(tick.replace("$", "").replace(",", ""))


def assert_readable(chart: dict[str, Any], legend: set[str] | None = None) -> None:
    """What a person reads on a chart: every axis has tick labels, told apart, not all
    zero; every legend label is whole (not cut with an ellipsis) and drawn inside the chart
    and the window; with ``legend``, the legend names exactly those series."""
    assert chart["svg"], "the chart is not drawn as SVG: its text cannot be read"
    axes = [axis for axis in chart["axes"] if axis["aria"]]
    assert {axis["aria"][:6] for axis in axes} == {"X-axis", "Y-axis"}, axes
    for axis in axes:
        ticks = axis["ticks"]
        assert ticks, axis
        assert len(set(ticks)) == len(ticks), f"tick labels repeat: {axis}"
        assert any(any(ch in "123456789" for ch in t) for t in ticks), f"all zero: {axis}"
    labels = [label for found in chart["legends"] for label in found["labels"]]
    box = chart["box"]
    for label in labels:
        assert "\u2026" not in label["text"], f"legend label cut: {label}"
        assert box["left"] <= label["left"] and label["right"] <= box["right"], (label, box)
        assert label["right"] <= VIEWPORT["width"], label
    if legend is not None:
        assert {label["text"] for label in labels} == legend


def y_ticks(chart: dict[str, Any]) -> list[str]:
    (axis,) = [a for a in chart["axes"] if a["aria"].startswith("Y-axis")]
    return list(axis["ticks"])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_charts_read_and_a_bar_click_drills_down(
    tmp_path: Path, database_url: str, repo: Any, server: Any, make_gateway: Any
) -> None:
    """tests/dashboard/seed.py's database (two priced models and an unpriced one, a day over
    the $1 daily budget, feedback on two prompt versions, an eval batch) in Chromium: the
    charts of every page read as a person reads them, and a click on a bar opens its calls.
    Screenshots of every page go to the screenshots folder."""
    from tests.dashboard.seed import DAILY_BUDGET, MONTHLY_BUDGET
    from tests.dashboard.seed import seed as seed_app

    data = seed_app(database_url, repo, server, make_gateway)
    month = data.in_days(30)
    yesterday = next(
        c for c in data.calls if c.model == "gpt-4o" and c.day == data.today - timedelta(days=1)
    )
    drilled = [c for c in data.calls if c.model == "gpt-4o" and c.day == yesterday.day]
    settings = {
        "LLMOPS_PROMPTS_DIR": str(repo.prompts),
        "LLMOPS_DAILY_BUDGET": str(DAILY_BUDGET),
        "LLMOPS_MONTHLY_BUDGET": str(MONTHLY_BUDGET),
    }
    shots = screenshots()
    with in_chromium(database_url, tmp_path, tmp_path / "dashboard.log", settings) as (
        address,
        page,
    ):
        # Overview: daily spend in dollars, a legend of every model of the range
        open_page(page, address)
        screenshot(page, shots / "overview.png")
        (spend,) = page.evaluate(READ_CHARTS)
        assert_readable(spend, legend={c.model for c in month})
        assert money(y_ticks(spend)[-1]) >= max(  # the highest day fits, and the budget
            DAILY_BUDGET,
            *(sum(c.cost or 0 for c in month if c.day == d) for d in {c.day for c in month}),
        )

        # one user's calls cost a fraction of a cent a day: the axis says how much (it
        # read $0.00 on every tick), and the budget for all calls does not squash it
        open_page(page, f"{address}/?user=carol")
        (carol,) = page.evaluate(READ_CHARTS)
        assert_readable(carol, legend={"gpt-4o-mini"})
        carol_spend = sum(c.cost or 0 for c in month if c.user == "carol")
        assert 0 < carol_spend < 0.01
        assert carol_spend <= money(y_ticks(carol)[-1]) < 0.01, y_ticks(carol)
        assert "is for all calls: clear the filters" in page.inner_text("body")

        # Feedback: one chart per name for the counts and for the trend
        open_page(page, f"{address}/feedback")
        screenshot(page, shots / "feedback.png")
        versions = {f"support/answer@{data.versions[k]}" for k in ("answer-v1", "answer-v2")}
        counts, trend = page.evaluate(READ_CHARTS)
        for chart in (counts, trend):
            assert_readable(chart, legend=versions)
        assert all(t.isdigit() for t in y_ticks(counts)), y_ticks(counts)  # counts

        # Evals: the pass rate of the batch's two runs
        open_page(page, f"{address}/evals")
        screenshot(page, shots / "evals.png")
        (history,) = page.evaluate(READ_CHARTS)
        assert_readable(history, legend={"greet \u00b7 baseline", "greet \u00b7 candidate"})

        for name in ("prompts", "calls"):
            open_page(page, f"{address}/{name}")
            screenshot(page, shots / f"{name}.png")

        # a click on yesterday's gpt-4o bar (the mouse, as a person clicks) opens the
        # Calls page on that day and that model
        open_page(page, address)
        bar = page.locator(
            "[data-testid='stVegaLiteChart'] path[aria-roledescription='bar']"
            f"[aria-label*='date: {yesterday.day.isoformat()};']"
            "[aria-label*='Model: gpt-4o;']"
        )
        assert bar.count() == 1
        bar.click()
        page.wait_for_url("**/calls?**", timeout=PAGE_TIMEOUT_MS)
        wait_ready(page)
        screenshot(page, shots / "calls-drill-down.png")
        query = parse_qs(urlsplit(page.url).query)
        day = yesterday.day.isoformat()
        assert query["from"] == [day] and query["to"] == [day] and query["model"] == ["gpt-4o"]
        body = page.inner_text("body")
        count = len(drilled)
        assert f"Rows 1\u2013{count} of {count}" in body, body

        # a click on the row (its selection box, at the left of the first row) opens
        # the call: the detail below says what it cost and who rated it
        grid = page.locator("[data-testid='stDataFrame']").first.bounding_box()
        assert grid is not None
        page.mouse.click(grid["x"] + 12, grid["y"] + ROW_HEIGHT * 1.5)
        page.wait_for_function(
            "() => document.body.innerText.includes('Output tokens\\n')"
            " && document.querySelectorAll(\"[data-testid='stMetric']\").length > 0",
            timeout=PAGE_TIMEOUT_MS,
        )
        wait_ready(page)
        (call,) = drilled
        assert parse_qs(urlsplit(page.url).query)["call"] == [call.id]
        detail = {
            m.locator("[data-testid='stMetricLabel']").inner_text().strip(): m.locator(
                "[data-testid='stMetricValue']"
            ).inner_text()
            for m in page.locator("[data-testid='stMetric']").all()
        }
        assert detail["Cost"] == usd(call.cost or 0), detail
        assert detail["Input tokens"] == f"{call.prompt_tokens:,}", detail
        assert call.feedback  # (its rating, in a table below)
        assert "No feedback for this call." not in page.inner_text("body")
        screenshot(page, shots / "call-detail.png")
