"""The CRM's approval workflows through the REST API, refusals included: quote_approval
(discount above 15% needs a sales manager), contract_approval (the owner's manager, then
finance from 100,000), expense_approval (manager, then finance, then paid) and
payment_confirmation (finance confirms; the receivable plan follows)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import jsonschema
import pytest
from crm_support import crm_app
from flask import Flask

# username, roles, team, manager
USERS = [
    ("root", ["admin"], None, None),
    ("max", ["sales_manager"], "Sales", None),
    ("mia", ["sales_manager"], "East", "max"),
    ("ann", ["sales_rep"], "East", "mia"),
    ("fay", ["finance"], "Finance", None),
    ("mark", ["marketing"], "Marketing", None),
]
TODAY = dt.date.today()

Call = Callable[..., tuple[int, Any]]


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
    """One CRM app per database for the module (building one takes seconds); each test
    works on records of its own."""
    tmp_path = tmp_path_factory.mktemp("crm")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'crm.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    app = crm_app(url, tmp_path, USERS)
    runtime = app.extensions["heddle"]
    with runtime.engine.begin() as conn:
        teams = runtime.accounts.teams
        sales = runtime.accounts.team_id(conn, "Sales")
        conn.execute(teams.update().where(teams.c.name == "East").values(parent_id=sales))
    yield app
    runtime.tables.metadata.drop_all(runtime.engine)
    runtime.engine.dispose()


@pytest.fixture(scope="module")
def ids(app: Flask) -> dict[str, int]:
    runtime = app.extensions["heddle"]
    users = runtime.accounts.users
    with runtime.engine.connect() as conn:
        return {row.username: row.id for row in conn.execute(users.select())}


def create(call: Call, user: str, entity: str, **values: Any) -> dict[str, Any]:
    status, body = call(user, "POST", f"/records/{entity}", values)
    assert status == 201, body
    return dict(body["data"])


def fire(
    call: Call, user: str, entity: str, record: dict[str, Any], transition: str, **body: Any
) -> tuple[int, Any]:
    body.setdefault("version", record["version"])
    return call(user, "POST", f"/records/{entity}/{record['id']}/transitions/{transition}", body)


def moved(
    call: Call, user: str, entity: str, record: dict[str, Any], transition: str, **body: Any
) -> dict[str, Any]:
    status, answer = fire(call, user, entity, record, transition, **body)
    assert status == 200, answer
    return dict(answer["data"])


def waiting(call: Call, user: str, entity: str, record: dict[str, Any]) -> list[dict[str, Any]]:
    """The approvals waiting for ``user`` on ``record`` (the module's other tests leave
    theirs)."""
    status, body = call(user, "GET", "/approvals?status=pending")
    assert status == 200, body
    return [a for a in body["data"] if (a["entity"], a["record_id"]) == (entity, record["id"])]


def decide(
    call: Call, user: str, approval: int, how: str = "approve", **body: Any
) -> tuple[int, Any]:
    return call(user, "POST", f"/approvals/{approval}/{how}", body)


def conforms(call: Call, user: str, schema: str, value: Any) -> None:
    """``value`` is what the user's OpenAPI document says a ``schema`` is."""
    status, document = call(user, "GET", "/openapi.json")
    assert status == 200
    root = {"components": document["components"], "$ref": f"#/components/schemas/{schema}"}
    jsonschema.Draft202012Validator(root).validate(value)


def err(body: Any) -> dict[str, Any]:
    """The error of a response body, checked to have the one documented shape."""
    assert set(body) == {"error"}, body
    assert set(body["error"]) <= {"code", "message", "fields", "details"}
    return dict(body["error"])


def read(call: Call, user: str, entity: str, record: dict[str, Any]) -> dict[str, Any]:
    status, body = call(user, "GET", f"/records/{entity}/{record['id']}")
    assert status == 200, body
    return dict(body["data"])


