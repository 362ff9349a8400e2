"""The OpenAPI 3.1 document of the REST API, generated from the Model, and its docs page.

``GET /api/v1/openapi.json`` describes every endpoint of ``/api/v1`` with one set of
schemas per entity: ``<Entity>`` (a record as returned), ``<Entity>Input`` (what a create
accepts), ``<Entity>Patch`` (what an update accepts, with the record's ``version``) and
``<Entity>Page`` (a list page); a child entity adds ``<Entity>RowInput`` and
``<Entity>RowPatch`` (one row sent inline with its parent, on create and on update). The
list operation documents every filter parameter the query layer accepts (``amount``,
``amount__gte``…) with the reserved ones (``sort``, ``limit``, ``cursor``, ``q``,
``fields``, ``expand``). ``GET /api/v1/docs`` is Swagger UI on that
document, served from the ``openapi-ui-bundles`` package installed with Heddle (no CDN).

Who asks changes what the document shows — a field hidden from a caller never appears
in it (:func:`view_for`):

- a caller with a token (``Authorization: Bearer``) or a browser session gets their own
  view: only the entities they may read, only the operations they may perform, without
  the fields hidden from them, and without read-only fields in the input schemas;
- an anonymous caller gets every entity and operation, without any field that any role
  of the package hides (so the public document never names a field some role may not
  know about).

Documents are generated once per (Model hash, view) and kept until the Model changes
(:class:`DocumentCache`), so a definition change regenerates them and a request costs a
dictionary look-up.

>>> document = build_document(model, view_for(model, permissions, frozenset({"admin"})))
>>> document["components"]["schemas"]["Account"]["properties"]["name"]["title"]
'Account name'
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from importlib import metadata
from typing import Any

import openapi_ui_bundles
from apispec import APISpec
from flask import Blueprint, Response, abort, current_app, request, send_from_directory, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from markupsafe import escape

from engine import Actor, Records
from engine._query_values import (
    MAX_LIST,
    MAX_TEXT,
    OPERATORS_BY_KIND,
    RELATIVE_DATES,
    QueryValueError,
    Target,
    target,
)
from engine.permissions import Permissions
from engine.query import MAX_LIMIT, MAX_SEARCH, RESERVED
from metamodel import Entity, Field, Label, Model

from .errors import Unauthorized

__all__ = [
    "DocumentCache",
    "EntityView",
    "View",
    "build_document",
    "docs",
    "view_for",
]

JSONSchema = dict[str, Any]

OPENAPI_VERSION = "3.1.0"
ACTIONS = ("read", "create", "update", "delete")
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MAX = 2**63 - 1
STRING_COLUMN = 255  # characters a string field holds when it declares no max_length
PHONE_PATTERN = r"^[0-9+()\-./ x#*]{3,40}$"
DECIMAL_OUT = r"^-?[0-9]+(\.[0-9]+)?$"
NO_NUL = r"^[^\x00]*$"
LIST_ITEM = r"^[^,\\\x00]*[^,\\\x00\s][^,\\\x00]*$"  # no comma, backslash or NUL; not blank
DECIMAL_FILTER = r"^[+-]?([0-9]{1,30}(\.[0-9]{0,30})?|\.[0-9]{1,30})$"
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


# --- views: what one caller may see -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EntityView:
    """One entity as a caller sees it."""

    actions: frozenset[str]
    hidden: frozenset[str] = frozenset()  # left out of every schema and parameter
    create_readonly: frozenset[str] = frozenset()  # left out of <Entity>Input
    update_readonly: frozenset[str] = frozenset()  # left out of <Entity>Patch


@dataclass(frozen=True, slots=True)
class View:
    """The entities a caller may read, in Model order; ``roles`` None is anonymous."""

    roles: frozenset[str] | None
    entities: tuple[tuple[str, EntityView], ...]

    @property
    def label(self) -> str:
        if self.roles is None:
            return "anonymous"
        return "admin" if "admin" in self.roles else ", ".join(sorted(self.roles)) or "none"


def view_for(model: Model, permissions: Permissions, roles: frozenset[str] | None) -> View:
    """The view of a caller with ``roles``, or the anonymous view for ``None``.

    The anonymous view keeps every entity and operation and leaves out each field that
    any role of the Model hides: a field some role may not know about stays unnamed in
    the public document.
    """
    entities: list[tuple[str, EntityView]] = []
    if roles is None:
        actors = [Actor(roles=frozenset({name})) for name in sorted(model.roles)]
        for ent in model:
            hidden: set[str] = set()
            for actor in actors:
                hidden |= permissions.grant(actor, ent, "read").hidden
            frozen = frozenset(hidden)
            entities.append((ent.name, EntityView(frozenset(ACTIONS), frozen, frozen, frozen)))
        return View(None, tuple(entities))
    # admin may do everything, whatever else it has; roles the Model lacks grant nothing
    roles = frozenset({"admin"}) if "admin" in roles else roles & frozenset(model.roles)
    actor = Actor(roles=roles)
    for ent in model:
        grants = {action: permissions.grant(actor, ent, action) for action in ACTIONS}
        if not grants["read"].allowed:
            continue
        allowed = frozenset(a for a, g in grants.items() if g.allowed)
        entities.append(
            (
                ent.name,
                EntityView(
                    allowed,
                    grants["read"].hidden,
                    grants["create"].readonly | grants["read"].hidden,
                    grants["update"].readonly | grants["read"].hidden,
                ),
            )
        )
    return View(roles, tuple(entities))


# --- small helpers ------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A definition value as JSON (decimals and dates as text, frozen maps as dicts)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal | dt.date | dt.datetime):
        return str(value) if isinstance(value, Decimal) else value.isoformat()
    return value


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


FIXED_SCHEMAS = ("Error", "Label", "HistoryEntry", "EntitySummary", "EntityMeta", "FieldMeta")
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


def _ref(name: str) -> JSONSchema:
    return {"$ref": f"#/components/schemas/{name}"}


# --- field schemas: a record as returned --------------------------------------------------


def _decimal_out() -> JSONSchema:
    return {"type": "string", "pattern": DECIMAL_OUT, "examples": ["1250.00"]}


_VALUE_TYPES: Mapping[str, Callable[[], JSONSchema]] = {
    "string": lambda: {"type": "string"},
    "integer": lambda: {"type": "integer"},
    "decimal": _decimal_out,
    "boolean": lambda: {"type": "boolean"},
    "date": lambda: {"type": "string", "format": "date"},
    "datetime": lambda: {"type": "string", "format": "date-time"},
}


def _choices(field: Field) -> JSONSchema:
    schema: JSONSchema = {"type": "string"}
    if field.options:
        schema["enum"] = list(field.choice_values)
        labels = {c.value: c.label.to_json() for c in field.options}
        schema["x-enum-labels"] = labels
    return schema


def _ids(field: Field) -> JSONSchema:
    one: JSONSchema = {"type": "integer"}
    return {"type": "array", "items": one} if field.multiple else one


def _out_of_value_type(field: Field) -> JSONSchema:
    return _VALUE_TYPES.get(field.value_type, _VALUE_TYPES["string"])()


#: Field type → the JSON Schema of its value in a record (without null).
OUTPUT_SCHEMAS: Mapping[str, Callable[[Field], JSONSchema]] = {
    "string": lambda f: {"type": "string"},
    "text": lambda f: {"type": "string"},
    "email": lambda f: {"type": "string"},
    "phone": lambda f: {"type": "string"},
    "url": lambda f: {"type": "string"},
    "autonumber": lambda f: {"type": "string"},
    "integer": lambda f: {"type": "integer"},
    "decimal": lambda f: _decimal_out(),
    "money": lambda f: _decimal_out(),
    "percent": lambda f: _decimal_out(),
    "boolean": lambda f: {"type": "boolean"},
    "date": lambda f: {"type": "string", "format": "date"},
    "datetime": lambda f: {"type": "string", "format": "date-time"},
    "choice": _choices,
    "multichoice": lambda f: {"type": "array", "items": _choices(f)},
    "reference": _ids,
    "user": _ids,
    "team": _ids,
    "file": lambda f: (
        {"type": "array", "items": {"type": "string"}} if f.multiple else {"type": "string"}
    ),
    "formula": _out_of_value_type,
    "rollup": _out_of_value_type,
}


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
        schema: JSONSchema = {"type": "array", "items": _ref(names[field.children or ""])}
        schema["description"] = "The child rows (in single-record responses, not in lists)."
    else:
        schema = _nullable(OUTPUT_SCHEMAS[field.type](field))
        if field.computed or field.readonly:
            schema["readOnly"] = True
    _labelled(schema, field.label, field.help)
    schema["x-field-type"] = field.type
    return schema


# --- field schemas: input -----------------------------------------------------------------


def _text_in(field: Field, limit: int | None = STRING_COLUMN) -> JSONSchema:
    schema: JSONSchema = {"type": "string"}
    most = field.max_length or limit
    if most is not None:
        schema["maxLength"] = most
    if field.min_length:
        schema["minLength"] = field.min_length
    if field.pattern:
        # marshmallow's Regexp matches at the start (re.match); JSON Schema searches.
        schema["pattern"] = field.pattern if field.pattern.startswith("^") else "^" + field.pattern
    return schema


def _number_range(schema: JSONSchema, field: Field, low: int | None, high: int | None) -> None:
    minimum = field.min if field.min is not None else low
    maximum = field.max if field.max is not None else high
    if minimum is not None:
        schema["minimum"] = _plain(minimum)
    if maximum is not None:
        schema["maximum"] = _plain(maximum)


def _phone_in(field: Field) -> JSONSchema:
    schema = _text_in(field)
    if "pattern" in schema:  # the field's own pattern, and the phone pattern too
        schema["allOf"] = [{"pattern": schema.pop("pattern")}]
    schema["pattern"] = PHONE_PATTERN
    return schema


def _integer_in(field: Field) -> JSONSchema:
    schema: JSONSchema = {"type": "integer"}
    _number_range(schema, field, INT32_MIN, INT32_MAX)
    return schema


def _decimal_in(field: Field) -> JSONSchema:
    scale = field.scale if field.scale is not None else 2
    digits = max((field.precision or 18) - scale, 1)
    sign = "" if field.min is not None and Decimal(str(field.min)) >= 0 else "-?"
    fraction = rf"(\.[0-9]{{1,{scale}}})?" if scale else ""
    schema: JSONSchema = {
        "type": "string",
        "pattern": rf"^{sign}[0-9]{{1,{digits}}}{fraction}$",
        "description": f"A decimal number as text, at most {scale} decimal places"
        + (f", from {field.min}" if field.min is not None else "")
        + (f" up to {field.max}" if field.max is not None else "")
        + "; JSON numbers are accepted too.",
        "examples": ["1250.00" if scale else "1250"],
    }
    return schema


def _id_in(field: Field) -> JSONSchema:
    one: JSONSchema = {"type": "integer", "minimum": 1, "maximum": INT64_MAX}
    return {"type": "array", "items": one} if field.multiple else one


def _date_in(field: Field) -> JSONSchema:
    schema: JSONSchema = {"type": "string", "format": "date"}
    if field.min is not None or field.max is not None:
        low = f" from {field.min}" if field.min is not None else ""
        high = f" up to {field.max}" if field.max is not None else ""
        schema["description"] = f"A date{low}{high}."
    return schema


#: Field type → the JSON Schema of a value a client may send (without null). These are
#: the types the engine's input schemas accept (``engine._coerce.FIELD_BUILDERS``).
INPUT_SCHEMAS: Mapping[str, Callable[[Field], JSONSchema]] = {
    "string": _text_in,
    "text": lambda f: _text_in(f, None),
    "email": lambda f: {**_text_in(f), "format": "email"},
    "phone": _phone_in,
    "url": lambda f: {**_text_in(f), "format": "uri"},
    "integer": _integer_in,
    "decimal": _decimal_in,
    "money": _decimal_in,
    "percent": _decimal_in,
    "boolean": lambda f: {"type": "boolean"},
    "date": _date_in,
    "datetime": lambda f: {"type": "string", "format": "date-time"},
    "choice": _choices,
    "multichoice": lambda f: {"type": "array", "items": _choices(f)},
    "reference": _id_in,
    "user": _id_in,
    "team": _id_in,
    "file": lambda f: (
        {"type": "array", "items": {"type": "string", "maxLength": 1024}}
        if f.multiple
        else {"type": "string", "maxLength": 1024}
    ),
}


def _needs_value(field: Field) -> bool:
    """Required and without a default: a create must send it."""
    return field.required and field.default is None and field.default_expression is None


def _input_field(field: Field, *, required: bool) -> JSONSchema:
    schema = INPUT_SCHEMAS[field.type](field)
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
        default = _plain(field.default)
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


# --- filter parameters --------------------------------------------------------------------

OPERATOR_TEXT = {
    "eq": "equals",
    "ne": "differs from (empty values included)",
    "lt": "is less than",
    "lte": "is at most",
    "gt": "is greater than",
    "gte": "is at least",
    "in": "is one of (comma-separated; \\, is a comma inside a value)",
    "not_in": "is none of (comma-separated; empty values included)",
    "contains": "contains (case-sensitive)",
    "icontains": "contains (ignoring case)",
    "startswith": "starts with",
    "isnull": "is empty (true) or not (false)",
    "between": "is between low,high (both included)",
}


def _operator_text(found: Target, op: str) -> str:
    text = OPERATOR_TEXT[op]
    if found.kind in ("date", "datetime") and op not in ("isnull", "in", "not_in"):
        text += " (a day or a period such as this_month: eq is within it, gte from its start)"
    return text


def _filter_value(found: Target, op: str) -> JSONSchema:
    """The schema of one value of a filter on ``found``."""
    kind = found.kind
    relative = {"type": "string", "enum": list(RELATIVE_DATES)}
    if kind == "text":
        schema: JSONSchema = {"type": "string", "maxLength": MAX_TEXT, "pattern": NO_NUL}
        if op in ("contains", "icontains", "startswith"):
            schema["minLength"] = 1
        return schema
    if kind in ("choice", "multi") and found.options:
        return {"type": "string", "enum": list(found.options)}
    if kind == "number" and found.value_type == "integer":
        return {"type": "integer", "minimum": -INT64_MAX, "maximum": INT64_MAX}
    if kind == "number":
        return {"type": "string", "pattern": DECIMAL_FILTER}
    if kind == "boolean":
        return {"type": "boolean"}
    if kind == "date":
        return {"anyOf": [{"type": "string", "format": "date"}, relative]}
    if kind == "datetime":
        return {
            "anyOf": [
                {"type": "string", "format": "date-time"},
                {"type": "string", "format": "date"},
                relative,
            ]
        }
    if kind == "ref" or (kind == "multi" and found.element_type == "integer"):
        return {"type": "integer", "minimum": -INT64_MAX, "maximum": INT64_MAX}
    return {"type": "string", "maxLength": MAX_TEXT}


def _filter_schema(found: Target, op: str) -> tuple[JSONSchema, bool]:
    """The parameter's schema, and whether it is a comma-separated list."""
    if op == "isnull":
        return {"type": "boolean"}, False
    one = _filter_value(found, op)
    if one.get("pattern") == NO_NUL:
        one = {**one, "pattern": LIST_ITEM}  # split at commas, so none inside
    if op == "between":
        return {"type": "array", "items": one, "minItems": 2, "maxItems": 2}, True
    if op in ("in", "not_in") or found.kind == "multi":
        return {"type": "array", "items": one, "minItems": 1, "maxItems": MAX_LIST}, True
    return one, False


