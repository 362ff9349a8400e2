"""Coercing input: the marshmallow field of each built-in field type.

Each builder makes the field that coerces and checks what a client sends for one field
(types, lengths, patterns, ranges, options); :mod:`engine.fieldtypes` names the builder of
each type, and :mod:`engine.inputs` assembles an entity's loader from them. Rules that
need the whole record — required, required_when, validations, references that must
exist — are the record service's.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from marshmallow import ValidationError, fields, validate

from metamodel import Field

_DECIMAL_TEXT = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_PHONE = re.compile(r"^[0-9+()\-./ x#*]{3,40}$")
MAX_ID = 2**63 - 1  # 64-bit id columns
MAX_INT = 2**31 - 1  # 32-bit integer columns
#: Digits a decimal keeps exactly on SQLite, which stores NUMERIC columns as doubles: 15
#: digits in all, the field's decimal places included, read back exactly at its scale.
DOUBLE_DIGITS = 15


class _String(fields.String):
    """Text without NUL characters, which PostgreSQL cannot store."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in text:
            raise ValidationError("Must not contain NUL characters.")
        return text


class _Email(fields.Email, _String):
    pass


class _URL(fields.URL, _String):
    pass


class _DateTime(fields.AwareDateTime):
    """A time that exists in UTC too (0001-01-01T00:00+14:00 does not)."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> dt.datetime:
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            moment.astimezone(dt.UTC)
        except OverflowError:
            raise ValidationError("Out of the range of dates.") from None
        return moment


def _length(field: Field) -> list[validate.Validator]:
    checks: list[validate.Validator] = []
    if field.max_length or field.min_length:
        checks.append(validate.Length(min=field.min_length, max=field.max_length))
    if field.pattern:
        checks.append(validate.Regexp(field.pattern, error="Does not match the expected pattern."))
    return checks


def _range(field: Field, cast: Callable[[Any], Any]) -> list[validate.Validator]:
    if field.min is None and field.max is None:
        return []
    low = cast(field.min) if field.min is not None else None
    high = cast(field.max) if field.max is not None else None
    return [validate.Range(min=low, max=high)]


class _Decimal(fields.Decimal):
    """A decimal with at most ``scale`` places: 10.005 is refused for money, not rounded.

    ``exact`` is how many digits in all the database stores exactly when fewer than the
    field's ``precision`` (SQLite's doubles: :data:`DOUBLE_DIGITS`); larger values are
    refused rather than silently rounded (1234567890123456.78 would read back as …56.75).
    """

    def __init__(
        self, scale: int, precision: int = 38, *, exact: int | None = None, **kwargs: Any
    ) -> None:
        super().__init__(allow_nan=False, **kwargs)
        self.scale = scale
        self.digits = precision - scale
        self.exact = exact if exact is not None and exact < precision else None
        # the bounds, worked out once (a decimal power per value was most of the check)
        self._too_large = Decimal(10) ** self.digits
        self._inexact = None if self.exact is None else Decimal(10) ** (self.exact - scale)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Decimal:
        if isinstance(value, bool):
            raise ValidationError("Not a valid number.")
        if isinstance(value, str) and not _DECIMAL_TEXT.fullmatch(value.strip()):
            # the form the API documents: 1250.50 — no exponent, no Infinity, no '+'
            raise ValidationError("Not a valid number: write it like 1250.50.")
        number = super()._deserialize(value, attr, data, **kwargs)
        exponent = number.as_tuple().exponent
        if isinstance(exponent, int) and -exponent > self.scale:
            raise ValidationError(f"At most {self.scale} decimal places.")
        size = number.copy_abs()  # exactly: abs() would round to the context's 28 digits
        if size >= self._too_large:
            raise ValidationError(f"Too large: at most {self.digits} digits before the point.")
        if self._inexact is not None and size >= self._inexact:
            assert self.exact is not None
            raise ValidationError(_inexact_message(self.exact, self.scale))
        return number


def _inexact_message(exact: int, scale: int) -> str:
    before = exact - scale
    bound = (
        f"at most {before} digits before the point"
        if before > 0
        else f"less than {Decimal(10) ** before}"
    )
    return (
        f"Too large for SQLite, which keeps decimals as doubles ({exact} digits exactly): "
        f"{bound}. Use PostgreSQL for larger values."
    )


class _Integer(fields.Integer):
    """A whole number that fits its column (32 bits for fields, 64 for ids)."""

    def __init__(self, *, limit: int = MAX_INT, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.limit = limit

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool):
            raise ValidationError("Not a valid integer.")
        number = super()._deserialize(value, attr, data, **kwargs)
        if abs(number) > self.limit:
            raise ValidationError(f"Too large: at most {self.limit}.")
        return number


def _date(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation:  # pragma: no cover - the metamodel checked the bounds
        raise ValueError(value) from None


# --- builders, one per field type (see engine.fieldtypes) ---------------------------------


def string(field: Field) -> fields.Field[Any]:
    return _String(allow_none=True, validate=_length(field))


def email(field: Field) -> fields.Field[Any]:
    return _Email(allow_none=True, validate=_length(field))


def url(field: Field) -> fields.Field[Any]:
    return _URL(allow_none=True, validate=_length(field))


def phone(field: Field) -> fields.Field[Any]:
    return _String(
        allow_none=True,
        validate=[*_length(field), validate.Regexp(_PHONE, error="Not a valid phone number.")],
    )


def integer(field: Field) -> fields.Field[Any]:
    return _Integer(strict=False, allow_none=True, validate=_range(field, int))


def number(field: Field, exact: int | None = None) -> fields.Field[Any]:
    return _Decimal(
        field.scale if field.scale is not None else 2,
        field.precision or 18,
        exact=exact,
        allow_none=True,
        validate=_range(field, _decimal),
    )


def double(field: Field) -> fields.Field[Any]:
    """A decimal on SQLite, which keeps it as a double: refused where it would round."""
    return number(field, exact=DOUBLE_DIGITS)


class _Boolean(fields.Boolean):
    """``true`` and ``false`` only: "yes", "on" or 1 are not what the API documents."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


