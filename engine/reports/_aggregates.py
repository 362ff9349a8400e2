"""The SQL of each report measure: the engine half of :data:`metamodel.MEASURES`.

A measure named in a report must be registered in both: the language half says which
value types it takes and gives (checked when definitions load), this half how the
database computes it. A plugin registers both under the same name::

    MEASURES.register(Measure("median", ("integer", "decimal"), "decimal"))
    AGGREGATES.register(Aggregate(
        "median", lambda column: sa.func.percentile_cont(0.5).within_group(column)))

``sql`` gets the measured column — already ``CASE WHEN <filter> THEN column END`` when
the measure has a filter, and for a measure without a field ``1`` when the filter holds
(``None`` without a filter) — and returns the aggregate expression. ``empty`` is the value
an empty time or value bucket shows (zero for counts and sums; ``None``: nothing).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from metamodel.registry import Registry

Column = Any  # a SQLAlchemy column expression


@dataclass(frozen=True)
class Aggregate:
    name: str
    sql: Callable[[Column], Column]  # gets None for a count without field or filter
    empty: Any = None


AGGREGATES: Registry[Aggregate] = Registry("report aggregate")


def _count(column: Column) -> Column:
    return sa.func.count() if column is None else sa.func.count(column)


for _aggregate in (
    Aggregate("count", _count, 0),
    Aggregate("count_distinct", lambda column: sa.func.count(column.distinct()), 0),
    Aggregate("sum", lambda column: sa.func.coalesce(sa.func.sum(column), 0), 0),
    Aggregate("avg", lambda column: sa.func.avg(column)),
    Aggregate("min", lambda column: sa.func.min(column)),
    Aggregate("max", lambda column: sa.func.max(column)),
):
    AGGREGATES.register(_aggregate)
