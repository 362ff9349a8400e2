"""A report result (``engine.reports.ReportResult.to_dict()``) as a chart and a table.

:func:`chart_data` turns the result's ``chart`` spec (``bar``, ``stacked_bar``, ``line``,
``pie``, ``funnel``, ``number``, ``table``) into the plain data ``static/heddle-charts.js``
hands to ECharts: category labels in the user's language, one series per measure (or per
value of the ``series`` dimension), numbers as numbers. A chart type it does not know is
drawn as the table alone, so a report engine that learns a new chart never breaks a page.
:func:`report_table` is the table under the chart, every value formatted for the locale.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .render import Formatter

#: Chart types drawn on a canvas; ``number`` is a card, ``table`` the table alone.
CHART_TYPES = frozenset({"bar", "stacked_bar", "line", "area", "pie", "funnel", "number"})
NUMERIC = frozenset({"integer", "decimal", "money", "percent", "number"})


@dataclass(frozen=True)
class TableCell:
    text: str
    numeric: bool = False


@dataclass(frozen=True)
class ReportTable:
    headers: tuple[TableCell, ...]
    rows: tuple[tuple[TableCell, ...], ...]
    totals: tuple[TableCell, ...] | None = None


def _number(value: Any) -> float | int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal | float):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return None


class _Labels:
    """A dimension value as text: its option's label, its title, a formatted date."""

    def __init__(self, fmt: Formatter, empty: str, others: str) -> None:
        self.fmt = fmt
        self.empty = empty
        self.others = others

    def dimension(self, column: Mapping[str, Any], row: Mapping[str, Any]) -> str:
        name = column["name"]
        value = row.get(name)
        if row.get("_others"):
            return self.others
        if column.get("title") and row.get(column["title"]) not in (None, ""):
            return str(row[column["title"]])
        for option in column.get("options", ()):
            if str(option.get("value")) == str(value):
                return str(option.get("label") or value)
        if value is None or value == "":
            return self.empty
        return self.value(column, value)

    def value(self, column: Mapping[str, Any], value: Any, currency: str | None = None) -> str:
        if value is None:
            return ""
        kind = column.get("type")
        bucket = column.get("bucket")
        if isinstance(value, str) and kind in ("date", "datetime"):
            try:
                value = dt.date.fromisoformat(value[:10])
            except ValueError:
                return str(value)
        if isinstance(value, dt.date):
            if bucket == "year":
                return str(value.year)
            if bucket == "month":
                return f"{value.year}-{value.month:02d}"
            return self.fmt.date(value)
        if kind == "money":
            return self.fmt.money(value, currency)
        if kind == "percent":
            return self.fmt.percent(value)
        if kind in NUMERIC or isinstance(value, int | float | Decimal):
            return self.fmt.number(value)
        return str(value)


def _roles(columns: Sequence[Mapping[str, Any]], role: str) -> list[Mapping[str, Any]]:
    return [c for c in columns if c.get("role") == role]


def report_table(
    result: Mapping[str, Any],
    fmt: Formatter,
    currency: str,
    empty: str,
    others: str,
    total_label: str,
) -> ReportTable:
    """The result's rows and totals, every value as the user's locale writes it."""
    labels = _Labels(fmt, empty, others)
    columns = list(result.get("columns") or ())
    dims = _roles(columns, "dimension")
    headers = tuple(
        TableCell(str(c.get("label") or c["name"]), c in _roles(columns, "measure"))
        for c in columns
    )
    rows = []
    for row in result.get("rows") or ():
        cells = []
        for column in columns:
            if column.get("role") == "dimension":
                cells.append(TableCell(labels.dimension(column, row)))
            else:
                cells.append(
                    TableCell(labels.value(column, row.get(column["name"]), currency), True)
                )
        rows.append(tuple(cells))
    totals = None
    if result.get("totals"):
        sums = result["totals"]
        totals = tuple(
            TableCell(total_label if i == 0 and dims else "")
            if column.get("role") == "dimension"
            else TableCell(labels.value(column, sums.get(column["name"]), currency), True)
            for i, column in enumerate(columns)
        )
    return ReportTable(headers, tuple(rows), totals)


def chart_data(
    result: Mapping[str, Any], fmt: Formatter, currency: str, empty: str, others: str
) -> dict[str, Any] | None:
    """What ``heddle-charts.js`` draws, or None when the chart is the table itself."""
    spec = result.get("chart") or {}
    kind = str(spec.get("type") or "table")
    if kind not in CHART_TYPES:
        return None
    labels = _Labels(fmt, empty, others)
    columns = {c["name"]: c for c in result.get("columns") or ()}
    ys = [y for y in spec.get("y") or () if y in columns]
    if not ys:
        return None
    rows = list(result.get("rows") or ())
    if kind == "number":
        source = result.get("totals") or (rows[0] if rows else {})
        value = source.get(ys[0])
        return {
            "type": "number",
            "label": str(columns[ys[0]].get("label") or ys[0]),
            "text": labels.value(columns[ys[0]], value, currency) if value is not None else "–",
        }
    x = columns.get(str(spec.get("x") or ""))
    if x is None:
        return None
    categories: list[str] = []
    for row in rows:
        label = labels.dimension(x, row)
        if label not in categories:
            categories.append(label)
    series_column = columns.get(str(spec.get("series") or ""))
    series: list[dict[str, Any]] = []
    if series_column is not None and kind in ("bar", "stacked_bar", "line", "area"):
        y = ys[0]
        names: list[str] = []
        cells: dict[tuple[str, str], Any] = {}
        for row in rows:
            name = labels.dimension(series_column, row)
            if name not in names:
                names.append(name)
            key = (labels.dimension(x, row), name)
            cells[key] = (_number(cells.get(key)) or 0) + (_number(row.get(y)) or 0)
        series = [{"name": n, "data": [cells.get((c, n), 0) for c in categories]} for n in names]
    else:
        for y in ys:
            values: dict[str, Any] = {}
            for row in rows:
                values[labels.dimension(x, row)] = _number(row.get(y))
            series.append(
                {
                    "name": str(columns[y].get("label") or y),
                    "data": [values.get(c) for c in categories],
                }
            )
    found: dict[str, Any] = {"type": kind, "categories": categories, "series": series}
    if kind in ("pie", "funnel"):
        found["series"] = series[:1]
    return found


def dashboard_width(width: Any) -> int:
    """A widget's width in the twelve columns of the grid (6 when not a whole number)."""
    if isinstance(width, int) and not isinstance(width, bool) and 1 <= width <= 12:
        return width
    return 6
