"""A reference reveals nothing a role cannot see of its target (issue 15), through the API,
on SQLite and PostgreSQL.

Three reps in two teams under a manager: ann (East-North, under East) and cal (East)
report to mia (East, team and below); bob is in West. A rep reads their own records.
Each leak is checked both ways: the invisible record answers exactly as an absent one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

PACKAGE = """\
kind: package
name: deals
---
kind: entity
name: account
ownable: true
fields:
  name: {type: string, required: true}
  revenue: {type: money}
  cost: {type: money}
  parent_account: {type: reference, to: account, on_delete: set_null}
  referred_by: {type: reference, to: account, on_delete: set_null, link: any}
  vip: {type: boolean}
---
kind: entity
name: opportunity
ownable: true
fields:
  name: {type: string, required: true}
  account: {type: reference, to: account, on_delete: cascade}
  amount: {type: money}
  probability: {type: percent, default: 10}
  weighted: {type: formula, returns: money, expression: "amount * probability / 100"}
  big: {type: formula, returns: boolean, expression: "amount >= 1000"}
---
kind: entity
name: product
fields:
  name: {type: string, required: true}
  list_price: {type: money, required: true}
---
kind: entity
name: quote
ownable: true
fields:
  title: {type: string, required: true}
  lines: {type: children, entity: quote_line}
  subtotal: {type: rollup, of: quote_line, via: quote, aggregate: sum, field: amount}
---
kind: entity
name: quote_line
child: true
fields:
  quote: {type: reference, to: quote, on_delete: cascade}
  product: {type: reference, to: product, required: true}
  quantity: {type: integer, default: 1}
  unit_price: {type: money, required: true, default: "=product.list_price"}
  discount: {type: percent, default: 0}
  amount:
    type: formula
    returns: money
    expression: "quantity * unit_price * (100 - discount) / 100"
---
kind: role
name: rep
permissions:
  account: {read: own, create: own, update: own, fields: {cost: hidden}}
  opportunity: {read: own, create: own, update: own}
  quote: {read: own, create: own, update: own}
  product: {read: all}
---
kind: role
name: manager
permissions:
  "*": {read: team_and_below, create: team_and_below, update: team_and_below}
  product: {read: all}
