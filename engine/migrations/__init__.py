"""Migrations that lose nothing: plan the change from the database to a Model, then apply it.

:func:`plan` compares the new Model with the live database and the last Model applied to it
(kept in ``heddle_schema_history``) and returns an ordered :class:`Plan`: tables to create,
columns to add, rename (``renamed_from``), retype or drop, indexes and constraints to add or
drop. :func:`migrate` applies it in one transaction — under an advisory lock on PostgreSQL,
SQLite's write lock on SQLite — and records the new Model as the latest snapshot.

Nothing is lost silently: dropping a column or table is *destructive* and needs
``allow_destructive=True``, and its data is first copied into ``heddle_archive``; a type
change that would cut, round or fail on a stored value, a field made required while rows
have no value, or unique while rows share one, is refused with the rows named.

>>> result = plan(engine, model)
>>> print(result)
Plan for model 3fa2b1c0d4e5 (database at 9c8d7e6f5a4b): 2 operations, 1 destructive (marked !)
  1.   add column account.wechat (string)
  2. ! drop column account.fax (12 values archived first)
>>> migrate(engine, model, allow_destructive=True, actor="ann")

See ``docs/migrations.md``.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection, Engine

from metamodel import DefinitionError, Field, Model, model_from_json

from .. import dedupe
from .._compute import Computer
from ..errors import BadRequest, MigrationRefused
from ..search import ensure_search_indexes
from ..tables import ARCHIVE_TABLE, DUPLICATE_KEY_TABLE, HISTORY_TABLE, Tables, build_tables
from . import _checks as checks
from ._live import reflect
from ._ops import Action
from ._plan import draft, tables_of

#: Key of the PostgreSQL advisory lock every migration holds ("heddle" in ASCII).
LOCK_KEY = 0x686564646C65
#: How long a PostgreSQL migration waits for a table another session is using.
LOCK_TIMEOUT = "10s"

__all__ = [
    "LOCK_KEY",
    "LOCK_TIMEOUT",
    "Operation",
    "Plan",
    "applied_hash",
    "applied_model",
    "migrate",
    "plan",
    "restore",
]


@dataclass(frozen=True)
class Operation:
    """One step of a plan."""

    kind: str  # create_table, add_column, rename_column, alter_type, set_required, …
    table: str
    column: str | None
    destructive: bool
    description: str  # one line: "add column account.wechat (string)"
    sql: tuple[str, ...]  # the SQL it runs, as `heddle plan --sql` prints it

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "table": self.table,
            "column": self.column,
            "destructive": self.destructive,
            "description": self.description,
            "sql": list(self.sql),
        }


@dataclass(frozen=True)
class Plan:
    """What :func:`migrate` would do to take the database to ``model_hash``."""

    operations: tuple[Operation, ...]
    model_hash: str
    previous_hash: str | None
    refusals: tuple[str, ...] = ()  # data that blocks the plan, one line each
    notes: tuple[str, ...] = ()  # worth knowing, blocks nothing
    _actions: tuple[Action, ...] = field(default=(), repr=False, compare=False)

    @property
    def destructive(self) -> bool:
        """Whether an operation drops data (a column or a table)."""
        return any(op.destructive for op in self.operations)

    @property
    def empty(self) -> bool:
        """Nothing to do: no operation, no refusal, and the Model is the one applied."""
        return not self.operations and not self.refusals and self.model_hash == self.previous_hash

    def render(self, sql: bool = False) -> str:
        """The plan as text: numbered operations, ``!`` marking destructive ones."""
        target = self.model_hash[:12]
        lines = []
        if self.empty:
            lines.append(f"Nothing to do: the database is at model {target}.")
        else:
            lines += self._operation_lines(sql)
        if self.refusals:
            lines.append("Refused — fix the data or the definitions, then plan again:")
            lines += [f"  - {refusal}" for refusal in self.refusals]
        if self.notes:
            lines.append("Notes:")
            lines += [f"  - {note}" for note in self.notes]
        return "\n".join(lines)

    def _operation_lines(self, sql: bool) -> list[str]:
        since = f"database at {self.previous_hash[:12]}" if self.previous_hash else "new database"
        count = len(self.operations)
        head = f"Plan for model {self.model_hash[:12]} ({since}): {_plural(count, 'operation')}"
        dropping = sum(op.destructive for op in self.operations)
        if dropping:
            head += f", {dropping} destructive (marked !)"
        lines = [head]
        if not self.operations and not self.refusals:
            lines.append("  no table changes; the new model is recorded as applied")
        width = len(str(count))
        for number, op in enumerate(self.operations, 1):
            mark = "!" if op.destructive else " "
            lines.append(f"  {number:>{width}}. {mark} {op.description}")
            if sql:
                indent = " " * (width + 6)
                for statement in op.sql:
                    lines += [indent + line for line in statement.splitlines()]
        return lines

    def __str__(self) -> str:
        return self.render()


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' if count != 1 else ''}"


# --- snapshots ----------------------------------------------------------------------

_models: dict[str, Model] = {}
_models_lock = threading.Lock()


def _snapshot(conn: Connection, exists: bool | None = None) -> tuple[int, str] | None:
    """(row id, hash) of the last applied Model, or None on a new database."""
    if exists is None:
        exists = sa.inspect(conn).has_table(HISTORY_TABLE)
    if not exists:
        return None
    history = checks.light_table(HISTORY_TABLE, "id", "hash")
    row = conn.execute(
        sa.select(history.c.id, history.c.hash).order_by(history.c.id.desc()).limit(1)
    ).first()
    return (int(row[0]), str(row[1])) if row is not None else None


def _model_of(conn: Connection, snapshot: tuple[int, str]) -> Model:
    """The Model of a snapshot, read and compiled once per hash."""
    row_id, digest = snapshot
    with _models_lock:
        if digest in _models:
            return _models[digest]
    history = checks.light_table(HISTORY_TABLE, "id", "model")
    text = conn.scalar(sa.select(history.c.model).where(history.c.id == row_id))
    model = model_from_json(str(text))
    with _models_lock:
        if len(_models) >= 8:
            _models.pop(next(iter(_models)))
        _models[digest] = model
    return model


def applied_model(engine: Engine) -> Model | None:
    """The Model last migrated to (its snapshot recompiled), or None on a new database."""
    with engine.connect() as conn:
        snapshot = _snapshot(conn)
        return _model_of(conn, snapshot) if snapshot is not None else None


def applied_hash(engine: Engine) -> str | None:
    """The hash of the Model last migrated to: a cheap way to notice a new definition."""
    with engine.connect() as conn:
        snapshot = _snapshot(conn)
    return snapshot[1] if snapshot is not None else None


# --- planning -----------------------------------------------------------------------


def plan(engine: Engine, model: Model) -> Plan:
    """What :func:`migrate` would do now; changes nothing.

    The data checks run here too, so a plan shows its refusals before anyone migrates.
    """
    with engine.connect() as conn:
        # engine.database's SQLite begins IMMEDIATE (the write lock) unless told otherwise
        conn.execution_options(sqlite_begin="DEFERRED")
        try:
            return _plan(conn, model)
        finally:
            conn.rollback()


def _plan(conn: Connection, model: Model) -> Plan:
    live = reflect(conn)
    snapshot = _snapshot(conn, HISTORY_TABLE in live)
    applied = snapshot[1] if snapshot else None
    previous: Model | None = None
    notes: list[str] = []
    if snapshot is not None:
        try:
            previous = _model_of(conn, snapshot)
        except (DefinitionError, ValueError, KeyError, TypeError) as exc:
            notes.append(
                f"the last applied model ({snapshot[1][:12]}) cannot be read ({exc}); planned"
                " from the live database alone, so nothing is dropped"
            )
    drafted = draft(conn, live, model, previous, applied or model.hash)
    operations = []
    for item, action in drafted.drafts:
        operations.append(
            Operation(
                item.kind,
                item.table,
                item.column,
                item.destructive,
                item.description,
                _sql_of(conn, drafted.tables.metadata, action),
            )
        )
    # Duplicate keys that are not their rules' keys (a rule added or changed): rebuilt by
    # migrate after the tables, in Python (dedupe.sync), so no Alembic action of their own.
    for work in dedupe.pending(conn, drafted.tables):
        operations.append(
            Operation(
                f"{work.kind}_duplicate_keys",
                DUPLICATE_KEY_TABLE,
                None,
                False,
                work.description,
                work.sql,
            )
        )
    return Plan(
        tuple(operations),
        model.hash,
        applied,
        tuple(drafted.refusals),
        tuple(notes + drafted.notes),
        tuple(action for _, action in drafted.drafts),
    )


class _Statements(io.StringIO):
    """Alembic's offline output, one statement per write."""

    def __init__(self) -> None:
        super().__init__()
        self.items: list[str] = []

    def write(self, text: str) -> int:
        if text.strip():
            self.items.append(text.strip())
        return len(text)


