"""engine.connect: on PostgreSQL, pooled connections are checked only after they sat idle,
and a dead one is replaced instead of failing the request; on both databases, JSON values
are written by orjson and read back as given."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine import database


@pytest.fixture
def pooled(pg_url: str) -> Iterator[Engine]:
    engine = database.connect(pg_url, pool_size=1, max_overflow=0)
    try:
        yield engine
    finally:
        engine.dispose()


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        pid: int = conn.scalar(sa.text("SELECT pg_backend_pid()"))
    return pid


def _kill(pg_url: str, pid: int) -> None:
    """Close a server connection under its client, as a restart or a proxy would."""
    other = sa.create_engine(pg_url, poolclass=sa.NullPool)
    with other.connect() as conn:
        assert conn.scalar(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    other.dispose()


def _pings(engine: Engine) -> list[object]:
    seen: list[object] = []
    real = engine.dialect.do_ping

    def counted(dbapi_connection: object) -> bool:
        seen.append(dbapi_connection)
        return real(dbapi_connection)

    engine.dialect.do_ping = counted  # type: ignore[method-assign]
    return seen


def test_a_connection_in_use_is_not_pinged(pooled: Engine) -> None:
    pings = _pings(pooled)
    first = _backend_pid(pooled)
    for _ in range(5):
        assert _backend_pid(pooled) == first  # the same pooled connection, no round trip
    assert pings == []


def test_an_idle_connection_is_pinged_and_a_dead_one_replaced(
    pooled: Engine, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings = _pings(pooled)
    first = _backend_pid(pooled)
    _kill(pg_url, first)
    monkeypatch.setattr(database, "IDLE_PING_SECONDS", 0.0)  # read when the engine is made
    idle = database.connect(pg_url, pool_size=1, max_overflow=0)
    try:
        idle_pings = _pings(idle)
        second = _backend_pid(idle)
        _kill(pg_url, second)
        # idle for longer than the threshold: pinged, found dead, replaced; the read works
        third = _backend_pid(idle)
        assert third != second and len(idle_pings) >= 1
    finally:
        idle.dispose()
    # without the ping, the first read after the kill fails once and the pool starts afresh
    with pytest.raises(sa.exc.OperationalError), pooled.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    assert _backend_pid(pooled) != first
    assert pings == []


def test_pool_pre_ping_still_works_when_asked_for(pg_url: str) -> None:
    engine = database.connect(pg_url, pool_pre_ping=True)
    try:
        first = _backend_pid(engine)
        _kill(pg_url, first)
        assert _backend_pid(engine) != first
    finally:
        engine.dispose()


def test_json_values_are_written_by_orjson_and_refused_as_before(db_url: str) -> None:
    """A JSON column's value reads back as it was given — text in any script, an integer
    beyond 64 bits, keys that are SQLAlchemy's column names — and one JSON cannot hold is
    still refused."""
    engine = database.connect(db_url)
    table = sa.Table("json_values", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("value", sa.JSON))  # fmt: skip
    name = table.c.value.name  # a quoted_name, a subclass of str
    value = {name: [None, "测试客户 株式会社"], "n": 1.5, "none": None}
    big = {"big": 2**70}  # beyond orjson: json.dumps writes it
    try:
        table.metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(table.insert(), [{"id": 1, "value": value}, {"id": 2, "value": big}])
        with engine.connect() as conn:
            assert list(conn.scalars(sa.select(table.c.value).order_by(table.c.id))) == [value, big]
            if engine.dialect.name == "postgresql":  # the UTF-8 text itself, no \u escapes
                text = conn.scalar(sa.text("SELECT value::text FROM json_values WHERE id = 1"))
                assert "测试客户" in text
        refused = pytest.raises((TypeError, sa.exc.StatementError), match="not JSON serializable")
        with refused, engine.begin() as conn:
            conn.execute(table.insert(), {"id": 3, "value": {"day": dt.date(2026, 1, 1)}})
        with engine.connect() as conn:
            assert conn.scalar(sa.select(sa.func.count()).select_from(table)) == 2
    finally:
        table.metadata.drop_all(engine)
        engine.dispose()


def test_dumps_json_writes_what_json_dumps_writes() -> None:
    for value in ({"a": [1, None, "x"]}, {1: "one", None: "none"}, [True, 2**70, 0.1], "é"):
        assert json.loads(database.dumps_json(value)) == json.loads(json.dumps(value))