def _readable_targets(entity: Entity, hidden: frozenset[str]) -> list[Target]:
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


def _filter_parameters(entity: Entity, targets: list[Target]) -> list[JSONSchema]:
    parameters = []
    for found in targets:
        label = found.field.label.get("en") if found.field is not None else found.name
        for op in OPERATORS_BY_KIND[found.kind]:
            name = found.name if op == "eq" else f"{found.name}__{op}"
            if name in RESERVED:
                continue
            schema, listed = _filter_schema(found, op)
            parameter: JSONSchema = {
                "name": name,
                "in": "query",
                "description": f"{label} {_operator_text(found, op)}",
                "schema": schema,
            }
            if listed:
                parameter.update(style="form", explode=False)
            parameters.append(parameter)
    return parameters


def _search_fields(entity: Entity) -> tuple[str, ...]:
    """The fields ``q`` searches (as the query layer decides): the declared search fields,
    else a text title field."""
    if entity.search_fields:
        return entity.search_fields
    title = entity.fields.get(entity.title_field or "")
    if title is not None and title.type not in ("formula", "children"):
        try:
            if target(entity, title.name).kind == "text":
                return (title.name,)
        except QueryValueError:
            return ()
    return ()


def _expandable(targets: list[Target]) -> list[Target]:
    return [
        t
        for t in targets
        if (t.field is None and t.kind == "ref")
        or (t.field is not None and t.field.type in ("reference", "user", "team"))
    ]


