"""Field paths: which field (or system column) a name or a dotted path through
references names, and the SQL column or expression it reads.

:func:`walk` resolves ``("account", "region", "name")`` from an entity against the Model
(at most two references crossed) into a :class:`Walk` ending at a :class:`Target`.
:class:`Resolver` turns paths into column expressions: a plain column, a column of an
aliased ``LEFT OUTER JOIN`` for paths through references (one join per distinct prefix,
shared by filters, sort and formulas), or a formula compiled to SQL. The list query, the
rollups and the reports all read paths through it.
"""

from __future__ import annotations

import difflib
import weakref
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from metamodel import Entity, Field, Model
from metamodel.expressions import Context
from metamodel.model import SYSTEM_FIELDS

from .fieldtypes import OPERATORS_BY_KIND, storage
from .sqlexpr import to_sql
from .sqltypes import UTCDateTime
from .tables import Tables

Column = ColumnElement[Any]
Condition = ColumnElement[bool]

_SYSTEM_KINDS = {
    "id": "number",
    "version": "number",
    "created_at": "datetime",
    "updated_at": "datetime",
    "created_by": "ref",
    "updated_by": "ref",
    "owner_id": "ref",
    "team_id": "ref",
}

MAX_HOPS = 2  # references a path may cross: account.region.name


class QueryValueError(ValueError):
    """A filter, sort or path the Model does not allow; the message says how to fix it."""


@dataclass(frozen=True, slots=True)
class Target:
    """A field or system column as the query layer sees it.

    ``value_type`` is the expression type (``integer``, ``decimal``, ``string``…);
    ``table`` names the system table a user or team reference points at.
    """

    name: str
    kind: str
    value_type: str
    field: Field | None = None
    options: tuple[str, ...] = ()
    allowed: tuple[str, ...] | None = None  # the field type's own operators, if it says

    @property
    def operators(self) -> tuple[str, ...]:
        return OPERATORS_BY_KIND[self.kind] if self.allowed is None else self.allowed

    @property
    def sortable(self) -> bool:
        return self.kind not in ("multi", "file")

    @property
    def sort_type(self) -> str:
        """The type of what a sort on this field orders by: choices by option rank."""
        return "integer" if self.kind == "choice" and self.options else self.value_type

    @property
    def formula(self) -> bool:
        return self.field is not None and self.field.type == "formula"

    @property
    def element_type(self) -> str:
        """The type of one value of a multi field (``string`` or ``integer``)."""
        return self.value_type.removeprefix("list:")


def target(entity: Entity, name: str, hidden: AbstractSet[str] = frozenset()) -> Target:
    """The :class:`Target` for ``entity.name``, or :class:`QueryValueError` naming the fix.

    ``hidden``: fields the caller may not see, which a suggestion never names."""
    field = entity.fields.get(name)
    if field is None:
        if name in SYSTEM_FIELDS and name in entity.system_fields:
            return Target(name, _SYSTEM_KINDS[name], SYSTEM_FIELDS[name])
        known = [n for n in (*entity.fields, *entity.system_fields) if n not in hidden]
        raise QueryValueError(f"unknown field '{name}' of {entity.name}{_hint(name, known)}")
    if field.type == "children":
        raise QueryValueError(
            f"'{name}' holds child rows: filter the child entity '{field.children}' instead"
        )
    kind = storage(field)
    return Target(
        name, kind.filter_kind(field), field.value_type, field, field.choice_values, kind.operators
    )


@dataclass(frozen=True, slots=True)
class Walk:
    """A field path resolved: the references crossed, and the field at the end."""

    path: tuple[str, ...]
    refs: tuple[Field, ...]
    target: Target
    entity: str  # the entity holding the last field

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


# Walks are looked up on every request: cache them per Model (a Model never changes, and
# only paths that exist are cached, so a cache is bounded by its Model).
_WALKS: dict[int, dict[tuple[str, tuple[str, ...], int], Walk]] = {}


#: The fields of an entity (by name) the caller may not see: error messages never name them.
Hidden = Callable[[str], AbstractSet[str]]


def walk(
    model: Model,
    entity: str,
    path: tuple[str, ...],
    max_hops: int = MAX_HOPS,
    *,
    hidden: Hidden | None = None,
) -> Walk:
    """Resolve ``("account", "region", "name")`` from ``entity``; at most two references.

    ``hidden`` only shapes the message of a path that does not resolve: a suggestion never
    names a field the caller may not see."""
    cache = _WALKS.get(id(model))
    if cache is None:
        cache = _WALKS[id(model)] = {}
        weakref.finalize(model, _WALKS.pop, id(model), None)
    key = (entity, path, max_hops)
    found = cache.get(key)
    if found is None:
        found = cache[key] = _walk(model, entity, path, max_hops, hidden)
    return found


