"""The permission matrix through the API: every role × entity × action × scope.

An independent oracle says what each role may do to each record (by how the record
relates to the caller: their own, their team's, a team below, anyone's); the API must
agree on every request — and a hidden field must never appear in any response. Creates
are checked for every owner and team the new record could be given; a field a role
marks read-only is refused for that role only; child rows (an account's lines) are read
and written only as their parent allows.
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
ROLE = {"mia": "manager", "ann": "rep", "bob": "rep", "vic": "viewer", "cal": "rep"}
TEAM = {
    "root": "HQ", "mia": "East", "ann": "East-North", "bob": "West", "vic": None, "cal": "East",
}  # fmt: skip
BELOW = {
    "East": {"East", "East-North"},
    "East-North": {"East-North"},
    "West": {"West"},
    "HQ": {"HQ"},
}
HIDDEN = {"rep": {"account": {"cost"}}, "viewer": {"account": {"cost"}}, "manager": {}}
READONLY = {"manager": {"account": {"rating"}}}


def in_scope(scope: str, user: str, owner: str, team: str | None) -> bool:
    """Whether a record owned by ``owner`` and belonging to ``team`` lies within ``user``'s
    ``scope``: ``own`` is the records they own; ``team`` adds their team's records,
    ``team_and_below`` those of the teams under it too. A user without a team has only
    their own."""
    if scope == "all":
        return True
    if scope == "none":
        return False
    if user == owner:
        return True
    mine = TEAM[user]
    if scope == "own" or mine is None or team is None:
        return False
    return team == mine if scope == "team" else team in BELOW[mine]


def reaches_team(scope: str, user: str, team: str | None) -> bool:
    """Whether ``user`` may give a record to ``team``: their own team (``own``, ``team``),
    it and the teams under it (``team_and_below``), any (``all``); no team is always
    allowed."""
    if scope == "all" or team is None:
        return True
    mine = TEAM[user]
    if scope == "none" or mine is None:
        return False
    return team in BELOW[mine] if scope == "team_and_below" else team == mine


def covers(scope: str, user: str, owner: str) -> bool:
    """``in_scope`` for a record in its owner's team (a note: its author's)."""
    return in_scope(scope, user, owner, TEAM[owner])


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
    from heddle.extensions import runtime

    with client.application.app_context():
        heddle = runtime()
        with heddle.engine.connect() as conn:
            user = heddle.accounts.by_username(conn, username)
    assert user is not None
    return user.id


def _tid(client: FlaskClient, token: Headers, username: str) -> int | None:
    from heddle.extensions import runtime

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


# --- create: whom a record may be given to ---------------------------------------------

CREATORS = ["ann", "cal", "bob", "mia", "vic", "root"]
OWNERS: list[str | None] = ["ann", "bob", "mia", "cal", "root", "vic", None]  # None: left out
LEFT_OUT = "(left out)"
TEAMS: list[str | None] = ["East", "East-North", "West", "HQ", None, LEFT_OUT]


def _ids(client: FlaskClient) -> tuple[dict[str, int], dict[str, int]]:
    """The ids of the test users and of the teams, by name."""
    from heddle.extensions import runtime

    with client.application.app_context():
        heddle = runtime()
        with heddle.engine.connect() as conn:
            users = {u: heddle.accounts.by_username(conn, u) for u in TEAM}
            teams = {t: heddle.accounts.team_id(conn, t) for t in BELOW}
    return {u: user.id for u, user in users.items() if user is not None}, {
        t: team for t, team in teams.items() if team is not None
    }


def may_create(user: str, owner: str, team: str | None) -> bool:
    """The intended rule: a new record must lie within the creator's create scope, judged
    by the owner and team it will have — the same test as for reading it."""
    return user == "root" or in_scope(GRANTS[ROLE[user]]["account"]["create"], user, owner, team)


def create_body(
    users: dict[str, int], teams: dict[str, int], owner: str | None, team: str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"name": f"for {owner} in {team}"}
    if owner is not None:
        body["owner_id"] = users[owner]
    if team != LEFT_OUT:
        body["team_id"] = None if team is None else teams[team]
    return body


@pytest.mark.parametrize("user", CREATORS)
def test_create_follows_the_scope_for_every_owner_and_team(
    client: FlaskClient, token: Headers, error_of: Callable[[Any], dict[str, Any]], user: str
) -> None:
    """Every creator gives a new account to every owner and team (their own, their team,
    a team below, another team, no team), or leaves either out: a left-out owner is the
    creator, a left-out team the owner's. The oracle decides each."""
    users, teams = _ids(client)
    scope = "all" if user == "root" else GRANTS[ROLE[user]]["account"]["create"]
    made = 0
    for owner in OWNERS:
        for team in TEAMS:
            response = client.post(
                "/api/v1/records/account", headers=token(user),
                json=create_body(users, teams, owner, team),
            )  # fmt: skip
            who = owner or user
            where = TEAM[who] if team == LEFT_OUT else team
            case = (user, owner, team, response.json)
            if scope == "none":
                assert response.status_code == 403, case
                assert error_of(response)["code"] == "forbidden"
            elif not may_create(user, who, where):
                assert response.status_code == 422, case
                assert error_of(response)["fields"] == {
                    "owner_id": [f"Outside what you may manage ({scope.replace('_', ' ')})."]
                }, case
            elif user != "root" and not reaches_team(scope, user, where):
                assert response.status_code == 422, case
                assert error_of(response)["fields"] == {
                    "team_id": [
                        f"Outside the teams you may give records to ({scope.replace('_', ' ')})."
                    ]
                }, case
            else:
                assert response.status_code == 201, case
                assert response.json["data"]["owner_id"] == users[who], case
                assert response.json["data"]["team_id"] == (where and teams[where]), case
                made += 1
    listed = client.get("/api/v1/records/account?limit=500", headers=token("root"))
    assert listed.json["count"] == made  # a refused create leaves nothing behind


