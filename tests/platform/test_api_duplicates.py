"""The CRM's duplicate rules through the REST API — account, contact and lead, with Chinese,
Japanese and Latin names and phones written every way — the 409 body and
``confirm_duplicates``, the merge endpoint, and both in the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import crm_definitions
import pytest
from flask import Flask
from flask.testing import FlaskClient
from heddle.app import create_app
from screens_package import PASSWORD, csrf_of, log_in

from engine.tables import HISTORY_TABLE, TEAM_TABLE, TOKEN_TABLE, USER_TABLE

USERS = [
    ("root", ["admin"], None, None),
    ("mia", ["sales_manager"], "East", None),
    ("ann", ["sales_rep"], "East", "mia"),
    ("bob", ["sales_rep"], "East", "mia"),
]
Call = Callable[..., tuple[int, Any]]


@pytest.fixture(scope="module")
def app(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """The CRM on a database of the module's, made once; its users with tokens."""
    app = create_app(
        {
            "DATABASE_URL": module_db_url,
            "PACKAGES": str(crm_definitions.PATH),
            "INSTANCE_PATH": str(tmp_path_factory.mktemp("instance")),
            "SECRET_KEY": "test",
            "TOKEN_CACHE_SECONDS": 0,
            "TESTING": True,
        }
    )
    runtime = app.extensions["heddle"]
    runtime.tables.metadata.create_all(runtime.engine)
    tokens = {}
    with runtime.engine.begin() as conn:
        for username, roles, team, manager in USERS:
            user = runtime.accounts.create_user(
                conn, username, PASSWORD, roles, team=team, manager=manager
            )
            tokens[username] = runtime.accounts.issue_token(conn, user, days=1)[0]
    app.config["TEST_TOKENS"] = tokens
    yield app
    runtime.engine.dispose()


@pytest.fixture
def call(app: Flask) -> Call:
    """``call(user, method, path, json)`` → ``(status, body)``, on a database emptied of
    the records of the tests before."""
    runtime = app.extensions["heddle"]
    tables = runtime.tables
    kept = {USER_TABLE, TEAM_TABLE, TOKEN_TABLE, HISTORY_TABLE}
    with runtime.engine.begin() as conn:
        for table in reversed(tables.metadata.sorted_tables):
            if table.name not in kept:
                conn.execute(table.delete())
    client: FlaskClient = app.test_client()
    tokens = app.config["TEST_TOKENS"]

    def run(user: str, method: str, path: str, json: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {tokens[user]}"}
        response = client.open(f"/api/v1{path}", method=method, json=json, headers=headers)
        return response.status_code, response.json

    return run


def create(call: Call, user: str, entity: str, **values: Any) -> dict[str, Any]:
    status, body = call(user, "POST", f"/records/{entity}", values)
    assert status == 201, body
    return dict(body["data"])


def refused(call: Call, user: str, method: str, path: str, body: Any) -> dict[str, Any]:
    status, answer = call(user, method, path, body)
    assert status == 409, answer
    assert set(answer) == {"error"} and answer["error"]["code"] == "duplicate"
    details = answer["error"]["details"]
    assert {"rule", "action", "candidates", "rules"} <= set(details)
    for candidate in details["candidates"]:
        assert {"id", "entity", "title", "owner", "pool"} <= set(candidate)
    return dict(answer["error"])


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("Acme Corporation", "ACME  corporation"),
        ("北京字节跳动科技有限公司", "字节跳动科技"),
        ("株式会社ソニー", "ｿﾆｰ(株)"),
        ("腾讯科技（深圳）有限公司", "腾讯科技"),
    ],
)
def test_a_second_account_of_one_company_is_refused(call: Call, first: str, second: str) -> None:
    made = create(call, "ann", "account", name=first)
    error = refused(call, "ann", "POST", "/records/account", {"name": second})
    assert error["details"]["rule"] == "same_name"
    assert error["details"]["action"] == "claim"
    assert error["details"]["confirmable"] is False
    assert error["details"]["candidates"] == [
        {
            "id": made["id"],
            "entity": "account",
            "title": first,
            "owner": {"id": 3, "name": "ann"},
            "pool": None,
            "score": 1.0,
        }
    ]
    # a claim rule against the entity's own record is not a warning to confirm
    again = refused(
        call,
        "ann",
        "POST",
        "/records/account",
        {"name": second, "confirm_duplicates": ["same_name"]},
    )
    assert again["details"]["rule"] == "same_name"


def test_a_phone_written_another_way_warns_until_confirmed(call: Call) -> None:
    create(call, "ann", "account", name="Acme", phone="+86 138-0013-8000")
    error = refused(
        call, "ann", "POST", "/records/account", {"name": "Zenith", "phone": "13800138000"}
    )
    assert (error["details"]["rule"], error["details"]["action"]) == ("same_phone", "warn")
    assert error["details"]["confirmable"] is True
    status, body = call(
        "ann",
        "POST",
        "/records/account",
        {"name": "Zenith", "phone": "13800138000", "confirm_duplicates": ["same_phone"]},
    )
    assert status == 201, body
    assert "confirm_duplicates" not in body["data"]


