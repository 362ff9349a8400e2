"""Attachments over the REST API (docs/api.md#attachments):

- ``GET /api/v1/records/<entity>/<id>/attachments`` → ``{"data": [attachment, …]}``
  (the record's read permission);
- ``POST /api/v1/records/<entity>/<id>/attachments`` — ``multipart/form-data`` with
  ``file`` and, for a ``file`` field, ``field`` → ``201 {"data": attachment}`` (the
  record's update permission); put its ``id`` in the field with a ``PATCH``;
- ``POST /api/v1/records/<entity>/attachments`` — the same for a record not created yet
  (the entity's create permission): send the id in the new record's field;
- ``GET /api/v1/records/<entity>/<id>/attachments/<attachment_id>`` — the file, always
  as a download (``Content-Disposition: attachment`` with the RFC 5987 ``filename*``,
  ``X-Content-Type-Options: nosniff``, a sandboxing Content-Security-Policy; HTML and
  SVG sent as ``application/octet-stream``);
- ``DELETE /api/v1/records/<entity>/<id>/attachments/<attachment_id>`` → ``204``.

Too large a file is a 413, a record out of sight a 404, no permission a 403.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from flask import Blueprint, Flask, Response, current_app, jsonify, request, send_file
from flask.typing import ResponseReturnValue

from engine import BadRequest
from engine.attachments import TooLarge, ascii_filename, served_type

from . import api
from .extensions import csrf, runtime

attachment_api = Blueprint("attachment_api", __name__, url_prefix="/api/v1")
csrf.exempt(attachment_api)
attachment_api.before_request(api.authenticate)
attachment_api.url_value_preprocessor(api.check_ids)

#: room for the multipart form around the file
FORM_ROOM = 64 * 1024


def init_app(app: Flask) -> None:
    """Attachments under ``/api/v1/records/<entity>/<id>/attachments``."""
    app.register_blueprint(attachment_api)


def max_bytes() -> int:
    return int(current_app.config.get("ATTACHMENT_MAX_BYTES") or 10 * 1024 * 1024)


def allow_uploads() -> None:
    """An upload may be as large as HEDDLE_ATTACHMENT_MAX_BYTES, whatever the app's body
    limit is (a ``before_request`` of every blueprint that takes files)."""
    if request.method == "POST":
        request.max_content_length = max_bytes() + FORM_ROOM


attachment_api.before_request(allow_uploads)


def shown(row: dict[str, Any], entity: str) -> dict[str, Any]:
    """An attachment as the API returns it, with the link to its file."""
    body = {k: v for k, v in row.items() if k != "sha256"} | {"sha256": row["sha256"]}
    if row.get("record_id") is not None:
        body["links"] = {
            "file": f"/api/v1/records/{entity}/{row['record_id']}/attachments/{row['id']}"
        }
    return body


def upload() -> tuple[str, bytes, str | None]:
    """The file name, bytes and field of a multipart upload."""
    if not request.mimetype.startswith("multipart/form-data"):
        raise BadRequest(
            "send the file as multipart/form-data, in the field file",
            {"file": ["Missing data for required field."]},
        )
    found = request.files.get("file")
    if found is None:
        raise BadRequest(
            "no file sent: put it in the field file", {"file": ["Missing data for required field."]}
        )
    data = found.read(max_bytes() + 1)
    if len(data) > max_bytes():
        limit = runtime().attachments.max_bytes
        raise TooLarge(
            f"the file is larger than {limit:,} bytes, the most that may be attached",
            {"file": [f"Larger than {limit:,} bytes."]},
        )
    field = request.form.get("field") or None
    return found.filename or "file", data, field


@attachment_api.get("/records/<entity>/<int:record_id>/attachments")
def list_attachments(entity: str, record_id: int) -> ResponseReturnValue:
    rows = runtime().attachments.list(api.actor(), entity, record_id)
    return jsonify(data=[shown(row, entity) for row in rows])


@attachment_api.post("/records/<entity>/<int:record_id>/attachments")
def add_attachment(entity: str, record_id: int) -> ResponseReturnValue:
    filename, data, field = upload()
    row = runtime().attachments.add(api.actor(), entity, record_id, filename, data, field=field)
    return jsonify(data=shown(row, entity)), 201


@attachment_api.post("/records/<entity>/attachments")
def stage_attachment(entity: str) -> ResponseReturnValue:
    """A file for a field of a record the caller is about to create."""
    filename, data, field = upload()
    if field is None:
        raise BadRequest(
            "name the file field the file is for: a new record's files go in its fields",
            {"field": ["Missing data for required field."]},
        )
    row = runtime().attachments.add(api.actor(), entity, None, filename, data, field=field)
    return jsonify(data=shown(row, entity)), 201


@attachment_api.get("/records/<entity>/<int:record_id>/attachments/<int:attachment_id>")
def download(entity: str, record_id: int, attachment_id: int) -> ResponseReturnValue:
    row, path = runtime().attachments.get(api.actor(), entity, record_id, attachment_id)
    return file_response(row, str(path))


def file_response(row: dict[str, Any], path: str) -> Response:
    """An attachment's bytes as a download, never shown inline (the screens use it too)."""
    response = send_file(
        path,
        mimetype=served_type(str(row["content_type"])),
        conditional=True,
        etag=str(row["sha256"]),
        max_age=0,
    )
    name = str(row["filename"])
    response.headers["Content-Disposition"] = (
        f"attachment; filename=\"{ascii_filename(name)}\"; filename*=UTF-8''{quote(name, safe='')}"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Cache-Control"] = "private, no-cache"
    return response


@attachment_api.delete("/records/<entity>/<int:record_id>/attachments/<int:attachment_id>")
def delete_attachment(entity: str, record_id: int, attachment_id: int) -> ResponseReturnValue:
    runtime().attachments.remove(api.actor(), entity, record_id, attachment_id)
    return "", 204
