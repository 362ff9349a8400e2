"""Compile a checked expression into a SQLAlchemy expression.

The same tree that :mod:`metamodel.expressions` evaluates in Python becomes a SQL
expression here, so a list filter or a report condition runs in the database with the
same meaning: comparisons with NULL are false, division by zero gives NULL, and dates
compare as dates. Values that depend on the moment (``today()``) are bound when the
SQL is built, so build it per query.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.elements import ColumnElement

from metamodel.expressions import (
    DATE,
    DATETIME,
    DECIMAL,
    INTEGER,
    NO_CONTEXT,
    STRING,
    Binary,
    Call,
    Compare,
    Conditional,
    Context,
    Expression,
    FieldRef,
    ListOf,
    Literal,
    Logical,
    Node,
    Path,
    Unary,
)

Resolve = Callable[[Path], Any]

_SQL_TYPES: dict[str, Any] = {
    INTEGER: sa.Integer(),
    DECIMAL: sa.Numeric(),
    STRING: sa.String(),
    DATE: sa.Date(),
    DATETIME: sa.DateTime(timezone=True),
    "boolean": sa.Boolean(),
}


def to_sql(
    expression: Expression,
    resolve: Resolve,
    dialect: str = "postgresql",
    context: Context = NO_CONTEXT,
) -> Any:
    """A SQLAlchemy expression for ``expression``; ``resolve`` maps each field path to a
    column expression (see :class:`engine.paths.Resolver`).

    Build it per query: ``today()`` and ``current_user()`` are bound as values."""
    return _Compiler(resolve, dialect, context).build(expression.tree)


class _Compiler:
    def __init__(self, resolve: Resolve, dialect: str, context: Context) -> None:
        self.resolve = resolve
        self.context = context
        self.sqlite = dialect == "sqlite"

    def build(self, node: Node) -> Any:
        method: Callable[[Any], Any] = getattr(self, f"_{type(node).__name__}")
        return method(node)

    def _Literal(self, node: Literal) -> Any:
        if node.value is None:
            return sa.null()
        return sa.literal(node.value, _SQL_TYPES.get(node.type))

    def _FieldRef(self, node: FieldRef) -> Any:
        return self.resolve(node.path)

    def _ListOf(self, node: ListOf) -> Any:  # only reached inside 'in'
        return [self.build(item) for item in node.items]

    def _Unary(self, node: Unary) -> Any:
        inner = self.build(node.operand)
        return sa.not_(sa.func.coalesce(inner, False)) if node.op == "not" else -inner

    def _Binary(self, node: Binary) -> Any:
        left, right = self.build(node.left), self.build(node.right)
        if node.type == STRING:
            return sa.func.coalesce(left, "").concat(sa.func.coalesce(right, ""))
        if node.op == "/":
            # SQLite's CAST(… AS NUMERIC) makes 123450.0 an integer, and integers divide
            # without a fraction: divide as REAL there.
            numerator = sa.cast(left, sa.Float if self.sqlite else sa.Numeric)
            return numerator / sa.func.nullif(right, 0)
        if node.op == "%":
            return left % sa.func.nullif(right, 0)
        return {"+": left + right, "-": left - right, "*": left * right}[node.op]

    def _Compare(self, node: Compare) -> Any:
        op = node.op
        if op in ("in", "not_in"):
            clause = sa.func.coalesce(self._contains(node), False)
            if op == "in":
                return clause
            return sa.and_(self.build(node.left).is_not(None), sa.not_(clause))
        left, right = self.build(node.left), self.build(node.right)
        if isinstance(node.right, Literal) and node.right.value is None:
            return left.is_(None) if op == "==" else left.is_not(None)
        if isinstance(node.left, Literal) and node.left.value is None:
            return right.is_(None) if op == "==" else right.is_not(None)
        # Two empty values are equal and an empty value differs from any other, where
        # SQL's = and <> would say "unknown".
        if op == "==":
            return left.is_not_distinct_from(right)
        if op == "!=":
            return left.is_distinct_from(right)
        return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]

    def _contains(self, node: Compare) -> Any:
        left = self.build(node.left)
        if isinstance(node.right, ListOf):
            items = self._ListOf(node.right)
            if all(isinstance(i, Literal) for i in node.right.items):
                values = [i.value for i in node.right.items if isinstance(i, Literal)]
                return left.in_(values) if values else sa.false()
            return sa.or_(*(left == item for item in items)) if items else sa.false()
        right = self.build(node.right)
        if node.right.type.startswith("list"):
            if self.sqlite:
                each = sa.func.json_each(right).table_valued("value")
                return sa.exists(
                    sa.select(sa.literal(1)).select_from(each).where(each.c.value == left)
                )
            return sa.type_coerce(right, postgresql.JSONB).contains(sa.func.jsonb_build_array(left))
        # text in text: a substring test; LIKE wildcards in the needle are escaped.
        return (
            sa.func.strpos(right, left) > 0 if not self.sqlite else sa.func.instr(right, left) > 0
        )

    def _Logical(self, node: Logical) -> Any:
        parts = [sa.func.coalesce(self.build(v), False) for v in node.values]
        return sa.and_(*parts) if node.op == "and" else sa.or_(*parts)

    def _Conditional(self, node: Conditional) -> Any:
        test = sa.func.coalesce(self.build(node.test), False)
        return sa.case((test, self.build(node.body)), else_=self.build(node.orelse))

    def _Call(self, node: Call) -> Any:
        args = [self.build(a) for a in node.args]
        name = node.name
        if name == "today":
            return sa.literal(self.context.current_date(), sa.Date())
        if name == "now":
            return sa.literal(self.context.current_time(), sa.DateTime(timezone=True))
        if name in ("current_user", "current_team"):
            value = self.context.user_id if name == "current_user" else self.context.team_id
            return sa.null() if value is None else sa.literal(value, sa.Integer())
        if name == "text":
            if node.args[0].type == "boolean":
                return sa.case((args[0], "true"), (sa.not_(args[0]), "false"))
            if node.args[0].type == "date":
                if self.sqlite:
                    return sa.func.date(args[0])
                return sa.func.to_char(args[0], "YYYY-MM-DD")
            return sa.cast(args[0], sa.String)
        if name == "days_between":
            a, b = args
            if self.sqlite:
                return sa.cast(
                    sa.func.julianday(sa.func.date(b)) - sa.func.julianday(sa.func.date(a)),
                    sa.Integer,
                )
            return sa.cast(b, sa.Date) - sa.cast(a, sa.Date)
        if name == "add_days":
            d, n = args
            if self.sqlite:
                return sa.func.date(d, sa.func.printf("%+d days", n))
            return sa.cast(d, sa.Date) + n
        if name in ("year", "month", "day"):
            return sa.cast(sa.extract(name, args[0]), sa.Integer)
        if name == "len":
            if node.args[0].type.startswith("list"):
                func = sa.func.json_array_length if self.sqlite else sa.func.jsonb_array_length
                return func(args[0])
            return sa.func.length(args[0])
        if name in ("lower", "upper", "abs", "coalesce"):
            return getattr(sa.func, name)(*args)
        if name == "trim":
            return sa.func.trim(args[0])
        if name == "startswith":
            # substr, not LIKE: '_' and '%' in the prefix are plain characters.
            return sa.func.substr(args[0], 1, sa.func.length(args[1])) == args[1]
        if name == "concat":
            result: ColumnElement[Any] = sa.func.coalesce(args[0], "")
            for arg in args[1:]:
                result = result.concat(sa.func.coalesce(arg, ""))
            return result
        if name == "is_empty":
            value = args[0]
            if node.args[0].type == STRING:
                return sa.or_(value.is_(None), value == "")
            if node.args[0].type.startswith("list"):
                length = sa.func.json_array_length if self.sqlite else sa.func.jsonb_array_length
                return sa.or_(value.is_(None), sa.func.coalesce(length(value), 0) == 0)
            return value.is_(None)
        if name == "round":
            if len(args) == 1:
                return sa.cast(sa.func.round(sa.cast(args[0], sa.Numeric), 0), sa.Integer)
            return sa.func.round(sa.cast(args[0], sa.Numeric), args[1])
        if name in ("min", "max"):
            if self.sqlite:
                # SQLite's min()/max() give NULL if any argument is NULL; the language
                # ignores empty arguments. Fill each from the others.
                filled = [sa.func.coalesce(a, *(b for b in args if b is not a)) for a in args]
                return getattr(sa.func, name)(*filled)
            return (sa.func.least if name == "min" else sa.func.greatest)(*args)
        raise ValueError(f"no SQL form for {name}()")  # pragma: no cover
