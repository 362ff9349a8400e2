"""How many statements and round trips a request costs (issue 14): a create lets the
constraints check, looks its duplicate keys up once, reads nothing back and waits on
PostgreSQL at most 4 times; a read and a list page are one statement each.

Statements are counted with SQLAlchemy's cursor events on the app's own engine, on both
databases; round trips with libpq's trace of every connection the app checks out, on
PostgreSQL. For the CRM's account (an autonumber, owner and team, rollups, duplicate
rules, audit) as the admin and as a rep.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from heddle.app import create_app
from psycopg.pq import Trace
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
    runtime.records.pools.ttl = 3600  # the pools read once, not again mid-count
    yield app
    runtime.engine.dispose()


def _statements(app: Flask, whole: list[str] | None = None) -> list[str]:
    """The first three words of each statement the app runs from now on (and, in
    ``whole``, each statement whole)."""
    seen: list[str] = []

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        if not statement.lstrip().upper().startswith(("BEGIN", "SAVEPOINT", "RELEASE")):
            seen.append(" ".join(statement.split()[:3]))
            if whole is not None:
                whole.append(statement)

    sa.event.listen(app.extensions["heddle"].engine, "before_cursor_execute", record)
    return seen


@pytest.mark.parametrize("user", ["root", "ann"])
def test_a_create_writes_and_reads_nothing_back(app: Flask, user: str) -> None:
    client = app.test_client()
    token = client.post("/api/v1/auth/token", json={"username": user, "password": PASSWORD})
    headers = {"Authorization": f"Bearer {token.json['token']}"}
    client.post("/api/v1/records/account", headers=headers, json={"name": "warm"})
    whole: list[str] = []
    seen = _statements(app, whole)
    created = client.post("/api/v1/records/account", headers=headers, json={"name": "Acme"})
    assert created.status_code == 201, created.json
    lookup = "SELECT heddle_duplicate_key…"  # the key column is quoted on SQLite
    writes = [
        lookup if s.startswith(("SELECT heddle_duplicate_key", "SELECT k.key_space,")) else s
        for s in seen
        # the token, and the runtime's check for a newer Model (once a second: a slow
        # machine can take longer than that between two requests)
        if not s.startswith(
            ("SELECT heddle_token", "SELECT heddle_user.roles", "SELECT (SELECT heddle_sequence")
        )
    ]
    # the duplicate check (the claim rule's advisory locks on PostgreSQL — its key space
    # shared, its key alone —, then one lookup
    # for every rule), the autonumber (a sequence's nextval on PostgreSQL: no row lock
    # held to COMMIT, engine/counters.py), the record (RETURNING), its audit row and its
    # duplicate keys: no read-back
    if app.extensions["heddle"].engine.dialect.name == "postgresql":
        # the lock, the autonumber and the token's check (the cache trusts the token) are
        # single rows: one statement of the three (engine.pipeline.Batch.single); then
        # one statement (data-modifying CTEs) looks the keys up and, finding none,
        # writes the record, its audit row and its keys
        assert writes == ["SELECT * FROM", "WITH found AS"], seen
        joined = whole[seen.index("SELECT * FROM")]
        assert "pg_advisory_xact_lock" in joined and "nextval(" in joined, joined
        assert "heddle_token" in joined, joined
        written = whole[seen.index("WITH found AS")]
        for part in ('"heddle_duplicate_key" AS k', "INSERT INTO account", "INSERT INTO heddle_audit",
                     "INSERT INTO heddle_duplicate_key"):  # fmt: skip
            assert part in written, written
    else:
        assert writes == [
            lookup,
            "INSERT INTO heddle_sequence",
            "INSERT INTO account",
            "INSERT INTO heddle_duplicate_key",
            "INSERT INTO heddle_audit",
        ], seen
    record = created.json["data"]
    # the public pools the rep belongs to (whose accounts she reads too) are read once per
    # process and kept for engine.pools.TTL seconds: the first read pays for them
    client.get(f"/api/v1/records/account/{record['id']}", headers=headers)
    seen.clear()
    assert client.get(f"/api/v1/records/account/{record['id']}", headers=headers).status_code == 200
    assert len(seen) == 1, seen
    seen.clear()
    listed = client.get("/api/v1/records/account?grade=A&sort=-annual_revenue", headers=headers)
    assert listed.status_code == 200
    assert len(seen) == 1, seen  # one page holds it all: no count query


@contextmanager
def _round_trips(app: Flask) -> Iterator[list[str]]:
    """The messages that make the app wait for PostgreSQL while the block runs, one per
    round trip: each ``Sync`` (the end of one statement, or of a pipeline of several),
    each simple ``Query`` (psycopg's ``COMMIT``), and each ``Flush`` that asks for results
    in the middle of a pipeline — from libpq's trace of every connection checked out."""
    engine = app.extensions["heddle"].engine
    traces: dict[int, Any] = {}
    waits: list[str] = []

    def checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        trace = traces[id(dbapi_connection)] = tempfile.TemporaryFile("w+")  # noqa: SIM115
        dbapi_connection.pgconn.trace(os.dup(trace.fileno()))  # libpq closes its copy
        dbapi_connection.pgconn.set_trace_flags(Trace.SUPPRESS_TIMESTAMPS)

    def checkin(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.pgconn.untrace()
        trace = traces.pop(id(dbapi_connection))
        trace.seek(0)
        sent = [m for m in re.findall(r"^F\t\d+\t(\w+)(.*)$", trace.read(), re.M)]
        trace.close()
        for number, (message, rest) in enumerate(sent):
            after_sync = number > 0 and sent[number - 1][0] == "Sync"
            if message in ("Sync", "Query") or (message == "Flush" and not after_sync):
                waits.append(f"{message}{rest}")
            elif message == "Parse":  # a statement: its text, for the assertions' messages
                waits.append("  " + re.sub(r'^\s*"[^"]*" "|" \d+( \d+)*$', "", rest)[:60])

    sa.event.listen(engine.pool, "checkout", checkout)
    sa.event.listen(engine.pool, "checkin", checkin)
    try:
        yield waits
    finally:
        sa.event.remove(engine.pool, "checkout", checkout)
        sa.event.remove(engine.pool, "checkin", checkin)


@pytest.mark.parametrize("user", ["root", "ann"])
def test_a_create_waits_on_postgresql_three_times(app: Flask, user: str) -> None:
    """Issue 14's bound (at most four), with duplicate rules, audit and permissions on: the
    token's check (on a write, always asked of the database), then BEGIN with the
    duplicate rules' lock, the autonumber, and the duplicate rules' lookup with the
    record, its audit row and keys, then COMMIT."""
    if app.extensions["heddle"].engine.dialect.name != "postgresql":
        pytest.skip("round trips are PostgreSQL's")
    client = app.test_client()
    token = client.post("/api/v1/auth/token", json={"username": user, "password": PASSWORD})
    headers = {"Authorization": f"Bearer {token.json['token']}"}
    client.post("/api/v1/records/account", headers=headers, json={"name": "warm"})
    body = {"name": "Acme Trading", "phone": "+86 21 5555 0101", "grade": "A"}
    app.extensions["heddle"].accounts.cache.clear()  # the token not trusted from a cache
    with _round_trips(app) as waits:
        created = client.post("/api/v1/records/account", headers=headers, json=body)
    assert created.status_code == 201, created.json
    trips = _trips(waits)
    shown = "\n".join(" | ".join(trip) for trip in trips)
    assert len(trips) == 3, shown
    assert trips[0][0].startswith("SELECT heddle_token"), shown
    assert [s[:13] for s in trips[1][:-1]] == [
        "BEGIN ISOLATI",
        "SELECT * FROM",  # the claim rule's advisory lock and the autonumber's sequence
        "WITH found AS",  # the name's and the phone's keys looked up, the record written
    ], shown
    assert trips[-1] == ['Query\t "COMMIT"'], shown
    code = created.json["data"]["code"]
    assert re.fullmatch(r"AC-\d{6}", code), code
    # the same name again: refused as a duplicate (the claim rule), nothing written
    again = client.post("/api/v1/records/account", headers=headers, json=body)
    assert again.status_code == 409 and again.json["error"]["code"] == "duplicate", again.json


@contextmanager
def _no_trace() -> Iterator[list[str]]:
    yield []


def _trips(waits: list[str]) -> list[list[str]]:
    """The statements parsed before each wait, the wait last."""
    trips: list[list[str]] = [[]]
    for wait in waits:
        trips[-1].append(wait.strip())
        if not wait.startswith(" "):
            trips.append([])
    return trips[:-1]


@pytest.mark.parametrize("user", ["root", "ann"])
def test_a_token_the_cache_trusts_is_checked_with_the_first_statements(
    app: Flask, user: str
) -> None:
    """A create by a token checked a moment ago: the token's row is read again in the
    create's transaction, sent with the duplicate check, the autonumber and the record —
    2 round trips —, and a token revoked meanwhile (by another process: this one's cache still
    trusts it) refuses the create, which writes nothing (on SQLite too: the same check,
    run as its own statement)."""
    postgresql = app.extensions["heddle"].engine.dialect.name == "postgresql"
    runtime = app.extensions["heddle"]
    runtime.accounts.cache.seconds = 600
    client = app.test_client()
    token = client.post("/api/v1/auth/token", json={"username": user, "password": PASSWORD})
    headers = {"Authorization": f"Bearer {token.json['token']}"}
    client.post("/api/v1/records/account", headers=headers, json={"name": "warm"})
    whole: list[str] = []
    _statements(app, whole)
    with _round_trips(app) if postgresql else _no_trace() as waits:
        created = client.post(
            "/api/v1/records/account", headers=headers, json={"name": "Acme", "phone": "+86 1"}
        )
    assert created.status_code == 201, created.json
    if postgresql:
        trips = _trips(waits)
        shown = "\n".join(" | ".join(trip) for trip in trips)
        assert len(trips) == 2, shown
        # the lock, the autonumber and the token (again) are one statement, sent with the
        # record's
        assert [s[:18] for s in trips[0][:-1]] == [
            "BEGIN ISOLATION LE",
            "SELECT * FROM (SEL",
            "WITH found AS",
        ], shown
        assert trips[1] == ['Query\t "COMMIT"'], shown
        (joined,) = [s for s in whole if s.startswith("SELECT * FROM (SELECT 1)")]
        assert "heddle_token" in joined and "nextval(" in joined, joined
    accounts = runtime.tables.table("account")
    with runtime.engine.begin() as conn:  # another process revokes the token
        conn.execute(runtime.accounts.tokens.update().values(revoked_at=dt.datetime.now(dt.UTC)))
        before = conn.scalar(sa.select(sa.func.count()).select_from(accounts))
    refused = client.post("/api/v1/records/account", headers=headers, json={"name": "Beta"})
    assert refused.status_code == 401, refused.json
    assert refused.json["error"]["code"] == "unauthorized"
    with runtime.engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(accounts)) == before
    # refused before the write's first statements (a field error): still a 401
    invalid = client.post("/api/v1/records/account", headers=headers, json={"grade": "Z"})
    assert invalid.status_code == 401, invalid.json


@pytest.mark.parametrize(
    "change",
    ["deactivated", "roles", "team", "name", "expired"],
)
def test_a_trusted_token_whose_user_changed_writes_nothing(app: Flask, change: str) -> None:
    """The check a create makes of a token the cache trusts compares, in the database, the
    token's state and every field of the cached user: any change since it was cached
    refuses the create (401), writes nothing, and drops the stale user from the cache."""
    runtime = app.extensions["heddle"]
    runtime.accounts.cache.seconds = 600
    client = app.test_client()
    token = client.post("/api/v1/auth/token", json={"username": "ann", "password": PASSWORD})
    headers = {"Authorization": f"Bearer {token.json['token']}"}
    first = client.post("/api/v1/records/account", headers=headers, json={"name": "A"})
    assert first.status_code == 201, first.json
    accounts, users = runtime.tables.table("account"), runtime.accounts.users
    tokens = runtime.accounts.tokens
    with runtime.engine.begin() as conn:  # another process changes the user or the token
        ann = users.c.username == "ann"
        if change == "deactivated":
            conn.execute(users.update().where(ann).values(active=False))
        elif change == "roles":
            conn.execute(users.update().where(ann).values(roles=["sales_rep", "sales_manager"]))
        elif change == "team":
            conn.execute(users.update().where(ann).values(team_id=None))
        elif change == "name":
            conn.execute(users.update().where(ann).values(name="Ann Lee-Wu"))
        else:
            past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
            conn.execute(tokens.update().values(expires_at=past))
        before = conn.scalar(sa.select(sa.func.count()).select_from(accounts))
    stale = runtime.accounts.cached_user(token.json["token"])
    assert stale is not None  # still trusted by this process's cache
    refused = client.post("/api/v1/records/account", headers=headers, json={"name": "B"})
    assert refused.status_code == 401, refused.json
    with runtime.engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(accounts)) == before
    # the stale user is gone from the cache; a token still valid is trusted again as its
    # user now is, and a retry goes through
    cached = runtime.accounts.cached_user(token.json["token"])
    again = client.post("/api/v1/records/account", headers=headers, json={"name": "B"})
    if change in ("deactivated", "expired"):
        assert cached is None and again.status_code == 401, again.json
    else:
        assert cached is not None and cached != stale, cached
        assert again.status_code == 201, again.json
