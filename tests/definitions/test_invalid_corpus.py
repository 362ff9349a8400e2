"""Every definition in ``invalid/`` fails to load with exactly the problems it announces.

The corpus (STYLE.md, habit 14) holds one broken package per entry:

- ``NN_name.yaml``: a single-file package, its documents separated by ``---``, one of
  them ``kind: package`` (``NN`` is a number of two or three digits, unique in the corpus);
- ``NN_name/``: a folder with ``base.yaml`` and ``overlay.yaml``, two single-file packages
  loaded as ``load_packages([base.yaml, overlay.yaml])``, for overlay mistakes.

An entry starts with one comment line per problem the loader must report, written exactly
as ``str(problem)`` prints it::

    # expect: {file}:10:11: fields.birthday.type: unknown type 'dat' (did you mean 'date'?)

``{file}`` stands for the file holding the comments (``overlay.yaml`` in a folder) and
``{dir}`` for the entry's folder, both relative to the repository root as the loader
shows them (the test runs from the root). Line numbers count the comment lines too.
The expected problems are compared as a set, and their number must match as well.

An entry whose expectation states what the loader *should* say, while it says something
else today, is listed in :data:`XFAIL` with the reason; the test then fails strictly
(``xfail(strict=True)``), so fixing the loader turns it into an unexpected pass that must
be acknowledged by removing the entry from the list.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from metamodel import DefinitionError, load_packages

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parent / "invalid"
EXPECT = re.compile(r"^# expect: (.+)$")
ENTRY_NAME = re.compile(r"^\d{2,3}_[a-z0-9_]+(\.yaml)?$")

#: Entries the loader gets wrong today: the expectation is what it should report.
XFAIL: dict[str, str] = {
    "01_yaml_unclosed_bracket": (
        "the YAML error drops PyYAML's context: nothing says the '{' of line 8 is unclosed"
    ),
    "02_yaml_bad_indentation": (
        "the YAML error drops PyYAML's context (which mapping the bad line should continue)"
    ),
    "03_yaml_tab": "a tab is reported as 'found character that cannot start any token'",
    "06_recursive_alias": (
        "the recursive alias is located at the anchor (line 7) instead of the alias (line 9)"
    ),
    "18_label_bad_locale_key": (
        "a bad locale key gives 'unexpected a mapping: Text, or text per locale: …' at the "
        "label instead of naming the key"
    ),
    "24_child_without_parent_reference": (
        "also reports the child as 'not used by any children field', which is false and "
        "advises removing 'child: true'"
    ),
    "31_multichoice_default_not_option": (
        "points at the whole default list and, unlike choice, does not list the options"
    ),
    "36_option_not_applicable": "grammar: 'a integer field'",
    "40_reserved_entity_name": "suggests 'crm_user' whatever the package is called",
    "43_formula_syntax_error": "'syntax error: invalid syntax' does not say where",
    "53_validation_not_boolean": "grammar: 'expression gives a integer'",
    "63_search_fields_number": "grammar: 'cannot search a integer field'",
    "85_decimal_bound_nan": "min: .nan on a decimal crashes with decimal.InvalidOperation",
    "86_date_default_impossible": (
        "an impossible date gives 'cannot read value' without saying it is not a date"
    ),
    "87_calendar_start_system_field": "a system column is taken for a datetime: loads",
    "88_rollup_sum_system_field": "a system column is taken for an integer: loads",
    "89_automation_date_field_system_field": "a system column is taken for a datetime: loads",
    "90_kanban_sum_text": "kanban 'sum' is not checked to be a number: loads",
    "91_trigger_fields_item_location": "points at the list, not at the unknown item",
    "92_choice_options_numbers": "raw jsonschema text: '1 is not valid under any of …'",
    "93_label_empty": "an empty label gives 'unexpected text: Text, or text per locale: …'",
    "94_currency_pattern": "the message shows the regular expression ^[A-Z]{3}$",
    "95_expression_too_long": "the message repeats the whole 2,000-character expression",
    "96_package_extends_itself": "says to put 't' before 't' in the package list",
    "97_default_shows_yaml_value": "shows Python's True instead of the YAML true",
    "98_remove_document_name": (
        "removing 'name' is reported as a missing name at the base document, not at "
        "the remove entry"
    ),
    "99_expression_assign_instead_of_compare": (
        "'=' for '==' gives only 'syntax error: invalid syntax'"
    ),
    "100_regex_posix_class": (
        "re.compile's FutureWarning escapes load_packages (an exception under "
        "filterwarnings=error, stderr noise and a silently wrong pattern otherwise)"
    ),
    "102_field_type_empty": "an empty type gives 'unknown type None (did you mean 'phone'?)'",
    "103_enum_given_a_list": (
        "a list where text is expected gives \"unknown value ['cascade'] (did you mean "
        "'cascade'?)\""
    ),
}


def _entries() -> list[Path]:
    found = [p for p in CORPUS.iterdir() if not p.name.startswith((".", "_"))]
    return sorted(found, key=lambda p: (len(p.name.split("_")[0]), p.name))


def _paths(entry: Path) -> tuple[list[Path], Path]:
    """The paths to load, and the file holding the expectations."""
    if entry.is_dir():
        overlay = entry / "overlay.yaml"
        return [entry / "base.yaml", overlay], overlay
    return [entry], entry


def _display(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _expected(entry: Path) -> list[str]:
    _, holder = _paths(entry)
    lines = []
    for line in holder.read_text(encoding="utf-8").splitlines():
        match = EXPECT.match(line)
        if match is None:
            break
        lines.append(
            match.group(1)
            .replace("{file}", _display(holder))
            .replace("{dir}", _display(entry) if entry.is_dir() else _display(entry.parent))
        )
    return lines


def _params() -> list[object]:
    return [
        pytest.param(
            entry,
            id=entry.name,
            marks=[pytest.mark.xfail(strict=True, reason=XFAIL[entry.stem])]
            if entry.stem in XFAIL
            else [],
        )
        for entry in _entries()
    ]


@pytest.mark.parametrize("entry", _params())
def test_invalid_definition(entry: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    paths, _ = _paths(entry)
    expected = _expected(entry)
    with pytest.raises(DefinitionError) as caught:
        load_packages(paths)
    actual = [str(problem) for problem in caught.value.problems]
    assert set(actual) == set(expected)
    assert len(actual) == len(expected)


# meta-tests ---------------------------------------------------------------------------


def test_corpus_is_large_enough() -> None:
    assert len(_entries()) >= 50


@pytest.mark.parametrize("entry", _entries(), ids=lambda p: p.name)
def test_entry_is_well_formed(entry: Path) -> None:
    assert ENTRY_NAME.match(entry.name), "name entries NN_snake_case or NN_snake_case.yaml"
    if entry.is_dir():
        assert sorted(p.name for p in entry.iterdir()) == ["base.yaml", "overlay.yaml"]
    expected = _expected(entry)
    assert expected, "start the file with at least one '# expect:' line"
    _, holder = _paths(entry)
    assert all(line.startswith(_display(holder.parent)) for line in expected)
    assert len(set(expected)) == len(expected), "an expected problem is listed twice"


def test_entry_numbers_are_unique() -> None:
    numbers = [int(entry.name.split("_")[0]) for entry in _entries()]
    assert len(numbers) == len(set(numbers))


def test_every_xfail_names_an_entry() -> None:
    assert set(XFAIL) <= {entry.stem for entry in _entries()}
