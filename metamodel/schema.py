"""The JSON Schema (draft 2020-12) of every definition kind.

The schema is the contract editors see (``heddle schema``; a YAML file with
``# yaml-language-server: $schema=…`` validates and completes as it is typed) and the
first check the loader runs. Rules that need the whole package — unknown entities,
expressions, cycles — are the semantic checks in :mod:`metamodel._compile`.

Parts come from the registries: field types (their options), view kinds, trigger and
action types, report measures; the schema is rebuilt when one of them changes
(:func:`registries_version`).
"""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any

from .fieldtypes import COMMON_OPTIONS, FIELD_TYPES, FORMULA_RETURNS
from .model import POOL_SETTINGS
from .processes import ACTION_TYPES, MEASURES, TRIGGER_TYPES
from .views import VIEW_KINDS

SCHEMA_ID = "https://heddle.dev/schema/heddle.schema.json"

KINDS = ("package", "entity", "workflow", "report", "dashboard", "automation", "role")

ON_DELETE = ("restrict", "cascade", "set_null")
#: What a rollup field computes over its related records.
ROLLUP_AGGREGATES = ("sum", "count", "min", "max", "avg")
SCOPES = ("none", "own", "team", "team_and_below", "all")
ACTIONS = ("read", "create", "update", "delete", "export", "import")
DUPLICATE_ACTIONS = ("block", "warn", "claim")
NORMALIZERS = ("case", "space", "width", "company_suffix", "region_prefix", "phone", "punctuation")

#: Report language: time buckets of a date dimension, extra parameter types, charts.
TIME_BUCKETS = ("day", "week", "month", "quarter", "year")
REPORT_PARAM_TYPES = ("period",)
CHART_TYPES = ("bar", "stacked_bar", "line", "pie", "funnel", "number", "table")
MAX_REPORT_ROWS = 10_000
MAX_UNION = 20  # parts of one report's union
MAX_UNPIVOT = 60  # fields one unpivot spreads

IDENTIFIER = r"^[a-z][a-z0-9_]*$"
PATCH_SUFFIX = "_patch"
LOCALE_FORM = "a locale code (write it like en, zh or pt-BR)"
CURRENCY_FORM = "a three-letter currency code in capitals, like USD"

Schema = dict[str, Any]


def _obj(properties: Schema, required: tuple[str, ...] = (), **extra: Any) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    schema.update(extra)
    return schema


def _ref(name: str) -> Schema:
    return {"$ref": f"#/$defs/{name}"}


def _array(items: Schema, **extra: Any) -> Schema:
    return {"type": "array", "items": items, **extra}


def _when_type(types: tuple[str, ...], *needed: str) -> Schema:
    """A field of one of ``types`` needs the ``needed`` options."""
    return {
        "if": {"properties": {"type": {"enum": list(types)}}, "required": ["type"]},
        "then": {"required": list(needed)},
    }


def _names() -> Schema:
    return _array(_ref("identifier"), uniqueItems=True)


