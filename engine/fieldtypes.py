"""Field types as the engine knows them: how each is stored, read from input and filtered.

One :class:`StorageType` per type name of :data:`metamodel.FIELD_TYPES`, in
:data:`STORAGE_TYPES`: the column that stores a value (none for formulas and children),
the marshmallow field that coerces and checks what a client sends (none for what the
platform computes), the *filter kind* that decides the list API's operators and how a
value written in a URL is read, and the operators themselves when a type allows fewer or
others than its kind. Built-in types register through :meth:`Registry.register` like a
plugin's (docs/architecture.md, "Adding a field type")::

    STORAGE_TYPES.register(
        StorageType("rating", column=lambda f, m: sa.SmallInteger(), input=rating_input,
                    kind="number", operators=("eq", "ne", "gte", "lte", "in", "isnull"))
    )
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any

import sqlalchemy as sa
from marshmallow import fields

from metamodel import FIELD_TYPES, Field, Model
from metamodel.registry import Registry

from . import _coerce as inputs
from .sqltypes import ID, JSON, UTCDateTime

ColumnBuilder = Callable[[Field, Model], "sa.types.TypeEngine[Any]"]
InputBuilder = Callable[[Field], "fields.Field[Any]"]

#: The list API's filter operators.
OPERATORS = (
    "eq",
    "ne",
    "lt",
    "lte",
    "gt",
    "gte",
    "in",
    "not_in",
    "contains",
    "icontains",
    "startswith",
    "isnull",
    "between",
)

_ORDERED = ("eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in", "isnull", "between")

#: The filter kinds, each with the operators its fields accept by default.
OPERATORS_BY_KIND: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "text": (*_ORDERED, "contains", "icontains", "startswith"),
        "choice": ("eq", "ne", "in", "not_in", "isnull"),
        "number": _ORDERED,
        "boolean": ("eq", "ne", "isnull"),
        "date": _ORDERED,
        "datetime": _ORDERED,
        "ref": ("eq", "ne", "in", "not_in", "isnull"),
        "multi": ("eq", "ne", "contains", "in", "not_in", "isnull"),
        "file": ("isnull",),
    }
)

FILTER_KINDS = tuple(OPERATORS_BY_KIND)


@dataclass(frozen=True)
class StorageType:
    """How the engine stores, takes in and filters one field type.

    ``column`` builds the SQLAlchemy type of the field's column (``None``: no column).
    ``input`` builds the marshmallow field for a client's value (``None``: clients never
    send it); ``input_by_dialect`` replaces it on one database (SQLite keeps decimals as
    doubles, so it refuses what it would round). ``kind`` is one of :data:`FILTER_KINDS`,
    or a function of the field; ``operators`` narrows (or, with operators of
    :func:`engine.query.register_operator`, extends) what the kind allows.
    """

    name: str
    column: ColumnBuilder | None
    input: InputBuilder | None
    kind: str | Callable[[Field], str] = "text"
    operators: tuple[str, ...] | None = None
    input_by_dialect: Mapping[str, InputBuilder] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def filter_kind(self, field: Field) -> str:
        return self.kind(field) if callable(self.kind) else self.kind

    def input_field(self, field: Field, dialect: str) -> fields.Field[Any]:
        build = self.input_by_dialect.get(dialect, self.input)
        assert build is not None, f"{self.name} takes no input"
        return build(field)


STORAGE_TYPES: Registry[StorageType] = Registry("storage type")


def storage(field: Field) -> StorageType:
    """The registered storage of ``field``'s type."""
    return STORAGE_TYPES[field.type]


def stored(field: Field) -> bool:
    """Whether a field has a column of its own."""
    return STORAGE_TYPES[field.type].column is not None


def writable(field: Field) -> bool:
    """Fields a client may send: not computed, not children (sent as nested lists)."""
    return STORAGE_TYPES[field.type].input is not None


def python_value(field: Field, value: Any) -> Any:
    """A value as written in definitions or kept as JSON (a default, an audit entry) in
    the Python type the field's column holds: decimals, dates, times, lists."""
    if value is None:
        return None
    kind = field.value_type
    if kind == "decimal":
        return Decimal(str(value))
    if kind == "date" and isinstance(value, str):
        return dt.date.fromisoformat(value)
    if kind == "datetime" and isinstance(value, str):
        moment = dt.datetime.fromisoformat(value)
        return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    if kind.startswith("list:") and isinstance(value, list | tuple):
        return list(value)
    return value


