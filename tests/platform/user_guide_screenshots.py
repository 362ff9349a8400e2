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


IMPORT_FILE = """客户名称,客户等级,城市,电话,年营业额
上海云帆科技有限公司,A类（重点客户）,上海,021-6123 4567,"12,500,000"
杭州青禾贸易有限公司,重要,杭州,0571-8888 1234,"3,200,000"
,B,北京,010-5555 0000,800000
深圳星河电子有限公司,C类（普通客户）,深圳,0755-2666 1888,"1,050,000.50"
"""


def import_pages(browser: Any, url: str, out: Path, folder: Path) -> None:
    """A spreadsheet of accounts checked, then its valid rows imported."""
    sheet = folder / "客户名单.csv"
    sheet.write_bytes(IMPORT_FILE.encode("gb18030"))  # as Excel saves it on Chinese Windows
    context, page = log_in(browser, url, REP, viewport=DESKTOP)
    page.goto(f"{url}/app/account/import")
    page.set_input_files("#import-file", str(sheet))
    page.screenshot(path=out / "guide-import.png")
    page.click("button[value=check]")
    page.wait_for_selector("#import-counts")
    page.set_viewport_size({"width": 1280, "height": 1500})  # down to the columns' form
    page.screenshot(path=out / "guide-import-checked.png")
    page.set_viewport_size(DESKTOP)
    page.click("button:has-text('Import the valid rows')")
    page.wait_for_selector("#import-counts")
    page.screenshot(path=out / "guide-import-done.png")
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
            import_pages(browser, url, out, Path(folder))
    for shot in sorted(out.glob("guide-*.png")):
        print(f"{shot}  {shot.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/images"))