_DEFS: Schema = {
    "identifier": {
        "type": "string",
        "pattern": IDENTIFIER,
        "maxLength": 63,
        "description": (
            "snake_case: lowercase letters, digits and underscores, starting with a letter."
        ),
    },
    "label": {
        "description": "Text, or text per locale: {en: Account, zh: 客户, ja: 顧客}.",
        "oneOf": [
            {"type": "string", "minLength": 1},
            {
                "type": "object",
                "minProperties": 1,
                "propertyNames": {
                    "pattern": r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$",
                    "description": LOCALE_FORM,
                },
                "additionalProperties": {"type": "string", "minLength": 1},
            },
        ],
    },
    "expression": {
        "title": "expression",
        "type": "string",
        "minLength": 1,
        "maxLength": 2000,
        "description": "An expression: `amount >= 100000 and stage in ['won', 'lost']`.",
    },
    "field_path": {
        "type": "string",
        "pattern": r"^-?[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$",
        "description": "a field name or a path like account.grade",
    },
    "sort": {
        "description": "Field names, `-` before a name for descending: `-amount, name`.",
        "oneOf": [
            {"type": "string", "minLength": 1},
            _array({"$ref": "#/$defs/field_path"}, minItems=1),
        ],
    },
    "choice_option": {
        "oneOf": [
            {"type": "string", "minLength": 1, "maxLength": 63},
            _obj(
                {
                    "value": {"type": "string", "minLength": 1, "maxLength": 63},
                    "label": _ref("label"),
                    "color": {
                        "type": "string",
                        "pattern": r"^(#[0-9a-fA-F]{6}|[a-z]+)$",
                        "description": "a colour name like green, or #RRGGBB",
                    },
                    "description": _ref("label"),
                },
                ("value",),
            ),
        ]
    },
    "validation": _obj(
        {
            "name": _ref("identifier"),
            "rule": {**_ref("expression"), "description": "Must hold for every saved record."},
            "message": _ref("label"),
            "when": _ref("expression"),
            "fields": _names(),
        },
        ("name", "rule", "message"),
    ),
    "duplicate_rule": _obj(
        {
            "name": _ref("identifier"),
            "label": _ref("label"),
            "fields": _array(_ref("identifier"), minItems=1),
            "normalize": _array({"enum": list(NORMALIZERS)}, uniqueItems=True),
            "action": {"enum": list(DUPLICATE_ACTIONS)},
            "match": {"enum": ["all", "any"]},
            "also_check": _names(),
            "fuzzy": {
                "type": "number",
                "exclusiveMinimum": 0,
                "maximum": 1,
                "description": "The similarity (0 to 1) two keys need, instead of being equal.",
            },
            "pool": {
                **_ref("identifier"),
                "description": "The reference field saying which public pool holds a record.",
            },
        },
        ("name", "fields"),
    ),
    "public_pool": _obj(
        {
            "field": {
                **_ref("identifier"),
                "description": "The reference field saying which pool holds a record.",
            },
            "pooled_at": _ref("identifier"),
            "previous_owner": _ref("identifier"),
            "claimed_at": _ref("identifier"),
            "won": {**_ref("expression"), "description": "Which records are won."},
            "carry": _array(
                {"type": "string", "pattern": "^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)?$"},
                uniqueItems=True,
                description="Entities (or entity.reference) whose records follow the owner "
                "when a record is claimed or assigned.",
            ),
            "settings": _obj(
                {name: _ref("identifier") for name in POOL_SETTINGS},
                description="The pools' fields that hold each setting.",
            ),
            "exempt": {
                **_ref("expression"),
                "description": "Which owned records are never recycled (locked ones).",
            },
            "recycle": _obj(
                {
                    "rules": {
                        **_ref("identifier"),
                        "description": "The pools' children field holding their recycle rules.",
                    },
                    "kind": {
                        **_ref("identifier"),
                        "description": "The rule's choice field naming its kind.",
                    },
                    "days": {
                        **_ref("identifier"),
                        "description": "The rule's integer field: after how many days.",
                    },
                    "warn_days": {
                        **_ref("identifier"),
                        "description": "The rule's integer field: warn the owner this many "
                        "days before.",
                    },
                    "active": {
                        **_ref("identifier"),
                        "description": "The rule's boolean field: whether it holds.",
                    },
                    "match": _array(
                        _ref("identifier"),
                        uniqueItems=True,
                        description="Fields of both the rule and the record: a rule that "
                        "sets one applies only to records with the same value.",
                    ),
                    "kinds": {
                        "type": "object",
                        "description": "Each option of the kind field: since (when the days "
                        "count from) and unless (when the rule does not apply).",
                        "minProperties": 1,
                        "additionalProperties": _obj(
                            {"since": _ref("expression"), "unless": _ref("expression")},
                            ("since",),
                        ),
                    },
                },
                ("rules", "kind", "days", "kinds"),
                description="How the pools' rules return owned records to them.",
            ),
        },
        ("field",),
    ),
    "index": _obj(
        {
            "name": _ref("identifier"),
            "fields": _array(_ref("identifier"), minItems=1),
            "unique": {"type": "boolean"},
        },
        ("name", "fields"),
    ),
}

