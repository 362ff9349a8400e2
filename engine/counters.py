"""Autonumber counters: the next number of a format and period, unique among concurrent
writers.

A counter is named by its entity, field and format with the date part filled in
(``contract.number:CT-2026-{seq:05}``, see :func:`engine.records.autonumber_counter`), so a
format that restarts every year or month draws from a new counter each period.

- **SQLite** keeps each counter as a row of ``heddle_sequence``, incremented by the
  writing transaction: one writer at a time anyway, and a rolled-back write gives its
  number back (no gaps).
- **PostgreSQL** keeps each counter as a native sequence, created the first time the
  counter is used and seeded from its row in ``heddle_sequence`` (which stays as the
  counter's registry, and the form in which :func:`engine.imports.export_all` saves it).
  ``nextval`` takes no row lock and leaves no dead row versions: concurrent creates no
  longer wait for each other's ``COMMIT`` on one hot row, which held creates to a few
  hundred a second (issue 14). The price is PostgreSQL's: a number taken by a write that
  is then refused or rolled back is not given again — numbers are unique and increasing,
  with gaps. The database user creates the sequences (``CREATE`` on its schema, which
  the admin screens' migrations need too).

>>> counters = Counters(tables, "postgresql")
>>> number = counters.take(batch, "account.code:AC-{seq:06}")  # sent with the batch
>>> counters.reserve(conn, "account.code:AC-{seq:06}", 3)      # an import's rows
[1042, 1043, 1044]
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from functools import cached_property
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from .pipeline import Batch, Pending
from .tables import SEQUENCE_TABLE, Tables

#: PostgreSQL's errors for an object created meanwhile by someone else: a unique
#: violation in the catalog, or "relation already exists".
_CREATED_MEANWHILE = {"23505", "42P07"}
#: The next number of a counter's sequence; the name is resolved per call (a fixed text:
#: psycopg prepares it once per connection).
_NEXTVAL = sa.text("SELECT nextval(CAST(:sequence AS regclass))").columns(sa.column("nextval"))
_RESERVE = sa.text(
    "SELECT nextval(CAST(:sequence AS regclass)) FROM generate_series(1, CAST(:count AS int))"
)


def draw(conn: sa.Connection, sequence: str, count: int) -> list[int]:
    """PostgreSQL: ``count`` numbers of the sequence named ``sequence``, ascending, in one
    statement (a concurrent writer's may fall between them)."""
    params = {"sequence": sequence, "count": count}
    return sorted(int(n) for n in conn.execute(_RESERVE, params).scalars())


def current(prefix: str) -> sa.ColumnElement[str]:
    """PostgreSQL: the number a counter's sequence gave this session last (``currval``: a
    create's statement, sent after the ``nextval`` of :meth:`Counters.take`, stores the
    number taken), written out in its format: the values of :func:`current_params`,
    bound as ``<prefix><name>``."""

    def bound(name: str, type_: sa.types.TypeEngine[Any]) -> sa.BindParameter[Any]:
        return sa.bindparam(prefix + name, type_=type_)

    sequence = sa.cast(bound("sequence", sa.String()), postgresql.REGCLASS)
    digits = sa.cast(sa.func.currval(sequence), sa.Text())
    width = sa.func.greatest(bound("width", sa.Integer()), sa.func.length(digits))
    padded = sa.func.lpad(digits, width, bound("pad", sa.String()))
    return sa.func.concat(bound("head", sa.String()), padded, bound("tail", sa.String()))


def current_params(prefix: str, counter: str, text: str) -> dict[str, Any]:
    """The values :func:`current` binds for ``counter``, whose format with its date part
    filled in is ``text`` (``CT-2026-{seq:05}``): written as Python's ``format`` writes
    the number (``{seq:5}`` pads with spaces, ``{seq:05}`` with zeros, ``{seq}`` not at
    all; a longer number is never cut)."""
    head, spec, tail = autonumber_parts(text)
    return {
        f"{prefix}sequence": sequence_name(counter),
        f"{prefix}width": int(spec or 0),
        f"{prefix}pad": "0" if spec.startswith("0") else " ",
        f"{prefix}head": head,
        f"{prefix}tail": tail,
    }


def autonumber_parts(text: str) -> tuple[str, str, str]:
    """A filled-in format's text before its ``{seq}``, the number's format spec, and the
    text after it.

    >>> autonumber_parts("CT-2026-{seq:05}/A")
    ('CT-2026-', '05', '/A')
    """
    start = text.find("{seq")
    end = text.find("}", start)
    return text[:start], text[start + 4 : end].lstrip(":"), text[end + 1 :]


def sequence_name(counter: str) -> str:
    """The PostgreSQL sequence that serves ``counter``: a fixed prefix and a digest, since a
    counter's name may be longer than an identifier and hold any character.

    >>> sequence_name("account.code:AC-{seq:06}")
    'heddle_seq_f4694e667f7bad89137a3d4e'
    """
    return "heddle_seq_" + hashlib.sha256(counter.encode()).hexdigest()[:24]


class Counters:
    """The autonumber counters of one database (see the module's docstring)."""

    def __init__(self, tables: Tables, dialect: str) -> None:
        self.table = tables.metadata.tables[SEQUENCE_TABLE]
        self.dialect = dialect
        #: counters whose sequence this process knows exists (PostgreSQL)
        self._ready: set[str] = set()

    @cached_property
    def _upsert(self) -> sa.Executable:
        """SQLite: the counter's row moved on by ``count``, returning its new value."""
        table = self.table
        dialect_insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        count = sa.bindparam("count", type_=table.c.value.type)
        return (
            dialect_insert(table)
            .values(name=sa.bindparam("counter", type_=table.c.name.type), value=count)
            .on_conflict_do_update(index_elements=["name"], set_={"value": table.c.value + count})
            .returning(table.c.value)
        )

    @cached_property
    def _register(self) -> sa.Executable:
        """PostgreSQL: the counter's row, if it has none (:meth:`values` finds its
        sequence by it)."""
        table = self.table
        return (
            postgresql.insert(table)
            .values(name=sa.bindparam("counter", type_=table.c.name.type), value=0)
            .on_conflict_do_nothing(index_elements=["name"])
        )

    def take(self, batch: Batch, counter: str) -> Pending:
        """The counter's next number, taken with ``batch``'s other statements (its
        ``scalar_one()`` once the batch ran)."""
        if self.dialect == "postgresql":
            if self._ensure(batch.conn.engine, counter):
                batch.add(self._register, {"counter": counter})
            return batch.single(_NEXTVAL, {"sequence": sequence_name(counter)})
        return batch.add(self._upsert, {"counter": counter, "count": 1})

    def reserve(self, conn: sa.Connection, counter: str, count: int) -> list[int]:
        """``count`` numbers of the counter at once, in increasing order (on PostgreSQL
        not necessarily consecutive: concurrent writers draw from the same sequence)."""
        if count <= 0:
            return []
        if self.dialect == "postgresql":
            if self._ensure(conn.engine, counter):
                conn.execute(self._register, {"counter": counter})
            return draw(conn, sequence_name(counter), count)
        last = int(conn.execute(self._upsert, {"counter": counter, "count": count}).scalar_one())
        return list(range(last - count + 1, last + 1))

    def advance(self, conn: sa.Connection, counter: str, value: int) -> None:
        """Records numbered up to ``value`` were written by other means (the demo data, a
        restore): the counter's next number comes after it."""
        if self.dialect == "postgresql":
            self._ensure(conn.engine, counter)  # the upsert below registers it
        dialect_insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        table = self.table
        statement = dialect_insert(table).values(name=counter, value=value)
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=["name"],
                set_={"value": sa.func.greatest(table.c.value, statement.excluded.value)}
                if self.dialect == "postgresql"
                else {"value": sa.func.max(table.c.value, statement.excluded.value)},
            )
        )
        if self.dialect == "postgresql":
            name = sequence_name(counter)
            # the sequence only moves forward; its name is a digest (no quoting needed)
            conn.execute(
                sa.text(
                    f"SELECT setval(CAST(:sequence AS regclass), CAST(:value AS bigint))"
                    f" FROM {name} WHERE CASE WHEN is_called THEN last_value"
                    f" ELSE last_value - 1 END < CAST(:value AS bigint)"
                ),
                {"sequence": name, "value": value},
            )

    def last(self, conn: sa.Connection, counter: str) -> int:
        """The counter's last number given (0 when it gave none)."""
        found = conn.scalar(sa.select(self.table.c.value).where(self.table.c.name == counter))
        value = int(found or 0)
        if self.dialect == "postgresql":
            given = conn.scalar(
                sa.text(
                    "SELECT last_value FROM pg_sequences"
                    " WHERE schemaname = current_schema() AND sequencename = :name"
                ),
                {"name": sequence_name(counter)},
            )
            value = max(value, int(given or 0))
        return value

    def values(self, conn: sa.Connection) -> dict[str, int]:
        """Every counter's last number given, by counter (what an export saves)."""
        found = {name: int(value) for name, value in conn.execute(sa.select(self.table))}
        if self.dialect != "postgresql":
            return found
        rows = conn.execute(
            sa.text(
                "SELECT sequencename, last_value FROM pg_sequences"
                " WHERE schemaname = current_schema() AND last_value IS NOT NULL"
            )
        )
        given = {str(name): int(value) for name, value in rows}
        return {
            name: max(value, int(given.get(sequence_name(name)) or 0))
            for name, value in found.items()
        }

    def restored(self, conn: sa.Connection, counters: Iterable[tuple[str, int]]) -> None:
        """After a restore wrote ``heddle_sequence``'s rows: each counter's sequence moved
        past its value (PostgreSQL; on SQLite the rows are the counters)."""
        if self.dialect == "postgresql":
            for counter, value in counters:
                self.advance(conn, counter, value)

    def prepare(self, conn: sa.Connection, counter: str) -> None:
        """PostgreSQL: the counter's sequence and row made now, in ``conn``'s transaction —
        by a process about to start others that draw from it, which would otherwise each
        register the row and wait for one another's first commit. Nothing on SQLite."""
        if self.dialect == "postgresql" and self._ensure(conn.engine, counter):
            conn.execute(self._register, {"counter": counter})

    def _ensure(self, engine: sa.Engine, counter: str) -> bool:
        """PostgreSQL: the counter's sequence, created on its first use, starting after its
        row's committed value (a counter numbered before sequences, by the demo data or a
        restore). Created on a connection of its own, committed at once, so the writing
        transaction holds no catalog lock; two processes creating the same sequence
        meanwhile both go on. True the first time this process asks for the counter (the
        caller then registers the counter's row in its transaction)."""
        if counter in self._ready:
            return False
        name = sequence_name(counter)
        table = self.table
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            exists = conn.scalar(sa.text("SELECT to_regclass(:name) IS NOT NULL"), {"name": name})
            if not exists:
                start = conn.scalar(sa.select(table.c.value).where(table.c.name == counter))
                try:
                    conn.execute(
                        sa.text(
                            f"CREATE SEQUENCE IF NOT EXISTS {name} AS bigint"
                            f" START WITH {int(start or 0) + 1}"
                        )
                    )
                except sa.exc.DBAPIError as exc:
                    if getattr(exc.orig, "sqlstate", None) not in _CREATED_MEANWHILE:
                        raise
        self._ready.add(counter)
        return True
