"""The CRM's screens and exports for roles that may not read every entity their records
point at: a service agent's activities name deals, an account names its public pool,
which a marketer and the finance team may not read. The page shows such a reference as
its number, without its title — as the API, which refuses to expand it — and without a
link to the 404 it would lead to; the page never fails.
Found by walking every link of the demo as each role."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from crm_support import actor_of, crm_app, logged_in
from flask import Flask
from sqlalchemy.engine import Engine

HTML = {"Accept": "text/html"}
USERS = [
    ("root", ["admin"], "HQ", None),
    ("sam", ["service_agent"], "Customer Service", None),
    ("mia", ["marketing"], "Marketing", None),
    ("fay", ["finance"], "Finance", None),
]


@pytest.fixture
def app(db_url: str, db_engine: Engine, tmp_path: Path) -> Iterator[Flask]:
    made = crm_app(db_url, tmp_path, USERS)
    yield made
    made.extensions["heddle"].engine.dispose()


@pytest.fixture
def made(app: Flask) -> dict[str, Any]:
    """An account in a public pool, a deal of it and an activity of the deal."""
    records, root = app.extensions["heddle"].records, actor_of(app, "root")
    pool = records.create(root, "pool", {"name": "Dormant East Accounts"})
    account = records.create(
        root, "account", {"name": "Kunlun Optics", "type": "customer", "pool": pool["id"]},
        trusted=True,
    )  # fmt: skip
    deal = records.create(
        root, "opportunity",
        {"name": "Lens line retrofit", "account": account["id"], "stage": "initial",
         "amount": "120000.00", "expected_close_date": dt.date.today().isoformat()},
    )  # fmt: skip
    activity = records.create(
        root, "activity",
        {"kind": "call", "subject": "Asked about the retrofit", "account": account["id"],
         "opportunity": deal["id"], "occurred_at": dt.datetime.now(dt.UTC).isoformat()},
    )  # fmt: skip
    return {"pool": pool, "account": account, "deal": deal, "activity": activity}


def test_a_list_shows_a_reference_the_user_may_not_follow_as_its_number(
    app: Flask, made: dict[str, Any]
) -> None:
    client = logged_in(app, "sam")  # reads activities, not deals
    for url in ("/app/activity", "/app/activity?view=follow_ups_due", "/app/task?view=mine"):
        page = client.get(url, headers=HTML)
        assert page.status_code == 200, (url, page.get_data(as_text=True)[:500])
    html = client.get("/app/activity", headers=HTML).get_data(as_text=True)
    assert "Asked about the retrofit" in html
    assert "Kunlun Optics" in html  # the account, which they may read, by its name
    deal = made["deal"]["id"]
    assert f"#{deal}" in html and f'href="/app/opportunity/{deal}"' not in html  # no 404 link
    assert "Lens line retrofit" not in html
    page = client.get(f"/app/activity/{made['activity']['id']}", headers=HTML)
    assert page.status_code == 200
    assert "Lens line retrofit" not in page.get_data(as_text=True)
    # the API refuses to expand it, as before
    assert client.get("/api/v1/records/activity?expand=opportunity").status_code == 400


@pytest.mark.parametrize("username", ["mia", "fay"])
def test_a_record_page_leaves_out_the_title_of_an_entity_the_user_may_not_read(
    app: Flask, made: dict[str, Any], username: str
) -> None:
    """The page asked for the titles of all its references at once, the pool's among them,
    and answered 400. The pool's own panel still says which pool holds the account (who
    sees a pooled record sees that: docs/pools.md); its field shows the number."""
    client = logged_in(app, username)  # reads accounts, not pools
    page = client.get(f"/app/account/{made['account']['id']}", headers=HTML)
    html = page.get_data(as_text=True)
    assert page.status_code == 200, html[:500]
    assert "Kunlun Optics" in html
    pool_id = made["pool"]["id"]
    assert f"#{pool_id}" in html and f'href="/app/pool/{pool_id}"' not in html
    admin = logged_in(app, "root").get(f"/app/account/{made['account']['id']}", headers=HTML)
    assert f'href="/app/pool/{pool_id}">Dormant East Accounts</a>' in admin.get_data(as_text=True)


def _csv(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


def test_an_export_names_only_what_the_user_may_read(app: Flask, made: dict[str, Any]) -> None:
    pool_id = made["pool"]["id"]
    fay = logged_in(app, "fay")
    sent = fay.get("/api/v1/records/account/export?format=csv&fields=name,pool")
    assert sent.status_code == 200, sent.get_data(as_text=True)
    rows = _csv(sent.data)
    assert rows[0] == ["ID", "Account name", "Public pool"]
    assert rows[1] == [str(made["account"]["id"]), "Kunlun Optics", str(pool_id)]
    root = logged_in(app, "root")
    rows = _csv(root.get("/api/v1/records/account/export?format=csv&fields=name,pool").data)
    assert rows[1][2] == "Dormant East Accounts"


def test_an_export_of_a_list_with_system_columns(app: Flask, made: dict[str, Any]) -> None:
    """The expense claims' list shows when each was created: its export did not know the
    column and answered 400 to everyone."""
    records, fay = app.extensions["heddle"].records, logged_in(app, "fay")
    claim = records.create(
        actor_of(app, "root"), "expense_claim",
        {"purpose": "Trade show travel", "lines": [
            {"category": "travel", "amount": "880.00", "date": dt.date.today().isoformat(),
             "description": "Train"}]},
    )  # fmt: skip
    for format in ("csv", "xlsx"):
        sent = fay.get(f"/app/expense_claim/export?format={format}", headers=HTML)
        assert sent.status_code == 200, (format, sent.get_data(as_text=True)[:300])
    rows = _csv(fay.get("/app/expense_claim/export?format=csv", headers=HTML).data)
    assert rows[0][-1] == "Created"
    (row,) = rows[1:]
    assert row[0] == str(claim["id"]) and row[2] == "Trade show travel"
    created = dt.datetime.fromisoformat(row[-1])
    assert abs(created - claim["created_at"]) < dt.timedelta(seconds=1)
    sent = fay.get(
        "/api/v1/records/expense_claim/export?format=json&fields=purpose,created_by,version"
    )
    assert sent.status_code == 200, sent.get_data(as_text=True)
    assert sent.json == [{"id": claim["id"], "purpose": "Trade show travel",
                          "created_by": claim["created_by"], "version": 1}]  # fmt: skip


def test_a_form_shows_a_reference_the_user_may_not_follow_as_text(
    app: Flask, made: dict[str, Any]
) -> None:
    """A service agent could pick no deal for an activity (the picker's search is a 404
    to them), so the form shows the field as text and sends nothing for it."""
    client = logged_in(app, "sam")
    form = client.get("/app/activity/new", headers=HTML).get_data(as_text=True)
    assert 'name="account"' in form  # an account they may read: picked as usual
    assert 'name="opportunity"' not in form and "/app/opportunity/options" not in form
    records = app.extensions["heddle"].records
    activity = records.create(  # theirs, naming the deal (the admin's doing)
        actor_of(app, "root"), "activity",
        {"kind": "call", "subject": "Follow-up", "account": made["account"]["id"],
         "opportunity": made["deal"]["id"], "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
         "owner_id": actor_of(app, "sam").user_id},
        trusted=True,
    )["id"]  # fmt: skip
    page = client.get(f"/app/activity/{activity}/edit", headers=HTML)
    edit = page.get_data(as_text=True)
    assert page.status_code == 200 and 'name="opportunity"' not in edit
    assert f"#{made['deal']['id']}" in edit
    token = re.search(r'name="csrf_token" value="([^"]+)"', edit)
    version = re.search(r'name="version" value="(\d+)"', edit)
    assert token is not None and version is not None
    saved = client.post(
        f"/app/activity/{activity}/edit",
        data={"csrf_token": token.group(1), "version": version.group(1), "kind": "call",
              "subject": "Asked again", "account": str(made["account"]["id"]),
              "occurred_at": "2026-03-02T09:30"},
    )  # fmt: skip
    assert saved.status_code == 302, saved.get_data(as_text=True)[:500]
    stored = records.get(actor_of(app, "root"), "activity", activity)
    assert stored["subject"] == "Asked again"
    assert stored["opportunity"] == made["deal"]["id"]  # kept