#: The JSON Schema of each field option of the built-in types (``type`` aside).
FIELD_OPTIONS: dict[str, Schema] = {
    "label": _ref("label"),
    "help": _ref("label"),
    "placeholder": _ref("label"),
    "required": {"type": "boolean"},
    "unique": {"type": "boolean"},
    "default": {"description": "A constant, or `=expression` computed on create."},
    "min": {"type": ["number", "string"]},
    "max": {"type": ["number", "string"]},
    "min_length": {"type": "integer", "minimum": 0},
    "max_length": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
    "pattern": {"type": "string", "minLength": 1},
    "index": {"type": "boolean"},
    "readonly": {"type": "boolean"},
    "searchable": {"type": "boolean"},
    "visible_when": _ref("expression"),
    "required_when": _ref("expression"),
    "readonly_when": _ref("expression"),
    "renamed_from": _ref("identifier"),
    "options": _array(_ref("choice_option"), minItems=1),
    "to": _ref("identifier"),
    "on_delete": {"enum": list(ON_DELETE)},
    "link": {
        "enum": ["readable", "any"],
        "description": "Which records a user may link to: those they may read (the "
        "default), or any (the target's title becomes visible to them).",
    },
    "entity": _ref("identifier"),
    "precision": {"type": "integer", "minimum": 1, "maximum": 38},
    "scale": {"type": "integer", "minimum": 0, "maximum": 18},
    "currency": {"type": "string", "pattern": "^[A-Z]{3}$", "description": CURRENCY_FORM},
    "format": {"type": "string", "minLength": 1, "maxLength": 100},
    "expression": _ref("expression"),
    "returns": {"enum": list(FORMULA_RETURNS)},
    "of": _ref("identifier"),
    "via": _ref("identifier"),
    "aggregate": {"enum": list(ROLLUP_AGGREGATES)},
    "field": _ref("identifier"),
    "filter": _ref("expression"),
    "accept": _array({"type": "string", "minLength": 1}),
    "max_size": {"type": "integer", "minimum": 1},
    "multiple": {"type": "boolean"},
    "columns": {**_names(), "description": "The columns of a children field's grid."},
}


def _field_schema() -> Schema:
    """A field: ``type`` one of the registered types, the options of every type (a
    type's own ``extra_options`` too), and those each type requires."""
    properties: Schema = {
        "type": {"enum": list(FIELD_TYPES), "description": "The field's type."},
        **FIELD_OPTIONS,
    }
    for kind in FIELD_TYPES.values():
        properties.update(kind.extra_options)
    unknown = (
        set(properties)
        - set(COMMON_OPTIONS)
        - {option for kind in FIELD_TYPES.values() for option in kind.options}
    )
    for option in sorted(unknown):  # pragma: no cover - a registry that misses an option
        raise ValueError(f"field option '{option}' applies to no field type")
    return _obj(
        properties,
        ("type",),
        allOf=[
            _when_type((kind.name,), *kind.requires)
            for kind in FIELD_TYPES.values()
            if kind.requires
        ],
    )


#: Who approves an approval step, or whom it escalates to.
_APPROVER: Schema = {
    "type": "string",
    "pattern": r"^(role:[a-z][a-z0-9_]*|user:\S+|field:[a-z][a-z0-9_]*|manager(:[1-9][0-9]?)?)$",
    "description": "An approver: role:<role>, user:<username>, manager, manager:<levels up> "
    "or field:<user field>.",
}
#: A delay: a number and a unit, minutes, hours or days (``30m``, ``48h``, ``2d``).
_DURATION: Schema = {
    "type": "string",
    "pattern": r"^[1-9][0-9]{0,5}[mhd]$",
    "description": "A delay: 30m, 48h or 2d.",
}

_COMMON = {
    "kind": {"type": "string"},
    "name": _ref("identifier"),
    "label": _ref("label"),
    "description": _ref("label"),
}


def _action_schema() -> Schema:
    """An action: a registered ``type`` (checked with a suggestion by the compiler) and
    that type's options."""
    branches = [
        {
            "if": {"properties": {"type": {"const": kind.name}}, "required": ["type"]},
            "then": {
                "properties": {"type": {}, **kind.schema.get("properties", {})},
                "required": kind.schema.get("required", []),
                "additionalProperties": False,
            },
        }
        for kind in ACTION_TYPES.values()
    ]
    return {
        "type": "object",
        "required": ["type"],
        "properties": {"type": {"type": "string", "pattern": IDENTIFIER}},
        "allOf": branches,
    }


