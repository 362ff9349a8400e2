"""The paths of the OpenAPI document: every operation of ``/api/v1``, its parameters and
its responses.

Kept apart from the schemas (:mod:`heddle._openapi_schemas`, which this module refers to
by ``$ref``) and from the assembly and serving of the document (:mod:`heddle.openapi`).
The larger part is the list operation's query parameters, which must say exactly what
the query layer (:mod:`engine.query`) accepts: one parameter per field and operator
(``amount``, ``amount__gte``…) with the schema of its value, and the reserved ones
(``sort``, ``limit``, ``cursor``, ``q``, ``fields``, ``expand``) — so the operators, kinds
and limits are read from the engine rather than restated here.

>>> [p["name"] for p in list_parameters(entity, frozenset())][:3]
['sort', 'limit', 'cursor']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from apispec import APISpec

from engine.query import (
    MAX_LIMIT,
    MAX_LIST,
    MAX_SEARCH,
    MAX_TEXT,
    RELATIVE_DATES,
    RESERVED,
    QueryValueError,
    Target,
    target,
)
from metamodel import Entity, Report, Workflow
from metamodel.fieldtypes import value_type

from ._openapi_schemas import JSONSchema, expandable_targets, readable_targets, ref
from .fieldtypes import INT64_MAX

NO_NUL = r"^[^\x00]*$"
LIST_ITEM = r"^[^,\\\x00]*[^,\\\x00\s][^,\\\x00]*$"  # no comma, backslash or NUL; not blank
DECIMAL_FILTER = r"^[+-]?([0-9]{1,30}(\.[0-9]{0,30})?|\.[0-9]{1,30})$"


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


def _filter_parameters(entity: Entity, targets: list[Target]) -> list[JSONSchema]:
    parameters = []
    for found in targets:
        label = found.field.label.get("en") if found.field is not None else found.name
        for op in found.operators:
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


def list_parameters(entity: Entity, hidden: frozenset[str]) -> list[JSONSchema]:
    """The list operation's query parameters: the reserved ones, then the filters."""
    targets = readable_targets(entity, hidden)
    sortable = [t.name for t in targets if t.sortable]
    expandable = [t.name for t in expandable_targets(targets)]
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


# --- responses ----------------------------------------------------------------------------

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
          "details.current_version), other records still refer to it (code restricted), "
          "or a duplicate rule finds it exists already (code duplicate, details as "
          "DuplicateDetails: resend with confirm_duplicates to accept a warning)."),
    413: ("PayloadTooLarge", "The body is larger than the server accepts "
          "(code request_entity_too_large)."),
    415: ("UnsupportedMediaType", "The body is not sent as application/json "
          "(code unsupported_media_type)."),
    422: ("ValidationFailed", "The record breaks its rules; fields says which and why "
          "(code validation_failed)."),
    429: ("TooManyRequests", "Too many login attempts; wait for Retry-After seconds "
          "(code too_many_requests)."),
}  # fmt: skip


def error_responses(*statuses: int) -> dict[str, Any]:
    """The error responses of an operation, by reference to their components."""
    return {str(status): ERRORS[status][0] for status in statuses}


def response(schema: JSONSchema, description: str) -> JSONSchema:
    """A JSON response whose body is ``schema``."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _data(schema: JSONSchema) -> JSONSchema:
    return {
        "type": "object",
        "required": ["data"],
        "additionalProperties": False,
        "properties": {"data": schema},
    }


# --- operations ---------------------------------------------------------------------------


def entity_tag(entity: Entity) -> JSONSchema:
    """The tag grouping ``entity``'s operations: its plural label and description."""
    tag: JSONSchema = {"name": entity.name}
    description = entity.plural_label.get("en")
    if entity.description is not None:
        description += ": " + entity.description.get("en")
    tag["description"] = description
    texts = entity.label.to_json()
    if isinstance(texts, dict) and len(texts) > 1:
        tag["x-labels"] = texts
    return tag


