"""The approval endpoints of the REST API: what waits for me, decide, recall, a record's
approvals with their history, and delegations.

- ``GET /api/v1/approvals?status=pending|decided|mine`` → ``{"data": [approval, …]}``;
- ``GET /api/v1/approvals/<id>`` → ``{"data": approval}`` with its history;
- ``POST /api/v1/approvals/<id>/approve``, ``/reject`` (a ``comment`` is required) and
  ``/recall`` with ``{"comment", "version"}`` → ``{"data": approval}``;
- ``GET /api/v1/records/<entity>/<id>/approvals`` → every approval of the record;
- ``GET|POST /api/v1/approvals/delegations``, ``DELETE /api/v1/approvals/delegations/<id>``.

Same authentication, errors and permissions as :mod:`heddle.api`; the work is done by
:class:`workflows.Approvals` and :class:`workflows.Delegations`.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, jsonify, request
from flask.typing import ResponseReturnValue

from engine import BadRequest, ValidationFailed
from workflows import Approvals, Delegations
from workflows.approvals import LISTS

from . import api
from .extensions import csrf, runtime

approval_api = Blueprint("approval_api", __name__, url_prefix="/api/v1")
csrf.exempt(approval_api)
approval_api.before_request(api.authenticate)

#: What a decision's body may hold.
DECISION = ("comment", "version")
MAX_LIMIT = 200


def init_app(app: Flask) -> None:
    """The approval endpoints under ``/api/v1/approvals``."""
    app.register_blueprint(approval_api)


approval_api.url_value_preprocessor(api.check_ids)


def _approvals() -> Approvals:
    return Approvals(runtime().records)


def _positive(name: str, value: str | None, top: int) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or not 0 < int(value) <= top:
        raise BadRequest(
            f"'{name}' must be a whole number from 1 to {top}", {name: ["Not a valid integer."]}
        )
    return int(value)


@approval_api.get("/approvals")
def listing() -> ResponseReturnValue:
    """``status=pending`` (default): what waits for me, or for those I stand in for;
    ``decided``: what I decided; ``mine``: what I submitted. Newest first."""
    status = request.args.get("status", "pending")
    if status not in LISTS:
        raise BadRequest(
            f"status is one of: {', '.join(LISTS)}",
            {"status": [f"Must be one of: {', '.join(LISTS)}."]},
        )
    limit = _positive("limit", request.args.get("limit"), MAX_LIMIT) or 50
    before = _positive("before", request.args.get("before"), api.MAX_ID)
    found = _approvals().listing(api.actor(), status, limit=limit, before=before)
    return jsonify(data=found, next_before=found[-1]["id"] if len(found) == limit else None)


@approval_api.get("/approvals/<int:approval_id>")
def one(approval_id: int) -> ResponseReturnValue:
    """One approval: its steps, who approves each, and its history."""
    return jsonify(data=_approvals().get(api.actor(), approval_id))


def _decision() -> tuple[Any, int | None]:
    """The comment and (optional) version sent with a decision."""
    data = api._body()
    unknown = {
        str(k): [f"Unknown field: send {' and '.join(DECISION)}."]
        for k in data
        if k not in DECISION
    }
    if unknown:
        raise ValidationFailed("the request holds fields a decision does not take", unknown)
    version = data.get("version")
    return data.get("comment"), None if version is None else api._version(version)


@approval_api.post("/approvals/<int:approval_id>/approve")
def approve(approval_id: int) -> ResponseReturnValue:
    comment, version = _decision()
    found = _approvals().approve(api.actor(), approval_id, comment=comment, version=version)
    return jsonify(data=found)


@approval_api.post("/approvals/<int:approval_id>/reject")
def reject(approval_id: int) -> ResponseReturnValue:
    comment, version = _decision()
    found = _approvals().reject(api.actor(), approval_id, comment=comment, version=version)
    return jsonify(data=found)


@approval_api.post("/approvals/<int:approval_id>/recall")
def recall(approval_id: int) -> ResponseReturnValue:
    comment, version = _decision()
    found = _approvals().recall(api.actor(), approval_id, comment=comment, version=version)
    return jsonify(data=found)


@approval_api.get("/records/<entity>/<int:record_id>/approvals")
def of_record(entity: str, record_id: int) -> ResponseReturnValue:
    """Every approval of the record, newest first, with its steps and history."""
    return jsonify(data=_approvals().for_record(api.actor(), entity, record_id))


@approval_api.get("/approvals/delegations")
def delegations() -> ResponseReturnValue:
    """The delegations I gave or received, current and to come (admins: ``?all=true``)."""
    everyone = request.args.get("all", "false")
    if everyone not in ("true", "false"):
        raise BadRequest("all is true or false", {"all": ["Not a valid boolean."]})
    found = Delegations(runtime().records).list(api.actor(), everyone=everyone == "true")
    return jsonify(data=found)


@approval_api.post("/approvals/delegations")
def delegate() -> ResponseReturnValue:
    """While I am away (``starts_on``…``ends_on``), ``delegate_id`` decides for me."""
    found = Delegations(runtime().records).set(api.actor(), api._body())
    return jsonify(data=found), 201


@approval_api.delete("/approvals/delegations/<int:delegation_id>")
def undelegate(delegation_id: int) -> ResponseReturnValue:
    Delegations(runtime().records).clear(api.actor(), delegation_id)
    return "", 204
