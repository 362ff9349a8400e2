"""The bell, the notification inbox, the record's path of states, its workflow diagram,
comments and logging an activity — in Debian's Chromium (Playwright), on the CRM.

A rep sees the bell's count, opens the inbox, marks a notification read (htmx: the row
and the count change in place) and then all of them; on a deal's record page the path
shows the current stage, moves on with a transition, and the diagram unfolds; a comment
with a ``<script>`` shows as text; an activity logged from the deal lands in its timeline
with its kind's badge (and the deal's account filled in). Then the same from a phone,
390 px wide, and axe-core finds nothing on ``/notifications``. Screenshots go to
``$HEDDLE_SCREENSHOTS`` (default: the test's ``tmp_path``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import test_screens_flow as flow
from browser_support import screenshot_folder, watch_console
from crm_support import crm_app
from flask import Flask
from heddle.demo import DEMO_PASSWORD

from engine.tables import NOTIFICATION_TABLE

pytestmark = pytest.mark.browser

PAYLOAD = "<script>alert(1)</script>"
# the flow test's fixtures: its server serves this module's app, its browser is Chromium
server, browser, log_in = flow.server, flow.browser, flow.log_in
PHONE = {"width": 390, "height": 844}
WCAG = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """The CRM on SQLite; ann (a rep, with the demo company's password, so the flow
    test's ``log_in`` serves) owns an account and a deal, and has three notifications
    about the deal."""
    folder = tmp_path_factory.mktemp("timeline")
    app = crm_app(
        f"sqlite:///{folder / 'heddle.db'}", folder, [("ann", ["sales_rep"], "East", None)]
    )
    runtime = app.extensions["heddle"]
    with runtime.engine.begin() as conn:
        ann = runtime.accounts.by_username(conn, "ann")
        runtime.accounts.update_user(conn, ann.id, password=DEMO_PASSWORD, name="Ann Lee")
    actor = ann.actor()
    account = runtime.records.create(actor, "account", {"name": "Lotus Tea House"})
    deal = runtime.records.create(
        actor, "opportunity", {"name": "Tea for 40 shops", "account": account["id"],
                               "amount": "48000.00"},
    )  # fmt: skip
    table = runtime.tables.metadata.tables[NOTIFICATION_TABLE]
    with runtime.engine.begin() as conn:
        for i, subject in enumerate(["Follow up the tasting", "Quote approved", "Call back"]):
            conn.execute(
                table.insert().values(
                    user_id=ann.id,
                    subject=f"{subject}: Tea for 40 shops",
                    body="Tea for 40 shops",
                    entity="opportunity",
                    record_id=deal["id"],
                    created_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=3 - i),
                )
            )
    app.config["TEST_IDS"] = {"account": account["id"], "deal": deal["id"]}
    yield app


def bell_count(page: Any) -> str:
    badge = page.locator("#h-bell .h-bell-count")
    return str(badge.get_attribute("data-count")) if badge.count() else "0"


def test_the_bell_the_inbox_the_path_comments_and_activities(
    app: Flask, server: str, browser: Any, tmp_path: Path
) -> None:
    expect = pytest.importorskip("playwright.sync_api").expect
    shots = screenshot_folder(tmp_path)
    ids = app.config["TEST_IDS"]
    context, page = log_in(browser, server, "ann", viewport={"width": 1280, "height": 900})
    problems = watch_console(page)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

    assert bell_count(page) == "3"
    page.click("#h-bell")
    page.wait_for_url(f"{server}/notifications")
    rows = page.locator(".h-notices > li")
    assert rows.count() == 3 and "Call back" in rows.nth(0).inner_text()  # newest first
    page.screenshot(path=str(shots / "notifications-01-inbox.png"), full_page=True)
    first = rows.nth(0)
    first.locator("button:has-text('Mark read')").click()
    expect(page.locator("#h-bell .h-bell-count")).to_have_attribute("data-count", "2")
    expect(rows.nth(0)).not_to_have_class(re.compile(r"\bh-unread\b"))
    assert page.url == f"{server}/notifications"  # swapped in place: no reload
    page.click("button:has-text('Mark all read')")
    page.wait_for_load_state()
    assert bell_count(page) == "0" and page.locator(".h-notices .h-unread").count() == 0
    rows.nth(1).locator("a").click()  # each names its record
    page.wait_for_url(f"{server}/app/opportunity/{ids['deal']}")

    path = page.locator("nav.h-path")
    assert path.locator("[aria-current=step]").inner_text().strip() == "Initial contact"
    assert path.locator(".h-path-finals").inner_text().split() == ["Won", "Lost"]
    page.click("main .page-header button:has-text('Analyze needs')")
    page.wait_for_load_state()
    assert path.locator("[aria-current=step]").inner_text().strip() == "Needs analysis"
    assert "Initial contact" in path.locator(".h-step-done").inner_text()
    page.click("#workflow-diagram summary")
    diagram = page.locator("#workflow-diagram svg")
    assert diagram.is_visible()
    current = diagram.locator(".h-node-current text").text_content()
    assert current == "Needs analysis"
    assert diagram.locator("text.h-arc-label", has_text="Reopen").count() == 1
    page.locator("#workflow-diagram").screenshot(path=str(shots / "record-02-diagram.png"))

    page.fill("#comment-body", f"Tasting went well {PAYLOAD}")
    page.click("button:has-text('Post comment')")
    page.wait_for_load_state()
    timeline = page.locator("#timeline")
    assert f"Tasting went well {PAYLOAD}" in timeline.inner_text()  # text, never run
    assert "Ann Lee commented" in timeline.inner_text()

    page.click("label[for=log-activity-visit]")
    assert page.is_checked("#log-activity-visit")
    page.fill("#log-activity-subject", "Visited the Hangzhou shop")
    page.fill("#log-activity-notes", "They want samples of the oolong")
    page.click("#log-activity button:has-text('Log it')")
    page.wait_for_load_state()
    entry = timeline.locator(".h-event-activity").first
    assert "Visited the Hangzhou shop" in entry.inner_text() and "Visit" in entry.inner_text()
    assert "samples of the oolong" in entry.inner_text()
    page.screenshot(path=str(shots / "record-03-path-and-timeline.png"), full_page=True)
    entry.locator("a").click()
    page.wait_for_load_state()
    assert "Lotus Tea House" in page.locator("main").inner_text()  # the deal's account too
    assert dialogs == [] and problems == []
    context.close()


def test_on_a_phone_a_rep_logs_a_call_and_the_inbox_passes_axe(
    app: Flask, server: str, browser: Any, tmp_path: Path
) -> None:
    axe_api = pytest.importorskip("axe_playwright_python.sync_playwright")
    shots = screenshot_folder(tmp_path)
    ids = app.config["TEST_IDS"]
    context, page = log_in(browser, server, "ann", viewport=PHONE, is_mobile=True, has_touch=True)
    problems = watch_console(page)
    page.goto(f"{server}/app/account/{ids['account']}")
    assert page.locator("nav.h-path").count() == 0  # an account has no workflow
    jump = page.locator("a[href='#log-activity']")
    assert jump.is_visible()
    jump.click()
    page.fill("#log-activity-subject", "Called about the autumn order")
    page.click("#log-activity button:has-text('Log it')")
    page.wait_for_load_state()
    entry = page.locator("#timeline .h-event-activity").first
    assert "Called about the autumn order" in entry.inner_text() and "Call" in entry.inner_text()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the record page is {width} px wide on a phone"
    page.screenshot(path=str(shots / "phone-01-activity-logged.png"), full_page=True)

    page.goto(f"{server}/app/opportunity/{ids['deal']}")
    assert page.locator("nav.h-path [aria-current=step]").is_visible()
    page.screenshot(path=str(shots / "phone-02-path.png"))
    wide = page.evaluate(
        "[...document.querySelectorAll('main *')].filter(e => e.getBoundingClientRect().right > 391)"
        ".slice(0, 5).map(e => e.tagName + '.' + e.className)"
    )
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the deal's page is {width} px wide on a phone: {wide}"

    page.goto(f"{server}/notifications")
    assert page.locator("#h-bell").is_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the inbox is {width} px wide on a phone"
    page.screenshot(path=str(shots / "phone-03-notifications.png"), full_page=True)
    results = axe_api.Axe().run(page, options=WCAG)
    found = [
        f"{v['id']}: {n['target']}" for v in results.response["violations"] for n in v["nodes"]
    ]
    assert found == []
    assert problems == []
    context.close()