def _write(
    operation_id: str,
    summary: str,
    tag: str,
    body: JSONSchema,
    success: tuple[str, JSONSchema],
    errors: Mapping[str, Any],
) -> dict[str, Any]:
    """An operation that takes a record as its JSON body (create, update)."""
    return {
        "operationId": operation_id,
        "summary": summary,
        "tags": [tag],
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": {success[0]: success[1], **errors},
    }


def _record_id(label: str) -> JSONSchema:
    """The ``{id}`` path parameter of a record's operations."""
    return {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 0, "maximum": INT64_MAX},
        "description": f"The {label}'s id.",
    }


def entity_paths(
    spec: APISpec, entity: Entity, base: str, actions: frozenset[str], hidden: frozenset[str]
) -> None:
    """The record operations of ``entity`` that ``actions`` allow; ``base`` names its schemas."""
    name = entity.name
    label = entity.label.get("en")
    plural = entity.plural_label.get("en")
    record_id = _record_id(label)
    one = response(_data(ref(base)), f"The {label}.")
    collection: dict[str, Any] = {
        "get": {
            "operationId": f"list_{name}",
            "summary": f"List {plural}",
            "tags": [name],
            "parameters": list_parameters(entity, hidden),
            "responses": {
                "200": response(ref(base + "Page"), f"A page of {plural}."),
                **error_responses(400, 401, 403),
            },
        }
    }
    if "create" in actions:
        collection["post"] = _write(
            f"create_{name}", f"Create a {label}", name, ref(base + "Input"),
            ("201", response(_data(ref(base)), f"The new {label}, as stored.")),
            error_responses(400, 401, 403, 409, 413, 415, 422),
        )  # fmt: skip
    spec.path(path=f"/records/{name}", operations=collection)

    item: dict[str, Any] = {
        "get": {
            "operationId": f"get_{name}",
            "summary": f"Get a {label}",
            "description": "With its formulas computed and its child rows.",
            "tags": [name],
            "responses": {"200": one, **error_responses(401, 403, 404)},
        }
    }
    if "update" in actions:
        item["patch"] = _write(
            f"update_{name}", f"Change a {label}", name, ref(base + "Patch"),
            ("200", response(_data(ref(base)), f"The {label}, changed.")),
            error_responses(400, 401, 403, 404, 409, 413, 415, 422),
        )  # fmt: skip
    if "delete" in actions:
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
                **error_responses(400, 401, 403, 404, 409, 422),
            },
        }
    spec.path(path=f"/records/{name}/{{id}}", operations=item, parameters=[record_id])
    history = {
        "get": {
            "operationId": f"history_{name}",
            "summary": f"History of a {label}",
            "description": "Every change, oldest first: who, when, the version and "
            "the field-level diff.",
            "tags": [name],
            "responses": {
                "200": response(
                    _data({"type": "array", "items": ref("HistoryEntry")}), "The changes."
                ),
                **error_responses(401, 403, 404),
            },
        }
    }
    spec.path(path=f"/records/{name}/{{id}}/history", operations=history, parameters=[record_id])


