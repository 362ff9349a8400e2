"""The distribution lists every Python package of the source tree: a sub-package left out
of ``pyproject.toml`` works in an editable checkout and is missing from a wheel."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_is_in_the_distribution() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]
    setuptools = config["setuptools"]
    folders = {"heddle": ROOT / "platform" / "heddle"}
    folders.update({name: ROOT / path for name, path in setuptools["package-dir"].items()})
    found = set()
    for top in setuptools["packages"]:
        if "." in top:
            continue
        root = folders.get(top, ROOT / top)
        for init in root.rglob("__init__.py"):
            if "__pycache__" in init.parts:
                continue
            relative = init.parent.relative_to(root).parts
            found.add(".".join((top, *relative)))
    assert found == set(setuptools["packages"])
