"""The statements of a pivot and of a funnel: one SQL statement each, like every report.

A **pivot** (``pivot: stage``) is four levels in one ``UNION ALL``: the cells (grouped
by the row dimensions and the pivot's), the row totals (the row dimensions), the column
totals (the pivot's) and the grand total. The cells group the records once, in a CTE, and
the three totals fold from its rows (see :mod:`._sql`); with a measure that does not fold
each level groups the records itself. Python then only puts each cell in its row and
column (:func:`engine.reports._results.shape_pivot`).

A **funnel** (``funnel: {field: stage, steps: [...]}``) counts the records that reached
each step: a record at step *k* has passed every step before it. The statement groups the
records by the rank of their step, adds the groups up from the last step backwards with a
window sum, and divides each step by the one before and by the first::

    WITH g AS (SELECT <rank> AS k, count(*) AS m0 FROM … WHERE <rank> IS NOT NULL GROUP BY k),
         steps AS (SELECT 0 AS k, 'initial' AS d0 UNION ALL SELECT 1, 'proposal' …),
         c AS (SELECT steps.k, steps.d0, coalesce(sum(g.m0) OVER (ORDER BY steps.k DESC
                      ROWS UNBOUNDED PRECEDING), 0) AS m0 FROM steps LEFT JOIN g USING (k))
    SELECT 0 AS _level, k AS _rn, d0, m0, m0 / lag(m0) OVER (…), m0 / first_value(m0) …
    FROM c UNION ALL SELECT 2, NULL, NULL, count(*), … -- the totals
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from metamodel import ReportMeasure

from ..sqlexpr import to_sql
from ._aggregates import AGGREGATES
from ._sql import COLUMN_TOTAL, ROW_TOTAL, ROWS, TOTALS, Builder, Built, Shape, _ratio

Column = Any


def _measures(builder: Builder, shape: Shape, measures: Sequence[ReportMeasure]) -> None:
    """Label the measures: aggregates ``m<i>``, expressions ``e<i>``, conversions ``c<i>``."""
    kinds = (
        ("m", [m for m in measures if m.aggregate is not None]),
        ("e", [m for m in measures if m.expression is not None]),
        ("c", [m for m in measures if m.conversion is not None]),
    )
    for prefix, found in kinds:
        for i, measure in enumerate(found):
            shape.measures.append((measure, f"{prefix}{i}"))
            if prefix != "m" and measure.value_type == "decimal":
                builder.scales[measure.name] = 6


def build_pivot(builder: Builder, measures: Sequence[ReportMeasure], scope: Column) -> Built:
    report = builder.report
    shape = Shape(layout="pivot")
    conditions = builder.conditions(scope)
    dims = builder.columns(shape)
    _measures(builder, shape, measures)
    for measure, _ in shape.measures:  # compiled once for the scales of decimals
        if measure.aggregate is not None:
            builder.measure(measure)
    shape.scales = builder.scales
    pivot = next(i for i, d in enumerate(report.dimensions) if d.name == report.pivot)
    rows = [i for i in range(len(dims)) if i != pivot]
    everything = range(len(dims))
    if builder.folds(measures):
        # one grouping of the records, the cells; the totals are folded from it
        cells = builder.grouped(ROWS, dims, everything, shape, conditions, ranked=False)
        labels = [c.name for c in cells.selected_columns][2:]  # after _level and _rn
        helpers = [h for m, label in shape.measures for h in builder.helpers(m, label)]
        g = cells.add_columns(*helpers).cte("g")
        cell_rows: list[Column] = [sa.literal(ROWS).label("_level"), sa.null().label("_rn")]
        parts = [
            sa.select(*cell_rows, *(g.c[name] for name in labels)),
            builder.folded(ROW_TOTAL, g, rows, shape, labels),
            builder.folded(COLUMN_TOTAL, g, [pivot], shape, labels, by_dimensions=True),
            builder.folded(TOTALS, g, [], shape, labels, ranked=False),
        ]
        union = sa.union_all(*parts).subquery("u")
        return Built(sa.select(union).order_by(union.c._level, union.c._rn), shape)
    parts = [
        builder.grouped(ROWS, dims, everything, shape, conditions, ranked=False),
        builder.grouped(ROW_TOTAL, dims, rows, shape, conditions),
        builder.grouped(COLUMN_TOTAL, dims, [pivot], shape, conditions, by_dimensions=True),
        builder.grouped(TOTALS, dims, [], shape, conditions, ranked=False),
    ]
    union = sa.union_all(*parts).subquery("u")
    return Built(sa.select(union).order_by(union.c._level, union.c._rn), shape)


def build_funnel(builder: Builder, measures: Sequence[ReportMeasure], scope: Column) -> Built:
    report = builder.report
    funnel = report.funnel
    assert funnel is not None
    shape = Shape(layout="funnel")
    conditions = builder.conditions(scope)
    dim = report.dimensions[0]
    found = builder.resolver.walk(funnel.path)
    shape.dimensions.append((dim, "d0", found.target))
    field = builder.resolver.column_of(found)
    rank: Column = None
    if funnel.dropped_at is not None:
        dropped = builder.resolver.column(funnel.dropped_at)
        rank = sa.case(*((dropped == step, i) for i, step in enumerate(funnel.steps)))
    rank = sa.case(*((field == step, i) for i, step in enumerate(funnel.steps)), else_=rank)
    _measures(builder, shape, measures)
    aggregates = [(m, label) for m, label in shape.measures if m.aggregate is not None]
    selected = [builder.measure(m).label(label) for m, label in aggregates]
    shape.scales = builder.scales
    source = builder.source()
    reached = [*conditions, rank.is_not(None)]
    g = sa.select(rank.label("k"), *selected).select_from(source).where(*reached)
    g_cte = g.group_by(rank).cte("g")
    steps = sa.union_all(
        *(
            sa.select(sa.literal(i).label("k"), sa.literal(step).label("d0"))
            for i, step in enumerate(funnel.steps)
        )
    ).cte("steps")
    cumulative: list[Column] = []
    for measure, label in aggregates:
        running = sa.func.sum(g_cte.c[label]).over(order_by=steps.c.k.desc(), rows=(None, 0))
        empty = AGGREGATES[str(measure.aggregate)].empty
        added: sa.ColumnElement[Any] = sa.func.coalesce(running, empty)
        if measure.value_type == "integer":  # PostgreSQL sums integers as numerics
            added = sa.cast(added, sa.BigInteger)
        cumulative.append(sa.type_coerce(added, g_cte.c[label].type).label(label))
    c = (
        sa.select(steps.c.k, steps.c.d0, *cumulative)
        .select_from(steps.outerjoin(g_cte, g_cte.c.k == steps.c.k))
        .cte("c")
    )
    labels = {m.name: label for m, label in aggregates}

    def expressions(values: dict[str, Column]) -> list[Column]:
        found = []
        for measure, label in shape.measures:
            if measure.expression is not None:
                sql = to_sql(
                    measure.expression,
                    lambda p: values[".".join(p)],
                    builder.dialect,
                    builder.context,
                )
                found.append(sa.type_coerce(sql, sa.Numeric(decimal_return_scale=6)).label(label))
        return found

    step_values = {m.name: c.c[label] for m, label in aggregates}
    of = c.c[labels[funnel.measure]]
    conversions = []
    for measure, label in shape.measures:
        if measure.conversion == "previous":
            before = sa.func.lag(of).over(order_by=c.c.k)
            conversions.append(_ratio(of, before, builder.sqlite).label(label))
        elif measure.conversion == "first":
            first = sa.func.first_value(of).over(order_by=c.c.k)
            conversions.append(_ratio(of, first, builder.sqlite).label(label))
    rows = sa.select(
        sa.literal(ROWS).label("_level"),
        c.c.k.label("_rn"),
        c.c.d0,
        *(c.c[label] for _, label in aggregates),
        *expressions(step_values),
        *conversions,
    )
    parts: list[Any] = [rows]
    if report.totals:
        values = {m.name: builder.measure(m) for m, _ in aggregates}
        last = len(funnel.steps) - 1
        overall = _ratio(
            sa.select(of).where(c.c.k == last).scalar_subquery(),
            sa.select(of).where(c.c.k == 0).scalar_subquery(),
            builder.sqlite,
        )
        totals: list[Column] = []
        for measure, label in shape.measures:
            if measure.conversion == "first":
                totals.append(overall.label(label))
            elif measure.conversion is not None:
                totals.append(sa.null().label(label))
        parts.append(
            sa.select(
                sa.literal(TOTALS).label("_level"),
                sa.null().label("_rn"),
                sa.null().label("d0"),
                *(values[m.name].label(label) for m, label in aggregates),
                *expressions(values),
                *totals,
            )
            .select_from(source)
            .where(*reached)
        )
    union = sa.union_all(*parts).subquery("u")
    return Built(sa.select(union).order_by(union.c._level, union.c._rn), shape)
