"""One error hierarchy for everything the engine refuses.

Each error carries an HTTP-like ``status`` and a stable ``code`` so the platform renders
every refusal the same way (``{"error": {"code", "message", "fields"}}``) without knowing
the engine's internals. Field errors have marshmallow's shape: ``{field: [messages]}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class EngineError(Exception):
    """Base of every refusal: bad input, a missing record, a conflict."""

    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        fields: Mapping[str, Sequence[str]] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.fields = {name: list(messages) for name, messages in (fields or {}).items()}
        self.details = dict(details or {})

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields:
            body["fields"] = self.fields
        if self.details:
            body["details"] = self.details
        return {"error": body}


class BadRequest(EngineError):
    """A malformed query: unknown field, operator, sort or cursor."""


class ValidationFailed(EngineError):
    """Input that breaks a field's rules or an entity's validations."""

    status = 422
    code = "validation_failed"


class NotFound(EngineError):
    status = 404
    code = "not_found"


class Forbidden(EngineError):
    status = 403
    code = "forbidden"


class Conflict(EngineError):
    """A stale version, or a change another record's rules do not allow."""

    status = 409
    code = "conflict"


class StaleVersion(Conflict):
    code = "stale_version"


class DuplicateFound(Conflict):
    """A write that a duplicate rule refuses: ``block``, or ``warn`` not confirmed.

    ``details`` holds ``rule``, ``action`` and ``candidates`` (each ``id``, ``entity``,
    ``title``, ``owner`` and ``pool``), readable without the record's row permissions.
    """

    code = "duplicate"


class Restricted(Conflict):
    """A delete refused because other records refer to this one (``on_delete: restrict``)."""

    code = "restricted"


class PoolRefused(Conflict):
    """A claim, assignment or return that a public pool's rules refuse. ``details`` holds
    ``reason`` — ``not_pooled``, ``pooled``, ``inactive``, ``cooldown`` (with
    ``available_at``), ``daily_limit`` (``claimed_today``, ``daily_claim_limit``), ``cap``
    (``owned``, ``max_owned``) or ``no_pool`` — and the ``pool`` (``{"id", "name"}``)."""

    code = "pool_refused"


class MigrationRefused(EngineError):
    """A migration that would lose or break data, or needs ``--allow-destructive``."""

    status = 409
    code = "migration_refused"
