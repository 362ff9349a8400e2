"""A field type from outside Heddle: ``rating``, 1 to ``stars`` stars stored as an integer.

This is what a company's plugin looks like (docs/architecture.md, "Adding a field
type"): one object per layer, registered in each layer's registry, and nothing changed
in Heddle. ``HEDDLE_PLUGINS=heddle_rating`` imports it before the definitions load.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from heddle.fieldtypes import JSON_TYPES, JSONType
from marshmallow import ValidationError, fields, validate

from engine.fieldtypes import STORAGE_TYPES, StorageType
from metamodel import FIELD_TYPES, Field, FieldContext, FieldType

NAME = "rating"


def _check(ctx: FieldContext) -> Mapping[str, Any] | None:
    """The language side: a constant default must be a number of stars the field has."""
    stars = ctx.spec.get("stars", 5)
    default = ctx.spec.get("default")
    if isinstance(default, int) and not 1 <= default <= stars:
        ctx.error(("default",), f"default {default} is not 1 to {stars} stars")
    return None


class _Stars(fields.Integer):
    """A whole number of stars; true/false and 4.5 are not stars."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValidationError("Give a whole number of stars.")
        number: int = super()._deserialize(value, attr, data, **kwargs)
        return number


def _input(field: Field) -> fields.Field[Any]:
    stars = int(field.settings.get("stars", 5))
    return _Stars(
        strict=True,
        allow_none=True,
        validate=validate.Range(1, stars, error=f"Give 1 to {stars} stars."),
    )


def _json(field: Field) -> dict[str, Any]:
    return {"type": "integer", "minimum": 1, "maximum": int(field.settings.get("stars", 5))}


def register() -> None:
    FIELD_TYPES.register(
        FieldType(
            NAME,
            "integer",
            options=frozenset({"required", "default", "index", "stars"}),
            extra_options={"stars": {"type": "integer", "minimum": 2, "maximum": 10}},
            defaults={"stars": 5},
            category="number",
            check=_check,
            description="1 to 5 stars (or as many as 'stars' says).",
        )
    )
    STORAGE_TYPES.register(
        StorageType(
            NAME,
            column=lambda field, model: sa.SmallInteger(),
            input=_input,
            kind="number",
            operators=("eq", "ne", "lt", "lte", "gt", "gte", "in", "isnull"),
        )
    )
    JSON_TYPES.register(JSONType(NAME, output=_json, input=_json))


def unregister() -> None:
    for registry in (FIELD_TYPES, STORAGE_TYPES, JSON_TYPES):
        registry.unregister(NAME)


register()
