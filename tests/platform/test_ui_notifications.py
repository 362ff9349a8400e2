"""The bell and ``/notifications``: the unread count on every page, the inbox newest
first with each record's link, "Mark read" (a form, or htmx swapping the row and the
bell) and "Mark all read", both behind the CSRF token; another user's notification is a
404; and the page costs the same statements for 3 notifications as for 60.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from crm_support import crm_fixture
from flask import Flask
from flask.testing import FlaskClient
from screens_package import csrf_of, log_in
from sqlalchemy.engine import Engine
from statement_support import statements

from engine.tables import NOTIFICATION_TABLE

ACCOUNTS = itertools.count()
PEOPLE = [("ann", ["sales_rep"], "East", None), ("bob", ["sales_rep"], "East", None)]


@pytest.fixture
def app(db_url: str, db_engine: Engine, tmp_path: Path) -> Iterator[Flask]:
    yield from crm_fixture(db_url, tmp_path, PEOPLE)


def _client(app: Flask, username: str) -> FlaskClient:
    client = app.test_client()
    log_in(client, username)
    return client


def _notify(app: Flask, username: str, count: int, subject: str = "Call Acme back") -> list[int]:
    """``count`` notifications for ``username``, about one account, a minute apart."""
    runtime = app.extensions["heddle"]
    table = runtime.tables.metadata.tables[NOTIFICATION_TABLE]
    start = dt.datetime(2026, 5, 1, 9, tzinfo=dt.UTC)
    with runtime.engine.begin() as conn:
        user = runtime.accounts.by_username(conn, username)
        name = f"Acme {next(ACCOUNTS)}"  # the duplicate rules refuse a second "Acme"
        account = runtime.records.create(user.actor(), "account", {"name": name}, conn=conn)
        ids = []
        for i in range(count):
            ids.append(
                conn.execute(
                    table.insert()
                    .values(
                        user_id=user.id,
                        subject=f"{subject} {i}",
                        body="Acme",
                        entity="account",
                        record_id=account["id"],
                        created_at=start + dt.timedelta(minutes=i),
                    )
                    .returning(table.c.id)
                ).scalar_one()
            )
    return ids


def _bell(html: str) -> str:
    found = re.search(r'<a [^>]*id="h-bell".*?</a>', html, re.S)
    assert found, "no bell in the top bar"
    return found.group(0)


def test_the_bell_counts_and_the_inbox_lists_newest_first(app: Flask) -> None:
    ids = _notify(app, "ann", 3)
    ann = _client(app, "ann")
    home = ann.get("/").get_data(as_text=True)
    assert 'data-count="3"' in _bell(home) and "/notifications" in _bell(home)
    page = ann.get("/notifications").get_data(as_text=True)
    assert (
        page.index("Call Acme back 2")
        < page.index("Call Acme back 1")
        < page.index("Call Acme back 0")
    )
    assert re.search(r'href="/app/account/\d+"', page)  # each names its record
    assert page.count('class="list-group-item h-unread"') == 3

    bob = _client(app, "bob")
    assert "data-count" not in _bell(bob.get("/").get_data(as_text=True))  # none of his own
    bob_page = bob.get("/notifications").get_data(as_text=True)
    assert "Call Acme back" not in bob_page and "No notifications yet" in bob_page
    refused = bob.post(f"/notifications/{ids[0]}/read", data={"csrf_token": csrf_of(bob_page)})
    assert refused.status_code == 404  # another user's: as if it did not exist


def test_mark_read_needs_the_token_and_swaps_the_row_with_htmx(app: Flask) -> None:
    ids = _notify(app, "ann", 3)
    ann = _client(app, "ann")
    page = ann.get("/notifications").get_data(as_text=True)
    assert ann.post(f"/notifications/{ids[0]}/read").status_code == 400  # no CSRF token

    done = ann.post(
        f"/notifications/{ids[0]}/read",
        data={"csrf_token": csrf_of(page), "next": "/notifications"},
    )
    assert done.status_code == 302 and done.headers["Location"] == "/notifications"
    page = ann.get("/notifications").get_data(as_text=True)
    assert 'data-count="2"' in _bell(page) and page.count("h-unread") == 2

    swapped = ann.post(
        f"/notifications/{ids[1]}/read",
        data={"csrf_token": csrf_of(page), "next": "/notifications"},
        headers={"HX-Request": "true"},
    )
    html = swapped.get_data(as_text=True)
    assert swapped.status_code == 200 and f'id="notice-{ids[1]}"' in html
    assert "h-unread" not in html and "Mark read" not in html  # the row, read now
    assert 'hx-swap-oob="true"' in _bell(html) and 'data-count="1"' in _bell(html)

    unread = ann.get("/notifications?show=unread").get_data(as_text=True)
    assert "Call Acme back 2" in unread and "Call Acme back 1" not in unread
    everything = ann.post(
        "/notifications/read-all", data={"csrf_token": csrf_of(page), "next": "/"}
    )
    assert everything.status_code == 302 and everything.headers["Location"] == "/"
    page = ann.get("/notifications?show=unread").get_data(as_text=True)
    assert "data-count" not in _bell(page) and "You have read every notification." in page
    assert "All notifications are marked read." in page


def test_the_inbox_pages_back_and_a_bad_before_is_ignored(app: Flask) -> None:
    ids = _notify(app, "ann", 55)
    ann = _client(app, "ann")
    first = ann.get("/notifications").get_data(as_text=True)
    assert "Call Acme back 54" in first and "Call Acme back 4<" not in first
    older = re.search(r'href="(/notifications\?before=\d+)"', first)
    assert older, "no link to older notifications"
    second = ann.get(older.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert "Call Acme back 4<" in second and "Call Acme back 54" not in second
    assert ids
    assert ann.get("/notifications?before=x' or 1=1").status_code == 200
    assert ann.get(f"/notifications?before={2**70}").status_code == 200


def test_the_page_costs_the_same_statements_for_3_and_for_60(app: Flask) -> None:
    ann = _client(app, "ann")

    def page() -> None:
        assert ann.get("/notifications").status_code == 200

    _notify(app, "ann", 3)
    few = statements(app, page)
    _notify(app, "ann", 57)
    assert statements(app, page) == few
