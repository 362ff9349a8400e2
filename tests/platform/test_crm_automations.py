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
from click.testing import CliRunner
from crm_support import crm_app
from flask import Flask
from heddle.cli import main
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


def test_heddle_pool_previews_and_runs_the_rules(
    app: Flask, call: Call, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = app.extensions["heddle"]
    for name, value in {
        "HEDDLE_DATABASE_URL": runtime.engine.url.render_as_string(hide_password=False),
        "HEDDLE_PACKAGES": str(app.config["PACKAGES"]),
        "HEDDLE_REDIS_URL": "",
    }.items():
        monkeypatch.setenv(name, value)
    status, body = call("ann", "POST", "/records/account", {"name": "Idle Ltd", "grade": "C"})
    idle = body["data"]
    call("ann", "POST", "/records/account", {"name": "Key Ltd", "grade": "A"})
    status, body = call("root", "POST", "/records/pool", {"name": "East pool",
                        "member_teams": [idle["team_id"]],
                        "rules": [{"condition": "no_follow_up", "grade": "C", "days": 20},
                                  {"condition": "no_follow_up", "grade": "A", "days": 90}]})  # fmt: skip
    assert status == 201, body
    day = dt.date.today() + dt.timedelta(days=21)
    runner = CliRunner()

    result = runner.invoke(main, ["pool", "preview", "--at", f"{day}T06:00"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"1 account returns to the pool East pool at {day} 06:00, and why:"
    assert lines[1].startswith(f"  {idle['id']}\tIdle Ltd\tNo follow-up for 20 days (rule ")
    assert "grade = C): since " in lines[1] and lines[1].endswith(", 20 days")
    assert "no records return" in runner.invoke(main, ["pool", "preview"]).output  # tomorrow
    wrong = runner.invoke(main, ["pool", "preview", "--at", "someday"])
    assert wrong.exit_code == 2 and "is not a date or date-time" in wrong.output

    first = runner.invoke(main, ["pool", "run", "--at", f"{day}T06:00"])
    again = runner.invoke(main, ["pool", "run", "--at", f"{day}T07:00"])
    assert first.output == "account: 1 returned, 0 owners warned, 0 failed\n", first.output
    assert again.output == "account: 0 returned, 0 owners warned, 0 failed\n", again.output
    status, body = call("root", "GET", f"/records/account/{idle['id']}")
    assert body["data"]["owner_id"] is None and body["data"]["pool"] is not None
