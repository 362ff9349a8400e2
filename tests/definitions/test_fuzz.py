"""Whatever a definition file holds, loading it gives a Model or a DefinitionError.

Three generators feed :func:`metamodel.load_packages` one single-file package at a time:

- text and bytes made of YAML fragments (indicators, anchors, tags, quotes, indentation,
  document markers, odd unicode), with or without a valid package header in front;
- JSON-like values (nested mappings, lists and scalars, biased towards the words of the
  definition language) dumped as extra documents after a valid header;
- a valid package whose documents are mutated: keys dropped or renamed, values replaced
  by values of another type. There every problem must also carry a line number.

Anything else escaping the loader — ``KeyError``, ``TypeError``, a warning turned into an
error by pytest's ``filterwarnings = error`` — fails the test, and hypothesis shrinks the
input to a small example.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, currently_in_test_context, event, given, settings
from hypothesis import strategies as st

from metamodel import FIELD_TYPES, KINDS, DefinitionError, Model, load_packages

HEADER = "kind: package\nname: fuzz\n---\n"

# Derandomized: the same examples on every run, so a red test is reproducible and never
# flaky for whoever runs the suite next. To search harder, run locally with a larger
# max_examples and derandomize=False (a few thousand examples take about two minutes).
FUZZ = settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def package_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One file, rewritten by every example (hypothesis allows no function fixtures)."""
    return tmp_path_factory.mktemp("fuzz") / "package.yaml"


def load(path: Path, content: str | bytes) -> Model | DefinitionError:
    """Write ``content`` to ``path`` and load it: a Model, or the DefinitionError raised."""
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    try:
        model = load_packages([path])
    except DefinitionError as error:
        assert error.problems, "a DefinitionError must list at least one problem"
        _note(re.sub(r"'[^']*'|\d+", "_", error.problems[0].message)[:60])
        for problem in error.problems:
            assert problem.message
            assert str(problem)
        return error
    _note("loaded")
    return model


def _note(outcome: str) -> None:
    """Count outcomes: ``--hypothesis-show-statistics`` shows which checks inputs reach."""
    if currently_in_test_context():
        event(outcome)


# the words of the language ------------------------------------------------------------

WORDS = [
    *KINDS,
    *FIELD_TYPES.names(),
    "kind",
    "name",
    "extend",
    "extends",
    "remove",
    "label",
    "fields",
    "type",
    "options",
    "to",
    "entity",
    "via",
    "of",
    "aggregate",
    "field",
    "expression",
    "returns",
    "default",
    "required",
    "min",
    "max",
    "format",
    "states",
    "transitions",
    "from",
    "permissions",
    "validations",
    "rule",
    "message",
    "form",
    "sections",
    "list_views",
    "columns",
    "kanban",
    "calendar",
    "start",
    "trigger",
    "actions",
    "event",
    "date_field",
    "widgets",
    "report",
    "measures",
    "group_by",
    "child",
    "title_field",
    "search_fields",
    "contact",
    "account",
    "sum",
    "count",
    "created",
    "all",
    "en",
    "zh",
]
EXPRESSIONS = [
    "name == 'a'",
    "amount > 1 and stage in ['won', 'lost']",
    "=today()",
    "days_between(created_at, today())",
    "account.name",
    "__import__('os')",
    "x[0]",
    "(",
    "CT-{YYYY}-{seq:05}",
    "{seq}",
    "[[:alpha:]]",
    "(?P<",
]

names = st.sampled_from(WORDS)
chars = st.characters(codec="utf-8")  # what a UTF-8 file can hold
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(chars, max_size=12),
    names,
    st.sampled_from(EXPRESSIONS),
)
keys = st.one_of(names, st.text(chars, max_size=10))

json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(keys, inner, max_size=5),
    ),
    max_leaves=25,
)

field_specs = st.builds(
    lambda kind, extra: {"type": kind, **extra},
    st.sampled_from(FIELD_TYPES.names()),
    st.dictionaries(names, json_values, max_size=4),
)
entity_documents = st.builds(
    lambda name, fields, extra: {"kind": "entity", "name": name, "fields": fields, **extra},
    names,
    st.dictionaries(names, field_specs, min_size=1, max_size=4),
    st.dictionaries(names, json_values, max_size=3),
)
kind_documents = st.builds(
    lambda kind, name, extra: {"kind": kind, "name": name, **extra},
    st.sampled_from(KINDS),
    names,
    st.dictionaries(names, json_values, max_size=5),
)
documents = st.one_of(json_values, kind_documents, entity_documents)