def _kind_schemas() -> dict[str, Schema]:
    group_by = _array(
        {
            "oneOf": [
                _ref("field_path"),
                _obj(
                    {
                        "name": _ref("identifier"),
                        "label": _ref("label"),
                        "field": _ref("field_path"),
                        "expression": _ref("expression"),
                        "bucket": {"enum": list(TIME_BUCKETS)},
                        "ranges": _array(
                            _obj(
                                {
                                    "value": {"type": "string", "minLength": 1},
                                    "label": _ref("label"),
                                    "to": {"type": "number"},
                                },
                                ("value",),
                            ),
                            minItems=1,
                        ),
                        "fill": {"type": "boolean"},
                    }
                ),
            ]
        }
    )
    measures = _array(
        _obj(
            {
                "name": _ref("identifier"),
                "label": _ref("label"),
                "aggregate": {"enum": list(MEASURES)},
                "field": _ref("field_path"),
                "value": _ref("expression"),
                "filter": _ref("expression"),
                "expression": _ref("expression"),
                "share_of": _ref("identifier"),
            },
            ("name",),
        )
    )
    report_params = _array(
        _obj(
            {
                "name": _ref("identifier"),
                "label": _ref("label"),
                "type": {"enum": [*FORMULA_RETURNS, *REPORT_PARAM_TYPES]},
                "default": {},
                "required": {"type": "boolean"},
            },
            ("name", "type"),
        )
    )
    unpivot = _obj(
        {
            "fields": _array(_ref("identifier"), minItems=2, maxItems=MAX_UNPIVOT),
        },
        ("fields",),
    )
    return {
        "package": _obj(
            {
                **_COMMON,
                "version": {
                    "type": "string",
                    "pattern": r"^\d+(\.\d+){0,2}([-+.].+)?$",
                    "description": "a version number like 1.2.0, in quotes",
                },
                "extends": _ref("identifier"),
                "locales": _array(
                    {
                        "type": "string",
                        "pattern": "^[a-z]{2,3}(-[A-Za-z0-9]+)*$",
                        "description": LOCALE_FORM,
                    },
                    minItems=1,
                    uniqueItems=True,
                ),
                "default_locale": {"type": "string"},
                "table_prefix": {
                    "type": "string",
                    "pattern": "^[a-z][a-z0-9]*_$",
                    "description": "lowercase letters and digits ending in _, like crm_",
                },
                "currency": {
                    "type": "string",
                    "pattern": "^[A-Z]{3}$",
                    "description": CURRENCY_FORM,
                },
            },
            ("kind", "name"),
        ),
        "entity": _obj(
            {
                **_COMMON,
                "plural_label": _ref("label"),
                "icon": {"type": "string"},
                "table": _ref("identifier"),
                "title_field": _ref("identifier"),
                "search_fields": _names(),
                "ownable": {"type": "boolean", "description": "Records have an owner and a team."},
                "child": {
                    "type": "boolean",
                    "description": "Rows live inside a parent's children field.",
                },
                "audit": {"type": "boolean"},
                "fields": {
                    "type": "object",
                    "minProperties": 1,
                    "propertyNames": _ref("identifier"),
                    "additionalProperties": _ref("field"),
                },
                "validations": _array(_ref("validation")),
                "duplicate_rules": _array(_ref("duplicate_rule")),
                "public_pool": _ref("public_pool"),
                "indexes": _array(_ref("index")),
                "default_sort": _ref("sort"),
                **{kind.name: kind.schema for kind in VIEW_KINDS.values()},
            },
            ("kind", "name", "fields"),
        ),
        "workflow": _obj(
            {
                **_COMMON,
                "entity": _ref("identifier"),
                "field": _ref("identifier"),
                "states": _array(
                    _obj(
                        {
                            "name": _ref("identifier"),
                            "label": _ref("label"),
                            "initial": {"type": "boolean"},
                            "final": {"type": "boolean"},
                            "color": {"type": "string"},
                            "locked": {
                                "type": "boolean",
                                "description": "Read-only while in this state, except through "
                                "its transitions.",
                            },
                            "on_enter": _array(_action_schema()),
                            "on_exit": _array(_action_schema()),
                        },
                        ("name",),
                    ),
                    minItems=1,
                ),
                "transitions": _array(
                    _obj(
                        {
                            "name": _ref("identifier"),
                            "label": _ref("label"),
                            "from": {"oneOf": [{"type": "string"}, _names()]},
                            "to": _ref("identifier"),
                            "guard": _ref("expression"),
                            "roles": _names(),
                            "comment": {"enum": ["optional", "required", "none"]},
                            "required_fields": _names(),
                            "fields": _names(),
                            "set": {"type": "object", "propertyNames": _ref("identifier")},
                            "actions": _array(_action_schema()),
                            "approval": _ref("identifier"),
                        },
                        ("name", "from", "to"),
                    )
                ),
                "approvals": _array(
                    _obj(
                        {
                            "name": _ref("identifier"),
                            "label": _ref("label"),
                            "steps": _array(
                                _obj(
                                    {
                                        "name": _ref("identifier"),
                                        "label": _ref("label"),
                                        "approver": {
                                            "oneOf": [_APPROVER, _array(_APPROVER, minItems=1)],
                                            "description": "Who approves: role:<role>, "
                                            "user:<username>, manager (the owner's), "
                                            "manager:<levels up>, field:<user field>; or a "
                                            "list of them.",
                                        },
                                        "mode": {
                                            "oneOf": [
                                                {"enum": ["any", "all"]},
                                                {"type": "integer", "minimum": 1},
                                            ],
                                            "description": "How many approvers must approve: "
                                            "any one (default), all, or a number N.",
                                        },
                                        "when": _ref("expression"),
                                        "parallel": {
                                            "type": "boolean",
                                            "description": "Runs together with the step before it.",
                                        },
                                    },
                                    ("name", "approver"),
                                ),
                                minItems=1,
                            ),
                            "on_approve": _ref("identifier"),
                            "on_reject": _ref("identifier"),
                            "on_recall": _ref("identifier"),
                            "allow_self_approval": {"type": "boolean"},
                            "recall": {
                                "type": "boolean",
                                "description": "Whether the submitter may recall it "
                                "(default true).",
                            },
                            "remind_after": _DURATION,
                            "escalate_after": _DURATION,
                            "escalate_to": _APPROVER,
                        },
                        ("name", "steps"),
                    )
                ),
            },
            ("kind", "name", "entity", "field", "states"),
        ),
        "role": _obj(
            {
                **_COMMON,
                "permissions": {
                    "type": "object",
                    "description": "Per entity (or '*' for every entity): a scope per action.",
                    "propertyNames": {"anyOf": [_ref("identifier"), {"const": "*"}]},
                    "additionalProperties": _obj(
                        {
                            **{action: {"enum": list(SCOPES)} for action in ACTIONS},
                            "fields": {
                                "type": "object",
                                "propertyNames": _ref("identifier"),
                                "additionalProperties": {"enum": ["hidden", "readonly"]},
                            },
                        }
                    ),
                },
            },
            ("kind", "name"),
        ),
        "report": _obj(
            {
                **_COMMON,
                "entity": _ref("identifier"),
                "params": report_params,
                "filter": _ref("expression"),
                "group_by": group_by,
                "measures": measures,
                "having": _ref("expression"),
                "sort": _ref("sort"),
                "limit": {"type": "integer", "minimum": 1, "maximum": MAX_REPORT_ROWS},
                "others": {"type": "boolean"},
                "totals": {"type": "boolean"},
                "compare": _ref("identifier"),
                "pivot": {"type": "string", "minLength": 1, "description": "a dimension's name"},
                "subtotals": {"type": "boolean"},
                "funnel": _obj(
                    {
                        "field": _ref("field_path"),
                        "steps": _array({"type": "string", "minLength": 1}, minItems=2),
                        "dropped_at": _ref("field_path"),
                        "measure": _ref("identifier"),
                    },
                    ("field",),
                ),
                "cycle": _obj(
                    {"record": _ref("identifier"), "at": _ref("identifier")}, ("record", "at")
                ),
                "unpivot": unpivot,
                "union": _array(
                    _obj(
                        {
                            "entity": _ref("identifier"),
                            "filter": _ref("expression"),
                            "unpivot": unpivot,
                            "group_by": group_by,
                            "measures": measures,
                        },
                        ("entity", "group_by", "measures"),
                    ),
                    minItems=1,
                    maxItems=MAX_UNION,
                ),
                "chart": _obj(
                    {
                        "type": {"enum": list(CHART_TYPES)},
                        "x": {"type": "string"},
                        "y": {"oneOf": [{"type": "string"}, _array({"type": "string"})]},
                        "series": {"type": "string"},
                    }
                ),
            },
            ("kind", "name", "entity"),
        ),
        "dashboard": _obj(
            {
                **_COMMON,
                "roles": _names(),
                "default_for": _names(),
                "params": report_params,
                "widgets": _array(
                    _obj(
                        {
                            "name": _ref("identifier"),
                            "label": _ref("label"),
                            "type": {
                                "enum": ["report", "list", "metric", "chart", "calendar", "tasks"]
                            },
                            "report": _ref("identifier"),
                            "entity": _ref("identifier"),
                            "filter": _ref("expression"),
                            "width": {"type": "integer", "minimum": 1, "maximum": 12},
                            "params": {
                                "type": "object",
                                "description": "The report's parameters by name: a "
                                "dashboard parameter's name, or a fixed value.",
                                "propertyNames": _ref("identifier"),
                            },
                        },
                        ("name", "type"),
                    )
                ),
            },
            ("kind", "name"),
        ),
        "automation": _obj(
            {
                **_COMMON,
                "entity": _ref("identifier"),
                "trigger": _obj(
                    {
                        **{kind.name: kind.schema for kind in TRIGGER_TYPES.values()},
                        "offset_days": {"type": "integer", "minimum": -3660, "maximum": 3660},
                        "yearly": {"type": "boolean"},
                        "fields": _names(),
                        "transitions": _names(),
                    }
                ),
                "condition": _ref("expression"),
                "actions": _array(_action_schema(), minItems=1),
                "enabled": {"type": "boolean"},
                "async": {"type": "boolean"},
                "batch_size": {"type": "integer", "minimum": 1, "maximum": 10000},
            },
            ("kind", "name", "entity", "trigger", "actions"),
        ),
    }


