"""Settings are declared once, and every one is documented."""

from __future__ import annotations

from pathlib import Path

import crm_definitions
from heddle.settings import SETTINGS, package_paths, setting

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def test_every_setting_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    for item in SETTINGS:
        assert f"`{item.env}`" in text, f"{item.env} is missing from docs/configuration.md"
        assert item.help, item.name


def test_defaults_and_overrides() -> None:
    assert setting("LOCALE", {}) == "en"
    assert setting("LOCALE", {"HEDDLE_LOCALE": "ja"}) == "ja"
    assert package_paths({}) == [crm_definitions.PATH]
    assert package_paths({"HEDDLE_PACKAGES": "a, b,"}) == [Path("a"), Path("b")]
