"""Shaping a report's result in Python — never summing it: empty time and value buckets
added with zero counts and sums, the rows put back in order, labels and options of the
columns in the user's language."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from metamodel import Dimension, Report

from ..paths import Target
from ._aggregates import AGGREGATES
from ._sql import Shape


def _months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def _next(day: dt.date, bucket: str) -> dt.date:
    if bucket == "day":
        return day + dt.timedelta(days=1)
    if bucket == "week":
        return day + dt.timedelta(days=7)
    return _months(day, {"month": 1, "quarter": 3, "year": 12}[bucket])


MAX_FILLED = 5000  # buckets one report may add


def _buckets(dim: Dimension, present: list[Any]) -> list[Any]:
    if dim.ranges:
        return [r.value for r in dim.ranges]
    days = sorted(v for v in present if v is not None)
    if not days or dim.bucket is None:
        return []
    found: list[Any] = []
    day = days[0]
    while day <= days[-1] and len(found) < MAX_FILLED:
        found.append(day)
        day = _next(day, dim.bucket)
    return found


def _empty(shape: Shape) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for measure, _ in shape.measures:
        if measure.aggregate is None:
            continue
        empty = AGGREGATES[measure.aggregate].empty
        if empty == 0 and measure.value_type == "decimal":
            empty = Decimal(0)
        values[measure.name] = empty
    for measure, _ in shape.measures:
        if measure.share_of is not None:
            values[measure.name] = Decimal(0)
        if measure.expression is not None:
            try:
                values[measure.name] = measure.expression.evaluate(values)
            except (ArithmeticError, TypeError):
                values[measure.name] = None
    return values


def fill(report: Report, shape: Shape, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` with the missing buckets of the first filled dimension, for every
    combination of the other dimensions present, in the report's order."""
    dims = [d for d, _, _ in shape.dimensions]
    filled = next((d for d in dims if d.fill), None)
    if filled is None:
        return rows
    others = [d.name for d in dims if d is not filled]
    others += [f"{name}__title" for name in shape.titles if name != filled.name]
    combos: dict[tuple[Any, ...], dict[str, Any]] = {}
    existing: set[tuple[tuple[Any, ...], Any]] = set()
    for row in rows:
        key = tuple(row.get(name) for name in others)
        combos.setdefault(key, {name: row.get(name) for name in others})
        existing.add((key, row[filled.name]))
    if not rows and not others and filled.ranges:
        combos[()] = {}
    empty = _empty(shape)
    added = list(rows)
    for key, base in combos.items():
        for value in _buckets(filled, [r[filled.name] for r in rows]):
            if (key, value) not in existing:
                added.append({**base, filled.name: value, **empty})
    if len(added) == len(rows):
        return rows
    return _sorted(report, shape, added)


def _sorted(report: Report, shape: Shape, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows in the statement's order: the report's sort, then each dimension."""
    ranks: dict[str, dict[Any, int]] = {}
    for dim, _, target in shape.dimensions:
        if dim.ranges:
            ranks[dim.name] = {r.value: i for i, r in enumerate(dim.ranges)}
        elif target is not None and target.kind == "choice" and target.options:
            ranks[dim.name] = {o: i for i, o in enumerate(target.options)}
    keys = [(k.field, k.descending) for k in report.sort]
    keys += [(d.name, False) for d, _, _ in shape.dimensions if d.name not in dict(keys)]
    for name, descending in reversed(keys):
        rank = ranks.get(name)
        present = [r for r in rows if r.get(name) is not None]
        empty = [r for r in rows if r.get(name) is None]

        def key(row: dict[str, Any], name: str = name, rank: Any = rank) -> Any:
            return rank.get(row[name], len(rank)) if rank is not None else row[name]

        present.sort(key=key, reverse=descending)
        rows = present + empty
    return rows


def label_of(report: Report, index: int, dim: Dimension, target: Target | None, locale: str) -> str:
    """A dimension's label: its own, else its field's."""
    specs = report.spec.get("group_by") or ()
    spec = specs[index] if index < len(specs) else None
    own = spec is not None and not isinstance(spec, str) and "label" in spec
    plain = not dim.bucket and not dim.ranges
    if not own and plain and target is not None and target.field is not None:
        return target.field.label.get(locale)
    return dim.label.get(locale)


def options_of(dim: Dimension, target: Target | None, locale: str) -> list[dict[str, Any]]:
    """The values a dimension can take, with their labels (choices and value ranges)."""
    if dim.ranges:
        return [{"value": r.value, "label": r.label.get(locale)} for r in dim.ranges]
    if target is not None and target.field is not None and target.field.options:
        return [
            {
                "value": c.value,
                "label": c.label.get(locale),
                **({"color": c.color} if c.color else {}),
            }
            for c in target.field.options
        ]
    return []