def _strip_required(schema: Any) -> Any:
    """A patch may name any part of a document, so nothing in it is required."""
    if isinstance(schema, dict):
        return {
            key: _strip_required(value)
            for key, value in schema.items()
            # keywords only: a property may itself be called "required"
            if not (key == "required" and isinstance(value, list))
            and not (key in ("minItems", "minProperties") and isinstance(value, int))
        }
    if isinstance(schema, list):
        return [_strip_required(item) for item in schema]
    return schema


def _patched_refs(schema: Any) -> Any:
    """Point every ``$ref`` at the patch variant of its definition."""
    if isinstance(schema, dict):
        return {
            key: (f"{value}{PATCH_SUFFIX}" if key == "$ref" else _patched_refs(value))
            for key, value in schema.items()
        }
    if isinstance(schema, list):
        return [_patched_refs(item) for item in schema]
    return schema


def _patch_schema(schema: Schema) -> Schema:
    base: Schema = _patched_refs(_strip_required(copy.deepcopy(schema)))
    base["properties"].pop("name", None)
    base["properties"]["extend"] = {**_ref("identifier"), "description": "The document to patch."}
    base["properties"]["remove"] = _array(
        {
            "type": "string",
            "pattern": r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$|^[a-z][a-z0-9_]*$",
            "description": "a dotted path like fields.fax",
        },
        description="Dotted paths to drop: `fields.fax`, `validations.old_rule`.",
    )
    base["required"] = ["kind", "extend"]
    return base


