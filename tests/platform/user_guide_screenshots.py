"""Take the user guide's screenshots (docs/user-guide.md) from a running CRM with the demo
company at scale 0.2 (200 accounts), in Debian's Chromium.

    .venv/bin/python tests/platform/user_guide_screenshots.py [FOLDER]

FOLDER defaults to docs/images. Look at every picture before committing it.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from browser_support import chromium, served
from test_screens_flow import crm_app, log_in, submit_a_contract

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
REP, MANAGER = "li.wei", "wang.fang"


def rep_pages(browser: Any, url: str, out: Path) -> None:
    """The rep's screens: login, home, list, record, form, kanban, calendar, report; then
    a contract submitted for approval, for the manager's inbox."""
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.goto(f"{url}/login")
    page.fill("#username", REP)
    page.screenshot(path=out / "guide-login.png")
    context.close()

    context, page = log_in(browser, url, REP, viewport=DESKTOP)
    page.wait_for_selector(".h-chart canvas")
    page.wait_for_timeout(800)
    page.screenshot(path=out / "guide-home.png")

    page.goto(f"{url}/app/account?view=mine&grade=A")
    page.locator("tbody input[type=checkbox]").nth(0).check()
    page.locator("tbody input[type=checkbox]").nth(1).check()
    page.screenshot(path=out / "guide-list.png")

    page.goto(f"{url}/app/opportunity?sort=-amount")
    page.locator("tbody a.fw-medium").first.click()
    page.wait_for_load_state()
    page.set_viewport_size({"width": 1280, "height": 1500})  # down to the related lists
    page.screenshot(path=out / "guide-record.png")
    page.set_viewport_size(DESKTOP)

    page.goto(f"{url}/app/account/new")
    page.fill("#f-annual_revenue", "-5")
    page.click("button:has-text('Save')")
    page.wait_for_selector("#f-name-error")
    page.screenshot(path=out / "guide-form-errors.png")

    page.goto(f"{url}/app/opportunity/kanban")
    page.screenshot(path=out / "guide-kanban.png")

    page.goto(f"{url}/app/task/calendar")
    page.screenshot(path=out / "guide-calendar.png")

    page.goto(f"{url}/reports/sales_funnel?period=this_year")
    page.wait_for_selector(".h-chart canvas")
    page.wait_for_timeout(800)
    page.screenshot(path=out / "guide-report.png")

    page.goto(f"{url}/app/account?view=mine")
    page.locator("tbody a.fw-medium").first.click()
    page.wait_for_load_state()
    with tempfile.TemporaryDirectory() as scratch:  # the flow test's own screenshot
        submit_a_contract(page, url, page.url, Path(scratch))
    context.close()


def manager_pages(browser: Any, url: str, out: Path) -> None:
    """The manager's approval inbox."""
    context, page = log_in(browser, url, MANAGER, viewport=DESKTOP)
    page.goto(f"{url}/approvals")
    page.wait_for_selector("tbody tr")
    page.screenshot(path=out / "guide-approvals.png")
    context.close()


def phone_page(browser: Any, url: str, out: Path) -> None:
    """A record on a phone, in Japanese."""
    context, page = log_in(browser, url, REP, viewport=PHONE, is_mobile=True, has_touch=True)
    page.goto(f"{url}/app/opportunity")
    page.locator("tbody a.fw-medium").first.click()
    page.wait_for_load_state()
    page.click("header button[lang=ja]")
    page.wait_for_load_state()
    page.screenshot(path=out / "guide-phone-ja.png")
    context.close()


def timeline_pages(browser: Any, url: str, out: Path) -> None:
    """The manager's notifications (the contract the rep submitted), then a deal's path,
    diagram and timeline after a comment and a logged visit; a call logged on a phone."""
    context, page = log_in(browser, url, MANAGER, viewport=DESKTOP)
    page.goto(f"{url}/notifications")
    page.screenshot(path=out / "guide-notifications.png")
    context.close()

    context, page = log_in(browser, url, REP, viewport=DESKTOP)
    page.goto(f"{url}/app/opportunity?sort=-amount")
    page.locator("tbody a.fw-medium").first.click()
    page.wait_for_load_state()
    page.fill("#comment-body", "@wang.fang they want 5 % off for 40 shops: ok?")
    page.click("button:has-text('Post comment')")
    page.wait_for_load_state()
    page.click("label[for=log-activity-visit]")
    page.fill("#log-activity-subject", "Tasting at their Hangzhou shop")
    page.fill("#log-activity-notes", "Liked the oolong; samples for the other shops next week.")
    page.click("#log-activity button:has-text('Log it')")
    page.wait_for_load_state()
    page.click("#workflow-diagram summary")
    page.locator("main .page-header").scroll_into_view_if_needed()
    page.screenshot(path=out / "guide-record-path.png")
    page.locator("#timeline").screenshot(path=out / "guide-timeline.png")
    context.close()

    context, page = log_in(browser, url, REP, viewport=PHONE, is_mobile=True, has_touch=True)
    page.goto(f"{url}/app/account?view=mine")
    page.locator("tbody a.fw-medium").first.click()
    page.wait_for_load_state()
    page.click("a[href='#log-activity']")
    page.fill("#log-activity-subject", "Called about the autumn order")
    page.locator("#log-activity").scroll_into_view_if_needed()
    page.screenshot(path=out / "guide-phone-log.png")
    context.close()


def pool_page(browser: Any, url: str, out: Path) -> None:
    """A pooled account of the rep's pool: the Public pool card, then claimed."""
    context, page = log_in(browser, url, REP, viewport=DESKTOP)
    page.goto(f"{url}/app/account?view=in_pool")
    page.locator("tbody a").first.click()
    page.wait_for_selector("#pool")
    page.screenshot(path=out / "guide-pool.png")
    page.locator("#pool button[type=submit]").first.click()
    page.wait_for_selector(".alert")
    page.screenshot(path=out / "guide-pool-claimed.png")
    context.close()


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        app = crm_app(Path(folder), scale=0.2)
        with served(app) as url, chromium() as browser:
            rep_pages(browser, url, out)
            manager_pages(browser, url, out)
            phone_page(browser, url, out)
            timeline_pages(browser, url, out)  # after the contract the manager is told of
            pool_page(browser, url, out)
    for shot in sorted(out.glob("guide-*.png")):
        print(f"{shot}  {shot.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/images"))
