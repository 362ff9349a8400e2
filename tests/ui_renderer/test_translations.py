"""Every piece of interface text has its Chinese and Japanese translation: the messages
are extracted from the templates and views as ``pybabel extract`` does (the mapping of
``ui_renderer/translations/babel.cfg``), then looked up in each catalog."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po

from engine.imports import MESSAGES

ROOT = Path(__file__).resolve().parents[2]
CATALOGS = ROOT / "ui_renderer" / "translations"
METHODS = [
    ("platform/heddle/ui.py", "python"),
    ("platform/heddle/_screens.py", "python"),
    ("platform/heddle/_screen_forms.py", "python"),
    ("platform/heddle/_screen_workflow.py", "python"),
    ("platform/heddle/_screen_boards.py", "python"),
    ("platform/heddle/_screen_reports.py", "python"),
    ("platform/heddle/_screen_lists.py", "python"),
    ("platform/heddle/_screen_approvals.py", "python"),
    ("platform/heddle/_screen_settings.py", "python"),
    ("platform/heddle/_screen_files.py", "python"),
    ("platform/heddle/_screen_notifications.py", "python"),
    ("platform/heddle/_screen_timeline.py", "python"),
    ("platform/heddle/_screen_pools.py", "python"),
    ("platform/heddle/_screen_imports.py", "python"),
    ("ui_renderer/templates/**.html", "jinja2"),
]
OPTIONS = {"ui_renderer/templates/**.html": {"extensions": "jinja2.ext.i18n"}}


def test_the_mapping_names_every_module_with_interface_text() -> None:
    config = (CATALOGS / "babel.cfg").read_text(encoding="utf-8")
    for pattern, method in METHODS:
        assert f"[{method}: {pattern}]" in config


def _messages() -> set[str | tuple[str, ...]]:
    keywords = {**DEFAULT_KEYWORDS, "_": None, "gettext": None, "ngettext": (1, 2)}
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        ROOT, METHODS, OPTIONS, keywords=keywords
    ):
        found.add(message)
    return found


@pytest.mark.parametrize("locale", ["zh", "ja"])
def test_every_message_is_translated(locale: str) -> None:
    with (CATALOGS / locale / "LC_MESSAGES" / "messages.po").open("rb") as source:
        catalog = read_po(source, locale=locale)
    messages = _messages()
    assert len(messages) > 50
    missing = []
    for message in messages:
        key = message[0] if isinstance(message, tuple) else message
        entry = catalog.get(key)
        strings = entry.string if entry is not None else ""
        if not entry or not all(strings if isinstance(strings, tuple) else [strings]):
            missing.append(key)
    assert missing == [], f"untranslated in {locale}: {missing}"
    assert not any(m.fuzzy for m in catalog if m.id)


@pytest.mark.parametrize("locale", ["zh", "ja"])
def test_every_reason_an_import_refuses_a_row_is_translated(locale: str) -> None:
    """The engine's templates (engine.imports.MESSAGES), which the import screens say in
    the user's language, each with the same places as its English."""
    with (CATALOGS / locale / "LC_MESSAGES" / "messages.po").open("rb") as source:
        catalog = read_po(source, locale=locale)
    assert len(MESSAGES) > 15
    for template in MESSAGES:
        entry = catalog.get(template)
        assert entry is not None and entry.string, f"untranslated in {locale}: {template}"
        places = sorted(re.findall(r"%\((\w+)\)s", template))
        assert sorted(re.findall(r"%\((\w+)\)s", str(entry.string))) == places, template
