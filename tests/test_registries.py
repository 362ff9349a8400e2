"""Meta-tests of the extension points: every built-in is in every layer's registry, and
registries refuse what would silently shadow a built-in."""

from __future__ import annotations

import pytest
from heddle.fieldtypes import JSON_TYPES, JSONType

from engine.fieldtypes import FILTER_KINDS, OPERATORS, STORAGE_TYPES
from metamodel import (
    ACTION_TYPES,
    FIELD_TYPES,
    MEASURES,
    TRIGGER_TYPES,
    VIEW_KINDS,
    FieldType,
    RegistryError,
    UnknownName,
)
from metamodel.fieldtypes import BUILTIN_FIELD_TYPES, COMMON_OPTIONS
from metamodel.schema import FIELD_OPTIONS, definition_schema
from ui_renderer import WIDGETS

LAYERS = {
    "metamodel": FIELD_TYPES,
    "engine": STORAGE_TYPES,
    "platform": JSON_TYPES,
    "ui_renderer": WIDGETS,
}


@pytest.mark.parametrize("layer", list(LAYERS))
def test_every_builtin_field_type_is_in_every_layer(layer: str) -> None:
    assert set(LAYERS[layer]) == set(BUILTIN_FIELD_TYPES)


@pytest.mark.parametrize("name", BUILTIN_FIELD_TYPES)
def test_the_layers_agree_on_each_type(name: str) -> None:
    language, storage, json = FIELD_TYPES[name], STORAGE_TYPES[name], JSON_TYPES[name]
    # a client sends a value exactly when the platform does not compute it
    takes_input = not language.computed and language.category != "children"
    assert (storage.input is not None) is takes_input, name
    assert (json.input is not None) is takes_input, name
    # only computed-on-read formulas and children have no column
    assert (storage.column is None) is (name in ("formula", "children")), name
    kind = storage.kind
    assert callable(kind) or kind in FILTER_KINDS, name
    assert set(storage.operators or ()) <= set(OPERATORS), name
    assert language.options <= set(FIELD_OPTIONS) | set(language.extra_options), name


def test_every_field_option_belongs_to_a_type() -> None:
    used = set(COMMON_OPTIONS)
    for kind in FIELD_TYPES.values():
        used |= kind.options
    assert set(FIELD_OPTIONS) <= used


def test_the_schema_follows_the_registries() -> None:
    schema = definition_schema()
    field = schema["$defs"]["field"]
    assert field["properties"]["type"]["enum"] == list(FIELD_TYPES)
    assert set(VIEW_KINDS) <= set(schema["$defs"]["entity"]["properties"])
    trigger = schema["$defs"]["automation"]["properties"]["trigger"]["properties"]
    assert set(TRIGGER_TYPES) <= set(trigger)
    measure = schema["$defs"]["report"]["properties"]["measures"]["items"]
    assert measure["properties"]["aggregate"]["enum"] == list(MEASURES)
    action_types = {
        branch["if"]["properties"]["type"]["const"]
        for branch in schema["$defs"]["automation"]["properties"]["actions"]["items"]["allOf"]
    }
    assert action_types == set(ACTION_TYPES)


def test_a_registry_refuses_a_second_entry_of_one_name() -> None:
    with pytest.raises(RegistryError, match="already registered"):
        FIELD_TYPES.register(FieldType("string", "string"))
    with pytest.raises(RegistryError, match="snake_case"):
        JSON_TYPES.register(JSONType("Rating", lambda f: {}, None))
    with pytest.raises(UnknownName, match="did you mean 'money'"):
        FIELD_TYPES["mony"]


def test_replacing_a_builtin_is_deliberate_and_changes_the_schema() -> None:
    original = FIELD_TYPES["phone"]
    before = definition_schema()
    try:
        FIELD_TYPES.register(
            FieldType("phone", "string", original.options, description="A phone."),
            replace=True,
        )
        assert definition_schema() is not before  # rebuilt for the new registry
    finally:
        FIELD_TYPES.register(original, replace=True)
    assert FIELD_TYPES["phone"] is original