# (a) YAML-ish text ----------------------------------------------------------------------

TOKENS = [
    ":",
    ": ",
    "-",
    "- ",
    "[",
    "]",
    "{",
    "}",
    ",",
    "? ",
    "&a ",
    "*a",
    "&b ",
    "*b",
    "<<: ",
    "!!str ",
    "!!map ",
    "!!seq ",
    "!!set ",
    "!!omap ",
    "!!binary ",
    "!!timestamp ",
    "!!python/object:os.system ",
    "!local ",
    "%YAML 1.1\n",
    "%TAG ! tag:x,2024:\n",
    "---",
    "---\n",
    "...",
    "...\n",
    "'",
    '"',
    "\\",
    "|",
    "|-\n",
    ">",
    "#",
    "\n",
    "  ",
    "    ",
    "\t",
    "kind: entity\n",
    "kind: package\n",
    "name: x\n",
    "fields:\n",
    "  a: {type: string}\n",
    "  b:\n    type: choice\n    options: [x, y]\n",
    "extend: x\n",
    "true",
    "null",
    "~",
    "yes",
    "on",
    "0x1F",
    "1e400",
    ".nan",
    "2024-02-30",
    "2024-01-01 10:00:00",
    "é",
    "客户",
    "\u2028",
    "\x85",
    "\ufeff",
    "\u200b",
    "\U0001f600",
    "\x00",
    "\x07",
]

yaml_text = st.lists(
    st.one_of(st.sampled_from(TOKENS), names, st.text(chars, max_size=5)), max_size=40
).map("".join)
content = st.one_of(
    yaml_text,
    st.text(chars, max_size=200),
    st.binary(max_size=200),
    st.builds(lambda body: HEADER + body, yaml_text),
    st.builds(lambda body: HEADER.encode() + body, st.binary(max_size=100)),
)


@FUZZ
@given(content=content)
def test_any_text_loads_or_fails_cleanly(package_file: Path, content: str | bytes) -> None:
    result = load(package_file, content)
    assert isinstance(result, Model | DefinitionError)


# (b) JSON-like documents after a valid header -----------------------------------------


@FUZZ
@given(docs=st.lists(documents, min_size=1, max_size=4))
def test_any_documents_load_or_fail_cleanly(package_file: Path, docs: list[Any]) -> None:
    text = HEADER + yaml.safe_dump_all(docs, allow_unicode=True, sort_keys=False)
    result = load(package_file, text)
    assert isinstance(result, Model | DefinitionError)


# (c) mutations of a valid package -----------------------------------------------------