def _list_parameters(entity: Entity, hidden: frozenset[str]) -> list[JSONSchema]:
    targets = _readable_targets(entity, hidden)
    sortable = [t.name for t in targets if t.sortable]
    expandable = [t.name for t in _expandable(targets)]
    names: list[str] = [t.name for t in targets]

    def listed(name: str, values: list[str], description: str) -> JSONSchema:
        return {
            "name": name,
            "in": "query",
            "description": description,
            "style": "form",
            "explode": False,
            "schema": {
                "type": "array",
                "items": {"type": "string", "enum": values},
                "uniqueItems": True,
            },
        }

    sort_values = [v for name in sortable for v in (name, f"-{name}")]
    default = ",".join(str(k) for k in entity.default_sort) or "-id"
    parameters: list[JSONSchema] = [
        listed(
            "sort",
            sort_values,
            f"Sort keys, comma-separated; '-' sorts descending (default: {default}). "
            "id always ends the order, so pages never overlap.",
        ),
        {
            "name": "limit",
            "in": "query",
            "description": f"Records per page, 1 to {MAX_LIMIT} (default 50).",
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 50},
        },
        {
            "name": "cursor",
            "in": "query",
            "description": "The next_cursor of the previous page, with the same sort.",
            "schema": {"type": "string"},
        },
        listed("fields", names, "Only these fields (and id), comma-separated."),
    ]
    if expandable:
        parameters.append(
            listed(
                "expand",
                expandable,
                "References whose titles to add, comma-separated: account gives "
                "account__title in each row.",
            )
        )
    searched = [name for name in _search_fields(entity) if name not in hidden]
    if searched:
        parameters.append(
            {
                "name": "q",
                "in": "query",
                "description": f"Search text, matched against: {', '.join(searched)}.",
                "schema": {"type": "string", "maxLength": MAX_SEARCH},
            }
        )
    return parameters + _filter_parameters(entity, targets)


