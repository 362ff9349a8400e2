"""The distribution's package list names every folder that ships: a folder setuptools
finds but is not told of draws a "Package … is absent from the `packages`
configuration" warning on every ``pip install`` (issue 9), and setuptools means to drop
such folders from wheels one day."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SKIP = {"__pycache__", ".mypy_cache", ".pytest_cache"}


def _setuptools() -> Any:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return config["tool"]["setuptools"]


def _folder(package: str, package_dir: dict[str, str]) -> Path:
    top, _, rest = package.partition(".")
    base = ROOT / package_dir.get(top, top)
    return base.joinpath(*rest.split(".")) if rest else base


def test_every_folder_that_ships_is_a_listed_package() -> None:
    setuptools = _setuptools()
    packages = set(setuptools["packages"])
    package_dir: dict[str, str] = dict(setuptools.get("package-dir", {}))
    tops = sorted(p for p in packages if "." not in p)
    # folders shipped whole as package data (ui_renderer's static/**): not packages
    data = {
        top: {glob.split("/")[0] for glob in globs if "/" in glob}
        for top, globs in setuptools.get("package-data", {}).items()
    }
    missing = []
    for top in tops:
        root = _folder(top, package_dir)
        assert root.is_dir(), f"package {top}: no folder {root}"
        for folder in sorted(root.rglob("*")):
            parts = folder.relative_to(root).parts
            if not folder.is_dir() or SKIP & set(parts) or parts[0] in data.get(top, ()):
                continue
            if not any(f.is_file() for f in folder.iterdir()):
                continue
            name = ".".join((top, *folder.relative_to(root).parts))
            if name not in packages:
                missing.append(name)
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {missing}"


def test_every_listed_package_exists() -> None:
    setuptools = _setuptools()
    package_dir: dict[str, str] = dict(setuptools.get("package-dir", {}))
    for package in setuptools["packages"]:
        assert _folder(package, package_dir).is_dir(), package
