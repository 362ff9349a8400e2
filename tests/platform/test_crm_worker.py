"""The CRM's contract approval with real Redis, a real ``heddle worker`` process and a
local SMTP server, on SQLite and PostgreSQL.

A rep submits a contract of 150,000 (two steps: her manager, then finance). Nobody
decides for more than ``escalate_after`` (3 days: the test ages the waiting task rather
than wait): the scheduler's minute, run by the worker, reminds the manager and escalates
to the manager's own manager, who hears it in the inbox and by email. The escalated
manager approves, finance approves, and the contract is approved then put in force;
every job the flow wrote ends done, none failed. And a manager away on leave: her
stand-in hears of her approvals by email from the worker and decides on her behalf.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from crm_support import crm_app
from flask import Flask
from smtp_support import Mailbox, smtp_server
from worker_process import spawn_worker, stop_worker

from engine.approval_tables import APPROVAL_STEP_TABLE, APPROVAL_TASK_TABLE
from engine.tables import NOTIFICATION_TABLE, OUTBOX_TABLE

Call = Callable[..., tuple[int, Any]]
# username, roles, team, manager
USERS = [
    ("max", ["sales_manager"], "Sales", None),
    ("mia", ["sales_manager"], "East", "max"),
    ("ann", ["sales_rep"], "East", "mia"),
    ("fay", ["finance"], "Finance", None),
]


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    with smtp_server() as found:
        yield found


@pytest.fixture
def app(db_url: str, redis: Any, redis_url: str, tmp_path: Path) -> Iterator[Flask]:
    made = crm_app(db_url, tmp_path, USERS)
    runtime = made.extensions["heddle"]
    users = runtime.accounts.users
    with runtime.engine.begin() as conn:
        for username, *_ in USERS:
            conn.execute(
                users.update()
                .where(users.c.username == username)
                .values(email=f"{username}@example.com")
            )
    made.extensions["heddle_jobs"].redis_url = redis_url
    yield made
    runtime.tables.metadata.drop_all(runtime.engine)
    runtime.engine.dispose()


@pytest.fixture
def worker(
    app: Flask, redis_url: str, smtp: tuple[Mailbox, int], tmp_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """``heddle worker`` on the app's database, Redis and the test's SMTP server."""
    log = tmp_path / "worker.log"
    process = spawn_worker(app, redis_url, log, HEDDLE_SMTP_HOST="127.0.0.1",
                           HEDDLE_SMTP_PORT=str(smtp[1]), HEDDLE_SMTP_FROM="crm@example.com")  # fmt: skip
    yield process
    stop_worker(process)
    print(log.read_text(encoding="utf-8", errors="replace")[-4000:])  # shown on failure


def _wait(condition: Callable[[], Any], what: str, seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"waited {seconds}s for {what}")


def _rows(app: Flask, table: str, **where: Any) -> list[dict[str, Any]]:
    runtime = app.extensions["heddle"]
    t = runtime.tables.metadata.tables[table]
    query = sa.select(t).where(*(t.c[k] == v for k, v in where.items())).order_by(t.c.id)
    with runtime.engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def _id(app: Flask, username: str) -> int:
    runtime = app.extensions["heddle"]
    users = runtime.accounts.users
    with runtime.engine.connect() as conn:
        return int(conn.scalar(sa.select(users.c.id).where(users.c.username == username)))


def _pending(call: Call, user: str, record_id: int) -> list[dict[str, Any]]:
    status, body = call(user, "GET", "/approvals?status=pending")
    assert status == 200, body
    return [a for a in body["data"] if (a["entity"], a["record_id"]) == ("contract", record_id)]


def _current_step(approval: dict[str, Any]) -> str | None:
    return next((s["name"] for s in approval["steps"] if s["status"] == "pending"), None)


def _ok(status: int, body: Any, expected: int = 200) -> dict[str, Any]:
    assert status == expected, body
    return dict(body["data"])


def test_an_unanswered_contract_approval_is_escalated_by_the_worker(
    app: Flask, call: Call, worker: subprocess.Popen[bytes], smtp: tuple[Mailbox, int]
) -> None:
    from workflows import JobQueue
    from workflows.worker import scheduler, tick

    mailbox, _port = smtp
    runtime = app.extensions["heddle"]
    account = _ok(*call("ann", "POST", "/records/account", {"name": "Lotus Textiles"}), 201)
    contract = _ok(
        *call(
            "ann",
            "POST",
            "/records/contract",
            {
                "title": "Three-year supply",
                "account": account["id"],
                "amount": "150000",
                "end_date": (dt.date.today() + dt.timedelta(days=1095)).isoformat(),
            },
        ),
        201,
    )
    path = f"/records/contract/{contract['id']}/transitions/submit"
    contract = _ok(*call("ann", "POST", path, {"version": contract["version"]}))
    assert contract["status"] == "pending_approval"
    (approval,) = _pending(call, "mia", contract["id"])
    assert _current_step(approval) == "manager" and approval["waiting_for"] == [_id(app, "mia")]

    # the manager's request to approve is an email the worker sends
    _wait(
        lambda: [m for m in mailbox.messages if m.rcpt_tos == ["mia@example.com"]],
        "the approval request's email to mia",
    )

    # nobody decides for three days and an hour (the task is aged, not waited for)
    aged = dt.datetime.now(dt.UTC) - dt.timedelta(days=3, hours=1)
    tasks = runtime.tables.metadata.tables[APPROVAL_TASK_TABLE]
    steps = runtime.tables.metadata.tables[APPROVAL_STEP_TABLE]
    with runtime.engine.begin() as conn:
        conn.execute(
            tasks.update().where(tasks.c.approval_id == approval["id"]).values(created_at=aged)
        )
        conn.execute(
            steps.update().where(steps.c.approval_id == approval["id"]).values(started_at=aged)
        )

    # what `heddle scheduler` does at the top of a minute: enqueue the tick for the worker
    queue = JobQueue(
        runtime.engine, lambda: runtime.records, redis_url=app.extensions["heddle_jobs"].redis_url
    )
    (entry,) = scheduler(queue).get_jobs()
    assert entry.func is tick
    client = queue.redis()
    entry.enqueue(client)
    client.close()

    ids = {name: _id(app, name) for name, *_ in USERS}
    escalated = _wait(
        lambda: _rows(app, NOTIFICATION_TABLE, user_id=ids["max"], source="approval:escalated"),
        "the escalation notice to max",
    )
    assert "Three-year supply" in escalated[0]["subject"] + escalated[0]["body"]
    reminded = _rows(app, NOTIFICATION_TABLE, user_id=ids["mia"], source="approval:reminder")
    assert len(reminded) == 1
    to_max = _wait(
        lambda: [m for m in mailbox.messages if m.rcpt_tos == ["max@example.com"]],
        "the escalation email to max",
    )
    message = email.message_from_bytes(to_max[0].content, policy=email.policy.default)
    assert "Three-year supply" in str(message["Subject"]) + message.get_content()
    # the same minute checked again: nothing is sent twice
    client = queue.redis()
    entry.enqueue(client)
    client.close()
    _wait(lambda: len(_rows(app, OUTBOX_TABLE, job="approval_timers")) >= 1, "the timers job")
    _wait(lambda: all(j["status"] == "done" for j in _rows(app, OUTBOX_TABLE)), "every job")
    assert len(_rows(app, NOTIFICATION_TABLE, user_id=ids["max"], source="approval:escalated")) == 1

    # the escalated manager decides; then finance (150,000 ≥ 100,000)
    assert [a["id"] for a in _pending(call, "max", contract["id"])] == [approval["id"]]
    assert _pending(call, "mia", contract["id"])[0]["waiting_for"] == [ids["max"], ids["mia"]]
    decided = _ok(
        *call(
            "max",
            "POST",
            f"/approvals/{approval['id']}/approve",
            {"comment": "mia is away: approved"},
        )
    )
    assert decided["status"] == "pending" and _current_step(decided) == "finance"
    decided = _ok(*call("fay", "POST", f"/approvals/{approval['id']}/approve", {}))
    assert decided["status"] == "approved"
    contract = _ok(*call("ann", "GET", f"/records/contract/{contract['id']}"))
    assert contract["status"] == "approved"
    path = f"/records/contract/{contract['id']}/transitions/activate"
    contract = _ok(*call("ann", "POST", path, {"version": contract["version"]}))
    assert contract["status"] == "active" and contract["start_date"] == dt.date.today().isoformat()
    status, body = call("ann", "GET", f"/records/contract/{contract['id']}/approvals")
    assert status == 200, body
    events = [(e["kind"], e["step"]) for e in body["data"][0]["history"]]
    assert ("escalated", "manager") in events and ("reminder", "manager") in events
    assert events[0][0] == "submitted" and events[-1][0] == "completed"
    decisions = [e for e in body["data"][0]["history"] if e["kind"] == "approved"]
    assert [d["actor_id"] for d in decisions] == [ids["max"], ids["fay"]]

    # the submitter hears the outcome by email too; every job ends done, none failed
    _wait(
        lambda: [m for m in mailbox.messages if m.rcpt_tos == ["ann@example.com"]],
        "the outcome's email to ann",
    )
    _wait(lambda: all(j["status"] == "done" for j in _rows(app, OUTBOX_TABLE)), "every job")
    assert worker.poll() is None  # the worker is still serving


def test_a_delegate_hears_of_and_decides_the_approvals_of_an_absent_manager(
    app: Flask, call: Call, worker: subprocess.Popen[bytes], smtp: tuple[Mailbox, int]
) -> None:
    mailbox, _port = smtp
    ids = {name: _id(app, name) for name, *_ in USERS}
    today = dt.date.today()
    away = {"delegate_id": ids["max"], "starts_on": today.isoformat(),
            "ends_on": (today + dt.timedelta(days=7)).isoformat(), "note": "on leave"}  # fmt: skip
    _ok(*call("mia", "POST", "/approvals/delegations", away), 201)
    account = _ok(*call("ann", "POST", "/records/account", {"name": "Harbour Foods"}), 201)
    body = {"title": "Cold-chain service", "account": account["id"], "amount": "50000"}
    contract = _ok(*call("ann", "POST", "/records/contract", body), 201)
    path = f"/records/contract/{contract['id']}/transitions/submit"
    contract = _ok(*call("ann", "POST", path, {"version": contract["version"]}))
    (approval,) = _pending(call, "max", contract["id"])
    assert [s["name"] for s in approval["steps"]] == ["manager"]  # below 100,000: no finance

    # the request reaches the manager and her stand-in, by email from the worker
    def asked() -> set[str]:
        return {to for m in mailbox.messages for to in m.rcpt_tos}

    _wait(lambda: {"mia@example.com", "max@example.com"} <= asked(), "both request emails")
    _ok(*call("max", "POST", f"/approvals/{approval['id']}/approve", {"comment": "for mia"}))
    status, history = call("ann", "GET", f"/records/contract/{contract['id']}/approvals")
    assert status == 200, history
    (decision,) = [e for e in history["data"][0]["history"] if e["kind"] == "approved"]
    assert decision["actor_id"] == ids["max"] and decision["on_behalf_of"] == ids["mia"]
    assert _ok(*call("ann", "GET", f"/records/contract/{contract['id']}"))["status"] == "approved"
    _wait(lambda: "ann@example.com" in asked(), "the outcome's email to ann")
    _wait(lambda: all(j["status"] == "done" for j in _rows(app, OUTBOX_TABLE)), "every job")
    assert not [j for j in _rows(app, OUTBOX_TABLE) if j["attempts"] > 1]  # none retried