def _sql_of(conn: Connection, metadata: sa.MetaData, action: Action) -> tuple[str, ...]:
    """The SQL an operation runs, from Alembic's offline (``as_sql``) mode."""
    out = _Statements()
    context = MigrationContext.configure(
        dialect=conn.dialect,
        opts={
            "as_sql": True,
            "output_buffer": out,
            "literal_binds": True,
            "target_metadata": metadata,
        },
    )
    action(Operations(context))
    return tuple(out.items)


# --- applying -----------------------------------------------------------------------


def migrate(
    engine: Engine, model: Model, *, allow_destructive: bool = False, actor: str = "cli"
) -> Plan:
    """Take the database to ``model``: plan again under the lock, check, apply, record.

    Raises :class:`~engine.errors.MigrationRefused` — and changes nothing — when a data
    check fails or the plan is destructive without ``allow_destructive``. Returns the plan
    applied (empty when the database was already there).
    """
    with _migration(engine) as conn:
        result = _plan(conn, model)
        _refuse(result, allow_destructive)
        if result.empty:
            if conn.dialect.name == "sqlite":
                # A database migrated before Heddle made SQLite search tables gets them
                # now; when they are there this only reads sqlite_master.
                ensure_search_indexes(conn, tables_of(model))
            return result
        tables = tables_of(model)
        previous = _previous_model(conn, tables)
        if HISTORY_TABLE in {op.table for op in result.operations if op.kind == "create_table"}:
            _apply(conn, tables, result)
            _record(conn, tables, model, result, actor)
        else:
            # Recorded first: the tables the operations lock stay locked for less time.
            _record(conn, tables, model, result, actor)
            _apply(conn, tables, result)
        _refresh_rollups(conn, tables, previous)
        dedupe.sync(conn, tables)
    return result