def workflow_paths(
    spec: APISpec,
    entity: Entity,
    base: str,
    workflows: tuple[Workflow, ...],
    actions: frozenset[str],
    hidden: frozenset[str],
) -> None:
    """The transitions of ``entity``'s workflows: one operation per transition (its own
    body: the fields it takes), the transitions available now, and their history."""
    if not workflows:
        return
    name = entity.name
    label = entity.label.get("en")
    record_id = _record_id(label)
    listing = {
        "get": {
            "operationId": f"transitions_{name}",
            "summary": f"Transitions of a {label} you may fire now",
            "description": "From its current state, allowed to one of your roles, with "
            "their guards holding; empty when you may not change it.",
            "tags": [name],
            "responses": {
                "200": response(
                    _data({"type": "array", "items": ref("Transition")}), "The transitions."
                ),
                **error_responses(401, 403, 404),
            },
        }
    }
    spec.path(path=f"/records/{name}/{{id}}/transitions", operations=listing,
              parameters=[record_id])  # fmt: skip
    history = {
        "get": {
            "operationId": f"transition_history_{name}",
            "summary": f"Transitions fired on a {label}",
            "description": "Oldest first: who, when, from, to and the comment.",
            "tags": [name],
            "responses": {
                "200": response(
                    _data({"type": "array", "items": ref("TransitionEntry")}),
                    "The transitions fired.",
                ),
                **error_responses(401, 403, 404),
            },
        }
    }
    spec.path(path=f"/records/{name}/{{id}}/transitions/history", operations=history,
              parameters=[record_id])  # fmt: skip
    if "update" not in actions:
        return
    for workflow in workflows:
        for transition in workflow.transitions:
            inputs = [f for f in transition.inputs if f not in hidden]
            properties: dict[str, Any] = {
                "version": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 2**31 - 1,
                    "description": "The version you read; a stale one is a 409.",
                },
            }
            if transition.comment != "none":
                properties["comment"] = {
                    "type": "string",
                    "description": f"Why ({transition.comment}); kept in the history.",
                }
            for field in inputs:
                required = " (required unless already filled)"
                properties[field] = {
                    "description": entity.field(field).label.get("en")
                    + (required if field in transition.required_fields else "")
                }
            sources = ", ".join(transition.sources)
            fire = {
                "post": {
                    "operationId": f"fire_{name}_{transition.name}",
                    "summary": f"{transition.label.get('en')} ({sources} → {transition.to})",
                    "description": f"Fire '{transition.name}' of workflow {workflow.name}"
                    + (f"; allowed to: {', '.join(transition.roles)}" if transition.roles else "")
                    + (f"; only when {transition.guard.source}" if transition.guard else "")
                    + ". Answers the record.",
                    "tags": [name],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["version"],
                                    "additionalProperties": False,
                                    "properties": properties,
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": response(_data(ref(base)), f"The {label}, moved."),
                        **error_responses(400, 401, 403, 404, 409, 413, 422),
                    },
                }
            }
            spec.path(path=f"/records/{name}/{{id}}/transitions/{transition.name}",
                      operations=fire, parameters=[record_id])  # fmt: skip


def auth_paths(spec: APISpec) -> None:
    """Tokens and browser sessions: ``/auth/token`` and ``/auth/session``."""
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
    spec.tag({"name": "auth", "description": "Tokens and browser sessions."})
    spec.path(
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
                    "201": response(token, "The new token."),
                    **error_responses(400, 401, 413, 415, 429),
                },
            },
            "delete": {
                "operationId": "revoke_token",
                "summary": "Revoke the token of this request",
                "tags": ["auth"],
                "responses": {
                    "204": {"description": "Revoked."},
                    **error_responses(400, 401),
                },
            },
        },
    )
    spec.path(
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
                    "200": response(_data(session), "Logged in."),
                    **error_responses(400, 401, 413, 415, 429),
                },
            },
            "delete": {
                "operationId": "delete_session",
                "summary": "Log the browser out",
                "tags": ["auth"],
                # 400: a session without its CSRF token
                "responses": {
                    "204": {"description": "Logged out."},
                    **error_responses(400, 401),
                },
            },
        },
    )


def meta_paths(spec: APISpec, readable: list[str]) -> None:
    """The metadata of the ``readable`` entities: ``/meta/entities`` and one entity's."""
    spec.tag({"name": "meta", "description": "Entities, fields, labels and options."})
    spec.path(
        path="/meta/entities",
        operations={
            "get": {
                "operationId": "list_entities",
                "summary": "The entities you may read",
                "tags": ["meta"],
                "responses": {
                    "200": response(
                        _data({"type": "array", "items": ref("EntitySummary")}),
                        "The entities, with the actions you may take.",
                    ),
                    **error_responses(401),
                },
            }
        },
    )
    spec.path(
        path="/meta/entities/{entity}",
        parameters=[
            {
                "name": "entity",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "enum": readable} if readable else {"type": "string"},
            }
        ],
        operations={
            "get": {
                "operationId": "get_entity_meta",
                "summary": "One entity's fields, labels and options",
                "tags": ["meta"],
                "responses": {
                    "200": response(_data(ref("EntityMeta")), "The entity."),
                    **error_responses(401, 404),
                },
            }
        },
    )


# --- reports ------------------------------------------------------------------------------

