"""The dashboard in a real browser: `llmops dashboard` in its own process, Chromium headless.

Calls with scripted token counts go through the real Gateway (to the local fake model
server) into a SQLite file, at chosen times: today, yesterday, ten days ago and forty days
ago. The dashboard then runs exactly as a user starts it (``python -m llmops dashboard``),
and Chromium (Debian's, through Playwright) opens the overview page. The spend metrics
must show the costs worked out here by hand from gpt-4o-mini's list price ($0.15 per
million input tokens, $0.60 per million output tokens), and the call count the calls of
the last 30 days. A screenshot of the page is kept in ``screenshots/`` at the top of the
repository (or ``$LLMOPS_SCREENSHOTS``), for people and CI artifacts to look at.

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
def dashboard(url: str, cwd: Path, log: Path) -> Iterator[str]:
    """``python -m llmops dashboard`` on a free port; yields its address once healthy.

    Another process (a parallel test run, any client's ephemeral port) may take the free
    port before Streamlit binds it; Streamlit then exits, and the dashboard starts again on
    another free port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMOPS_")}
    env["HOME"] = str(cwd)  # no ~/.streamlit of the developer
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
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable(
            "the playwright Python package is not installed: `pip install -e '.[dev]'` "
            "(or `pip install playwright`; no `playwright install` needed, it drives chromium)"
        )

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

    shots = Path(os.environ.get("LLMOPS_SCREENSHOTS") or Path(__file__).parents[2] / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    screenshot = shots / "overview.png"
    with (
        dashboard(url, tmp_path, tmp_path / "dashboard.log") as address,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1100})
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
            page.screenshot(path=str(screenshot), full_page=True)
            # every other page, as a person opens it: no error, and a screenshot to look at
            for name in ("prompts", "evals", "calls", "feedback"):
                page.goto(f"{address.rstrip('/')}/{name}", timeout=PAGE_TIMEOUT_MS)
                page.wait_for_selector(READY, timeout=PAGE_TIMEOUT_MS)
                page.wait_for_function(
                    "() => !document.querySelector(\"[data-testid='stSkeleton']\")",
                    timeout=PAGE_TIMEOUT_MS,
                )
                page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
                failed = page.locator("[data-testid='stException']").count()
                assert failed == 0, (name, page.locator("body").inner_text())
        finally:
            browser.close()

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
    data = screenshot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 20_000, f"{screenshot} is only {len(data)} bytes"
