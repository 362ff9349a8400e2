"""The session secret: configured, or kept in the instance folder for one machine."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from flask import Flask
from heddle.app import create_app

PACKAGE = (
    "kind: package\nname: tiny\n---\nkind: entity\nname: note\nfields:\n  text: {type: string}\n"
)


def _app(tmp_path: Path, url: str, secret: str = "") -> Flask:
    package = tmp_path / "tiny.yaml"
    package.write_text(PACKAGE, encoding="utf-8")
    app = create_app(
        {"DATABASE_URL": url, "PACKAGES": str(package), "INSTANCE_PATH": str(tmp_path / "i"),
         "SECRET_KEY": secret}
    )  # fmt: skip
    app.extensions["heddle"].engine.dispose()
    return app


def test_an_unset_secret_is_kept_private_in_the_instance_folder(tmp_path: Path) -> None:
    first = _app(tmp_path, f"sqlite:///{tmp_path}/a.db")
    kept = tmp_path / "i" / "secret_key"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert first.config["SECRET_KEY"] == kept.read_text(encoding="utf-8") != ""
    again = _app(tmp_path, f"sqlite:///{tmp_path}/a.db")
    assert again.config["SECRET_KEY"] == first.config["SECRET_KEY"]
    assert _app(tmp_path, f"sqlite:///{tmp_path}/a.db", "set").config["SECRET_KEY"] == "set"


def test_a_shared_database_without_a_secret_is_warned_about(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _app(tmp_path, f"sqlite:///{tmp_path}/a.db")  # one machine: nothing to share
    assert "HEDDLE_SECRET_KEY" not in capsys.readouterr().err
    _app(tmp_path, pg_url)  # the log lines go to stderr (heddle.logs)
    assert "WARNING heddle.app: HEDDLE_SECRET_KEY is not set" in capsys.readouterr().err
    _app(tmp_path, pg_url, "set")
    assert "HEDDLE_SECRET_KEY" not in capsys.readouterr().err
