"""The JSON Schemas of the OpenAPI document: what each field type looks like, and the
component schemas built from them.

Kept apart from :mod:`heddle.openapi` (which assembles the document, caches it and serves
it) because this is the part that must follow the engine field by field: a record as
returned (``<Entity>``), what a create or update accepts (``<Entity>Input``,
``<Entity>Patch``, ``<Entity>RowInput``, ``<Entity>RowPatch`` — the same limits as the
engine's input validation, so that a client checking against the document sends what
the API accepts), a list page (``<Entity>Page``) and the fixed schemas every document
shares (``Error``, ``Label``…).
The JSON of each field type comes from :data:`heddle.fieldtypes.JSON_TYPES`.

>>> record_schema(entity, schema_names(model), frozenset())["properties"]["name"]["title"]
'Account name'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from engine.query import QueryValueError, Target, target
from metamodel import Entity, Field, Label, Model

from .fieldtypes import INT64_MAX, JSON_TYPES, plain

JSONSchema = dict[str, Any]

ACTIONS = ("read", "create", "update", "delete")
SYSTEM_DESCRIPTIONS = {
    "id": "The record's id.",
    "created_at": "When the record was created.",
    "updated_at": "When the record was last changed.",
    "created_by": "The id of the user who created the record (null: the platform).",
    "updated_by": "The id of the user who last changed the record (null: the platform).",
    "version": "Increases with every change; send it back with PATCH and DELETE.",
    "owner_id": "The id of the user who owns the record.",
    "team_id": "The id of the team the record belongs to.",
}


# --- small helpers ------------------------------------------------------------------------


def _labelled(schema: JSONSchema, label: Label | None, help_text: Label | None = None) -> None:
    """English label as ``title``, help as ``description``, every locale in ``x-labels``."""
    if label is not None:
        schema["title"] = label.get("en")
        texts = label.to_json()
        if isinstance(texts, dict) and len(texts) > 1:
            schema["x-labels"] = texts
    if help_text is not None:
        schema["description"] = help_text.get("en")


def _nullable(schema: JSONSchema) -> JSONSchema:
    """``schema`` that also accepts null: ``type: [X, "null"]``."""
    if "$ref" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    kind = schema.get("type")
    if isinstance(kind, str):
        schema = {**schema, "type": [kind, "null"]}
    elif isinstance(kind, list) and "null" not in kind:
        schema = {**schema, "type": [*kind, "null"]}
    if "enum" in schema and None not in schema["enum"]:
        schema["enum"] = [*schema["enum"], None]
    return schema


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


FIXED_SCHEMAS = (
    "Error",
    "Label",
    "HistoryEntry",
    "EntitySummary",
    "EntityMeta",
    "FieldMeta",
    "DuplicateDetails",
)
SUFFIXES = ("", "Input", "Patch", "Page", "RowInput", "RowPatch")


def schema_names(model: Model) -> dict[str, str]:
    """Entity name → the base of its component names: ``quote_line`` → ``QuoteLine``.

    An entity whose names would collide with another's (``a_b`` and ``ab``) or with a
    fixed schema (an entity called ``error``) keeps its own snake_case name, which starts
    with a lower-case letter and so can collide with nothing.
    """
    camel = {ent.name: _camel(ent.name) for ent in model}
    taken: dict[str, int] = dict.fromkeys(FIXED_SCHEMAS, 2)
    for base in camel.values():
        for suffix in SUFFIXES:
            taken[base + suffix] = taken.get(base + suffix, 0) + 1
    return {
        name: base if all(taken[base + s] == 1 for s in SUFFIXES) else name
        for name, base in camel.items()
    }


def ref(name: str) -> JSONSchema:
    """A reference to the component schema ``name``."""
    return {"$ref": f"#/components/schemas/{name}"}


# --- field schemas: a record as returned --------------------------------------------------


def _system_schema(name: str) -> JSONSchema:
    schema: JSONSchema
    if name in ("created_at", "updated_at"):
        schema = {"type": "string", "format": "date-time"}
    elif name in ("id", "version"):
        schema = {"type": "integer", "minimum": 1}
    else:
        schema = {"type": ["integer", "null"]}
    schema["readOnly"] = name not in ("owner_id", "team_id")
    schema["description"] = SYSTEM_DESCRIPTIONS[name]
    return schema


def _output_field(field: Field, names: Mapping[str, str]) -> JSONSchema:
    if field.type == "children":
        schema: JSONSchema = {"type": "array", "items": ref(names[field.children or ""])}
        schema["description"] = "The child rows (in single-record responses, not in lists)."
    else:
        schema = _nullable(JSON_TYPES[field.type].output(field))
        if field.computed or field.readonly:
            schema["readOnly"] = True
    _labelled(schema, field.label, field.help)
    schema["x-field-type"] = field.type
    return schema


# --- field schemas: input -----------------------------------------------------------------


def _needs_value(field: Field) -> bool:
    """Required and without a default: a create must send it."""
    return field.required and field.default is None and field.default_expression is None


def _input_field(field: Field, *, required: bool) -> JSONSchema:
    input_of = JSON_TYPES[field.type].input
    assert input_of is not None, f"{field.type} takes no input"
    schema = input_of(field)
    if field.required:
        # null, "" and [] count as missing for a required field
        if schema.get("type") == "string":
            schema["minLength"] = max(schema.get("minLength", 0), 1)
        elif schema.get("type") == "array":
            schema["minItems"] = 1
    else:
        schema = _nullable(schema)
    _labelled(schema, field.label, field.help)
    if field.default is not None:
        default = plain(field.default)
        if field.type in ("decimal", "money", "percent"):
            default = str(default)
        schema["default"] = default
    schema["x-field-type"] = field.type
    return schema


def _owner_field(name: str) -> JSONSchema:
    return {
        "type": ["integer", "null"],
        "minimum": 1,
        "maximum": INT64_MAX,
        "description": SYSTEM_DESCRIPTIONS[name] + " Defaults to the caller's.",
    }


# --- what a list may name -----------------------------------------------------------------


def readable_targets(entity: Entity, hidden: frozenset[str]) -> list[Target]:
    """Every field and system column a list query may name (children excluded)."""
    found = []
    for name in [*entity.fields, *entity.system_fields]:
        if name in hidden:
            continue
        try:
            found.append(target(entity, name))
        except QueryValueError:
            continue  # children: filtered through their own entity
    return found


def expandable_targets(targets: list[Target]) -> list[Target]:
    """The references among ``targets``: what ``expand`` may name (their titles)."""
    return [
        t
        for t in targets
        if (t.field is None and t.kind == "ref")
        or (t.field is not None and t.field.type in ("reference", "user", "team"))
    ]


# --- the fixed schemas --------------------------------------------------------------------

ERROR_SCHEMA: JSONSchema = {
    "type": "object",
    "description": "Every error has this shape; fields maps each field to its problems.",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "additionalProperties": False,
            "properties": {
                "code": {"type": "string", "examples": ["validation_failed"]},
                "message": {"type": "string"},
                "fields": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                    "examples": [{"name": ["Missing data for required field."]}],
                },
                "details": {"type": "object"},
            },
        }
    },
}

# status → (component name, description)
LABEL_SCHEMA: JSONSchema = {
    "description": "A text, or texts by locale ({en: …, zh: …, ja: …}).",
    "type": ["string", "object"],
    "additionalProperties": {"type": "string"},
}

HISTORY_SCHEMA: JSONSchema = {
    "type": "object",
    "required": ["action", "at", "actor_id", "version", "changes"],
    "additionalProperties": False,
    "properties": {
        "action": {"type": "string", "enum": ["create", "update", "delete", "merge"]},
        "at": {"type": "string", "format": "date-time"},
        "actor_id": {"type": ["integer", "null"]},
        "version": {"type": "integer"},
        "changes": {
            "type": "object",
            "description": "Each changed field: [old value, new value]; a merge's changes "
            "hold id: [the loser's id, this record's].",
            "additionalProperties": {"type": "array", "minItems": 2, "maxItems": 2},
        },
        "merged_from": {
            "type": "integer",
            "description": "Set on the entries of a record merged into this one: its id.",
        },
    },
}

TRANSITION_SCHEMA: JSONSchema = {
    "type": "object",
    "description": "A transition the caller may fire on the record now.",
    "required": ["name", "label", "workflow", "field", "from", "to", "comment"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "label": ref("Label"),
        "workflow": {"type": "string"},
        "field": {"type": "string", "description": "The state field it changes."},
        "from": {"type": "string"},
        "to": {"type": "string"},
        "to_label": ref("Label"),
        "comment": {"type": "string", "enum": ["optional", "required", "none"]},
        "required_fields": {"type": "array", "items": {"type": "string"}},
        "fields": {"type": "array", "items": {"type": "string"}},
        "approval": {"type": ["string", "null"]},
    },
}

TRANSITION_ENTRY_SCHEMA: JSONSchema = {
    "type": "object",
    "description": "A transition fired on the record.",
    "required": ["workflow", "transition", "from_state", "to_state", "at", "version"],
    "additionalProperties": False,
    "properties": {
        "workflow": {"type": "string"},
        "transition": {"type": "string"},
        "from_state": {"type": "string"},
        "to_state": {"type": "string"},
        "comment": {"type": ["string", "null"]},
        "actor_id": {"type": ["integer", "null"]},
        "at": {"type": "string", "format": "date-time"},
        "version": {"type": "integer", "description": "The record's version it made."},
    },
}

FIELD_META_SCHEMA: JSONSchema = {
    "type": "object",
    "required": ["name", "type", "label", "required", "readonly"],
    "properties": {
        "name": {"type": "string"},
        "type": {"type": "string"},
        "label": ref("Label"),
        "required": {"type": "boolean"},
        "readonly": {"type": "boolean"},
        "help": ref("Label"),
        "options": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["value", "label"],
                "properties": {
                    "value": {"type": "string"},
                    "label": ref("Label"),
                    "color": {"type": ["string", "null"]},
                },
            },
        },
    },
}

ENTITY_SUMMARY_SCHEMA: JSONSchema = {
    "type": "object",
    "required": ["name", "label", "plural_label", "ownable", "child", "actions"],
    "properties": {
        "name": {"type": "string"},
        "label": ref("Label"),
        "plural_label": ref("Label"),
        "title_field": {"type": ["string", "null"]},
        "ownable": {"type": "boolean"},
        "child": {"type": "boolean"},
        "actions": {"type": "array", "items": {"type": "string", "enum": list(ACTIONS)}},
    },
}

ENTITY_META_SCHEMA: JSONSchema = {
    "allOf": [
        ref("EntitySummary"),
        {
            "type": "object",
            "required": ["fields"],
            "properties": {
                "fields": {"type": "array", "items": ref("FieldMeta")},
                "search_fields": {"type": "array", "items": {"type": "string"}},
                "default_sort": {"type": "array", "items": {"type": "string"}},
            },
        },
    ]
}

# --- entity schemas -----------------------------------------------------------------------


def _properties(
    entity: Entity, names: Mapping[str, str], hidden: frozenset[str]
) -> dict[str, JSONSchema]:
    properties: dict[str, JSONSchema] = {}
    system = entity.system_fields
    for name in ("id",):
        properties[name] = _system_schema(name)
    for field in entity.fields.values():
        if field.name not in hidden:
            properties[field.name] = _output_field(field, names)
    for name in system:
        if name != "id" and name not in hidden:
            properties[name] = _system_schema(name)
    return properties


def record_schema(entity: Entity, names: Mapping[str, str], hidden: frozenset[str]) -> JSONSchema:
    """``<Entity>``: a record as returned, without the fields in ``hidden``."""
    properties = _properties(entity, names, hidden)
    schema: JSONSchema = {
        "type": "object",
        "required": [
            name for name, prop in properties.items() if prop.get("x-field-type") != "children"
        ],
        "additionalProperties": False,
        "properties": properties,
    }
    _labelled(schema, entity.label, entity.description)
    return schema


def page_schema(entity: Entity, names: Mapping[str, str], hidden: frozenset[str]) -> JSONSchema:
    """``<Entity>Page``: a page of a list, its rows without child rows."""
    properties = {
        name: prop
        for name, prop in _properties(entity, names, hidden).items()
        if prop.get("x-field-type") != "children"
    }
    for found in expandable_targets(readable_targets(entity, hidden)):
        title: JSONSchema = {"type": ["string", "null"]}
        if found.kind == "multi":
            title = {"type": "array", "items": title}
        title["description"] = f"The title of {found.name}, with expand={found.name}."
        properties[f"{found.name}__title"] = title
    row: JSONSchema = {
        "type": "object",
        "description": "A record as listed: no child rows; only id, version and the requested "
        "fields with fields=…; reference titles with expand=….",
        "required": ["id"],
        "additionalProperties": False,
        "properties": properties,
    }
    return {
        "type": "object",
        "required": ["data", "next_cursor", "count", "count_estimated"],
        "additionalProperties": False,
        "properties": {
            "data": {"type": "array", "items": row},
            "next_cursor": {
                "type": ["string", "null"],
                "description": "Pass as cursor for the next page; null on the last.",
            },
            "count": {"type": "integer", "minimum": 0},
            "count_estimated": {
                "type": "boolean",
                "description": "Whether count is an estimate (very large results).",
            },
        },
    }


def _writable(
    entity: Entity, readonly: frozenset[str], *, skip: str | None = None
) -> Iterable[Field]:
    for field in entity.fields.values():
        if field.name in readonly or field.name == skip:
            continue
        takes_input = JSON_TYPES[field.type].input is not None
        if field.type == "children" or (takes_input and not field.readonly):
            yield field


def _input_properties(
    entity: Entity,
    names: Mapping[str, str],
    readonly: frozenset[str],
    *,
    patch: bool = False,
    skip: str | None = None,
) -> dict[str, JSONSchema]:
    properties: dict[str, JSONSchema] = {}
    for field in _writable(entity, readonly, skip=skip):
        if field.type == "children":
            row = names[field.children or ""] + ("RowPatch" if patch else "RowInput")
            schema: JSONSchema = {"type": "array", "items": ref(row)}
            if field.required:
                schema["minItems"] = 1
            _labelled(schema, field.label, field.help)
            schema["description"] = (
                "The child rows. The list replaces them: rows with an id are changed, "
                "rows without one added, rows left out deleted."
                if patch
                else "The child rows."
            )
            properties[field.name] = schema
        else:
            properties[field.name] = _input_field(field, required=_needs_value(field))
            if patch:
                properties[field.name].pop("default", None)
    if entity.ownable:
        for name in ("owner_id", "team_id"):
            if name not in readonly:
                properties[name] = _owner_field(name)
    return properties


def input_schema(entity: Entity, names: Mapping[str, str], readonly: frozenset[str]) -> JSONSchema:
    """``<Entity>Input``: what a create accepts, without the fields in ``readonly``."""
    properties = _input_properties(entity, names, readonly)
    required = [
        f.name for f in _writable(entity, readonly) if f.type != "children" and _needs_value(f)
    ]
    schema: JSONSchema = {
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
    }
    if required:
        schema["required"] = required
    _labelled(schema, entity.label)
    schema["description"] = f"A new {entity.label.get('en')}: the fields you may set."
    return schema


def patch_schema(entity: Entity, names: Mapping[str, str], readonly: frozenset[str]) -> JSONSchema:
    """``<Entity>Patch``: what an update accepts, with the ``version`` read."""
    properties = _input_properties(entity, names, readonly, patch=True)
    properties["version"] = {
        "type": "integer",
        "minimum": 1,
        "description": "The version of the record you read; a stale one is a 409.",
    }
    schema: JSONSchema = {
        "type": "object",
        "required": ["version"],
        "additionalProperties": False,
        "properties": properties,
    }
    _labelled(schema, entity.label)
    schema["description"] = "The fields to change, and the version you read."
    return schema


def row_schema(
    entity: Entity, names: Mapping[str, str], readonly: frozenset[str], *, patch: bool = False
) -> JSONSchema:
    """One child row sent inside its parent (the link to the parent is implied): new
    rows on create; on update, rows with the id of one to change, or new ones."""
    properties = _input_properties(entity, names, readonly, patch=patch, skip=entity.parent_field)
    properties.pop("owner_id", None)
    properties.pop("team_id", None)
    schema: JSONSchema = {
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
    }
    needed = [
        f.name
        for f in _writable(entity, readonly, skip=entity.parent_field)
        if f.type != "children" and _needs_value(f)
    ]
    label = entity.label.get("en")
    if patch:
        properties["id"] = {
            "type": "integer",
            "minimum": 1,
            "maximum": INT64_MAX,
            "description": "The row to change; leave out to add a row.",
        }
        if needed:
            schema["anyOf"] = [{"required": ["id"]}, {"required": needed}]
        schema["description"] = (
            f"A {label} row of the {entity.parent} being changed: with the id of one of "
            "its rows to change that row, without one a new row (its required fields "
            "needed)."
        )
    else:
        if needed:
            schema["required"] = needed
        schema["description"] = f"A new {label} row of the {entity.parent} being created."
    _labelled(schema, entity.label)
    return schema
