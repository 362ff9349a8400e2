"""State machines through the REST API: firing transitions (roles, guards, comments,
required fields, actions), the state field kept for transitions, locked states, the
transitions a user may fire, the history, and 20 concurrent attempts on one version."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.engine import Engine

PACKAGE = """\
kind: package
name: deals
---
kind: entity
name: company
ownable: true
fields:
  name: {type: string, required: true}
  status: {type: choice, options: [prospect, customer], default: prospect}
---
kind: entity
name: deal
ownable: true
fields:
  name: {type: string, required: true}
  amount: {type: money}
  company: {type: reference, to: company, on_delete: cascade}
  stage: {type: choice, options: [open, review, won, lost], default: open}
  reason: {type: string}
  note: {type: text}
  closed_on: {type: date, readonly: true}
  reviews: {type: integer, default: 0, readonly: true}
  follow_up: {type: reference, to: task, on_delete: set_null, readonly: true}
---
kind: entity
name: task
ownable: true
fields:
  subject: {type: string, required: true}
  deal: {type: reference, to: deal, on_delete: cascade}
---
kind: role
name: rep
permissions:
  deal: {read: own, create: own, update: own, delete: own}
  company: {read: own, create: own, update: own}
---
kind: role
name: manager
permissions:
  deal: {read: all, create: all, update: all, delete: all}
  company: {read: all, update: all}
  task: {read: all}
---
kind: role
name: viewer
permissions:
  "*": {read: all}
---
kind: workflow
name: deal_flow
entity: deal
field: stage
states:
  - {name: open, initial: true}
  - name: review
    on_enter: [{type: set, values: {reviews: =reviews + 1}}]
  - name: won
    final: true
    locked: true
    on_enter:
      - {type: set, values: {closed_on: =today()}}
      - {type: set, target: company, values: {status: customer}}
  - {name: lost, final: true}
transitions:
  - {name: submit, from: open, to: review, required_fields: [amount], comment: none}
  - name: approve
    from: review
    to: won
    roles: [manager]
    guard: amount >= 1000
    actions:
      - type: create
        entity: task
        link: follow_up
        values: {subject: "=concat('Kick-off: ', name)", deal: =id}
  - name: lose
    from: [open, review]
    to: lost
    comment: required
    required_fields: [reason]
    fields: [note]
  - {name: reopen, from: lost, to: open, set: {reason: null}}
