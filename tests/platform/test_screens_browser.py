"""The screens in a real browser: Debian's Chromium driven by Playwright.

Log in, open the list, search, open a record, edit it with a mistake the server refuses,
correct it and save — in English, then in Chinese — and the list on a phone in Japanese.
Each step's screenshot is written to ``$HEDDLE_SCREENSHOTS`` (default: the test's
``tmp_path``); the checks read the page's visible text, never pixels.

Playwright never downloads a browser here: it starts ``/usr/bin/chromium`` (``apt-get
install chromium``; ``.ci/run`` does it). Without it the test is skipped, or fails in CI.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import chromium, screenshot_folder, served, watch_console
from screens_package import PASSWORD, make_app
from sqlalchemy.engine import Engine

pytestmark = pytest.mark.browser


@pytest.fixture
def server(sqlite_url: str, sqlite_engine: Engine, tmp_path: Path) -> Iterator[str]:
    """The app on a free port, served by a thread."""
    app = make_app(sqlite_url, tmp_path)
    runtime = app.extensions["heddle"]
    with runtime.engine.connect() as conn:
        actor = runtime.accounts.by_username(conn, "ann").actor()
    acme = runtime.records.create(actor, "account", {"name": "Acme", "grade": "A"})
    runtime.records.create(actor, "deal", {"title": "ERP", "account": acme["id"], "amount": "5000"})
    runtime.records.create(actor, "account", {"name": "Zeta <script>alert(1)</script>"})
    with served(app) as url:
        yield url


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    return screenshot_folder(tmp_path)


def test_log_in_list_open_edit_save_in_english_then_chinese(
    server: str, browser: object, shots: Path
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    problems = watch_console(page)  # a 422 answer to a refused form is expected

    page.goto(f"{server}/app/account")
    assert "/login?next=/app/account" in page.url
    page.screenshot(path=shots / "01-login.png")
    page.fill("#username", "ann")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server}/app/account")

    main = page.locator("main")
    assert "Accounts" in main.inner_text() and "Acme" in main.inner_text()
    assert "Zeta <script>alert(1)</script>" in main.inner_text()  # shown as text
    page.fill("#list-q", "acm")  # search as you type: htmx replaces the results
    page.wait_for_url(re.compile(r"q=acm"))
    page.wait_for_function("!document.body.innerText.includes('Zeta')")
    assert "1 record" in main.inner_text()
    page.screenshot(path=shots / "02-list-search.png")

    page.click("a.fw-medium:has-text('Acme')")
    page.wait_for_url(re.compile(r"/app/account/\d+$"))
    text = main.inner_text()
    assert "Acme" in page.locator("h1").inner_text()
    assert "Basics" in text and "Deals" in text and "ERP" in text and "CN¥5,000.00" in text
    page.screenshot(path=shots / "03-record.png", full_page=True)

    page.click("text=Edit")
    page.fill("#f-name", "")
    page.fill("#f-revenue", "-3")
    page.click("button:has-text('Save')")
    assert page.locator("#f-name-error").inner_text() == "Missing data for required field."
    assert page.locator("#f-revenue-error").is_visible()
    page.screenshot(path=shots / "04-form-errors.png", full_page=True)
    page.fill("#f-name", "Acme Ltd")
    page.fill("#f-revenue", "1250.5")
    page.click("button:has-text('Save')")
    page.wait_for_url(re.compile(r"/app/account/\d+$"))
    assert "Saved." in main.inner_text()
    assert page.locator("h1").inner_text() == "Acme Ltd"
    assert "CN¥1,250.50" in main.inner_text()

    page.click("button[lang=zh]")  # the language switch
    page.wait_for_load_state()
    text = main.inner_text()
    assert "基本信息" in text and "客户名称" in text and "商机" in text and "编辑" in text
    page.screenshot(path=shots / "05-record-zh.png", full_page=True)
    page.click("text=编辑")
    page.fill("#f-name", "")
    page.click("button:has-text('保存')")
    assert page.locator("#f-name-error").inner_text() == "此字段为必填项。"
    page.fill("#f-name", "Acme 集团")
    page.click("button:has-text('保存')")
    page.wait_for_url(re.compile(r"/app/account/\d+$"))
    assert "已保存。" in main.inner_text() and page.locator("h1").inner_text() == "Acme 集团"
    page.screenshot(path=shots / "06-saved-zh.png", full_page=True)
    page.goto(f"{server}/app/account")
    assert "Acme 集团" in main.inner_text() and "全部客户" in main.inner_text()
    page.screenshot(path=shots / "07-list-zh.png")
    assert problems == []


def test_a_phone_in_japanese(server: str, browser: object, shots: Path) -> None:
    context = browser.new_context(  # type: ignore[attr-defined]
        viewport={"width": 390, "height": 844}, locale="ja-JP", is_mobile=True, has_touch=True
    )
    page = context.new_page()
    page.goto(f"{server}/login")
    assert "アカウントにログイン" in page.locator("main").inner_text()  # the browser's language
    page.fill("#username", "ann")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{server}/app/account")
    text = page.locator("main").inner_text()
    assert "顧客" in text and "Acme" in text and "顧客を新規作成" in text
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways ({width}px)"
    page.screenshot(path=shots / "08-list-ja-phone.png", full_page=True)
    context.close()
