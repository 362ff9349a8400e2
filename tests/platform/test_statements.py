"""How many statements a request costs (issue 14): a create lets the constraints check,
looks its duplicate keys up once and reads nothing back; a read and a list page are one
statement each.

Counted with SQLAlchemy's cursor events on the app's own engine, on both databases, for
the CRM's account (an autonumber, owner and team, rollups) as the admin and as a rep.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from heddle.app import create_app
from sqlalchemy.engine import Engine

from engine import migrate

PASSWORD = "a long password"


@pytest.fixture
def app(db_url: str, db_engine: Engine, tmp_path: Path) -> Iterator[Flask]:
    app = create_app(
        {
            "DATABASE_URL": db_url,
            "INSTANCE_PATH": str(tmp_path),
            "SECRET_KEY": "test",
            "LOGIN_LIMIT": "1000 per minute",
            # the once-a-second definitions check is a statement too: not during the count
            "MODEL_CHECK_SECONDS": 3600,
            "TESTING": True,
        }
    )
    runtime = app.extensions["heddle"]
    migrate(runtime.engine, runtime.model, actor="test")
    with runtime.engine.begin() as conn:
        runtime.accounts.create_user(conn, "root", PASSWORD, ["admin"], team="HQ")
        runtime.accounts.create_user(conn, "ann", PASSWORD, ["sales_rep"], team="East")
    yield app
    runtime.engine.dispose()


def _statements(app: Flask) -> list[str]:
    seen: list[str] = []

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        if not statement.lstrip().upper().startswith(("BEGIN", "SAVEPOINT", "RELEASE")):
            seen.append(" ".join(statement.split()[:3]))

    sa.event.listen(app.extensions["heddle"].engine, "before_cursor_execute", record)
    return seen


@pytest.mark.parametrize("user", ["root", "ann"])
def test_a_create_writes_and_reads_nothing_back(app: Flask, user: str) -> None:
    client = app.test_client()
    token = client.post("/api/v1/auth/token", json={"username": user, "password": PASSWORD})
    headers = {"Authorization": f"Bearer {token.json['token']}"}
    client.post("/api/v1/records/account", headers=headers, json={"name": "warm"})
    seen = _statements(app)
    created = client.post("/api/v1/records/account", headers=headers, json={"name": "Acme"})
    assert created.status_code == 201, created.json
    lookup = "SELECT heddle_duplicate_key…"  # the key column is quoted on SQLite
    writes = [
        lookup if s.startswith("SELECT heddle_duplicate_key") else s
        for s in seen
        # the token, and the runtime's check for a newer Model (once a second: a slow
        # machine can take longer than that between two requests)
        if not s.startswith(("SELECT heddle_token", "SELECT (SELECT heddle_sequence"))
    ]
    # the duplicate check (the claim rule's advisory lock on PostgreSQL, then one lookup
    # for every rule), the autonumber, the record (RETURNING), its audit row and its
    # duplicate keys — one statement on PostgreSQL (data-modifying CTEs): no read-back
    if app.extensions["heddle"].engine.dialect.name == "postgresql":
        assert writes == [
            "SELECT count(pg_advisory_xact_lock(k)) FROM",
            lookup,
            "INSERT INTO heddle_sequence",
            "WITH created AS",
        ], seen
    else:
        assert writes == [
            lookup,
            "INSERT INTO heddle_sequence",
            "INSERT INTO account",
            "INSERT INTO heddle_duplicate_key",
            "INSERT INTO heddle_audit",
        ], seen
    record = created.json["data"]
    seen.clear()
    assert client.get(f"/api/v1/records/account/{record['id']}", headers=headers).status_code == 200
    assert len(seen) == 1, seen
    seen.clear()
    listed = client.get("/api/v1/records/account?grade=A&sort=-annual_revenue", headers=headers)
    assert listed.status_code == 200
    assert len(seen) == 1, seen  # one page holds it all: no count query
