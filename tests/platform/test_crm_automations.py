"""The CRM's recycle rules and reminders with the clock moved: an idle account returns to
the public pool by its pool's rule (warned three days before, previewed with the reason),
a contract's expiry and a contact's birthday remind the owner
(apps/crm_definitions/automations/)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import time_machine
from crm_support import crm_app
from flask import Flask
from sqlalchemy.engine import Engine

from engine import SYSTEM
from engine.tables import NOTIFICATION_TABLE
from workflows import automations as autos
from workflows import recycling

USERS = [
    ("root", ["admin"], None, None),
    ("mia", ["sales_manager"], "East", None),
    ("ann", ["sales_rep"], "East", "mia"),
]
Call = Callable[..., tuple[int, Any]]


@pytest.fixture
def app(db_url: str, db_engine: Engine, tmp_path: Path) -> Iterator[Flask]:
    app = crm_app(db_url, tmp_path, USERS)
    runtime = app.extensions["heddle"]
    yield app
    runtime.engine.dispose()


def _at(day: dt.date, hour: int = 6) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, 0, 5)).astimezone()


def _notes(app: Flask, username: str) -> list[str]:
    runtime = app.extensions["heddle"]
    notes = runtime.tables.metadata.tables[NOTIFICATION_TABLE]
    users = runtime.accounts.users
    query = (
        sa.select(notes.c.subject)
        .join(users, users.c.id == notes.c.user_id)
        .where(users.c.username == username)
        .order_by(notes.c.id)
    )
    with runtime.engine.connect() as conn:
        return list(conn.scalars(query))


def test_the_crms_automations(app: Flask, call: Call) -> None:
    runtime = app.extensions["heddle"]
    records, queue = runtime.records, app.extensions["heddle_jobs"]
    start = dt.date.today()
    status, body = call("ann", "POST", "/records/account", {"name": "Idle Ltd"})
    assert status == 201, body
    idle = body["data"]
    status, body = call("ann", "POST", "/records/account", {"name": "Busy Ltd"})
    busy = body["data"]
    status, body = call("ann", "POST", "/records/account", {"name": "Locked Ltd", "locked": True})
    assert status == 201, body
    locked = body["data"]
    with records.transaction() as conn:  # followed up: Idle Ltd on day 0, Busy Ltd on day 10
        for account, day, hour in ((idle, 0, 5), (busy, 10, 6)):
            records.update(
                SYSTEM,
                "account",
                account["id"],
                {"last_activity_at": _at(start + dt.timedelta(days=day), hour).isoformat()},
                version=None,
                conn=conn,
                trusted=True,
            )
    # the East team's pool: its rule returns the accounts of its reps nobody followed up
    # for 30 days (from the later of the last activity and the claim), warning 3 days before
    status, body = call("root", "POST", "/records/pool", {"name": "East pool",
                        "member_teams": [idle["team_id"]], "daily_claim_limit": 5,
                        "rules": [{"condition": "no_follow_up", "days": 30, "warn_days": 3},
                                  {"condition": "no_opportunity", "days": 90}]})  # fmt: skip
    assert status == 201, body
    east_pool = body["data"]["id"]

    # day 27: the owner is warned; the preview says who returns on day 30, and why
    with time_machine.travel(_at(start + dt.timedelta(days=27)), tick=False):
        assert recycling.enqueue_due(queue, dt.datetime.now(dt.UTC)) == 1
    assert _notes(app, "ann") == [
        f"Account “Idle Ltd” returns to the public pool East pool on "
        f"{start + dt.timedelta(days=30)}: No follow-up for 30 days"
    ]
    found = recycling.preview(records, at=_at(start + dt.timedelta(days=30)))
    (due,) = found.by_pool[("account", east_pool)]
    assert due.title == "Idle Ltd" and due.rule.kind == "no_follow_up"
    assert "No follow-up for 30 days (rule " in due.reason() and due.reason().endswith(", 30 days")

    # day 30: it returns to the pool; the owner is told, and kept as previous owner
    with time_machine.travel(_at(start + dt.timedelta(days=30)), tick=False):
        recycling.enqueue_due(queue, dt.datetime.now(dt.UTC))
        recycling.enqueue_due(queue, dt.datetime.now(dt.UTC))  # a second tick: no second run
    status, body = call("root", "GET", f"/records/account/{idle['id']}")
    ann_id = idle["owner_id"]
    assert body["data"]["owner_id"] is None and body["data"]["previous_owner"] == ann_id
    assert body["data"]["pooled_at"] is not None and body["data"]["pool"] == east_pool
    # ann is a member of that pool: she sees the account there, but claims it back only
    # after the pool's cooldown (30 days by default)
    status, body = call("ann", "GET", f"/records/account/{idle['id']}")
    assert status == 200 and body["data"]["name"] == "Idle Ltd"
    with time_machine.travel(_at(start + dt.timedelta(days=31)), tick=False):
        status, body = call("ann", "POST", f"/records/account/{idle['id']}/claim")
    assert status == 409 and body["error"]["details"]["reason"] == "cooldown", body
    assert _notes(app, "ann")[1:] == [
        "Account “Idle Ltd” returned to the public pool East pool: No follow-up for 30 days"
    ]
    # the locked account stays, as does the one followed up on day 10
    assert call("root", "GET", f"/records/account/{locked['id']}")[1]["data"]["owner_id"] == ann_id
    assert call("root", "GET", f"/records/account/{busy['id']}")[1]["data"]["owner_id"] == ann_id

    # reminders: a contract 30 days before its end, a contact on their birthday
    status, body = call(
        "ann",
        "POST",
        "/records/contact",
        {
            "name": "Li Lei",
            "account": busy["id"],
            "birthday": "1990-03-05",
            "mobile": "13800000000",
        },
    )
    assert status == 201, body
    end = start + dt.timedelta(days=60)
    status, body = call(
        "ann",
        "POST",
        "/records/contract",
        {"title": "Support", "account": busy["id"], "end_date": end.isoformat(), "amount": "1000"},
    )
    assert status == 201, body
    with records.transaction() as conn:  # approved (by the approval workflow, elsewhere)
        records.update(
            SYSTEM,
            "contract",
            body["data"]["id"],
            {"status": "active"},
            version=None,
            conn=conn,
            trusted=True,
        )
    expiry = records.model.automations["contract_expiry_reminder"]
    birthday = records.model.automations["contact_birthday_reminder"]
    assert autos.preview(records, expiry, at=_at(end - dt.timedelta(days=31), 7)).total == 0
    (match,) = autos.preview(records, expiry, at=_at(end - dt.timedelta(days=30), 7)).records
    assert match.reason.startswith(f"end_date is {end.isoformat()}: 30 days before it")
    with time_machine.travel(_at(end - dt.timedelta(days=30), 7), tick=False):
        autos.enqueue_due(queue, dt.datetime.now(dt.UTC))
    assert _notes(app, "ann")[-1] == "This contract expires in 30 days"
    next_birthday = dt.date(start.year + 1, 3, 5)
    assert [
        m.title for m in autos.preview(records, birthday, at=_at(next_birthday, 7)).records
    ] == ["Li Lei"]