REPORT_RESULT: JSONSchema = {
    "type": "object",
    "required": ["columns", "rows", "totals", "chart", "params"],
    "properties": {
        "columns": {
            "type": "array",
            "description": "What each row key holds: name, label, type, role (dimension or "
            "measure), options of a choice or range dimension, bucket of a time dimension.",
            "items": {
                "type": "object",
                "required": ["name", "label", "type", "role"],
                "properties": {
                    "name": {"type": "string"},
                    "label": {"type": "string"},
                    "type": {"type": "string"},
                    "role": {"enum": ["dimension", "measure"]},
                    "bucket": {"type": "string"},
                    "title": {"type": "string"},
                    "options": {"type": "array", "items": {"type": "object"}},
                },
            },
        },
        "rows": {
            "type": "array",
            "items": {"type": "object"},
            "description": "One object per group; a last row with _others: true gathers "
            "what a limit left out; <dimension>__title names a referenced record.",
        },
        "totals": {
            "type": ["object", "null"],
            "description": "The measures over every record the filter and your permissions select.",
        },
        "chart": {"type": "object", "description": "type, x, y (measures) and series."},
        "params": {"type": "object", "description": "The parameter values used."},
    },
}


def _report_parameter(report: Report, index: int) -> JSONSchema:
    param = report.params[index]
    relative = {"type": "string", "enum": list(RELATIVE_DATES)}
    schema: JSONSchema
    if param.type == "period":
        span = r"^\d{4}-\d{2}-\d{2}(\.\.\d{4}-\d{2}-\d{2})?$"
        schema = {"anyOf": [relative, {"type": "string", "pattern": span}]}
    elif param.type == "date":
        schema = {"anyOf": [relative, {"type": "string", "format": "date"}]}
    else:
        kind = value_type(param.type)
        schema = {
            "integer": {"type": "integer"},
            "decimal": {"type": "string", "pattern": DECIMAL_FILTER},
            "boolean": {"type": "boolean"},
            "datetime": {"type": "string", "format": "date-time"},
        }.get(kind, {"type": "string", "maxLength": MAX_TEXT, "pattern": NO_NUL})
    if param.default is not None:
        schema = {**schema, "default": param.default}
    return {
        "name": param.name,
        "in": "query",
        "required": param.required and param.default is None,
        "description": param.label.get("en"),
        "schema": schema,
    }


def report_paths(spec: APISpec, reports: list[Report], dashboards: list[str]) -> None:
    """The reports a caller may run: the list, one path per report with its parameters,
    the ad-hoc query; and the dashboards."""
    spec.tag({"name": "reports", "description": "Reports: grouped and totalled in the database."})
    result = response(ref("ReportResult"), "The rows, totals and chart.")
    summary = {"type": "object", "required": ["name", "label", "entity", "params"]}
    spec.path(
        path="/reports",
        operations={
            "get": {
                "operationId": "list_reports",
                "summary": "The reports you may run",
                "tags": ["reports"],
                "responses": {
                    "200": response(_data({"type": "array", "items": summary}), "The reports."),
                    **error_responses(401),
                },
            }
        },
    )
    csv = {
        "description": "The report as CSV (UTF-8 with a byte-order mark): a header of "
        "labels in your language, the rows, the others row and the totals.",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
    for report in reports:
        parameters = [_report_parameter(report, i) for i in range(len(report.params))]
        spec.path(
            path=f"/reports/{report.name}",
            operations={
                "get": {
                    "operationId": f"report_{report.name}",
                    "summary": report.label.get("en"),
                    "tags": ["reports"],
                    "parameters": parameters,
                    "responses": {"200": result, **error_responses(400, 401, 403, 404)},
                }
            },
        )
        spec.path(
            path=f"/reports/{report.name}/csv",
            operations={
                "get": {
                    "operationId": f"export_{report.name}",
                    "summary": f"{report.label.get('en')} as CSV",
                    "description": "Needs the export permission on the report's entity.",
                    "tags": ["reports"],
                    "parameters": parameters,
                    "responses": {"200": csv, **error_responses(400, 401, 403, 404)},
                }
            },
        )
    spec.path(
        path="/reports/query",
        operations={
            "post": {
                "operationId": "query_report",
                "summary": "Run an ad-hoc report",
                "description": "The body is a report document (entity, params, filter, "
                "group_by, measures, having, sort, limit, others, totals, chart); parameter "
                "values go in the query string. A field hidden from you is refused.",
                "tags": ["reports"],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "responses": {"200": result, **error_responses(400, 401, 403, 413)},
            }
        },
    )
    dashboard = {
        "type": "object",
        "required": ["name", "label", "widgets"],
        "properties": {
            "name": {"type": "string"},
            "label": {"type": "string"},
            "widgets": {
                "type": "array",
                "description": "name, label, type, width, and data (a report's result; a "
                "metric's totals; a list's rows) or error.",
                "items": {"type": "object", "required": ["name", "label", "type", "width"]},
            },
        },
    }
    spec.path(
        path="/dashboards",
        operations={
            "get": {
                "operationId": "list_dashboards",
                "summary": "The dashboards",
                "tags": ["reports"],
                "responses": {
                    "200": response(
                        _data({"type": "array", "items": {"type": "object"}}), "The dashboards."
                    ),
                    **error_responses(401),
                },
            }
        },
    )
    spec.path(
        path="/dashboards/{name}",
        parameters=[
            {
                "name": "name",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "enum": dashboards}
                if dashboards
                else {"type": "string"},
            }
        ],
        operations={
            "get": {
                "operationId": "get_dashboard",
                "summary": "Every widget's data at once",
                "description": "Query parameters go to every report widget that takes them.",
                "tags": ["reports"],
                "responses": {
                    "200": response(dashboard, "The dashboard."),
                    **error_responses(400, 401, 404),
                },
            }
        },
    )


