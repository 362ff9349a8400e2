"""The CRM package as a Flask app on a test database, with the users a test names:
shared by the tests that drive the CRM's workflows, approvals and automations."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import crm_definitions
from flask import Flask
from heddle.app import create_app

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


def crm_fixture(url: str, folder: Path, users: Sequence[User]) -> Iterator[Flask]:
    """A fixture's body around :func:`crm_app`: the app, its engine disposed after."""
    app = crm_app(url, folder, users)
    yield app
    app.extensions["heddle"].engine.dispose()