def _walk(
    model: Model, entity: str, path: tuple[str, ...], max_hops: int, hidden: Hidden | None
) -> Walk:
    if not path or any(not part for part in path):
        raise QueryValueError("empty field name")
    if len(path) > max_hops + 1:
        raise QueryValueError(
            f"'{'.'.join(path)}' crosses {len(path) - 1} references; at most {max_hops} are allowed"
        )
    current = model.entity(entity)
    refs: list[Field] = []
    for name in path[:-1]:
        field = current.fields.get(name)
        if field is None:
            # an unknown name: raises, suggesting the closest the caller may see
            target(current, name, hidden(current.name) if hidden else frozenset())
        if field is None or field.type != "reference" or not field.to:
            raise QueryValueError(
                f"'{name}' is not a reference to an entity, so nothing can follow its '.'"
            )
        refs.append(field)
        current = model.entity(field.to)
    last = target(current, path[-1], hidden(current.name) if hidden else frozenset())
    return Walk(path, tuple(refs), last, current.name)


def _hint(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


#: What a caller may see of an entity's records, as a condition on a table (or alias) of
#: it; None when everything.
Sight = Callable[[str, sa.FromClause], "Condition | None"]

#: Expression type → the SQL type a computed value is read and bound as.
SQL_TYPES: dict[str, sa.types.TypeEngine[Any]] = {
    "integer": sa.Integer(),
    "decimal": sa.Numeric(),
    "string": sa.String(),
    "boolean": sa.Boolean(),
    "date": sa.Date(),
    "datetime": UTCDateTime(),
}

# Formulas may read paths of their own (two hops) at the end of a filter path (two more).
_INTERNAL_HOPS = 6


class Resolver:
    """Columns for field paths of one entity, joining the referenced tables it needs.

    >>> resolver = Resolver(tables, "opportunity", "postgresql", Context())
    >>> clause = resolver.column(("account", "grade")) == "A"
    >>> select(...).select_from(resolver.from_clause()).where(clause)

    The base table is the entity's own table, not an alias, so conditions written against
    ``tables.table(entity)`` (permission scopes) apply unchanged.
    """

    def __init__(
        self,
        tables: Tables,
        entity: str,
        dialect: str,
        context: Context,
        base: sa.FromClause | None = None,
        *,
        sight: Sight | None = None,
    ) -> None:
        self.tables = tables
        self.entity = entity
        self.dialect = dialect
        self.context = context
        self.sight = sight
        self.base: sa.FromClause = tables.table(entity) if base is None else base
        # (path prefix, how many of its hops the caller wrote) → the table there
        self._tables: dict[tuple[tuple[str, ...], int], sa.FromClause] = {((), 0): self.base}
        self._joins: list[tuple[sa.FromClause, Condition]] = []
        self._formulas: dict[tuple[tuple[str, ...], int], Column] = {}

    @property
    def joined(self) -> bool:
        return bool(self._joins)

    def from_clause(self) -> sa.FromClause:
        """The base table with every join resolved so far."""
        clause: sa.FromClause = self.base
        for alias, on in self._joins:
            clause = clause.outerjoin(alias, on)
        return clause

    def walk(self, path: Sequence[str], *, internal: bool = False) -> Walk:
        if internal:
            return walk(self.tables.model, self.entity, tuple(path), _INTERNAL_HOPS)
        return walk(self.tables.model, self.entity, tuple(path))

    def column(self, path: Sequence[str]) -> Column:
        """The column (or computed expression) for a field path; joins as needed."""
        return self.column_of(self.walk(path))

    def column_of(self, found: Walk, written: int | None = None) -> Column:
        """The column at ``found``. ``written``: how many of its references the caller
        wrote (all, by default); those are joined only to records in the caller's sight,
        while the hops a formula adds read its record's references whoever looks."""
        prefix = found.path[:-1]
        written = len(prefix) if written is None else min(written, len(prefix))
        table = self._table_at(found, prefix, written)
        target = found.target
        if not target.formula:
            return table.c[target.name]
        cached = self._formulas.get((found.path, written))
        if cached is None:
            expression = target.field.expression if target.field else None
            assert expression is not None, f"formula {target.name} has no expression"
            sql = to_sql(
                expression,
                lambda sub: self.column_of(
                    self.walk((*prefix, *sub), internal=True), written=len(prefix)
                ),
                self.dialect,
                self.context,
            )
            cached = sa.type_coerce(sql, SQL_TYPES.get(target.value_type, sa.String()))
            self._formulas[(found.path, written)] = cached
        return cached

    def _table_at(self, found: Walk, prefix: tuple[str, ...], written: int) -> sa.FromClause:
        written = min(written, len(prefix))
        key = (prefix, written)
        if key in self._tables:
            return self._tables[key]
        parent = self._table_at(found, prefix[:-1], written)
        reference = found.refs[len(prefix) - 1]
        assert reference.to is not None
        alias = self.tables.table(reference.to).alias()
        on: Condition = alias.c.id == parent.c[reference.name]
        if self.sight is not None and len(prefix) <= written:
            # A record out of the caller's sight reads as no record at all: its fields
            # are empty to filters and sort, as if the reference were empty.
            visible = self.sight(reference.to, alias)
            if visible is not None:
                on = sa.and_(on, visible)
        self._joins.append((alias, on))
        self._tables[key] = alias
        return alias

    def nullable(self, found: Walk) -> bool:
        """Whether the value at a path may be NULL (only NOT NULL base columns may not)."""
        if len(found.path) > 1 or found.target.formula:
            return True
        return bool(self.base.c[found.target.name].nullable)
