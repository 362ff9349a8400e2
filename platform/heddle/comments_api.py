"""Comments on records in the REST API (:class:`engine.comments.Comments`).

- ``GET /api/v1/records/<entity>/<id>/comments`` (``?limit=``, 1–200, default 50) →
  ``{"data": [comment, …]}``, newest first;
- ``POST /api/v1/records/<entity>/<id>/comments`` ``{"body": "…"}`` → ``201``
  ``{"data": comment}``; an empty or too long body is a 422 with ``fields.body``. Each
  ``@username`` who may read the record is notified (``mentioned`` lists them);
- ``PATCH /api/v1/records/<entity>/<id>/comments/<comment_id>`` ``{"body": "…"}`` →
  ``{"data": comment}`` with ``edited_at``: its author changes its text (anyone else: a
  403); only the users it newly mentions are notified;
- ``DELETE /api/v1/records/<entity>/<id>/comments/<comment_id>`` → ``204``: its author,
  or an admin.

Whoever may read the record may read and add its comments; a record out of sight is a
404, as for ``GET /records/<entity>/<id>``. They are routes of
:mod:`heddle.api`'s blueprint: the same authentication and errors (a browser session's
POST needs ``X-CSRFToken``); :mod:`heddle.app` imports this module before registering it.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from flask.typing import ResponseReturnValue

from engine import BadRequest
from engine.comments import Comments
from workflows import mention

from . import api
from .extensions import runtime

MAX_LIMIT = 200


@api.api.get("/records/<entity>/<int:record_id>/comments")
def comments(entity: str, record_id: int) -> ResponseReturnValue:
    """The record's comments, newest first."""
    text = request.args.get("limit", "50")
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise BadRequest(
            f"limit must be a whole number from 1 to {MAX_LIMIT}",
            {"limit": [f"A number from 1 to {MAX_LIMIT}."]},
        )
    found = Comments(runtime().records).list(api.actor(), entity, record_id, limit=int(text))
    return jsonify(data=found)


@api.api.post("/records/<entity>/<int:record_id>/comments")
def add_comment(entity: str, record_id: int) -> ResponseReturnValue:
    """Add a comment to the record."""
    data = _comment_body()
    records = runtime().records
    with records.transaction() as conn:
        made = Comments(records).add(api.actor(), entity, record_id, data.get("body"), conn=conn)
        made["mentioned"] = mention(conn, records, api.actor(), entity, record_id, made["body"])
    return jsonify(data=made), 201


@api.api.patch("/records/<entity>/<int:record_id>/comments/<int:comment_id>")
def edit_comment(entity: str, record_id: int, comment_id: int) -> ResponseReturnValue:
    """Change the text of one's own comment on the record."""
    data = _comment_body()
    records = runtime().records
    with records.transaction() as conn:
        edited, before = Comments(records).edit(
            api.actor(), entity, record_id, comment_id, data.get("body"), conn=conn
        )
        edited["mentioned"] = mention(
            conn, records, api.actor(), entity, record_id, edited["body"], already=before
        )
    return jsonify(data=edited)


@api.api.delete("/records/<entity>/<int:record_id>/comments/<int:comment_id>")
def delete_comment(entity: str, record_id: int, comment_id: int) -> ResponseReturnValue:
    """Delete a comment of the record (one's own; an admin, anyone's)."""
    Comments(runtime().records).delete(api.actor(), entity, record_id, comment_id)
    return "", 204


def _comment_body() -> dict[str, Any]:
    """The request's JSON object, which has only a ``body``."""
    data = api._body()
    unknown = sorted(set(data) - {"body"})
    if unknown:
        raise BadRequest(
            f"unknown field '{unknown[0]}': a comment has only a body",
            {name: ["Unknown field."] for name in unknown},
        )
    return data
