"""The approval screens on the CRM's quote approval: a rep submits a quote from its record
page, a manager finds it in ``/approvals`` (and the navigation's badge) and approves it on
the record page; a rejection needs its comment; a stranger may not decide; the submitter
recalls; the inbox decides inline; the panel in Chinese and Japanese."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

import crm_definitions
import pytest
from flask import Flask
from flask.testing import FlaskClient
from heddle.app import create_app
from screens_package import csrf_of

PASSWORD = "a long enough password"
# username, roles, team, manager, language
PEOPLE = [
    ("max", ["sales_manager"], "Sales", None, "en"),
    ("mia", ["sales_manager"], "East", "max", "en"),
    ("ann", ["sales_rep"], "East", "mia", "en"),
    ("li", ["sales_rep"], "East", "mia", "zh"),
    ("sato", ["sales_rep"], "East", "mia", "ja"),
    ("mark", ["marketing"], "Marketing", None, "en"),
]


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ],
)
def app(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Flask]:
    """One CRM app per database for the module; each test works on quotes of its own."""
    tmp_path = tmp_path_factory.mktemp("approvals")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'crm.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    app = create_app(
        {
            "DATABASE_URL": url,
            "PACKAGES": str(crm_definitions.PATH),
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "SECRET_KEY": "test",
            "LOGIN_LIMIT": "1000 per minute",
            "TESTING": True,
        }
    )
    runtime = app.extensions["heddle"]
    runtime.tables.metadata.create_all(runtime.engine)
    with runtime.engine.begin() as conn:
        for username, roles, team, manager, language in PEOPLE:
            runtime.accounts.create_user(
                conn,
                username,
                PASSWORD,
                roles,
                team=team,
                manager=manager,
                locale=language,
                name=username.title(),
            )
    yield app
    runtime.tables.metadata.drop_all(runtime.engine)
    runtime.engine.dispose()


def _client(app: Flask, username: str) -> FlaskClient:
    client = app.test_client()
    token = csrf_of(client.get("/login").get_data(as_text=True))
    done = client.post(
        "/login", data={"username": username, "password": PASSWORD, "csrf_token": token}
    )
    assert done.status_code == 302
    return client


_COMPANIES = itertools.count(1)


def _quote(app: Flask, owner: str, discount: str = "20") -> int:
    runtime = app.extensions["heddle"]
    with runtime.engine.connect() as conn:
        actor = runtime.accounts.by_username(conn, owner).actor()
    # a new company each time: the CRM's duplicate rules refuse a second "Acme"
    name = f"Acme of {owner} {next(_COMPANIES)}"
    account = runtime.records.create(actor, "account", {"name": name})
    quote = runtime.records.create(actor, "quote", {"account": account["id"], "discount": discount})
    return int(quote["id"])


def _status(app: Flask, quote: int) -> str:
    runtime = app.extensions["heddle"]
    table = runtime.records.tables.table("quote")
    with runtime.engine.connect() as conn:
        return str(
            conn.scalar(table.select().with_only_columns(table.c.status).where(table.c.id == quote))
        )


def _panel(page: str) -> str:
    start = page.index('id="approval-title"')
    return page[start : page.index('id="timeline-title"')]


def _submit(client: FlaskClient, quote: int) -> str:
    """Submit the quote for approval with the record page's button; the page after."""
    url = f"/app/quote/{quote}"
    page = client.get(url).get_data(as_text=True)
    assert f"{url}/transitions/submit" in page
    version = re.search(r'name="version" value="(\d+)"', page)
    assert version
    done = client.post(
        f"{url}/transitions/submit",
        data={"csrf_token": csrf_of(page), "version": version.group(1)},
    )
    assert done.status_code == 302
    return client.get(url).get_data(as_text=True)


def _decide(
    client: FlaskClient, quote: int, page: str, action: str, token: str = "", **form: str
) -> tuple[int, str]:
    """Post the panel's (or the inbox's) ``action`` form; the status and where it leads."""
    found = re.search(rf'action="(/app/quote/{quote}/approvals/(\d+)/{action})"', page)
    assert found, f"no {action} form for quote {quote}"
    inside = page[found.end() : page.index("</form>", found.end())]
    hidden = dict(re.findall(r'type="hidden" name="(version|next)" value="([^"]*)"', inside))
    assert "version" in hidden
    data = {"csrf_token": token or csrf_of(page), **hidden, **form}
    done = client.post(found.group(1), data=data)
    return done.status_code, done.headers.get("Location", "")


def test_submit_find_in_inbox_and_approve(app: Flask) -> None:
    quote = _quote(app, "ann")
    ann, mia = _client(app, "ann"), _client(app, "mia")
    page = _submit(ann, quote)
    panel = _panel(page)
    assert "Discount review" in panel and "Sales manager" in panel and "Waiting" in panel
    assert "Mia" in panel and "asked Mia to approve" in panel  # the approver, by name
    assert "submitted it for approval" in panel and "0 of 1 approvals" in panel
    assert "/approve" not in panel  # the submitter does not decide…
    assert "/recall" in panel  # …but may recall

    inbox = mia.get("/approvals").get_data(as_text=True)
    assert re.search(r"h-nav-badge[^>]*>\d+", inbox)  # the navigation's badge
    assert f'href="/app/quote/{quote}"' in inbox and "Quote" in inbox and "Ann" in inbox
    assert "Sales manager" in inbox

    page = mia.get(f"/app/quote/{quote}").get_data(as_text=True)
    status, where = _decide(mia, quote, page, "approve", comment="fine by me")
    assert status == 302 and where.endswith(f"/app/quote/{quote}")
    page = mia.get(f"/app/quote/{quote}").get_data(as_text=True)
    assert "You approved it." in page
    panel = _panel(page)
    assert "Approved" in panel and "fine by me" in panel and "approval complete" in panel
    assert "/approve" not in panel
    assert _status(app, quote) == "approved"
    assert f'href="/app/quote/{quote}"' in mia.get("/approvals?tab=decided").get_data(as_text=True)
    assert f'href="/app/quote/{quote}"' in ann.get("/approvals?tab=mine").get_data(as_text=True)
    assert f'href="/app/quote/{quote}"' not in mia.get("/approvals").get_data(as_text=True)


