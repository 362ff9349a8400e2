"""The kanban, calendar, report and dashboard screens in Debian's Chromium (Playwright):
a card dragged to another column fires the transition, a refused one springs back with
the reason; a report's chart is drawn (a canvas, no console error); the calendar turns
to the next month in place. Screenshots go to ``$HEDDLE_SCREENSHOTS`` (the docs keep a
few, see docs/screens.md); the checks read the page, never pixels.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import chromium, screenshot_folder, served, watch_console
from screens_more_package import make_app
from screens_package import PASSWORD

from workflows import StateMachines

TODAY = dt.datetime.now(dt.UTC).date()
NEXT_MONTH = (TODAY.replace(day=1) + dt.timedelta(days=32)).replace(day=15)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The app on a free port, with ann's deals (one that may not be won) and tasks."""
    folder = tmp_path_factory.mktemp("boards-browser")
    app = make_app(f"sqlite:///{folder / 'heddle.db'}", folder)
    runtime = app.extensions["heddle"]
    with runtime.engine.connect() as conn:
        ann = runtime.accounts.by_username(conn, "ann").actor()
    records = runtime.records
    big = records.create(ann, "opportunity", {"name": "Big deal", "amount": "1000"})
    zero = records.create(ann, "opportunity", {"name": "Zero deal", "amount": "0"})
    StateMachines(records).fire(ann, "opportunity", zero["id"], "propose", version=zero["version"])
    records.create(ann, "opportunity", {"name": "<script>alert(1)</script>", "amount": "5"})
    records.create(ann, "task", {"subject": "<script>alert(2)</script>"})
    for day, subject, priority in [(TODAY, "Call Acme", "high"), (NEXT_MONTH, "Visit Zeta", "low")]:
        due = dt.datetime.combine(day, dt.time(9, 30), dt.UTC).isoformat()
        records.create(ann, "task", {"subject": subject, "due": due, "priority": priority})
    with served(app) as url:
        yield {"url": url, "big": big["id"], "zero": zero["id"]}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    return screenshot_folder(tmp_path)


def signed_in(browser: Any, server: dict[str, Any]) -> tuple[Any, list[str]]:
    """A new page, logged in as ann, and its console errors from now on (a refused
    move's 409 or 422 answer is expected, not one)."""
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    problems = watch_console(page)
    page.goto(f"{server['url']}/login")
    page.fill("#username", "ann")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server['url']}/")
    return page, problems


def switch_to(page: Any, language: str) -> None:
    page.click(f"header button[lang={language}]")
    page.wait_for_load_state()


def drag(page: Any, card: str, column: str) -> None:
    """Drag with the mouse, in small steps as a hand does."""
    start = page.locator(card).bounding_box()
    end = page.locator(column).bounding_box()
    page.mouse.move(start["x"] + 20, start["y"] + 12)
    page.mouse.down()
    page.mouse.move(start["x"] + 30, start["y"] + 20, steps=5)
    page.mouse.move(end["x"] + end["width"] / 2, end["y"] + 30, steps=20)
    page.mouse.up()


def column_of(page: Any, record_id: int) -> str:
    value: str = page.eval_on_selector(f"#card-{record_id}", "c => c.parentElement.dataset.value")
    return value


def test_dragging_a_card_fires_the_transition_and_a_refused_one_springs_back(
    server: dict[str, Any], browser: Any, shots: Path
) -> None:
    page, problems = signed_in(browser, server)
    page.goto(f"{server['url']}/app/opportunity/kanban")
    big, zero = server["big"], server["zero"]
    assert column_of(page, big) == "new" and column_of(page, zero) == "proposal"
    assert "<script>alert(1)</script>" in page.locator("main").inner_text()  # text, not a script

    drag(page, f"#card-{big} .card-body", "ul[data-value=proposal]")
    page.wait_for_selector(f"#card-{big} .h-card-message.text-success")
    assert page.inner_text(f"#card-{big} .h-card-message") == "Moved to “Proposal”."
    assert column_of(page, big) == "proposal"
    page.reload()
    assert column_of(page, big) == "proposal"  # the server moved it, not only the page

    drag(page, f"#card-{zero} .card-body", "ul[data-value=won]")
    page.wait_for_selector(f"#card-{zero} .h-card-message.text-danger")
    assert page.inner_text(f"#card-{zero} .h-card-message") == (
        "“Mark won” is not possible now: amount > 0 does not hold."
    )
    assert column_of(page, zero) == "proposal"  # back where it was
    page.screenshot(path=shots / "kanban-refused-en.png", full_page=True)

    page.select_option(f"#move-{zero}", "lost")  # the keyboard's way
    page.click(f"#card-{zero} button:has-text('Move')")
    page.wait_for_selector(f"#card-{zero} .h-card-message:has-text('Lost reason')")
    assert page.inner_text(f"#card-{zero} .h-card-message") == (
        "“Mark lost” needs Lost reason: open the record, fill it in and try again."
    )
    assert problems == [], problems
    page.close()


def test_a_report_chart_and_the_dashboard_in_chinese(
    server: dict[str, Any], browser: Any, shots: Path
) -> None:
    page, problems = signed_in(browser, server)
    page.wait_for_selector(".h-chart canvas")  # the home page is the rep's dashboard
    assert "<script>alert(2)</script>" in page.locator("main").inner_text()  # a task, as text
    page.goto(f"{server['url']}/reports/deals_by_stage")
    page.wait_for_selector(".h-chart canvas")
    assert page.locator(".h-report-table tbody tr").count() >= 1
    switch_to(page, "zh")
    page.wait_for_selector(".h-chart canvas")
    assert page.locator("h1").inner_text() == "各阶段商机"
    assert "导出 CSV" in page.locator("main").inner_text()
    page.wait_for_timeout(600)  # the bars' entry animation
    page.screenshot(path=shots / "report-zh.png", full_page=True)
    page.goto(f"{server['url']}/")
    page.wait_for_selector(".h-chart canvas")
    page.wait_for_timeout(600)
    page.screenshot(path=shots / "dashboard-zh.png", full_page=True)
    switch_to(page, "en")
    assert problems == [], problems
    page.close()


def test_the_calendar_turns_to_the_next_month_in_place_in_japanese(
    server: dict[str, Any], browser: Any, shots: Path
) -> None:
    page, problems = signed_in(browser, server)
    switch_to(page, "ja")
    page.goto(f"{server['url']}/app/task/calendar")
    assert "Call Acme" in page.locator("#calendar").inner_text()
    heading = page.inner_text("#calendar-heading")
    page.click("#calendar a[rel=next]")
    page.wait_for_url(re.compile(r"date=\d{4}-\d{2}-01"))
    page.wait_for_selector("#calendar:has-text('Visit Zeta')")
    assert page.inner_text("#calendar-heading") != heading
    assert "Visit Zeta" in page.locator("#calendar").inner_text()
    assert "Call Acme" not in page.locator("#calendar").inner_text()
    page.screenshot(path=shots / "calendar-ja.png", full_page=True)
    page.click("#calendar a[rel=prev]")
    page.wait_for_selector("#calendar:has-text('Call Acme')")
    page.goto(f"{server['url']}/app/opportunity/kanban")
    page.screenshot(path=shots / "kanban-ja.png", full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: columns scroll sideways
    page.goto(f"{server['url']}/reports/deals_by_stage")
    page.wait_for_selector(".h-chart canvas")
    page.screenshot(path=shots / "report-phone-ja.png", full_page=True)
    switch_to(page, "en")
    assert problems == [], problems
    page.close()
