"""List queries: filters, sort, keyset pagination, search, field selection, titles, counts.

The REST API's list parameters become a :class:`ListQuery` with :func:`parse_params`;
:func:`run` turns it into one SQL statement for the page, one for the count (two on
PostgreSQL when the result is huge) and one per expanded reference — never one per row::

    >>> query = parse_params(model, "opportunity", {"stage__in": "proposal,negotiation",
    ...                                             "account.grade": "A",
    ...                                             "expected_close_date": "this_quarter",
    ...                                             "sort": "-amount,name", "expand": "account"})
    >>> page = run(conn, tables, "opportunity", query, actor)
    >>> page.rows[0]["account__title"], page.next_cursor, page.count, page.count_estimated
    ('Acme', 'eyJ2Ijpb…', 137, False)

Meanings (docs/queries.md has the full reference):

- ``ne`` and ``not_in`` keep records whose value is empty; ``isnull=true`` means empty
  (NULL, an empty text or an empty multichoice).
- Dates, ISO days on datetime fields and relative dates (``this_month``) are periods:
  ``eq`` is "within", ``gte`` "from its start", ``lt`` "before its start", ``lte`` "up to its
  end", ``gt`` "after its end". Weeks start on Monday; days are UTC days.
- NULL sorts after every value: last ascending, first descending, on both databases.
- ``id`` ends every sort, so the order is total and a cursor is a position in it.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement, ColumnElement
from sqlalchemy.sql.expression import Executable
from sqlalchemy.sql.visitors import InternalTraversal

from metamodel import (
    Entity,
    Expression,
    ExpressionError,
    Model,
    UnknownName,
    local_today,
    parse,
)
from metamodel.expressions import Context
from metamodel.model import SortKey, parse_sort

from ..context import Actor
from ..errors import BadRequest, NotFound
from ..fieldtypes import OPERATORS, OPERATORS_BY_KIND
from ..paths import Hidden, QueryValueError, Resolver, Sight, Target, Walk, target, walk
from ..search import _sqlite as fts
from ..search import search_columns, search_condition, search_fields
from ..sqlexpr import to_sql
from ..tables import TEAM_TABLE, USER_TABLE, Tables
from . import _cursor as cursors
from ._sql import SortColumn, after, capture, condition, sort_expression
from ._values import MAX_LIST, MAX_TEXT, RELATIVE_DATES, RelativeDate, coerce

# Besides running queries, what a query may say is public, for whatever describes the
# query API (the OpenAPI document): the kind of each field or system column (target(),
# Target.kind), the operators each kind accepts (OPERATORS_BY_KIND), the relative dates,
# the parameter names that are not filters (RESERVED) and the limits on values.
__all__ = [
    "DEFAULT_LIMIT",
    "EXACT_COUNT_UP_TO",
    "MAX_LIMIT",
    "MAX_LIST",
    "MAX_SEARCH",
    "MAX_TEXT",
    "OPERATORS",
    "OPERATORS_BY_KIND",
    "RELATIVE_DATES",
    "RESERVED",
    "Filter",
    "ListQuery",
    "Page",
    "QueryValueError",
    "RelativeDate",
    "Target",
    "compile_filter",
    "parse_params",
    "parse_where",
    "run",
    "target",
]

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
EXACT_COUNT_UP_TO = 1_000
#: How long a planner's row estimate is reused for the same query and values (seconds).
ESTIMATE_SECONDS = 60.0
#: On PostgreSQL, a table of more than this many times ``exact_count_up_to`` rows asks the
#: planner first and counts only when it expects few matches (see :func:`_count`).
PLAN_FIRST_FACTOR = 10
MAX_SEARCH = 200
RESERVED = frozenset({"sort", "limit", "cursor", "q", "fields", "expand"})


@dataclass(frozen=True, slots=True)
class Filter:
    """``path`` ``op`` ``value``: ``Filter(("account", "grade"), "eq", "A")``.

    ``value`` is already typed (see :func:`parse_params`): a tuple for ``in``, ``not_in``,
    ``between`` and multichoice fields, a bool for ``isnull``, a :class:`RelativeDate` or a
    date for date periods.
    """

    path: tuple[str, ...]
    op: str
    value: Any

    @property
    def key(self) -> str:
        """The parameter this filter came from, for error messages: ``amount__gte``."""
        dotted = ".".join(self.path)
        return dotted if self.op == "eq" else f"{dotted}__{self.op}"


@dataclass(frozen=True)
class ListQuery:
    """One list request, already validated and typed."""

    filters: tuple[Filter, ...] = ()
    sort: tuple[SortKey, ...] = ()
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None
    search: str | None = None
    fields: tuple[str, ...] | None = None
    expand: tuple[str, ...] = ()
    where: Expression | None = None
    search_in: tuple[str, ...] | None = None  # narrower search fields (e.g. without hidden ones)


@dataclass
class Page:
    """One page of rows; ``row["<field>__title"]`` holds each expanded reference's title."""

    rows: list[dict[str, Any]]
    next_cursor: str | None
    count: int
    count_estimated: bool