"""

PASSWORD = "correct horse battery"
PEOPLE = [
    ("root", ["admin"], "HQ", None),
    ("mia", ["manager"], "East", None),
    ("ann", ["rep"], "East-North", "mia"),
    ("bob", ["rep"], "West", None),
    ("cal", ["rep"], "East", "mia"),
]
Call = Callable[..., Any]


@pytest.fixture
def client(app_factory: Callable[..., Flask]) -> FlaskClient:
    return app_factory(PACKAGE, PEOPLE).test_client()


@pytest.fixture
def api(client: FlaskClient) -> Call:
    """``api(user, method, path, json=…)`` → the response, as ``user``."""
    tokens: dict[str, str] = {}

    def call(user: str, method: str, path: str, **kwargs: Any) -> Any:
        if user not in tokens:
            response = client.post(
                "/api/v1/auth/token", json={"username": user, "password": PASSWORD}
            )
            tokens[user] = response.json["token"]
        headers = {"Authorization": f"Bearer {tokens[user]}"}
        return client.open(f"/api/v1{path}", method=method, headers=headers, **kwargs)

    return call


def made(api: Call, user: str, entity: str, body: dict[str, Any]) -> dict[str, Any]:
    response = api(user, "POST", f"/records/{entity}", json=body)
    assert response.status_code == 201, response.json
    return dict(response.json["data"])


def uid(api: Call, user: str) -> int:
    return int(made(api, user, "account", {"name": f"{user}'s probe"})["owner_id"])


def same(message: str) -> str:
    """A message with its ids taken out: what an invisible and an absent record share."""
    return re.sub(r"\d+", "N", message)


ABSENT = 987654321


def test_a_reference_may_point_only_at_a_readable_record(api: Call) -> None:
    mine = made(api, "ann", "account", {"name": "Ann's"})
    theirs = made(api, "root", "account", {"name": "Bob's", "owner_id": uid(api, "bob")})
    answers = []
    for target in (theirs["id"], ABSENT):
        response = api(
            "ann",
            "PATCH",
            f"/records/account/{mine['id']}",
            json={"parent_account": target, "version": mine["version"]},
        )
        assert response.status_code == 422
        answers.append(same(response.json["error"]["fields"]["parent_account"][0]))
        response = api("ann", "POST", "/records/opportunity", json={"name": "D", "account": target})
        assert response.status_code == 422
        answers.append(same(response.json["error"]["fields"]["account"][0]))
    assert answers == ["No account with id N."] * 4
    # a field declared link: any may point anywhere; a manager links within their sight
    linked = api(
        "ann",
        "PATCH",
        f"/records/account/{mine['id']}",
        json={"referred_by": theirs["id"], "version": mine["version"]},
    )
    assert linked.status_code == 200, linked.json
    assert api("mia", "POST", "/records/opportunity", json={
        "name": "Team deal", "account": mine["id"], "owner_id": mine["owner_id"],
    }).status_code == 201  # fmt: skip


def test_filters_and_sort_through_a_reference_see_only_readable_records(api: Call) -> None:
    ann = uid(api, "ann")
    small = made(api, "ann", "account", {"name": "Small", "revenue": "100"})
    big = made(api, "ann", "account", {"name": "Big", "revenue": "500000"})
    hidden = made(api, "root", "account", {"name": "Secret", "revenue": "50",
                                           "owner_id": uid(api, "bob")})  # fmt: skip
    for name, account in (("on small", small), ("on big", big), ("on secret", hidden)):
        made(api, "root", "opportunity", {"name": name, "account": account["id"], "owner_id": ann})

    def names(query: str, user: str = "ann") -> list[str]:
        response = api(user, "GET", f"/records/opportunity?{query}")
        assert response.status_code == 200, response.json
        return [row["name"] for row in response.json["data"]]

    # the secret account's revenue is neither above nor below anything for ann
    assert names("account.revenue__lte=60") == []
    assert names("account.revenue__gt=60&sort=name") == ["on big", "on small"]
    assert names("account.name=Secret") == []
    # sorted through the reference, the invisible one sorts as empty: last
    assert names("sort=account.revenue") == ["on small", "on big", "on secret"]
    # the admin sees through everything
    assert names("account.revenue__lte=60", "root") == ["on secret"]
    assert names("sort=account.revenue", "root") == ["on secret", "on small", "on big"]
    # expand shows a referenced record's title (docs/api.md), never its other fields
    page = api("ann", "GET", "/records/opportunity?expand=account&sort=name").json["data"]
    assert [row["account__title"] for row in page] == ["Big", "Secret", "Small"]
    assert all(set(row) & {"revenue", "account.revenue"} == set() for row in page)


def test_a_line_on_an_invisible_quote_reads_like_one_on_no_quote(api: Call) -> None:
    product = made(api, "root", "product", {"name": "Widget", "list_price": "50"})
    theirs = made(api, "root", "quote", {"title": "Bob's", "owner_id": uid(api, "bob")})
    answers = []
    for quote in (theirs["id"], ABSENT):
        response = api(
            "ann", "POST", "/records/quote_line", json={"quote": quote, "product": product["id"]}
        )
        assert response.status_code == 422, response.json
        answers.append(same(response.json["error"]["fields"]["quote"][0]))
    assert answers == ["No quote with id N."] * 2


def test_a_record_goes_only_to_a_team_the_scope_reaches(api: Call) -> None:
    teams = {t["name"]: t["id"] for t in _team_ids(api)}
    refused = api("ann", "POST", "/records/account", json={"name": "X", "team_id": teams["West"]})
    assert refused.status_code == 422
    assert refused.json["error"]["fields"] == {
        "team_id": ["Outside the teams you may give records to (own)."]
    }
    mine = made(api, "ann", "account", {"name": "Mine"})
    moved = api("ann", "PATCH", f"/records/account/{mine['id']}",
                json={"team_id": teams["West"], "version": mine["version"]})  # fmt: skip
    assert moved.status_code == 422 and "team_id" in moved.json["error"]["fields"]
    # and her manager still sees it
    assert api("mia", "GET", f"/records/account/{mine['id']}").status_code == 200
    # a manager gives records to her team and the teams below it, not others
    below = made(api, "mia", "account", {"name": "Below", "team_id": teams["East-North"]})
    assert below["team_id"] == teams["East-North"]
    away = api("mia", "POST", "/records/account", json={"name": "Away", "team_id": teams["West"]})
    assert away.json["error"]["fields"] == {
        "team_id": ["Outside the teams you may give records to (team and below)."]
    }


def _team_ids(api: Call) -> list[dict[str, Any]]:
    """The teams' ids, read as the admin from the records each user's account gets."""
    found = []
    for user, team in (("mia", "East"), ("ann", "East-North"), ("bob", "West")):
        record = made(api, user, "account", {"name": f"{user}'s team"})
        found.append({"name": team, "id": record["team_id"]})
    return found


@pytest.mark.parametrize("param", ["cots", "sort=cots", "fields=cots", "cots__gte"])
def test_messages_name_only_fields_the_caller_may_see(api: Call, param: str) -> None:
    query = param if "=" in param else f"{param}=1"
    for user, hint in (("ann", False), ("root", True)):
        response = api(user, "GET", f"/records/account?{query}")
        assert response.status_code == 400
        text = str(response.json)
        assert ("cost" in text) is hint, (user, text)


def test_defaults_read_through_references_and_decimals_keep_their_places(api: Call) -> None:
    product = made(api, "root", "product", {"name": "Widget", "list_price": "50.00"})
    quote = made(
        api,
        "ann",
        "quote",
        {"title": "Q", "lines": [{"product": product["id"], "quantity": 3, "discount": "12.5"},
                                 {"product": product["id"], "quantity": 1}]},
    )  # fmt: skip
    assert [line["unit_price"] for line in quote["lines"]] == ["50.00", "50.00"]
    assert [line["amount"] for line in quote["lines"]] == ["131.25", "50.00"]
    assert quote["subtotal"] == "181.25"


def test_fields_returns_what_was_asked_computed_from_all_inputs(api: Call) -> None:
    made(api, "ann", "opportunity", {"name": "D", "amount": "67.00", "probability": "10"})
    full = api("ann", "GET", "/records/opportunity").json["data"][0]
    assert (full["weighted"], full["big"]) == ("6.70", False)
    only = api("ann", "GET", "/records/opportunity?fields=amount").json["data"][0]
    assert set(only) == {"id", "version", "amount"}
    chosen = api("ann", "GET", "/records/opportunity?fields=weighted,big").json["data"][0]
    assert (chosen["weighted"], chosen["big"]) == ("6.70", False)
    made(api, "ann", "opportunity", {"name": "E", "amount": "5000"})
    rows = api("ann", "GET", "/records/opportunity?fields=big&sort=id").json["data"]
    assert [row["big"] for row in rows] == [False, True]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"revenue": "1e3"}, "revenue", "Not a valid number: write it like 1250.50."),
        ({"revenue": "+5"}, "revenue", "Not a valid number: write it like 1250.50."),
        ({"revenue": "Infinity"}, "revenue", "Not a valid number: write it like 1250.50."),
        ({"vip": "yes"}, "vip", "Not a valid boolean."),
        ({"vip": 1}, "vip", "Not a valid boolean."),
    ],
)
def test_decimals_and_booleans_only_in_the_documented_form(
    api: Call, body: dict[str, Any], field: str, message: str
) -> None:
    """The API takes what its OpenAPI document says: decimals as 1250.50 (or JSON
    numbers), booleans as true and false (issue 9)."""
    response = api("ann", "POST", "/records/account", json={"name": "X", **body})
    assert response.status_code == 422
    assert response.json["error"]["fields"] == {field: [message]}
    fine = api("ann", "POST", "/records/account", json={"name": "Y", "revenue": 1000, "vip": True})
    assert fine.status_code == 201 and fine.json["data"]["revenue"] == "1000.00"
