"""Jobs, automations and notifications without Redis (the embedded mode: the outbox runs
in the web process after each request), on SQLite and PostgreSQL: event automations in
the change's transaction and as jobs, a rolled-back change enqueuing nothing, retries and
failed jobs, scheduled automations run twice = once, their preview, reminders with the
clock moved, the notifications API, email through a local SMTP server, and webhooks."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.server
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import heddle_test_jobs  # noqa: F401  (registers the bump job)
import pytest
import sqlalchemy as sa
import time_machine
from flask import Flask
from jobs_package import PACKAGE, PEOPLE
from smtp_support import Mailbox, smtp_server

from engine import Actor
from engine.tables import MARK_TABLE, NOTIFICATION_TABLE, OUTBOX_TABLE
from workflows import JobQueue
from workflows import automations as autos

Call = Callable[..., tuple[int, Any]]


@pytest.fixture
def app(app_factory: Callable[..., Flask]) -> Flask:
    made = app_factory(PACKAGE, PEOPLE)
    runtime = made.extensions["heddle"]
    with runtime.engine.begin() as conn:
        users = runtime.accounts.users
        conn.execute(
            users.update()
            .where(users.c.username == "mia")
            .values(email="mia@example.com", locale="zh")
        )
    return made


def _queue(app: Flask) -> JobQueue:
    found: JobQueue = app.extensions["heddle_jobs"]
    return found


def _rows(app: Flask, table: str, **where: Any) -> list[dict[str, Any]]:
    runtime = app.extensions["heddle"]
    t = runtime.tables.metadata.tables[table]
    query = (
        sa.select(t)
        .where(*(t.c[k] == v for k, v in where.items()))
        .order_by(t.c[t.primary_key.columns.keys()[0]])
    )
    with runtime.engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def _user_id(app: Flask, username: str) -> int:
    return int(_rows(app, "heddle_user", username=username)[0]["id"])


def _contract(call: Call, user: str = "ann", **values: Any) -> dict[str, Any]:
    status, body = call(user, "POST", "/records/contract", {"title": "Acme support", **values})
    assert status == 201, body
    return dict(body["data"])


def _patch(call: Call, record_id: int, user: str = "ann", **values: Any) -> tuple[int, Any]:
    version = call(user, "GET", f"/records/contract/{record_id}")[1]["data"]["version"]
    return call(user, "PATCH", f"/records/contract/{record_id}", {"version": version, **values})


def test_event_automations_run_in_the_change_and_as_jobs(app: Flask, call: Call) -> None:
    deal = _contract(call)
    # count_new is async: its bump job ran after the request committed
    status, body = call("ann", "GET", f"/records/contract/{deal['id']}")
    assert body["data"]["hits"] == 1
    (job,) = _rows(app, OUTBOX_TABLE, job="bump")
    assert job["status"] == "done" and job["attempts"] == 1
    assert job["key"].startswith(f"automation:count_new:{deal['id']}:") or job["key"]
    # a condition that does not hold: nothing
    quiet = _contract(call, title="quiet")
    assert call("ann", "GET", f"/records/contract/{quiet['id']}")[1]["data"]["hits"] == 0

    # gold_on_activate: only on a change of status, only when it becomes active
    status, body = _patch(call, deal["id"], title="Acme support 2")
    assert status == 200 and body["data"]["tier"] is None
    status, body = _patch(call, deal["id"], status="active")
    assert status == 200, body
    assert body["data"]["tier"] == "gold"  # set in the same transaction
    (note,) = _rows(app, NOTIFICATION_TABLE, user_id=_user_id(app, "mia"))
    assert note["subject"] == "合同已生效"  # in mia's language
    assert note["entity"] == "contract" and note["record_id"] == deal["id"]
    assert note["source"] == "gold_on_activate"


def test_a_deleted_record_notifies_with_the_default_message(app: Flask, call: Call) -> None:
    deal = _contract(call, title="quiet")
    status, _ = call("ann", "DELETE", f"/records/contract/{deal['id']}?version=1")
    assert status == 204
    (note,) = _rows(app, NOTIFICATION_TABLE, user_id=_user_id(app, "ann"))
    assert note["subject"] == "Contract “quiet” needs your attention"
    assert note["source"] == "farewell" and note["record_id"] == deal["id"]


def test_the_jobs_and_automation_commands(
    app: Flask, call: Call, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner
    from heddle.cli import main

    runtime = app.extensions["heddle"]
    for name, value in {
        "HEDDLE_DATABASE_URL": runtime.engine.url.render_as_string(hide_password=False),
        "HEDDLE_PACKAGES": str(app.config["PACKAGES"]),
        "HEDDLE_PLUGINS": "heddle_test_jobs",
        "HEDDLE_REDIS_URL": "",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HEDDLE_TEST_FAIL", "1")
    deal = _contract(call)
    for _ in range(2):
        _due_now(app)
        _queue(app).run_due()
    runner = CliRunner()
    result = runner.invoke(main, ["jobs"])
    assert result.exit_code == 0, result.output
    (job,) = _rows(app, OUTBOX_TABLE, job="bump")
    assert f"{job['id']}   bump  failed  3/3" in result.output
    assert "RuntimeError: bump failed on purpose" in result.output
    assert "1 failed" in result.output.splitlines()[-1]
    monkeypatch.delenv("HEDDLE_TEST_FAIL")
    result = runner.invoke(main, ["jobs", "retry", str(job["id"])])
    assert result.exit_code == 0 and "1 job to retry" in result.output, result.output
    assert _rows(app, OUTBOX_TABLE, job="bump")[0]["status"] == "done"  # run here: no Redis
    assert call("ann", "GET", f"/records/contract/{deal['id']}")[1]["data"]["hits"] == 1
    result = runner.invoke(main, ["jobs", "retry", "999"])
    assert result.exit_code == 1 and "named no failed job" in result.output
    assert runner.invoke(main, ["jobs", "retry"]).exit_code == 2

    _patch(call, deal["id"], end_date=str(dt.date.today() - dt.timedelta(days=2)), status="active")
    result = runner.invoke(main, ["automation", "preview", "nudge"])
    assert result.exit_code == 0, result.output
    assert f"{deal['id']}\tAcme support\t" in result.output
    assert "1 contract: nudge would act on it at" in result.output
    first = runner.invoke(main, ["automation", "run", "nudge"])
    again = runner.invoke(main, ["automation", "run", "nudge"])
    assert ": 1 acted on, 0 done before, 0 failed" in first.output, first.output
    assert ": 0 acted on, 1 done before, 0 failed" in again.output, again.output
    wrong = runner.invoke(main, ["automation", "preview", "gold_on_activate"])
    assert wrong.exit_code == 2 and "runs on record events" in wrong.output
    wrong = runner.invoke(main, ["automation", "preview", "nudg"])
    assert wrong.exit_code == 2 and "did you mean 'nudge'" in wrong.output
    tick = runner.invoke(main, ["automation", "tick", "--at", "2030-06-01T07:00"])
    # 07:00: all three automations, and the approvals' reminders and escalations
    assert tick.exit_code == 0 and "4 jobs due" in tick.output, tick.output
    listing = runner.invoke(main, ["automation", "list"])
    assert "nudge" in listing.output and "0 7 * * *" in listing.output


def test_a_rolled_back_change_enqueues_nothing(app: Flask) -> None:
    runtime = app.extensions["heddle"]
    ann = Actor(user_id=_user_id(app, "ann"), roles=frozenset({"rep"}))
    with (
        pytest.raises(RuntimeError, match="changed my mind"),
        runtime.records.transaction() as conn,
    ):
        runtime.records.create(ann, "contract", {"title": "Gone"}, conn=conn)
        assert _count(conn, runtime, OUTBOX_TABLE) == 1  # written, in the transaction
        raise RuntimeError("changed my mind")
    assert _rows(app, OUTBOX_TABLE) == []
    assert _queue(app).flush() == 0


def _count(conn: sa.Connection, runtime: Any, table: str) -> int:
    t = runtime.tables.metadata.tables[table]
    return int(conn.scalar(sa.select(sa.func.count()).select_from(t)) or 0)


def test_a_failing_job_is_retried_with_backoff_then_kept_failed(
    app: Flask, call: Call, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEDDLE_TEST_FAIL", "1")
    deal = _contract(call)
    (job,) = _rows(app, OUTBOX_TABLE, job="bump")
    assert job["status"] == "pending" and job["attempts"] == 1
    assert "bump failed on purpose" in job["error"]
    assert job["run_after"] > dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)  # backoff
    queue = _queue(app)
    assert queue.run_due() == 0  # not due yet
    for _attempt in (2, 3):
        _due_now(app)
        assert queue.run_due() == 1
    (job,) = _rows(app, OUTBOX_TABLE, job="bump")
    assert job["status"] == "failed" and job["attempts"] == 3
    assert [r["id"] for r in queue.listing("failed")] == [job["id"]]
    # the job's writes were rolled back with each failed attempt
    assert call("ann", "GET", f"/records/contract/{deal['id']}")[1]["data"]["hits"] == 0
    monkeypatch.delenv("HEDDLE_TEST_FAIL")
    assert queue.retry([job["id"]]) == 1
    assert queue.run_due() == 1
    assert call("ann", "GET", f"/records/contract/{deal['id']}")[1]["data"]["hits"] == 1
    assert _rows(app, OUTBOX_TABLE, job="bump")[0]["status"] == "done"


def _due_now(app: Flask) -> None:
    runtime = app.extensions["heddle"]
    t = runtime.tables.metadata.tables[OUTBOX_TABLE]
    with runtime.engine.begin() as conn:
        conn.execute(t.update().values(run_after=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))


def test_a_scheduled_automation_run_twice_acts_once(app: Flask, call: Call) -> None:
    records = app.extensions["heddle"].records
    nudge = records.model.automations["nudge"]
    today = dt.date.today()
    ids = []
    for days in (1, 5, 40):
        deal = _contract(call, title=f"Old {days}", end_date=str(today - dt.timedelta(days=days)))
        ids.append(deal["id"])
        _patch(call, deal["id"], status="active")
    _contract(call, title="Future", end_date=str(today + dt.timedelta(days=3)))

    found = autos.preview(records, nudge)
    assert [m.id for m in found.records] == ids and found.total == 3
    assert "status = active" in found.records[0].reason and "end_date" in found.records[0].reason
    assert found.summary.startswith("3 contract records: nudge would act on them at ")

    first = autos.run(records, nudge)  # batches of 2
    assert (first.matched, first.acted, first.skipped, first.failed) == (3, 3, 0, 0)
    again = autos.run(records, nudge)
    assert (again.acted, again.skipped) == (0, 3)
    hits = {r["id"]: r["hits"] for r in _rows(app, "contract") if r["id"] in ids}
    assert hits == dict.fromkeys(ids, 11)  # 1 from count_new, 10 once from nudge
    assert autos.preview(records, nudge).total == 0  # done in this slot
    tomorrow = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    assert autos.preview(records, nudge, at=tomorrow).total == 3  # the next slot acts again
    assert len(_rows(app, MARK_TABLE, automation="nudge")) == 3


def test_the_preview_endpoint_is_for_admins(app: Flask, call: Call, error_of: Any) -> None:
    _contract(call, end_date="2026-07-01")
    status, body = call("root", "GET", "/automations/expiry/preview?at=2026-06-01T08:00")
    assert status == 200, body
    assert body["data"]["count"] == 0  # the contract is a draft: the condition wants active
    status, body = call("ann", "GET", "/automations/expiry/preview")
    assert status == 403 and error_of_code(body) == "forbidden"
    assert call("root", "GET", "/automations/nope/preview")[0] == 404
    assert call("root", "GET", "/automations/gold_on_activate/preview")[0] == 404
    status, body = call("root", "GET", "/automations/expiry/preview?at=tomorrow")
    assert status == 400 and "at" in body["error"]["fields"]


def error_of_code(body: Any) -> str:
    return str(body["error"]["code"])


def test_reminders_fire_on_their_day_with_the_clock_moved(app: Flask, call: Call) -> None:
    queue = _queue(app)
    deal = _contract(call, end_date="2026-07-01")
    _patch(call, deal["id"], status="active")
    for name, birthday in (
        ("Li Lei", "1990-03-05"),
        ("Leap", "2000-02-29"),
        ("Other", "1985-03-06"),
    ):
        status, body = call("ann", "POST", "/records/person", {"name": name, "birthday": birthday})
        assert status == 201, body
    ann = _user_id(app, "ann")
    records = app.extensions["heddle"].records
    expiry, birthday = records.model.automations["expiry"], records.model.automations["birthday"]

    day_before = dt.datetime(2026, 5, 31, 8, 0).astimezone()
    assert autos.preview(records, expiry, at=day_before).total == 0
    with time_machine.travel(dt.datetime(2026, 6, 1, 7, 0, 20).astimezone(), tick=False):
        found = autos.preview(records, expiry)
        assert [m.reason for m in found.records] == [
            "end_date is 2026-07-01: 30 days before it; status == 'active' (status = active)"
        ]
        assert autos.enqueue_due(queue, dt.datetime.now(dt.UTC)) == 3  # expiry, birthday, nudge
    notes = [n["subject"] for n in _rows(app, NOTIFICATION_TABLE, user_id=ann)]
    assert notes == ["Contract expires in 30 days"]
    with time_machine.travel(dt.datetime(2026, 6, 1, 7, 0, 40).astimezone(), tick=False):
        assert autos.enqueue_due(queue, dt.datetime.now(dt.UTC)) == 3  # the same minute
    assert len(_rows(app, NOTIFICATION_TABLE, user_id=ann)) == 1  # once

    with time_machine.travel(dt.datetime(2027, 3, 5, 7, 0).astimezone(), tick=False):
        autos.enqueue_due(queue, dt.datetime.now(dt.UTC))
    with time_machine.travel(dt.datetime(2027, 2, 28, 7, 0).astimezone(), tick=False):
        found = autos.preview(records, birthday)
        assert [m.title for m in found.records] == ["Leap"]  # 29 February, in a common year
        assert "every year on 02-28" in found.records[0].reason
    texts = [n["body"] for n in _rows(app, NOTIFICATION_TABLE, user_id=ann)]
    assert texts == ["Acme support", "Li Lei"]


def test_a_reminder_finds_its_records_through_the_index(app: Flask, call: Call) -> None:
    call("ann", "POST", "/records/person", {"name": "Old", "birthday": "1931-05-02"})
    runtime = app.extensions["heddle"]
    records = runtime.records
    for name in ("expiry", "birthday"):
        automation = records.model.automations[name]
        with runtime.engine.connect() as conn:
            source, conditions = autos._where(
                records,
                conn,
                automation,
                dt.date(2026, 6, 1),
                autos._context(dt.datetime.now(dt.UTC)),
            )
            table = records.tables.table(automation.entity)
            query = sa.select(table.c.id).select_from(source).where(*conditions)
            compiled = query.compile(runtime.engine, compile_kwargs={"render_postcompile": True})
            if runtime.engine.dialect.name == "sqlite":
                params: Any = tuple(compiled.params[k] for k in compiled.positiontup or ())
                plan_sql = "EXPLAIN QUERY PLAN " + str(compiled)
            else:
                # tiny tables: ask for the plan the index allows (for this transaction)
                conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
                params, plan_sql = compiled.params, "EXPLAIN " + str(compiled)
            plan = " ".join(str(r) for r in conn.exec_driver_sql(plan_sql, params))
        column = automation.trigger["date_field"]
        assert "index" in plan.lower() and column in plan, plan


# notifications ----------------------------------------------------------------------------


def test_the_notifications_api(app: Flask, call: Call, error_of: Any) -> None:
    for n in range(3):
        deal = _contract(call, title=f"C{n}")
        _patch(call, deal["id"], status="active")
    status, body = call("mia", "GET", "/notifications")
    assert status == 200 and body["unread"] == 3
    assert [n["body"] for n in body["data"]] == ["C2", "C1", "C0"]
    first = body["data"][0]
    assert first["read_at"] is None and first["entity"] == "contract"
    status, body = call("mia", "POST", f"/notifications/{first['id']}/read")
    assert status == 200 and body == {"data": {"id": first["id"], "read": True}, "unread": 2}
    assert call("mia", "GET", "/notifications?unread=true")[1]["data"][0]["body"] == "C1"
    assert len(call("mia", "GET", "/notifications?limit=1")[1]["data"]) == 1
    # someone else's notification does not exist for ann
    status, body = call("ann", "POST", f"/notifications/{first['id']}/read")
    assert status == 404 and error_of_code(body) == "not_found"
    assert call("ann", "GET", "/notifications")[1] == {"data": [], "unread": 0}
    assert call("mia", "GET", "/notifications?limit=0")[0] == 400
    assert call("mia", "GET", "/notifications?before=x")[0] == 400
    status, body = call("mia", "POST", "/notifications/read-all")
    assert status == 200 and body == {"data": {"marked": 2}, "unread": 0}


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    with smtp_server() as found:
        yield found


def test_a_notification_is_emailed_in_the_recipients_language(
    app: Flask, call: Call, smtp: tuple[Mailbox, int]
) -> None:
    inbox, port = smtp
    queue = _queue(app)
    queue.mailer = type(queue.mailer)(host="127.0.0.1", port=port, sender="crm@example.com")
    queue.options = {**queue.options, "base_url": "https://crm.example.com"}
    deal = _contract(call)
    _patch(call, deal["id"], status="active")
    (envelope,) = inbox.messages
    assert envelope.mail_from == "crm@example.com" and envelope.rcpt_tos == ["mia@example.com"]
    import email

    message = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert message["Subject"] == "【Heddle】合同已生效"
    text = message.get_content()
    assert "mia，您好" in text and "Acme support" in text
    assert f"https://crm.example.com/app/contract/{deal['id']}" in text
    assert _rows(app, OUTBOX_TABLE, job="email")[0]["status"] == "done"


# webhooks ---------------------------------------------------------------------------------


def test_a_webhook_is_signed_and_retried(app_factory: Callable[..., Flask]) -> None:
    """An async transition automation: its job writes the webhook's job, which is
    refused once (503), then delivered with the same body, key and signature."""
    received: list[tuple[bytes, dict[str, str]]] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((body, dict(self.headers)))
            self.send_response(503 if len(received) == 1 else 204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        app = app_factory(_webhook_package(port), PEOPLE)
        call = _caller(app)
        deal = _contract(call)
        status, body = call(
            "ann",
            "POST",
            f"/records/contract/{deal['id']}/transitions/activate",
            {"version": deal["version"]},
        )
        assert status == 200, body
        (job,) = _rows(app, OUTBOX_TABLE, job="webhook")
        assert job["status"] == "pending" and "503" in job["error"]  # first try refused
        _due_now(app)
        assert _queue(app).run_due() == 1
        assert _rows(app, OUTBOX_TABLE, job="webhook")[0]["status"] == "done"
    finally:
        server.shutdown()
        server.server_close()
    (first, headers1), (second, headers2) = received
    assert first == second
    payload = json.loads(second)
    assert payload["entity"] == "contract" and payload["id"] == deal["id"]
    assert payload["transition"]["name"] == "activate" and payload["record"]["status"] == "active"
    digest = hmac.new(b"s3cret", second, hashlib.sha256).hexdigest()
    assert headers2["X-Heddle-Signature"] == f"sha256={digest}"
    assert headers1["X-Heddle-Delivery"] == headers2["X-Heddle-Delivery"] == job["key"]
    assert headers2["X-Heddle-Attempt"] == "2"


def _webhook_package(port: int) -> str:
    return (
        PACKAGE
        + f"""\
---
kind: workflow
name: contract_flow
entity: contract
field: status
states:
  - {{name: draft, initial: true}}
  - {{name: active}}
  - {{name: ended, final: true}}
transitions:
  - {{name: activate, from: draft, to: active}}
  - {{name: end, from: active, to: ended}}
---
kind: automation
name: tell_erp
entity: contract
trigger: {{event: transition, transitions: [activate]}}
async: true
actions: [{{type: webhook, url: "http://127.0.0.1:{port}/hook", secret: s3cret}}]
"""
    )


def _caller(app: Flask) -> Call:
    client = app.test_client()
    tokens: dict[str, str] = {}

    def run(user: str, method: str, path: str, json: Any = None) -> tuple[int, Any]:
        if user not in tokens:
            response = client.post(
                "/api/v1/auth/token", json={"username": user, "password": "correct horse battery"}
            )
            tokens[user] = response.json["token"]
        response = client.open(
            f"/api/v1{path}",
            method=method,
            json=json,
            headers={"Authorization": f"Bearer {tokens[user]}"},
        )
        return response.status_code, response.json

    return run
