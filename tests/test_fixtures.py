"""Tests of the project-wide fixtures in conftest.py, against the real servers.

Some tests come in numbered pairs (``_1_write`` then ``_2_gone``): pytest runs a
module's tests in definition order, so the second one sees what the first left behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NoReturn

import pytest
import redis as redis_py
import sqlalchemy as sa
from sqlalchemy.engine import Engine

TESTS_DIR = Path(__file__).parent
PYPROJECT = TESTS_DIR.parent / "pyproject.toml"

Helper = Callable[[str, str, object], NoReturn]


def _param_id(request: pytest.FixtureRequest) -> str:
    """The parameter id of the running test, e.g. ``postgresql`` for ``test_x[postgresql]``."""
    node = request.node
    assert isinstance(node, pytest.Function)
    return node.callspec.id


def _run_pytest(
    tmp_path: Path, source: str, env: Mapping[str, str | None]
) -> subprocess.CompletedProcess[str]:
    """Run SOURCE as a test file in a separate pytest using our conftest and settings.

    For what one run cannot observe about itself: its session teardown, or servers
    that are missing. ENV entries set (or, when None, unset) environment variables.
    """
    test_file = tmp_path / "test_inner.py"
    test_file.write_text(textwrap.dedent(source))
    environ = dict(os.environ)
    environ["PYTHONPATH"] = os.pathsep.join(
        [str(TESTS_DIR), *filter(None, [environ.get("PYTHONPATH")])]
    )
    for name, value in env.items():
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = value
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider",
         "-p", "no:hypothesispytest",
         "-c", str(PYPROJECT), "--rootdir", str(tmp_path), str(test_file)],
        cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


# --- PostgreSQL ---------------------------------------------------------------------


def test_pg_database_is_a_fresh_test_database(pg_engine: Engine, pg_url: str) -> None:
    database = sa.make_url(pg_url).database
    assert database is not None
    assert database.startswith("heddle_test_")
    assert pg_url.startswith("postgresql+psycopg://")
    with pg_engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT current_database()")) == database
    assert sa.inspect(pg_engine).get_table_names() == []


def test_pg_database_is_writable(pg_engine: Engine) -> None:
    with pg_engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE probe (id serial PRIMARY KEY, name text)"))
        conn.execute(sa.text("INSERT INTO probe (name) VALUES ('ada'), ('grace')"))
    with pg_engine.connect() as conn:
        names = conn.scalars(sa.text("SELECT name FROM probe ORDER BY id")).all()
    assert names == ["ada", "grace"]


def test_pg_state_1_write(pg_engine: Engine) -> None:
    with pg_engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE leak_probe (id integer)"))
        conn.execute(sa.text("INSERT INTO leak_probe VALUES (1)"))
        conn.execute(sa.text("CREATE SCHEMA leak_schema"))
        conn.execute(sa.text("CREATE TABLE leak_schema.archived (id integer)"))
    assert sa.inspect(pg_engine).has_table("leak_probe")


def test_pg_state_2_gone(pg_engine: Engine) -> None:
    inspector = sa.inspect(pg_engine)
    assert inspector.get_table_names() == []
    assert "leak_schema" not in inspector.get_schema_names()
    # ... and `public` is back, usable.
    with pg_engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE leak_probe (id integer)"))


def test_pg_database_is_dropped_after_the_run(pg_engine: Engine, tmp_path: Path) -> None:
    url_file = tmp_path / "pg_url.txt"
    result = _run_pytest(
        tmp_path,
        """
        import os
        import sqlalchemy as sa

        leaked = []

        def test_leak_a_connection(pg_url):
            with open(os.environ["URL_FILE"], "w") as f:
                f.write(pg_url)
            # Still open when the session ends: the drop must not wait for it.
            leaked.append(sa.create_engine(pg_url).connect())
        """,
        {"URL_FILE": str(url_file)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    inner_database = sa.make_url(url_file.read_text()).database
    assert inner_database is not None
    assert inner_database.startswith("heddle_test_")
    with pg_engine.connect() as conn:
        found = conn.scalar(
            sa.text("SELECT count(*) FROM pg_database WHERE datname = :name"),
            {"name": inner_database},
        )
    assert found == 0


# --- Redis --------------------------------------------------------------------------


def test_redis_1_write(redis: redis_py.Redis) -> None:
    redis.set("probe", "1")
    assert redis.get("probe") == b"1"


def test_redis_2_flushed(redis_url: str) -> None:
    client = redis_py.Redis.from_url(redis_url)  # not the fixture, which flushes first
    try:
        assert client.dbsize() == 0
    finally:
        client.close()


def test_redis_starts_empty(redis_url: str, request: pytest.FixtureRequest) -> None:
    other = redis_py.Redis.from_url(redis_url)
    try:
        other.set("stale", "left by someone else")
    finally:
        other.close()
    client: redis_py.Redis = request.getfixturevalue("redis")
    assert client.dbsize() == 0


# --- SQLite and both ----------------------------------------------------------------


def test_sqlite_is_a_file_in_tmp_path(sqlite_engine: Engine, tmp_path: Path) -> None:
    with sqlite_engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE probe (id integer)"))
    assert sqlite_engine.url.database == str(tmp_path / "heddle.db")
    assert (tmp_path / "heddle.db").is_file()


def test_db_engine_dialect_matches_param_id(
    db_engine: Engine, db_url: str, request: pytest.FixtureRequest
) -> None:
    assert db_engine.dialect.name == _param_id(request)
    assert db_engine.url.render_as_string(hide_password=False) == db_url


def test_db_state_1_write(db_engine: Engine) -> None:
    with db_engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE leak_probe (id integer)"))
        conn.execute(sa.text("INSERT INTO leak_probe VALUES (1)"))
        assert conn.scalar(sa.text("SELECT count(*) FROM leak_probe")) == 1


def test_db_state_2_gone(db_engine: Engine) -> None:
    assert sa.inspect(db_engine).get_table_names() == []


# --- markers ------------------------------------------------------------------------


def test_pg_tests_are_marked_postgres(pg_url: str, request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("postgres") is not None
    assert request.node.get_closest_marker("redis") is None


def test_redis_tests_are_marked_redis(redis_url: str, request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("redis") is not None
    assert request.node.get_closest_marker("postgres") is None


def test_db_url_marks_only_its_postgresql_variant(
    db_url: str, request: pytest.FixtureRequest
) -> None:
    marked = request.node.get_closest_marker("postgres") is not None
    assert marked == (_param_id(request) == "postgresql")


# --- missing services ---------------------------------------------------------------


def _outcome(fail_or_skip: Helper, service: str, url: str) -> BaseException:
    """Call the helper and return the outcome it raised, whichever of fail or skip.

    (Catching both: a skip escaping ``pytest.raises(pytest.fail.Exception)`` would skip
    the test instead of failing it.)
    """
    with pytest.raises((pytest.fail.Exception, pytest.skip.Exception)) as outcome:
        fail_or_skip(service, url, ConnectionRefusedError("refused"))
    return outcome.value


@pytest.mark.parametrize("ci", ["true", "1", "TRUE", " true "])
def test_missing_service_fails_in_ci(
    fail_or_skip: Helper, monkeypatch: pytest.MonkeyPatch, ci: str
) -> None:
    monkeypatch.setenv("CI", ci)
    outcome = _outcome(fail_or_skip, "Redis", "redis://h:1/15")
    assert isinstance(outcome, pytest.fail.Exception)
    assert "Redis is not reachable at redis://h:1/15: refused" in str(outcome)


@pytest.mark.parametrize("ci", [None, "", "false", "0", "yes"])
def test_missing_service_skips_outside_ci(
    fail_or_skip: Helper, monkeypatch: pytest.MonkeyPatch, ci: str | None
) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    outcome = _outcome(fail_or_skip, "PostgreSQL", "postgresql://u@h/db")
    assert isinstance(outcome, pytest.skip.Exception)
    assert "PostgreSQL is not reachable at postgresql://u@h/db: refused" in str(outcome)


def test_missing_service_message_hides_the_password(
    fail_or_skip: Helper, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    message = str(_outcome(fail_or_skip, "PostgreSQL", "postgresql://u:s3cret@h/db"))
    assert "s3cret" not in message
    assert "postgresql://u:***@h/db" in message


# Nothing listens on port 1, so these connections are refused at once.
MISSING_SERVERS = [
    pytest.param("pg_engine", "HEDDLE_TEST_PG_URL",
                 "postgresql+psycopg://postgres:s3cret@127.0.0.1:1/postgres", "PostgreSQL",
                 id="postgresql"),
    pytest.param("redis", "HEDDLE_TEST_REDIS_URL", "redis://:s3cret@127.0.0.1:1/15", "Redis",
                 id="redis"),
]  # fmt: skip


@pytest.mark.parametrize(("fixture", "variable", "url", "service"), MISSING_SERVERS)
@pytest.mark.parametrize("ci", [None, "true"], ids=["local", "ci"])
def test_missing_server_end_to_end(
    tmp_path: Path, fixture: str, variable: str, url: str, service: str, ci: str | None
) -> None:
    result = _run_pytest(
        tmp_path, f"def test_needs_it({fixture}):\n    pass\n", {variable: url, "CI": ci}
    )
    output = result.stdout + result.stderr
    assert f"{service} is not reachable at " in output
    assert f"set {variable} to a running one" in output
    assert "s3cret" not in output
    if ci:
        assert result.returncode == pytest.ExitCode.TESTS_FAILED, output
        assert "1 error" in output
    else:
        assert result.returncode == pytest.ExitCode.OK, output
        assert "1 skipped" in output