@pytest.mark.parametrize("user", CREATORS)
def test_a_hand_over_follows_the_update_scope(
    client: FlaskClient, token: Headers, error_of: Callable[[Any], dict[str, Any]], user: str
) -> None:
    """Changing only the owner moves the record to the new owner's team; the record must
    stay within what the user may update, and go to a team their scope reaches."""
    users, teams = _ids(client)
    scope = "all" if user == "root" else GRANTS[ROLE[user]]["account"]["update"]
    for owner in TEAM:
        mine = client.post(
            "/api/v1/records/account", headers=token("root"),
            json=create_body(users, teams, user, TEAM[user]),
        ).json["data"]  # fmt: skip
        path = f"/api/v1/records/account/{mine['id']}"
        response = client.patch(
            path, headers=token(user), json={"owner_id": users[owner], "version": 1}
        )
        case = (user, owner, response.json)
        if scope == "none":
            assert response.status_code == 403, case
        elif user != "root" and not in_scope(scope, user, owner, TEAM[owner]):
            assert response.status_code == 422, case
            assert error_of(response)["fields"] == {
                "owner_id": [f"Outside what you may manage ({scope.replace('_', ' ')})."]
            }, case
            assert client.get(path, headers=token("root")).json["data"]["version"] == 1
        elif user != "root" and not reaches_team(scope, user, TEAM[owner]):
            assert response.status_code == 422, case
            assert "team_id" in error_of(response)["fields"], case
            assert client.get(path, headers=token("root")).json["data"]["version"] == 1
        else:
            assert response.status_code == 200, case
            assert response.json["data"]["team_id"] == (TEAM[owner] and teams[TEAM[owner]])


# --- read-only fields -------------------------------------------------------------------