def test_quote_approval(call: Call, ids: dict[str, int]) -> None:
    account = create(call, "ann", "account", name="Acme Trading")
    quote = create(call, "ann", "quote", account=account["id"], discount="20")
    # guard false: 20% is not approved by its owner
    status, body = fire(call, "ann", "quote", quote, "approve")
    assert status == 409 and err(body)["code"] == "transition_refused"
    quote = moved(call, "ann", "quote", quote, "submit", comment="big customer")
    assert quote["status"] == "pending_approval"
    (approval,) = waiting(call, "mia", "quote", quote)
    assert approval["waiting_for"] == sorted([ids["max"], ids["mia"]])
    assert [a["id"] for a in waiting(call, "max", "quote", quote)] == [approval["id"]]
    # the submitter may not approve; a role that is not an approver may not either
    status, body = decide(call, "ann", approval["id"])
    assert status == 403 and "own request" in err(body)["message"]
    status, body = decide(call, "mark", approval["id"])
    assert status == 403 and err(body)["code"] == "forbidden"
    # waiting for approval, the quote is locked
    status, body = call(
        "ann",
        "PATCH",
        f"/records/quote/{quote['id']}",
        {"discount": "10", "version": quote["version"]},
    )
    assert status == 409 and body["error"]["code"] == "record_locked"
    status, body = decide(call, "mia", approval["id"], "reject")
    assert status == 422 and list(err(body)["fields"]) == ["comment"]
    status, body = decide(call, "mia", approval["id"], "reject", comment="15% at most")
    assert status == 200 and body["data"]["status"] == "rejected"
    quote = read(call, "ann", "quote", quote)
    assert quote["status"] == "rejected"
    status, body = decide(call, "max", approval["id"])
    assert status == 409 and err(body)["code"] == "approval_decided"
    # resubmitted and approved by the other manager
    quote = moved(call, "ann", "quote", quote, "submit")
    (second,) = waiting(call, "max", "quote", quote)
    status, body = decide(call, "max", second["id"], version=second["version"] + 1)
    assert status == 409 and err(body)["code"] == "stale_version"
    status, body = decide(call, "max", second["id"], comment="ok", version=second["version"])
    assert status == 200 and body["data"]["status"] == "approved"
    assert read(call, "ann", "quote", quote)["status"] == "approved"
    status, body = call("ann", "GET", f"/records/quote/{quote['id']}/approvals")
    assert status == 200
    assert [(a["status"], a["history"][-1]["kind"]) for a in body["data"]] == [
        ("approved", "completed"),
        ("rejected", "rejected"),
    ]
    assert body["data"][1]["history"][-1]["comment"] == "15% at most"
    # self-approval: mia's own quote goes to max, and mia may not decide it
    own = create(call, "mia", "quote", account=account["id"], discount="30")
    moved(call, "mia", "quote", own, "submit")
    (third,) = waiting(call, "max", "quote", own)
    assert third["waiting_for"] == [ids["max"]] and waiting(call, "mia", "quote", own) == []
    status, body = decide(call, "mia", third["id"])
    assert status == 403 and "own request" in err(body)["message"]
    # 15% or less: approved by its owner, no submission needed
    small = create(call, "ann", "quote", account=account["id"], discount="10")
    status, body = fire(call, "ann", "quote", small, "submit")
    assert status == 409 and err(body)["code"] == "transition_refused"
    assert moved(call, "ann", "quote", small, "approve")["status"] == "approved"


