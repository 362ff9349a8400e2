"""Users and teams over the REST API, for administrators: ``/api/v1/users`` and
``/api/v1/teams`` (list, read, create, change; a user is disabled, never deleted, so the
records and history that name them keep their meaning).

Only callers with the ``admin`` role may use them; everyone else gets 403. The caller is
read from the database on every request here, not from the token cache, so a role taken
away or a user disabled a moment ago in another process is refused at once. A password
is written, never returned.

>>> client.patch("/api/v1/users/7", json={"active": False}, headers=admin)
<Response … [200 OK]>
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Flask, g, jsonify, request
from flask.typing import ResponseReturnValue

from engine import BadRequest, Forbidden, NotFound, ValidationFailed

from .accounts import (
    KEEP,
    AccountError,
    Accounts,
    TeamInfo,
    UserInfo,
    text_problem,
)
from .api import _body, authenticate, check_ids
from .errors import Unauthorized
from .extensions import csrf, runtime

admin_api = Blueprint("admin_api", __name__, url_prefix="/api/v1")
csrf.exempt(admin_api)


def init_app(app: Flask) -> None:
    """The admins' users and teams API under ``/api/v1``."""
    app.register_blueprint(admin_api)


admin_api.before_request(authenticate)

# field → (kind, largest length): what a body may hold
STRING, NULLABLE, STRINGS, BOOLEAN = "string", "string or null", "list of strings", "boolean"
USER_FIELDS: Mapping[str, tuple[str, int]] = {
    "username": (STRING, 150),
    "password": (STRING, 1024),
    "roles": (STRINGS, 100),
    "team": (NULLABLE, 200),
    "manager": (NULLABLE, 150),
    "name": (STRING, 200),
    "email": (NULLABLE, 255),
    "locale": (STRING, 16),
    "active": (BOOLEAN, 0),
}
TEAM_FIELDS: Mapping[str, tuple[str, int]] = {"name": (STRING, 200), "parent": (NULLABLE, 200)}


admin_api.url_value_preprocessor(check_ids)


@admin_api.before_request
def admins_only() -> None:
    """The caller as the database has them now: active, and an admin."""
    heddle = runtime()
    with heddle.engine.connect() as conn:
        caller = heddle.accounts.by_id(conn, g.user.id)
    if caller is None or not caller.active:
        raise Unauthorized("this user is disabled")
    if "admin" not in caller.roles:
        raise Forbidden("only administrators may manage users and teams")


def _read(data: Mapping[str, Any], fields: Mapping[str, tuple[str, int]]) -> dict[str, Any]:
    """The fields of a body, each of its kind; 422 with every problem found."""
    problems: dict[str, list[str]] = {}
    for name, value in data.items():
        if name not in fields:
            problems[name] = ["Unknown field."]
            continue
        kind, size = fields[name]
        problem = _problem(name, value, kind, size)
        if problem:
            problems[name] = [problem]
    if problems:
        raise ValidationFailed("the body has fields that are not valid", problems)
    return dict(data)


def _problem(name: str, value: Any, kind: str, size: int) -> str | None:
    if kind == BOOLEAN:
        return None if isinstance(value, bool) else "Not a valid boolean."
    if kind == STRINGS:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return "Not a valid list of strings."
        if len(value) > size:
            return f"At most {size} items."
        return next((p for v in value if (p := _text(v, 200))), None)
    if value is None and kind == NULLABLE:
        return None
    if not isinstance(value, str):
        return "Not a valid string."
    return None if name == "password" else _text(value, size)


def _text(value: str, size: int) -> str | None:
    problem = text_problem(value, what="the value", size=size, empty=True)
    return problem[0].upper() + problem[1:] + "." if problem else None


@contextmanager
def _changing() -> Iterator[tuple[Accounts, sa.Connection]]:
    """The accounts and a transaction; a refused change is a 422 naming its field."""
    heddle = runtime()
    with heddle.engine.begin() as conn:
        try:
            yield heddle.accounts, conn
        except AccountError as exc:
            raise ValidationFailed(str(exc), {exc.field or "body": [str(exc)]}) from None


def _flag(name: str) -> bool | None:
    """A true/false query parameter, or None when absent."""
    value = request.args.get(name)
    if value is None:
        return None
    if value not in ("true", "false"):
        raise BadRequest(f"{name} is true or false", {name: ["Not a valid boolean."]})
    return value == "true"


def _name_filter(name: str) -> str | None:
    value = request.args.get(name)
    problem = None if value is None else text_problem(value, what=name, size=200)
    if problem:
        raise BadRequest(f"{name}: {problem}", {name: [problem]})
    return value


def _page(rows: list[dict[str, Any]]) -> ResponseReturnValue:
    """A list in the API's list shape (all of it: one page)."""
    return jsonify(data=rows, next_cursor=None, count=len(rows), count_estimated=False)


