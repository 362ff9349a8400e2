"""The CRM package as a Flask app on a test database, with the users a test names:
shared by the tests that drive the CRM's workflows, approvals and automations."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import crm_definitions
from flask import Flask
from flask.testing import FlaskClient
from heddle.app import create_app

from engine import Actor

PASSWORD = "correct horse battery"
# username, roles, team, manager
User = tuple[str, list[str], str, str | None]


def crm_app(url: str, folder: Path, users: Sequence[User]) -> Flask:
    """The CRM on ``url`` (tables created), its instance in ``folder``, with ``users``
    (password :data:`PASSWORD`)."""
    app = create_app(
        {
            "DATABASE_URL": url,
            "PACKAGES": str(crm_definitions.PATH),
            "INSTANCE_PATH": str(folder / "instance"),
            "SECRET_KEY": "test",
            "TOKEN_CACHE_SECONDS": 0,
            "LOGIN_LIMIT": "1000 per minute",
            "TESTING": True,
        }
    )
    runtime = app.extensions["heddle"]
    runtime.tables.metadata.create_all(runtime.engine)
    with runtime.engine.begin() as conn:
        for username, roles, team, manager in users:
            runtime.accounts.create_user(
                conn, username, PASSWORD, roles, team=team, manager=manager
            )
    return app


def csrf_token(html: str) -> str:
    """The CSRF token of a page's form."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None, "the page has no CSRF token"
    return found.group(1)


def logged_in(app: Flask, username: str) -> FlaskClient:
    """A test client logged in as ``username`` through the login form (a session)."""
    client = app.test_client()
    form = {
        "username": username,
        "password": PASSWORD,
        "csrf_token": csrf_token(client.get("/login").get_data(as_text=True)),
    }
    assert client.post("/login", data=form).status_code == 302
    return client


def actor_of(app: Flask, username: str) -> Actor:
    """The engine's actor for one of the app's users."""
    runtime = app.extensions["heddle"]
    with runtime.engine.connect() as conn:
        user = runtime.accounts.by_username(conn, username)
    assert user is not None, f"no user {username}"
    return user.actor()


def crm_fixture(url: str, folder: Path, users: Sequence[User]) -> Iterator[Flask]:
    """A fixture's body around :func:`crm_app`: the app, its engine disposed after."""
    app = crm_app(url, folder, users)
    yield app
    app.extensions["heddle"].engine.dispose()
