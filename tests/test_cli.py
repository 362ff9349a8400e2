"""The ``heddle`` command line: validate, schema, migrations, users, teams and tokens."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from heddle.cli import main

from metamodel import definition_schema

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_validate_the_crm_package(runner: CliRunner) -> None:
    result = runner.invoke(main, ["validate", str(ROOT / "apps" / "crm_definitions")])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("crm: valid — ")


def test_validate_defaults_to_the_configured_packages(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "package.yaml").write_text("kind: package\nname: tiny\n")
    monkeypatch.setenv("HEDDLE_PACKAGES", str(tmp_path))
    result = runner.invoke(main, ["validate"])
    assert result.exit_code == 0
    assert result.output.startswith("tiny: valid — 0 entities")


def test_validate_prints_every_error_and_fails(runner: CliRunner, tmp_path: Path) -> None:
    package = tmp_path / "bad.yaml"
    package.write_text(
        "kind: package\nname: bad\n---\nkind: entity\nname: thing\nfields:\n"
        "  a: {type: dat}\n  b: {type: string, lable: B}\n"
    )
    result = runner.invoke(main, ["validate", str(package)])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"{package}:7:13: fields.a.type: unknown type 'dat' (did you mean 'date'?)",
        f"{package}:8:21: fields.b.lable: unknown property 'lable' (did you mean 'label'?)",
        "2 errors found",
    ]


def test_validate_a_missing_path(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["validate", str(tmp_path / "nowhere")])
    assert result.exit_code == 1
    assert f"{tmp_path / 'nowhere'}: no such file or folder" in result.output


def test_no_traceback_on_garbage(tmp_path: Path) -> None:
    """Run the real console script on hostile input: an error, never a traceback."""
    garbage = tmp_path / "garbage.yaml"
    garbage.write_bytes(b"\xff\xfe kind: [\x00")
    done = subprocess.run(
        [sys.executable, "-m", "heddle", "validate", str(garbage)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "not valid UTF-8" in done.stderr


def test_schema_prints_the_json_schema(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.output) == definition_schema()
    target = tmp_path / "schema.json"
    assert runner.invoke(main, ["schema", "-o", str(target)]).exit_code == 0
    assert json.loads(target.read_text()) == definition_schema()


def test_the_published_schema_file_is_current() -> None:
    """docs/heddle.schema.json is what editors load; regenerate it with `heddle schema -o`."""
    published = json.loads((ROOT / "docs" / "heddle.schema.json").read_text(encoding="utf-8"))
    assert published == definition_schema(), "run: heddle schema -o docs/heddle.schema.json"


def test_help_lists_every_setting(runner: CliRunner) -> None:
    from heddle.settings import SETTINGS

    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    for setting in SETTINGS:
        assert setting.env in result.output


def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HEDDLE_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.delenv("HEDDLE_PACKAGES", raising=False)


def test_user_create(runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _env(monkeypatch, tmp_path)
    assert runner.invoke(main, ["migrate"]).exit_code == 0
    done = runner.invoke(main, ["user", "create", "wang", "--password", "long-enough", "--role",
                                "sales_manager", "--team", "Shanghai", "--name", "Wang Fang"])  # fmt: skip
    assert done.exit_code == 0, done.output
    assert done.output == "created user wang (id 1) with roles sales_manager\n"
    done = runner.invoke(main, ["user", "create", "li", "--password", "long-enough", "--role",
                                "sales_rep", "--role", "marketing", "--team", "Shanghai",
                                "--manager", "wang"])  # fmt: skip
    assert done.exit_code == 0, done.output
    from heddle.accounts import Accounts

    from engine import build_tables, connect
    from metamodel import load_packages

    accounts = Accounts(build_tables(load_packages([ROOT / "apps" / "crm_definitions"])))
    engine = connect(f"sqlite:///{tmp_path / 'cli.db'}")
    with engine.connect() as conn:
        li = accounts.by_username(conn, "li")
        wang = accounts.by_username(conn, "wang")
        manager = conn.scalar(
            sa.select(accounts.users.c.manager_id).where(accounts.users.c.username == "li")
        )
        assert li is not None and accounts.authenticate(conn, "li", "long-enough") is not None
    engine.dispose()
    assert li.roles == {"sales_rep", "marketing"} and li.team_id == wang.team_id  # type: ignore[union-attr]
    assert manager == wang.id  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--role", "nosuch"], "cannot create user x: unknown role 'nosuch'"),
        (["--role", "admin", "--manager", "ghost"], "no user called 'ghost' to be the manager"),
    ],
)
def test_user_create_refusals(
    runner: CliRunner,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    args: list[str],
    message: str,
) -> None:
    _env(monkeypatch, tmp_path)
    assert runner.invoke(main, ["migrate"]).exit_code == 0
    done = runner.invoke(main, ["user", "create", "x", "--password", "long-enough", *args])
    assert done.exit_code == 1 and message in done.output
    assert "Traceback" not in done.output
    short = runner.invoke(main, ["user", "create", "y", "--password", "short", "--role", "admin"])
    assert short.exit_code == 1 and "at least 8 characters" in short.output
    twice = ["user", "create", "z", "--password", "long-enough", "--role", "admin"]
    assert runner.invoke(main, twice).exit_code == 0
    assert runner.invoke(main, twice).exit_code == 1
    assert runner.invoke(main, [*twice, "--exists-ok"]).output == "user z exists\n"


def test_serve_starts_the_app(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, runner: CliRunner
) -> None:
    from flask import Flask

    _env(monkeypatch, tmp_path)
    monkeypatch.setenv("HEDDLE_INSTANCE_PATH", str(tmp_path / "instance"))
    seen: dict[str, object] = {}
    monkeypatch.setattr(Flask, "run", lambda self, **kw: seen.update(kw, app=self))
    done = runner.invoke(main, ["serve", "--port", "5055"])
    assert done.exit_code == 0, done.output
    assert seen["host"] == "127.0.0.1" and seen["port"] == 5055
    assert "http://127.0.0.1:5055/" in done.output


def test_team_hierarchy(runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _env(monkeypatch, tmp_path)
    assert runner.invoke(main, ["migrate"]).exit_code == 0
    assert runner.invoke(main, ["team", "create", "East"]).output == "team East (id 1)\n"
    done = runner.invoke(main, ["team", "create", "East-North", "--parent", "East"])
    assert done.output == "team East-North (id 2) under East\n"
    loop = runner.invoke(main, ["team", "create", "East", "--parent", "East-North"])
    assert loop.exit_code == 1 and "cannot be placed under itself" in loop.output
    from engine import connect

    engine = connect(f"sqlite:///{tmp_path / 'cli.db'}")
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.text("SELECT name, parent_id FROM heddle_team")).all())
    engine.dispose()
    assert rows == {"East": None, "East-North": 1}


def test_serve_names_a_bad_setting_without_a_traceback(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEDDLE_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("HEDDLE_MODEL_CHECK_SECONDS", "soon")
    result = runner.invoke(main, ["serve", "--port", "0"])
    assert result.exit_code == 1
    assert "HEDDLE_MODEL_CHECK_SECONDS must be a number of seconds" in result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, ValueError)


def test_tokens_for_a_service_account(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _env(monkeypatch, tmp_path)
    assert runner.invoke(main, ["migrate"]).exit_code == 0
    made = ["user", "create", "erp", "--password", "long-enough", "--role", "viewer"]
    assert runner.invoke(main, made).exit_code == 0
    issued = runner.invoke(main, ["token", "create", "erp", "--days", "30", "--name", "ERP sync"])
    assert issued.exit_code == 0, issued.output
    value = issued.stdout.strip()
    assert value.startswith("hdl_") and "\n" not in value  # the token alone on stdout
    assert "token for erp, valid until" in issued.stderr

    from heddle.app import create_app

    app = create_app({"TOKEN_CACHE_SECONDS": 0})
    try:
        client = app.test_client()
        headers = {"Authorization": f"Bearer {value}"}
        assert client.get("/api/v1/meta/entities", headers=headers).status_code == 200

        listed = runner.invoke(main, ["token", "list"])
        assert listed.exit_code == 0
        header, line = listed.output.splitlines()
        assert header.split() == [
            "id",
            "user",
            "name",
            "created",
            "expires",
            "last",
            "used",
            "status",
        ]
        assert line.split()[:4] == ["1", "erp", "ERP", "sync"] and line.endswith("active")
        assert runner.invoke(main, ["token", "list", "nobody"]).output.count("\n") == 1

        revoked = runner.invoke(main, ["token", "revoke", "1"])
        assert revoked.exit_code == 0 and revoked.output == "revoked token 1\n"
        assert client.get("/api/v1/meta/entities", headers=headers).status_code == 401
        assert runner.invoke(main, ["token", "list", "erp"]).output.rstrip().endswith("revoked")
        again = runner.invoke(main, ["token", "revoke", "1", "7"])
        assert again.exit_code == 1 and "no active token with id 1, 7" in again.stderr
    finally:
        app.extensions["heddle"].engine.dispose()
    nobody = runner.invoke(main, ["token", "create", "nobody"])
    assert nobody.exit_code == 1 and "no active user 'nobody'" in nobody.stderr
    assert "Traceback" not in nobody.output


def _db_env(monkeypatch: pytest.MonkeyPatch, db_url: str) -> None:
    monkeypatch.setenv("HEDDLE_DATABASE_URL", db_url)
    monkeypatch.delenv("HEDDLE_PACKAGES", raising=False)


@pytest.mark.parametrize(
    "username", ["Test Person", "tab\there", "new\nline", "-rf", "", "x" * 151, "nul\x00"]
)
def test_usernames_are_checked(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, username: str
) -> None:
    _env(monkeypatch, tmp_path)
    done = runner.invoke(main, ["user", "create", "--password", "long-enough", "--role",
                                "admin", "--", username])  # fmt: skip
    assert done.exit_code == 2, done.output
    assert f"cannot create user {username!r}: a username" in done.output
    assert "Traceback" not in done.output


def test_users_are_listed_disabled_enabled_renamed(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, db_url: str, db_engine: sa.Engine
) -> None:
    _db_env(monkeypatch, db_url)
    assert runner.invoke(main, ["migrate"]).exit_code == 0
    for args in (["wang", "--role", "sales_manager", "--team", "Shanghai"],
                 ["li.lei@example.com", "--role", "sales_rep", "--team", "Shanghai",
                  "--manager", "wang"],
                 ["李雷", "--role", "viewer"]):  # fmt: skip
        made = runner.invoke(main, ["user", "create", "--password", "long-enough", *args])
        assert made.exit_code == 0, made.output
    # a username made before they were checked, to be fixed by a rename
    db_engine.dispose()
    with db_engine.begin() as conn:
        conn.execute(sa.text("UPDATE heddle_user SET username = 'Test Person' WHERE name = '李雷'"))

    listed = runner.invoke(main, ["user", "list"])
    assert listed.exit_code == 0, listed.output
    lines = {line.split("  ")[0]: line.split() for line in listed.output.splitlines()}
    assert set(lines) == {"username", "Test Person", "li.lei@example.com", "wang"}
    assert lines["li.lei@example.com"][2:] == ["sales_rep", "Shanghai", "wang", "active"]

    assert runner.invoke(main, ["user", "disable", "wang"]).output == "disabled user wang\n"
    inactive = runner.invoke(main, ["user", "list", "--inactive"]).output.splitlines()
    assert len(inactive) == 2 and inactive[1].startswith("wang") and "disabled" in inactive[1]
    only = runner.invoke(main, ["user", "list", "--active", "--role", "sales_rep"]).output
    assert only.splitlines()[1].startswith("li.lei@example.com") and only.count("\n") == 2
    assert runner.invoke(main, ["user", "list", "--team", "Nowhere"]).output.count("\n") == 1
    assert runner.invoke(main, ["user", "enable", "wang"]).output == "enabled user wang\n"

    bad = runner.invoke(main, ["user", "rename", "Test Person", "Still Bad"])
    assert bad.exit_code == 1 and "a username may hold only" in bad.output
    fixed = runner.invoke(main, ["user", "rename", "Test Person", "li.lei"])
    assert fixed.output == "renamed user Test Person to li.lei\n"
    taken = runner.invoke(main, ["user", "rename", "li.lei", "wang"])
    assert taken.exit_code == 1 and "user 'wang' already exists" in taken.output
    ghost = runner.invoke(main, ["user", "disable", "ghost"])
    assert ghost.exit_code == 2 and "no user 'ghost' (see: heddle user list)" in ghost.output

    roles = runner.invoke(main, ["user", "set-role", "li.lei", "sales_rep", "marketing"])
    assert roles.output == "user li.lei has roles marketing, sales_rep\n"
    unknown = runner.invoke(main, ["user", "set-role", "li.lei", "nosuch"])
    assert unknown.exit_code == 1 and "unknown role 'nosuch'" in unknown.output

    short = runner.invoke(main, ["user", "set-password", "wang", "--password", "short"])
    assert short.exit_code == 1 and "at least 8 characters" in short.output
    changed = runner.invoke(main, ["user", "set-password", "wang", "--password", "new-long-one"])
    assert changed.output == "new password set for wang\n"

    from heddle.app import create_app

    app = create_app({"DATABASE_URL": db_url, "TOKEN_CACHE_SECONDS": 0})
    try:
        client = app.test_client()
        login = {"username": "wang", "password": "new-long-one"}
        assert client.post("/api/v1/auth/token", json=login).status_code == 201
        old = {"username": "wang", "password": "long-enough"}
        assert client.post("/api/v1/auth/token", json=old).status_code == 401
    finally:
        app.extensions["heddle"].engine.dispose()

    teams = runner.invoke(main, ["team", "list"])
    assert teams.output.splitlines()[1].split() == ["Shanghai", "-", "2"]
    assert "Traceback" not in listed.output + teams.output


def _commands(group: click.Group, prefix: str = "heddle") -> list[str]:
    found = []
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            found += _commands(command, f"{prefix} {name}")
        else:
            found.append(f"{prefix} {name}")
    return found


def test_every_command_is_in_the_readme_and_the_help(runner: CliRunner) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("## Commands") :].split("\n## ")[0]
    missing = [c for c in _commands(main) if f"`{c}" not in table and f"{c}`" not in table]
    assert not missing, f"add to README.md's commands table: {missing}"
    for group in ("user", "team", "token"):
        shown = runner.invoke(main, [group, "--help"]).output
        for command in _commands(main):
            if command.startswith(f"heddle {group} "):
                assert f"  {command.split()[-1]} " in shown, command


def test_a_token_name_is_checked(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _env(monkeypatch, tmp_path)
    done = runner.invoke(main, ["token", "create", "anyone", "--name", "x" * 201])
    assert done.exit_code == 2 and "a token's name has at most 200 characters" in done.output


def test_validate_takes_an_installed_package_by_name(runner: CliRunner) -> None:
    result = runner.invoke(main, ["validate", "crm"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("crm: valid — ")


def test_a_wrong_package_list_shows_its_root_cause_first(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    overlay = tmp_path / "acme.yaml"
    overlay.write_text(
        "kind: package\nname: acme\nextends: crm\n---\n"
        "kind: entity\nextend: account\nfields:\n  wechat: {type: string}\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HEDDLE_PACKAGES", f"crn,{overlay}")
    result = runner.invoke(main, ["validate"])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "crn: no such file or folder, nor an installed package of that name (did you mean 'crm'?)",
        "acme.yaml:3:10: extends: package 'acme' extends 'crm', which is not loaded before it"
        " (list the 'crm' package before 'acme' in HEDDLE_PACKAGES)",
        "2 errors found",
    ]
    monkeypatch.setenv("HEDDLE_PACKAGES", f"crm,{overlay}")
    assert runner.invoke(main, ["validate", "-q"]).exit_code == 0


def test_help_lists_restore(runner: CliRunner) -> None:
    result = runner.invoke(main, ["--help"])
    assert "  restore " in result.output


RESTORED = (
    "kind: package\nname: t\n---\nkind: entity\nname: account\nfields:\n  name: {type: string}\n"
)


def test_restore_an_archived_field(
    runner: CliRunner,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    db_url: str,
    db_engine: sa.Engine,  # empties the database afterwards
) -> None:
    package = tmp_path / "t.yaml"
    monkeypatch.setenv("HEDDLE_DATABASE_URL", db_url)
    monkeypatch.setenv("HEDDLE_PACKAGES", str(package))
    full = RESTORED + "  fax: {type: phone}\n"
    package.write_text(full)
    assert runner.invoke(main, ["migrate"]).exit_code == 0
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO account (name, fax, created_at, updated_at, version)"
            " VALUES ('A', '010-1', :now, :now, 1), ('B', NULL, :now, :now, 1)"
        ), {"now": "2024-03-01 09:30:00"})  # fmt: skip
    package.write_text(RESTORED)
    assert runner.invoke(main, ["migrate", "--allow-destructive"]).exit_code == 0

    done = runner.invoke(main, ["restore", "account", "fax"])
    assert done.exit_code == 2
    assert "entity 'account' has no field 'fax': add it again and migrate before" in done.output
    package.write_text(full)
    done = runner.invoke(main, ["restore", "account", "fax"])
    assert done.exit_code == 1
    assert "the database is not at these definitions: run heddle migrate first" in done.output
    assert runner.invoke(main, ["migrate"]).exit_code == 0
    done = runner.invoke(main, ["restore", "acount", "fax"])
    assert (
        done.exit_code == 2 and "no entity 'acount' in the definitions (did you mean" in done.output
    )
    done = runner.invoke(main, ["restore", "account", "fax"])
    assert done.exit_code == 0, done.output
    assert done.output == "restored 1 value of account.fax\n"
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT name, fax FROM account ORDER BY id")).all() == [
            ("A", "010-1"),
            ("B", None),
        ]
    engine.dispose()
    done = runner.invoke(main, ["restore", "account", "name"])
    assert (
        done.output == "nothing to restore for account.name: the archive has none, or all is back\n"
    )
