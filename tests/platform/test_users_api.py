"""``/api/v1/users`` and ``/api/v1/teams``: administrators only; passwords never leave;
a disabled user's sessions and tokens stop at once (issue 9)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from heddle.accounts import Accounts

Headers = Callable[[str], dict[str, str]]
ErrorOf = Callable[[Any], dict[str, Any]]

NEW = {"username": "dee", "password": "a long password", "roles": ["rep"], "team": "West"}
USER_KEYS = {"id", "username", "name", "email", "team", "manager", "roles", "locale", "active",
             "created_at"}  # fmt: skip


def _uid(client: FlaskClient, token: Headers, username: str) -> int:
    users = client.get("/api/v1/users", headers=token("root")).json["data"]
    return int(next(u["id"] for u in users if u["username"] == username))


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/users"), ("POST", "/users"), ("GET", "/users/1"), ("PATCH", "/users/1"),
     ("GET", "/teams"), ("POST", "/teams"), ("GET", "/teams/1"), ("PATCH", "/teams/1")],
)  # fmt: skip
def test_only_admins_may_manage_users_and_teams(
    client: FlaskClient, token: Headers, error_of: ErrorOf, method: str, path: str
) -> None:
    body = {"name": "X"} if method in ("POST", "PATCH") else None
    for username in ("mia", "ann", "vic"):
        response = client.open(f"/api/v1{path}", method=method, headers=token(username), json=body)
        assert response.status_code == 403, (username, response.json)
        assert error_of(response)["code"] == "forbidden"
    assert client.open(f"/api/v1{path}", method=method, json=body).status_code == 401


def test_users_are_listed_with_filters_and_without_passwords(
    client: FlaskClient, token: Headers, password: str
) -> None:
    response = client.get("/api/v1/users", headers=token("root"))
    assert response.status_code == 200
    body = response.json
    assert set(body) == {"data", "next_cursor", "count", "count_estimated"}
    assert body["count"] == 6 and body["next_cursor"] is None
    assert [u["username"] for u in body["data"]] == ["ann", "bob", "cal", "mia", "root", "vic"]
    ann = body["data"][0]
    assert set(ann) == USER_KEYS
    assert ann["team"] == "East-North" and ann["manager"] == "mia" and ann["roles"] == ["rep"]
    text = response.get_data(as_text=True)
    assert "password" not in text and "argon2" not in text and password not in text

    def names(query: str) -> list[str]:
        found = client.get(f"/api/v1/users?{query}", headers=token("root"))
        assert found.status_code == 200, found.json
        return [u["username"] for u in found.json["data"]]

    assert names("role=rep") == ["ann", "bob", "cal"]
    assert names("team=East") == ["cal", "mia"]
    assert names("role=rep&team=East") == ["cal"]
    assert names("active=false") == []
    assert names("team=Nowhere") == []
    for bad in ("active=yes", "team=a%00b"):
        assert client.get(f"/api/v1/users?{bad}", headers=token("root")).status_code == 400


def test_a_user_is_created_changed_and_disabled(
    client: FlaskClient, token: Headers, error_of: ErrorOf
) -> None:
    made = client.post("/api/v1/users", headers=token("root"), json={**NEW, "manager": "bob"})
    assert made.status_code == 201, made.json
    dee = made.json["data"]
    assert set(dee) == USER_KEYS
    assert (dee["username"], dee["team"], dee["manager"], dee["active"]) == (
        "dee", "West", "bob", True
    )  # fmt: skip
    login = {"username": "dee", "password": NEW["password"]}
    dee_token = client.post("/api/v1/auth/token", json=login).json["token"]
    dee_headers = {"Authorization": f"Bearer {dee_token}"}
    assert client.get("/api/v1/records/account", headers=dee_headers).status_code == 200

    path = f"/api/v1/users/{dee['id']}"
    changed = client.patch(
        path, headers=token("root"), json={"roles": ["manager"], "team": "East", "manager": None}
    )
    assert changed.status_code == 200, changed.json
    assert changed.json["data"]["roles"] == ["manager"]
    assert (changed.json["data"]["team"], changed.json["data"]["manager"]) == ("East", None)
    assert client.get(path, headers=token("root")).json["data"] == changed.json["data"]

    off = client.patch(path, headers=token("root"), json={"active": False})
    assert off.status_code == 200 and off.json["data"]["active"] is False
    # at once: the token, a new login
    assert client.get("/api/v1/records/account", headers=dee_headers).status_code == 401
    assert client.post("/api/v1/auth/token", json=login).status_code == 401
    on = client.patch(path, headers=token("root"), json={"active": True})
    assert on.status_code == 200
    assert client.get("/api/v1/records/account", headers=dee_headers).status_code == 200

    password = client.patch(path, headers=token("root"), json={"password": "another long one"})
    assert password.status_code == 200 and "password" not in password.get_data(as_text=True)
    assert client.post("/api/v1/auth/token", json=login).status_code == 401
    relogin = {"username": "dee", "password": "another long one"}
    assert client.post("/api/v1/auth/token", json=relogin).status_code == 201


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({**NEW, "username": "Test Person"}, "username", "a username may hold only"),
        ({**NEW, "username": "ann"}, "username", "user 'ann' already exists"),
        ({**NEW, "roles": ["boss"]}, "roles", "unknown role 'boss'"),
        ({**NEW, "roles": []}, "roles", "at least one role"),
        ({**NEW, "password": "short"}, "password", "at least 8 characters"),
        ({**NEW, "manager": "ghost"}, "manager", "no user called 'ghost'"),
        ({**NEW, "team": "a\x00b"}, "team", "control characters"),
        ({**NEW, "roles": "rep"}, "roles", "Not a valid list of strings."),
        ({**NEW, "active": "yes"}, "active", "Not a valid boolean."),
        ({**NEW, "name": 7}, "name", "Not a valid string."),
        ({**NEW, "is_admin": True}, "is_admin", "Unknown field."),
        ({"username": "dee"}, "password", "Missing data for required field."),
    ],
)
def test_bad_users_are_refused_with_their_field(
    client: FlaskClient, token: Headers, error_of: ErrorOf, body: Any, field: str, message: str
) -> None:
    response = client.post("/api/v1/users", headers=token("root"), json=body)
    assert response.status_code == 422, response.json
    error = error_of(response)
    assert message in error["fields"][field][0], error
    assert len(client.get("/api/v1/users", headers=token("root")).json["data"]) == 6


def test_an_admin_cannot_lock_themselves_out(
    client: FlaskClient, token: Headers, error_of: ErrorOf
) -> None:
    path = f"/api/v1/users/{_uid(client, token, 'root')}"
    for body, field in (({"active": False}, "active"), ({"roles": ["rep"]}, "roles")):
        response = client.patch(path, headers=token("root"), json=body)
        assert response.status_code == 422
        assert field in error_of(response)["fields"]
    assert client.get("/api/v1/users", headers=token("root")).status_code == 200


def test_a_manager_loop_is_refused(client: FlaskClient, token: Headers) -> None:
    mia = _uid(client, token, "mia")
    response = client.patch(f"/api/v1/users/{mia}", headers=token("root"), json={"manager": "ann"})
    assert response.status_code == 422
    assert "manager" in response.json["error"]["fields"]


@pytest.mark.parametrize("path", ["/users/999", f"/users/{2**63}", "/teams/999", f"/teams/{2**64}"])
def test_absent_ids_are_404(client: FlaskClient, token: Headers, path: str) -> None:
    assert client.get(f"/api/v1{path}", headers=token("root")).status_code == 404
    patched = client.patch(f"/api/v1{path}", headers=token("root"), json={"name": "x"})
    assert patched.status_code == 404


def test_teams_are_created_renamed_and_moved(client: FlaskClient, token: Headers) -> None:
    teams = client.get("/api/v1/teams", headers=token("root")).json
    by_name = {t["name"]: t for t in teams["data"]}
    assert by_name["East-North"]["parent"] == "East" and by_name["East"]["users"] == 2
    made = client.post(
        "/api/v1/teams", headers=token("root"), json={"name": "South", "parent": "East"}
    )
    assert made.status_code == 201, made.json
    south = made.json["data"]
    assert (south["name"], south["parent"], south["users"]) == ("South", "East", 0)
    twice = client.post("/api/v1/teams", headers=token("root"), json={"name": "South"})
    assert twice.status_code == 422 and "already exists" in twice.json["error"]["message"]
    east = by_name["East"]["id"]
    loop = client.patch(f"/api/v1/teams/{east}", headers=token("root"), json={"parent": "South"})
    assert loop.status_code == 422 and "parent" in loop.json["error"]["fields"]
    path = f"/api/v1/teams/{south['id']}"
    moved = client.patch(path, headers=token("root"), json={"name": "Süd", "parent": None})
    assert moved.status_code == 200
    assert (moved.json["data"]["name"], moved.json["data"]["parent"]) == ("Süd", None)
    missing = client.patch(path, headers=token("root"), json={"parent": "Atlantis"})
    assert missing.status_code == 422 and "no team called 'Atlantis'" in missing.get_data(True)


def test_a_user_disabled_elsewhere_cannot_write_at_once(
    app: Flask, client: FlaskClient, token: Headers
) -> None:
    """As `heddle user disable` in another process: this process's token cache does not
    hear of it, yet the next write asks the database. Reads may be served from the cache
    for HEDDLE_TOKEN_CACHE_SECONDS (documented); sessions are read on every request."""
    runtime = app.extensions["heddle"]
    runtime.tokens.seconds = 60
    headers = token("ann")
    assert client.get("/api/v1/records/account", headers=headers).status_code == 200  # cached
    session = app.test_client()
    login = {"username": "bob", "password": "correct horse battery"}
    assert session.post("/api/v1/auth/session", json=login).status_code == 200
    assert session.get("/api/v1/records/account").status_code == 200

    elsewhere = Accounts()  # the command line's: no Model, its own cache
    with runtime.engine.begin() as conn:
        for username in ("ann", "bob"):
            user = elsewhere.by_username(conn, username)
            assert user is not None
            elsewhere.update_user(conn, user.id, active=False)

    write = client.post("/api/v1/records/account", headers=headers, json={"name": "Late"})
    assert write.status_code == 401
    assert session.get("/api/v1/records/account").status_code == 401
    with runtime.engine.connect() as conn:
        assert (
            conn.exec_driver_sql("SELECT count(*) FROM account WHERE name = 'Late'").scalar() == 0
        )


def test_the_document_has_the_endpoints_for_admins_only(
    client: FlaskClient, token: Headers
) -> None:
    admin = client.get("/api/v1/openapi.json", headers=token("root")).json
    anonymous = client.get("/api/v1/openapi.json").json
    rep = client.get("/api/v1/openapi.json", headers=token("ann")).json
    for doc in (admin, anonymous):
        assert {"/users", "/users/{id}", "/teams", "/teams/{id}"} <= set(doc["paths"])
        user = doc["components"]["schemas"]["User"]
        assert "password" not in user["properties"]
        roles = doc["components"]["schemas"]["UserCreate"]["properties"]["roles"]
        assert roles["items"]["enum"] == ["admin", "manager", "rep", "viewer"]
    assert "/users" not in rep["paths"] and "User" not in rep["components"]["schemas"]


def test_a_user_disabled_elsewhere_cannot_read_after_the_next_check(
    app: Flask, client: FlaskClient, token: Headers
) -> None:
    """The accounts' change counter rides on the once-a-second definition check: a token
    this process trusted from its cache stops reading within one check, with no query on
    the reads themselves."""
    runtime = app.extensions["heddle"]
    runtime.tokens.seconds = 60
    # the checks run when this test says (refresh), not when a second has passed: on a
    # slow machine one came due between the two reads below and ended the cached trust
    runtime.check_seconds = 3600
    runtime._next_check = time.monotonic() + 3600
    headers = token("ann")
    runtime.refresh()  # the counter as it is now
    assert client.get("/api/v1/records/account", headers=headers).status_code == 200  # cached
    elsewhere = Accounts()  # the command line's: its own cache
    with runtime.engine.begin() as conn:
        user = elsewhere.by_username(conn, "ann")
        assert user is not None
        elsewhere.update_user(conn, user.id, active=False)
    assert client.get("/api/v1/records/account", headers=headers).status_code == 200  # cache
    runtime.refresh()  # what every process does at most once a second
    assert client.get("/api/v1/records/account", headers=headers).status_code == 401