# --- users and teams (administrators) ----------------------------------------------------

USERNAME = r"^\w[\w.@+-]{0,149}$"
NO_CONTROL = r"^[^\x00-\x1f\x7f-\x9f]*$"


def _text_schema(size: int, *, nullable: bool = False, pattern: str = NO_CONTROL) -> JSONSchema:
    text: JSONSchema = {"type": "string", "maxLength": size, "pattern": pattern}
    return {"anyOf": [text, {"type": "null"}]} if nullable else text


def _account_schemas(roles: list[str]) -> dict[str, JSONSchema]:
    """The user and team bodies: as answered, as created, as changed."""
    timestamp = {"type": "string", "format": "date-time"}
    role_list = {"type": "array", "minItems": 1, "maxItems": 100,
                 "items": {"type": "string", "enum": roles}}  # fmt: skip
    user_fields: dict[str, JSONSchema] = {
        "username": _text_schema(150, pattern=USERNAME),
        "password": {"type": "string", "minLength": 8, "maxLength": 1024, "format": "password",
                     "writeOnly": True},
        "roles": role_list,
        "team": {**_text_schema(200, nullable=True), "description": "A team's name (null: none)."},
        "manager": {**_text_schema(150, nullable=True),
                    "description": "The manager's username (null: none)."},
        "name": _text_schema(200),
        "email": _text_schema(255, nullable=True),
        "locale": _text_schema(16),
        "active": {"type": "boolean", "description": "false: disabled, cannot log in."},
    }  # fmt: skip
    user = {
        "type": "object",
        "additionalProperties": False,
        "required": ["id", "username", "name", "email", "team", "manager", "roles", "locale",
                     "active", "created_at"],
        "properties": {
            "id": {"type": "integer"},
            **{k: {"type": ["string", "null"]} for k in ("email", "team", "manager")},
            "username": {"type": "string"},
            "name": {"type": "string"},
            "locale": {"type": "string"},
            "roles": {"type": "array", "items": {"type": "string"}},
            "active": {"type": "boolean"},
            "created_at": timestamp,
        },
    }  # fmt: skip
    team_fields: dict[str, JSONSchema] = {
        "name": {**_text_schema(200), "minLength": 1},
        "parent": {**_text_schema(200, nullable=True),
                   "description": "The name of the team above (null: at the top)."},
    }  # fmt: skip
    team = {
        "type": "object",
        "additionalProperties": False,
        "required": ["id", "name", "parent", "users", "created_at"],
        "properties": {
            "id": {"type": "integer"},
            "name": {"type": "string"},
            "parent": {"type": ["string", "null"]},
            "users": {"type": "integer", "description": "How many users it has."},
            "created_at": timestamp,
        },
    }
    return {
        "User": user,
        "UserCreate": {"type": "object", "additionalProperties": False,
                       "required": ["username", "password", "roles"],
                       "properties": user_fields},
        "UserUpdate": {"type": "object", "additionalProperties": False,
                       "properties": user_fields},
        "Team": team,
        "TeamCreate": {"type": "object", "additionalProperties": False, "required": ["name"],
                       "properties": team_fields},
        "TeamUpdate": {"type": "object", "additionalProperties": False,
                       "properties": team_fields},
    }  # fmt: skip


