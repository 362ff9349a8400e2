"""The OpenAPI operations of record comments (:mod:`heddle.comments_api`)."""

from __future__ import annotations

from apispec import APISpec

from engine.comments import MAX_LENGTH
from metamodel import Entity

from ._openapi_paths import _data, _record_id, error_responses, response
from ._openapi_schemas import ref
from .fieldtypes import INT64_MAX

COMMENT_SCHEMA = {
    "type": "object",
    "required": ["id", "body", "author_id", "created_at"],
    "properties": {
        "id": {"type": "integer"},
        "body": {"type": "string", "maxLength": MAX_LENGTH},
        "author_id": {"type": ["integer", "null"]},
        "author": {"type": ["string", "null"], "description": "The author's name."},
        "created_at": {"type": "string", "format": "date-time"},
        "edited_at": {
            "type": ["string", "null"],
            "format": "date-time",
            "description": "When its author last changed its text; null if never.",
        },
        "entity": {"type": "string"},
        "record_id": {"type": "integer"},
        "mentioned": {
            "type": "array",
            "items": {"type": "string"},
            "description": "The users @named in it who were notified (when added or "
            "edited: those it names for the first time).",
        },
    },
}

COMMENT_ID = {
    "name": "comment_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 0, "maximum": INT64_MAX},
    "description": "The comment's id.",
}

COMMENT_INPUT = {
    "type": "object",
    "required": ["body"],
    "additionalProperties": False,
    "properties": {"body": {"type": "string", "minLength": 1, "maxLength": MAX_LENGTH}},
}

COMMENT_BODY = {"required": True, "content": {"application/json": {"schema": COMMENT_INPUT}}}


def comment_paths(spec: APISpec, entities: list[Entity]) -> None:
    """``/records/<entity>/{id}/comments`` of each entity the caller may read."""
    spec.components.schema("Comment", COMMENT_SCHEMA)
    for entity in entities:
        name, label = entity.name, entity.label.get("en")
        operations = {
            "get": {
                "operationId": f"comments_{name}",
                "summary": f"Comments on a {label}",
                "description": "Newest first; whoever may read the record may read them.",
                "tags": [name],
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 200},
                        "description": "How many (default 50).",
                    }
                ],
                "responses": {
                    "200": response(
                        _data({"type": "array", "items": ref("Comment")}), "The comments."
                    ),
                    **error_responses(400, 401, 404),
                },
            },
            "post": {
                "operationId": f"comment_{name}",
                "summary": f"Comment on a {label}",
                "description": "Whoever may read the record may comment on it; each "
                "@username in it who may read the record is notified.",
                "tags": [name],
                "requestBody": COMMENT_BODY,
                "responses": {
                    "201": response(_data(ref("Comment")), "The comment added."),
                    **error_responses(400, 401, 404, 422),
                },
            },
        }
        spec.path(
            path=f"/records/{name}/{{id}}/comments",
            operations=operations,
            parameters=[_record_id(label)],
        )
        one = {
            "patch": {
                "operationId": f"edit_comment_{name}",
                "summary": f"Edit a comment on a {label}",
                "description": "Only its author may change its text; it then has "
                "`edited_at`. Users it @names for the first time are notified.",
                "tags": [name],
                "requestBody": COMMENT_BODY,
                "responses": {
                    "200": response(_data(ref("Comment")), "The comment as it is now."),
                    **error_responses(400, 401, 403, 404, 422),
                },
            },
            "delete": {
                "operationId": f"delete_comment_{name}",
                "summary": f"Delete a comment on a {label}",
                "description": "Its author may delete it, and an admin anyone's.",
                "tags": [name],
                "responses": {
                    "204": {"description": "Deleted."},
                    **error_responses(401, 403, 404),
                },
            },
        }
        spec.path(
            path=f"/records/{name}/{{id}}/comments/{{comment_id}}",
            operations=one,
            parameters=[_record_id(label), COMMENT_ID],
        )