VALID: list[dict[str, Any]] = [
    {
        "kind": "entity",
        "name": "account",
        "label": {"en": "Account", "zh": "客户"},
        "title_field": "name",
        "search_fields": ["name"],
        "fields": {
            "name": {"type": "string", "required": True, "max_length": 80},
            "code": {"type": "autonumber", "format": "AC-{seq:04}"},
            "grade": {"type": "choice", "options": ["a", "b"], "default": "a"},
            "tags": {"type": "multichoice", "options": ["x", "y"], "default": ["x"]},
            "revenue": {"type": "money", "min": 0, "max": 1000},
            "founded": {"type": "date", "default": "2000-01-01"},
            "parent": {"type": "reference", "to": "account", "on_delete": "set_null"},
            "lines": {"type": "children", "entity": "line"},
            "total": {
                "type": "rollup",
                "of": "line",
                "via": "account",
                "aggregate": "sum",
                "field": "amount",
            },
            "big": {"type": "formula", "returns": "boolean", "expression": "revenue > 100"},
            "note": {"type": "text", "visible_when": "grade == 'a'"},
        },
        "validations": [{"name": "positive", "rule": "revenue >= 0", "message": "No"}],
        "form": {"sections": [{"name": "main", "fields": ["name", "grade"]}]},
        "list_views": [{"name": "all", "columns": ["name", "parent.name"]}],
        "kanban": {"field": "grade", "sum": "revenue"},
        "calendar": {"start": "founded"},
    },
    {
        "kind": "entity",
        "name": "line",
        "child": True,
        "fields": {
            "account": {"type": "reference", "to": "account", "on_delete": "cascade"},
            "amount": {"type": "decimal"},
        },
    },
    {
        "kind": "workflow",
        "name": "grading",
        "entity": "account",
        "field": "grade",
        "states": [{"name": "a", "initial": True}, {"name": "b", "final": True}],
        "transitions": [{"name": "down", "from": "a", "to": "b", "roles": ["admin"]}],
    },
    {
        "kind": "role",
        "name": "sales",
        "permissions": {"account": {"read": "all", "fields": {"revenue": "hidden"}}},
    },
    {
        "kind": "report",
        "name": "by_grade",
        "entity": "account",
        "group_by": ["grade"],
        "measures": [{"name": "total", "aggregate": "sum", "field": "revenue"}],
    },
    {
        "kind": "automation",
        "name": "notify",
        "entity": "account",
        "trigger": {"event": "created"},
        "actions": [{"type": "notify", "to": "owner"}],
    },
]

Path_ = tuple[Any, ...]


def _paths(value: Any, prefix: Path_ = ()) -> list[Path_]:
    """Every path to a mapping key or list item inside ``value``."""
    found: list[Path_] = []
    if isinstance(value, dict | list):
        for key, item in value.items() if isinstance(value, dict) else enumerate(value):
            found.append((*prefix, key))
            found.extend(_paths(item, (*prefix, key)))
    return found


PATHS = _paths(VALID)


def _has(container: Any, key: Any) -> bool:
    if isinstance(container, dict):
        return key in container
    return isinstance(container, list) and isinstance(key, int) and key < len(container)


def _parent(root: Any, path: Path_) -> Any:
    """The container holding ``path``'s last part, or None when an earlier change removed it."""
    for part in path[:-1]:
        if not _has(root, part):
            return None
        root = root[part]
    return root


def _drop(root: Any, path: Path_, _new: Any) -> None:
    parent, last = _parent(root, path), path[-1]
    if _has(parent, last):
        del parent[last]


def _replace(root: Any, path: Path_, new: Any) -> None:
    parent, last = _parent(root, path), path[-1]
    if _has(parent, last):
        parent[last] = new


def _rename(root: Any, path: Path_, new: Any) -> None:
    parent, last = _parent(root, path), path[-1]
    if isinstance(parent, dict) and last in parent and isinstance(new, str):
        # Rebuild the mapping so the renamed key keeps its place.
        renamed = {(new if k == last else k): v for k, v in parent.items()}
        parent.clear()
        parent.update(renamed)


MUTATIONS: dict[str, Callable[[Any, Path_, Any], None]] = {
    "drop": _drop,
    "replace": _replace,
    "rename": _rename,
}

mutations = st.lists(
    st.tuples(
        st.sampled_from(sorted(MUTATIONS)),
        st.sampled_from(PATHS),
        st.one_of(scalars, json_values, names.map(lambda n: n + "x"), names),
    ),
    min_size=1,
    max_size=3,
)


def test_the_unmutated_package_loads(package_file: Path) -> None:
    result = load(package_file, HEADER + yaml.safe_dump_all(VALID, sort_keys=False))
    assert isinstance(result, Model), str(result)


@FUZZ
@given(changes=mutations)
def test_mutated_package_reports_located_problems(
    package_file: Path, changes: list[tuple[str, Path_, Any]]
) -> None:
    docs = copy.deepcopy(VALID)
    for operation, path, new in changes:
        MUTATIONS[operation](docs, path, new)
    text = HEADER + yaml.safe_dump_all(docs, allow_unicode=True, sort_keys=False)
    result = load(package_file, text)
    assert isinstance(result, Model | DefinitionError)
    if isinstance(result, DefinitionError):
        for problem in result.problems:
            assert problem.origin.line > 0, f"no line for: {problem}"
            assert problem.origin.col > 0, f"no column for: {problem}"
