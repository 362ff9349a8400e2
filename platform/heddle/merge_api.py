"""The merge endpoint of the REST API: fold one record into another.

- ``POST /api/v1/records/<entity>/<id>/merge`` with ``{"loser": id, "version",
  "loser_version", "fields": {field: "survivor" | "loser" | {"value": …}},
  "confirm_duplicates": [rule…]}`` → ``{"data": survivor}``.

The record in the URL survives; every reference to the loser moves to it, the loser is
archived and deleted (see :meth:`engine.Records.merge`). The caller must be allowed to
update the survivor and delete the loser. Same authentication, errors and permissions as
:mod:`heddle.api`.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, jsonify
from flask.typing import ResponseReturnValue

from engine import BadRequest

from . import api
from .extensions import csrf, runtime

merge_api = Blueprint("merge_api", __name__, url_prefix="/api/v1")
csrf.exempt(merge_api)
merge_api.before_request(api.authenticate)
merge_api.url_value_preprocessor(api.check_ids)

BODY = frozenset({"loser", "version", "loser_version", "fields", "confirm_duplicates"})


def init_app(app: Flask) -> None:
    """``POST /api/v1/records/<entity>/<id>/merge``."""
    app.register_blueprint(merge_api)


def _loser(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= api.MAX_ID:
        problem = "Missing data for required field." if value is None else "Not a valid id."
        raise BadRequest("send the id of the record to merge as loser", {"loser": [problem]})
    return value


@merge_api.post("/records/<entity>/<int:record_id>/merge")
def merge(entity: str, record_id: int) -> ResponseReturnValue:
    """Merge the record ``loser`` into this one, which survives."""
    data = api._body()
    unknown = sorted(str(k) for k in data if k not in BODY)
    if unknown:
        raise BadRequest(
            f"unknown key{'s' if len(unknown) > 1 else ''} in the merge: {', '.join(unknown)}",
            {name: ["Unknown field."] for name in unknown},
        )
    loser = _loser(data.get("loser"))
    version = api._version(data.get("version"))
    loser_version = api._version(data.get("loser_version"), "loser_version")
    record = runtime().records.merge(
        api.actor(),
        entity,
        record_id,
        loser,
        fields=data.get("fields") or {},
        version=version,
        loser_version=loser_version,
        confirm_duplicates=data.get("confirm_duplicates"),
    )
    return jsonify(data=record)
