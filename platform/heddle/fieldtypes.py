"""Field types as the API shows them: the JSON Schema of a value in a record returned, and
of a value a client may send, for each type name of :data:`metamodel.FIELD_TYPES`.

The OpenAPI document is built from :data:`JSON_TYPES`; the input schemas carry the same
limits as the engine's input (``engine.fieldtypes``), so that a client checking against
the document sends what the API accepts. A plugin's type registers here too::

    JSON_TYPES.register(JSONType("rating", output=lambda f: {"type": "integer"},
                                 input=lambda f: {"type": "integer", "minimum": 1}))
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from metamodel import Field
from metamodel.registry import Registry

JSONSchema = dict[str, Any]
Build = Callable[[Field], JSONSchema]

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MAX = 2**63 - 1
STRING_COLUMN = 255  # characters a string field holds when it declares no max_length
PHONE_PATTERN = r"^[0-9+()\-./ x#*]{3,40}$"
DECIMAL_OUT = r"^-?[0-9]+(\.[0-9]+)?$"


@dataclass(frozen=True)
class JSONType:
    """``output``: the JSON Schema of a value in a record (without null); ``input``: of a
    value a client may send (``None``: clients never send it)."""

    name: str
    output: Build
    input: Build | None


JSON_TYPES: Registry[JSONType] = Registry("JSON type")


def plain(value: Any) -> Any:
    """A definition value as JSON (decimals and dates as text, frozen maps as dicts)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, Decimal | dt.date | dt.datetime):
        return str(value) if isinstance(value, Decimal) else value.isoformat()
    return value


# --- a value as returned -------------------------------------------------------------------


def _decimal_out() -> JSONSchema:
    return {"type": "string", "pattern": DECIMAL_OUT, "examples": ["1250.00"]}


_VALUE_TYPES: Mapping[str, Callable[[], JSONSchema]] = {
    "string": lambda: {"type": "string"},
    "integer": lambda: {"type": "integer"},
    "decimal": _decimal_out,
    "boolean": lambda: {"type": "boolean"},
    "date": lambda: {"type": "string", "format": "date"},
    "datetime": lambda: {"type": "string", "format": "date-time"},
}


def _choices(field: Field) -> JSONSchema:
    schema: JSONSchema = {"type": "string"}
    if field.options:
        schema["enum"] = list(field.choice_values)
        labels = {c.value: c.label.to_json() for c in field.options}
        schema["x-enum-labels"] = labels
    return schema


def _ids(field: Field) -> JSONSchema:
    one: JSONSchema = {"type": "integer"}
    return {"type": "array", "items": one} if field.multiple else one


def _out_of_value_type(field: Field) -> JSONSchema:
    return _VALUE_TYPES.get(field.value_type, _VALUE_TYPES["string"])()


# --- a value as sent -------------------------------------------------------------------------


def _text_in(field: Field, limit: int | None = STRING_COLUMN) -> JSONSchema:
    schema: JSONSchema = {"type": "string"}
    most = field.max_length or limit
    if most is not None:
        schema["maxLength"] = most
    if field.min_length:
        schema["minLength"] = field.min_length
    if field.pattern:
        # marshmallow's Regexp matches at the start (re.match); JSON Schema searches.
        schema["pattern"] = field.pattern if field.pattern.startswith("^") else "^" + field.pattern
    return schema


def _number_range(schema: JSONSchema, field: Field, low: int | None, high: int | None) -> None:
    minimum = field.min if field.min is not None else low
    maximum = field.max if field.max is not None else high
    if minimum is not None:
        schema["minimum"] = plain(minimum)
    if maximum is not None:
        schema["maximum"] = plain(maximum)


def _phone_in(field: Field) -> JSONSchema:
    schema = _text_in(field)
    if "pattern" in schema:  # the field's own pattern, and the phone pattern too
        schema["allOf"] = [{"pattern": schema.pop("pattern")}]
    schema["pattern"] = PHONE_PATTERN
    return schema


def _integer_in(field: Field) -> JSONSchema:
    schema: JSONSchema = {"type": "integer"}
    _number_range(schema, field, INT32_MIN, INT32_MAX)
    return schema


def _decimal_in(field: Field) -> JSONSchema:
    scale = field.scale if field.scale is not None else 2
    digits = max((field.precision or 18) - scale, 1)
    sign = "" if field.min is not None and Decimal(str(field.min)) >= 0 else "-?"
    fraction = rf"(\.[0-9]{{1,{scale}}})?" if scale else ""
    schema: JSONSchema = {
        "type": "string",
        "pattern": rf"^{sign}[0-9]{{1,{digits}}}{fraction}$",
        "description": f"A decimal number as text, at most {scale} decimal places"
        + (f", from {field.min}" if field.min is not None else "")
        + (f" up to {field.max}" if field.max is not None else "")
        + "; JSON numbers are accepted too.",
        "examples": ["1250.00" if scale else "1250"],
    }
    return schema


def _id_in(field: Field) -> JSONSchema:
    one: JSONSchema = {"type": "integer", "minimum": 1, "maximum": INT64_MAX}
    return {"type": "array", "items": one} if field.multiple else one


def _date_in(field: Field) -> JSONSchema:
    schema: JSONSchema = {"type": "string", "format": "date"}
    if field.min is not None or field.max is not None:
        low = f" from {field.min}" if field.min is not None else ""
        high = f" up to {field.max}" if field.max is not None else ""
        schema["description"] = f"A date{low}{high}."
    return schema


# --- the built-ins, registered like any plugin's ------------------------------------------


def _string_out(field: Field) -> JSONSchema:
    return {"type": "string"}


def _email_in(field: Field) -> JSONSchema:
    return {**_text_in(field), "format": "email"}


def _url_in(field: Field) -> JSONSchema:
    return {**_text_in(field), "format": "uri"}


def _multichoice(field: Field) -> JSONSchema:
    return {"type": "array", "items": _choices(field)}


def _scalar(schema: JSONSchema) -> Build:
    return lambda field: dict(schema)


_DATE_OUT: JSONSchema = {"type": "string", "format": "date"}
_DATETIME: JSONSchema = {"type": "string", "format": "date-time"}

for _type in (
    JSONType("string", _string_out, _text_in),
    JSONType("text", _string_out, lambda f: _text_in(f, None)),
    JSONType("integer", _scalar({"type": "integer"}), _integer_in),
    JSONType("decimal", lambda f: _decimal_out(), _decimal_in),
    JSONType("money", lambda f: _decimal_out(), _decimal_in),
    JSONType("percent", lambda f: _decimal_out(), _decimal_in),
    JSONType("boolean", _scalar({"type": "boolean"}), _scalar({"type": "boolean"})),
    JSONType("date", _scalar(_DATE_OUT), _date_in),
    JSONType("datetime", _scalar(_DATETIME), _scalar(_DATETIME)),
    JSONType("choice", _choices, _choices),
    JSONType("multichoice", _multichoice, _multichoice),
    JSONType("reference", _ids, _id_in),
    JSONType("children", _scalar({"type": "array"}), None),
    JSONType("email", _string_out, _email_in),
    JSONType("phone", _string_out, _phone_in),
    JSONType("url", _string_out, _url_in),
    JSONType("file", _ids, _id_in),  # attachment ids
    JSONType("autonumber", _string_out, None),
    JSONType("formula", _out_of_value_type, None),
    JSONType("rollup", _out_of_value_type, None),
    JSONType("user", _ids, _id_in),
    JSONType("team", _ids, _id_in),
):
    JSON_TYPES.register(_type)