def boolean(field: Field) -> fields.Field[Any]:
    return _Boolean(allow_none=True)


def date(field: Field) -> fields.Field[Any]:
    return fields.Date(allow_none=True, validate=_range(field, _date))


def datetime(field: Field) -> fields.Field[Any]:
    return _DateTime(default_timezone=dt.UTC, allow_none=True)


def choice(field: Field) -> fields.Field[Any]:
    return _String(allow_none=True, validate=validate.OneOf(field.choice_values))


def multichoice(field: Field) -> fields.Field[Any]:
    return fields.List(fields.String(validate=validate.OneOf(field.choice_values)), allow_none=True)


def ids(field: Field) -> fields.Field[Any]:
    if field.multiple:
        return fields.List(_Integer(strict=True, limit=MAX_ID), allow_none=True)
    return _Integer(strict=True, allow_none=True, limit=MAX_ID)


def owner() -> fields.Field[Any]:
    """``owner_id`` and ``team_id``: ids a client may set on ownable records."""
    return _Integer(strict=True, allow_none=True, limit=MAX_ID)


#: What a shortcut of :func:`quick_loader` returns for a value it leaves to the field.
SLOW: Any = object()

#: The fields whose ``_deserialize`` and validators are all of ``deserialize`` for a value
#: that is there and not null (no hooks of their own around them).
_QUICK = (_String, _Email, _URL, _Decimal, _Integer, _Boolean, _DateTime, fields.Date)


def quick_loader(field: fields.Field[Any]) -> Callable[[Any], Any] | None:
    """A shortcut for ``field.deserialize`` on the values most input holds, or None when
    the field has none: for the engine's own scalar fields, a value their conversion and
    every validator take gives what ``deserialize`` gives (null included), without the
    call's machinery — the missing-value checks, the hooks, a validator made per call
    (a quarter of an import's input time). A value they refuse gives :data:`SLOW`:
    ``deserialize`` takes it, and makes the error with all its messages."""
    if type(field) not in _QUICK or not field.allow_none or field.pre_load or field.post_load:
        return None
    convert = field._deserialize
    checks = tuple(field.validators)
    if isinstance(field, _String):
        return _quick_text(checks)

    def load(value: Any) -> Any:
        if value is None:
            return None
        try:
            output = convert(value, None, None)
            for check in checks:
                check(output)
        except ValidationError:
            return SLOW
        return output

    return load


def _quick_text(checks: tuple[Callable[[Any], Any], ...]) -> Callable[[Any], Any]:
    """:func:`quick_loader` for the text fields: a ``str`` without NUL characters is what
    their conversion makes of it (``_String._deserialize``), itself."""

    def load(value: Any) -> Any:
        if value is None:
            return None
        if type(value) is not str or "\x00" in value:
            return SLOW
        try:
            for check in checks:
                check(value)
        except ValidationError:
            return SLOW
        return value

    return load