# --- the document -------------------------------------------------------------------------

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
ERRORS: Mapping[int, tuple[str, str]] = {
    400: ("BadRequest", "Malformed request: not a JSON object, an unknown filter, operator, "
          "sort field or cursor, a missing version, a session's write without its CSRF "
          "token (code bad_request)."),
    401: ("Unauthorized", "No credentials, or a token that is unknown, expired or revoked "
          "(code unauthorized)."),
    403: ("Forbidden", "Your roles do not allow this action here (code forbidden)."),
    404: ("NotFound", "No such record, or not one you may see (code not_found)."),
    409: ("Conflict", "The record changed since you read it (code stale_version, "
          "details.current_version), or other records still refer to it (code restricted)."),
    413: ("PayloadTooLarge", "The body is larger than the server accepts "
          "(code request_entity_too_large)."),
    422: ("ValidationFailed", "The record breaks its rules; fields says which and why "
          "(code validation_failed)."),
    429: ("TooManyRequests", "Too many login attempts; wait for Retry-After seconds "
          "(code too_many_requests)."),
}  # fmt: skip

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
        "action": {"type": "string", "enum": ["create", "update", "delete"]},
        "at": {"type": "string", "format": "date-time"},
        "actor_id": {"type": ["integer", "null"]},
        "version": {"type": "integer"},
        "changes": {
            "type": "object",
            "description": "Each changed field: [old value, new value].",
            "additionalProperties": {"type": "array", "minItems": 2, "maxItems": 2},
        },
    },
}