class _Errors:
    """Field errors collected across a whole request, raised together."""

    def __init__(self) -> None:
        self.fields: dict[str, list[str]] = {}

    def add(self, key: str, message: str) -> None:
        self.fields.setdefault(key, []).append(message)

    def raise_any(self) -> None:
        if self.fields:
            first = "; ".join(f"{k}: {m[0]}" for k, m in list(self.fields.items())[:3])
            raise BadRequest(f"Invalid list query: {first}", self.fields)


def _entity(model: Model, entity: str) -> Entity:
    try:
        return model.entity(entity)
    except UnknownName as exc:
        raise NotFound(str(exc)) from None


# --- parsing request parameters -----------------------------------------------------------


def parse_params(
    model: Model,
    entity: str,
    params: Mapping[str, str | Sequence[str]],
    *,
    hidden: Hidden | None = None,
) -> ListQuery:
    """A :class:`ListQuery` from the API's query parameters.

    Reserved keys: ``sort`` (``-amount,name``), ``limit`` (1–500, default 50), ``cursor``,
    ``q`` (search), ``fields`` and ``expand`` (comma-separated). Every other key is a filter
    ``field[.path][__op]=value``; a repeated filter key ANDs its values. Every problem is
    reported at once as :class:`BadRequest` with ``{parameter: [messages]}``. ``hidden``
    gives the fields of each entity the caller may not see: no message suggests them.

    >>> parse_params(model, "account", {"revenue__gte": "1000", "sort": "-revenue"}).filters
    (Filter(path=('revenue',), op='gte', value=Decimal('1000')),)
    """
    ent = _entity(model, entity)
    errors = _Errors()
    reserved: dict[str, str] = {}
    filters: list[Filter] = []
    for key, raw in params.items():
        values = [raw] if isinstance(raw, str) else list(raw)
        if key in RESERVED:
            if key in ("sort", "fields", "expand"):
                reserved[key] = ",".join(values)
            elif len(set(values)) > 1:
                errors.add(key, f"give '{key}' once")
            elif values:
                reserved[key] = values[0]
            continue
        try:
            found, op = _split_key(model, entity, key, hidden)
        except QueryValueError as exc:
            errors.add(key, str(exc))
            continue
        for value in values:
            try:
                filters.append(Filter(found.path, op, coerce(found.target, op, value)))
            except QueryValueError as exc:
                errors.add(key, str(exc))

    limit = DEFAULT_LIMIT
    if "limit" in reserved:
        text = reserved["limit"].strip()
        if text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_LIMIT:
            limit = int(text)
        else:
            errors.add("limit", f"limit must be a whole number from 1 to {MAX_LIMIT}")
    sort: tuple[SortKey, ...] = ()
    if reserved.get("sort", "").strip():
        sort = parse_sort(reserved["sort"])
        _collect(errors, "sort", lambda: _sort_plan(model, ent, sort, hidden))
    fields = None
    if "fields" in reserved:
        fields = _names(reserved["fields"])
        _collect(errors, "fields", lambda: _check_fields(ent, fields, hidden))
    expand = _names(reserved.get("expand", ""))
    _collect(errors, "expand", lambda: _check_expand(ent, expand, hidden))
    search = reserved.get("q", "").strip() or None
    if search is not None:
        _collect(errors, "q", lambda: _check_search(ent, search))
    cursor = reserved.get("cursor") or None
    if cursor is not None and "sort" not in errors.fields:
        _collect(errors, "cursor", lambda: _cursor_values(model, ent, sort, cursor, hidden))
    errors.raise_any()
    return ListQuery(tuple(filters), sort, limit, cursor, search, fields, expand)


