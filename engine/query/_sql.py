"""SQL for list queries: columns for field paths, filter conditions, search, sort, keyset.

:class:`Resolver` turns a field path into a column expression: a plain column, a column of
an aliased ``LEFT OUTER JOIN`` for paths through references (one join per distinct
reference prefix, shared by filters, sort and formulas), or a formula compiled with
:meth:`Expression.to_sql`. The rest are small functions from (column, operator, value)
to a SQLAlchemy condition, written once for SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.elements import ColumnElement

from metamodel import local_midnight

from ..paths import SQL_TYPES, QueryValueError, Target
from ..search import like, like_escape
from ._values import RelativeDate

Column = ColumnElement[Any]
Condition = ColumnElement[bool]

# --- filter conditions ---------------------------------------------------------------------


def condition(
    target: Target, column: Column, op: str, value: Any, dialect: str, today: dt.date
) -> Condition:
    """``column <op> value`` with the query layer's meaning for ``target``'s kind."""
    kind = target.kind
    if op in ("in", "not_in", "between") or (kind == "multi" and op != "isnull"):
        if not isinstance(value, tuple | list) or not value:
            raise QueryValueError(f"{op} needs a non-empty list of values")
        if op == "between" and len(value) != 2:
            raise QueryValueError("between takes two values: low,high")
    if op == "isnull":
        empty: Condition = column.is_(None)
        if kind == "text":
            empty = sa.or_(empty, column == "")
        elif kind == "multi":
            empty = _multi_empty(column, dialect)
        return empty if value else sa.not_(empty)
    if kind == "multi":
        return _multi(column, op, tuple(value), dialect)
    if kind in ("date", "datetime"):
        return _temporal(kind, column, op, value, today)
    if op in ("contains", "icontains", "startswith"):
        return _text_match(column, op, str(value), dialect)
    return _compare(column, op, value)


def _compare(column: Column, op: str, value: Any) -> Condition:
    result: Condition
    if op == "eq":
        result = column == value
    elif op == "ne":
        result = sa.or_(column != value, column.is_(None))
    elif op == "lt":
        result = column < value
    elif op == "lte":
        result = column <= value
    elif op == "gt":
        result = column > value
    elif op == "gte":
        result = column >= value
    elif op == "in":
        result = column.in_(list(value))
    elif op == "not_in":
        result = sa.or_(column.not_in(list(value)), column.is_(None))
    elif op == "between":
        low, high = value
        result = sa.and_(column >= low, column <= high)
    else:  # pragma: no cover - coerce() checks operators
        raise ValueError(f"operator {op} on {column}")
    return result


def _text_match(column: Column, op: str, value: str, dialect: str) -> Condition:
    if op == "icontains":
        return like(column, f"%{like_escape(value)}%", dialect, insensitive=True)
    if dialect == "postgresql":
        suffix = "%" if op == "contains" else ""
        return column.like(f"{suffix}{like_escape(value)}%")
    if op == "contains":
        return sa.func.instr(column, value) > 0
    return sa.func.substr(column, 1, len(value)) == value


# --- dates -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Bounds:
    low: Any  # first instant or day in the range
    high: Any  # first instant or day after it (== low for an instant)
    instant: bool


def _bounds(kind: str, value: Any, today: dt.date) -> _Bounds:
    if isinstance(value, dt.datetime):
        return _Bounds(value, value, True)
    if isinstance(value, RelativeDate):
        start, end = value.period(today)
    else:
        start, end = value, value + dt.timedelta(days=1)
    if kind == "datetime":
        return _Bounds(local_midnight(start), local_midnight(end), False)  # the zone's days
    return _Bounds(start, end, False)


def _temporal(kind: str, column: Column, op: str, value: Any, today: dt.date) -> Condition:
    """Dates and relative dates are periods: ``eq`` means within, ``lt`` before the start,
    ``lte`` before the end, ``gt`` after the end, ``gte`` from the start."""
    if op in ("in", "not_in"):
        inside = sa.or_(*(_within(column, _bounds(kind, v, today)) for v in value))
        return inside if op == "in" else sa.or_(sa.not_(inside), column.is_(None))
    if op == "between":
        low, high = (_bounds(kind, v, today) for v in value)
        upper = column <= high.low if high.instant else column < high.high
        return sa.and_(column >= low.low, upper)
    bounds = _bounds(kind, value, today)
    if op == "eq":
        return _within(column, bounds)
    if op == "ne":
        return sa.or_(sa.not_(_within(column, bounds)), column.is_(None))
    result: Any
    if op == "lt":
        result = column < bounds.low
    elif op == "gte":
        result = column >= bounds.low
    elif op == "lte":
        result = column <= bounds.low if bounds.instant else column < bounds.high
    elif op == "gt":
        result = column > bounds.low if bounds.instant else column >= bounds.high
    else:
        raise ValueError(f"operator {op} on a date")  # pragma: no cover
    return cast(Condition, result)


def _within(column: Column, bounds: _Bounds) -> Condition:
    one_day = not bounds.instant and bounds.high - bounds.low == dt.timedelta(days=1)
    if bounds.instant or (one_day and not isinstance(bounds.low, dt.datetime)):
        return cast(Condition, column == bounds.low)
    return sa.and_(column >= bounds.low, column < bounds.high)


# --- multichoice and multiple users/teams: JSON arrays ----------------------------------------


def _multi(column: Column, op: str, values: tuple[Any, ...], dialect: str) -> Condition:
    """Array semantics: ``contains`` all of, ``in`` any of, ``eq`` exactly these (any order),
    ``not_in`` none of."""
    if dialect == "postgresql":
        array = sa.type_coerce(column, postgresql.JSONB)
        if op == "contains":
            return array.contains(list(values))
        anyof = sa.or_(*(array.contains([v]) for v in values))
        exact = sa.and_(array.contains(list(values)), array.contained_by(list(values)))
    else:
        if op == "contains":
            return sa.and_(*(_has(column, [v]) for v in values))
        anyof = _has(column, values)
        exact = sa.and_(
            *(_has(column, [v]) for v in values), sa.not_(_has(column, values, negate=True))
        )
    if op == "in":
        return anyof
    if op == "not_in":
        return sa.or_(sa.not_(anyof), column.is_(None))
    if op == "eq":
        return exact
    if op == "ne":
        return sa.or_(sa.not_(exact), column.is_(None))
    raise ValueError(f"operator {op} on a list")  # pragma: no cover


def _has(column: Column, values: Sequence[Any], *, negate: bool = False) -> Condition:
    """SQLite: the JSON array holds one of ``values`` (or, negated, one outside them)."""
    each = sa.func.json_each(column).table_valued("value")
    test = each.c.value.not_in(list(values)) if negate else each.c.value.in_(list(values))
    return sa.exists(sa.select(sa.literal(1)).select_from(each).where(test))


def _multi_empty(column: Column, dialect: str) -> Condition:
    if dialect == "postgresql":
        return sa.or_(column.is_(None), sa.type_coerce(column, postgresql.JSONB).contained_by([]))
    return sa.or_(column.is_(None), sa.func.json_array_length(column) == 0)


# --- sort and keyset -----------------------------------------------------------------------


@dataclass(frozen=True)
class SortColumn:
    """One sort key as SQL: the expression ordered by and what the cursor records of it."""

    key: str  # the dotted path, e.g. "account.name"
    descending: bool
    expression: Column
    value_type: str  # how the cursor stores the value: integer, decimal, string…
    nullable: bool

    def order_by(self) -> Any:
        if self.descending:
            return self.expression.desc().nulls_first()
        return self.expression.asc().nulls_last()


def sort_expression(target: Target, column: Column) -> tuple[Column, str]:
    """What to order by for ``target``: choices follow their options' order."""
    if target.kind == "choice" and target.options:
        rank = sa.case(
            *((column == option, index) for index, option in enumerate(target.options)),
            else_=sa.case((column.is_not(None), len(target.options))),
        )
        return rank, target.sort_type
    return column, target.sort_type


