"""The CRM's workflows through the REST API, refusals included: lead_lifecycle (with
conversion), opportunity_pipeline (probability, closed_date, stage_lost_at, stage
history, the account's deal status) and case_lifecycle."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from crm_support import crm_app
from flask import Flask
from sqlalchemy.engine import Engine

# username, roles, team, manager
USERS = [
    ("root", ["admin"], None, None),
    ("mia", ["sales_manager"], "East", None),
    ("ann", ["sales_rep"], "East", "mia"),
    ("mark", ["marketing"], "Marketing", None),
    ("sam", ["service_agent"], "Service", None),
]
TODAY = dt.date.today().isoformat()


@pytest.fixture
def app(db_url: str, db_engine: Engine, tmp_path: Path) -> Iterator[Flask]:
    app = crm_app(db_url, tmp_path, USERS)
    runtime = app.extensions["heddle"]
    yield app
    runtime.engine.dispose()


Call = Callable[..., tuple[int, Any]]


def create(call: Call, user: str, entity: str, **values: Any) -> dict[str, Any]:
    status, body = call(user, "POST", f"/records/{entity}", values)
    assert status == 201, body
    return dict(body["data"])


def fire(
    call: Call, user: str, entity: str, record: dict[str, Any], transition: str, **body: Any
) -> tuple[int, Any]:
    body.setdefault("version", record["version"])
    return call(user, "POST", f"/records/{entity}/{record['id']}/transitions/{transition}", body)


def moved(call: Call, user: str, entity: str, record: dict[str, Any], transition: str,
          **body: Any) -> dict[str, Any]:  # fmt: skip
    status, answer = fire(call, user, entity, record, transition, **body)
    assert status == 200, answer
    return dict(answer["data"])


def available(call: Call, user: str, entity: str, record: dict[str, Any]) -> list[str]:
    status, body = call(user, "GET", f"/records/{entity}/{record['id']}/transitions")
    assert status == 200, body
    return [t["name"] for t in body["data"]]


def test_lead_lifecycle_with_conversion(call: Call) -> None:
    lead = create(call, "ann", "lead", name="Li Lei", company="Acme Ltd", mobile="13800000000",
                  source="website", industry="retail", title="CTO")  # fmt: skip
    assert lead["status"] == "new" and lead["converted"] is False
    assert available(call, "ann", "lead", lead) == ["contact", "qualify", "disqualify"]
    status, body = call("ann", "PATCH", f"/records/lead/{lead['id']}",
                        {"status": "converted", "version": lead["version"]})  # fmt: skip
    assert status == 422 and list(body["error"]["fields"]) == ["status"]
    lead = moved(call, "ann", "lead", lead, "contact")
    lead = moved(call, "ann", "lead", lead, "qualify")
    assert available(call, "ann", "lead", lead) == ["disqualify", "convert"]
    # wrong role: marketing may update leads, but converting is for sales
    status, body = fire(call, "mark", "lead", lead, "convert")
    assert status == 403
    assert body["error"]["message"] == "only sales_rep or sales_manager may fire 'convert'"
    assert "convert" not in available(call, "mark", "lead", lead)
    lead = moved(call, "ann", "lead", lead, "convert", comment="signed the NDA")
    assert lead["status"] == "converted" and lead["converted"] is True
    assert lead["converted_at"] is not None
    _, account = call("ann", "GET", f"/records/account/{lead['converted_account']}")
    _, contact = call("ann", "GET", f"/records/contact/{lead['converted_contact']}")
    _, deal = call("ann", "GET", f"/records/opportunity/{lead['converted_opportunity']}")
    account, contact, deal = account["data"], contact["data"], deal["data"]
    assert (account["name"], account["type"], account["industry"], account["source"]) == (
        "Acme Ltd", "prospect", "retail", "website")  # fmt: skip
    assert account["owner_id"] == lead["owner_id"] == contact["owner_id"] == deal["owner_id"]
    assert (contact["name"], contact["account"], contact["title"], contact["is_primary"]) == (
        "Li Lei", account["id"], "CTO", True)  # fmt: skip
    assert (deal["name"], deal["account"], deal["stage"], deal["probability"]) == (
        "Acme Ltd", account["id"], "initial", "10.00")  # fmt: skip
    # converted is locked and final
    status, body = call("ann", "PATCH", f"/records/lead/{lead['id']}",
                        {"description": "x", "version": lead["version"]})  # fmt: skip
    assert status == 409 and body["error"]["code"] == "record_locked"
    assert available(call, "ann", "lead", lead) == []
    # a lead without a company cannot be converted: the guard
    bare = create(call, "ann", "lead", name="Han Meimei", email="han@example.com")
    bare = moved(call, "ann", "lead", bare, "qualify")
    status, body = fire(call, "ann", "lead", bare, "convert")
    assert status == 409 and body["error"]["code"] == "transition_refused"
    status, body = fire(call, "ann", "lead", bare, "disqualify")
    assert status == 422 and list(body["error"]["fields"]) == ["disqualified_reason"]
    bare = moved(call, "ann", "lead", bare, "disqualify", disqualified_reason="student")
    status, _ = fire(call, "ann", "lead", bare, "recycle", comment="try again")
    assert status == 403
    bare = moved(call, "mia", "lead", bare, "recycle", comment="new budget")
    assert (bare["status"], bare["disqualified_reason"]) == ("new", None)


def test_opportunity_pipeline(call: Call) -> None:
    account = create(call, "ann", "account", name="Beta Co")
    assert account["deal_status"] == "not_won"
    deal = create(call, "ann", "opportunity", name="ERP", account=account["id"])
    assert (deal["stage"], deal["probability"]) == ("initial", "10.00")
    assert deal["stage_changed_at"] is not None
    status, body = fire(call, "ann", "opportunity", deal, "propose")
    assert status == 422 and body["error"]["fields"] == {
        "amount": ["Missing data for required field."]
    }
    deal = moved(call, "ann", "opportunity", deal, "propose", amount="50000")
    assert (deal["stage"], deal["probability"], deal["amount"]) == ("proposal", "50.00", "50000.00")
    assert deal["probability"] == "50.00"
    deal = moved(call, "ann", "opportunity", deal, "negotiate")
    assert (deal["stage"], deal["probability"]) == ("negotiation", "70.00")
    # the probability stays editable
    status, body = call("ann", "PATCH", f"/records/opportunity/{deal['id']}",
                        {"probability": "80", "version": deal["version"]})  # fmt: skip
    assert status == 200
    deal = body["data"]
    deal = moved(call, "ann", "opportunity", deal, "win")
    assert (deal["stage"], deal["probability"], deal["closed_date"]) == ("won", "100.00", TODAY)
    _, body = call("ann", "GET", f"/records/account/{account['id']}")
    assert body["data"]["deal_status"] == "won"
    _, body = call("ann", "GET", f"/records/stage_history?opportunity={deal['id']}&sort=id")
    rows = [(r["from_stage"], r["to_stage"], r["probability"], r["amount"], r["days_in_stage"])
            for r in body["data"]]  # fmt: skip
    assert rows == [
        ("initial", "proposal", "10.00", "50000.00", 0),
        ("proposal", "negotiation", "50.00", "50000.00", 0),
        ("negotiation", "won", "80.00", "50000.00", 0),
    ]
    assert {r["changed_by"] for r in body["data"]} == {3}  # ann
    status, body = call("ann", "PATCH", f"/records/opportunity/{deal['id']}",
                        {"amount": "1", "version": deal["version"]})  # fmt: skip
    assert status == 409 and body["error"]["code"] == "record_locked"


def test_losing_needs_a_reason_and_keeps_the_stage(call: Call) -> None:
    account = create(call, "ann", "account", name="Gamma Co")
    deal = create(call, "ann", "opportunity", name="CRM", account=account["id"])
    deal = moved(call, "ann", "opportunity", deal, "analyze_needs")
    status, body = fire(call, "ann", "opportunity", deal, "lose", comment="no budget")
    assert status == 422 and body["error"]["fields"] == {
        "lost_reason": ["Missing data for required field."]
    }
    status, body = fire(call, "ann", "opportunity", deal, "lose", lost_reason="cheap")
    assert status == 422 and list(body["error"]["fields"]) == ["lost_reason"]
    deal = moved(call, "ann", "opportunity", deal, "lose", lost_reason="no_budget",
                 lost_note="frozen until next year")  # fmt: skip
    assert (deal["stage"], deal["stage_lost_at"], deal["probability"], deal["closed_date"]) == (
        "lost", "needs_analysis", "0.00", TODAY)  # fmt: skip
    _, body = call("ann", "GET", f"/records/account/{account['id']}")
    assert body["data"]["deal_status"] == "not_won"
    # reopening is for the manager, with a comment
    status, _ = fire(call, "ann", "opportunity", deal, "reopen", comment="budget is back")
    assert status == 403
    status, body = fire(call, "mia", "opportunity", deal, "reopen")
    assert status == 422 and list(body["error"]["fields"]) == ["comment"]
    deal = moved(call, "mia", "opportunity", deal, "reopen", comment="budget is back")
    assert (deal["stage"], deal["lost_reason"], deal["stage_lost_at"], deal["closed_date"]) == (
        "initial", None, None, None)  # fmt: skip
    # a proposal of zero cannot be won: the guard
    deal = moved(call, "ann", "opportunity", deal, "propose", amount="0")
    status, body = fire(call, "ann", "opportunity", deal, "win")
    assert status == 409 and body["error"]["message"] == (
        "'win' is not possible now: its condition 'amount > 0' does not hold for this opportunity"
    )
    status, body = call("ann", "GET", f"/records/opportunity/{deal['id']}/transitions/history")
    assert [(e["transition"], e["comment"]) for e in body["data"]] == [
        ("analyze_needs", None), ("lose", None), ("reopen", "budget is back"), ("propose", None)
    ]  # fmt: skip


def test_case_lifecycle(call: Call) -> None:
    account = create(call, "root", "account", name="Delta Co")
    case = create(call, "sam", "case", subject="Printer jams", account=account["id"],
                  description="Every morning")  # fmt: skip
    assert case["status"] == "open"
    own = create(call, "ann", "account", name="Epsilon Co")  # reps see their own accounts
    mine = create(call, "ann", "case", subject="Login", account=own["id"], description="?")
    status, _ = fire(call, "ann", "case", mine, "start")  # reps may not update cases
    assert status == 403
    case = moved(call, "sam", "case", case, "start")
    status, body = fire(call, "sam", "case", case, "resolve")
    assert status == 422 and list(body["error"]["fields"]) == ["resolution"]
    case = moved(call, "sam", "case", case, "resolve", resolution="New rollers")
    assert case["status"] == "resolved" and case["resolved_at"] is not None
    case = moved(call, "sam", "case", case, "close", satisfaction=5, feedback="Quick")
    assert (case["status"], case["satisfaction"]) == ("closed", 5)
    status, body = call("sam", "PATCH", f"/records/case/{case['id']}",
                        {"satisfaction": 1, "version": case["version"]})  # fmt: skip
    assert status == 409 and body["error"]["code"] == "record_locked"
    status, body = fire(call, "sam", "case", case, "reopen")
    assert status == 422 and list(body["error"]["fields"]) == ["comment"]
    case = moved(call, "sam", "case", case, "reopen", comment="Jams again")
    assert (case["status"], case["resolved_at"]) == ("in_progress", None)
