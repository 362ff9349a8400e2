"""The OpenAPI of public pools: claim, assign and return a record
(``POST /records/<entity>/{id}/claim|assign|return``) and the caller's pools
(``GET /pools/<entity>``), for entities with a ``public_pool`` the caller may read."""

from __future__ import annotations

from typing import Any

from apispec import APISpec

from metamodel import Entity

from ._openapi_paths import error_responses, response
from ._openapi_schemas import JSONSchema, ref
from .fieldtypes import INT64_MAX

_ID: JSONSchema = {"type": "integer", "minimum": 1, "maximum": INT64_MAX}
_POOL: JSONSchema = {
    "type": "object",
    "required": ["id", "name"],
    "properties": {"id": {"type": "integer"}, "name": {"type": "string"}},
}
_COUNT: JSONSchema = {"type": ["integer", "null"]}
STANDING: JSONSchema = {
    "type": "object",
    "description": "One pool of the caller's: what they may still claim from it today.",
    "required": ["pool", "active", "admin", "member", "claimed_today", "owned"],
    "properties": {
        "pool": _POOL,
        "active": {"type": "boolean"},
        "admin": {"type": "boolean", "description": "The caller administers the pool."},
        "member": {"type": "boolean"},
        "claimed_today": {"type": "integer", "minimum": 0},
        "daily_claim_limit": _COUNT,
        "claims_left_today": _COUNT,
        "owned": {"type": "integer", "minimum": 0, "description": "Records the caller owns."},
        "max_owned": _COUNT,
        "reclaim_cooldown_days": _COUNT,
        "hidden_fields": {"type": "array", "items": {"type": "string"}},
    },
}
REFUSAL = (
    "A 409 whose code is pool_refused when the pool's rules refuse; error.details.reason "
    "says which: not_pooled, pooled, inactive, cooldown (available_at), daily_limit "
    "(claimed_today, daily_claim_limit), cap (owned, max_owned) or no_pool."
)


def pool_paths(spec: APISpec, entity: Entity, base: str, actions: frozenset[str]) -> None:
    """The pool operations of ``entity`` for a caller with ``actions`` on it."""
    if entity.public_pool is None or "read" not in actions:
        return
    label = entity.label.get("en")
    record = response(
        {
            "type": "object",
            "required": ["data"],
            "additionalProperties": False,
            "properties": {"data": ref(base)},
        },
        f"The {label}, as it is now.",
    )
    errors = error_responses(400, 401, 403, 404, 409, 415, 422)
    record_id = {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 0, "maximum": INT64_MAX},
    }
    operations: dict[str, tuple[str, str, JSONSchema | None]] = {
        "claim": (
            f"Claim a {label} from its public pool",
            "For a member (or admin) of the pool the record waits in, within the pool's "
            "daily limit, owned-records cap and the previous owner's cooldown. The records "
            f"it carries follow the new owner. {REFUSAL}",
            None,
        ),
        "assign": (
            f"Assign a pooled {label} to a member of its pool",
            f"For the pool's admins; the cap on owned records holds. {REFUSAL}",
            {
                "type": "object",
                "required": ["owner_id"],
                "additionalProperties": False,
                "properties": {"owner_id": {**_ID, "description": "The new owner."}},
            },
        ),
        "return": (
            f"Return a {label} to a public pool",
            "For whoever may update the record: the owner is cleared and kept as the "
            "previous owner. Without pool, the first active pool its owner belongs to "
            f"(then the caller's). {REFUSAL}",
            {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "pool": {**_ID, "description": "The pool to return it to."},
                    "note": {"type": "string", "maxLength": 2000, "description": "Why."},
                },
            },
        ),
    }
    for verb, (summary, description, body) in operations.items():
        operation: dict[str, Any] = {
            "operationId": f"{verb}_{entity.name}_pool",
            "summary": summary,
            "description": description,
            "tags": [entity.name],
            "responses": {"200": record, **errors},
        }
        if body is not None:
            required = bool(body.get("required"))
            operation["requestBody"] = {
                "required": required,
                "content": {"application/json": {"schema": body}},
            }
        spec.path(
            path=f"/records/{entity.name}/{{id}}/{verb}",
            operations={"post": operation},
            parameters=[record_id],
        )
    spec.path(
        path=f"/pools/{entity.name}",
        operations={
            "get": {
                "operationId": f"pools_of_{entity.name}",
                "summary": f"Your public pools of {entity.plural_label.get('en').lower()}",
                "tags": [entity.name],
                "responses": {
                    "200": response(
                        {
                            "type": "object",
                            "required": ["data"],
                            "additionalProperties": False,
                            "properties": {"data": {"type": "array", "items": STANDING}},
                        },
                        "The pools you belong to or administer.",
                    ),
                    **error_responses(401, 403, 404),
                },
            }
        },
    )