"""

PASSWORD = "correct horse battery"
USERS = [("root", ["admin"]), ("mia", ["manager"]), ("ann", ["rep"]), ("vic", ["viewer"])]


@pytest.fixture
def app(app_factory: Callable[..., Flask]) -> Flask:
    return app_factory(PACKAGE, [(user, roles, "Sales", None) for user, roles in USERS])


Call = Callable[..., Any]


def fire(
    call: Call, user: str, deal: dict[str, Any], transition: str, **body: Any
) -> tuple[int, Any]:
    body.setdefault("version", deal["version"])
    return call(user, "POST", f"/records/deal/{deal['id']}/transitions/{transition}", body)


def new_deal(call: Call, user: str = "ann", **values: Any) -> dict[str, Any]:
    status, company = call(user, "POST", "/records/company", {"name": "ACME"})
    assert status == 201, company
    status, body = call(
        user, "POST", "/records/deal", {"name": "ERP", "company": company["data"]["id"], **values}
    )
    assert status == 201, body
    return dict(body["data"])


def names(call: Call, user: str, deal: dict[str, Any]) -> list[str]:
    status, body = call(user, "GET", f"/records/deal/{deal['id']}/transitions")
    assert status == 200, body
    return [t["name"] for t in body["data"]]


def test_a_new_record_starts_in_the_initial_state(call: Call) -> None:
    assert new_deal(call)["stage"] == "open"
    status, body = call("ann", "POST", "/records/deal", {"name": "X", "stage": "won"})
    assert status == 422
    assert body["error"]["fields"]["stage"] == [
        "Stage starts as 'open' and changes only through the transitions of deal_flow "
        "(from 'open': submit, lose)."
    ]


def test_the_state_field_changes_only_through_transitions(call: Call) -> None:
    deal = new_deal(call)
    status, body = call(
        "ann", "PATCH", f"/records/deal/{deal['id']}", {"stage": "won", "version": 1}
    )
    assert status == 422
    assert body["error"]["fields"] == {
        "stage": [
            "Stage changes only through the transitions of deal_flow (from 'open': submit, lose)."
        ]
    }
    status, body = call(
        "ann",
        "PATCH",
        f"/records/deal/{deal['id']}",
        {"stage": "open", "name": "CRM", "version": 1},
    )
    assert status == 200 and body["data"]["name"] == "CRM"


def test_firing_checks_fields_comments_and_versions(call: Call) -> None:
    deal = new_deal(call)
    assert names(call, "ann", deal) == ["submit", "lose"]
    status, body = fire(call, "ann", deal, "submit")
    assert status == 422 and body["error"]["fields"] == {
        "amount": ["Missing data for required field."]
    }
    status, body = fire(call, "ann", deal, "submit", amount="500", comment="hi")
    assert status == 422 and body["error"]["fields"] == {"comment": ["'submit' takes no comment."]}
    status, body = fire(call, "ann", deal, "submit", amount="500", name="other")
    assert status == 422 and list(body["error"]["fields"]) == ["name"]
    status, body = fire(call, "ann", deal, "submit", amount="abc")
    assert status == 422 and list(body["error"]["fields"]) == ["amount"]
    status, body = fire(call, "ann", deal, "submit", amount="500")
    assert status == 200, body
    moved = body["data"]
    assert (moved["stage"], moved["amount"], moved["reviews"]) == ("review", "500.00", 1)
    assert moved["version"] == deal["version"] + 1
    status, body = fire(call, "ann", deal, "lose", reason="x", comment="late")  # stale
    assert status == 409 and body["error"]["code"] == "stale_version"
    status, body = fire(call, "ann", moved, "submit", amount="500")
    assert status == 409 and body["error"]["code"] == "transition_refused"
    assert body["error"]["message"] == (
        "'submit' cannot be fired from 'review': it goes from open to review"
    )
    status, body = fire(call, "ann", moved, "sumbit")
    assert status == 404
    assert body["error"]["message"] == "no transition 'sumbit' on deal (did you mean 'submit'?)"
    status, body = call("ann", "POST", f"/records/deal/{deal['id']}/transitions/lose", {})
    assert status == 400 and body["error"]["fields"] == {
        "version": ["Missing data for required field."]
    }


def test_roles_guards_and_actions(call: Call) -> None:
    deal = new_deal(call)
    _, body = fire(call, "ann", deal, "submit", amount="500")
    deal = body["data"]
    status, body = fire(call, "ann", deal, "approve")
    assert status == 403 and body["error"]["message"] == "only manager may fire 'approve'"
    status, body = fire(call, "vic", deal, "approve")
    assert status == 403
    assert names(call, "vic", deal) == []
    assert names(call, "mia", deal) == ["lose"]  # the guard does not hold yet
    status, body = fire(call, "mia", deal, "approve")
    assert status == 409 and body["error"]["message"] == (
        "'approve' is not possible now: its condition 'amount >= 1000' does not hold for this deal"
    )
    status, body = call(
        "mia", "PATCH", f"/records/deal/{deal['id']}", {"amount": "2000", "version": 2}
    )
    assert status == 200
    deal = body["data"]
    assert names(call, "mia", deal) == ["approve", "lose"]
    status, body = fire(call, "mia", deal, "approve", comment="  good deal ")
    assert status == 200, body
    won = body["data"]
    assert won["stage"] == "won" and won["closed_on"] == dt.date.today().isoformat()
    _, company = call("ann", "GET", f"/records/company/{deal['company']}")
    assert company["data"]["status"] == "customer"  # set on the referenced record
    _, task = call("mia", "GET", f"/records/task/{won['follow_up']}")
    assert task["data"]["subject"] == "Kick-off: ERP" and task["data"]["deal"] == deal["id"]
    # won is locked: read-only, not deletable, no transitions out
    status, body = call(
        "mia", "PATCH", f"/records/deal/{deal['id']}", {"note": "x", "version": won["version"]}
    )
    assert status == 409 and body["error"]["code"] == "record_locked"
    status, body = call("root", "DELETE", f"/records/deal/{deal['id']}?version={won['version']}")
    assert status == 409 and body["error"]["code"] == "record_locked"
    assert names(call, "root", deal) == []


def test_comments_required_fields_and_history(call: Call) -> None:
    deal = new_deal(call)
    status, body = fire(call, "ann", deal, "lose", reason="price")
    assert status == 422 and body["error"]["fields"] == {
        "comment": ["A comment is required to lose."]
    }
    status, body = fire(call, "ann", deal, "lose", comment="too dear")
    assert status == 422 and body["error"]["fields"] == {
        "reason": ["Missing data for required field."]
    }
    status, body = fire(call, "ann", deal, "lose", comment="too dear", reason="price", note="n")
    assert status == 200, body
    lost = body["data"]
    assert (lost["stage"], lost["reason"], lost["note"]) == ("lost", "price", "n")
    status, body = fire(call, "ann", lost, "reopen")
    assert status == 200 and body["data"]["reason"] is None
    status, body = call("ann", "GET", f"/records/deal/{deal['id']}/transitions/history")
    assert status == 200
    entries = [(e["transition"], e["from_state"], e["to_state"], e["comment"], e["version"])
               for e in body["data"]]  # fmt: skip
    assert entries == [("lose", "open", "lost", "too dear", 2), ("reopen", "lost", "open", None, 3)]
    assert {e["actor_id"] for e in body["data"]} == {3}  # ann
    status, body = call("ann", "GET", f"/records/deal/{deal['id']}/history")
    assert [entry["changes"].get("stage") for entry in body["data"]][1:] == [
        ["open", "lost"],
        ["lost", "open"],
    ]
    status, _ = call("mia", "GET", "/records/deal/999/transitions/history")
    assert status == 404


def test_of_twenty_concurrent_attempts_on_one_version_one_wins(
    app: Flask, call: Call, pg_engine: Engine
) -> None:
    # fixtures: ``app`` runs on SQLite too; this test only on PostgreSQL (pg_engine)
    if app.extensions["heddle"].records.dialect != "postgresql":
        pytest.skip("SQLite takes one writer at a time: no race to run")
    deal = new_deal(call, amount="100")
    login = app.test_client().post(
        "/api/v1/auth/token", json={"username": "mia", "password": PASSWORD}
    )
    headers = {"Authorization": f"Bearer {login.json['token']}"}
    statuses: list[int] = []
    barrier = threading.Barrier(20, timeout=30)

    def attempt() -> None:
        client = app.test_client()
        barrier.wait()
        response = client.post(
            f"/api/v1/records/deal/{deal['id']}/transitions/submit",
            json={"version": deal["version"]},
            headers=headers,
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=attempt) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses) == [200] + [409] * 19
    _, body = call("mia", "GET", f"/records/deal/{deal['id']}/transitions/history")
    assert len(body["data"]) == 1


def test_the_openapi_document_has_the_transitions(call: Call) -> None:
    status, document = call("ann", "GET", "/openapi.json")
    assert status == 200
    paths = document["paths"]
    assert set(paths["/records/deal/{id}/transitions/lose"]["post"]["requestBody"]["content"][
        "application/json"]["schema"]["properties"]) == {"version", "comment", "reason", "note"}  # fmt: skip
    assert "comment" not in paths["/records/deal/{id}/transitions/submit"]["post"][
        "requestBody"]["content"]["application/json"]["schema"]["properties"]  # fmt: skip
    assert "get" in paths["/records/deal/{id}/transitions"]
    assert "get" in paths["/records/deal/{id}/transitions/history"]
    status, document = call("vic", "GET", "/openapi.json")  # may not update deals
    assert "/records/deal/{id}/transitions/lose" not in document["paths"]