def test_contract_approval(call: Call, ids: dict[str, int]) -> None:
    account = create(call, "ann", "account", name="Beacon Machinery")
    small = create(
        call,
        "ann",
        "contract",
        title="Support",
        account=account["id"],
        amount="50000",
        end_date=(TODAY + dt.timedelta(days=365)).isoformat(),
    )
    small = moved(call, "ann", "contract", small, "submit")
    (approval,) = waiting(call, "mia", "contract", small)
    assert [s["name"] for s in approval["steps"]] == ["manager"]
    status, body = decide(call, "fay", approval["id"])  # finance: not its turn, not needed
    assert status == 403
    status, body = decide(call, "mia", approval["id"])
    assert status == 200 and body["data"]["status"] == "approved"
    assert [(h["kind"], h["step"]) for h in body["data"]["history"]][-2:] == [
        ("skipped", "finance"),
        ("completed", None),
    ]
    small = read(call, "ann", "contract", small)
    assert small["status"] == "approved"
    small = moved(call, "ann", "contract", small, "activate")
    assert (small["status"], small["start_date"]) == ("active", TODAY.isoformat())
    # guard false and wrong role on the way out
    status, body = fire(call, "fay", "contract", small, "expire")
    assert status == 409 and err(body)["code"] == "transition_refused"
    status, body = fire(call, "ann", "contract", small, "expire")
    assert status == 403
    # from 100,000 finance approves after the manager; a rejection returns it to draft
    big = create(call, "ann", "contract", title="Platform", account=account["id"], amount="250000")
    big = moved(call, "ann", "contract", big, "submit")
    (approval,) = waiting(call, "mia", "contract", big)
    decide(call, "mia", approval["id"], comment="fine by me")
    assert waiting(call, "mia", "contract", big) == []
    (for_finance,) = waiting(call, "fay", "contract", big)
    assert for_finance["id"] == approval["id"]
    assert for_finance["record"]["entity"] == "contract"
    conforms(call, "fay", "Approval", for_finance)
    status, body = decide(call, "fay", approval["id"], "reject", comment="payment terms")
    assert status == 200
    conforms(call, "fay", "Approval", body["data"])
    assert "/approvals/{id}/reject" in call("fay", "GET", "/openapi.json")[1]["paths"]
    big = read(call, "ann", "contract", big)
    assert big["status"] == "draft"
    status, body = call("ann", "GET", f"/records/contract/{big['id']}/transitions/history")
    assert [(h["transition"], h["to_state"], h["comment"]) for h in body["data"]][-1] == (
        "contract_review:rejected",
        "draft",
        "payment terms",
    )
    # submitted again, then recalled by the submitter (not by someone else)
    big = moved(call, "ann", "contract", big, "submit")
    (again,) = waiting(call, "mia", "contract", big)
    status, body = decide(call, "mia", again["id"], comment=5)
    assert status == 422 and list(body["error"]["fields"]) == ["comment"]
    status, body = decide(call, "mia", again["id"], verdict="yes")
    assert status == 422 and list(body["error"]["fields"]) == ["verdict"]
    status, body = decide(call, "mia", again["id"], "recall")
    assert status == 403
    status, body = decide(call, "ann", again["id"], "recall", comment="new terms")
    assert status == 200 and body["data"]["status"] == "recalled"
    assert read(call, "ann", "contract", big)["status"] == "draft"
    ours = {("contract", small["id"]), ("contract", big["id"])}
    status, body = call("ann", "GET", "/approvals?status=mine")
    mine = [a["status"] for a in body["data"] if (a["entity"], a["record_id"]) in ours]
    assert mine == ["recalled", "rejected", "approved"]
    status, body = call("mia", "GET", "/approvals?status=decided")
    assert len([a for a in body["data"] if (a["entity"], a["record_id"]) in ours]) == 2
    # bad requests
    assert call("ann", "GET", "/approvals?status=everything")[0] == 400
    assert call("ann", "GET", "/approvals?limit=0")[0] == 400
    assert call("ann", "GET", "/approvals/999999")[0] == 404