def _list(schema: JSONSchema) -> JSONSchema:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["data", "next_cursor", "count", "count_estimated"],
        "properties": {
            "data": {"type": "array", "items": schema},
            "next_cursor": {"type": "null", "description": "Always null: one page."},
            "count": {"type": "integer"},
            "count_estimated": {"type": "boolean"},
        },
    }


def account_paths(spec: APISpec, roles: list[str]) -> None:
    """``/users`` and ``/teams``: administrators only (everyone else gets 403)."""
    for name, schema in _account_schemas(roles).items():
        spec.components.schema(name, schema)

    def body(name: str) -> JSONSchema:
        return {"required": True, "content": {"application/json": {"schema": ref(name)}}}

    filters = [
        {"name": "active", "in": "query", "schema": {"type": "string", "enum": ["true", "false"]},
         "description": "Only active (true) or disabled (false) users."},
        {"name": "team", "in": "query", "schema": _text_schema(200),
         "description": "Only the users of the team with this name."},
        {"name": "role", "in": "query", "schema": _text_schema(200),
         "description": "Only the users with this role."},
    ]  # fmt: skip
    for kind, label, plural, extra in (
        ("User", "user", "users", filters),
        ("Team", "team", "teams", []),
    ):
        tag = {"name": plural, "description": f"The {plural} (administrators only)."}
        spec.tag(tag)
        spec.path(
            path=f"/{plural}",
            operations={
                "get": {
                    "operationId": f"list_{plural}",
                    "summary": f"List the {plural}",
                    "tags": [plural],
                    "parameters": extra,
                    "responses": {
                        "200": response(_list(ref(kind)), f"The {plural}, all in one page."),
                        **error_responses(400, 401, 403),
                    },
                },
                "post": {
                    "operationId": f"create_{label}",
                    "summary": f"Create a {label}",
                    "tags": [plural],
                    "requestBody": body(f"{kind}Create"),
                    "responses": {
                        "201": response(_data(ref(kind)), f"The new {label}."),
                        **error_responses(400, 401, 403, 413, 415, 422),
                    },
                },
            },
        )
        spec.path(
            path=f"/{plural}/{{id}}",
            parameters=[
                {
                    "name": "id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "integer", "minimum": 0, "maximum": INT64_MAX},
                    "description": f"The {label}'s id.",
                }
            ],
            operations={
                "get": {
                    "operationId": f"get_{label}",
                    "summary": f"Read a {label}",
                    "tags": [plural],
                    "responses": {
                        "200": response(_data(ref(kind)), f"The {label}."),
                        **error_responses(401, 403, 404),
                    },
                },
                "patch": {
                    "operationId": f"update_{label}",
                    "summary": f"Change a {label}",
                    "description": "Only the fields sent change."
                    + (
                        " active false disables the user: their sessions and tokens stop at "
                        "once. Nobody may disable themselves or drop their own admin role."
                        if kind == "User"
                        else " A team may not be placed under itself."
                    ),
                    "tags": [plural],
                    "requestBody": body(f"{kind}Update"),
                    "responses": {
                        "200": response(_data(ref(kind)), f"The changed {label}."),
                        **error_responses(400, 401, 403, 404, 413, 415, 422),
                    },
                },
            },
        )
