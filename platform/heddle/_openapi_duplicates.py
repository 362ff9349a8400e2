"""The OpenAPI of duplicate rules and merges: ``confirm_duplicates`` in the bodies that
create and change records, the body of a refusal (``DuplicateDetails``) and the merge
operation, ``POST /records/<entity>/{id}/merge``.

Kept apart from :mod:`heddle._openapi_paths` (the record, workflow, report and account
operations), which :mod:`heddle.openapi` assembles with this.
"""

from __future__ import annotations

from typing import Any

from apispec import APISpec

from metamodel import Entity

from ._openapi_paths import error_responses, response
from ._openapi_schemas import JSONSchema, ref
from .fieldtypes import INT64_MAX

_HOLDER: JSONSchema = {
    "anyOf": [
        {
            "type": "object",
            "required": ["id", "name"],
            "additionalProperties": False,
            "properties": {"id": {"type": "integer"}, "name": {"type": "string"}},
        },
        {"type": "null"},
    ]
}

_REFUSAL_PROPERTIES: dict[str, JSONSchema] = {
    "rule": {"type": "string", "description": "The duplicate rule that refuses."},
    "label": {"type": "string", "description": "Its label, in the caller's language."},
    "action": {"type": "string", "enum": ["block", "claim", "warn"]},
    "confirmable": {
        "type": "boolean",
        "description": "Whether sending the rule in confirm_duplicates saves the record "
        "anyway: warn, and claim when only records of its also_check entities match.",
    },
    "candidates": {
        "type": "array",
        "description": "The records found, best first (at most 10): title and holder only, "
        "even of records you may not read.",
        "items": {
            "type": "object",
            "required": ["id", "entity", "title", "owner", "pool"],
            "additionalProperties": False,
            "properties": {
                "id": {"type": "integer"},
                "entity": {"type": "string"},
                "title": {"type": "string"},
                "owner": {**_HOLDER, "description": "Who owns it (null: nobody)."},
                "pool": {**_HOLDER, "description": "The public pool holding it, if any."},
                "score": {
                    "type": "number",
                    "description": "1 for equal keys; below for fuzzy rules.",
                },
            },
        },
    },
    "more": {"type": "integer", "description": "How many more records match."},
}

#: ``error.details`` of a 409 with code ``duplicate``.
DUPLICATE_DETAILS: JSONSchema = {
    "type": "object",
    "description": "error.details of a 409 whose code is duplicate: the first rule that "
    "refuses (block before claim before warn), and every refusing rule in rules.",
    "required": ["rule", "action", "candidates", "rules"],
    "properties": {
        **_REFUSAL_PROPERTIES,
        "rules": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["rule", "action", "candidates"],
                "properties": _REFUSAL_PROPERTIES,
            },
        },
    },
}


def confirm_property(entity: Entity) -> JSONSchema | None:
    """``confirm_duplicates`` of ``entity``'s create and update bodies (None: no rules)."""
    names = [rule.name for rule in entity.duplicate_rules]
    if not names:
        return None
    warns = [r.name for r in entity.duplicate_rules if r.action != "block"]
    return {
        "type": "array",
        "uniqueItems": True,
        "items": {"type": "string", "enum": names},
        "description": "Duplicate rules whose warning you accept: a 409 with code "
        "duplicate and details.confirmable names them. "
        + (f"Rules that may be confirmed: {', '.join(warns)}." if warns else "")
        + " A block rule refuses whatever is sent.",
    }


def with_confirmation(schema: JSONSchema, entity: Entity) -> JSONSchema:
    """``schema`` (``<Entity>Input`` or ``<Entity>Patch``) with ``confirm_duplicates``."""
    found = confirm_property(entity)
    if found is not None:
        schema["properties"]["confirm_duplicates"] = found
    return schema


def merge_paths(
    spec: APISpec, entity: Entity, base: str, actions: frozenset[str], readonly: frozenset[str]
) -> None:
    """``POST /records/<entity>/{id}/merge``, for a caller who may update and delete;
    ``readonly``: the fields the caller may not change (hidden ones too)."""
    if entity.child or not {"update", "delete"} <= actions:
        return
    label = entity.label.get("en")
    choice: JSONSchema = {
        "description": "survivor keeps this record's value, loser takes the other's, "
        '{"value": …} sets one.',
        "anyOf": [
            {"type": "string", "enum": ["survivor", "loser"]},
            {
                "type": "object",
                "required": ["value"],
                "additionalProperties": False,
                "properties": {"value": {}},
            },
        ],
    }
    choosable = [
        f.name
        for f in entity.fields.values()
        if f.name not in readonly
        and f.type not in ("formula", "rollup", "children", "autonumber")
        and not f.readonly
    ] + [n for n in ("owner_id", "team_id") if entity.ownable and n not in readonly]
    version: JSONSchema = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
    properties: dict[str, Any] = {
        "loser": {
            "type": "integer",
            "minimum": 1,
            "maximum": INT64_MAX,
            "description": f"The {label} merged into this one, then archived and deleted.",
        },
        "version": {**version, "description": "This record's version, as you read it."},
        "loser_version": {**version, "description": "The loser's version, as you read it."},
        "fields": {
            "type": "object",
            "description": "Per field, which value the survivor keeps. A field not named "
            "keeps the survivor's value, or takes the loser's where the survivor has none.",
            "additionalProperties": False,
            "properties": {name: choice for name in choosable},
        },
    }
    confirm = confirm_property(entity)
    if confirm is not None:
        properties["confirm_duplicates"] = confirm
    operation = {
        "post": {
            "operationId": f"merge_{entity.name}",
            "summary": f"Merge another {label} into this one",
            "description": "Every reference to the loser, in every entity (child rows "
            "too), moves to this record; the loser's history and transitions are shown "
            "with this record's; the loser is archived (heddle restore brings it back) "
            "and deleted. You must be allowed to update this record and delete the "
            "loser. A record whose rules refuse the move (a relation of the record to "
            "itself, a unique pair) is a 422 naming it.",
            "tags": [entity.name],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["loser", "version", "loser_version"],
                            "additionalProperties": False,
                            "properties": properties,
                        }
                    }
                },
            },
            "responses": {
                "200": response(
                    {
                        "type": "object",
                        "required": ["data"],
                        "additionalProperties": False,
                        "properties": {"data": ref(base)},
                    },
                    f"The {label} that survives, merged.",
                ),
                **error_responses(400, 401, 403, 404, 409, 413, 415, 422),
            },
        }
    }
    record_id = {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 0, "maximum": INT64_MAX},
        "description": f"The {label} that survives.",
    }
    spec.path(
        path=f"/records/{entity.name}/{{id}}/merge", operations=operation, parameters=[record_id]
    )
