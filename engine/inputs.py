"""An entity's input loader: the marshmallow schema that coerces a client's record, made
from each field's :class:`~engine.fieldtypes.StorageType` once per Model version."""

from __future__ import annotations

from functools import cache
from typing import Any

from marshmallow import RAISE, Schema, fields

from metamodel import Model

from . import _coerce
from .fieldtypes import storage, writable

#: Columns a client may set besides the entity's own fields.
OWNERSHIP = ("owner_id", "team_id")


@cache
def input_loader(model: Model, entity_name: str, dialect: str) -> Schema:
    """The loader of one entity's input on one database (``sqlite``, ``postgresql``),
    cached per Model version."""
    entity = model.entity(entity_name)
    declared: dict[str, fields.Field[Any]] = {
        name: storage(field).input_field(field, dialect)
        for name, field in entity.fields.items()
        if writable(field)
    }
    if entity.ownable:
        for name in OWNERSHIP:
            declared[name] = _coerce.owner()
    return Schema.from_dict(declared, name=f"{entity_name}_input")(unknown=RAISE)
