"""Accessibility of the CRM's screens, checked by axe-core in Debian's Chromium.

Every kind of page a sales rep meets — log-in, home, lists, a record (with its path,
comments and activities), the create and edit forms, a form sent back with errors, the
notifications, the settings — is opened in English, Chinese and Japanese and run
through axe-core's WCAG 2.0/2.1 A and AA rules (axe-core ships inside the
``axe-playwright-python`` wheel: nothing is fetched at run time). A page passes with no
violation at all, whatever its impact.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from heddle.app import create_app
from werkzeug.serving import make_server

from engine import SYSTEM, migrate
from engine.comments import Comments
from engine.tables import NOTIFICATION_TABLE
from workflows import StateMachines

CHROMIUM = os.environ.get("HEDDLE_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
PASSWORD = "a long enough password"
WCAG = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}
# username, role, language
PEOPLE = [("root", "admin", "en"), ("li", "sales_rep", "zh"), ("sato", "sales_rep", "ja")]

pytestmark = pytest.mark.browser
playwright_api = pytest.importorskip("playwright.sync_api")
axe_api = pytest.importorskip("axe_playwright_python.sync_playwright")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, int]]]:
    """The CRM on SQLite, a few records each user owns, served by a thread."""
    folder = tmp_path_factory.mktemp("a11y")
    app: Flask = create_app(
        {
            "DATABASE_URL": f"sqlite:///{folder / 'heddle.db'}",
            "INSTANCE_PATH": str(folder),
            "SECRET_KEY": "test",
            "LOGIN_LIMIT": "1000 per minute",
            "TESTING": True,
        }
    )
    runtime = app.extensions["heddle"]
    migrate(runtime.engine, runtime.model, actor="test")
    ids: dict[str, int] = {}
    with runtime.engine.begin() as conn:
        for username, role, language in PEOPLE:
            runtime.accounts.create_user(
                conn, username, PASSWORD, [role], team="East", locale=language
            )
    with runtime.engine.connect() as conn:
        li = runtime.accounts.by_username(conn, "li")
        assert li is not None
        actor = li.actor()
    account = runtime.records.create(actor, "account", {"name": "上海华东机械有限公司"})
    ids["account"] = account["id"]
    contact = {"name": "王伟", "account": account["id"], "mobile": "13800138000"}
    ids["contact"] = runtime.records.create(actor, "contact", contact)["id"]
    deal = {"name": "ERP 升级", "account": account["id"], "amount": "120000.00"}
    ids["opportunity"] = runtime.records.create(actor, "opportunity", deal)["id"]
    # a comment and an activity on the deal's timeline, a notification in li's inbox
    Comments(runtime.records).add(actor, "opportunity", ids["opportunity"], "@root 请看报价")
    activity = {"subject": "拜访客户", "account": account["id"], "opportunity": ids["opportunity"]}
    runtime.records.create(actor, "activity", activity)
    with runtime.engine.begin() as conn:
        conn.execute(
            runtime.tables.metadata.tables[NOTIFICATION_TABLE].insert(),
            [{"user_id": actor.user_id, "subject": "合同“Tea”等待您审批", "entity": "account",
              "record_id": account["id"], "created_at": dt.datetime.now(dt.UTC)}],
        )  # fmt: skip
    # a quote waiting for a sales manager's approval: the record's approval panel
    with runtime.engine.begin() as conn:
        runtime.accounts.create_user(conn, "mia", PASSWORD, ["sales_manager"], team="East")
    quote = runtime.records.create(actor, "quote", {"account": account["id"], "discount": "30"})
    StateMachines(runtime.records).fire(
        actor, "quote", quote["id"], "submit", version=quote["version"], comment="大客户"
    )
    ids["quote"] = quote["id"]
    # an account waiting in the East team's public pool: its card, Claim and Assign
    team = li.team_id
    runtime.records.create(SYSTEM, "pool", {"name": "华东公海", "member_teams": [team],
                                            "hidden_fields": ["phone"]})  # fmt: skip
    pooled = runtime.records.create(actor, "account", {"name": "苏州闲置贸易有限公司"})
    runtime.records.return_to_pool(actor, "account", pooled["id"], note="暂无预算")
    ids["pooled"] = pooled["id"]
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}", ids
    httpd.shutdown()
    runtime.engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() and not shutil.which(CHROMIUM):
        reason = f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI", "").lower() in {"true", "1"}:
            pytest.fail(f"{reason}; with CI=true the browser tests must run", pytrace=False)
        pytest.skip(reason)
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


def _violations(page: Any) -> list[str]:
    """What axe finds on the page: one line per rule and element."""
    results = axe_api.Axe().run(page, options=WCAG)
    return [
        f"{v['id']} ({v['impact']}): {node['target']} {node['failureSummary']}"
        for v in results.response["violations"]
        for node in v["nodes"]
    ]


@pytest.mark.parametrize("username", [p[0] for p in PEOPLE])
def test_every_kind_of_page_passes_axe(
    server: tuple[str, dict[str, int]],
    browser: Any,
    username: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    base, ids = server
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    found: dict[str, list[str]] = {}

    def check(name: str) -> None:
        page.wait_for_load_state("load")
        if problems := _violations(page):
            found[name] = problems

    page.goto(f"{base}/login")
    check("login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    check("home")
    # every page in English; in Chinese and Japanese those of one entity (the rules
    # that depend on the language: lang attributes, labels, CJK text in badges)
    records = [(e, i) for e, i in ids.items() if e != "quote"]
    for entity, record_id in records if username == "root" else [("account", ids["account"])]:
        page.goto(f"{base}/app/{entity}")
        check(f"{entity} list")
        page.goto(f"{base}/app/{entity}/{record_id}")
        if page.locator("#workflow-diagram").count():
            page.click("#workflow-diagram summary")  # the workflow diagram unfolded too
        check(f"{entity} record")
        page.goto(f"{base}/app/{entity}/{record_id}/edit")
        check(f"{entity} edit form")
    page.goto(f"{base}/app/account/{ids['pooled']}")  # its public pool card
    check("pooled account")
    page.goto(f"{base}/app/account/{ids['account']}")
    if page.locator("#pool summary").count():  # the folded return form, unfolded
        page.click("#pool summary")
        check("account with its return form")
    page.goto(f"{base}/app/quote/{ids['quote']}")  # with its approval panel
    check("quote record with its approval")
    page.goto(f"{base}/approvals?tab={'pending' if username == 'root' else 'mine'}")
    check("approvals")
    page.goto(f"{base}/app/quote/new")  # child rows edited inline: a line added
    page.click("[data-h-add-row]")
    page.wait_for_selector("[data-h-rows] tr")
    check("quote form with a line")
    page.goto(f"{base}/notifications")
    check("notifications")
    page.goto(f"{base}/app/account/new")
    check("account form")
    # the server's refusal: the browser's own check of required fields set aside
    page.evaluate(
        "document.querySelectorAll('[required]').forEach(e => e.removeAttribute('required'))"
    )
    page.click("main form button.btn-primary[type=submit]")
    page.wait_for_load_state("load")
    assert page.locator(".invalid-feedback, [aria-invalid=true]").count() > 0
    check("account form with errors")
    page.goto(f"{base}/app/account/import")
    check("import form")
    sheet = Path(tmp_path_factory.mktemp("a11y-import")) / "accounts.csv"
    sheet.write_text("Account name,Grade\nAxe Import Trading,A\n,Z\n", encoding="utf-8")
    page.set_input_files("#import-file", str(sheet))
    page.click("button[value=check]")
    page.wait_for_selector("#import-counts")
    check("checked import with rejected rows")
    page.goto(f"{base}/app/imports")
    check("your imports")
    page.goto(f"{base}/settings")
    check("settings")
    page.fill("#password-current_password", "not the password")
    page.fill("#password-new_password", "a new long password")
    page.fill("#password-confirm_password", "another new password")
    page.click("#password button[type=submit]")
    page.wait_for_load_state("load")
    assert page.locator("#password [aria-invalid=true]").count() == 2
    check("settings with errors")
    context.close()
    assert not found, "\n".join(
        f"{name}: {problem}" for name, problems in found.items() for problem in problems
    )
