"""The permission matrix through the API: every role × entity × action × scope.

An independent oracle says what each role may do to each record (by how the record
relates to the caller: their own, their team's, a team below, anyone's); the API must
agree on every request — and a hidden field must never appear in any response.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

Headers = Callable[[str], dict[str, str]]

# What each role's definition grants (the oracle; mirrors PACKAGE in conftest.py).
GRANTS: dict[str, dict[str, dict[str, str]]] = {
    "rep": {
        "account": {"read": "own", "create": "own", "update": "own", "delete": "own"},
        "note": {"read": "team", "create": "own", "update": "own", "delete": "none"},
    },
    "manager": {
        "account": {
            "read": "team_and_below",
            "create": "team",
            "update": "team_and_below",
            "delete": "team",
        },
        "note": {"read": "all", "create": "none", "update": "team", "delete": "none"},
    },
    "viewer": {
        "account": {"read": "all", "create": "none", "update": "none", "delete": "none"},
        "note": {"read": "all", "create": "none", "update": "none", "delete": "none"},
    },
}
ROLE = {"mia": "manager", "ann": "rep", "bob": "rep", "vic": "viewer"}
TEAM = {"root": "HQ", "mia": "East", "ann": "East-North", "bob": "West", "vic": None}
BELOW = {
    "East": {"East", "East-North"},
    "East-North": {"East-North"},
    "West": {"West"},
    "HQ": {"HQ"},
}
HIDDEN = {"rep": {"account": {"cost"}}, "viewer": {"account": {"cost"}}, "manager": {}}


def covers(scope: str, user: str, owner: str) -> bool:
    if scope == "all":
        return True
    if scope == "none":
        return False
    if user == owner:
        return True
    team, theirs = TEAM[user], TEAM[owner]
    if scope == "own" or team is None or theirs is None:
        return False
    return theirs == team if scope == "team" else theirs in BELOW[team]


def allowed(user: str, entity: str, action: str, owner: str) -> bool:
    return user == "root" or covers(GRANTS[ROLE[user]][entity][action], user, owner)


@pytest.fixture
def seeded(client: FlaskClient, token: Headers) -> dict[tuple[str, str], dict[str, Any]]:
    """One account and one note owned (authored) by each of ann, bob, mia and root."""
    made = {}
    for owner in ("ann", "bob", "mia", "root"):
        account = client.post(
            "/api/v1/records/account", headers=token("root"),
            json={"name": f"{owner}'s account", "cost": "100", "owner_id": _uid(client, token, owner),
                  "team_id": _tid(client, token, owner)},
        )  # fmt: skip
        assert account.status_code == 201, account.json
        made[("account", owner)] = account.json["data"]
    for owner in ("ann", "bob", "mia", "root"):
        author = owner if owner != "mia" else "root"  # mia (manager) may not create notes
        note = client.post(
            "/api/v1/records/note", headers=token(author),
            json={"text": f"{owner}'s note", "account": made[("account", "root")]["id"]},
        )  # fmt: skip
        assert note.status_code == 201, note.json
        made[("note", author)] = note.json["data"]
    return made


def _uid(client: FlaskClient, token: Headers, username: str) -> int:
    from heddle.app import runtime

    with client.application.app_context():
        heddle = runtime()
        with heddle.engine.connect() as conn:
            user = heddle.accounts.by_username(conn, username)
    assert user is not None
    return user.id


def _tid(client: FlaskClient, token: Headers, username: str) -> int | None:
    from heddle.app import runtime

    with client.application.app_context():
        heddle = runtime()
        with heddle.engine.connect() as conn:
            user = heddle.accounts.by_username(conn, username)
    assert user is not None
    return user.team_id


def _owner_of(made: dict[tuple[str, str], dict[str, Any]], entity: str, record_id: int) -> str:
    return next(
        owner for (kind, owner), rec in made.items() if kind == entity and rec["id"] == record_id
    )


@pytest.mark.parametrize("user", ["ann", "bob", "mia", "vic", "root"])
@pytest.mark.parametrize("entity", ["account", "note"])
def test_read_and_list_follow_the_scope(
    client: FlaskClient, token: Headers, seeded: dict[tuple[str, str], dict[str, Any]],
    user: str, entity: str,
) -> None:  # fmt: skip
    headers = token(user)
    hidden = HIDDEN.get(ROLE.get(user, ""), {}).get(entity, set())
    listed = client.get(f"/api/v1/records/{entity}?limit=100", headers=headers)
    assert listed.status_code == 200, listed.json
    listed_ids = {row["id"] for row in listed.json["data"]}
    assert listed.json["count"] == len(listed_ids)
    for (kind, owner), record in seeded.items():
        if kind != entity:
            continue
        expected = allowed(user, entity, "read", owner)
        response = client.get(f"/api/v1/records/{entity}/{record['id']}", headers=headers)
        assert response.status_code == (200 if expected else 404), (user, owner, response.json)
        assert (record["id"] in listed_ids) == expected, (user, owner)
        if expected:
            assert not hidden & set(response.json["data"]), response.json
    for row in listed.json["data"]:
        assert not hidden & set(row)
    meta = client.get(f"/api/v1/meta/entities/{entity}", headers=headers).json["data"]
    assert not hidden & {f["name"] for f in meta["fields"]}


@pytest.mark.parametrize("user", ["ann", "bob", "mia", "vic", "root"])
@pytest.mark.parametrize("entity", ["account", "note"])
@pytest.mark.parametrize("action", ["update", "delete"])
def test_changes_follow_the_scope(
    client: FlaskClient, token: Headers, seeded: dict[tuple[str, str], dict[str, Any]],
    user: str, entity: str, action: str,
) -> None:  # fmt: skip
    headers = token(user)
    for (kind, owner), record in seeded.items():
        if kind != entity:
            continue
        path = f"/api/v1/records/{entity}/{record['id']}"
        if action == "update":
            change = {"name": "changed"} if entity == "account" else {"text": "changed"}
            response = client.patch(
                path, headers=headers, json={**change, "version": record["version"]}
            )
        else:
            response = client.delete(f"{path}?version={record['version']}", headers=headers)
        if allowed(user, entity, "read", owner):
            expected = (
                (200 if action == "update" else 204)
                if allowed(user, entity, action, owner)
                else 403
            )
        else:
            expected = 404
        assert response.status_code == expected, (user, owner, action, response.json)
        if expected in (200, 204):
            # put it back for the next record's check
            current = client.get(path, headers=token("root"))
            if action == "update":
                assert current.json["data"]["version"] == record["version"] + 1
            else:
                assert current.status_code == 404
            break


@pytest.mark.parametrize(
    ("user", "entity", "status"),
    [("ann", "account", 201), ("mia", "account", 201), ("vic", "account", 403),
     ("ann", "note", 201), ("mia", "note", 403), ("vic", "note", 403), ("root", "note", 201)],
)  # fmt: skip
def test_create_follows_the_grant(
    client: FlaskClient, token: Headers, user: str, entity: str, status: int,
    error_of: Callable[[Any], dict[str, Any]],
) -> None:  # fmt: skip
    body = {"name": "New"} if entity == "account" else {"text": "New"}
    response = client.post(f"/api/v1/records/{entity}", headers=token(user), json=body)
    assert response.status_code == status, response.json
    if status == 403:
        assert error_of(response)["code"] == "forbidden"
    elif entity == "account" and ROLE.get(user) == "rep":
        assert "cost" not in response.json["data"]


def test_hidden_fields_cannot_be_written_filtered_or_sorted(
    client: FlaskClient, token: Headers, error_of: Callable[[Any], dict[str, Any]]
) -> None:
    headers = token("ann")
    response = client.post(
        "/api/v1/records/account", headers=headers, json={"name": "X", "cost": "5"}
    )
    assert response.status_code == 422
    assert error_of(response)["fields"] == {"cost": ["Unknown field."]}
    for query, key in (
        ("cost__gte=1", "cost__gte"),
        ("sort=-cost", "sort"),
        ("fields=name,cost", "fields"),
    ):
        response = client.get(f"/api/v1/records/account?{query}", headers=headers)
        assert response.status_code == 400, query
        assert list(error_of(response)["fields"]) == [key]
    # a search never matches on a hidden field: ann's account costs 100, not findable by it
    found = client.get("/api/v1/records/account?q=100", headers=headers).json["data"]
    assert found == []


def test_a_rep_cannot_give_a_record_away(
    client: FlaskClient, token: Headers, error_of: Callable[[Any], dict[str, Any]]
) -> None:
    created = client.post("/api/v1/records/account", headers=token("ann"), json={"name": "Mine"})
    record = created.json["data"]
    response = client.patch(
        f"/api/v1/records/account/{record['id']}", headers=token("ann"),
        json={"owner_id": _uid(client, token, "bob"), "version": record["version"]},
    )  # fmt: skip
    assert response.status_code == 422
    assert error_of(response)["fields"] == {"owner_id": ["Outside what you may manage (own)."]}