def _previous_model(conn: Connection, tables: Tables) -> Model | None:
    history = tables.metadata.tables[HISTORY_TABLE]
    if not sa.inspect(conn).has_table(HISTORY_TABLE):
        return None
    text = conn.scalar(sa.select(history.c.model).order_by(history.c.id.desc()).limit(1))
    try:
        return model_from_json(text) if text else None
    except (DefinitionError, ValueError, KeyError):
        return None


def _rollup_key(field: Field) -> tuple[Any, ...]:
    source = field.filter.source if field.filter is not None else None
    return (field.of, field.via, field.aggregate, field.rollup_field, source)


def _refresh_rollups(conn: Connection, tables: Tables, previous: Model | None) -> None:
    """Compute rollup fields that are new, or whose definition changed, for every record:
    rows already there must not hold 0 where their related records add up to more."""
    computer = Computer(tables, conn.dialect.name)
    for entity in tables.model:
        for rollup in entity.fields_of_type("rollup"):
            before = None
            if previous is not None and entity.name in previous.entities:
                before = previous.entity(entity.name).fields.get(rollup.name)
            if (
                before is None
                or before.type != "rollup"
                or _rollup_key(before) != _rollup_key(rollup)
            ):
                computer.recompute_all(conn, entity, rollup)


def _apply(conn: Connection, tables: Tables, result: Plan) -> None:
    context = MigrationContext.configure(connection=conn, opts={"target_metadata": tables.metadata})
    op = Operations(context)
    for action in result._actions:
        action(op)
    if conn.dialect.name == "sqlite":
        _check_foreign_keys(conn, result)
    # Trigram indexes (PostgreSQL) or FTS5 tables and their triggers (SQLite): a SQLite
    # table rebuild or rename leaves them missing or stale, so they are checked every time.
    ensure_search_indexes(conn, tables)