def _collect(errors: _Errors, key: str, check: Any) -> None:
    try:
        check()
    except QueryValueError as exc:
        errors.add(key, str(exc))


def _names(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))


def _split_key(model: Model, entity: str, key: str, hidden: Hidden | None) -> tuple[Walk, str]:
    """``account.grade__in`` → (the walk to account.grade, "in"); no operator means eq."""
    head, sep, tail = key.rpartition("__")
    if sep and tail in OPERATORS:
        return walk(model, entity, tuple(head.split(".")), hidden=hidden), tail
    try:
        return walk(model, entity, tuple(key.split(".")), hidden=hidden), "eq"
    except QueryValueError:
        if not sep:
            raise
        # the field before '__' exists: the operator is what is wrong (else its error)
        walk(model, entity, tuple(head.split(".")), hidden=hidden)
        raise QueryValueError(
            f"unknown operator '{tail}' (operators: {', '.join(OPERATORS)})"
        ) from None


# --- validating the other parts ----------------------------------------------------------------


def _sort_keys(entity: Entity, sort: Sequence[SortKey]) -> tuple[SortKey, ...]:
    """The sort actually used: the request's, the entity's default or ``-id``, then ``id``."""
    keys = list(sort or entity.default_sort or (SortKey("id", True),))
    result: list[SortKey] = []
    for key in keys:
        result.append(key)
        if key.field == "id":
            return tuple(result)  # id is unique: later keys could never matter
    return (*result, SortKey("id", keys[-1].descending))


def _sort_plan(
    model: Model, entity: Entity, sort: Sequence[SortKey], hidden: Hidden | None = None
) -> list[tuple[SortKey, Walk]]:
    plan = []
    for key in _sort_keys(entity, sort):
        found = walk(model, entity.name, tuple(key.field.split(".")), hidden=hidden)
        if not found.target.sortable:
            raise QueryValueError(f"cannot sort by {found.target.kind} field '{key.field}'")
        plan.append((key, found))
    return plan


def _signature(entity: Entity, keys: Sequence[SortKey]) -> str:
    return f"{entity.name}:{','.join(str(k) for k in keys)}"


def _cursor_values(
    model: Model,
    entity: Entity,
    sort: Sequence[SortKey],
    cursor: str,
    hidden: Hidden | None = None,
) -> list[Any]:
    plan = _sort_plan(model, entity, sort, hidden)
    types = [found.target.sort_type for _, found in plan]
    try:
        return cursors.decode(_signature(entity, [k for k, _ in plan]), types, cursor)
    except cursors.CursorError as exc:
        raise QueryValueError(
            f"invalid cursor ({exc}); start again from the first page, without 'cursor'"
        ) from None


def _check_fields(entity: Entity, fields: Sequence[str], hidden: Hidden | None = None) -> None:
    for name in fields:
        target(entity, name, hidden(entity.name) if hidden else frozenset())


def _check_expand(entity: Entity, names: Sequence[str], hidden: Hidden | None = None) -> None:
    for name in names:
        found = target(entity, name, hidden(entity.name) if hidden else frozenset())
        if _title_source(found) is None:
            raise QueryValueError(
                f"cannot expand '{name}': only reference, user and team fields have titles"
            )


def _check_search(entity: Entity, text: str) -> None:
    if len(text) > MAX_SEARCH:
        raise QueryValueError(f"search text longer than {MAX_SEARCH} characters")
    if "\x00" in text:
        raise QueryValueError("search text may not contain NUL characters")
    if not search_fields(entity):
        raise QueryValueError(f"{entity.name} has no search fields")


# --- list-view filters ------------------------------------------------------------------------


