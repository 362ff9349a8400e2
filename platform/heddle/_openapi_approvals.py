"""The approval operations of the OpenAPI document: what waits for me, decide, recall,
a record's approvals, delegations (:mod:`heddle.approval_api` serves them)."""

from __future__ import annotations

from typing import Any

from apispec import APISpec

from metamodel import Entity

from ._openapi_paths import error_responses, response
from ._openapi_schemas import JSONSchema, ref
from .fieldtypes import INT64_MAX

TAG = "approvals"
NULLABLE_ID: JSONSchema = {"type": ["integer", "null"]}
WHEN: JSONSchema = {"type": "string", "format": "date-time"}
MAYBE_WHEN: JSONSchema = {"type": ["string", "null"], "format": "date-time"}
EVENTS = [
    "submitted",
    "requested",
    "skipped",
    "approved",
    "rejected",
    "recalled",
    "cancelled",
    "completed",
    "reminder",
    "escalated",
]


def _object(properties: dict[str, JSONSchema], optional: tuple[str, ...] = ()) -> JSONSchema:
    return {
        "type": "object",
        "required": [name for name in properties if name not in optional],
        "additionalProperties": False,
        "properties": properties,
    }


TASK = _object(
    {
        "id": {"type": "integer"},
        "approver_id": NULLABLE_ID,
        "status": {"enum": ["pending", "approved", "rejected", "cancelled", "closed"]},
        "decided_by": NULLABLE_ID,
        "on_behalf_of": {**NULLABLE_ID, "description": "The approver a delegate decided for."},
        "decided_at": MAYBE_WHEN,
        "comment": {"type": ["string", "null"]},
        "escalated": {"type": "boolean", "description": "Added by an escalation."},
    }
)
STEP = _object(
    {
        "name": {"type": "string"},
        "label": ref("Label"),
        "stage": {"type": "integer", "description": "Steps of one stage run in parallel."},
        "status": {"enum": ["pending", "approved", "rejected", "skipped", "cancelled"]},
        "needed": {"type": "integer", "description": "How many approvals the step needs."},
        "approved": {"type": "integer"},
        "started_at": WHEN,
        "decided_at": MAYBE_WHEN,
        "tasks": {"type": "array", "items": ref("ApprovalTask")},
    }
)
EVENT = _object(
    {
        "kind": {"enum": EVENTS},
        "step": {"type": ["string", "null"]},
        "actor_id": NULLABLE_ID,
        "on_behalf_of": NULLABLE_ID,
        "comment": {"type": ["string", "null"]},
        "recipients": {
            "type": "array",
            "items": {"type": "integer"},
            "description": "The users the event concerns (to notify).",
        },
        "at": WHEN,
    }
)
APPROVAL = _object(
    {
        "id": {"type": "integer"},
        "entity": {"type": "string"},
        "record_id": {"type": "integer"},
        "workflow": {"type": "string"},
        "approval": {"type": "string"},
        "transition": {"type": "string", "description": "The transition that started it."},
        "status": {"enum": ["pending", "approved", "rejected", "recalled", "cancelled"]},
        "submitted_by": NULLABLE_ID,
        "submitted_at": WHEN,
        "decided_at": MAYBE_WHEN,
        "version": {"type": "integer", "description": "Send it back to decide; stale is 409."},
        "steps": {"type": "array", "items": ref("ApprovalStep")},
        "waiting_for": {"type": "array", "items": {"type": "integer"}},
        "history": {"type": "array", "items": ref("ApprovalEvent")},
        "record": _object(
            {
                "entity": {"type": "string"},
                "id": {"type": "integer"},
                "label": ref("Label"),
                "title": {"description": "The record's title field."},
            },
            optional=("label", "title"),
        ),
    },
    optional=("history", "record"),
)
DELEGATION = _object(
    {
        "id": {"type": "integer"},
        "user_id": {"type": "integer", "description": "Whose approvals the delegate decides."},
        "delegate_id": {"type": "integer"},
        "starts_on": {"type": "string", "format": "date"},
        "ends_on": {"type": "string", "format": "date"},
        "note": {"type": "string"},
        "created_by": NULLABLE_ID,
        "created_at": WHEN,
    }
)
DECISION: JSONSchema = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "comment": {"type": "string", "description": "Why; required to reject."},
        "version": {
            "type": "integer",
            "minimum": 1,
            "maximum": 2**31 - 1,
            "description": "The approval's version you read; a stale one is a 409.",
        },
    },
}
DELEGATION_INPUT: JSONSchema = {
    "type": "object",
    "required": ["delegate_id", "starts_on", "ends_on"],
    "additionalProperties": False,
    "properties": {
        "user_id": {"type": "integer", "description": "Administrators: whose delegation."},
        "delegate_id": {"type": "integer"},
        "starts_on": {"type": "string", "format": "date"},
        "ends_on": {"type": "string", "format": "date"},
        "note": {"type": "string", "maxLength": 200},
    },
}


