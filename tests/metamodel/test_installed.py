"""Definition packages named instead of given by path: ``heddle.packages`` entry points."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from pathlib import Path

import crm_definitions
import pytest

from metamodel import DefinitionError, load_packages
from metamodel import _installed as installed


def test_an_installed_package_loads_by_name() -> None:
    assert installed.installed_path("crm") == crm_definitions.PATH
    model = load_packages(["crm"])
    assert model.package.name == "crm"
    assert model.package.path == str(crm_definitions.PATH)


def test_a_path_comes_before_a_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "crm").mkdir()
    (tmp_path / "crm" / "package.yaml").write_text("kind: package\nname: local\n")
    monkeypatch.chdir(tmp_path)
    assert load_packages(["crm"]).package.name == "local"


def test_an_entry_point_may_name_an_attribute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    point = EntryPoint("acme", "crm_definitions:PATH", installed.GROUP)
    monkeypatch.setattr(installed, "entry_points", lambda group: [point])
    assert installed.installed_path("acme") == crm_definitions.PATH
    assert installed.installed_path("crm") is None


def test_an_unknown_name_suggests_an_installed_one() -> None:
    with pytest.raises(DefinitionError) as caught:
        load_packages(["cmr"])
    assert [str(p) for p in caught.value.problems] == [
        "cmr: no such file or folder, nor an installed package of that name (did you mean 'crm'?)"
    ]


def test_a_broken_entry_point_is_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    point = EntryPoint("gone", "no_such_module:PATH", installed.GROUP)
    monkeypatch.setattr(installed, "entry_points", lambda group: [point])
    with pytest.raises(DefinitionError) as caught:
        load_packages(["gone"])
    assert [str(p) for p in caught.value.problems] == [
        "gone: installed package 'gone' points at 'no_such_module:PATH', which is not a folder"
        " of definitions (reinstall the distribution that provides it)"
    ]
