"""Fewer round trips to PostgreSQL: statements sent together, and a BEGIN that travels
with them.

A write pays for every wait on the database, and a create used to wait seven times
(issue 14). Two tools cut that down:

- :func:`write_transaction` opens a transaction whose ``BEGIN`` is not sent on its own:
  it goes out with the first :class:`Batch` of the transaction, or — when some other
  statement comes first — just before that statement. (psycopg, outside autocommit,
  sends ``BEGIN`` and waits for its answer before the first statement; the connection
  here is in autocommit mode, and ``BEGIN`` / ``COMMIT`` are sent as statements.)
- :class:`Batch` sends several statements whose results are only needed after all of
  them ran in one round trip (psycopg's pipeline mode), in order: each statement still
  sees what the ones before it did and committed (READ COMMITTED takes a new snapshot per
  statement), so an advisory lock and the lookup it guards can travel together.

A third, :func:`fetch`, runs one statement that returns rows (a create's ``INSERT …
RETURNING``) with less of the worker's CPU than SQLAlchemy's ``execute``, and the same
rows.

SQLite has no round trips (the database is in the process): there a batch runs its
statements one by one, :func:`write_transaction` is ``engine.begin()`` and :func:`fetch`
is ``conn.execute``.

>>> with write_transaction(engine) as conn:
...     batch = Batch(conn)
...     locked = batch.add(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": 7})
...     found = batch.add(sa.select(table.c.id).where(table.c.code == "AC-1"))
...     batch.run()  # BEGIN, the lock and the lookup: one round trip
...     found.rows
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

#: The key, in a connection's ``info``, that says its transaction's BEGIN is still to send.
DEFERRED_BEGIN = "heddle.deferred_begin"
#: The transaction's start. READ COMMITTED, as psycopg begins them for the engine: a
#: statement sees what was committed before it began, which the duplicate check's lock,
#: then lookup, relies on (docs/duplicates.md).
BEGIN = "BEGIN ISOLATION LEVEL READ COMMITTED"
#: Compiled statements by statement and dialect (statements handed to a batch are built
#: once by their owners; at most this many are kept).
MAX_COMPILED = 256
_compiled: dict[tuple[int, str], tuple[sa.Executable, str, dict[str, Any]]] = {}
#: The engines :func:`write_transaction` has put its listener on.
_listened: weakref.WeakSet[Engine] = weakref.WeakSet()


@contextmanager
def write_transaction(engine: Engine) -> Iterator[sa.Connection]:
    """A connection in a transaction, committed at the end (rolled back on an exception),
    whose ``BEGIN`` on PostgreSQL waits for the first statement and travels with it when
    that is a :class:`Batch`."""
    if engine.dialect.name != "postgresql" or engine.dialect.driver != "psycopg":
        with engine.begin() as conn:
            yield conn
        return
    if engine not in _listened:
        if not sa.event.contains(engine, "before_cursor_execute", _send_deferred_begin):
            sa.event.listen(engine, "before_cursor_execute", _send_deferred_begin)
        _listened.add(engine)
    with engine.connect() as conn:
        # psycopg sends nothing for the transaction in autocommit mode; its commit() and
        # rollback() still end one the server has open (they look at the server's state).
        # Set on the driver's connection and set back here: SQLAlchemy's isolation level
        # option costs two more settings each way (the level, then the reset at checkin).
        raw = conn.connection.driver_connection
        assert raw is not None
        raw.autocommit = True
        conn.info[DEFERRED_BEGIN] = True
        try:
            with conn.begin():  # commits (or rolls back) only what the server has open
                yield conn
        finally:
            conn.info.pop(DEFERRED_BEGIN, None)
            try:
                raw.autocommit = False
            except engine.dialect.loaded_dbapi.Error:  # the connection is broken
                conn.invalidate()


def _send_deferred_begin(
    conn: sa.Connection,
    cursor: Any,
    statement: str,
    parameters: Any,
    context: Any,
    executemany: bool,
) -> None:
    """Before the first statement of a :func:`write_transaction` that no batch sent: its
    ``BEGIN``."""
    if conn.info.get(DEFERRED_BEGIN):
        del conn.info[DEFERRED_BEGIN]
        cursor.execute(BEGIN)


class Pending:
    """The result of one statement of a :class:`Batch`, there once the batch ran."""

    def __init__(self) -> None:
        self._rows: list[tuple[Any, ...]] | None = None
        self._columns: list[str] = []

    @property
    def rows(self) -> list[tuple[Any, ...]]:
        if self._rows is None:
            raise RuntimeError("the batch has not run yet")
        return self._rows

    def mappings(self) -> list[dict[str, Any]]:
        """The rows as ``{column: value}``."""
        return [dict(zip(self._columns, row, strict=True)) for row in self.rows]

    def scalar_one(self) -> Any:
        (row,) = self.rows
        return row[0]


class Batch:
    """Statements of one transaction sent together; on PostgreSQL (psycopg) one round
    trip for all of them, with the transaction's deferred ``BEGIN`` in front.

    Values are handed to the driver as they are (no SQLAlchemy type processing): give
    plain values — text, numbers, lists — and cast in the SQL where a type is needed.
    SQLAlchemy's cursor events see each statement, as for any other.
    """

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn
        self._queued: list[tuple[sa.Executable, Mapping[str, Any], Pending]] = []

    def add(self, statement: sa.Executable, params: Mapping[str, Any] | None = None) -> Pending:
        pending = Pending()
        self._queued.append((statement, params or {}, pending))
        return pending

    def run(self) -> None:
        queued, self._queued = self._queued, []
        if not queued:
            return
        dialect = self.conn.dialect
        if dialect.name != "postgresql" or dialect.driver != "psycopg":
            for statement, params, pending in queued:
                result = self.conn.execute(statement, dict(params))
                pending._rows = [tuple(r) for r in result] if result.returns_rows else []
                pending._columns = list(result.keys()) if result.returns_rows else []
            return
        self._pipelined(queued)

    def _pipelined(
        self, queued: Sequence[tuple[sa.Executable, Mapping[str, Any], Pending]]
    ) -> None:
        conn = self.conn
        raw = conn.connection.driver_connection
        assert raw is not None
        compiled = [_compile(statement, conn.dialect, params) for statement, params, _ in queued]
        begin = bool(conn.info.pop(DEFERRED_BEGIN, False))
        kept = _kept(conn, raw)
        cursors: list[Any] = []
        events = conn._has_events or conn.engine._has_events
        try:
            with raw.pipeline():
                if begin:
                    kept.cursor(BEGIN, cursors).execute(BEGIN)
                for sql, values in compiled:
                    cursor = kept.cursor(sql, cursors)
                    if events:
                        conn.dispatch.before_cursor_execute(conn, cursor, sql, values, None, False)
                    cursor.execute(sql, values)
                    cursors.append(cursor)
        except conn.dialect.loaded_dbapi.Error as exc:
            sql = "; ".join(sql for sql, _ in compiled)
            raise sa.exc.DBAPIError.instance(
                sql, None, exc, conn.dialect.loaded_dbapi.Error, dialect=conn.dialect
            ) from exc
        for cursor, (sql, _), (_, _, pending) in zip(cursors, compiled, queued, strict=True):
            # the names straight from the result: psycopg's ``description`` builds a
            # Column object, with its type's details, per column on every access
            result = cursor.pgresult
            fields = result.nfields if result is not None else 0
            if fields:
                pending._rows = list(cursor.fetchall())
                pending._columns = [_name(result.fname(i)) for i in range(fields)]
            else:
                pending._rows = []
            kept.done(sql, cursor, len(pending._rows))


#: Where a connection's kept cursors are (its pool record's ``info``: they live as long as
#: the driver's connection), and how many it keeps at most.
CURSORS = "heddle.cursors"
MAX_CURSORS = 32
#: A cursor whose last result had more rows than this is closed rather than kept (a kept
#: cursor holds its last result until it runs again).
MAX_KEPT_ROWS = 1_000


class _Cursors:
    """The cursors kept on one psycopg connection, one per SQL text.

    psycopg sets a cursor up for its query — the dumpers of its parameters' types, the
    loaders of its result's — and keeps that set-up while the cursor runs the same query
    (the same string object) again: a create's statements, each compiled once, pay for it
    once per connection instead of once per execution (a tenth of a create's CPU)."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.kept: dict[str, Any] = {}

    def cursor(self, sql: str, busy: Sequence[Any] = ()) -> Any:
        """A cursor for ``sql``: the kept one, unless one of ``busy`` (the cursors of the
        same pipeline, whose results are still to read) is it."""
        cursor = self.kept.get(sql)
        if cursor is None:
            if len(self.kept) >= MAX_CURSORS:
                self.clear()
            cursor = self.kept[sql] = self.raw.cursor()
        elif any(cursor is other for other in busy):
            return self.raw.cursor()  # not kept: closed when read
        return cursor

    def done(self, sql: str, cursor: Any, rows: int) -> None:
        """``cursor``'s result (of ``rows`` rows) was read: keep it, or close it (a cursor
        not kept, or one whose result was large)."""
        kept = self.kept.get(sql) is cursor
        if kept and rows <= MAX_KEPT_ROWS:
            return
        if kept:
            del self.kept[sql]
        cursor.close()

    def clear(self) -> None:
        for cursor in self.kept.values():
            cursor.close()
        self.kept.clear()


def _kept(conn: sa.Connection, raw: Any) -> _Cursors:
    """The cursors kept on ``conn``'s driver connection ``raw``."""
    info = conn.connection.info
    found: _Cursors | None = info.get(CURSORS)
    if found is None or found.raw is not raw:
        found = info[CURSORS] = _Cursors(raw)
    return found


def array_text(values: Iterable[str | int]) -> str:
    """A PostgreSQL array's text, for a parameter the SQL casts to the array's type
    (``CAST(:keys AS text[])``): ``['a "b"', 'c']`` gives ``{"a \\"b\\"","c"}``.

    psycopg adapts a list by looking at its elements to choose their type, then quotes
    each through a regular expression, on every execution; a text parameter is sent as
    it is. Each element is quoted, backslashes and double quotes escaped: any string,
    empty or with braces, commas or spaces, comes back unchanged."""
    return "{" + ",".join(_array_element(value) for value in values) + "}"


def _array_element(value: str | int) -> str:
    if isinstance(value, int):
        return str(value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _name(raw: bytes | None) -> str:
    return raw.decode() if raw is not None else ""


def fetch(
    conn: sa.Connection, statement: sa.Executable, params: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The rows ``statement`` (an INSERT … RETURNING, a SELECT) returns, as
    ``{column: value}``: the same rows, with the same Python values, as
    ``conn.execute(statement, params).mappings()`` gives, for less work per call.

    On PostgreSQL (psycopg) the statement is compiled once and run on the driver's cursor,
    the way a :class:`Batch` runs its statements, but with SQLAlchemy's processing of the
    parameters and of the values returned (times kept in UTC, JSON, booleans): SQLAlchemy's
    own path builds the result's metadata from psycopg's ``description`` on every call,
    a Column object per column. The cursor events fire as for any statement, and a
    refusal raises SQLAlchemy's error (an :class:`~sqlalchemy.exc.IntegrityError` for a
    constraint). Elsewhere, or outside a transaction, it is ``conn.execute``.
    """
    dialect = conn.dialect
    if dialect.driver != "psycopg" or not conn.in_transaction():
        return [dict(row) for row in conn.execute(statement, dict(params)).mappings()]
    direct = _direct(statement, dialect)
    values = direct.compiled.construct_params(params)
    for name, process in direct.binds:
        if name in values:
            values[name] = process(values[name])
    raw = conn.connection.driver_connection
    assert raw is not None
    kept = _kept(conn, raw)
    sql = direct.sql
    cursor = kept.cursor(sql)
    rows: list[Any] = []
    events = conn._has_events or conn.engine._has_events
    try:
        if events:
            conn.dispatch.before_cursor_execute(conn, cursor, sql, values, None, False)
        try:
            cursor.execute(sql, values)
        except dialect.loaded_dbapi.Error as exc:
            raise sa.exc.DBAPIError.instance(
                sql, values, exc, dialect.loaded_dbapi.Error, dialect=dialect
            ) from exc
        if events:
            conn.dispatch.after_cursor_execute(conn, cursor, sql, values, None, False)
        result = cursor.pgresult
        if result is None or not result.nfields:
            return []
        rows = cursor.fetchall()
        names, processors = direct.columns(result, dialect)
    finally:
        kept.done(sql, cursor, len(rows))
    if processors is None:
        return [dict(zip(names, row, strict=True)) for row in rows]
    return [
        {
            name: value if process is None else process(value)
            for name, process, value in zip(names, processors, row, strict=True)
        }
        for row in rows
    ]


class _Direct:
    """A statement compiled once for :func:`fetch`: its SQL, its parameters' processors
    by name, and its columns' names and processors (found at the first result: they
    depend on the types the database says it returns)."""

    def __init__(self, statement: sa.Executable, dialect: sa.Dialect) -> None:
        assert isinstance(statement, sa.ClauseElement)
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, sa.sql.compiler.SQLCompiler)
        if any(bind.expanding or bind.literal_execute for bind in compiled.bind_names):
            raise ValueError("fetch() takes no expanding or literal parameters")
        self.statement = statement
        self.compiled = compiled
        self.sql = str(compiled)
        escaped = compiled.escaped_bind_names
        self.binds = [
            (escaped.get(name, name), process)
            for bind, name in compiled.bind_names.items()
            if (process := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        ]
        self.types = [column.type for column in statement.exported_columns]  # type: ignore[attr-defined]
        self._columns: tuple[list[str], list[Callable[[Any], Any] | None] | None] | None = None

    def columns(
        self, result: Any, dialect: sa.Dialect
    ) -> tuple[list[str], list[Callable[[Any], Any] | None] | None]:
        """The names of the columns of ``result`` (psycopg's PGresult) and what turns each
        value into SQLAlchemy's (None when nothing does)."""
        if self._columns is None:
            count = result.nfields
            if count != len(self.types):
                raise RuntimeError(f"{count} columns returned, {len(self.types)} expected")
            names = [_name(result.fname(i)) for i in range(count)]
            processors = [
                type_.dialect_impl(dialect).result_processor(dialect, result.ftype(i))
                for i, type_ in enumerate(self.types)
            ]
            self._columns = (names, processors if any(processors) else None)
        return self._columns


_directs: dict[tuple[int, str], _Direct] = {}


def _direct(statement: sa.Executable, dialect: sa.Dialect) -> _Direct:
    key = (id(statement), dialect.name)
    found = _directs.get(key)
    if found is None or found.statement is not statement:
        if len(_directs) >= MAX_COMPILED:
            _directs.clear()
        found = _directs[key] = _Direct(statement, dialect)
    return found


#: A check of the caller's that travels with a write's first batch (a create's): it adds
#: its statements to the batch and returns what judges their results once the batch ran;
#: raising refuses the write, and its transaction is rolled back. The platform checks a
#: bearer token it trusted from its cache this way.
Guard = Callable[[Batch], Callable[[], None]]


def _compile(
    statement: sa.Executable, dialect: sa.Dialect, params: Mapping[str, Any]
) -> tuple[str, dict[str, Any]]:
    """The driver's SQL of ``statement`` and its parameters, the compiled form kept."""
    key = (id(statement), dialect.name)
    found = _compiled.get(key)
    if found is None or found[0] is not statement:
        assert isinstance(statement, sa.ClauseElement)
        compiled = statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
        if len(_compiled) >= MAX_COMPILED:
            _compiled.clear()
        found = _compiled[key] = (statement, str(compiled), dict(compiled.params))
    return found[1], {**found[2], **params}
