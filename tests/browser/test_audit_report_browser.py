"""The HTML evidence report in a real browser: Debian's Chromium, headless, through Playwright.

The report of the audit tests' history (tests/audit/conftest.py) is written to a file and
opened from disk. It must show every section, ask for nothing but itself (no font, image,
style sheet or script from anywhere), keep its tables inside the page on screen and in
print, and print to PDF with each section on a page of its own. A full-page screenshot goes
to the screenshots folder as audit-report.png.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from llmops.audit.render import to_html
from llmops.audit.report import SECTION_TITLES
from llmops.money import usd
from tests.audit.conftest import History, build, history  # noqa: F401 (the fixture)
from tests.browser.test_dashboard_browser import (
    CHROMIUM_ARGS,
    chromium_path,
    playwright_api,
    screenshots,
)

pytestmark = pytest.mark.browser

# tables wider than their page: the widths of every table and of the body it sits in
OVERFLOW = """() => [...document.querySelectorAll('table, pre')]
    .filter(t => t.getBoundingClientRect().right > document.body.getBoundingClientRect().right + 1)
    .map(t => t.outerHTML.slice(0, 120))"""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_html_report_in_chromium(history: History, tmp_path: Path) -> None:  # noqa: F811
    executable = chromium_path()
    sync_playwright = playwright_api()
    report = build(history)
    page_file = tmp_path / "report.html"
    page_file.write_text(to_html(report), "utf-8")
    address = page_file.as_uri()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            fetched: list[str] = []
            page.on("request", lambda request: fetched.append(request.url))
            failed: list[Any] = []
            page.on("pageerror", lambda error: failed.append(error))
            page.goto(address, wait_until="load")

            headings = page.locator("h2").all_inner_texts()
            assert headings == list(SECTION_TITLES.values())
            for title in SECTION_TITLES.values():
                assert page.get_by_role("heading", name=title, exact=True).is_visible()
            body = page.locator("body").inner_text()
            assert usd(report.operation.totals.cost_usd) in body
            assert 'alert("x")' in body  # a commit message shown as text, not run
            assert page.evaluate(OVERFLOW) == []

            page.screenshot(path=str(screenshots() / "audit-report.png"), full_page=True)

            page.emulate_media(media="print")
            page.set_viewport_size({"width": 700, "height": 990})  # about A4 at 96 dpi
            assert page.evaluate(OVERFLOW) == []
            breaks = page.evaluate(
                "() => [...document.querySelectorAll('section.part')]"
                ".map(s => getComputedStyle(s).breakBefore)"
            )
            assert breaks == ["page"] * len(SECTION_TITLES)
            pdf = page.pdf(format="A4", print_background=True)
        finally:
            browser.close()

    assert pdf.startswith(b"%PDF")
    (tmp_path / "report.pdf").write_bytes(pdf)
    pages = len(re.findall(rb"/Type\s*/Page(?![s\w])", pdf))
    assert pages >= 1 + len(SECTION_TITLES)  # the title, then every section on a new page
    assert failed == []
    assert fetched and all(url.startswith(("file://", "data:")) for url in fetched), fetched
    assert fetched == [address]  # the page itself, nothing else
