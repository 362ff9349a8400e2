"""What a list filter may say about each field, and reading filter values from text.

Every field (and system column) falls into one *kind* — text, choice, number, boolean,
date, datetime, ref, multi, file — which decides its operators and how a value written in
a URL becomes a Python value. Field paths (``account.region.name``) are walked here too:
this module knows the Model, not SQL.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

from metamodel import Entity, Field, Model
from metamodel.model import SYSTEM_FIELDS

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

#: Kind → the operators its fields accept.
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

_KIND_OF_TYPE = {
    "string": "text",
    "text": "text",
    "email": "text",
    "phone": "text",
    "url": "text",
    "autonumber": "text",
    "choice": "choice",
    "multichoice": "multi",
    "integer": "number",
    "decimal": "number",
    "money": "number",
    "percent": "number",
    "rollup": "number",
    "boolean": "boolean",
    "date": "date",
    "datetime": "datetime",
    "reference": "ref",
    "user": "ref",
    "team": "ref",
    "file": "file",
}

_KIND_OF_VALUE_TYPE = {
    "string": "text",
    "integer": "number",
    "decimal": "number",
    "boolean": "boolean",
    "date": "date",
    "datetime": "datetime",
}

_SYSTEM_KINDS = {
    "id": "number",
    "version": "number",
    "created_at": "datetime",
    "updated_at": "datetime",
    "created_by": "ref",
    "updated_by": "ref",
    "owner_id": "ref",
    "team_id": "ref",
}

MAX_HOPS = 2  # references a path may cross: account.region.name
MAX_LIST = 500  # values in one in/not_in/contains
MAX_TEXT = 1000  # characters in one text value
MAX_INTEGER = 2**63 - 1


class QueryValueError(ValueError):
    """A filter, sort or path the Model does not allow; the message says how to fix it."""


@dataclass(frozen=True, slots=True)
class Target:
    """A field or system column as the query layer sees it.

    ``value_type`` is the expression type (``integer``, ``decimal``, ``string``…);
    ``table`` names the system table a user or team reference points at.
    """

    name: str
    kind: str
    value_type: str
    field: Field | None = None
    options: tuple[str, ...] = ()

    @property
    def operators(self) -> tuple[str, ...]:
        return OPERATORS_BY_KIND[self.kind]

    @property
    def sortable(self) -> bool:
        return self.kind not in ("multi", "file")

    @property
    def sort_type(self) -> str:
        """The type of what a sort on this field orders by: choices by option rank."""
        return "integer" if self.kind == "choice" and self.options else self.value_type

    @property
    def formula(self) -> bool:
        return self.field is not None and self.field.type == "formula"

    @property
    def element_type(self) -> str:
        """The type of one value of a multi field (``string`` or ``integer``)."""
        return self.value_type.removeprefix("list:")


def target(entity: Entity, name: str) -> Target:
    """The :class:`Target` for ``entity.name``, or :class:`QueryValueError` naming the fix."""
    field = entity.fields.get(name)
    if field is None:
        if name in SYSTEM_FIELDS and name in entity.system_fields:
            return Target(name, _SYSTEM_KINDS[name], SYSTEM_FIELDS[name])
        known = [*entity.fields, *entity.system_fields]
        raise QueryValueError(f"unknown field '{name}' of {entity.name}{_hint(name, known)}")
    if field.type == "children":
        raise QueryValueError(
            f"'{name}' holds child rows: filter the child entity '{field.children}' instead"
        )
    if field.type == "formula":
        kind = _KIND_OF_VALUE_TYPE.get(field.value_type, "text")
        if kind == "text" and field.options:
            kind = "choice"
    elif field.type in ("user", "team") and field.multiple:
        kind = "multi"
    else:
        kind = _KIND_OF_TYPE[field.type]
    return Target(name, kind, field.value_type, field, field.choice_values)


@dataclass(frozen=True, slots=True)
class Walk:
    """A field path resolved: the references crossed, and the field at the end."""

    path: tuple[str, ...]
    refs: tuple[Field, ...]
    target: Target
    entity: str  # the entity holding the last field

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


# Walks are looked up on every request: cache them per Model (a Model never changes, and
# only paths that exist are cached, so a cache is bounded by its Model).
_WALKS: dict[int, dict[tuple[str, tuple[str, ...], int], Walk]] = {}


def walk(model: Model, entity: str, path: tuple[str, ...], max_hops: int = MAX_HOPS) -> Walk:
    """Resolve ``("account", "region", "name")`` from ``entity``; at most two references."""
    cache = _WALKS.get(id(model))
    if cache is None:
        cache = _WALKS[id(model)] = {}
        weakref.finalize(model, _WALKS.pop, id(model), None)
    key = (entity, path, max_hops)
    found = cache.get(key)
    if found is None:
        found = cache[key] = _walk(model, entity, path, max_hops)
    return found


def _walk(model: Model, entity: str, path: tuple[str, ...], max_hops: int) -> Walk:
    if not path or any(not part for part in path):
        raise QueryValueError("empty field name")
    if len(path) > max_hops + 1:
        raise QueryValueError(
            f"'{'.'.join(path)}' crosses {len(path) - 1} references; at most {max_hops} are allowed"
        )
    current = model.entity(entity)
    refs: list[Field] = []
    for name in path[:-1]:
        field = current.fields.get(name)
        if field is None:
            target(current, name)  # an unknown name: raises, suggesting the closest
        if field is None or field.type != "reference" or not field.to:
            raise QueryValueError(
                f"'{name}' is not a reference to an entity, so nothing can follow its '.'"
            )
        refs.append(field)
        current = model.entity(field.to)
    return Walk(path, tuple(refs), target(current, path[-1]), current.name)


def _hint(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


# --- relative dates --------------------------------------------------------------------


def _month_start(day: dt.date, months: int = 0) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def _quarter_start(day: dt.date, quarters: int = 0) -> dt.date:
    first = dt.date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    return _month_start(first, 3 * quarters)


def _week_start(day: dt.date, weeks: int = 0) -> dt.date:
    return day - dt.timedelta(days=day.weekday()) + dt.timedelta(weeks=weeks)


def _days(start: int, count: int) -> Callable[[dt.date], tuple[dt.date, dt.date]]:
    def period(today: dt.date) -> tuple[dt.date, dt.date]:
        first = today + dt.timedelta(days=start)
        return first, first + dt.timedelta(days=count)

    return period


def _span(
    start: Callable[[dt.date, int], dt.date], offset: int
) -> Callable[[dt.date], tuple[dt.date, dt.date]]:
    return lambda today: (start(today, offset), start(today, offset + 1))


def _year(offset: int) -> Callable[[dt.date], tuple[dt.date, dt.date]]:
    return lambda today: (
        dt.date(today.year + offset, 1, 1),
        dt.date(today.year + offset + 1, 1, 1),
    )


#: Relative date name → today ↦ [first day, day after the last).
RELATIVE_DATES: Mapping[str, Callable[[dt.date], tuple[dt.date, dt.date]]] = MappingProxyType(
    {
        "today": _days(0, 1),
        "yesterday": _days(-1, 1),
        "tomorrow": _days(1, 1),
        "this_week": _span(_week_start, 0),
        "last_week": _span(_week_start, -1),
        "next_week": _span(_week_start, 1),
        "this_month": _span(_month_start, 0),
        "last_month": _span(_month_start, -1),
        "next_month": _span(_month_start, 1),
        "this_quarter": _span(_quarter_start, 0),
        "last_quarter": _span(_quarter_start, -1),
        "this_year": _year(0),
        "last_year": _year(-1),
        "last_7_days": _days(-6, 7),
        "last_30_days": _days(-29, 30),
        "next_30_days": _days(0, 30),
    }
)


@dataclass(frozen=True, slots=True)
class RelativeDate:
    """A period named relative to the actor's today: ``this_month``, ``last_7_days``…

    Resolved when the query runs, so a saved filter keeps meaning "this month".

    >>> RelativeDate("this_week").period(dt.date(2024, 5, 15))  # a Wednesday
    (datetime.date(2024, 5, 13), datetime.date(2024, 5, 20))
    """

    name: str

    def period(self, today: dt.date) -> tuple[dt.date, dt.date]:
        """The first day and the day after the last."""
        return RELATIVE_DATES[self.name](today)

    def __str__(self) -> str:
        return self.name


# --- reading values from text ------------------------------------------------------------

_INTEGER = re.compile(r"[+-]?\d{1,19}")
_DECIMAL = re.compile(r"[+-]?(\d{1,30}(\.\d{0,30})?|\.\d{1,30})")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TRUE, _FALSE = frozenset({"true", "1"}), frozenset({"false", "0"})


def _text(raw: str) -> str:
    if "\x00" in raw:
        raise QueryValueError("text may not contain NUL characters")
    if len(raw) > MAX_TEXT:
        raise QueryValueError(f"text longer than {MAX_TEXT} characters")
    return raw


def parse_boolean(raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise QueryValueError(f"'{_show(raw)}' is not true or false (use true, false, 1 or 0)")


def _integer(raw: str, limit: int = MAX_INTEGER) -> int:
    text = raw.strip()
    if not _INTEGER.fullmatch(text):
        raise QueryValueError(f"'{_show(raw)}' is not a whole number")
    value = int(text)
    if abs(value) > limit:
        raise QueryValueError(f"{text} is too large (at most {limit})")
    return value


#: Columns of 64-bit ids; other integer fields are 32-bit.
_ID_COLUMNS = frozenset({"id", "created_by", "updated_by", "owner_id", "team_id"})
MAX_SMALL_INTEGER = 2**31 - 1


def _integer_limit(target: Target) -> int:
    if target.kind in ("ref", "multi") or target.name in _ID_COLUMNS:
        return MAX_INTEGER  # references, and lists of user or team ids, are 64-bit
    if target.field is not None and target.field.type == "rollup":
        return MAX_INTEGER  # count rollups are 64-bit too
    return MAX_SMALL_INTEGER


def _decimal(raw: str) -> Decimal:
    text = raw.strip()
    if not _DECIMAL.fullmatch(text):
        raise QueryValueError(f"'{_show(raw)}' is not a number (write it like 1234.50)")
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid numbers
        raise QueryValueError(f"'{_show(raw)}' is not a number") from None


def _date(raw: str) -> dt.date | RelativeDate:
    text = raw.strip()
    if text in RELATIVE_DATES:
        return RelativeDate(text)
    if _DATE.fullmatch(text):
        try:
            day = dt.date.fromisoformat(text)
        except ValueError:
            pass
        else:
            # a day is a period: its neighbours must exist too
            if dt.date.min < day < dt.date.max:
                return day
    raise QueryValueError(
        f"'{_show(raw)}' is not a date (write 2024-07-31, or one of: {', '.join(RELATIVE_DATES)})"
    )


def _datetime(raw: str) -> dt.datetime | dt.date | RelativeDate:
    text = raw.strip()
    if text in RELATIVE_DATES or _DATE.fullmatch(text):
        return _date(text)
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise QueryValueError(
            f"'{_show(raw)}' is not a date and time (write 2024-07-31T14:30:00Z or 2024-07-31)"
        ) from None
    value = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    try:
        utc = value.astimezone(dt.UTC)
    except OverflowError:
        utc = None
    if utc is None or not dt.date.min < utc.date() < dt.date.max:
        raise QueryValueError(f"'{_show(raw)}' is out of the range of dates")
    return value


def _option(target: Target, raw: str) -> str:
    if raw in target.options:
        return raw
    shown = ", ".join(target.options)
    raise QueryValueError(f"'{_show(raw)}' is not an option of {target.name} (options: {shown})")


def scalar(target: Target, raw: str, *, check_options: bool = True) -> Any:
    """One value for ``target`` from its text form."""
    kind = target.kind
    if kind == "multi":
        if target.element_type == "integer":
            return _integer(raw, _integer_limit(target))
        return _option(target, raw) if check_options and target.options else _text(raw)
    if raw.strip() == "" and kind not in ("text", "choice"):
        raise QueryValueError(f"give a value for {target.name} (or use {target.name}__isnull)")
    if kind == "text":
        return _text(raw)
    if kind == "choice":
        return _option(target, raw) if check_options else _text(raw)
    if kind == "number":
        if target.value_type == "integer":
            return _integer(raw, _integer_limit(target))
        return _decimal(raw)
    if kind == "ref":
        return _integer(raw, _integer_limit(target))
    if kind == "boolean":
        return parse_boolean(raw)
    if kind == "date":
        return _date(raw)
    if kind == "datetime":
        return _datetime(raw)
    raise QueryValueError(f"{target.name} can only be filtered with __isnull")


def split_list(raw: str) -> list[str]:
    r"""Comma-separated values; ``\,`` is a comma inside a value."""
    parts = re.split(r"(?<!\\),", raw)
    return [part.replace("\\,", ",") for part in parts]


def coerce(target: Target, op: str, raw: str) -> Any:
    """The Python value of a filter ``<field>__<op>=<raw>``.

    ``in``/``not_in`` give a tuple, ``between`` a pair, ``isnull`` a bool; multi fields
    take lists for every operator.
    """
    if op not in OPERATORS:
        raise QueryValueError(f"unknown operator '{op}' (operators: {', '.join(OPERATORS)})")
    if op not in target.operators:
        raise QueryValueError(
            f"operator '{op}' does not apply to {target.kind} field '{target.name}'"
            f" (use: {', '.join(target.operators)})"
        )
    if op == "isnull":
        return parse_boolean(raw)
    if op in ("in", "not_in", "between") or target.kind == "multi":
        items = split_list(raw)
        if op == "between":
            if len(items) != 2 or not all(item.strip() for item in items):
                raise QueryValueError("between takes two values: low,high")
        elif not any(item.strip() for item in items):
            raise QueryValueError("give at least one value (comma-separated)")
        if len(items) > MAX_LIST:
            raise QueryValueError(f"at most {MAX_LIST} values")
        return tuple(scalar(target, item) for item in items)
    if op in ("contains", "icontains", "startswith") and raw == "":
        raise QueryValueError(f"give the text to look for with {op}")
    return scalar(target, raw)


def _show(raw: str) -> str:
    return raw if len(raw) <= 40 else raw[:37] + "…"
