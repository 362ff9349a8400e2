"""The public pool (公海) endpoints of the REST API, for entities with a ``public_pool``.

- ``POST /api/v1/records/<entity>/<id>/claim`` (no body, or ``{}``) → ``{"data": record}``:
  a member takes a pooled record, within the pool's daily limit, cap and cooldown.
- ``POST /api/v1/records/<entity>/<id>/assign`` with ``{"owner_id": user}``: a pool admin
  gives a pooled record to a member.
- ``POST /api/v1/records/<entity>/<id>/return`` with ``{"pool": id, "note": text}`` (both
  optional): the record goes back to a pool (the owner's, when none is named).
- ``GET /api/v1/pools/<entity>`` → ``{"data": [standing…]}``: the caller's pools, with
  the claims left today, the records owned and the cap.

A refusal by the pool's rules is a 409 ``pool_refused`` whose ``details.reason`` says
which (docs/pools.md); the rest — authentication, 404 for a record out of sight, 403 —
is :mod:`heddle.api`'s.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, jsonify, request
from flask.typing import ResponseReturnValue

from engine import BadRequest

from . import api
from .extensions import csrf, runtime

pool_api = Blueprint("pool_api", __name__, url_prefix="/api/v1")
csrf.exempt(pool_api)
pool_api.before_request(api.authenticate)
pool_api.url_value_preprocessor(api.check_ids)

NOTE_MAX = 2000


def init_app(app: Flask) -> None:
    """The claim, assign and return operations, and the caller's pools."""
    app.register_blueprint(pool_api)


def _options(allowed: frozenset[str]) -> dict[str, Any]:
    """The JSON object sent, which may be absent; only ``allowed`` keys."""
    if not request.get_data(cache=True) and not request.is_json:
        return {}
    data = api._body()
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        raise BadRequest(
            f"unknown key{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}",
            {name: ["Unknown field."] for name in unknown},
        )
    return data


def _id(data: dict[str, Any], name: str, required: bool) -> int | None:
    value = data.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= api.MAX_ID:
        problem = "Missing data for required field." if value is None else "Not a valid id."
        raise BadRequest(f"{name} is the id of a {name.removesuffix('_id')}", {name: [problem]})
    return value


@pool_api.post("/records/<entity>/<int:record_id>/claim")
def claim(entity: str, record_id: int) -> ResponseReturnValue:
    """Claim the record from the pool it waits in."""
    _options(frozenset())
    return jsonify(data=runtime().records.claim(api.actor(), entity, record_id))


@pool_api.post("/records/<entity>/<int:record_id>/assign")
def assign(entity: str, record_id: int) -> ResponseReturnValue:
    """Give the pooled record to a member of its pool (pool admins)."""
    data = _options(frozenset({"owner_id"}))
    owner = _id(data, "owner_id", required=True)
    record = runtime().records.assign_from_pool(api.actor(), entity, record_id, owner)
    return jsonify(data=record)


@pool_api.post("/records/<entity>/<int:record_id>/return")
def give_back(entity: str, record_id: int) -> ResponseReturnValue:
    """Return the record to a pool."""
    data = _options(frozenset({"pool", "note"}))
    pool = _id(data, "pool", required=False)
    note = data.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > NOTE_MAX):
        raise BadRequest(
            "note is a text", {"note": [f"Not a text of at most {NOTE_MAX} characters."]}
        )
    record = runtime().records.return_to_pool(
        api.actor(), entity, record_id, pool=pool, note=note or None
    )
    return jsonify(data=record)


@pool_api.get("/pools/<entity>")
def standing(entity: str) -> ResponseReturnValue:
    """The caller's pools of ``entity``, with what they may still claim."""
    return jsonify(data=runtime().records.pool_standing(api.actor(), entity))