def _record(conn: Connection, tables: Tables, model: Model, result: Plan, actor: str) -> None:
    """The new snapshot in heddle_schema_history, in the migration's transaction."""
    history = tables.metadata.tables[HISTORY_TABLE]
    conn.execute(
        history.insert().values(
            hash=model.hash,
            model=model.to_json(),
            operations=[op.to_dict() for op in result.operations],
            applied_at=dt.datetime.now(dt.UTC),
            actor=actor,
        )
    )


def _refuse(result: Plan, allow_destructive: bool) -> None:
    if result.refusals:
        lines = "\n".join(f"  - {refusal}" for refusal in result.refusals)
        raise MigrationRefused(
            "migration refused, nothing was changed — fix the data or the definitions,"
            f" then migrate again:\n{lines}",
            details={"refusals": list(result.refusals)},
        )
    if result.destructive and not allow_destructive:
        dropping = [op.description for op in result.operations if op.destructive]
        lines = "\n".join(f"  ! {line}" for line in dropping)
        raise MigrationRefused(
            f"migration refused, nothing was changed — {_plural(len(dropping), 'operation')}"
            " would drop data:\n"
            f"{lines}\n"
            "Run it with --allow-destructive (allow_destructive=True) to apply them; the"
            " data is archived in heddle_archive first.",
            details={"destructive": dropping},
        )


@contextmanager
def _migration(engine: Engine) -> Iterator[Connection]:
    """One connection in one transaction, alone: the PostgreSQL advisory lock, or
    SQLite's write lock, held until commit or rollback."""
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            with _sqlite_transaction(conn):
                yield conn
            return
        try:
            with conn.begin():
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(LOCK_KEY)))
                conn.execute(sa.text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
                yield conn
        except sa.exc.OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) == "55P03":  # lock_not_available
                raise MigrationRefused(
                    f"migration stopped, nothing was changed: a table it alters stayed in use"
                    f" by another session for {LOCK_TIMEOUT}; run it again when that session"
                    f" is done ({exc.orig})"
                ) from exc
            raise


@contextmanager
def _sqlite_transaction(conn: Connection) -> Iterator[None]:
    """A real SQLite transaction around DDL, with foreign keys off while tables are rebuilt.

    Rebuilding a table drops the old one; with foreign keys on, that would run the
    ON DELETE actions of the tables referring to it (deleting their rows). The pragma only
    changes outside a transaction, so it is set before BEGIN and restored after.
    """
    raw: Any = conn.connection.dbapi_connection
    isolation = raw.isolation_level
    enforced = bool(raw.execute("PRAGMA foreign_keys").fetchone()[0])
    raw.isolation_level = None  # we say BEGIN ourselves, engine tuned or not
    raw.execute("PRAGMA foreign_keys = OFF")
    try:
        with conn.begin():
            if not raw.in_transaction:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield
    finally:
        raw.execute(f"PRAGMA foreign_keys = {'ON' if enforced else 'OFF'}")
        raw.isolation_level = isolation


