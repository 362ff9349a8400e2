"""Project-wide fixtures: real PostgreSQL, Redis and SQLite, never mocks of them.

- ``pg_url`` / ``pg_engine``: a throw-away PostgreSQL database for the test run; the
  engine's schemas are emptied after each test.
- ``redis``: a Redis client on a database flushed before and after each test.
- ``sqlite_url`` / ``sqlite_engine``: a SQLite file in the test's ``tmp_path``.
- ``db_url`` / ``db_engine``: the same test once on SQLite, once on PostgreSQL::

      def test_insert(db_engine: Engine) -> None:  # runs as [sqlite] and [postgresql]
          ...

Servers come from ``HEDDLE_TEST_PG_URL`` (a server URL; its database is only used to
create and drop the throw-away one) and ``HEDDLE_TEST_REDIS_URL``. A missing server skips
the tests that need it, or fails them when ``CI`` is ``true``: CI must not go green by
skipping everything.

``off_utc`` puts the process in a time zone whose date is not UTC's (as
``HEDDLE_TIME_ZONE`` does), for the tests of "today" and of times on the screens.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import time
import zoneinfo
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest
import redis as redis_py
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool

PG_URL_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
REDIS_URL_DEFAULT = "redis://127.0.0.1:6379/15"
CONNECT_TIMEOUT = 2  # seconds; a missing server should cost one short wait per run

# Fixtures whose use marks a test `postgres` or `redis` (db_url marks only its
# postgresql variant, through its params).
PG_FIXTURES = frozenset({"pg_url", "pg_engine"})
REDIS_FIXTURES = frozenset({"redis_url", "redis"})


def in_ci() -> bool:
    """Whether we run in CI (``CI=true`` or ``CI=1``), where skipping is not allowed."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1"}


def service_unavailable(service: str, url: str, error: object, variable: str = "") -> NoReturn:
    """Skip the current test because SERVICE at URL is unreachable; fail it in CI.

    Outside CI a developer without, say, Redis still gets a useful run; in CI a missing
    service is a broken pipeline, and a skipped test would hide that. VARIABLE names the
    environment variable that chooses the URL, for the message.
    """
    shown = make_url(url).render_as_string(hide_password=True)
    reason = f"{service} is not reachable at {shown}: {error}"
    if variable:
        reason += f" (start it, or set {variable} to a running one)"
    if in_ci():
        reason += f"; with CI={os.environ['CI']} a missing service is an error"
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def fail_or_skip() -> Callable[[str, str, object], NoReturn]:
    """``service_unavailable`` itself, for tests and other conftests.

    They cannot import it: every ``conftest.py`` outside a package is imported as the
    module ``conftest``, so ``from conftest import ...`` may find another one.
    """
    return service_unavailable


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by the services they use, so ``-m "not postgres"`` deselects them."""
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if used & PG_FIXTURES:
            item.add_marker(pytest.mark.postgres)
        if used & REDIS_FIXTURES:
            item.add_marker(pytest.mark.redis)


# --- PostgreSQL ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a new, empty PostgreSQL database ``heddle_test_<hex>``, dropped after the run.

    One database per run (per xdist worker) so runs never share state, even
    concurrent ones on one server.
    """
    server_url = os.environ.get("HEDDLE_TEST_PG_URL", PG_URL_DEFAULT)
    server = sa.create_engine(
        server_url,
        isolation_level="AUTOCOMMIT",  # CREATE/DROP DATABASE refuse to run in a transaction
        poolclass=NullPool,
        connect_args={"connect_timeout": CONNECT_TIMEOUT},
    )
    name = f"heddle_test_{secrets.token_hex(6)}"
    try:
        with server.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        server.dispose()
        service_unavailable("PostgreSQL", server_url, exc.orig, "HEDDLE_TEST_PG_URL")
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with server.connect() as conn:
            # FORCE: a connection a test leaked must not keep the database alive.
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    """A SQLAlchemy engine on ``pg_url``; every schema it creates is dropped afterwards."""
    engine = sa.create_engine(pg_url)
    try:
        yield engine
    finally:
        engine.dispose()
        _empty_pg_database(pg_url)