FIELD_META_SCHEMA: JSONSchema = {
    "type": "object",
    "required": ["name", "type", "label", "required", "readonly"],
    "properties": {
        "name": {"type": "string"},
        "type": {"type": "string"},
        "label": _ref("Label"),
        "required": {"type": "boolean"},
        "readonly": {"type": "boolean"},
        "help": _ref("Label"),
        "options": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["value", "label"],
                "properties": {
                    "value": {"type": "string"},
                    "label": _ref("Label"),
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
        "label": _ref("Label"),
        "plural_label": _ref("Label"),
        "title_field": {"type": ["string", "null"]},
        "ownable": {"type": "boolean"},
        "child": {"type": "boolean"},
        "actions": {"type": "array", "items": {"type": "string", "enum": list(ACTIONS)}},
    },
}

ENTITY_META_SCHEMA: JSONSchema = {
    "allOf": [
        _ref("EntitySummary"),
        {
            "type": "object",
            "required": ["fields"],
            "properties": {
                "fields": {"type": "array", "items": _ref("FieldMeta")},
                "search_fields": {"type": "array", "items": {"type": "string"}},
                "default_sort": {"type": "array", "items": {"type": "string"}},
            },
        },
    ]
}

DESCRIPTION = """\
The REST API of {package}, generated from its definitions (Model {hash}).

**Authentication.** Send `Authorization: Bearer <token>`; `POST /auth/token` exchanges a \
username and password for a token. A browser logged in with `POST /auth/session` is \
authenticated by its session cookie instead; its writes must then send the CSRF token in \
`X-CSRFToken`.

**Records.** One record is `{{"data": {{…}}}}`, with `id` and `version` among its fields; \
a list is `{{"data": […], "next_cursor": …, "count": N, "count_estimated": false}}`. \
Decimals (money, percent) are strings such as `"1250.00"`; dates and times are ISO 8601. \
PATCH and DELETE take the version you read; a stale one is a 409.

**Lists.** Filter with `field=value` or `field__op=value` (operators per field below), \
also through references (`account.grade=A`, up to two hops). Sort with `sort=-amount,name`, \
page with `limit` and the `next_cursor` of the previous page, search with `q`, choose \
columns with `fields` and add reference titles with `expand`.

**Errors** are `{{"error": {{"code", "message", "fields": {{field: [messages]}}}}}}`.

**This document** is the view of: {view}. Fields hidden from that view are left out \
everywhere; an anonymous request gets every entity without any field that some role hides. \
Labels: `title` is the English label, `x-labels` has every locale.
"""


def _error_responses(*statuses: int) -> dict[str, Any]:
    return {str(status): ERRORS[status][0] for status in statuses}


def _json(schema: JSONSchema, description: str) -> JSONSchema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _data(schema: JSONSchema) -> JSONSchema:
    return {
        "type": "object",
        "required": ["data"],
        "additionalProperties": False,
        "properties": {"data": schema},
    }


class _Builder:
    """Builds one document for one Model and view."""

    def __init__(self, model: Model, view: View) -> None:
        self.model = model
        self.view = view
        self.names = schema_names(model)
        package = model.package
        self.spec = APISpec(
            title=f"{package.label.get('en')} API",
            version=package.version,
            openapi_version=OPENAPI_VERSION,
            info={
                "description": DESCRIPTION.format(
                    package=package.label.get("en"), hash=model.hash[:12], view=view.label
                ),
                "x-model-hash": model.hash,
                "x-view": view.label,
            },
            servers=[{"url": "/api/v1"}],
            security=[{"bearerAuth": []}],
        )

    def build(self) -> dict[str, Any]:
        components = self.spec.components
        components.security_scheme(
            "bearerAuth",
            {
                "type": "http",
                "scheme": "bearer",
                "description": "A token from POST /auth/token. Browsers may use the session "
                "cookie of POST /auth/session instead (writes then need X-CSRFToken).",
            },
        )
        components.schema("Error", ERROR_SCHEMA)
        for status, (name, description) in ERRORS.items():
            response = _json(_ref("Error"), description)
            if status == 401:
                response["headers"] = {
                    "WWW-Authenticate": {"schema": {"type": "string"}, "required": True}
                }
            components.response(name, response)
        components.schema("Label", LABEL_SCHEMA)
        components.schema("HistoryEntry", HISTORY_SCHEMA)
        components.schema("FieldMeta", FIELD_META_SCHEMA)
        components.schema("EntitySummary", ENTITY_SUMMARY_SCHEMA)
        components.schema("EntityMeta", ENTITY_META_SCHEMA)
        self._auth_paths()
        self._meta_paths()
        for name, entity_view in self.view.entities:
            self._entity(self.model.entity(name), entity_view)
        return self.spec.to_dict()

    # entities -------------------------------------------------------------------------

    def _entity(self, entity: Entity, seen: EntityView) -> None:
        base = self.names[entity.name]
        components = self.spec.components
        components.schema(base, self._record(entity, seen))
        if "create" in seen.actions:
            components.schema(base + "Input", self._input(entity, seen.create_readonly))
        if "update" in seen.actions:
            components.schema(base + "Patch", self._patch(entity, seen.update_readonly))
        if entity.child:
            components.schema(base + "RowInput", self._row(entity, seen.create_readonly))
            components.schema(
                base + "RowPatch", self._row(entity, seen.update_readonly, patch=True)
            )
        components.schema(base + "Page", self._page(entity, seen))
        self.spec.tag(self._tag(entity))
        self._entity_paths(entity, seen)

    def _tag(self, entity: Entity) -> JSONSchema:
        tag: JSONSchema = {"name": entity.name}
        description = entity.plural_label.get("en")
        if entity.description is not None:
            description += ": " + entity.description.get("en")
        tag["description"] = description
        texts = entity.label.to_json()
        if isinstance(texts, dict) and len(texts) > 1:
            tag["x-labels"] = texts
        return tag

    def _properties(self, entity: Entity, hidden: frozenset[str]) -> dict[str, JSONSchema]:
        properties: dict[str, JSONSchema] = {}
        system = entity.system_fields
        for name in ("id",):
            properties[name] = _system_schema(name)
        for field in entity.fields.values():
            if field.name not in hidden:
                properties[field.name] = _output_field(field, self.names)
        for name in system:
            if name != "id" and name not in hidden:
                properties[name] = _system_schema(name)
        return properties

    def _record(self, entity: Entity, seen: EntityView) -> JSONSchema:
        properties = self._properties(entity, seen.hidden)
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

    def _page(self, entity: Entity, seen: EntityView) -> JSONSchema:
        properties = {
            name: prop
            for name, prop in self._properties(entity, seen.hidden).items()
            if prop.get("x-field-type") != "children"
        }
        for found in _expandable(_readable_targets(entity, seen.hidden)):
            title: JSONSchema = {"type": ["string", "null"]}
            if found.kind == "multi":
                title = {"type": "array", "items": title}
            title["description"] = f"The title of {found.name}, with expand={found.name}."
            properties[f"{found.name}__title"] = title
        row: JSONSchema = {
            "type": "object",
            "description": "A record as listed: no child rows; only id and the requested "
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
        self, entity: Entity, readonly: frozenset[str], *, skip: str | None = None
    ) -> Iterable[Field]:
        for field in entity.fields.values():
            if field.name in readonly or field.name == skip:
                continue
            if field.type == "children" or (field.type in INPUT_SCHEMAS and not field.readonly):
                yield field

    def _input_properties(
        self,
        entity: Entity,
        readonly: frozenset[str],
        *,
        patch: bool = False,
        skip: str | None = None,
    ) -> dict[str, JSONSchema]:
        properties: dict[str, JSONSchema] = {}
        for field in self._writable(entity, readonly, skip=skip):
            if field.type == "children":
                row = self.names[field.children or ""] + ("RowPatch" if patch else "RowInput")
                schema: JSONSchema = {"type": "array", "items": _ref(row)}
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

    def _input(self, entity: Entity, readonly: frozenset[str]) -> JSONSchema:
        properties = self._input_properties(entity, readonly)
        required = [
            f.name
            for f in self._writable(entity, readonly)
            if f.type != "children" and (_needs_value(f))
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

    def _patch(self, entity: Entity, readonly: frozenset[str]) -> JSONSchema:
        properties = self._input_properties(entity, readonly, patch=True)
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

    def _row(self, entity: Entity, readonly: frozenset[str], *, patch: bool = False) -> JSONSchema:
        """One child row sent inside its parent (the link to the parent is implied): new
        rows on create; on update, rows with the id of one to change, or new ones."""
        properties = self._input_properties(entity, readonly, patch=patch, skip=entity.parent_field)
        properties.pop("owner_id", None)
        properties.pop("team_id", None)
        schema: JSONSchema = {
            "type": "object",
            "additionalProperties": False,
            "properties": properties,
        }
        needed = [
            f.name
            for f in self._writable(entity, readonly, skip=entity.parent_field)
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

    def _entity_paths(self, entity: Entity, seen: EntityView) -> None:
        base = self.names[entity.name]
        name = entity.name
        label = entity.label.get("en")
        plural = entity.plural_label.get("en")
        record_id = {
            "name": "id",
            "in": "path",
            "required": True,
            "schema": {"type": "integer", "minimum": 0, "maximum": INT64_MAX},
            "description": f"The {label}'s id.",
        }
        one = _json(_data(_ref(base)), f"The {label}.")
        collection: dict[str, Any] = {
            "get": {
                "operationId": f"list_{name}",
                "summary": f"List {plural}",
                "tags": [name],
                "parameters": _list_parameters(entity, seen.hidden),
                "responses": {
                    "200": _json(_ref(base + "Page"), f"A page of {plural}."),
                    **_error_responses(400, 401, 403),
                },
            }
        }
        if "create" in seen.actions:
            collection["post"] = {
                "operationId": f"create_{name}",
                "summary": f"Create a {label}",
                "tags": [name],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref(base + "Input")}},
                },
                "responses": {
                    "201": _json(_data(_ref(base)), f"The new {label}, as stored."),
                    **_error_responses(400, 401, 403, 413, 422),
                },
            }
        self.spec.path(path=f"/records/{name}", operations=collection)

        item: dict[str, Any] = {
            "get": {
                "operationId": f"get_{name}",
                "summary": f"Get a {label}",
                "description": "With its formulas computed and its child rows.",
                "tags": [name],
                "responses": {"200": one, **_error_responses(401, 403, 404)},
            }
        }
        if "update" in seen.actions:
            item["patch"] = {
                "operationId": f"update_{name}",
                "summary": f"Change a {label}",
                "tags": [name],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref(base + "Patch")}},
                },
                "responses": {
                    "200": _json(_data(_ref(base)), f"The {label}, changed."),
                    **_error_responses(400, 401, 403, 404, 409, 413, 422),
                },
            }
        if "delete" in seen.actions:
            item["delete"] = {
                "operationId": f"delete_{name}",
                "summary": f"Delete a {label}",
                "description": "References to it follow their on_delete rule; a restrict "
                "rule with referring records is a 409 listing them.",
                "tags": [name],
                "parameters": [
                    {
                        "name": "version",
                        "in": "query",
                        "required": True,
                        "description": "The version you read; a stale one is a 409.",
                        "schema": {"type": "integer", "minimum": 1, "maximum": INT64_MAX},
                    }
                ],
                "responses": {
                    "204": {"description": "Deleted."},
                    # 422: a record whose reference is cleared (on_delete: set_null) would
                    # break one of its own rules
                    **_error_responses(400, 401, 403, 404, 409, 422),
                },
            }
        self.spec.path(path=f"/records/{name}/{{id}}", operations=item, parameters=[record_id])
        history = {
            "get": {
                "operationId": f"history_{name}",
                "summary": f"History of a {label}",
                "description": "Every change, oldest first: who, when, the version and "
                "the field-level diff.",
                "tags": [name],
                "responses": {
                    "200": _json(_data({"type": "array", "items": _ref("HistoryEntry")}),
                                 "The changes."),
                    **_error_responses(401, 403, 404),
                },
            }
        }  # fmt: skip
        self.spec.path(
            path=f"/records/{name}/{{id}}/history", operations=history, parameters=[record_id]
        )

    # auth and metadata ------------------------------------------------------------------

    def _auth_paths(self) -> None:
        credentials: JSONSchema = {
            "type": "object",
            "required": ["username", "password"],
            "properties": {
                "username": {"type": "string", "minLength": 1},
                "password": {"type": "string", "minLength": 1, "format": "password"},
            },
        }
        token_request = {
            **credentials,
            "properties": {
                **credentials["properties"],
                "name": {"type": "string", "description": "A name to recognise the token by."},
            },
        }
        token = {
            "type": "object",
            "required": ["token", "expires_at"],
            "additionalProperties": False,
            "properties": {
                "token": {"type": "string", "description": "Shown once; send as Bearer."},
                "expires_at": {"type": "string", "format": "date-time"},
            },
        }
        session = {
            "type": "object",
            "required": ["username", "csrf_token"],
            "properties": {"username": {"type": "string"}, "csrf_token": {"type": "string"}},
        }
        self.spec.tag({"name": "auth", "description": "Tokens and browser sessions."})
        self.spec.path(
            path="/auth/token",
            operations={
                "post": {
                    "operationId": "create_token",
                    "summary": "Get an API token",
                    "tags": ["auth"],
                    "security": [],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": token_request}},
                    },
                    "responses": {
                        "201": _json(token, "The new token."),
                        **_error_responses(400, 401, 413, 429),
                    },
                },
                "delete": {
                    "operationId": "revoke_token",
                    "summary": "Revoke the token of this request",
                    "tags": ["auth"],
                    "responses": {
                        "204": {"description": "Revoked."},
                        **_error_responses(400, 401),
                    },
                },
            },
        )
        self.spec.path(
            path="/auth/session",
            operations={
                "post": {
                    "operationId": "create_session",
                    "summary": "Log a browser in",
                    "description": "Sets the session cookie; writes made with it must send "
                    "csrf_token in X-CSRFToken.",
                    "tags": ["auth"],
                    "security": [],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": credentials}},
                    },
                    "responses": {
                        "200": _json(_data(session), "Logged in."),
                        **_error_responses(400, 401, 413, 429),
                    },
                },
                "delete": {
                    "operationId": "delete_session",
                    "summary": "Log the browser out",
                    "tags": ["auth"],
                    # 400: a session without its CSRF token
                    "responses": {
                        "204": {"description": "Logged out."},
                        **_error_responses(400, 401),
                    },
                },
            },
        )

    def _meta_paths(self) -> None:
        readable = [name for name, _ in self.view.entities]
        self.spec.tag({"name": "meta", "description": "Entities, fields, labels and options."})
        self.spec.path(
            path="/meta/entities",
            operations={
                "get": {
                    "operationId": "list_entities",
                    "summary": "The entities you may read",
                    "tags": ["meta"],
                    "responses": {
                        "200": _json(
                            _data({"type": "array", "items": _ref("EntitySummary")}),
                            "The entities, with the actions you may take.",
                        ),
                        **_error_responses(401),
                    },
                }
            },
        )
        self.spec.path(
            path="/meta/entities/{entity}",
            parameters=[
                {
                    "name": "entity",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "enum": readable}
                    if readable
                    else {"type": "string"},
                }
            ],
            operations={
                "get": {
                    "operationId": "get_entity_meta",
                    "summary": "One entity's fields, labels and options",
                    "tags": ["meta"],
                    "responses": {
                        "200": _json(_data(_ref("EntityMeta")), "The entity."),
                        **_error_responses(401, 404),
                    },
                }
            },
        )