def _user_json(user: UserInfo) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "name": user.name,
        "email": user.email,
        "team": user.team,
        "manager": user.manager,
        "roles": user.roles,
        "locale": user.locale,
        "active": user.active,
        "created_at": user.created_at,
    }


def _team_json(team: TeamInfo) -> dict[str, Any]:
    return {
        "id": team.id,
        "name": team.name,
        "parent": team.parent,
        "users": team.users,
        "created_at": team.created_at,
    }


def _one_user(accounts: Accounts, conn: sa.Connection, user_id: int) -> dict[str, Any]:
    found = accounts.list_users(conn, user_id=user_id)
    if not found:
        raise NotFound(f"no user with id {user_id}")
    return _user_json(found[0])


def _one_team(accounts: Accounts, conn: sa.Connection, team_id: int) -> dict[str, Any]:
    found = accounts.list_teams(conn, team_id)
    if not found:
        raise NotFound(f"no team with id {team_id}")
    return _team_json(found[0])


# users --------------------------------------------------------------------------------


@admin_api.get("/users")
def list_users() -> ResponseReturnValue:
    """Users by username: ``?active=true``, ``?team=East``, ``?role=sales_rep``."""
    active, team, role = _flag("active"), _name_filter("team"), _name_filter("role")
    heddle = runtime()
    with heddle.engine.connect() as conn:
        users = heddle.accounts.list_users(conn, active=active, team=team, role=role)
    return _page([_user_json(u) for u in users])


@admin_api.post("/users")
def create_user() -> ResponseReturnValue:
    data = _read(_body(), USER_FIELDS)
    missing = [k for k in ("username", "password", "roles") if k not in data]
    if missing:
        raise ValidationFailed(
            "a username, a password and roles are needed",
            {k: ["Missing data for required field."] for k in missing},
        )
    if data.get("active") is False:
        raise ValidationFailed("create the user, then disable it", {"active": ["Must be true."]})
    with _changing() as (accounts, conn):
        user = accounts.create_user(
            conn,
            data["username"],
            data["password"],
            data["roles"],
            team=data.get("team"),
            manager=data.get("manager"),
            name=data.get("name", ""),
            email=data.get("email"),
            locale=data.get("locale", "en"),
        )
        return jsonify(data=_one_user(accounts, conn, user.id)), 201


@admin_api.get("/users/<int:user_id>")
def get_user(user_id: int) -> ResponseReturnValue:
    heddle = runtime()
    with heddle.engine.connect() as conn:
        return jsonify(data=_one_user(heddle.accounts, conn, user_id))


@admin_api.patch("/users/<int:user_id>")
def update_user(user_id: int) -> ResponseReturnValue:
    """Change what the body names: roles, team, manager, name, email, locale, username,
    password, ``active`` (false disables: the user's sessions and tokens stop at once)."""
    data = _read(_body(), USER_FIELDS)
    if user_id == g.user.id and (
        data.get("active") is False or ("roles" in data and "admin" not in data["roles"])
    ):
        field = "active" if data.get("active") is False else "roles"
        raise ValidationFailed(
            "you cannot disable yourself or take away your own admin role: ask another admin",
            {field: ["Not for your own user."]},
        )
    with _changing() as (accounts, conn):
        _one_user(accounts, conn, user_id)  # 404 first
        accounts.update_user(conn, user_id, **{k: data.get(k, KEEP) for k in USER_FIELDS})
        return jsonify(data=_one_user(accounts, conn, user_id))


# teams --------------------------------------------------------------------------------


@admin_api.get("/teams")
def list_teams() -> ResponseReturnValue:
    heddle = runtime()
    with heddle.engine.connect() as conn:
        return _page([_team_json(t) for t in heddle.accounts.list_teams(conn)])


@admin_api.post("/teams")
def create_team() -> ResponseReturnValue:
    data = _read(_body(), TEAM_FIELDS)
    if not isinstance(data.get("name"), str):
        raise ValidationFailed(
            "a team needs a name", {"name": ["Missing data for required field."]}
        )
    with _changing() as (accounts, conn):
        team_id = accounts.create_team(conn, data["name"], data.get("parent"))
        return jsonify(data=_one_team(accounts, conn, team_id)), 201


@admin_api.get("/teams/<int:team_id>")
def get_team(team_id: int) -> ResponseReturnValue:
    heddle = runtime()
    with heddle.engine.connect() as conn:
        return jsonify(data=_one_team(heddle.accounts, conn, team_id))


@admin_api.patch("/teams/<int:team_id>")
def update_team(team_id: int) -> ResponseReturnValue:
    """Rename a team, or move it under another (``parent``; null: to the top)."""
    data = _read(_body(), TEAM_FIELDS)
    with _changing() as (accounts, conn):
        _one_team(accounts, conn, team_id)  # 404 first
        accounts.update_team(conn, team_id, **{k: data.get(k, KEEP) for k in TEAM_FIELDS})
        return jsonify(data=_one_team(accounts, conn, team_id))