class _Scope:
    """The names an expression on ``entity`` may use, read from the compiled Model."""

    def __init__(self, model: Model, entity: str) -> None:
        self.model = model
        self.entity = entity

    def type_of(self, path: tuple[str, ...]) -> str:
        try:
            return walk(self.model, self.entity, path).target.value_type
        except QueryValueError as exc:
            raise ExpressionError(str(exc)) from None

    def options_of(self, path: tuple[str, ...]) -> list[str] | None:
        try:
            return list(walk(self.model, self.entity, path).target.options) or None
        except QueryValueError:
            return None


def parse_where(model: Model, entity: str, source: str) -> Expression:
    """A boolean expression over ``entity``'s fields, for :attr:`ListQuery.where`.

    >>> parse_where(model, "opportunity", "owner_id == current_user() and account.grade == 'A'")
    """
    _entity(model, entity)
    try:
        return parse(source, _Scope(model, entity), expect="boolean")
    except ExpressionError as exc:
        raise BadRequest(f"Invalid filter: {exc}", {"where": [str(exc)]}) from None


# --- compiling filters ---------------------------------------------------------------------------


def compile_filter(
    tables: Tables,
    entity: str,
    path: Sequence[str],
    op: str,
    value: Any,
    dialect: str,
    *,
    today: dt.date | None = None,
    resolver: Resolver | None = None,
    sight: Sight | None = None,
) -> ColumnElement[bool]:
    """The SQL condition for one filter on ``tables.table(entity)``.

    With a ``resolver``, paths through references use its joins (select from
    ``resolver.from_clause()``). Without one the condition stands alone: a path becomes
    ``id IN (SELECT … JOIN …)``, so it can be added to any query on the entity's table.
    ``sight`` limits the records reached through references to those a caller may read.

    >>> compile_filter(tables, "opportunity", ("account", "grade"), "eq", "A", "postgresql")
    """
    day = today or local_today()
    if resolver is not None:
        return _condition(resolver, tuple(path), op, value, day)
    context = Context(today=day)
    plain = Resolver(tables, entity, dialect, context, sight=sight)
    clause = _condition(plain, tuple(path), op, value, day)
    if not plain.joined:
        return clause
    table = tables.table(entity)
    inner = Resolver(tables, entity, dialect, context, base=table.alias(), sight=sight)
    clause = _condition(inner, tuple(path), op, value, day)
    return table.c.id.in_(sa.select(inner.base.c.id).select_from(inner.from_clause()).where(clause))


def _condition(
    resolver: Resolver, path: tuple[str, ...], op: str, value: Any, today: dt.date
) -> ColumnElement[bool]:
    found = resolver.walk(path)
    if op not in found.target.operators:
        raise QueryValueError(f"operator '{op}' does not apply to field '{found.dotted}'")
    column = resolver.column_of(found)
    return condition(found.target, column, op, value, resolver.dialect, today)


# --- running --------------------------------------------------------------------------------------


def run(
    conn: sa.Connection,
    tables: Tables,
    entity: str,
    query: ListQuery,
    actor: Actor,
    *,
    scope: ColumnElement[bool] | None = None,
    sight: Sight | None = None,
    exact_count_up_to: int = EXACT_COUNT_UP_TO,
) -> Page:
    """One page of ``entity``'s records for ``query``, with its count.

    ``scope`` is ANDed in (the permission layer's own/team condition on
    ``tables.table(entity)``); ``sight`` what it may read of the records its references
    lead to: filters and sort through a reference see only those (the others read as
    empty). Counts are exact up to ``exact_count_up_to`` rows; beyond,
    PostgreSQL's planner estimate (``count_estimated``), or on SQLite the limit itself.
    A query built in code is checked like :func:`parse_params` checks parameters.
    """
    ent = _entity(tables.model, entity)
    today = actor.today or local_today()
    context = Context(user_id=actor.user_id, team_id=actor.team_id, today=today)
    index = None
    if query.search and conn.dialect.name == "sqlite":
        indexes = fts.usable(conn, tables.model.hash, lambda: search_columns(tables))
        index = indexes.get(tables.table(ent.name).name)
    built = _build(tables, ent, query, conn.dialect.name, context, scope, index, sight)
    fetched = conn.execute(built.statement).mappings().all()
    more = len(fetched) > query.limit
    rows = [dict(row) for row in fetched[: query.limit]]
    next_cursor = None
    if more:
        last = rows[-1]
        values = [*(last[name] for name in built.captured), last["id"]]
        next_cursor = cursors.encode(built.signature, values)
    for row in rows:
        for name in built.captured:
            del row[name]

    if query.cursor is None and not more:
        count, estimated = len(rows), False  # the whole result is on this page
    else:
        count, estimated = _count(
            conn, built.source, built.conditions, exact_count_up_to, tables.table(ent.name).name
        )
    for name in query.expand:
        _expand(conn, tables, ent, name, rows, context)
    return Page(rows, next_cursor, count, estimated)


