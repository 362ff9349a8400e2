"""Shaping the rows of a pivot and of subtotals in Python — placing, never summing: every
number comes from the statement (:mod:`._layouts`, :mod:`._sql`).

A pivot's result::

    {"columns": [<row dimensions>…,
                 {"name": "deals__0", "label": "Open · Deals", "role": "measure",
                  "measure": "deals", "pivot": 0}, …,              # a cell per value × measure
                 {"name": "deals", "label": "Deals (total)", "role": "measure", "total": true}],
     "rows":    [{"owner_id": 1, "owner_id__title": "Ann", "deals__0": 3, …, "deals": 10}, …],
     "totals":  {"deals__0": 12, …, "deals": 40},                 # column totals, grand total
     "pivot":   {"dimension": "stage", "label": "Stage",
                 "values": [{"key": 0, "value": "open", "label": "Open"}, …]}}
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from metamodel import Report

from ._sql import COLUMN_TOTAL, ROW_TOTAL, ROWS, TOTALS, Shape
from ._values import _buckets, _empty, fill

WORDS = {
    "others": {"en": "Others", "zh": "其他", "ja": "その他"},
    "total": {"en": "Total", "zh": "合计", "ja": "合計"},
    "subtotal": {"en": "Subtotal", "zh": "小计", "ja": "小計"},
    "row_total": {"en": "total", "zh": "合计", "ja": "合計"},
    "empty": {"en": "(empty)", "zh": "（空）", "ja": "（空白）"},
}


def word(key: str, locale: str) -> str:
    texts = WORDS[key]
    return texts.get(locale) or texts.get(locale.split("-")[0]) or texts["en"]


def rounded(shape: Shape, name: str, value: Any) -> Any:
    """A decimal measure to the places of its field, the same on every database."""
    if isinstance(value, float):
        value = Decimal(repr(value))
    if isinstance(value, Decimal) and name in shape.scales:
        return value.quantize(Decimal(1).scaleb(-shape.scales[name]))
    return value


# --- SQLite --------------------------------------------------------------------------------


class _Median:
    def __init__(self) -> None:
        self.values: list[float] = []

    def step(self, value: Any) -> None:
        if value is not None:
            self.values.append(float(value))

    def finalize(self) -> float | None:
        return statistics.median(self.values) if self.values else None


def add_sqlite_aggregates(conn: sa.Connection) -> None:
    """The aggregates SQLite lacks (``median``), on this connection."""
    raw = conn.connection.driver_connection
    if raw is not None:  # a cheap call: sqlite3 connections take no marker to skip it
        raw.create_aggregate("median", 1, _Median)


# --- subtotals ------------------------------------------------------------------------------


def arrange_subtotals(
    report: Report, shape: Shape, rows: list[dict[str, Any]], subtotals: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The rows with each group's subtotal after it (``_subtotal``: how many leading
    dimensions it fixes), groups in the report's order."""
    names = [d.name for d, _, _ in shape.dimensions]
    depth = len(names)
    by_depth: dict[int, list[dict[str, Any]]] = {}
    for row in subtotals:
        by_depth.setdefault(row["_subtotal"], []).append(row)
    filled = any(d.fill for d in report.dimensions)
    empty = _empty(shape)

    def key(row: Mapping[str, Any], size: int) -> tuple[Any, ...]:
        return tuple(row.get(n) for n in names[:size])

    def groups(level: int, prefix: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        found: dict[tuple[Any, ...], None] = {}
        ranked = [key(r, level) for r in by_depth.get(level, ()) if key(r, level - 1) == prefix]
        seen = [key(r, level) for r in rows if key(r, level - 1) == prefix]
        for k in (seen + ranked) if filled else (ranked + seen):
            found.setdefault(k, None)
        return list(found)

    def emit(level: int, prefix: tuple[Any, ...]) -> list[dict[str, Any]]:
        if level == depth - 1:
            return [r for r in rows if key(r, level) == prefix]
        out: list[dict[str, Any]] = []
        totals = {key(r, level + 1): r for r in by_depth.get(level + 1, ())}
        for group in groups(level + 1, prefix):
            out += emit(level + 1, group)
            subtotal = totals.get(group)
            if subtotal is None:
                subtotal = {**dict(zip(names, group, strict=False)), **empty}
                subtotal["_subtotal"] = level + 1
                subtotal.update({n: None for n in names[level + 1 :]})
            out.append(subtotal)
        return out

    return emit(0, ())


# --- pivot ----------------------------------------------------------------------------------


def _value_label(value: Any, title: Any, column: Mapping[str, Any], locale: str) -> str:
    if value is None:
        return word("empty", locale)
    if title is not None:
        return str(title)
    for option in column.get("options", ()):
        if option["value"] == value:
            return str(option["label"])
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def shape_pivot(
    report: Report,
    shape: Shape,
    fetched: Sequence[Mapping[str, Any]],
    columns: list[dict[str, Any]],
    locale: str,
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """The rows (one per row group, a cell per pivot value and measure, the row totals
    under the measures' names), the totals (column totals and the grand total) and the
    pivot's description; ``columns`` is rewritten to match."""
    dims = [d for d, _, _ in shape.dimensions]
    at = next(i for i, d in enumerate(dims) if d.name == report.pivot)
    pivot = dims[at]
    rest = [i for i in range(len(dims)) if i != at]
    titled = {i: shape.titles.get(d.name) for i, d in enumerate(dims)}
    measures = [(m, label) for m, label in shape.measures]

    def values_of(record: Mapping[str, Any]) -> dict[str, Any]:
        return {m.name: rounded(shape, m.name, record[label]) for m, label in measures}

    def row_key(record: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(record[f"d{i}"] for i in rest)

    column_values: list[Any] = []
    titles: dict[Any, Any] = {}
    cells: dict[tuple[tuple[Any, ...], Any], dict[str, Any]] = {}
    row_totals: list[Mapping[str, Any]] = []
    grand: dict[str, Any] = {}
    by_column: dict[Any, dict[str, Any]] = {}
    for record in fetched:
        level = record["_level"]
        if level == COLUMN_TOTAL:
            value = record[f"d{at}"]
            column_values.append(value)
            if titled[at]:
                titles[value] = record[str(titled[at])]
            by_column[value] = values_of(record)
        elif level == ROW_TOTAL:
            row_totals.append(record)
        elif level == ROWS:
            cells[(row_key(record), record[f"d{at}"])] = values_of(record)
        elif level == TOTALS:
            grand = values_of(record)
    if pivot.fill:
        present = [v for v in column_values if v is not None]
        filled = _buckets(pivot, present) or present
        column_values = filled + ([None] if None in column_values else [])
    empty = _empty(shape)
    rows: list[dict[str, Any]] = []
    for record in row_totals:
        row: dict[str, Any] = {}
        for i in rest:
            row[dims[i].name] = record[f"d{i}"]
            if titled[i]:
                row[f"{dims[i].name}__title"] = record[str(titled[i])]
        row.update(values_of(record))
        for j, value in enumerate(column_values):
            cell = cells.get((row_key(record), value), empty)
            for measure, _ in measures:
                row[f"{measure.name}__{j}"] = cell.get(measure.name)
        rows.append(row)
    row_dims = [d for i, d in enumerate(dims) if i != at]
    if any(d.fill for d in row_dims):
        row_shape = Shape(
            dimensions=[x for i, x in enumerate(shape.dimensions) if i != at],
            titles={k: v for k, v in shape.titles.items() if k != pivot.name},
            measures=shape.measures,
            scales=shape.scales,
        )
        rows = fill(report, row_shape, rows)
        for row in rows:
            for j in range(len(column_values)):
                for measure, _ in measures:
                    row.setdefault(f"{measure.name}__{j}", empty.get(measure.name))
    totals = dict(grand)
    for j, value in enumerate(column_values):
        column_totals = by_column.get(value, empty)
        for measure, _ in measures:
            totals[f"{measure.name}__{j}"] = column_totals.get(measure.name)
    pivot_column = next(c for c in columns if c["name"] == pivot.name)
    described = [
        {
            "key": j,
            "value": value,
            "label": _value_label(value, titles.get(value), pivot_column, locale),
        }
        for j, value in enumerate(column_values)
    ]
    measure_columns = [c for c in columns if c["role"] == "measure"]
    kept = [c for c in columns if c["role"] == "dimension" and c["name"] != pivot.name]
    for value in described:
        for column in measure_columns:
            label = value["label"]
            if len(measure_columns) > 1:
                label = f"{label} · {column['label']}"
            kept.append(
                {
                    **column,
                    "name": f"{column['name']}__{value['key']}",
                    "label": label,
                    "measure": column["name"],
                    "pivot": value["key"],
                }
            )
    for column in measure_columns:
        label = f"{column['label']} ({word('row_total', locale)})"
        kept.append({**column, "label": label, "total": True})
    columns[:] = kept
    described_pivot = {
        "dimension": pivot.name,
        "label": pivot_column["label"],
        "values": described,
    }
    return rows, totals, described_pivot


def pivot_chart(
    chart: dict[str, Any], report: Report, shape: Shape, pivot: Mapping[str, Any]
) -> dict[str, Any]:
    """A pivot draws as a (stacked) bar along its first row dimension, a series per
    pivot value; ``series_columns`` names the cells of each."""
    rows = [d.name for d, _, _ in shape.dimensions if d.name != report.pivot]
    spec = dict(report.chart or {})
    drawn = dict(chart)
    drawn["type"] = spec.get("type") or ("stacked_bar" if rows else "bar")
    drawn["x"] = spec.get("x") if spec.get("x") in rows else (rows[0] if rows else None)
    drawn["series"] = report.pivot
    drawn["series_columns"] = {
        y: [f"{y}__{value['key']}" for value in pivot["values"]] for y in drawn["y"]
    }
    return drawn
