"""Attachments in a real browser (Debian's Chromium through Playwright): upload a file on
a record page and download it again, a ``<script>`` file name shown as text, a file over
the size limit refused with a message, a delete confirmed, a file chosen on the edit
form. Screenshots go to ``$HEDDLE_SCREENSHOTS`` (default: the test's ``tmp_path``)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import chromium, screenshot_folder, served, watch_console
from files_package import FILES, PDF
from screens_package import PASSWORD, make_app
from sqlalchemy.engine import Engine

pytestmark = pytest.mark.browser

LIMIT = 4096


@pytest.fixture
def server(sqlite_url: str, sqlite_engine: Engine, tmp_path: Path) -> Iterator[tuple[str, int]]:
    app = make_app(sqlite_url, tmp_path, FILES, ATTACHMENT_MAX_BYTES=LIMIT)
    runtime = app.extensions["heddle"]
    with runtime.engine.connect() as conn:
        actor = runtime.accounts.by_username(conn, "ann").actor()
    acme = runtime.records.create(actor, "account", {"name": "Acme"})
    with served(app) as url:
        yield url, acme["id"]


@pytest.fixture
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def test_upload_download_refuse_and_delete(
    server: tuple[str, int], browser: Any, tmp_path: Path
) -> None:
    url, acme = server
    shots = screenshot_folder(tmp_path)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    problems = watch_console(page)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(f"{url}/login")
    page.fill("#username", "ann")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/")
    record = f"{url}/app/account/{acme}"
    page.goto(record)
    panel = page.locator("#attachments")
    assert "No files yet." in panel.inner_text()

    script_name = tmp_path / "<script>alert(1).txt"
    script_name.write_text("见积 notes", encoding="utf-8")
    panel.locator("input[type=file]").set_input_files(str(script_name))
    panel.locator("button[type=submit]:has-text('Upload')").click()
    page.wait_for_url(re.compile(r"#attachments$"))
    assert "<script>alert(1).txt" in panel.inner_text()  # the name, shown as text
    assert dialogs == []  # no script ran

    contract = tmp_path / "合同 2024.pdf"
    contract.write_bytes(PDF)
    panel.locator("input[type=file]").set_input_files(str(contract))
    panel.locator("button[type=submit]:has-text('Upload')").click()
    page.wait_for_function("document.querySelector('#attachments').innerText.includes('合同')")
    text = panel.inner_text()
    assert "合同 2024.pdf" in text and "ann" in text
    page.screenshot(path=shots / "attachments-01-uploaded.png", full_page=True)

    with page.expect_download() as download_info:
        panel.locator("a:has-text('合同 2024.pdf')").click()
    download = download_info.value
    assert download.suggested_filename == "合同 2024.pdf"
    assert Path(download.path()).read_bytes() == PDF

    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * (LIMIT + 1))
    panel.locator("input[type=file]").set_input_files(str(big))
    panel.locator("button[type=submit]:has-text('Upload')").click()
    page.wait_for_function("document.body.innerText.includes('too large')")
    assert "big.bin" not in panel.inner_text()
    page.screenshot(path=shots / "attachments-02-too-large.png", full_page=True)

    first = panel.locator("li.h-attachment").filter(has_text="<script>")
    first.locator("summary").click()  # the confirmation opens
    first.locator("button:has-text('Delete')").click()
    page.wait_for_function("!document.querySelector('#attachments').innerText.includes('<script>')")
    assert "合同 2024.pdf" in panel.inner_text()

    page.goto(f"{record}/edit")
    page.locator("#f-scan").set_input_files(str(contract))
    page.click("button[type=submit]:has-text('Save')")
    page.wait_for_url(record)
    field = page.locator("main .h-files a")  # the field's file, a download link
    assert field.inner_text() == "合同 2024.pdf"
    page.click("a:has-text('More')")  # the tab the field is on
    page.screenshot(path=shots / "attachments-03-field.png", full_page=True)
    assert problems == [] and dialogs == []
    context.close()
