"""Reading filter values from text, and the relative dates filters may name.

Every field (and system column) falls into one filter *kind* — text, choice, number,
boolean, date, datetime, ref, multi, file (:data:`engine.fieldtypes.OPERATORS_BY_KIND`) —
which decides how a value written in a URL becomes a Python value.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from metamodel.periods import RELATIVE_DATES as RELATIVE_DATES

from ..fieldtypes import OPERATORS
from ..paths import QueryValueError, Target

MAX_LIST = 500  # values in one in/not_in/contains
MAX_TEXT = 1000  # characters in one text value
MAX_INTEGER = 2**63 - 1


# --- relative dates (their names and spans live in metamodel.periods) ----------------


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
