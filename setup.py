"""Build hook: a wheel carries the front-end libraries that ``ui_renderer/assets.json`` pins.

Everything else about the build is in ``pyproject.toml``. The libraries' files are not in
git (see docs/deployment.md): before collecting package data, ``build_py`` installs them
into ``ui_renderer/static/vendor/`` — a no-op when they are already there and intact,
otherwise fetched from the npm registry (``HEDDLE_NPM_REGISTRY`` for a mirror) and checked
against the lock. Editable installs skip this: ``./dev`` installs them itself.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def _assets_module() -> ModuleType:
    """``ui_renderer/assets.py`` loaded by path: importing the package ``ui_renderer``
    would need its dependencies, which a build environment does not have."""
    path = ROOT / "ui_renderer" / "assets.py"
    spec = importlib.util.spec_from_file_location("_heddle_assets", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while loading
    spec.loader.exec_module(module)
    return module


class BuildPyWithAssets(build_py):
    def run(self) -> None:
        if not getattr(self, "editable_mode", False):
            assets = _assets_module()
            try:
                assets.install(log=lambda message: print(f"assets: {message}"))
            except assets.AssetError as error:
                raise SystemExit(f"assets: error: {error}") from None
            # package data may have been listed before the files existed
            self.data_files = self._get_data_files()
        super().run()


setup(cmdclass={"build_py": BuildPyWithAssets})