def capture(sort: SortColumn, dialect: str) -> Column:
    """The sort value as read for the cursor: exact, so the next page starts right after it.

    SQLite keeps decimals as binary floats; reading them as Decimal would round them and
    the keyset comparison would miss the row. Read them as floats there.
    """
    if sort.value_type == "decimal" and dialect == "sqlite":
        return sa.type_coerce(sort.expression, sa.Float())
    return sa.type_coerce(sort.expression, SQL_TYPES.get(sort.value_type, sa.String()))


def after(sorts: Sequence[SortColumn], values: Sequence[Any]) -> Condition:
    """Rows strictly after the row whose sort values are ``values``, in the sort's order.

    NULL sorts as larger than any value (last ascending, first descending).
    """
    if _uniform(sorts, values):
        left = sa.tuple_(*(s.expression for s in sorts))
        right = sa.tuple_(*(_bind(s, v) for s, v in zip(sorts, values, strict=True)))
        return left < right if sorts[0].descending else left > right
    branches: list[Condition] = []
    equal: list[Condition] = []
    for sort, value in zip(sorts, values, strict=True):
        beyond = _beyond(sort, value)
        if beyond is not None:
            branches.append(sa.and_(*equal, beyond))
        equal.append(
            sort.expression.is_(None) if value is None else sort.expression == _bind(sort, value)
        )
    condition = sa.or_(*branches) if branches else sa.false()
    lead = _leading_bound(sorts[0], values[0])
    return condition if lead is None else sa.and_(lead, condition)


def _uniform(sorts: Sequence[SortColumn], values: Sequence[Any]) -> bool:
    """Whether a row-value comparison ``(a, b, id) > (…)`` means exactly "after".

    It does when every key runs the same way and no NULL can appear where it would sort
    after a value: descending keys put NULLs first (already passed), ascending keys need
    NOT NULL columns.
    """
    if any(v is None for v in values):
        return False
    if len({s.descending for s in sorts}) != 1:
        return False
    return sorts[0].descending or not any(s.nullable for s in sorts)


def _beyond(sort: SortColumn, value: Any) -> Condition | None:
    expression = sort.expression
    if sort.descending:
        if value is None:
            return expression.is_not(None)
        return expression < _bind(sort, value)
    if value is None:
        return None  # NULLs come last: nothing sorts after a NULL on this key
    if sort.nullable:
        return sa.or_(expression > _bind(sort, value), expression.is_(None))
    return expression > _bind(sort, value)


def _leading_bound(sort: SortColumn, value: Any) -> Condition | None:
    """A condition on the first key alone that an index range scan can use."""
    expression = sort.expression
    if value is None:
        return None if sort.descending else expression.is_(None)
    if sort.descending:
        return expression <= _bind(sort, value)
    return None if sort.nullable else expression >= _bind(sort, value)


def _bind(sort: SortColumn, value: Any) -> Column:
    """A cursor value as a parameter of the sort expression's type (True stays a value)."""
    return sa.literal(value, sort.expression.type)