def build_document(model: Model, view: View) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``model``'s API as ``view`` sees it."""
    return _Builder(model, view).build()


# --- caching ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Document:
    body: bytes
    etag: str


class DocumentCache:
    """Documents by (Model hash, view), serialized once; emptied when the Model changes.

    Views are keyed by role set first, so a request costs two look-ups; two role sets
    with the same effective permissions share one document.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hash = ""
        self._views: dict[frozenset[str] | None, View] = {}
        self._documents: dict[View, Document] = {}

    def get(self, model: Model, permissions: Permissions, roles: frozenset[str] | None) -> Document:
        with self._lock:
            if model.hash != self._hash:
                self._hash = model.hash
                self._views.clear()
                self._documents.clear()
            view = self._views.get(roles)
            if view is None:
                view = self._views[roles] = view_for(model, permissions, roles)
            found = self._documents.get(view)
            if found is None:
                body = json.dumps(
                    build_document(model, view), ensure_ascii=False, separators=(",", ":")
                ).encode()
                etag = hashlib.sha256(body).hexdigest()[:32]
                found = self._documents[view] = Document(body, etag)
            return found

    @property
    def size(self) -> int:
        """How many documents are kept."""
        return len(self._documents)


# --- the blueprint ------------------------------------------------------------------------

docs = Blueprint("docs", __name__, url_prefix="/api/v1")

SWAGGER_UI = openapi_ui_bundles.swagger_ui.static_path
SWAGGER_FILES = frozenset(
    {"swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png", "favicon-16x16.png"}
)
INIT_JS = """\
window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-url"),
    dom_id: "#swagger-ui",
    deepLinking: true,
    persistAuthorization: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
});
"""
# In the assets' URLs, so they can be cached for a year and still change on an upgrade.
ASSET_VERSION = (
    f"{metadata.version('openapi-ui-bundles')}-{hashlib.sha256(INIT_JS.encode()).hexdigest()[:8]}"
)
ONE_YEAR = 365 * 24 * 3600
PAGE = """\
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css">
<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png" sizes="32x32">
<link rel="icon" type="image/png" href="{assets}/favicon-16x16.png" sizes="16x16">
</head>
<body>
<div id="swagger-ui" data-url="{url}"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="{assets}/heddle-docs.js"></script>
</body>
</html>
"""


def _cache() -> DocumentCache:
    found: DocumentCache | None = current_app.extensions.get("heddle.openapi")
    if found is None:
        found = current_app.extensions.setdefault("heddle.openapi", DocumentCache())
    return found


def _records() -> Records:
    found: Records = current_app.extensions["heddle"].records
    return found


def _caller_roles() -> frozenset[str] | None:
    """The roles of the caller's token or session; None for an anonymous request.

    A token that is sent must be valid (401 otherwise), as everywhere in the API.
    """
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("send the token as: Authorization: Bearer <token>")
        heddle = current_app.extensions["heddle"]
        with heddle.records.reader.connect() as conn:  # as the API's authenticate() does
            user = heddle.accounts.user_for_token(conn, token.strip())
        if user is None:
            raise Unauthorized("the token is unknown, expired or revoked")
        return frozenset(user.roles)
    if current_user.is_authenticated:
        return frozenset(current_user.roles)
    return None


@docs.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    """The OpenAPI document as the caller may see it (no login needed)."""
    records = _records()
    roles = _caller_roles()
    document = _cache().get(records.model, records.permissions, roles)
    response = Response(document.body, mimetype="application/json")
    response.set_etag(document.etag)
    response.cache_control.no_cache = True
    if roles is not None:
        response.cache_control.private = True
    response.vary.update(("Authorization", "Cookie"))
    return response.make_conditional(request)


@docs.get("/docs")
def page() -> ResponseReturnValue:
    """Swagger UI on /api/v1/openapi.json."""
    title = f"{_records().model.package.label.get('en')} API"
    assets = url_for("docs.asset", version=ASSET_VERSION, filename="").rstrip("/")
    html = PAGE.format(
        title=escape(title), assets=escape(assets), url=escape(url_for("docs.openapi"))
    )
    response = Response(html, mimetype="text/html")
    response.cache_control.no_cache = True
    return response


@docs.get("/docs/assets/<version>/<path:filename>")
def asset(version: str, filename: str) -> ResponseReturnValue:
    """Swagger UI's files from the installed package, cached for a year."""
    if version != ASSET_VERSION:
        abort(404)
    if filename == "heddle-docs.js":
        response = Response(INIT_JS, mimetype="text/javascript")
    elif filename in SWAGGER_FILES:
        response = send_from_directory(SWAGGER_UI, filename, max_age=ONE_YEAR)
    else:
        abort(404)
    response.cache_control.public = True
    response.cache_control.max_age = ONE_YEAR
    response.cache_control.immutable = True
    return response