def _data(schema: JSONSchema, **more: JSONSchema) -> JSONSchema:
    return _object({"data": schema, **more})


def _id(what: str) -> JSONSchema:
    return {
        "name": "id",
        "in": "path",
        "required": True,
        "description": f"The {what}'s id.",
        "schema": {"type": "integer", "minimum": 0, "maximum": INT64_MAX},
    }


def approval_paths(spec: APISpec, entities: list[Entity]) -> None:
    """The approval operations; ``entities``: those (readable) whose workflows have
    approvals, each with ``/records/<entity>/{id}/approvals``."""
    components = spec.components
    for name, schema in (
        ("ApprovalTask", TASK),
        ("ApprovalStep", STEP),
        ("ApprovalEvent", EVENT),
        ("Approval", APPROVAL),
        ("Delegation", DELEGATION),
    ):
        components.schema(name, schema)
    one = response(_data(ref("Approval")), "The approval, with its steps and history.")
    listing: dict[str, Any] = {
        "operationId": "list_approvals",
        "summary": "Approvals: what waits for me, what I decided, what I submitted",
        "tags": [TAG],
        "parameters": [
            {
                "name": "status",
                "in": "query",
                "schema": {"enum": ["pending", "decided", "mine"]},
                "description": "pending (default): what waits for you or those you stand in for; "
                "decided: what you decided; mine: what you submitted.",
            },
            {
                "name": "limit",
                "in": "query",
                "schema": {"type": "integer", "minimum": 1, "maximum": 200},
            },
            {
                "name": "before",
                "in": "query",
                "description": "next_before of the last page.",
                "schema": {"type": "integer", "minimum": 1, "maximum": INT64_MAX},
            },
        ],
        "responses": {
            "200": response(
                _data({"type": "array", "items": ref("Approval")}, next_before=NULLABLE_ID),
                "Newest first.",
            ),
            **error_responses(400, 401),
        },
    }
    spec.path(path="/approvals", operations={"get": listing})
    spec.path(
        path="/approvals/{id}",
        parameters=[_id("approval")],
        operations={
            "get": {
                "operationId": "get_approval",
                "summary": "One approval",
                "tags": [TAG],
                "responses": {"200": one, **error_responses(401, 404)},
            }
        },
    )
    for action, summary in (
        ("approve", "Approve what waits for you (or those you stand in for)"),
        ("reject", "Reject, with a comment: the record goes to the approval's on_reject state"),
        ("recall", "Recall your own request: the record goes back"),
    ):
        spec.path(
            path=f"/approvals/{{id}}/{action}",
            parameters=[_id("approval")],
            operations={
                "post": {
                    "operationId": f"{action}_approval",
                    "summary": summary,
                    "tags": [TAG],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": DECISION}},
                    },
                    "responses": {
                        "200": one,
                        **error_responses(400, 401, 403, 404, 409, 413, 415, 422),
                    },
                }
            },
        )
    spec.path(
        path="/approvals/delegations",
        operations={
            "get": {
                "operationId": "list_delegations",
                "tags": [TAG],
                "summary": "Delegations you gave or received, current and to come",
                "parameters": [
                    {
                        "name": "all",
                        "in": "query",
                        "schema": {"enum": ["true", "false"]},
                        "description": "Administrators: everyone's.",
                    }
                ],
                "responses": {
                    "200": response(
                        _data({"type": "array", "items": ref("Delegation")}), "By start."
                    ),
                    **error_responses(400, 401),
                },
            },
            "post": {
                "operationId": "create_delegation",
                "tags": [TAG],
                "summary": "While you are away, someone decides your approvals",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": DELEGATION_INPUT}},
                },
                "responses": {
                    "201": response(_data(ref("Delegation")), "The delegation."),
                    **error_responses(400, 401, 403, 413, 415, 422),
                },
            },
        },
    )
    spec.path(
        path="/approvals/delegations/{id}",
        parameters=[_id("delegation")],
        operations={
            "delete": {
                "operationId": "delete_delegation",
                "tags": [TAG],
                "summary": "Clear a delegation you gave (administrators: anyone's)",
                "responses": {"204": {"description": "Cleared."}, **error_responses(401, 403, 404)},
            }
        },
    )
    for entity in entities:
        label = entity.label.get("en")
        spec.path(
            path=f"/records/{entity.name}/{{id}}/approvals",
            parameters=[_id(label)],
            operations={
                "get": {
                    "operationId": f"approvals_{entity.name}",
                    "tags": [entity.name],
                    "summary": f"Approvals of a {label}, newest first, with their history",
                    "responses": {
                        "200": response(
                            _data({"type": "array", "items": ref("Approval")}), "The approvals."
                        ),
                        **error_responses(401, 403, 404),
                    },
                }
            },
        )
