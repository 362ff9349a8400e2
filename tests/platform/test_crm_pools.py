"""The CRM's public pool (公海) through the REST API and the screens: returning an account,
what members see of it, claiming within the pool's limits, the contacts that follow, a
pool admin assigning, the refusals (each a 4xx with its reason) and the record page's
panel with its buttons."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from crm_support import crm_fixture, csrf_token, logged_in
from flask import Flask
from sqlalchemy.engine import Engine

USERS = [
    ("root", ["admin"], None, None),
    ("mia", ["sales_manager"], "East", None),
    ("ann", ["sales_rep"], "East", "mia"),
    ("bob", ["sales_rep"], "East", "mia"),
    ("carl", ["sales_rep"], "West", None),
]
Call = Callable[..., tuple[int, Any]]


@pytest.fixture
def app(db_url: str, db_engine: Engine, tmp_path: Path) -> Iterator[Flask]:
    yield from crm_fixture(db_url, tmp_path, USERS)


def _user(app: Flask, name: str) -> Any:
    runtime = app.extensions["heddle"]
    with runtime.engine.connect() as conn:
        return runtime.accounts.by_username(conn, name)


def _east_pool(call: Call, app: Flask, **values: Any) -> int:
    team = _user(app, "ann").team_id
    data = {"name": "East pool", "member_teams": [team], "admins": [_user(app, "mia").id],
            "hidden_fields": ["phone"], "daily_claim_limit": 1, **values}  # fmt: skip
    status, body = call("root", "POST", "/records/pool", data)
    assert status == 201, body
    return int(body["data"]["id"])


def _account(call: Call, user: str, name: str, phone: str = "021-5555 0100") -> dict[str, Any]:
    status, body = call(user, "POST", "/records/account", {"name": name, "phone": phone})
    assert status == 201, body
    account = body["data"]
    status, body = call(user, "POST", "/records/contact",
                        {"name": f"{name} buyer", "account": account["id"], "mobile": "1380000" + phone[-4:]})  # fmt: skip
    assert status == 201, body
    return dict(account)


def test_return_see_claim_and_assign(app: Flask, call: Call) -> None:
    pool = _east_pool(call, app)
    acme = _account(call, "ann", "Acme Trading")
    path = f"/records/account/{acme['id']}"

    status, body = call("ann", "POST", f"{path}/return", {"note": "No budget until 2027"})
    assert status == 200, body
    assert body["data"]["pool"] == pool and body["data"]["owner_id"] is None
    assert body["data"]["previous_owner"] == acme["owner_id"] and body["data"]["phone"] is None

    # bob, in the same team, sees it in the pool, without its phone; carl (West) does not
    status, body = call("bob", "GET", path)
    assert status == 200 and body["data"]["name"] == "Acme Trading"
    assert body["data"]["phone"] is None
    status, body = call("bob", "GET", "/records/account?pool=" + str(pool))
    assert [r["id"] for r in body["data"]] == [acme["id"]]
    assert call("carl", "GET", path)[0] == 404
    assert call("carl", "POST", f"{path}/claim")[0] == 404
    status, body = call("bob", "GET", "/pools/account")
    assert status == 200
    (standing,) = body["data"]
    assert standing["pool"] == {"id": pool, "name": "East pool"}
    assert (standing["claims_left_today"], standing["member"], standing["admin"]) == (
        1,
        True,
        False,
    )
    assert call("carl", "GET", "/pools/account") == (200, {"data": []})

    # ann waits out the cooldown; bob claims it, its contact with it
    status, body = call("ann", "POST", f"{path}/claim")
    assert status == 409 and body["error"]["code"] == "pool_refused"
    assert body["error"]["details"]["reason"] == "cooldown"
    status, body = call("bob", "POST", f"{path}/claim", {})
    assert status == 200, body
    assert body["data"]["owner_id"] == _user(app, "bob").id
    assert body["data"]["phone"] == "021-5555 0100" and body["data"]["claimed_at"]
    status, body = call("bob", "GET", f"/records/contact?account={acme['id']}")
    assert [c["name"] for c in body["data"]] == ["Acme Trading buyer"]
    assert call("ann", "GET", path)[0] == 404  # bob's now

    # one claim a day: the next is refused, then the pool's admin assigns it
    wayne = _account(call, "ann", "Wayne Industries", "021-5555 0199")
    assert call("ann", "POST", f"/records/account/{wayne['id']}/return")[0] == 200
    status, body = call("bob", "POST", f"/records/account/{wayne['id']}/claim")
    assert status == 409 and body["error"]["details"]["reason"] == "daily_limit", body
    assert call("bob", "POST", f"/records/account/{wayne['id']}/assign",
                {"owner_id": _user(app, "bob").id})[0] == 403  # fmt: skip
    status, body = call("mia", "POST", f"/records/account/{wayne['id']}/assign",
                        {"owner_id": _user(app, "carl").id})  # fmt: skip
    assert status == 422 and body["error"]["fields"] == {"owner_id": ["Not a member of this pool."]}
    status, body = call("mia", "POST", f"/records/account/{wayne['id']}/assign",
                        {"owner_id": _user(app, "bob").id})  # fmt: skip
    assert status == 200 and body["data"]["owner_id"] == _user(app, "bob").id


@pytest.mark.parametrize(
    ("method", "suffix", "body", "status", "field"),
    [
        ("POST", "claim", {"hurry": True}, 400, "hurry"),
        ("POST", "assign", {}, 400, "owner_id"),
        ("POST", "assign", {"owner_id": "bob"}, 400, "owner_id"),
        ("POST", "assign", {"owner_id": True}, 400, "owner_id"),
        ("POST", "return", {"pool": "East"}, 400, "pool"),
        ("POST", "return", {"note": 7}, 400, "note"),
        ("POST", "return", {"note": "x" * 2001}, 400, "note"),
        ("POST", "return", [1], 400, None),
        ("POST", "return", {"pool": 999}, 422, "pool"),
    ],
)
def test_bad_requests_change_nothing(
    app: Flask, call: Call, method: str, suffix: str, body: Any, status: int, field: str | None
) -> None:
    _east_pool(call, app)
    acme = _account(call, "ann", "Acme")
    got, answer = call("ann", method, f"/records/account/{acme['id']}/{suffix}", body)
    assert got == status, answer
    if field is not None:
        assert field in answer["error"]["fields"], answer
    status_now, now = call("ann", "GET", f"/records/account/{acme['id']}")
    assert status_now == 200 and now["data"]["version"] == acme["version"]


def test_operations_outside_a_pool(app: Flask, call: Call) -> None:
    pool = _east_pool(call, app)
    status, body = call("root", "POST", f"/records/pool/{pool}/claim")
    assert status == 400 and "no public pool" in body["error"]["message"]
    assert call("ann", "POST", "/records/account/123456/claim")[0] == 404
    assert call("ann", "POST", "/records/nothing/1/claim")[0] == 404
    acme = _account(call, "ann", "Acme")
    status, body = call("ann", "POST", f"/records/account/{acme['id']}/claim")
    assert status == 409 and body["error"]["details"]["reason"] == "not_pooled"
    assert call("ann", "POST", f"/records/account/{acme['id']}/return")[0] == 200
    status, body = call("root", "POST", f"/records/account/{acme['id']}/return")
    assert status == 409 and body["error"]["details"]["reason"] == "pooled"


def test_the_openapi_describes_the_pool_operations(call: Call) -> None:
    status, spec = call("ann", "GET", "/openapi.json")
    assert status == 200
    for verb in ("claim", "assign", "return"):
        assert "post" in spec["paths"][f"/records/account/{{id}}/{verb}"]
    assert "get" in spec["paths"]["/pools/account"]
    assert "/records/product/{id}/claim" not in spec["paths"]


def test_the_record_page_panel(app: Flask, call: Call) -> None:
    _east_pool(call, app)
    acme = _account(call, "ann", "Acme Trading")
    ann, bob, mia = (logged_in(app, n) for n in ("ann", "bob", "mia"))
    page = ann.get(f"/app/account/{acme['id']}").get_data(as_text=True)
    assert "Return to the public pool" in page
    returned = ann.post(f"/app/account/{acme['id']}/return",
                        data={"csrf_token": csrf_token(page), "note": "Not now"})  # fmt: skip
    assert returned.status_code == 302
    page = bob.get(f"/app/account/{acme['id']}").get_data(as_text=True)
    assert "Waiting in East pool" in page and "Hidden while in the pool: Phone" in page
    # the timeline says who returned it, where, and why
    assert "returned it to the pool East pool" in page and "Not now" in page
    assert "021-5555 0100" not in page and "Claims left today" in page
    assert re.search(r'action="/app/account/\d+/claim"', page)
    assert "pool-assignee" not in page  # bob is no admin of it
    admin_page = mia.get(f"/app/account/{acme['id']}").get_data(as_text=True)
    assert "pool-assignee" in admin_page and ">Bob<" in admin_page.replace("bob", "Bob")
    # without the CSRF token the claim is refused; with it, it goes through
    assert bob.post(f"/app/account/{acme['id']}/claim").status_code == 400
    done = bob.post(f"/app/account/{acme['id']}/claim", data={"csrf_token": csrf_token(page)})
    assert done.status_code == 302
    page = bob.get(done.headers["Location"]).get_data(as_text=True)
    assert "is yours now" in page and "021-5555 0100" in page
    assert "claimed it from the pool East pool" in page
    # returned again, it is bob's cooldown — said in Chinese
    bob.post("/language", data={"locale": "zh", "csrf_token": csrf_token(page)})
    bob.post(f"/app/account/{acme['id']}/return", data={"csrf_token": csrf_token(page)})
    page = bob.get(f"/app/account/{acme['id']}").get_data(as_text=True)
    refused = bob.post(f"/app/account/{acme['id']}/claim", data={"csrf_token": csrf_token(page)})
    page = bob.get(refused.headers["Location"]).get_data(as_text=True)
    assert "起可再次领取" in page


def test_claiming_ticked_rows_of_the_pool_list(app: Flask, call: Call) -> None:
    _east_pool(call, app)  # one claim a day
    first = _account(call, "ann", "First Ltd", "021-5555 0101")
    second = _account(call, "ann", "Second Ltd", "021-5555 0102")
    for account in (first, second):
        assert call("ann", "POST", f"/records/account/{account['id']}/return")[0] == 200
    bob = logged_in(app, "bob")
    page = bob.get("/app/account?view=in_pool").get_data(as_text=True)
    assert 'value="claim"' in page
    done = bob.post(
        "/app/account/bulk",
        data={"csrf_token": csrf_token(page), "action": "claim",
              "ids": [str(first["id"]), str(second["id"])]},
    )  # fmt: skip
    assert done.status_code == 302
    page = bob.get(done.headers["Location"]).get_data(as_text=True)
    assert "1 record changed." in page
    assert "1 refused: You have claimed 1 from East pool today, its daily limit." in page
    owners = {call("bob", "GET", f"/records/account/{a['id']}")[1]["data"]["owner_id"]
              for a in (first, second)}  # fmt: skip
    assert owners == {_user(app, "bob").id, None}
    # carl belongs to no pool: his list offers no claim
    carl = logged_in(app, "carl")
    assert 'value="claim"' not in carl.get("/app/account").get_data(as_text=True)
