"""The OpenAPI paths of notifications and automation previews (:mod:`heddle.jobs`)."""

from __future__ import annotations

from apispec import APISpec

from ._openapi_paths import error_responses, response
from ._openapi_schemas import JSONSchema, ref

_ID = {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
_WHEN = {"type": "string", "format": "date-time"}
_TEXT = {"type": "string"}

NOTIFICATION: JSONSchema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "subject", "body", "entity", "record_id", "source", "created_at", "read_at"],
    "properties": {
        "id": _ID,
        "subject": {"type": "string", "description": "The message, in the user's language."},
        "body": {"type": "string", "description": "The record's title."},
        "entity": {"type": ["string", "null"]},
        "record_id": {"type": ["integer", "null"]},
        "source": {"type": ["string", "null"], "description": "The automation or transition."},
        "created_at": _WHEN,
        "read_at": {"type": ["string", "null"], "format": "date-time"},
    },
}

PREVIEW: JSONSchema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["data"],
    "properties": {
        "data": {
            "type": "object",
            "additionalProperties": False,
            "required": ["automation", "entity", "at", "count", "summary", "records"],
            "properties": {
                "automation": _TEXT,
                "entity": _TEXT,
                "at": _WHEN,
                "count": {"type": "integer", "description": "How many records a run would touch."},
                "summary": {
                    "type": "string",
                    "examples": [
                        "37 account records: idle_nudge would act on them at 2026-06-02 06:00"
                    ],
                },
                "records": {
                    "type": "array",
                    "description": "The first 1,000 of them, each with why.",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["id", "title", "reason"],
                        "properties": {"id": _ID, "title": _TEXT, "reason": _TEXT},
                    },
                },
            },
        }
    },
}


def _unread(data: JSONSchema) -> JSONSchema:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["data", "unread"],
        "properties": {"data": data, "unread": {"type": "integer", "minimum": 0}},
    }


def job_paths(spec: APISpec, *, admin: bool) -> None:
    """``/notifications`` (every user, their own) and, for administrators,
    ``/automations/{name}/preview``."""
    spec.components.schema("Notification", NOTIFICATION)
    spec.tag({"name": "notifications", "description": "The caller's in-app notifications."})
    spec.path(
        path="/notifications",
        operations={
            "get": {
                "operationId": "list_notifications",
                "summary": "The caller's notifications, newest first, and the unread count",
                "tags": ["notifications"],
                "parameters": [
                    {
                        "name": "unread",
                        "in": "query",
                        "description": "true: only unread ones.",
                        "schema": {"type": "string", "enum": ["true", "false"]},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                    },
                    {
                        "name": "before",
                        "in": "query",
                        "description": "Older than this id.",
                        "schema": _ID,
                    },
                ],
                "responses": {
                    "200": response(
                        _unread({"type": "array", "items": ref("Notification")}),
                        "The notifications.",
                    ),
                    **error_responses(400, 401),
                },
            }
        },
    )
    spec.path(
        path="/notifications/{notification_id}/read",
        operations={
            "post": {
                "operationId": "read_notification",
                "summary": "Mark one of the caller's notifications read",
                "tags": ["notifications"],
                "parameters": [
                    {"name": "notification_id", "in": "path", "required": True, "schema": _ID}
                ],
                "responses": {
                    "200": response(
                        _unread(
                            {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["id", "read"],
                                "properties": {"id": _ID, "read": {"const": True}},
                            }
                        ),
                        "Marked read.",
                    ),
                    **error_responses(401, 404),
                },
            }
        },
    )
    spec.path(
        path="/notifications/read-all",
        operations={
            "post": {
                "operationId": "read_all_notifications",
                "summary": "Mark every notification of the caller read",
                "tags": ["notifications"],
                "responses": {
                    "200": response(
                        _unread(
                            {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["marked"],
                                "properties": {"marked": {"type": "integer", "minimum": 0}},
                            }
                        ),
                        "How many were marked.",
                    ),
                    **error_responses(401),
                },
            }
        },
    )
    if not admin:
        return
    spec.tag({"name": "automations", "description": "Scheduled automations (administrators)."})
    spec.path(
        path="/automations/{name}/preview",
        operations={
            "get": {
                "operationId": "preview_automation",
                "summary": "Dry run: the records a scheduled automation or reminder would "
                "touch, and why",
                "tags": ["automations"],
                "parameters": [
                    {
                        "name": "name",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
                    },
                    {
                        "name": "at",
                        "in": "query",
                        "description": "When the run would be: an ISO date or date-time "
                        "(default: now).",
                        "schema": {"type": "string"},
                    },
                ],
                "responses": {
                    "200": response(PREVIEW, "The records, and a summary."),
                    **error_responses(400, 401, 403, 404),
                },
            }
        },
    )