def registries_version() -> tuple[int, ...]:
    """Changes whenever a field type, view kind, action, trigger or measure is registered."""
    registries = (FIELD_TYPES, VIEW_KINDS, ACTION_TYPES, TRIGGER_TYPES, MEASURES)
    return tuple(r.version for r in registries)


def definition_schema() -> Schema:
    """The whole schema: one document of any kind, base or patch (``extend:``)."""
    return _definition_schema(registries_version())


@cache
def _definition_schema(_version: tuple[int, ...]) -> Schema:
    kinds = _kind_schemas()
    defs = {**_DEFS, "field": _field_schema()}
    for name, schema in list(defs.items()):
        defs[f"{name}{PATCH_SUFFIX}"] = _patched_refs(_strip_required(copy.deepcopy(schema)))
    branches = []
    for kind, schema in kinds.items():
        defs[kind] = schema
        defs[f"{kind}{PATCH_SUFFIX}"] = _patch_schema(schema)
        branches.append(
            {
                "if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]},
                "then": {
                    "if": {"required": ["extend"]},
                    "then": _ref(f"{kind}_patch"),
                    "else": _ref(kind),
                },
            }
        )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Heddle definition",
        "description": "One document of a Heddle definition package.",
        "type": "object",
        "required": ["kind"],
        "properties": {"kind": {"enum": list(KINDS)}},
        "allOf": branches,
        "$defs": defs,
    }


def kind_schema(kind: str, *, patch: bool = False) -> Schema:
    """The schema of one kind, resolvable on its own (it carries the shared ``$defs``)."""
    whole = definition_schema()
    return {"$defs": whole["$defs"], **_ref(f"{kind}_patch" if patch else kind)}


def schema_json() -> str:
    """The schema as published by ``heddle schema``."""
    return json.dumps(definition_schema(), indent=2, ensure_ascii=False) + "\n"
