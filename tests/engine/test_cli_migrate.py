"""``heddle plan`` and ``heddle migrate`` against SQLite and PostgreSQL, configured by
HEDDLE_DATABASE_URL and HEDDLE_PACKAGES like a deployment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from heddle.cli import main
from sqlalchemy.engine import Engine

BASE = """\
kind: package
name: shop
---
kind: entity
name: account
fields:
  name: {type: string, max_length: 40}
  fax: {type: string}
"""


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def shop(tmp_path: Path, db_url: str, db_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A package file, set up as HEDDLE_PACKAGES on the test database."""
    path = tmp_path / "shop.yaml"
    path.write_text(BASE, encoding="utf-8")
    monkeypatch.setenv("HEDDLE_PACKAGES", str(path))
    monkeypatch.setenv("HEDDLE_DATABASE_URL", db_url)
    return path


def test_plan_then_migrate_then_nothing_to_do(
    runner: CliRunner, shop: Path, db_engine: Engine
) -> None:
    planned = runner.invoke(main, ["plan"])
    assert planned.exit_code == 0, planned.output
    lines = planned.output.splitlines()
    assert lines[0].startswith("Plan for model ") and "(new database)" in lines[0]
    assert any(line.endswith("create table account") for line in lines)
    assert "CREATE TABLE" not in planned.output
    assert "account" not in sa.inspect(db_engine).get_table_names()  # plan changes nothing

    with_sql = runner.invoke(main, ["plan", "--sql"])
    assert with_sql.exit_code == 0 and "CREATE TABLE account (" in with_sql.output

    migrated = runner.invoke(main, ["migrate"])
    assert migrated.exit_code == 0, migrated.output
    assert migrated.output.startswith("Migrated to model ")
    assert "create table account" in migrated.output
    assert "account" in sa.inspect(db_engine).get_table_names()

    again = runner.invoke(main, ["migrate"])
    assert again.exit_code == 0
    assert again.output.startswith("Nothing to do: the database is at model ")
    assert runner.invoke(main, ["plan"]).output.startswith("Nothing to do")


def test_destructive_changes_need_the_flag(
    runner: CliRunner, shop: Path, db_engine: Engine
) -> None:
    assert runner.invoke(main, ["migrate"]).exit_code == 0
    with db_engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO account (created_at, updated_at, name, fax) VALUES (CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 'A', '010')"
            )
        )
    shop.write_text(BASE.replace("  fax: {type: string}\n", ""), encoding="utf-8")

    planned = runner.invoke(main, ["plan"])
    assert planned.exit_code == 0
    assert "! drop column account.fax (1 value archived first)" in planned.output

    refused = runner.invoke(main, ["migrate"])
    assert refused.exit_code == 1
    assert "would drop data" in refused.output and "--allow-destructive" in refused.output
    assert "Traceback" not in refused.output
    assert "fax" in {c["name"] for c in sa.inspect(db_engine).get_columns("account")}

    done = runner.invoke(main, ["migrate", "--allow-destructive", "--actor", "ops"])
    assert done.exit_code == 0, done.output
    assert "! drop column account.fax" in done.output
    with db_engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM heddle_archive")) == 1
        assert (
            conn.scalar(sa.text("SELECT actor FROM heddle_schema_history ORDER BY id DESC LIMIT 1"))
            == "ops"
        )


def test_refusals_print_clearly_and_fail(runner: CliRunner, shop: Path, db_engine: Engine) -> None:
    assert runner.invoke(main, ["migrate"]).exit_code == 0
    with db_engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO account (created_at, updated_at, name) VALUES (CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 'Much too long a name')"
            )
        )
    shop.write_text(BASE.replace("max_length: 40", "max_length: 5"), encoding="utf-8")
    message = "account.name: 1 row is longer than 5 characters (id 1)"

    planned = runner.invoke(main, ["plan"])
    assert planned.exit_code == 1
    assert f"  - {message}" in planned.output

    refused = runner.invoke(main, ["migrate"])
    assert refused.exit_code == 1
    assert message in refused.output and "nothing was changed" in refused.output
    assert "Traceback" not in refused.output


def test_bad_definitions_stop_before_the_database(runner: CliRunner, shop: Path) -> None:
    shop.write_text(BASE.replace("type: string, max", "type: strng, max"), encoding="utf-8")
    result = runner.invoke(main, ["migrate"])
    assert result.exit_code == 1
    assert "unknown type 'strng' (did you mean 'string'?)" in result.output


def test_an_unreachable_database_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    package = tmp_path / "shop.yaml"
    package.write_text(BASE, encoding="utf-8")
    for url, expected in [
        ("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2", "database error"),
        ("nonsense", "HEDDLE_DATABASE_URL: cannot use 'nonsense'"),
    ]:
        done = subprocess.run(
            [sys.executable, "-m", "heddle", "plan"],
            capture_output=True,
            text=True,
            check=False,
            env={"HEDDLE_DATABASE_URL": url, "HEDDLE_PACKAGES": str(package), "PATH": ""},
        )
        assert done.returncode == 1
        assert expected in done.stderr and "Traceback" not in done.stderr