def test_expense_approval_with_a_delegate(call: Call, ids: dict[str, int]) -> None:
    empty = create(call, "ann", "expense_claim", purpose="Nothing yet")
    status, body = fire(call, "ann", "expense_claim", empty, "submit")
    assert status == 409 and err(body)["code"] == "transition_refused"
    line = {"category": "meals", "amount": "120", "date": TODAY.isoformat()}
    claim = create(call, "ann", "expense_claim", purpose="Client dinner", lines=[line])
    # mia is away: max decides for her
    status, body = call(
        "mia",
        "POST",
        "/approvals/delegations",
        {
            "delegate_id": ids["max"],
            "starts_on": TODAY.isoformat(),
            "ends_on": (TODAY + dt.timedelta(days=2)).isoformat(),
            "note": "travelling",
        },
    )
    assert status == 201, body
    delegation = body["data"]
    status, body = call(
        "ann",
        "POST",
        "/approvals/delegations",
        {
            "user_id": ids["mia"],
            "delegate_id": ids["ann"],
            "starts_on": TODAY.isoformat(),
            "ends_on": TODAY.isoformat(),
        },
    )
    assert status == 403
    status, body = call("mia", "POST", "/approvals/delegations", {"delegate_id": ids["max"]})
    assert status == 422 and set(body["error"]["fields"]) == {"starts_on", "ends_on"}
    claim = moved(call, "ann", "expense_claim", claim, "submit")
    (approval,) = waiting(call, "max", "expense_claim", claim)
    status, body = decide(call, "max", approval["id"], comment="for Mia")
    assert status == 200
    manager = body["data"]["steps"][0]["tasks"][0]
    assert (manager["decided_by"], manager["on_behalf_of"]) == (ids["max"], ids["mia"])
    status, body = decide(call, "fay", approval["id"])
    assert status == 200 and body["data"]["status"] == "approved"
    claim = read(call, "ann", "expense_claim", claim)
    status, body = fire(call, "ann", "expense_claim", claim, "pay")
    assert status == 403
    claim = moved(call, "fay", "expense_claim", claim, "pay")
    assert (claim["status"], claim["paid_on"]) == ("paid", TODAY.isoformat())
    status, body = call("max", "GET", "/approvals/delegations")
    assert [d["id"] for d in body["data"]] == [delegation["id"]]
    conforms(call, "max", "Delegation", body["data"][0])
    assert call("max", "DELETE", f"/approvals/delegations/{delegation['id']}")[0] == 403
    assert call("mia", "DELETE", f"/approvals/delegations/{delegation['id']}")[0] == 204
    assert call("mia", "GET", "/approvals/delegations")[1]["data"] == []


def test_payment_confirmation(call: Call, ids: dict[str, int]) -> None:
    account = create(call, "ann", "account", name="Cedar Logistics")
    contract = create(
        call, "ann", "contract", title="Support", account=account["id"], amount="8000"
    )
    plan = create(
        call,
        "ann",
        "receivable_plan",
        contract=contract["id"],
        amount="8000",
        due_date=(TODAY + dt.timedelta(days=20)).isoformat(),
    )
    assert plan["status_derived"] == "not_effective"
    moved(call, "ann", "contract", contract, "submit")
    (approval,) = waiting(call, "mia", "contract", contract)
    decide(call, "mia", approval["id"])
    assert read(call, "ann", "receivable_plan", plan)["status_derived"] == "pending"
    payment = create(
        call, "ann", "payment", contract=contract["id"], receivable_plan=plan["id"], amount="8000"
    )
    assert payment["status"] == "pending"
    status, body = fire(call, "ann", "payment", payment, "confirm")
    assert status == 403
    status, body = fire(call, "fay", "payment", payment, "reject")
    assert status == 422 and list(err(body)["fields"]) == ["comment"]
    payment = moved(call, "fay", "payment", payment, "confirm")
    assert (payment["status"], payment["confirmed_by"]) == ("confirmed", ids["fay"])
    assert payment["confirmed_at"] is not None
    assert read(call, "ann", "receivable_plan", plan)["status_derived"] == "paid"
    assert read(call, "ann", "contract", contract)["received"] == "8000.00"
