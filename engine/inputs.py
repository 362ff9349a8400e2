"""An entity's input loader: the marshmallow fields that coerce a client's record, made
from each field's :class:`~engine.fieldtypes.StorageType` once per Model version.

:func:`input_schema` is the entity's marshmallow schema. :func:`input_loader` is the
loader the record service uses: the same fields and the same results as the schema's
``load`` — values, messages, ``valid_data`` — but compiled once per set of keys a record
gives, so a record runs only the fields it has. The schema walks every field of the
entity for every record (an import of accounts gives six of twenty-nine), which was a
quarter of an import's time (docs/performance.md, "Import").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, missing

from metamodel import Model

from . import _coerce
from ._coerce import SLOW
from .fieldtypes import storage, writable

#: Columns a client may set besides the entity's own fields.
OWNERSHIP = ("owner_id", "team_id")


@cache
def input_schema(model: Model, entity_name: str, dialect: str) -> Schema:
    """The marshmallow schema of one entity's input on one database (``sqlite``,
    ``postgresql``), cached per Model version: a plain schema, field by field, without
    hooks, keys or attributes of its own (what :class:`InputLoader` relies on)."""
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


@cache
def input_loader(model: Model, entity_name: str, dialect: str) -> InputLoader:
    """The loader of one entity's input on one database, cached per Model version."""
    return InputLoader(input_schema(model, entity_name, dialect))


@dataclass(frozen=True, slots=True)
class _Plan:
    """What loading a record with a given set of keys runs."""

    # the fields it has, in schema order, each with its shortcut (_coerce.quick_loader)
    given: tuple[tuple[str, fields.Field[Any], Callable[[Any], Any] | None], ...]
    absent: tuple[tuple[str, fields.Field[Any]], ...]  # missing ones that say something
    unknown: tuple[str, ...]  # its keys no field takes


class InputLoader:
    """A schema's ``load`` for one record, compiled per set of keys.

    What :meth:`marshmallow.Schema.load` does for a plain schema (one made by
    :func:`input_schema`), in the same order: each field the record has deserializes its
    value (text its field's checks pass takes a shortcut, ``_coerce.quick_loader``); a
    field it lacks is skipped unless it is required or has a ``load_default`` (and
    ``partial`` skips those too); each key no field takes is refused as unknown. The
    errors are the schema's (``{field: messages}``, raised as
    :class:`marshmallow.ValidationError` with ``valid_data``), so are the values.

    >>> loader = input_loader(model, "account", "postgresql")
    >>> loader.load({"name": "Acme", "annual_revenue": "1250.50"}, partial=False)
    {'name': 'Acme', 'annual_revenue': Decimal('1250.50')}
    """

    #: Plans kept per loader; a client varies its keys, an import has one set per file.
    PLANS = 512

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self._fields = tuple(schema.load_fields.items())
        self._quick = {name: _coerce.quick_loader(field) for name, field in self._fields}
        self._unknown_message = schema.error_messages["unknown"]
        self._plans: dict[tuple[tuple[str, ...], bool], _Plan] = {}

    def load(self, data: Mapping[str, Any], *, partial: bool) -> dict[str, Any]:
        """The coerced values of ``data``; :class:`marshmallow.ValidationError` with the
        messages by field, and the values that were valid, when some are not."""
        if not isinstance(data, Mapping):
            return dict(self.schema.load(data, partial=partial))  # the schema's own error
        plan = self._plan(tuple(data), partial)
        values: dict[str, Any] = {}
        errors: dict[str, Any] = {}
        for name, field, quick in plan.given:
            if quick is not None and (value := quick(data[name])) is not SLOW:
                values[name] = value
                continue
            try:
                values[name] = field.deserialize(data[name], name, data, partial=partial)
            except ValidationError as exc:
                errors[name] = exc.messages
                if exc.valid_data:  # a list with some good items keeps them, as marshmallow
                    values[name] = exc.valid_data
        for name, field in plan.absent:
            try:
                value = field.deserialize(missing, name, data, partial=partial)
            except ValidationError as exc:
                errors[name] = exc.messages
                continue
            if value is not missing:
                values[name] = value
        for name in plan.unknown:
            errors[name] = [self._unknown_message]
        if errors:
            raise ValidationError(errors, data=data, valid_data=values)
        return values

    def _plan(self, keys: tuple[str, ...], partial: bool) -> _Plan:
        found = self._plans.get((keys, partial))
        if found is not None:
            return found
        given = set(keys)
        names = {name for name, _ in self._fields}
        plan = _Plan(
            tuple((n, f, self._quick[n]) for n, f in self._fields if n in given),
            ()
            if partial
            else tuple(
                (n, f)
                for n, f in self._fields
                if n not in given and (f.required or f.load_default is not missing)
            ),
            tuple(k for k in dict.fromkeys(keys) if k not in names),
        )
        if len(self._plans) >= self.PLANS:
            self._plans.clear()
        self._plans[(keys, partial)] = plan
        return plan
