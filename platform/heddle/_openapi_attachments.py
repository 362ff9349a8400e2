"""The attachment paths of the OpenAPI document (:mod:`heddle.attachment_api`), per
entity, as far as the caller's actions go: list and download with read, upload and
delete with update, upload for a new record's file field with create."""

from __future__ import annotations

from typing import Any

from apispec import APISpec

from engine.attachments import COLUMNS
from metamodel import Entity

from ._openapi_paths import error_responses, response
from ._openapi_schemas import JSONSchema
from .fieldtypes import INT64_MAX

ID: JSONSchema = {"type": "integer", "minimum": 0, "maximum": INT64_MAX}

ATTACHMENT: JSONSchema = {
    "type": "object",
    "required": list(COLUMNS),
    "properties": {
        "id": {"type": "integer"},
        "entity": {"type": "string"},
        "record_id": {
            "type": ["integer", "null"],
            "description": "null: uploaded for a record not created yet (staged).",
        },
        "field": {
            "type": ["string", "null"],
            "description": "The file field it was uploaded for; null: the record's own.",
        },
        "filename": {"type": "string", "description": "The name, made safe (no folders)."},
        "content_type": {"type": "string", "description": "Sniffed from the bytes."},
        "size": {"type": "integer", "description": "Bytes."},
        "sha256": {"type": "string"},
        "uploaded_by": {"type": ["integer", "null"]},
        "uploaded_at": {"type": "string", "format": "date-time"},
        "uploader": {"type": "string", "description": "The uploader's name (lists only)."},
        "links": {
            "type": "object",
            "properties": {"file": {"type": "string", "description": "Download it here."}},
        },
    },
}

UPLOAD: JSONSchema = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {"type": "string", "contentMediaType": "application/octet-stream"},
        "field": {
            "type": "string",
            "description": "The file field the file is for; put the id returned in it.",
        },
    },
}


def _one(description: str) -> JSONSchema:
    return response(
        {"type": "object", "required": ["data"], "properties": {"data": ATTACHMENT}}, description
    )


def _upload(entity: Entity, summary: str, description: str, op: str) -> dict[str, Any]:
    return {
        "operationId": op,
        "summary": summary,
        "description": description,
        "tags": [entity.name],
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": UPLOAD}}},
        "responses": {
            "201": _one("The attachment kept."),
            **error_responses(400, 401, 403, 404, 413, 422),
        },
    }


def attachment_paths(spec: APISpec, entity: Entity, actions: frozenset[str]) -> None:
    """The attachment operations on ``entity``'s records the caller may use."""
    if "read" not in actions:
        return
    label = entity.label.get("en")
    record = {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": ID,
        "description": f"The {label}.",
    }
    limit = "At most HEDDLE_ATTACHMENT_MAX_BYTES (a file field's max_size may lower it): 413."
    listing: dict[str, Any] = {
        "get": {
            "operationId": f"list_{entity.name}_attachments",
            "summary": f"The files attached to a {label}",
            "description": "Newest first, with the uploader's name; needs the record's read "
            "permission.",
            "tags": [entity.name],
            "responses": {
                "200": response(
                    {
                        "type": "object",
                        "required": ["data"],
                        "properties": {"data": {"type": "array", "items": ATTACHMENT}},
                    },
                    "The attachments.",
                ),
                **error_responses(401, 403, 404),
            },
        }
    }
    if "update" in actions:
        listing["post"] = _upload(
            entity,
            f"Attach a file to a {label}",
            "multipart/form-data with file (and field, for a file field); needs the record's "
            f"update permission. The content type is sniffed from the bytes. {limit}",
            f"add_{entity.name}_attachment",
        )
    spec.path(
        path=f"/records/{entity.name}/{{id}}/attachments", operations=listing, parameters=[record]
    )
    if "create" in actions:
        spec.path(
            path=f"/records/{entity.name}/attachments",
            operations={
                "post": _upload(
                    entity,
                    f"Upload a file for a new {label}'s file field",
                    "Send the id returned in the field when you create the record; until "
                    f"then only you may use it. field is required. {limit}",
                    f"stage_{entity.name}_attachment",
                )
            },
        )
    one: dict[str, Any] = {
        "get": {
            "operationId": f"download_{entity.name}_attachment",
            "summary": "Download an attached file",
            "description": "Always a download (Content-Disposition: attachment, with the "
            "name in filename*), X-Content-Type-Options: nosniff; HTML and SVG are sent as "
            "application/octet-stream.",
            "tags": [entity.name],
            "responses": {
                "200": {
                    "description": "The file.",
                    "content": {"application/octet-stream": {"schema": {}}},
                },
                **error_responses(401, 403, 404),
            },
        }
    }
    if "update" in actions:
        one["delete"] = {
            "operationId": f"delete_{entity.name}_attachment",
            "summary": "Remove an attached file",
            "description": "Archives it; needs the record's update permission. A file a "
            "field of the record holds is a 409: change the field first.",
            "tags": [entity.name],
            "responses": {
                "204": {"description": "Removed."},
                **error_responses(401, 403, 404, 409),
            },
        }
    attachment = {"name": "attachment_id", "in": "path", "required": True, "schema": ID}
    spec.path(
        path=f"/records/{entity.name}/{{id}}/attachments/{{attachment_id}}",
        operations=one,
        parameters=[record, attachment],
    )