@pytest.mark.parametrize("user", ["mia", "ann", "root"])
def test_a_readonly_field_is_refused_for_its_role_only(
    client: FlaskClient, token: Headers, error_of: Callable[[Any], dict[str, Any]], user: str
) -> None:
    """The manager role marks ``rating`` read-only: sending it at all — a new value, or
    the value it has — refuses the whole write with 422, and changes nothing. Other roles
    and the admin write it."""
    readonly = "rating" in READONLY.get(ROLE.get(user, ""), {}).get("account", set())
    headers, refusal = token(user), {"rating": ["Read-only field."]}
    meta = client.get("/api/v1/meta/entities/account", headers=headers).json["data"]
    assert next(f for f in meta["fields"] if f["name"] == "rating")["readonly"] is readonly
    created = client.post(
        "/api/v1/records/account", headers=headers, json={"name": "Rated", "rating": 3}
    )
    if readonly:
        assert created.status_code == 422, created.json
        assert error_of(created)["fields"] == refusal
        assert client.get("/api/v1/records/account", headers=token("root")).json["count"] == 0
    else:
        assert created.status_code == 201, created.json
        assert created.json["data"]["rating"] == 3
    plain = client.post("/api/v1/records/account", headers=headers, json={"name": "Plain"})
    assert plain.status_code == 201, plain.json
    path, version = f"/api/v1/records/account/{plain.json['data']['id']}", 1
    for value in (4, None):
        body = {"name": f"Renamed {value}", "rating": value, "version": version}
        changed = client.patch(path, headers=headers, json=body)
        if readonly:
            assert changed.status_code == 422, changed.json
            assert error_of(changed)["fields"] == refusal
            stored = client.get(path, headers=token("root")).json["data"]
            assert (stored["name"], stored["rating"], stored["version"]) == ("Plain", None, 1)
        else:
            assert changed.status_code == 200, changed.json
            assert changed.json["data"]["rating"] == value
            version = changed.json["data"]["version"]
    # the rest of the record stays writable for the role
    renamed = client.patch(path, headers=headers, json={"name": "Renamed", "version": version})
    assert renamed.status_code == 200, renamed.json


# --- child rows follow their parent -----------------------------------------------------

PARENTS = ["ann", "bob", "mia", "cal", "root"]  # owners of one account with two lines each
ChildSeed = dict[str, dict[str, Any]]


@pytest.fixture
def parents(client: FlaskClient, token: Headers) -> ChildSeed:
    """One account per owner of PARENTS, in the owner's team, with lines ``a`` and ``b``."""
    users, teams = _ids(client)
    made = {}
    for owner in PARENTS:
        response = client.post(
            "/api/v1/records/account", headers=token("root"),
            json={"name": f"{owner}'s account", "owner_id": users[owner],
                  "team_id": teams[TEAM[owner] or ""], "lines": [{"item": "a"}, {"item": "b"}]},
        )  # fmt: skip
        assert response.status_code == 201, response.json
        made[owner] = response.json["data"]
    return made


def _items(client: FlaskClient, token: Headers, account: dict[str, Any]) -> list[str]:
    """The items of an account's lines, as the admin reads them."""
    response = client.get(f"/api/v1/records/account/{account['id']}", headers=token("root"))
    return [line["item"] for line in response.json["data"]["lines"]]


@pytest.mark.parametrize("user", ["ann", "bob", "mia", "vic", "root"])
def test_child_rows_are_read_through_their_parent(
    client: FlaskClient, token: Headers, parents: ChildSeed, user: str
) -> None:
    headers = token(user)
    readable: set[int] = set()
    for owner, account in parents.items():
        expected = allowed(user, "account", "read", owner)
        got = client.get(f"/api/v1/records/account/{account['id']}", headers=headers)
        assert got.status_code == (200 if expected else 404), (user, owner)
        lines = account["lines"]
        if expected:
            assert [line["item"] for line in got.json["data"]["lines"]] == ["a", "b"]
            readable |= {line["id"] for line in lines}
        for line in lines:
            direct = client.get(f"/api/v1/records/account_line/{line['id']}", headers=headers)
            assert direct.status_code == (200 if expected else 404), (user, owner, direct.json)
        by_parent = client.get(
            f"/api/v1/records/account_line?account={account['id']}", headers=headers
        )
        assert by_parent.status_code == 200, by_parent.json
        assert len(by_parent.json["data"]) == (2 if expected else 0), (user, owner)
    listed = client.get("/api/v1/records/account_line?limit=100", headers=headers)
    assert {row["id"] for row in listed.json["data"]} == readable
    assert listed.json["count"] == len(readable)
    rows = client.get("/api/v1/records/account?limit=100", headers=headers).json["data"]
    assert rows and not any("lines" in row for row in rows)  # lists leave child rows out