@dataclass(frozen=True)
class _Built:
    statement: sa.Select[Any]  # the page, one row more than the limit
    source: sa.FromClause  # what the count reads: the table and the filters' joins
    conditions: list[ColumnElement[bool]]  # the filters, without the cursor's
    captured: list[str]  # labels of the sort values the next cursor records
    signature: str


def _build(
    tables: Tables,
    entity: Entity,
    query: ListQuery,
    dialect: str,
    context: Context,
    scope: ColumnElement[bool] | None,
    index: fts.TextIndex | None = None,
    sight: Sight | None = None,
) -> _Built:
    """The SQL for a page; every problem with the query is one :class:`BadRequest`.
    ``index``: the entity's FTS5 table on SQLite, when search may use it."""
    model = tables.model
    table = tables.table(entity.name)
    resolver = Resolver(tables, entity.name, dialect, context, sight=sight)
    today = context.current_date()
    errors = _Errors()
    if not 1 <= query.limit <= MAX_LIMIT:
        errors.add("limit", f"limit must be a whole number from 1 to {MAX_LIMIT}")
    conditions: list[ColumnElement[bool]] = []
    for item in query.filters:
        try:
            conditions.append(_condition(resolver, item.path, item.op, item.value, today))
        except QueryValueError as exc:
            errors.add(item.key, str(exc))
    if query.search:
        try:
            _check_search(entity, query.search)
            names = search_fields(entity) if query.search_in is None else query.search_in
            searched = [table.c[name] for name in names]
            conditions.append(search_condition(searched, query.search, dialect, index))
        except QueryValueError as exc:
            errors.add("q", str(exc))
    if query.where is not None:
        conditions.append(to_sql(query.where, resolver.column, dialect, context))
    if scope is not None:
        conditions.append(scope)
    source = resolver.from_clause()

    # A filter pinning the id matches one row at most: no order, no cursor needed.
    pinned = any(f.path == ("id",) and f.op == "eq" for f in query.filters)
    sorts: list[SortColumn] = []
    signature = ""
    try:
        plan = _sort_plan(model, entity, query.sort)
        signature = _signature(entity, [key for key, _ in plan])
        for key, found in () if pinned else plan:
            expression, value_type = sort_expression(found.target, resolver.column_of(found))
            nullable = resolver.nullable(found)
            sorts.append(SortColumn(key.field, key.descending, expression, value_type, nullable))
    except QueryValueError as exc:
        errors.add("sort", str(exc))
    columns: list[Any] = []
    if query.fields is None:
        columns.append(table)  # every stored field and system column
    try:
        _check_expand(entity, query.expand)
    except QueryValueError as exc:
        errors.add("expand", str(exc))
    try:
        for name in _selection(entity, query):
            if target(entity, name).formula:
                columns.append(resolver.column((name,)).label(name))
            else:
                columns.append(table.c[name])
    except QueryValueError as exc:
        errors.add("fields", str(exc))
    errors.raise_any()

    page_conditions = list(conditions)
    if query.cursor and sorts:
        try:
            values = _cursor_values(model, entity, query.sort, query.cursor)
        except QueryValueError as exc:
            raise BadRequest(f"Invalid list query: cursor: {exc}", {"cursor": [str(exc)]}) from None
        if dialect == "sqlite":
            values = [_float_if_decimal(s, v) for s, v in zip(sorts, values, strict=True)]
        page_conditions.append(after(sorts, values))
    captured = [f"_sort_{i}" for i in range(len(sorts) - 1)]
    columns += [capture(s, dialect).label(n) for s, n in zip(sorts, captured, strict=False)]
    statement = sa.select(*columns).where(*page_conditions)
    if resolver.joined:
        statement = statement.select_from(resolver.from_clause())
    if sorts:  # (building each clause costs: a hot get-by-id skips what it does not need)
        statement = statement.order_by(*(s.order_by() for s in sorts))
    if not pinned:
        statement = statement.limit(query.limit + 1)
    return _Built(statement, source, conditions, captured, signature)


