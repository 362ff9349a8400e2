"""Report parameters: the values of ``?<param>=…`` (or of an ad-hoc query's ``params``),
typed, with the report's defaults, and bound into its SQL as ``params.<name>``."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa

from metamodel import Report, ReportParam
from metamodel.fieldtypes import value_type
from metamodel.periods import parse_period

from ..errors import BadRequest
from ..paths import SQL_TYPES

MAX_TEXT = 1000
_INTEGER = re.compile(r"[+-]?\d{1,18}")
_DECIMAL = re.compile(r"[+-]?(\d{1,30}(\.\d{0,30})?|\.\d{1,30})")


def bind(report: Report, given: Mapping[str, Any], today: dt.date) -> dict[str, Any]:
    """The value of every parameter of ``report``: the one ``given`` (text from a URL, or
    JSON), else its default, else None. Unknown names and bad values are one
    :class:`BadRequest` naming each. A period is ``(first day, last day)``."""
    errors: dict[str, list[str]] = {}
    known = {p.name: p for p in report.params}
    for name in given:
        if name not in known:
            hint = f" (parameters: {', '.join(known)})" if known else " (it takes none)"
            errors[name] = [f"unknown parameter of report {report.name}{hint}"]
    values: dict[str, Any] = {}
    for param in report.params:
        raw = given.get(param.name, param.default)
        if isinstance(raw, list | tuple) and len(raw) == 1:
            raw = raw[0]
        if raw is None or raw == "":
            if param.required:
                errors[param.name] = [f"give a value for {param.name}"]
            values[param.name] = None
            continue
        try:
            values[param.name] = _value(param, raw, today)
        except ValueError as exc:
            errors[param.name] = [str(exc)]
    if errors:
        first = "; ".join(f"{k}: {v[0]}" for k, v in list(errors.items())[:3])
        raise BadRequest(f"Invalid report parameters: {first}", errors)
    return values


def _value(param: ReportParam, raw: Any, today: dt.date) -> Any:
    kind = param.type
    if isinstance(raw, dt.date) and not isinstance(raw, dt.datetime):
        raw = raw.isoformat()
    if kind in ("period", "date"):
        if not isinstance(raw, str):
            raise ValueError("write a day (2024-07-31) or a period name like this_month")
        start, end = parse_period(raw, today)
        last = end - dt.timedelta(days=1)
        if kind == "date":
            if ".." in raw:
                raise ValueError("give one day, not a span")
            return start
        return (start, last)
    expected = value_type(kind)
    if expected == "boolean":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise ValueError(f"'{_show(raw)}' is not true or false")
    if expected == "integer":
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and _INTEGER.fullmatch(raw.strip()):
            return int(raw)
        raise ValueError(f"'{_show(raw)}' is not a whole number")
    if expected == "decimal":
        if isinstance(raw, int | float | Decimal) and not isinstance(raw, bool):
            return Decimal(str(raw))
        if isinstance(raw, str) and _DECIMAL.fullmatch(raw.strip()):
            try:
                return Decimal(raw.strip())
            except InvalidOperation:  # pragma: no cover - the pattern admits only numbers
                pass
        raise ValueError(f"'{_show(raw)}' is not a number (write it like 1234.50)")
    if expected == "datetime":
        try:
            value = dt.datetime.fromisoformat(str(raw).strip())
        except ValueError:
            raise ValueError(f"'{_show(raw)}' is not a date and time") from None
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    text = str(raw)
    if "\x00" in text or len(text) > MAX_TEXT:
        raise ValueError(f"text of at most {MAX_TEXT} characters, without NUL")
    return text


def literal(report: Report, values: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """The SQL value of ``params.<name>`` (``params.<name>.start``/``.end`` of a period)."""
    param = next(p for p in report.params if p.name == path[1])
    value = values.get(param.name)
    if param.type == "period":
        day = None if value is None else value[0 if path[2] == "start" else 1]
        return sa.literal(day, sa.Date())
    return sa.literal(value, SQL_TYPES.get(value_type(param.type), sa.String()))


def shown(report: Report, values: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters as the response shows them: a period as ``{start, end}``."""
    result: dict[str, Any] = {}
    for param in report.params:
        value = values.get(param.name)
        if param.type == "period" and value is not None:
            value = {"start": value[0], "end": value[1]}
        result[param.name] = value
    return result


def _show(raw: Any) -> str:
    text = str(raw)
    return text if len(text) <= 40 else text[:37] + "…"


def previous(values: Mapping[str, Any], name: str) -> dict[str, Any]:
    """``values`` with the period ``name`` moved to the one before it: as many whole
    months before when it is whole months (a quarter before a quarter), else as many
    days before. An empty period stays empty."""
    moved = dict(values)
    period = values.get(name)
    if period is None:
        return moved
    start, last = period
    after = last + dt.timedelta(days=1)
    if start.day == 1 and after.day == 1:
        months = (after.year - start.year) * 12 + after.month - start.month
        index = start.year * 12 + start.month - 1 - months
        moved[name] = (dt.date(index // 12, index % 12 + 1, 1), start - dt.timedelta(days=1))
    else:
        days = (after - start).days
        moved[name] = (start - dt.timedelta(days=days), start - dt.timedelta(days=1))
    return moved
