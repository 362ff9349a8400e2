"""A sales rep's day on the CRM package, end to end in Debian's Chromium (Playwright).

The rep logs in, creates an account (a mistake first, then corrected), opens it, creates
an opportunity from its related list, moves it on the kanban, submits a contract for
approval which the manager approves, opens a report with its chart, and sees the screens
in Chinese and in Japanese; then the main steps again on a phone, 390 px wide. A
``<script>`` typed into a text field shows as text on the list, record and kanban pages.

The CRM holds a small demo company (20 accounts) so the report has something to draw.
Each step's screenshot goes to ``$HEDDLE_SCREENSHOTS`` (default: the test's ``tmp_path``);
the checks read the page's text, never pixels.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import crm_definitions
import pytest
from browser_support import chromium, screenshot_folder, served, watch_console
from flask import Flask
from heddle.accounts import Accounts
from heddle.app import create_app
from heddle.demo import DEMO_PASSWORD, load_demo

from engine import build_tables, connect, migrate
from metamodel import load_packages

pytestmark = pytest.mark.browser

REP, MANAGER = "li.wei", "wang.fang"  # wang.fang is li.wei's manager in the demo company
PAYLOAD = "<script>alert(1)</script>"
CONTRACT = "Tea supply 2027"
PHONE = {"width": 390, "height": 844}


def crm_app(folder: Path, scale: float = 0.02) -> Flask:
    """The CRM package on SQLite in ``folder``, with a demo company of ``scale`` (0.02:
    twenty accounts)."""
    url = f"sqlite:///{folder / 'heddle.db'}"
    model = load_packages([crm_definitions.PATH])
    engine = connect(url)
    try:
        migrate(engine, model)
        tables = build_tables(model)
        now = dt.datetime.now(dt.UTC)
        load_demo(engine, tables, Accounts(tables), scale=scale, seed=3, now=now)
    finally:
        engine.dispose()
    return create_app(
        {
            "DATABASE_URL": url,
            "PACKAGES": str(crm_definitions.PATH),
            "INSTANCE_PATH": str(folder / "instance"),
            "SECRET_KEY": "test",
            "LOGIN_LIMIT": "1000 per minute",
            "TOKEN_CACHE_SECONDS": 0,
            "TESTING": True,
        }
    )


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    return crm_app(tmp_path_factory.mktemp("crm-flow"))


@pytest.fixture(scope="module")
def server(app: Flask) -> Iterator[str]:
    with served(app) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    return screenshot_folder(tmp_path)


def log_in(browser: Any, server: str, username: str, **context: Any) -> tuple[Any, Any]:
    """A new browser context logged in as ``username``, in English (the demo users read
    Chinese or Japanese by their settings; the header's switch changes it)."""
    made = browser.new_context(**context)
    made.set_default_timeout(10_000)
    page = made.new_page()
    page.goto(f"{server}/login")
    page.fill("#username", username)
    page.fill("#password", DEMO_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server}/")
    switch_to(page, "en")
    return made, page


def switch_to(page: Any, language: str) -> None:
    page.click(f"header button[lang={language}]")
    page.wait_for_load_state()


def main_text(page: Any) -> str:
    text: str = page.locator("main").inner_text()
    return text


def create_account(page: Any, server: str, name: str, shots: Path, prefix: str) -> str:
    """A new account: saved once without a name (refused beside the field), then with
    one; returns the record page's URL."""
    page.goto(f"{server}/app/account/new")
    page.fill("#f-annual_revenue", "-5")
    page.click("button:has-text('Save')")
    assert page.locator("#f-name-error").inner_text() == "Missing data for required field."
    assert page.locator("#f-annual_revenue-error").is_visible()
    page.screenshot(path=shots / f"{prefix}-account-errors.png", full_page=True)
    page.fill("#f-name", name)
    page.fill("#f-annual_revenue", "2500000")
    page.click("button:has-text('Save')")
    page.wait_for_url(re.compile(r"/app/account/\d+$"))
    assert f"{name} created." in main_text(page)
    assert page.locator("h1").inner_text() == name
    url: str = page.url
    return url


def opportunity_from(page: Any, account_url: str, name: str, shots: Path, prefix: str) -> int:
    """The account's related list's "New" opens the form with the account filled in."""
    page.goto(account_url)
    page.click("a[aria-label='New: Opportunities']")
    page.wait_for_url(re.compile(r"/app/opportunity/new\?account=\d+"))
    page.fill("#f-name", name)
    page.fill("#f-amount", "48000")
    page.screenshot(path=shots / f"{prefix}-opportunity-new.png", full_page=True)
    page.click("button:has-text('Save')")
    page.wait_for_url(re.compile(r"/app/opportunity/\d+$"))
    assert f"{name} created." in main_text(page)
    return int(page.url.rsplit("/", 1)[1])


def move_on_kanban(page: Any, server: str, record_id: int, shots: Path, prefix: str) -> None:
    """Moved with the card's "Move to" select (the keyboard's and the phone's way)."""
    page.goto(f"{server}/app/opportunity/kanban")
    card = f"#card-{record_id}"
    before = page.eval_on_selector(card, "c => c.parentElement.dataset.value")
    target = "needs_analysis"  # "Analyze needs", a step the pipeline allows from "initial"
    assert before == "initial"
    page.select_option(f"#move-{record_id}", target)
    page.click(f"{card} button:has-text('Move')")
    page.wait_for_selector(f"{card} .h-card-message.text-success")
    page.reload()
    assert page.eval_on_selector(card, "c => c.parentElement.dataset.value") == target
    page.screenshot(path=shots / f"{prefix}-kanban.png", full_page=True)


def test_a_rep_and_a_manager_work_through_the_crm(server: str, browser: Any, shots: Path) -> None:
    context, page = log_in(browser, server, REP, viewport={"width": 1366, "height": 900})
    problems = watch_console(page)
    page.wait_for_selector(".h-chart canvas")  # the rep's home dashboard
    page.screenshot(path=shots / "flow-01-home.png", full_page=True)

    account = create_account(page, server, f"Lotus Tea {PAYLOAD}", shots, "flow-02")
    assert PAYLOAD in page.locator("h1").inner_text()  # text, never run
    page.screenshot(path=shots / "flow-03-account.png", full_page=True)
    page.goto(f"{server}/app/account?q=Lotus")
    assert PAYLOAD in main_text(page)
    page.screenshot(path=shots / "flow-04-list.png")

    deal = opportunity_from(page, account, f"Tea house {PAYLOAD}", shots, "flow-05")
    assert PAYLOAD in main_text(page) and "Lotus Tea" in main_text(page)
    move_on_kanban(page, server, deal, shots, "flow-06")
    assert f"Tea house {PAYLOAD}" in main_text(page)

    submit_a_contract(page, server, account, shots)
    approve_as_manager(browser, server, CONTRACT, shots)
    page.reload()
    assert "Approved" in page.locator(".h-approval .card-header").inner_text()
    assert "Put in force" in page.locator(".page-header").inner_text()  # approved → active
    page.screenshot(path=shots / "flow-09-contract-approved.png", full_page=True)

    page.goto(f"{server}/reports/sales_funnel")
    page.wait_for_selector(".h-chart canvas")
    page.wait_for_timeout(600)  # the chart's entry animation
    page.screenshot(path=shots / "flow-10-report.png", full_page=True)

    page.goto(account)
    switch_to(page, "zh")
    assert "客户名称" in main_text(page) and "商机" in main_text(page)
    page.screenshot(path=shots / "flow-11-account-zh.png", full_page=True)
    switch_to(page, "ja")
    assert "顧客名" in main_text(page) and "商談" in main_text(page)
    page.goto(f"{server}/app/opportunity/kanban")
    assert "商談" in main_text(page)
    page.screenshot(path=shots / "flow-12-kanban-ja.png", full_page=True)
    assert problems == [], problems
    context.close()


def submit_a_contract(page: Any, server: str, account_url: str, shots: Path) -> None:
    """The rep writes a contract for the account and submits it with the record page's
    transition button."""
    page.goto(account_url)
    page.click("a[aria-label='New: Contracts']")
    page.fill("#f-title", CONTRACT)
    page.fill("#f-amount", "36000")
    page.click("button:has-text('Save')")
    page.wait_for_url(re.compile(r"/app/contract/\d+$"))
    page.click("a:has-text('Submit for approval')")  # it takes fields: a form to confirm
    page.fill("#f-comment", "Standard terms, one year.")
    page.click("button:has-text('Confirm')")
    page.wait_for_url(re.compile(r"/app/contract/\d+$"))
    assert "Pending approval" in main_text(page)
    page.screenshot(path=shots / "flow-07-contract-submitted.png", full_page=True)


def approve_as_manager(browser: Any, server: str, title: str, shots: Path) -> None:
    """The rep's manager finds the contract in the approval inbox and approves it on the
    record page's approval panel."""
    context, page = log_in(browser, server, MANAGER, viewport={"width": 1366, "height": 900})
    problems = watch_console(page)
    page.goto(f"{server}/approvals")
    row = page.locator("tbody tr", has_text=title)
    assert "李伟" in row.inner_text()  # who submitted it
    page.screenshot(path=shots / "flow-08-approvals-inbox.png", full_page=True)
    row.locator(f"a:has-text('{title}')").click()
    page.wait_for_url(re.compile(r"/app/contract/\d+$"))
    page.fill("#approve-comment-panel", "Fine terms.")
    page.click(".h-approval button:has-text('Approve')")
    page.wait_for_load_state()
    assert "Fine terms." in page.locator(".h-approval").inner_text()
    assert problems == [], problems
    context.close()


def test_the_same_on_a_phone(server: str, browser: Any, shots: Path) -> None:
    context, page = log_in(browser, server, REP, viewport=PHONE, is_mobile=True, has_touch=True)
    problems = watch_console(page)
    account = create_account(page, server, "Bamboo Garden", shots, "phone-01")
    opportunity_from(page, account, "Garden kiosk", shots, "phone-02")
    deal = int(page.url.rsplit("/", 1)[1])
    page.screenshot(path=shots / "phone-03-opportunity.png", full_page=True)
    move_on_kanban(page, server, deal, shots, "phone-04")
    for path in ("/app/account", account, "/reports/sales_funnel"):
        page.goto(path if path.startswith("http") else f"{server}{path}")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{path} scrolls sideways ({width}px)"
    page.wait_for_selector(".h-chart canvas")
    page.screenshot(path=shots / "phone-05-report.png", full_page=True)
    switch_to(page, "zh")
    page.wait_for_selector(".h-chart canvas")
    assert page.locator("h1").inner_text() == "销售漏斗"
    assert problems == [], problems
    context.close()
