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
XFAIL: dict[str, str] = {}


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