def test_an_account_someone_else_owns_is_named_with_its_owner(call: Call) -> None:
    theirs = create(call, "bob", "account", name="Globex Co., Ltd.", description="terms")
    status, _ = call("ann", "GET", f"/records/account/{theirs['id']}")
    assert status == 404  # out of Ann's sight
    error = refused(call, "ann", "POST", "/records/account", {"name": "GLOBEX"})
    assert error["details"]["candidates"][0]["owner"] == {"id": 4, "name": "bob"}
    assert error["details"]["candidates"][0]["title"] == "Globex Co., Ltd."
    assert "terms" not in str(error)
    assert "owned by bob" in error["message"]


def test_leads_and_accounts_check_each_other(call: Call) -> None:
    lead = create(call, "ann", "lead", name="Li Lei", company="上海字节跳动", mobile="13900001111")
    error = refused(call, "ann", "POST", "/records/account", {"name": "字节跳动有限公司"})
    assert error["details"]["candidates"][0]["entity"] == "lead"
    assert error["details"]["confirmable"] is True  # a lead is not a customer yet
    status, body = call(
        "ann",
        "POST",
        "/records/account",
        {"name": "字节跳动有限公司", "confirm_duplicates": ["same_name"]},
    )
    assert status == 201, body
    # the account's phone is checked against leads' mobiles too
    error = refused(
        call,
        "ann",
        "POST",
        "/records/account",
        {"name": "Other", "phone": "139-0000-1111", "confirm_duplicates": ["same_name"]},
    )
    assert error["details"]["rule"] == "same_phone"
    assert error["details"]["candidates"][0] == {
        "id": lead["id"],
        "entity": "lead",
        "title": "Li Lei",
        "owner": {"id": 3, "name": "ann"},
        "pool": None,
        "score": 1.0,
    }


def test_contacts_warn_on_a_mobile_or_email_seen(call: Call) -> None:
    account = create(call, "ann", "account", name="Acme")
    create(
        call,
        "ann",
        "contact",
        name="Wang",
        account=account["id"],
        mobile="13800138000",
        email="Wang@Acme.example",
    )
    error = refused(
        call,
        "ann",
        "POST",
        "/records/contact",
        {"name": "Wang Wei", "account": account["id"], "email": "wang@acme.example"},
    )
    assert error["details"]["rule"] == "same_email"
    error = refused(
        call,
        "ann",
        "POST",
        "/records/contact",
        {"name": "W", "account": account["id"], "mobile": "+86 138 0013 8000"},
    )
    assert error["details"]["rule"] == "same_mobile"


def test_an_update_to_a_taken_name_is_refused(call: Call) -> None:
    create(call, "ann", "account", name="Initech")
    other = create(call, "ann", "account", name="Hooli")
    error = refused(
        call,
        "ann",
        "PATCH",
        f"/records/account/{other['id']}",
        {"name": "INITECH Inc.", "version": other["version"]},
    )
    assert error["details"]["rule"] == "same_name"
    status, body = call(
        "ann",
        "PATCH",
        f"/records/account/{other['id']}",
        {"description": "fine", "version": other["version"]},
    )
    assert status == 200, body


def test_confirmations_must_name_rules(call: Call) -> None:
    for wrong in ("same_name", ["same"], [1], {"a": 1}):
        status, body = call(
            "ann", "POST", "/records/account", {"name": "X", "confirm_duplicates": wrong}
        )
        assert status == 400, body
        assert "confirm_duplicates" in body["error"]["fields"]


def test_converting_a_lead_is_not_refused_by_the_lead_itself(call: Call) -> None:
    lead = create(
        call, "ann", "lead", name="Han Meimei", company="Umbrella Ltd.", phone="021-5555-0000"
    )
    for transition in ("qualify", "convert"):
        status, body = call(
            "ann",
            "POST",
            f"/records/lead/{lead['id']}/transitions/{transition}",
            {"version": lead["version"]},
        )
        assert status == 200, body
        lead = body["data"]
    assert lead["converted_account"]
    status, account = call("ann", "GET", f"/records/account/{lead['converted_account']}")
    assert account["data"]["name"] == "Umbrella Ltd."


# --- merge ------------------------------------------------------------------------------


