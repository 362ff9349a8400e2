"""Two requests that create the same unique value at once: the loser gets a 422 with the
field's message, never a 500. A real race between two PostgreSQL transactions (SQLite lets
one writer at a time, so it cannot race: see tests/engine/test_record_limits.py)."""

from __future__ import annotations

import datetime as dt
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from heddle.app import create_app
from sqlalchemy.engine import Engine

from engine.events import RecordEvent
from engine.records import Records

MEMBERS = """\
kind: package
name: club
---
kind: entity
name: member
fields:
  name: {type: string}
  email: {type: email, unique: true}
"""

PASSWORD = "correct horse battery"
WAIT = 10.0  # seconds the rival waits at most for the request to block on its row


@pytest.fixture
def app(pg_url: str, pg_engine: Engine, tmp_path: Path) -> Iterator[Flask]:
    """The app on PostgreSQL with the club package and an admin, ``root``."""
    package = tmp_path / "club.yaml"
    package.write_text(textwrap.dedent(MEMBERS), encoding="utf-8")
    app = create_app(
        {
            "DATABASE_URL": pg_url,
            "PACKAGES": str(package),
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "SECRET_KEY": "test",
            "TOKEN_CACHE_SECONDS": 0,
            "TESTING": True,
        }
    )
    runtime = app.extensions["heddle"]
    runtime.tables.metadata.create_all(runtime.engine)
    with runtime.engine.begin() as conn:
        runtime.accounts.create_user(conn, "root", PASSWORD, ["admin"])
    yield app
    runtime.engine.dispose()


def commit_once_blocked(rival: sa.Connection, pid: int, engine: Engine) -> None:
    """Commit ``rival`` as soon as the backend ``pid`` waits for one of its locks."""
    deadline = time.monotonic() + WAIT
    waiting = sa.text("SELECT count(*) FROM pg_locks WHERE pid = :pid AND NOT granted")
    with engine.connect() as watcher:
        while not watcher.execute(waiting, {"pid": pid}).scalar() and time.monotonic() < deadline:
            time.sleep(0.01)
    rival.commit()
    rival.close()


def test_a_unique_value_another_request_is_writing_is_a_422(
    app: Flask, client: FlaskClient, pg_engine: Engine
) -> None:
    records: Records = app.extensions["heddle"].records
    table = records.tables.table("member")
    threads: list[threading.Thread] = []

    @records.events.on("before_create", "member")
    def rival_writes_the_same_email(event: RecordEvent) -> None:
        # The rival inserts the email but has not committed when this request checks it, so
        # the check passes; the request's INSERT then waits for the rival, which commits.
        now = dt.datetime.now(dt.UTC)
        rival = pg_engine.connect()
        rival.execute(
            table.insert().values(email=event.values["email"], created_at=now, updated_at=now)
        )
        pid = event.conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        threads.append(threading.Thread(target=commit_once_blocked, args=(rival, pid, pg_engine)))
        threads[-1].start()

    login = client.post("/api/v1/auth/token", json={"username": "root", "password": PASSWORD})
    assert login.json is not None
    headers = {"Authorization": f"Bearer {login.json['token']}"}
    response = client.post(
        "/api/v1/records/member", headers=headers, json={"name": "Ann", "email": "ann@club.example"}
    )
    for thread in threads:
        thread.join()
    assert response.status_code == 422, response.json
    assert response.json is not None
    assert response.json["error"]["fields"] == {"email": ["Already exists."]}
    with pg_engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(table)) == 1  # the rival's