def _write_rows(
    client: FlaskClient, headers: dict[str, str], account: dict[str, Any], how: str
) -> tuple[Any, list[str]]:
    """Change an account's lines one way; the response and the items it should leave."""
    first, second = account["lines"]
    if how == "through the parent":
        body = {"lines": [{"id": first["id"], "item": "a2"}, {"item": "c"}], "version": 1}
        return client.patch(f"/api/v1/records/account/{account['id']}", headers=headers,
                            json=body), ["a2", "c"]  # fmt: skip
    if how == "change a row":
        return client.patch(f"/api/v1/records/account_line/{first['id']}", headers=headers,
                            json={"item": "a2", "version": 1}), ["a2", "b"]  # fmt: skip
    if how == "delete a row":
        return client.delete(
            f"/api/v1/records/account_line/{second['id']}?version=1", headers=headers
        ), ["a"]
    assert how == "add a row"
    return client.post("/api/v1/records/account_line", headers=headers,
                       json={"account": account["id"], "item": "c"}), ["a", "b", "c"]  # fmt: skip


SUCCESS = {"through the parent": 200, "change a row": 200, "delete a row": 204, "add a row": 201}


@pytest.mark.parametrize("user", ["ann", "bob", "mia", "vic", "root"])
@pytest.mark.parametrize("how", SUCCESS)
def test_writing_child_rows_needs_update_on_the_parent(
    client: FlaskClient, token: Headers, parents: ChildSeed, user: str, how: str,
    error_of: Callable[[Any], dict[str, Any]],
) -> None:  # fmt: skip
    """Whatever the way — the parent's ``lines``, or the row's own endpoints — a row is
    written only by who may update its parent: a manager deletes rows of an account
    she may not delete (update: team_and_below, delete: team)."""
    headers = token(user)
    granted = user == "root" or GRANTS[ROLE[user]]["account"]["update"] != "none"
    for owner, account in parents.items():
        response, after = _write_rows(client, headers, account, how)
        case = (user, owner, how, response.json)
        may = allowed(user, "account", "update", owner)
        if how == "add a row":
            # a new row names its parent: one out of reach is invalid, as for any record
            expected = 403 if not granted else SUCCESS[how] if may else 422
        elif not allowed(user, "account", "read", owner):
            expected = 404
        else:
            expected = SUCCESS[how] if may else 403
        assert response.status_code == expected, case
        if expected == 403:
            assert error_of(response)["code"] == "forbidden", case
        elif expected == 422:
            assert error_of(response)["fields"] == {
                "_record": [f"Outside what you may manage "
                            f"({GRANTS[ROLE[user]]['account']['update'].replace('_', ' ')})."]
            }, case  # fmt: skip
        assert _items(client, token, account) == (after if expected < 400 else ["a", "b"]), case


# Users and teams: the built-in admin role only, whatever a package's roles grant on records.
ACCOUNT_CALLS = [
    ("GET", "/users", None, 200),
    ("GET", "/users/2", None, 200),
    ("PATCH", "/users/2", {"name": "Mia M."}, 200),
    ("POST", "/users", {"username": "eve", "password": "long enough", "roles": ["rep"]}, 201),
    ("GET", "/teams", None, 200),
    ("GET", "/teams/1", None, 200),
    ("PATCH", "/teams/1", {"name": "Head office"}, 200),
    ("POST", "/teams", {"name": "North"}, 201),
]


@pytest.mark.parametrize("user", ["root", *ROLE])
def test_users_and_teams_are_for_admins_only(
    client: FlaskClient, token: Headers, user: str
) -> None:
    for method, path, body, status in ACCOUNT_CALLS:
        response = client.open(f"/api/v1{path}", method=method, headers=token(user), json=body)
        expected = status if user == "root" else 403
        assert response.status_code == expected, (user, method, path, response.json)