def _float_if_decimal(sort: SortColumn, value: Any) -> Any:
    # SQLite compares its float-stored decimals exactly with floats (see capture()).
    return float(value) if sort.value_type == "decimal" and value is not None else value


def _selection(entity: Entity, query: ListQuery) -> list[str]:
    """Columns to read besides the whole table (``fields`` unset): the requested fields
    with ``id`` and ``version`` (what a later PATCH needs), and the reference columns
    ``expand`` needs."""
    if query.fields is None:
        return []  # the whole table holds them all
    return list(dict.fromkeys(["id", "version", *query.fields, *query.expand]))


# --- counting -------------------------------------------------------------------------------------


class _Explain(Executable, ClauseElement):
    """``EXPLAIN (FORMAT JSON) <select>`` (PostgreSQL): the planner's row estimate.

    Its cache key is the statement's, so SQLAlchemy compiles it once per query shape
    like any other statement (uncached, compiling it took half a millisecond a list)."""

    _traverse_internals = [("statement", InternalTraversal.dp_clauseelement)]  # noqa: RUF012
    inherit_cache = True

    def __init__(self, statement: sa.Select[Any]) -> None:
        self.statement = statement

    @property
    def _all_selected_columns(self) -> Any:
        # A cached compilation matches its result columns to the statement run by
        # position: those of the statement explained (the plan is read by position).
        return self.statement._all_selected_columns


@compiles(_Explain, "postgresql")
def _compile_explain(element: _Explain, compiler: SQLCompiler, **kw: Any) -> str:
    return "EXPLAIN (FORMAT JSON) " + compiler.process(element.statement, **kw)


def _count(
    conn: sa.Connection,
    source: sa.FromClause,
    conditions: Sequence[ColumnElement[bool]],
    exact_up_to: int,
    table: str,
) -> tuple[int, bool]:
    """Exact up to ``exact_up_to`` rows; beyond, the planner's estimate on PostgreSQL —
    planned once per query and values a minute (:data:`ESTIMATE_SECONDS`), not on every
    page — and the limit itself on SQLite.

    Counting never returns more than one row past the limit, but a filter the index does
    not serve (a rep's "own or team" scope) can make it read many rows to find them. So
    on a big PostgreSQL table (more than :data:`PLAN_FIRST_FACTOR` × ``exact_up_to``
    rows by its statistics) the planner is asked first, and when it expects more matches
    than the limit, its estimate is the count: no rows are read to count.
    """
    rows = sa.select(sa.literal(1)).select_from(source).where(*conditions)
    postgresql = conn.dialect.name == "postgresql"
    if postgresql and _table_rows(conn, table) > exact_up_to * PLAN_FIRST_FACTOR:
        estimate = _estimate(conn, rows)
        if estimate > exact_up_to:
            return estimate, True
    capped = rows.limit(exact_up_to + 1).subquery()
    found = conn.execute(sa.select(sa.func.count()).select_from(capped)).scalar_one()
    if found <= exact_up_to:
        return int(found), False
    if postgresql:
        return max(_estimate(conn, rows), exact_up_to + 1), True
    return exact_up_to, True


# Per engine (a test's fresh database must not see another's), per query and values.
_estimates: weakref.WeakKeyDictionary[Any, dict[tuple[str, str], tuple[float, int]]] = (
    weakref.WeakKeyDictionary()
)
_estimates_lock = threading.Lock()


