"""Platform test helpers: an app on a throw-away database with a small package and users."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from heddle.app import create_app
from sqlalchemy.engine import Engine

PACKAGE = """\
kind: package
name: shop
locales: [en, zh, ja]
---
kind: entity
name: account
label: {en: Account, zh: 客户, ja: 顧客}
ownable: true
search_fields: [name]
fields:
  name: {type: string, required: true, max_length: 100}
  grade: {type: choice, options: [A, B, C], default: B}
  cost: {type: money}
  rating: {type: integer, min: 1, max: 5}
  lines: {type: children, entity: account_line}
---
kind: entity
name: account_line
child: true
fields:
  account: {type: reference, to: account, on_delete: cascade}
  item: {type: string}
---
kind: entity
name: note
fields:
  text: {type: string, required: true}
  account: {type: reference, to: account, on_delete: cascade}
---
kind: role
name: rep
permissions:
  account:
    read: own
    create: own
    update: own
    delete: own
    fields: {cost: hidden}
  note: {read: team, create: own, update: own}
---
kind: role
name: manager
permissions:
  account:
    read: team_and_below
    create: team
    update: team_and_below
    delete: team
    fields: {rating: readonly}
  note: {read: all, update: team}
---
kind: role
name: viewer
permissions:
  "*": {read: all}
  account:
    read: all
    fields: {cost: hidden}
"""

PASSWORD = "correct horse battery"
# username, roles, team, manager
PEOPLE = [
    ("root", ["admin"], "HQ", None),
    ("mia", ["manager"], "East", None),
    ("ann", ["rep"], "East-North", "mia"),
    ("bob", ["rep"], "West", None),
    ("vic", ["viewer"], None, None),
    ("cal", ["rep"], "East", "mia"),  # last, so the others keep their ids
]


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 at production cost takes ~150 ms a hash; the tests hash hundreds of times.
    The same code runs, with the cheapest parameters Argon2 allows."""
    from argon2 import PasswordHasher
    from heddle import accounts

    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    monkeypatch.setattr(accounts, "_hasher", cheap)
    monkeypatch.setattr(accounts, "_DUMMY_HASH", cheap.hash("not a password"))


AppFactory = Callable[..., Flask]


@pytest.fixture
def app_factory(db_url: str, db_engine: Engine, tmp_path: Path) -> Iterator[AppFactory]:
    """``app_factory(package_text, people=PEOPLE)``: an app on a throw-away database
    (``db_engine`` empties it afterwards) with that package, its tables, the people (each
    with PASSWORD) and East-North under East."""
    made: list[Flask] = []

    def make(text: str = PACKAGE, people: list[Any] = PEOPLE) -> Flask:
        package = tmp_path / f"package{len(made)}.yaml"
        package.write_text(textwrap.dedent(text), encoding="utf-8")
        app = create_app(
            {
                "DATABASE_URL": db_url,
                "PACKAGES": str(package),
                "INSTANCE_PATH": str(tmp_path / "instance"),
                "SECRET_KEY": "test",
                "LOGIN_LIMIT": "1000 per minute",
                "TOKEN_CACHE_SECONDS": 0,  # tests change tokens in the database directly
                "TESTING": True,
            }
        )
        runtime = app.extensions["heddle"]
        runtime.tables.metadata.create_all(runtime.engine)
        with runtime.engine.begin() as conn:
            for username, roles, team, manager in people:
                runtime.accounts.create_user(
                    conn, username, PASSWORD, roles, team=team, manager=manager
                )
            teams = runtime.accounts.teams
            east = runtime.accounts.team_id(conn, "East")
            north = teams.c.name == "East-North"
            conn.execute(teams.update().where(north).values(parent_id=east))
        made.append(app)
        return app

    yield make
    for app in made:
        app.extensions["heddle"].engine.dispose()


@pytest.fixture
def app(app_factory: AppFactory) -> Flask:
    """The app on a throw-away database with PACKAGE and PEOPLE."""
    return app_factory()


@pytest.fixture
def password() -> str:
    """The password every test user has."""
    return PASSWORD


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def token(client: FlaskClient) -> Callable[[str], dict[str, str]]:
    """Headers with a fresh token for a user of PEOPLE."""
    cache: dict[str, dict[str, str]] = {}

    def headers(username: str) -> dict[str, str]:
        if username not in cache:
            response = client.post(
                "/api/v1/auth/token", json={"username": username, "password": PASSWORD}
            )
            assert response.status_code == 201, response.json
            cache[username] = {"Authorization": f"Bearer {response.json['token']}"}
        return cache[username]

    return headers


def _error_of(response: Any) -> dict[str, Any]:
    body = response.json
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["code"], str) and isinstance(body["error"]["message"], str)
    assert set(body["error"]) <= {"code", "message", "fields", "details"}
    return dict(body["error"])


@pytest.fixture
def error_of() -> Callable[[Any], dict[str, Any]]:
    """The error body of a response, checked to have the one documented shape."""
    return _error_of


@pytest.fixture
def call(client: FlaskClient) -> Callable[..., tuple[int, Any]]:
    """``call(username, method, path, json=None)`` → ``(status, body)``: a request under
    ``/api/v1`` with a token of the user (who has the password of PEOPLE)."""
    tokens: dict[str, str] = {}

    def run(user: str, method: str, path: str, json: Any = None) -> tuple[int, Any]:
        if user not in tokens:
            response = client.post(
                "/api/v1/auth/token", json={"username": user, "password": PASSWORD}
            )
            assert response.status_code == 201, response.json
            tokens[user] = response.json["token"]
        headers = {"Authorization": f"Bearer {tokens[user]}"}
        response = client.open(f"/api/v1{path}", method=method, json=json, headers=headers)
        return response.status_code, response.json

    return run