def test_a_rejection_needs_its_comment(app: Flask) -> None:
    quote = _quote(app, "ann", "30")
    _submit(_client(app, "ann"), quote)
    mia = _client(app, "mia")
    page = mia.get(f"/app/quote/{quote}").get_data(as_text=True)
    status, _where = _decide(mia, quote, page, "reject", comment="  ")
    assert status == 302
    before = page
    page = mia.get(f"/app/quote/{quote}").get_data(as_text=True)
    assert "a comment is required" in page and 'role="alert"' in page
    assert _status(app, quote) == "pending_approval"  # nothing changed

    status, _where = _decide(mia, quote, page, "reject", comment="15% at most")
    assert status == 302
    page = mia.get(f"/app/quote/{quote}").get_data(as_text=True)
    assert "You rejected it." in page
    panel = _panel(page)
    assert "Rejected" in panel and "15% at most" in panel
    assert panel.index("</strong> rejected") < panel.index(
        "submitted it for approval"
    )  # newest first
    assert _status(app, quote) == "rejected"
    # decided: the form read before is refused as a conflict, nothing changes
    status, _where = _decide(mia, quote, before, "approve")
    assert status == 302
    assert "decided already" in mia.get(f"/app/quote/{quote}").get_data(as_text=True)
    assert _status(app, quote) == "rejected"
    # submitted again: the panel shows the new approval and counts the earlier one
    page = _submit(_client(app, "ann"), quote)
    assert "1 earlier approval of this record." in page and "15% at most" not in _panel(page)
    # the record's timeline keeps the whole story, the earlier approval's too
    timeline = page[page.index('id="timeline"') :]
    assert timeline.count("submitted it for approval: ") == 2
    assert "rejected: " in timeline and "15% at most" in timeline
    assert timeline.index("rejected: ") < timeline.rindex("submitted it for approval: ")


def test_a_stranger_may_not_decide_and_the_submitter_recalls(app: Flask) -> None:
    quote = _quote(app, "ann", "25")
    ann = _client(app, "ann")
    page = _submit(ann, quote)
    mark = _client(app, "mark")  # marketing: not an approver
    forged = page.replace("/recall", "/approve")
    token = csrf_of(mark.get("/approvals").get_data(as_text=True))
    status, _where = _decide(mark, quote, forged, "approve", token=token)
    if status == 302:  # marketing reads quotes: told it is not theirs
        assert "not yours to decide" in mark.get(f"/app/quote/{quote}").get_data(as_text=True)
    else:
        assert status == 404  # or sees nothing of it
    status, _where = _decide(ann, quote, forged, "approve")  # the submitter herself
    assert status == 302
    assert "You submitted this yourself" in ann.get(f"/app/quote/{quote}").get_data(as_text=True)
    assert _status(app, quote) == "pending_approval"

    status, _where = _decide(ann, quote, page, "recall")
    assert status == 302
    page = ann.get(f"/app/quote/{quote}").get_data(as_text=True)
    assert "You recalled it." in page and "recalled it" in _panel(page)
    assert _status(app, quote) == "draft"
    refused = ann.post(f"/app/quote/{quote}/approvals/1/fly", data={"csrf_token": csrf_of(page)})
    assert refused.status_code == 404
    no_token = ann.post(f"/app/quote/{quote}/approvals/1/recall", data={})
    assert no_token.status_code == 400


def test_approve_inline_from_the_inbox(app: Flask) -> None:
    quote = _quote(app, "ann", "40")
    _submit(_client(app, "ann"), quote)
    mia = _client(app, "mia")
    inbox = mia.get("/approvals").get_data(as_text=True)
    status, where = _decide(mia, quote, inbox, "approve")
    assert status == 302 and where.endswith("/approvals?tab=pending")
    inbox = mia.get("/approvals").get_data(as_text=True)
    assert "You approved it." in inbox and f'href="/app/quote/{quote}"' not in inbox
    assert _status(app, quote) == "approved"
    empty = _client(app, "mark").get("/approvals").get_data(as_text=True)
    assert "Nothing waits for your approval." in empty and "h-nav-badge" not in empty


def test_the_panel_and_inbox_in_chinese_and_japanese(app: Flask) -> None:
    quote = _quote(app, "li", "35")
    li = _client(app, "li")
    page = _submit(li, quote)
    panel = _panel(page)
    assert "折扣审批" in panel and "销售经理" in panel and "提交了审批" in panel
    assert "撤回" in panel
    mine = li.get("/approvals?tab=mine").get_data(as_text=True)
    assert "审批" in mine and "我提交的" in mine
    sato = _client(app, "sato")
    page = _submit(sato, _quote(app, "sato", "35"))
    assert "値引承認" in _panel(page) and "承認待ち" in _panel(page)
    assert "自分の承認待ち" in sato.get("/approvals").get_data(as_text=True)
