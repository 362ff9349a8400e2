"""The published JSON Schema: valid draft 2020-12, and it accepts and rejects what the
loader does, so an editor's squiggles agree with ``heddle validate``."""

from __future__ import annotations

from pathlib import Path

import fastjsonschema
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from metamodel import FIELD_TYPES, KINDS, definition_schema
from metamodel.loader import _fast_validator, _full_validator

ROOT = Path(__file__).resolve().parents[2]


def test_schema_is_valid_draft_2020_12() -> None:
    Draft202012Validator.check_schema(definition_schema())


def test_every_kind_and_field_type_is_in_the_schema() -> None:
    schema = definition_schema()
    assert schema["properties"]["kind"]["enum"] == list(KINDS)
    assert schema["$defs"]["field"]["properties"]["type"]["enum"] == list(FIELD_TYPES)
    for kind in KINDS:
        assert kind in schema["$defs"] and f"{kind}_patch" in schema["$defs"]


def test_every_crm_document_validates_against_the_published_schema() -> None:
    validator = Draft202012Validator(definition_schema())
    files = sorted((ROOT / "apps" / "crm_definitions").rglob("*.yaml"))
    assert files
    for file in files:
        text = file.read_text(encoding="utf-8")
        assert text.startswith("# yaml-language-server: $schema="), file
        for document in yaml.safe_load_all(text):
            errors = [e.message for e in validator.iter_errors(document)]
            assert errors == [], (file, errors)


def test_the_whole_schema_rejects_what_the_loader_rejects() -> None:
    validator = Draft202012Validator(definition_schema())
    bad = [
        {"kind": "entity", "name": "x", "fields": {"a": {"type": "dat"}}},
        {"kind": "entity", "name": "x", "fields": {"a": {"type": "choice"}}},
        {"kind": "entity", "name": "X", "fields": {"a": {"type": "string"}}},
        {"kind": "entity", "extend": "x", "fields": {"a": {"lable": "A"}}},
        {"kind": "widget", "name": "x"},
    ]
    for document in bad:
        assert list(validator.iter_errors(document)), document
    good = [
        {"kind": "entity", "extend": "x", "fields": {"a": {"label": "A"}}},
        {"kind": "entity", "extend": "x", "remove": ["fields.b"]},
    ]
    for document in good:
        assert not list(validator.iter_errors(document)), document


# The loader asks a compiled validator (fastjsonschema) "valid?" and walks a failing
# document again with jsonschema for every error. Both must judge alike.

_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.sampled_from(["", "x", "Foo", "a_b", "en"])
)
_FIELD = st.fixed_dictionaries(
    {"type": st.sampled_from([*FIELD_TYPES, "dat"])},
    optional={
        "label": st.one_of(_SCALARS, st.dictionaries(st.sampled_from(["en", "zh", "X"]), _SCALARS)),
        "options": st.lists(st.one_of(_SCALARS, st.fixed_dictionaries({"value": _SCALARS})), max_size=3),
        "to": _SCALARS,
        "required": _SCALARS,
        "min": _SCALARS,
        "format": _SCALARS,
        "expression": _SCALARS,
        "returns": st.sampled_from(["string", "money", "bogus"]),
        "lable": _SCALARS,
    },
)
_ENTITY = st.fixed_dictionaries(
    {"kind": st.just("entity"), "name": st.sampled_from(["deal", "Deal", "a__b"])},
    optional={
        "fields": st.dictionaries(st.sampled_from(["name", "amount", "Bad"]), _FIELD, max_size=3),
        "search_fields": st.lists(_SCALARS, max_size=2),
        "extend": st.just("deal"),
        "remove": st.lists(st.sampled_from(["fields.x", "x", "X.y"]), max_size=2),
    },
)


@settings(max_examples=300, deadline=None)
@given(_ENTITY)
def test_fast_and_full_validators_agree(document: dict[str, object]) -> None:
    patch = "extend" in document
    fast_ok = True
    try:
        _fast_validator("entity", patch)(document)
    except fastjsonschema.JsonSchemaException:
        fast_ok = False
    full_ok = not list(_full_validator("entity", patch).iter_errors(document))
    assert fast_ok == full_ok
