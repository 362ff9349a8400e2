"""The workflow endpoints of the REST API: fire a transition, list the transitions the
caller may fire now, read a record's transition history.

- ``POST /api/v1/records/<entity>/<id>/transitions/<name>`` with ``{"version", "comment",
  …the fields the transition takes}`` → ``{"data": record}``; a stale version is a 409;
- ``GET /api/v1/records/<entity>/<id>/transitions`` → ``{"data": [transition, …]}``;
- ``GET /api/v1/records/<entity>/<id>/transitions/history`` → ``{"data": [entry, …]}``.

Same authentication, errors and permissions as :mod:`heddle.api`; the work is done by
:class:`workflows.StateMachines`.
"""

from __future__ import annotations

from flask import Blueprint, Flask, jsonify
from flask.typing import ResponseReturnValue

from workflows import StateMachines

from . import api
from .extensions import csrf, runtime

workflow_api = Blueprint("workflow_api", __name__, url_prefix="/api/v1")
csrf.exempt(workflow_api)
workflow_api.before_request(api.authenticate)
workflow_api.url_value_preprocessor(api.check_ids)


def init_app(app: Flask) -> None:
    """The workflow endpoints under ``/api/v1/records/<entity>/<id>/transitions``."""
    app.register_blueprint(workflow_api)


def _machines() -> StateMachines:
    return StateMachines(runtime().records)


@workflow_api.post("/records/<entity>/<int:record_id>/transitions/<name>")
def fire(entity: str, record_id: int, name: str) -> ResponseReturnValue:
    """Fire a transition on the record the client read at ``version``."""
    data = api._body()
    version = api._version(data.pop("version", None))
    comment = data.pop("comment", None)
    record = _machines().fire(
        api.actor(), entity, record_id, name, version=version, comment=comment, values=data
    )
    return jsonify(data=record)


@workflow_api.get("/records/<entity>/<int:record_id>/transitions")
def available(entity: str, record_id: int) -> ResponseReturnValue:
    """The transitions the caller may fire on the record now (roles and guards checked)."""
    return jsonify(data=_machines().available(api.actor(), entity, record_id))


@workflow_api.get("/records/<entity>/<int:record_id>/transitions/history")
def history(entity: str, record_id: int) -> ResponseReturnValue:
    """Every transition fired on the record: who, when, from, to, comment."""
    return jsonify(data=_machines().history(api.actor(), entity, record_id))
