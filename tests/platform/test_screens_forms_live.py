"""Live forms in Debian's Chromium (Playwright): a quote's lines edited inline with the
line amounts and the total following what is typed, saved with the quote in one request,
then changed (a line removed, a quantity changed); and a field that appears when its
``visible_when`` becomes true, with a team picker searched as the user types.

Screenshots go to ``$HEDDLE_SCREENSHOTS`` (default: the test's ``tmp_path``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import test_screens_flow as flow
from browser_support import screenshot_folder, watch_console
from test_screens_flow import log_in

pytestmark = pytest.mark.browser

# the flow's fixtures, one of each for this module: the app (a small demo company on
# SQLite), its server and the browser
app, server, browser = flow.app, flow.server, flow.browser

MANAGER = "wang.fang"


def first_choice(page: Any, select: str) -> str:
    value: str = page.eval_on_selector(select, "s => [...s.options].find(o => o.value).value")
    page.select_option(select, value)
    return value


def fill_line(page: Any, index: int, quantity: str, price: str, discount: str) -> None:
    first_choice(page, f"#f-lines-{index}-product")
    page.fill(f"#f-lines-{index}-quantity", quantity)
    page.fill(f"#f-lines-{index}-unit_price", price)
    page.fill(f"#f-lines-{index}-discount", discount)


def total_text(page: Any) -> str:
    text: str = page.locator("[data-h-value=total]").inner_text()
    return text


def opened(browser: Any, server: str, path: str) -> tuple[Any, Any, list[str]]:
    """A new context logged in as the manager, on ``path``: (context, page, the page's
    console errors)."""
    context, page = log_in(browser, server, MANAGER, viewport={"width": 1366, "height": 900})
    problems = watch_console(page)
    page.goto(f"{server}{path}")
    return context, page, problems


def test_a_quote_with_two_lines_edited_inline(server: str, browser: Any, tmp_path: Path) -> None:
    shots = screenshot_folder(tmp_path)
    context, page, problems = opened(browser, server, "/app/quote/new")
    first_choice(page, "#f-account")
    page.fill("#f-title", "Tea for the new office")
    page.click("button:has-text('Add a row')")
    fill_line(page, 0, "2", "100", "10")  # 180.00
    page.click("button:has-text('Add a row')")
    fill_line(page, 1, "3", "50", "0")  # 150.00
    amount = "[data-h-children=lines] tbody tr:nth-child({}) [data-h-cell=amount]"
    page.wait_for_function(
        "() => document.querySelector('[data-h-value=total]').innerText.includes('330.00')"
    )
    assert "180.00" in page.locator(amount.format(1)).inner_text()
    assert "150.00" in page.locator(amount.format(2)).inner_text()
    page.fill("#f-discount", "10")  # the quote's own discount: 330 less 10%
    page.wait_for_function(
        "() => document.querySelector('[data-h-value=total]').innerText.includes('297.00')"
    )
    page.screenshot(path=shots / "forms-01-quote-lines.png", full_page=True)

    page.fill("#f-lines-1-quantity", "-1")  # refused beside the row's cell
    page.click("button:has-text('Save')")
    page.wait_for_selector("#f-lines-1-quantity-error")
    assert "greater than or equal to 0" in page.locator("#f-lines-1-quantity-error").inner_text()
    assert page.input_value("#f-lines-0-unit_price") == "100"  # what was typed stays
    page.screenshot(path=shots / "forms-02-quote-line-error.png", full_page=True)
    page.fill("#f-lines-1-quantity", "3")
    page.click("button:has-text('Save')")
    page.wait_for_url(re.compile(r"/app/quote/\d+$"))
    main = page.locator("main").inner_text()
    assert "297.00" in main and "180.00" in main and "150.00" in main

    page.click("a:has-text('Edit')")
    page.wait_for_selector("#f-lines-1-quantity")
    page.click("[data-h-children=lines] tbody tr:nth-child(1) [data-h-remove-row]")
    page.fill("#f-lines-1-quantity", "4")  # 200.00 less 10%
    page.wait_for_function(
        "() => document.querySelector('[data-h-value=total]').innerText.includes('180.00')"
    )
    page.screenshot(path=shots / "forms-03-quote-edit.png", full_page=True)
    page.click("button:has-text('Save')")
    page.wait_for_url(re.compile(r"/app/quote/\d+$"))
    main = page.locator("main").inner_text()
    assert "200.00" in main and "180.00" in main and "150.00" not in main
    assert problems == []
    context.close()


def test_a_field_appears_when_its_visible_when_holds(
    server: str, browser: Any, tmp_path: Path
) -> None:
    shots = screenshot_folder(tmp_path)
    context, page, problems = opened(browser, server, "/app/sales_target/new")
    assert page.is_visible("#f-user-field")  # the scope is "user" by default
    assert page.is_hidden("#f-team-field")
    page.select_option("#f-scope", "team")
    page.wait_for_selector("#f-team-field", state="visible")
    assert page.is_hidden("#f-user-field")
    assert "required" in (page.get_attribute("#f-team-field .form-label", "class") or "")
    page.fill("#f-team-field input[type=search]", "Japan")  # the team picker's search
    page.wait_for_function(
        "() => [...document.querySelectorAll('#f-team option')].every("
        "o => !o.value || o.textContent.includes('Japan'))"
    )
    page.screenshot(path=shots / "forms-04-visible-when.png", full_page=True)
    page.fill("#f-name", "Japan 2027")
    page.select_option("#f-team", label="Japan Sales")
    page.click("button:has-text('Save')")
    page.wait_for_url(re.compile(r"/app/sales_target/\d+$"))
    assert "Japan Sales" in page.locator("main").inner_text()
    assert problems == []
    context.close()
