"""The ``heddle`` command line: validate and schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
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
