"""A definition change migrated by one process reaches every other one without a restart.

Two apps on one database stand for two processes; the change goes in through
``heddle migrate``, as in a deployment.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from flask import Flask
from heddle.app import create_app
from heddle.cli import main
from heddle.runtime import Runtime

from engine.tables import HISTORY_TABLE

RATING = "  rating: {type: integer, min: 1, max: 5}\n"
MakeApp = Callable[[float], Flask]
Migrate = Callable[[Path], None]


@pytest.fixture
def other_app(app: Flask, db_url: str, tmp_path: Path) -> Iterator[MakeApp]:
    """Another process: an app on the same database and definition files, checking for a
    new Model every ``seconds``."""
    made: list[Flask] = []

    def make(seconds: float) -> Flask:
        other = create_app(
            {
                "DATABASE_URL": db_url,
                "PACKAGES": app.config["PACKAGES"],
                "INSTANCE_PATH": str(tmp_path / f"instance-{len(made)}"),
                "SECRET_KEY": "test",
                "TOKEN_CACHE_SECONDS": 0,
                "MODEL_CHECK_SECONDS": seconds,
                "TESTING": True,
            }
        )
        made.append(other)
        return other

    yield make
    for other in made:
        other.extensions["heddle"].engine.dispose()


@pytest.fixture
def changed(app: Flask, tmp_path: Path) -> Path:
    """The test package with one more field on account: loyalty."""
    text = Path(app.config["PACKAGES"]).read_text(encoding="utf-8")
    assert RATING in text
    path = tmp_path / "shop-v2.yaml"
    path.write_text(text.replace(RATING, RATING + "  loyalty: {type: integer}\n"), "utf-8")
    return path


@pytest.fixture
def heddle_migrate(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Migrate:
    """``heddle migrate PACKAGE`` on the test database."""
    monkeypatch.setenv("HEDDLE_DATABASE_URL", db_url)

    def run(package: Path) -> None:
        result = CliRunner().invoke(main, ["migrate", str(package)])
        assert result.exit_code == 0, result.output

    return run


def runtime_of(app: Flask) -> Runtime:
    found: Runtime = app.extensions["heddle"]
    return found


def account_fields(runtime: Runtime) -> set[str]:
    return set(runtime.model.entity("account").fields)


def count_statements(engine: sa.Engine) -> list[str]:
    """Every SQL statement ``engine`` sends from now on."""
    seen: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", note)
    return seen


@contextmanager
def runtime_log() -> Iterator[list[logging.LogRecord]]:
    """What the runtime logs meanwhile (whatever the test run does with the heddle loggers)."""

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    records: list[logging.LogRecord] = []
    handler = Collect()
    logger = logging.getLogger("heddle.runtime")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def test_a_migration_elsewhere_is_served_without_a_restart(
    app: Flask,
    other_app: MakeApp,
    changed: Path,
    heddle_migrate: Migrate,
    token: Callable[[str], dict[str, str]],
) -> None:
    heddle_migrate(Path(app.config["PACKAGES"]))  # what the fixture's tables were made from
    other = other_app(0)
    client = other.test_client()
    root = token("root")
    assert client.get("/readyz").status_code == 200
    meta = client.get("/api/v1/meta/entities/account", headers=root)
    assert "loyalty" not in {f["name"] for f in meta.json["data"]["fields"]}
    before = client.get("/api/v1/openapi.json")

    heddle_migrate(changed)  # another process

    with runtime_log() as records:
        meta = client.get("/api/v1/meta/entities/account", headers=root)
    assert [r.levelname for r in records] == ["INFO"]
    assert records[0].getMessage().startswith("definitions changed: serving model ")
    assert meta.status_code == 200
    assert "loyalty" in {f["name"] for f in meta.json["data"]["fields"]}
    after = client.get("/api/v1/openapi.json", headers={"If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200
    assert "loyalty" in after.json["components"]["schemas"]["Account"]["properties"]
    created = client.post("/api/v1/records/account", json={"name": "Acme", "loyalty": 7},
                          headers=root)  # fmt: skip
    assert created.status_code == 201, created.json
    assert created.json["data"]["loyalty"] == 7
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json["checks"]["model"] == "ok"
    assert runtime_of(other).model.hash == after.json["info"]["x-model-hash"]


def test_a_process_started_from_other_files_serves_the_migrated_definitions(
    other_app: MakeApp, changed: Path, heddle_migrate: Migrate
) -> None:
    """Files older than the database (or missing a change made on the admin screens): the
    tables hold the migrated definitions, so those are served, with a warning."""
    heddle_migrate(changed)
    other = other_app(0)  # started from the files without loyalty
    runtime = runtime_of(other)
    assert "loyalty" not in account_fields(runtime)
    with runtime_log() as records:
        ready = other.test_client().get("/readyz")
    assert ready.status_code == 200, ready.json
    assert "loyalty" in account_fields(runtime)
    assert [r.levelname for r in records] == ["WARNING"]
    assert "the definition files (model " in records[0].getMessage()


def test_between_checks_a_request_sends_no_query(
    other_app: MakeApp, changed: Path, heddle_migrate: Migrate
) -> None:
    other = other_app(3600)
    runtime = runtime_of(other)
    client = other.test_client()
    assert client.get("/healthz").status_code == 200  # the first request checks
    sent = count_statements(runtime.engine)
    heddle_migrate(changed)
    for _ in range(3):
        assert client.get("/healthz").status_code == 200
    assert sent == []
    assert "loyalty" not in account_fields(runtime)  # not yet: the next check is an hour away
    runtime.refresh()  # what the process that makes a change does, for itself
    assert "loyalty" in account_fields(runtime)


def test_with_no_interval_every_request_checks(other_app: MakeApp) -> None:
    other = other_app(0)
    sent = count_statements(runtime_of(other).engine)
    client = other.test_client()
    for _ in range(3):
        assert client.get("/healthz").status_code == 200
    assert len([s for s in sent if HISTORY_TABLE in s]) == 3


def test_a_broken_snapshot_keeps_the_model_served(
    app: Flask,
    other_app: MakeApp,
    changed: Path,
    heddle_migrate: Migrate,
) -> None:
    heddle_migrate(Path(app.config["PACKAGES"]))
    other = other_app(0)
    runtime = runtime_of(other)
    client = other.test_client()
    assert client.get("/healthz").status_code == 200
    served = runtime.model
    history = runtime.tables.metadata.tables[HISTORY_TABLE]
    with runtime.engine.begin() as conn:
        conn.execute(
            history.insert().values(
                hash="f" * 64, model='{"packages": [', operations=[],
                applied_at=dt.datetime.now(dt.UTC), actor="mangled",
            )
        )  # fmt: skip
    with runtime_log() as records:
        for _ in range(3):
            assert client.get("/healthz").status_code == 200
    assert runtime.model is served
    errors = [r.getMessage() for r in records if r.levelno == logging.ERROR]
    assert len(errors) == 1  # once, not on every check
    assert "cannot be loaded" in errors[0] and "ffffffffffff" in errors[0]
    assert client.get("/api/v1/meta/entities").status_code == 401  # still serving

    heddle_migrate(changed)  # a good migration afterwards is followed again
    assert client.get("/healthz").status_code == 200
    assert "loyalty" in account_fields(runtime)


def test_a_request_keeps_the_state_it_started_with(
    app: Flask, changed: Path, heddle_migrate: Migrate
) -> None:
    runtime = runtime_of(app)
    with app.test_request_context("/healthz"):
        app.preprocess_request()
        pinned = runtime.records
        heddle_migrate(changed)
        runtime.refresh()  # swapped while the request runs
        assert "loyalty" in set(runtime.latest.model.entity("account").fields)
        assert runtime.records is pinned and runtime.model is pinned.model
        assert runtime.tables is pinned.tables and "loyalty" not in account_fields(runtime)
    assert runtime.records is runtime.latest.records  # the next request sees the new one
    assert "loyalty" in account_fields(runtime)


def test_threads_compile_a_new_model_once(
    app: Flask, changed: Path, heddle_migrate: Migrate
) -> None:
    runtime = runtime_of(app)
    heddle_migrate(changed)
    barrier = threading.Barrier(6)
    seen: list[str] = []

    def check() -> None:
        barrier.wait()
        seen.append(runtime.refresh().model.hash)

    with runtime_log() as records:
        threads = [threading.Thread(target=check) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert seen == [runtime.latest.model.hash] * 6
    assert len(records) == 1  # compiled once, by one of them


def test_nothing_to_follow_before_the_first_migration(
    db_url: str, db_engine: sa.Engine, tmp_path: Path, app: Flask
) -> None:
    """On a database with no history table yet, the files' Model is served as it is."""
    package = Path(app.config["PACKAGES"])
    runtime_of(app).engine.dispose()
    with db_engine.begin() as conn:  # as if nothing was migrated: no tables at all
        runtime_of(app).tables.metadata.drop_all(conn)
    fresh = create_app(
        {"DATABASE_URL": db_url, "PACKAGES": str(package), "MODEL_CHECK_SECONDS": 0,
         "INSTANCE_PATH": str(tmp_path / "fresh"), "SECRET_KEY": "test", "TESTING": True}
    )  # fmt: skip
    runtime = runtime_of(fresh)
    served = runtime.model
    try:
        assert fresh.test_client().get("/healthz").status_code == 200
        assert runtime.refresh().model is served
    finally:
        runtime.engine.dispose()


@pytest.mark.parametrize("value", ["soon", "-1", "nan"])
def test_the_check_interval_must_be_a_number(tmp_path: Path, value: str) -> None:
    with pytest.raises(ValueError, match="HEDDLE_MODEL_CHECK_SECONDS must be a number"):
        create_app({"MODEL_CHECK_SECONDS": value, "INSTANCE_PATH": str(tmp_path)})
