"""Field paths as SQL: columns, formulas and paths through references.

Expressions reach SQL through a *resolver*: a function from a field path to a column
expression. This one resolves a stored field to its column, a formula to its own
expression compiled recursively, and ``account.grade`` to a correlated scalar subquery, so
rollup filters and aggregated formulas run in the database with one meaning.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from metamodel import Entity
from metamodel.expressions import Context

from .tables import Schema

Resolver = Callable[[tuple[str, ...]], Any]


def resolver(
    schema: Schema, entity: Entity, table: Any, context: Context, dialect: str
) -> Resolver:
    """A resolver for expressions about ``entity`` rows of ``table`` (a table or an alias)."""

    def resolve(path: tuple[str, ...]) -> Any:
        name = path[0]
        field = entity.fields.get(name)
        if len(path) == 1:
            if field is not None and field.expression is not None:
                return field.expression.to_sql(resolve, dialect, context)
            return table.c[name]
        assert field is not None and field.to is not None  # the metamodel checked the path
        target = schema.model.entity(field.to)
        target_table = schema.table(target.name).alias()
        inner = resolver(schema, target, target_table, context, dialect)(path[1:])
        return (
            sa.select(inner)
            .where(target_table.c.id == table.c[name])
            .correlate_except(target_table)
            .scalar_subquery()
        )

    return resolve
