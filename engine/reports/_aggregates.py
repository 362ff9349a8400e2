"""The SQL of each report measure: the engine half of :data:`metamodel.MEASURES`.

A measure named in a report must be registered in both: the language half says which
value types it takes and gives (checked when definitions load), this half how the
database computes it. A plugin registers both under the same name::

    MEASURES.register(Measure("p90", ("integer", "decimal"), "decimal"))
    AGGREGATES.register(Aggregate(
        "p90", lambda column: sa.func.percentile_cont(0.9).within_group(column)))

``sql`` gets the measured column — already ``CASE WHEN <filter> THEN column END`` when
the measure has a filter, and for a measure without a field ``1`` when the filter holds
(``None`` without a filter) — and returns the aggregate expression. ``empty`` is the value
an empty time or value bucket shows (zero for counts and sums; ``None``: nothing).
``fold`` says how the aggregates of groups add up to the aggregate of their union
(``sum`` of counts and sums, ``min`` of minimums, ``avg`` from each group's sum and count;
``None``: they do not, as distinct counts and medians): a report whose measures all fold
computes its "others", totals, subtotals and pivot totals from its groups, reading the
records once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles

from metamodel.registry import Registry

Column = Any  # a SQLAlchemy column expression


@dataclass(frozen=True)
class Aggregate:
    name: str
    sql: Callable[[Column], Column]  # gets None for a count without field or filter
    empty: Any = None
    fold: str | None = None  # sum, min, max or avg; None: groups do not add up


AGGREGATES: Registry[Aggregate] = Registry("report aggregate")


def _count(column: Column) -> Column:
    return sa.func.count() if column is None else sa.func.count(column)


class _MedianFunction(sa.sql.functions.GenericFunction[Any]):
    """``median(x)``: SQLite's (added to each connection by the engine); PostgreSQL's is
    ``percentile_cont(0.5) WITHIN GROUP (ORDER BY x)``."""

    name = "heddle_median"
    identifier = "heddle_median"
    inherit_cache = True


@compiles(_MedianFunction)
def _median_sql(element: Any, compiler: Any, **kw: Any) -> str:
    return f"median({compiler.process(element.clauses, **kw)})"


@compiles(_MedianFunction, "postgresql")
def _median_postgresql(element: Any, compiler: Any, **kw: Any) -> str:
    inner = compiler.process(element.clauses, **kw)
    return f"percentile_cont(0.5) WITHIN GROUP (ORDER BY {inner})"


def _median(column: Column) -> Column:
    """The middle value (the mean of the two middle ones)."""
    return _MedianFunction(column)


for _aggregate in (
    Aggregate("count", _count, 0, "sum"),
    Aggregate("count_distinct", lambda column: sa.func.count(column.distinct()), 0),
    Aggregate("sum", lambda column: sa.func.coalesce(sa.func.sum(column), 0), 0, "sum"),
    Aggregate("avg", lambda column: sa.func.avg(column), fold="avg"),
    Aggregate("min", lambda column: sa.func.min(column), fold="min"),
    Aggregate("max", lambda column: sa.func.max(column), fold="max"),
    Aggregate("median", _median),
):
    AGGREGATES.register(_aggregate)