def _estimate(conn: sa.Connection, rows: sa.Select[Any]) -> int:
    """The planner's row estimate for ``rows``, reused for a minute per query and values."""
    compiled = rows.compile(dialect=conn.dialect)
    key = (str(compiled), repr(sorted(compiled.params.items(), key=lambda kv: kv[0])))
    now = time.monotonic()
    with _estimates_lock:
        known = _estimates.setdefault(conn.engine, {})
        cached = known.get(key)
    if cached is not None and now - cached[0] < ESTIMATE_SECONDS:
        return cached[1]
    plan = conn.execute(_Explain(rows)).scalar_one()
    estimate = int(plan[0]["Plan"]["Plan Rows"])
    with _estimates_lock:
        if len(known) >= 512:
            known.clear()
        known[key] = (now, estimate)
    return estimate


_table_sizes: weakref.WeakKeyDictionary[Any, dict[str, tuple[float, float]]] = (
    weakref.WeakKeyDictionary()
)


def _table_rows(conn: sa.Connection, table: str) -> float:
    """PostgreSQL's statistics' row count of ``table`` (-1 if never analysed: small, as far
    as counting goes), asked once a minute per table."""
    now = time.monotonic()
    with _estimates_lock:
        known = _table_sizes.setdefault(conn.engine, {})
        cached = known.get(table)
    if cached is not None and now - cached[0] < ESTIMATE_SECONDS:
        return cached[1]
    pg_class = sa.table("pg_class", sa.column("oid"), sa.column("reltuples"))
    found = conn.scalar(
        sa.select(pg_class.c.reltuples).where(pg_class.c.oid == sa.func.to_regclass(table))
    )
    rows = float(found) if found is not None else -1.0
    with _estimates_lock:
        known[table] = (now, rows)
    return rows


# --- expanding reference titles -------------------------------------------------------------------


def _title_source(found: Target) -> str | None:
    """The entity (or system table) whose titles a field's ids name, if any."""
    if found.field is None:
        return {"created_by": USER_TABLE, "updated_by": USER_TABLE, "owner_id": USER_TABLE}.get(
            found.name, TEAM_TABLE if found.name == "team_id" else None
        )
    if found.field.type == "reference":
        return found.field.to
    if found.field.type == "user":
        return USER_TABLE
    if found.field.type == "team":
        return TEAM_TABLE
    return None


def _expand(
    conn: sa.Connection,
    tables: Tables,
    entity: Entity,
    name: str,
    rows: list[dict[str, Any]],
    context: Context,
) -> None:
    """Set ``row[name + "__title"]`` on every row with one query for the whole page."""
    found = target(entity, name)
    source = _title_source(found)
    assert source is not None
    multiple = found.kind == "multi"
    ids: set[int] = set()
    for row in rows:
        value = row.get(name)
        if multiple:
            ids.update(v for v in value or () if isinstance(v, int))
        elif value is not None:
            ids.add(value)
    titles: dict[int, Any] = {}
    if ids:
        if source in (USER_TABLE, TEAM_TABLE):
            system = tables.metadata.tables[source]
            query = sa.select(system.c.id, system.c.name).where(system.c.id.in_(sorted(ids)))
        else:
            query = _title_query(tables, source, conn.dialect.name, context, sorted(ids))
        titles = {key: _text(title) for key, title in conn.execute(query).all()}
    for row in rows:
        value = row.get(name)
        if multiple:
            row[f"{name}__title"] = [titles.get(v) for v in value or ()]
        else:
            row[f"{name}__title"] = None if value is None else titles.get(value)


def _title_query(
    tables: Tables, entity: str, dialect: str, context: Context, ids: list[int]
) -> sa.Select[Any]:
    resolver = Resolver(tables, entity, dialect, context)
    title_field = tables.model.entity(entity).title_field
    title: ColumnElement[Any] = (
        resolver.column((title_field,)) if title_field else sa.cast(resolver.base.c.id, sa.String)
    )
    return (
        sa.select(resolver.base.c.id, title)
        .select_from(resolver.from_clause())
        .where(resolver.base.c.id.in_(ids))
    )


def _text(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)