def test_merge_through_the_api(call: Call) -> None:
    survivor = create(call, "root", "account", name="Acme", grade="A")
    loser = create(call, "root", "account", name="Acme Trading", phone="021-5555-0000", grade="C")
    contact = create(
        call, "root", "contact", name="Wang", account=loser["id"], mobile="13800001111"
    )
    status, body = call(
        "root",
        "POST",
        f"/records/account/{survivor['id']}/merge",
        {
            "loser": loser["id"],
            "version": survivor["version"],
            "loser_version": loser["version"],
            "fields": {"name": "survivor", "grade": "loser"},
        },
    )
    assert status == 200, body
    merged = body["data"]
    assert (merged["id"], merged["name"], merged["grade"], merged["phone"]) == (
        survivor["id"],
        "Acme",
        "C",
        "021-5555-0000",
    )
    assert call("root", "GET", f"/records/account/{loser['id']}")[0] == 404
    status, moved = call("root", "GET", f"/records/contact/{contact['id']}")
    assert moved["data"]["account"] == survivor["id"]
    status, history = call("root", "GET", f"/records/account/{survivor['id']}/history")
    assert status == 200
    assert [e["action"] for e in history["data"]] == ["create", "create", "delete", "merge"]
    assert history["data"][1]["merged_from"] == loser["id"]
    assert history["data"][-1]["changes"]["id"] == [loser["id"], survivor["id"]]


def test_merge_refusals(call: Call) -> None:
    mine = create(call, "ann", "account", name="Acme")
    other = create(call, "ann", "account", name="Beta")
    path = f"/records/account/{mine['id']}/merge"
    body = {"loser": other["id"], "version": mine["version"], "loser_version": other["version"]}
    # a sales rep may not delete accounts: no merging them away
    status, answer = call("ann", "POST", path, body)
    assert status == 403, answer
    for wrong, field in (
        ({**body, "loser": "x"}, "loser"),
        ({k: v for k, v in body.items() if k != "loser"}, "loser"),
        ({**body, "loser_version": 0}, "loser_version"),
        ({**body, "extra": 1}, "extra"),
        ({**body, "fields": {"name": "mine"}}, "fields.name"),
        ({**body, "loser": mine["id"]}, "loser"),
    ):
        status, answer = call("root", "POST", path, wrong)
        assert status == 400, (wrong, answer)
        assert field in answer["error"]["fields"], answer
    status, answer = call("root", "POST", path, {**body, "version": mine["version"] + 1})
    assert (status, answer["error"]["code"]) == (409, "stale_version")


# --- the document ---------------------------------------------------------------------------


def test_the_document_describes_duplicates_and_merges(app: Flask, call: Call) -> None:
    status, document = call("root", "GET", "/openapi.json")
    assert status == 200
    paths = document["paths"]
    create_op = paths["/records/account"]["post"]
    assert "409" in create_op["responses"]
    assert "409" in paths["/records/account/{id}"]["patch"]["responses"]
    schemas = document["components"]["schemas"]
    confirm = schemas["AccountInput"]["properties"]["confirm_duplicates"]
    assert confirm["items"]["enum"] == ["same_name", "same_phone"]
    assert schemas["AccountPatch"]["properties"]["confirm_duplicates"] == confirm
    assert "confirm_duplicates" not in schemas["ProductInput"]["properties"]
    assert "DuplicateDetails" in schemas
    merge = paths["/records/account/{id}/merge"]["post"]
    body = merge["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["loser", "version", "loser_version"]
    assert "grade" in body["properties"]["fields"]["properties"]
    assert "code" not in body["properties"]["fields"]["properties"]  # an autonumber
    assert set(merge["responses"]) >= {"200", "400", "403", "404", "409", "422"}
    assert "/records/quote_line/{id}/merge" not in paths  # child rows are merged with parents
    # a sales rep may not delete accounts: no merge in their document
    status, theirs = call("ann", "GET", "/openapi.json")
    assert "/records/account/{id}/merge" not in theirs["paths"]
    assert "/records/contact/{id}/merge" in theirs["paths"]


# --- the screens ---------------------------------------------------------------------------


def test_the_form_shows_the_duplicates_and_saves_when_confirmed(app: Flask, call: Call) -> None:
    create(call, "bob", "account", name="Stark Industries", phone="+86 138-0013-8000")
    client = app.test_client()
    log_in(client, "ann")
    token = csrf_of(client.get("/app/account/new").get_data(as_text=True))
    form = {"csrf_token": token, "name": "Wayne Enterprises", "phone": "13800138000"}
    page = client.post("/app/account/new", data=form)
    assert page.status_code == 409
    html = page.get_data(as_text=True)
    assert "This record may already exist" in html
    assert "Stark Industries (owned by bob)" in html
    assert 'name="confirm_duplicates" value="same_phone"' in html
    saved = client.post("/app/account/new", data={**form, "confirm_duplicates": "same_phone"})
    assert saved.status_code == 302, saved.get_data(as_text=True)
    # a claim on an account of its own entity offers no box to tick
    page = client.post("/app/account/new", data={**form, "name": "STARK industries"})
    assert page.status_code == 409
    assert 'value="same_name"' not in page.get_data(as_text=True)