def _empty_pg_database(url: str) -> None:
    """Drop every user schema (tables, types, sequences with it) and recreate ``public``."""
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            # A connection left open in a transaction by the test would block the drop
            # forever; better an error naming the lock.
            conn.execute(sa.text("SET LOCAL lock_timeout = '10s'"))
            schemas = conn.scalars(
                sa.text(
                    "SELECT nspname FROM pg_namespace"
                    " WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'"
                )
            ).all()
            for schema in schemas:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            conn.execute(sa.text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


# --- Redis --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the Redis database the tests may flush (database 15 by default)."""
    url = _worker_database(os.environ.get("HEDDLE_TEST_REDIS_URL", REDIS_URL_DEFAULT))
    client = redis_py.Redis.from_url(
        url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=CONNECT_TIMEOUT
    )
    try:
        client.ping()
    except redis_py.RedisError as exc:
        service_unavailable("Redis", url, exc, "HEDDLE_TEST_REDIS_URL")
    finally:
        client.close()
    return url


def _worker_database(url: str) -> str:
    """Under pytest-xdist, worker N flushes database ``number - N`` rather than the one
    the other workers use (gw0 keeps the number given)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    if not index:
        return url
    base, _, number = url.rpartition("/")
    return f"{base}/{(int(number or 0) - index) % 16}"


@pytest.fixture
def redis(redis_url: str) -> Iterator[redis_py.Redis]:
    """A Redis client on ``redis_url``, its database empty at start and emptied after."""
    client = redis_py.Redis.from_url(redis_url)
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


# --- SQLite -------------------------------------------------------------------------


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a SQLite file in the test's own temporary directory."""
    return f"sqlite:///{tmp_path / 'heddle.db'}"


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    """A SQLAlchemy engine on ``sqlite_url``."""
    engine = sa.create_engine(sqlite_url)
    try:
        yield engine
    finally:
        engine.dispose()


# --- Both ---------------------------------------------------------------------------

# param id -> (url fixture, engine fixture); the ids are SQLAlchemy dialect names.
_BACKENDS = {"sqlite": ("sqlite_url", "sqlite_engine"), "postgresql": ("pg_url", "pg_engine")}


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def db_url(request: pytest.FixtureRequest) -> str:
    """A database URL, once SQLite and once PostgreSQL: the test runs on both."""
    url_fixture, _ = _BACKENDS[request.param]
    url: str = request.getfixturevalue(url_fixture)
    return url


@pytest.fixture
def db_engine(request: pytest.FixtureRequest, db_url: str) -> Engine:
    """A SQLAlchemy engine on ``db_url``, cleaned up like ``sqlite_engine``/``pg_engine``."""
    _, engine_fixture = _BACKENDS[make_url(db_url).get_backend_name()]
    engine: Engine = request.getfixturevalue(engine_fixture)
    return engine


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ],
)
def module_db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A database for one test module, once SQLite and once PostgreSQL (a database of its
    own on the test server, dropped after the module): for modules that set up an
    expensive schema once and empty its rows between tests themselves."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('module') / 'heddle.db'}"
        return
    base: str = request.getfixturevalue("pg_url")
    name = f"{make_url(base).database}_{secrets.token_hex(3)}"
    server = sa.create_engine(base, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with server.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with server.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


@pytest.fixture
def off_utc() -> Iterator[str]:
    """The process in a time zone whose date is not UTC's right now — UTC+14 (Kiritimati)
    or UTC-12 —, as ``HEDDLE_TIME_ZONE`` puts it there (``TZ``); its name. A day still
    taken in UTC fails a test in it whatever the hour. ``TZ`` is put back afterwards."""
    now = dt.datetime.now(dt.UTC)
    name = next(
        zone for zone in ("Pacific/Kiritimati", "Etc/GMT+12")
        if now.astimezone(zoneinfo.ZoneInfo(zone)).date() != now.date()
    )  # fmt: skip
    before = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    yield name
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()