def _check_foreign_keys(conn: Connection, result: Plan) -> None:
    rebuilt = {op.table for op in result.operations if op.kind == "rebuild_table"}
    for table in sorted(rebuilt):
        broken = conn.exec_driver_sql(f'PRAGMA foreign_key_check("{table}")').fetchall()
        if broken:
            rows = ", ".join(str(row[1]) for row in broken[:10])
            raise MigrationRefused(
                f"migration refused, nothing was changed: {_plural(len(broken), 'row')} of"
                f" {table} refer to records that do not exist (rowids {rows}); fix them first"
            )


# --- archive ------------------------------------------------------------------------


def restore(
    engine: Engine,
    model: Model,
    table: str,
    column: str | None = None,
    *,
    into: str | None = None,
) -> int:
    """Put archived data back: a dropped column's values, or a dropped table's rows.

    The table (and ``into``, the column to fill, by default ``column``) must exist again:
    re-add the field or entity and migrate first. A column's values go back by record id
    (the latest archive of each record wins); a table's rows are inserted with their ids,
    skipping ids already present. Returns how many rows were written. The archive is left
    as it is.

    >>> restore(engine, model, "account", "fax")          # the fax field is back
    >>> restore(engine, model, "legacy_visit")            # the whole table
    """
    tables = build_tables(model)
    if table not in tables.metadata.tables:
        raise BadRequest(f"table {table!r} is not in the model: add its entity and migrate first")
    target = tables.metadata.tables[table]
    archive = tables.metadata.tables[ARCHIVE_TABLE]
    source = archive.c.source_column == column if column else archive.c.source_column.is_(None)
    query = (
        sa.select(archive.c.record_id, archive.c.data)
        .where(archive.c.source_table == table, source)
        .order_by(archive.c.id)
    )
    with engine.begin() as conn:
        latest: dict[Any, Mapping[str, Any]] = {}
        for record_id, data in conn.execute(query):
            latest[record_id] = json.loads(data) if isinstance(data, str) else data
        if column is not None:
            return _restore_column(conn, target, column, into or column, latest)
        return _restore_rows(conn, target, latest)


def _restore_column(
    conn: Connection,
    target: sa.Table,
    column: str,
    into: str,
    latest: Mapping[Any, Mapping[str, Any]],
) -> int:
    if into not in target.c:
        raise BadRequest(
            f"column {target.name}.{into} does not exist: add the field again and migrate first"
        )
    convert = _converter(target.c[into], conn.dialect)
    written = 0
    for record_id, data in latest.items():
        done = conn.execute(
            target.update()
            .where(target.c.id == record_id)
            .values({into: convert(data.get(column))})
        )
        written += done.rowcount
    return written


def _restore_rows(
    conn: Connection, target: sa.Table, latest: Mapping[Any, Mapping[str, Any]]
) -> int:
    present = set(conn.scalars(sa.select(target.c.id)))
    converters = {c.name: _converter(c, conn.dialect) for c in target.columns}
    rows = [
        {name: convert(data.get(name)) for name, convert in converters.items() if name in data}
        for record_id, data in latest.items()
        if record_id not in present
    ]
    if rows:
        conn.execute(target.insert(), rows)
    if conn.dialect.name == "postgresql" and rows:
        # ids were given explicitly: move the sequence past them
        sequence = sa.func.pg_get_serial_sequence(target.name, "id")
        highest = sa.select(sa.func.max(target.c.id)).scalar_subquery()
        conn.execute(sa.select(sa.func.setval(sequence, highest)))
    return len(rows)


def _converter(column: sa.Column[Any], dialect: sa.Dialect) -> Callable[[Any], Any]:
    """JSON value from the archive → the Python value the column's type takes."""
    kind = checks.describe(column.type, dialect).kind

    def convert(value: Any) -> Any:
        if value is None:
            return None
        if kind == "date":
            return dt.date.fromisoformat(str(value)[:10])
        if kind == "datetime":
            return dt.datetime.fromisoformat(str(value))
        if kind == "decimal":
            return Decimal(str(value))
        if kind == "integer":
            return int(value)
        if kind == "boolean":
            return bool(value)
        if kind == "json":
            return json.loads(value) if isinstance(value, str) else value
        return str(value)

    return convert
