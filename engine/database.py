"""Open a database the way the engine needs it, on SQLite and PostgreSQL alike.

SQLite gets foreign keys enforced, WAL journaling, a busy timeout, and transactions that
really begin with ``BEGIN`` — so DDL is transactional too and an interrupted migration
leaves nothing behind (pysqlite's default commits before DDL, which would not).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url


def connect(url: str, **options: Any) -> Engine:
    """A SQLAlchemy engine for ``url`` (``sqlite:///instance/heddle.db``, ``postgresql+psycopg://…``)."""
    parsed = make_url(url)
    options.setdefault("json_serializer", dumps_json)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, **options)
        _tune_sqlite(engine)
        return engine
    engine = sa.create_engine(parsed, **options)
    if parsed.get_backend_name() == "postgresql" and not options.get("pool_pre_ping"):
        _ping_when_idle(engine, IDLE_PING_SECONDS)
    return engine


#: orjson leaves a date or a dataclass to :func:`json.dumps`, which refuses them as it
#: always did. Keys that are not exactly str — SQLAlchemy's column names are a subclass —
#: it writes as :func:`json.dumps` does.
_ORJSON_OPTIONS = (
    orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_NON_STR_KEYS
)


def dumps_json(value: Any) -> str:
    """A JSON column's value as text: orjson, several times faster than the standard
    library on an import's audit rows; :func:`json.dumps` for what orjson refuses (an
    integer beyond 64 bits, a key that is not text, the types above), so a value is
    written, or refused, as before. orjson writes UTF-8 rather than ``\\u`` escapes and no
    spaces: the same JSON. A float NaN or infinity, which JSON has no word for, is written
    ``null`` (json.dumps wrote ``NaN``, which PostgreSQL refused); the engine's inputs
    refuse them before."""
    try:
        return orjson.dumps(value, option=_ORJSON_OPTIONS).decode()
    except TypeError:
        return json.dumps(value)


#: A pooled connection idle for longer than this is checked before it is handed out.
IDLE_PING_SECONDS = 10.0


def _ping_when_idle(engine: Engine, seconds: float) -> None:
    """Check a pooled connection before use only when it has been idle for ``seconds``.

    A connection left in the pool may have been closed under it (a database restart, a
    fail-over, an idle timeout in a proxy). SQLAlchemy's ``pool_pre_ping`` checks every
    checkout — a round trip on every request, about a fifth of a single-record read. A
    connection used moments ago is alive unless the server just went away, and then the
    request fails once and the pool starts afresh (SQLAlchemy discards the whole pool on
    a disconnect). Raising :class:`~sqlalchemy.exc.DisconnectionError` makes the pool
    replace a dead connection and try again.
    """
    dialect = engine.dialect

    @sa.event.listens_for(engine, "checkin")
    def on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < seconds:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            raise sa.exc.DisconnectionError(f"an idle connection was closed: {exc}") from exc


def _tune_sqlite(engine: Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA busy_timeout = 10000")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def on_begin(connection: sa.Connection) -> None:
        # IMMEDIATE takes the write lock up front: two writers wait for each other instead
        # of failing half-way with "database is locked". Readers ask for DEFERRED (see
        # READ_ONLY), so they never wait for writers (WAL lets both run at once).
        mode = connection.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {mode}")


#: Execution options for connections that only read: autocommit on PostgreSQL (no BEGIN
#: and ROLLBACK round trips), a deferred transaction on SQLite (no write lock).
READ_ONLY = {
    "postgresql": {"isolation_level": "AUTOCOMMIT"},
    "sqlite": {"sqlite_begin": "DEFERRED"},
}


def reader(engine: Engine) -> Engine:
    """``engine`` set up for reading only (see :data:`READ_ONLY`)."""
    return engine.execution_options(**READ_ONLY.get(engine.dialect.name, {}))
