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
rows; :meth:`Batch.fetch` sends such a statement last in a batch, after the statements
whose effects it needs (a create's record after its locks and numbers: one round trip).

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

import re
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
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
    def ran(self) -> bool:
        """Whether the statement ran (in a batch one of whose statements was refused, those
        before it did, and it and those after it did not)."""
        return self._rows is not None

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
        self._single: list[tuple[sa.Executable, Mapping[str, Any], Pending]] = []
        self._fetched: list[tuple[sa.Executable, Mapping[str, Any], Pending]] = []

    def add(self, statement: sa.Executable, params: Mapping[str, Any] | None = None) -> Pending:
        pending = Pending()
        self._queued.append((statement, params or {}, pending))
        return pending

    def fetch(self, statement: sa.Executable, params: Mapping[str, Any]) -> Pending:
        """Add a statement to run last, as :func:`fetch` runs one: its parameters and the
        values it returns go through SQLAlchemy's processing for their types (a create's
        ``INSERT … RETURNING``, sent with the statements whose effects it needs). When it
        is refused, the batch raises SQLAlchemy's error, and the statements before it
        still hand out their rows."""
        pending = Pending()
        self._fetched.append((statement, params, pending))
        return pending

    def single(self, statement: sa.Executable, params: Mapping[str, Any] | None = None) -> Pending:
        """Add a SELECT of at most one row whose columns it declares (a ``sa.select``, or
        a ``sa.text(…).columns(…)``), to run before the statements :meth:`add` gave. On
        PostgreSQL the batch's single-row statements are sent as one (each joined to the
        others): fewer statements for the worker to send and read and for the server to
        bind and run (a create's lock, autonumber and token: 3 % fewer of the worker's
        instructions); they share a snapshot, taken before any of them runs. Give here
        what needs nothing the others do (an advisory lock, the next number of a sequence,
        a row by its key), and with :meth:`add` what must see their effects (the lookup a
        lock guards)."""
        if not len(getattr(statement, "exported_columns", ())):
            raise TypeError("a single-row statement declares its columns")
        pending = Pending()
        self._single.append((statement, params or {}, pending))
        return pending

    def run(self) -> None:
        single, self._single = self._single, []
        queued, self._queued = self._queued, []
        fetched, self._fetched = self._fetched, []
        if not queued and not single and not fetched:
            return
        dialect = self.conn.dialect
        if dialect.name != "postgresql" or dialect.driver != "psycopg":
            for statement, params, pending in [*single, *queued]:
                result = self.conn.execute(statement, dict(params))
                pending._rows = [tuple(r) for r in result] if result.returns_rows else []
                pending._columns = list(result.keys()) if result.returns_rows else []
            if any(len(pending.rows) > 1 for _, _, pending in single):
                raise RuntimeError("a single-row statement of a batch returned several rows")
            for statement, params, pending in fetched:
                rows = fetch(self.conn, statement, params)
                pending._columns = list(rows[0]) if rows else []
                pending._rows = [tuple(row.values()) for row in rows]
            return
        self._pipelined(single, queued, fetched)

    def _pipelined(
        self,
        single: Sequence[tuple[sa.Executable, Mapping[str, Any], Pending]],
        queued: Sequence[tuple[sa.Executable, Mapping[str, Any], Pending]],
        fetched: Sequence[tuple[sa.Executable, Mapping[str, Any], Pending]],
    ) -> None:
        conn = self.conn
        raw = conn.connection.driver_connection
        assert raw is not None
        compiled = [_compile(statement, conn.dialect, params) for statement, params, _ in queued]
        directs = [_direct(statement, conn.dialect) for statement, _, _ in fetched]
        joined = None
        if len(single) == 1:  # as it is
            compiled.insert(0, _compile(single[0][0], conn.dialect, single[0][1]))
            queued = [*single, *queued]
        elif single:
            joined = _joined([statement for statement, _, _ in single], conn.dialect)
            compiled.insert(0, joined.bind([params for _, params, _ in single]))
            queued = [(joined.statement, {}, Pending()), *queued]
        sent: list[tuple[str | bytes, Any]] = list(compiled)
        for direct, (_, params, _) in zip(directs, fetched, strict=True):
            sent.append((direct.query, direct.values(params)))
        queued = [*queued, *fetched]
        begin = bool(conn.info.pop(DEFERRED_BEGIN, False))
        kept = _kept(conn, raw)
        cursors: list[Any] = []
        events = conn._has_events or conn.engine._has_events
        failed = None
        try:
            with raw.pipeline():
                if begin:
                    kept.cursor(BEGIN, cursors).execute(BEGIN)
                for sql, values in sent:
                    cursor = kept.cursor(sql, cursors)
                    if events:
                        told = sql.decode() if isinstance(sql, bytes) else sql
                        conn.dispatch.before_cursor_execute(conn, cursor, told, values, None, False)
                    cursor.execute(sql, values)
                    cursors.append(cursor)
        except conn.dialect.loaded_dbapi.Error as exc:
            failed = exc
        plain = len(compiled)
        for at, (cursor, (sql, _), (_, _, pending)) in enumerate(
            zip(cursors, sent, queued, strict=False)
        ):
            # the names straight from the result: psycopg's ``description`` builds a
            # Column object, with its type's details, per column on every access
            result = cursor.pgresult
            if failed is not None and (result is None or result.status not in _DONE):
                break  # this statement, or one before it, was refused
            fields = result.nfields if result is not None else 0
            if not fields:
                pending._rows = []
            elif at < plain:
                pending._rows = list(cursor.fetchall())
                pending._columns = [_name(result.fname(i)) for i in range(fields)]
            else:
                direct = directs[at - plain]
                pending._columns, processors = direct.columns(result, conn.dialect)
                pending._rows = _processed(cursor.fetchall(), processors)
            kept.done(sql, cursor, len(pending._rows))
        if joined is not None and queued[0][2]._rows is not None:
            joined.split(queued[0][2], [pending for _, _, pending in single])
        if failed is not None:
            told = "; ".join(sql.decode() if isinstance(sql, bytes) else sql for sql, _ in sent)
            raise sa.exc.DBAPIError.instance(
                told, None, failed, conn.dialect.loaded_dbapi.Error, dialect=conn.dialect
            ) from failed
        if joined is None and single and len(single[0][2].rows) > 1:
            raise RuntimeError("a single-row statement of a batch returned several rows")


#: What a statement of a pipeline that ran gives (psycopg's ``ExecStatus``:
#: ``COMMAND_OK``, ``TUPLES_OK``), where one that was refused or skipped gives an error.
_DONE = frozenset({1, 2})


def _processed(
    rows: Sequence[tuple[Any, ...]], processors: Sequence[Callable[[Any], Any] | None] | None
) -> list[tuple[Any, ...]]:
    """``rows`` with each value turned into SQLAlchemy's (:meth:`_Direct.columns`)."""
    if processors is None:
        return list(rows)
    return [
        tuple(
            value if process is None else process(value)
            for process, value in zip(processors, row, strict=True)
        )
        for row in rows
    ]


_PLACEHOLDER = re.compile(r"%%|%\((\w+)\)s")


class _Joined:
    """Single-row SELECTs (:meth:`Batch.single`) as one statement: each part a sub-select
    joined to one row, with a column that says whether the part found its row; the
    parts' parameters renamed apart (``p<i>_<name>``)."""

    def __init__(self, statements: Sequence[sa.Executable], dialect: sa.Dialect) -> None:
        self.statements = list(statements)
        self.widths: list[int] = []
        parts = []
        self.defaults: dict[str, Any] = {}
        for i, statement in enumerate(statements):
            self.widths.append(len(statement.exported_columns))  # type: ignore[attr-defined]
            sql, defaults = _compile(statement, dialect, {})
            sql = _PLACEHOLDER.sub(partial(_renamed, f"p{i}_"), sql)
            self.defaults.update({f"p{i}_{name}": v for name, v in defaults.items()})
            parts.append(
                f" LEFT JOIN (SELECT true AS found, s.* FROM ({sql}) AS s) AS p{i} ON true"
            )
        self.sql = "SELECT * FROM (SELECT 1) AS one" + "".join(parts)
        self.statement = sa.text("-- joined")  # stands for the statement in the batch

    def bind(self, params: Sequence[Mapping[str, Any]]) -> tuple[str, dict[str, Any]]:
        values = dict(self.defaults)
        for i, given in enumerate(params):
            values.update({f"p{i}_{name}": value for name, value in given.items()})
        return self.sql, values

    def split(self, joined: Pending, parts: Sequence[Pending]) -> None:
        """Hand each part its row (or none) from the joined statement's ``joined``."""
        rows, names = joined.rows, joined._columns
        if len(rows) != 1:
            raise RuntimeError("a single-row statement of a batch returned several rows")
        (row,) = rows
        at = 1  # after the statement's own "one"
        for pending, width in zip(parts, self.widths, strict=True):
            found, values = row[at], row[at + 1 : at + 1 + width]
            pending._columns = names[at + 1 : at + 1 + width]
            pending._rows = [tuple(values)] if found else []
            at += 1 + width


def _renamed(prefix: str, placeholder: re.Match[str]) -> str:
    """A placeholder of a part of a joined statement, its name prefixed (a ``%%`` kept)."""
    if placeholder[0] == "%%":
        return "%%"
    return f"%({prefix}{placeholder[1]})s"


_joins: dict[tuple[tuple[int, ...], str], _Joined] = {}


def _joined(statements: Sequence[sa.Executable], dialect: sa.Dialect) -> _Joined:
    key = (tuple(map(id, statements)), dialect.name)
    found = _joins.get(key)
    if found is None or any(a is not b for a, b in zip(found.statements, statements, strict=True)):
        if len(_joins) >= MAX_COMPILED:
            _joins.clear()
        found = _joins[key] = _Joined(statements, dialect)
    return found


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
        self.kept: dict[str | bytes, Any] = {}

    def cursor(self, sql: str | bytes, busy: Sequence[Any] = ()) -> Any:
        """A cursor for ``sql``: the kept one, unless one of ``busy`` (the cursors of the
        same pipeline, whose results are still to read) is it. For ``sql`` in bytes (a
        :class:`_Direct`'s query, with PostgreSQL's placeholders), a raw cursor."""
        cursor = self.kept.get(sql)
        if cursor is None:
            if len(self.kept) >= MAX_CURSORS:
                self.clear()
            cursor = self.kept[sql] = self._new(sql)
        elif any(cursor is other for other in busy):
            return self._new(sql)  # not kept: closed when read
        return cursor

    def _new(self, sql: str | bytes) -> Any:
        if isinstance(sql, bytes):
            from psycopg import RawCursor

            return RawCursor(self.raw)
        return self.raw.cursor()

    def done(self, sql: str | bytes, cursor: Any, rows: int) -> None:
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
    values = direct.values(params)
    raw = conn.connection.driver_connection
    assert raw is not None
    kept = _kept(conn, raw)
    sql = direct.sql
    cursor = kept.cursor(direct.query)
    rows: list[Any] = []
    events = conn._has_events or conn.engine._has_events
    try:
        if events:
            conn.dispatch.before_cursor_execute(conn, cursor, sql, values, None, False)
        try:
            cursor.execute(direct.query, values)
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
        kept.done(direct.query, cursor, len(rows))
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
        escaped = compiled.escaped_bind_names
        binds = {
            escaped.get(name, name): (bind.key, name, bind, _processor(bind, dialect))
            for bind, name in compiled.bind_names.items()
        }
        # PostgreSQL's own placeholders ($1, $2 …, a name used twice given one number),
        # for psycopg's raw cursor: it sends the query as it is, where its usual cursor
        # parses ``%(name)s`` out of the text on every call once the query is longer
        # than 4 KB or has more than 50 parameters (a create's statement, with its audit
        # row and keys, is longer: 0.2 ms of the worker's CPU per create)
        order: dict[str, int] = {}

        def number(placeholder: re.Match[str]) -> str:
            if placeholder[0] == "%%":
                return "%"
            return f"${order.setdefault(placeholder[1], len(order) + 1)}"

        #: the SQL with numbered placeholders, as SQLAlchemy's events are told it
        self.sql = _PLACEHOLDER.sub(number, str(compiled))
        #: the same, as psycopg is given it
        self.query = self.sql.encode()
        self.binds = [binds[name] for name in order]  # in the order of their numbers
        self.types = [column.type for column in statement.exported_columns]  # type: ignore[attr-defined]
        self._columns: tuple[list[str], list[Callable[[Any], Any] | None] | None] | None = None

    def values(self, params: Mapping[str, Any]) -> list[Any]:
        """The driver's parameters, in the order of their numbers: what SQLAlchemy's
        ``construct_params`` gives, then each processed for its type — in one pass over
        the statement's parameters."""
        values = []
        for key, name, bind, process in self.binds:
            if key in params:
                value = params[key]
            elif name in params:
                value = params[name]
            elif bind.required:
                raise sa.exc.InvalidRequestError(f"A value is required for bind parameter {key!r}")
            else:
                value = bind.effective_value if bind.callable else bind.value
            values.append(value if process is None else process(value))
        return values

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


def _processor(bind: Any, dialect: sa.Dialect) -> Callable[[Any], Any] | None:
    processor: Callable[[Any], Any] | None = bind.type.dialect_impl(dialect).bind_processor(dialect)
    return processor


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
