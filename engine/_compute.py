"""Computed values: formulas when a record is read, rollups when a related record changes.

Formulas are not stored: they are evaluated on read (a formula using ``today()`` must be
right tomorrow too), with the values of referenced records they name (``contract.status``)
loaded in one query per reference for a whole page. Rollups are stored and recomputed
with one ``UPDATE … SET total = (SELECT sum(…) …)`` per affected parent, in the same
transaction as the change that moved them — and up the chain when a rollup feeds another.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from functools import cached_property
from typing import Any

import sqlalchemy as sa

from metamodel import Entity, Field
from metamodel.expressions import Context, Expression

from .fieldtypes import scale_of
from .paths import Resolver
from .sqlexpr import to_sql
from .tables import Tables

Paths = dict[str, set[tuple[str, ...]]]  # first hop → the rest of each path
MAX_HOPS = 3
MAX_CHAIN = 6


def _formula_order(ent: Entity) -> list[Field]:
    """Formula fields, each after the formulas it reads."""
    formulas = {f.name: f for f in ent.fields.values() if f.expression is not None}
    ordered: list[Field] = []
    done: set[str] = set()

    def visit(field: Field) -> None:
        if field.name in done:
            return
        done.add(field.name)
        assert field.expression is not None
        for path in field.expression.fields:
            if len(path) == 1 and path[0] in formulas:
                visit(formulas[path[0]])
        ordered.append(field)

    for field in formulas.values():
        visit(field)
    return ordered


def _paths(expressions: Iterable[Expression | None]) -> Paths:
    hops: Paths = {}
    for expression in expressions:
        if expression is None:
            continue
        for path in expression.fields:
            if len(path) > 1:
                hops.setdefault(path[0], set()).add(path[1:])
    return hops


class Computer:
    def __init__(self, tables: Tables, dialect: str) -> None:
        self.tables = tables
        self.model = tables.model
        self.dialect = dialect

    @cached_property
    def _orders(self) -> dict[str, list[Field]]:
        return {ent.name: _formula_order(ent) for ent in self.model}

    @cached_property
    def _formula_paths(self) -> dict[str, Paths]:
        return {
            ent.name: _paths(f.expression for f in self._orders[ent.name]) for ent in self.model
        }

    @cached_property
    def _all_paths(self) -> dict[str, Paths]:
        result = {}
        for ent in self.model:
            expressions: list[Expression | None] = [f.expression for f in self._orders[ent.name]]
            for field in ent.fields.values():
                expressions += [field.required_when, field.visible_when, field.readonly_when]
                expressions.append(field.default_expression)
            for validation in ent.validations:
                expressions += [validation.rule, validation.when]
            for workflow in self.model.workflows_of(ent.name):
                expressions += workflow.expressions
            result[ent.name] = _paths(expressions)
        return result

    @cached_property
    def _scales(self) -> dict[tuple[str, str], int | None]:
        return {
            (ent.name, field.name): scale_of(field, self.model)
            for ent in self.model
            for field in ent.fields.values()
            if field.type in ("formula", "rollup")
        }

    def _scaled(self, field: Field, value: Any) -> Any:
        """A formula's decimal with the places its type has (money: 2), half away from
        zero as SQL's round() and the language's round() do."""
        scale = self._scales.get((field.entity, field.name))
        if scale is None or not isinstance(value, Decimal) or not value.is_finite():
            return value
        return value.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP)

    @cached_property
    def _consumers(self) -> dict[str, list[tuple[Entity, Field]]]:
        """For each entity, the rollup fields (and their entities) that aggregate it."""
        found: dict[str, list[tuple[Entity, Field]]] = {}
        for ent in self.model:
            for field in ent.fields_of_type("rollup"):
                found.setdefault(field.of or "", []).append((ent, field))
        return found

    # formulas -----------------------------------------------------------------------------

    def formulas(
        self, conn: sa.Connection, ent: Entity, rows: Sequence[dict[str, Any]], context: Context
    ) -> None:
        """Evaluate ``ent``'s formulas for ``rows``, writing the values into them."""
        if not self._orders[ent.name] or not rows:
            return
        views = self._views(conn, ent, rows, context, self._formula_paths[ent.name], 0)
        for row, view in zip(rows, views, strict=True):
            for field in self._orders[ent.name]:
                row[field.name] = view.get(field.name)

    def view(
        self, conn: sa.Connection, ent: Entity, record: Mapping[str, Any], context: Context
    ) -> dict[str, Any]:
        """``record`` as expressions see it: formulas computed, referenced records loaded."""
        return self._views(conn, ent, [record], context, self._all_paths[ent.name], 0)[0]

    def _views(
        self,
        conn: sa.Connection,
        ent: Entity,
        rows: Sequence[Mapping[str, Any]],
        context: Context,
        paths: Paths,
        depth: int,
    ) -> list[dict[str, Any]]:
        views = [dict(row) for row in rows]
        if depth < MAX_HOPS:
            for hop, rest in paths.items():
                field = ent.fields.get(hop)
                if field is None or field.to is None:
                    continue
                targets = self._load(
                    conn, field.to, {v.get(hop) for v in views}, context, rest, depth
                )
                for view in views:
                    view[hop] = targets.get(view.get(hop))
        for view in views:
            for field in self._orders[ent.name]:
                assert field.expression is not None
                try:
                    value = field.expression.evaluate(view, context)
                    view[field.name] = self._scaled(field, value)
                except (ArithmeticError, TypeError, ValueError):
                    view[field.name] = None
        return views

    def _load(
        self,
        conn: sa.Connection,
        entity: str,
        ids: set[Any],
        context: Context,
        rest: set[tuple[str, ...]],
        depth: int,
    ) -> dict[Any, dict[str, Any]]:
        ids.discard(None)
        if not ids:
            return {}
        target = self.model.entity(entity)
        table = self.tables.table(entity)
        rows = self._rows(conn, table, ids)
        nested: Paths = {}
        for path in rest:
            if len(path) > 1:
                nested.setdefault(path[0], set()).add(path[1:])
        for hop, more in self._formula_paths[entity].items():
            nested.setdefault(hop, set()).update(more)
        views = self._views(conn, target, rows, context, nested, depth + 1)
        return {view["id"]: view for view in views}

    # rollups ------------------------------------------------------------------------------

    def refresh_rollups(
        self,
        conn: sa.Connection,
        ent: Entity,
        befores: Sequence[Mapping[str, Any] | None],
        afters: Sequence[Mapping[str, Any] | None],
        depth: int = 0,
    ) -> None:
        """Recompute the rollups that aggregate ``ent`` for every parent a change touched
        (a moved record touches its old and its new parent)."""
        if depth > MAX_CHAIN:
            return
        for parent, field in self._consumers.get(ent.name, ()):
            via = field.via or ""
            ids = {row.get(via) for row in (*befores, *afters) if row is not None} - {None}
            if not ids:
                continue
            self._recompute(conn, parent, field, ids)
            if parent.name in self._consumers:
                rows = self._rows(conn, self.tables.table(parent.name), ids)
                self.refresh_rollups(conn, parent, [], rows, depth + 1)

    @staticmethod
    def _rows(conn: sa.Connection, table: sa.Table, ids: set[Any]) -> list[dict[str, Any]]:
        query = sa.select(table).where(table.c.id.in_(ids))
        return [dict(row) for row in conn.execute(query).mappings()]

    def recompute_all(self, conn: sa.Connection, parent: Entity, field: Field) -> None:
        """Recompute one rollup for every record (a new rollup field, a changed filter)."""
        self._recompute(conn, parent, field, None)

    def _recompute(
        self, conn: sa.Connection, parent: Entity, field: Field, ids: set[Any] | None
    ) -> None:
        source = self.model.entity(field.of or "")
        rows = self.tables.table(source.name).alias("rolled")
        target = self.tables.table(parent.name)
        paths = Resolver(self.tables, source.name, self.dialect, Context(), base=rows)
        aggregate = field.aggregate or "count"
        if aggregate == "count":
            measure: Any = sa.func.count(rows.c.id)
        else:
            measure = getattr(sa.func, aggregate)(paths.column((field.rollup_field or "",)))
        condition = None
        if field.filter is not None:
            clause = to_sql(field.filter, paths.column, self.dialect, Context())
            condition = sa.func.coalesce(clause, False)
        query = (
            sa.select(measure)
            .select_from(paths.from_clause())
            .where(rows.c[field.via or ""] == target.c.id)
        )
        if condition is not None:
            query = query.where(condition)
        value: Any = query.scalar_subquery()
        scale = self._scales.get((parent.name, field.name))
        if aggregate != "count" and scale is not None:
            # kept at the places of what it sums (money: 2), not the database's own
            value = sa.func.round(value, scale)
        if aggregate in ("sum", "count"):
            value = sa.func.coalesce(value, 0)
        update = target.update().values({field.name: value})
        if ids is not None:
            update = update.where(target.c.id.in_(ids))
        conn.execute(update)