def scale_of(field: Field, model: Model) -> int | None:
    """The decimal places a field's values have: its own ``scale``, a formula's that of the
    type it returns (money: 2), a rollup's that of what it aggregates; None when not a
    decimal."""
    if field.value_type != "decimal":
        return None
    if field.type == "formula":
        returns = FIELD_TYPES.get(field.returns or "")
        scale = returns.defaults.get("scale") if returns is not None else None
        return int(scale) if scale is not None else None
    if field.type == "rollup":
        source = model.entity(field.of or "").fields.get(field.rollup_field or "")
        found = scale_of(source, model) if source is not None else None
        return 2 if found is None else found
    return field.scale


# --- columns of the built-in types ------------------------------------------------------


def _text(field: Field, model: Model) -> sa.types.TypeEngine[Any]:
    return sa.String(field.max_length or 255)


def _number(field: Field, model: Model) -> sa.types.TypeEngine[Any]:
    return sa.Numeric(field.precision or 18, field.scale if field.scale is not None else 2)


def _rollup(field: Field, model: Model) -> sa.types.TypeEngine[Any]:
    if field.aggregate == "count":
        return sa.BigInteger()
    source = model.entity(field.of or "").fields.get(field.rollup_field or "")
    scale = source.scale if source is not None and source.scale is not None else 2
    # Unbounded on PostgreSQL: a sum of many large amounts must not overflow its column.
    # (``decimal_return_scale`` only rounds what SQLite returns as a float.)
    return sa.Numeric(decimal_return_scale=max(scale, 6) if field.aggregate == "avg" else scale)


def _ids(field: Field, model: Model) -> sa.types.TypeEngine[Any]:
    return JSON if field.multiple else ID


def _formula_kind(field: Field) -> str:
    kind = {
        "string": "text",
        "integer": "number",
        "decimal": "number",
        "boolean": "boolean",
        "date": "date",
        "datetime": "datetime",
    }.get(field.value_type, "text")
    return "choice" if kind == "text" and field.options else kind


def _ids_kind(field: Field) -> str:
    return "multi" if field.multiple else "ref"


def _builtins() -> list[StorageType]:
    def number(name: str) -> StorageType:
        return StorageType(name, _number, inputs.number, "number", None, {"sqlite": inputs.double})

    return [
        StorageType("string", _text, inputs.string, "text"),
        StorageType("text", lambda f, m: sa.Text(), inputs.string, "text"),
        StorageType("integer", lambda f, m: sa.Integer(), inputs.integer, "number"),
        number("decimal"),
        number("money"),
        number("percent"),
        StorageType(
            "boolean", lambda f, m: sa.Boolean(create_constraint=False), inputs.boolean, "boolean"
        ),
        StorageType("date", lambda f, m: sa.Date(), inputs.date, "date"),
        StorageType("datetime", lambda f, m: UTCDateTime(), inputs.datetime, "datetime"),
        StorageType("choice", lambda f, m: sa.String(63), inputs.choice, "choice"),
        StorageType("multichoice", lambda f, m: JSON, inputs.multichoice, "multi"),
        StorageType("reference", lambda f, m: ID, inputs.ids, "ref"),
        StorageType("children", None, None, "file", operators=()),
        StorageType("email", _text, inputs.email, "text"),
        StorageType("phone", _text, inputs.phone, "text"),
        StorageType("url", _text, inputs.url, "text"),
        StorageType(
            "file",
            _ids,  # attachment ids (engine.attachments)
            inputs.ids,
            "file",
        ),
        StorageType("autonumber", lambda f, m: sa.String(64), None, "text"),
        StorageType("formula", None, None, _formula_kind),
        StorageType("rollup", _rollup, None, "number"),
        StorageType("user", _ids, inputs.ids, _ids_kind),
        StorageType("team", _ids, inputs.ids, _ids_kind),
    ]


for _type in _builtins():
    STORAGE_TYPES.register(_type)
