"""The live database as the planner sees it: tables, columns, indexes, unique and foreign
key constraints, reflected in one pass with SQLAlchemy's inspector.

Indexes and constraints are compared by what they do (:class:`Key`: which columns, unique
or not, which table a foreign key points at) as well as by name, so a database made by
``metadata.create_all`` and one grown by migrations compare alike, and a renamed column
does not make its index look new.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

from ..search._sqlite import is_search_table
from ._checks import ColumnType, describe

#: Tables the planner never looks at: SQLite's own, Alembic's leftovers (and SQLite's
#: search tables, which engine.query keeps after every migration: is_search_table).
IGNORED_PREFIXES = ("sqlite_", "_alembic_tmp_")


@dataclass(frozen=True)
class Key:
    """What an index or constraint does, independent of its name."""

    kind: str  # "index" | "unique" | "fk"
    columns: tuple[str, ...]
    target: str | None = None  # fk: the table it points at
    ondelete: str = "NO ACTION"  # fk

    def renamed(self, names: dict[str, str]) -> Key:
        return replace(self, columns=tuple(names.get(c, c) for c in self.columns))

    def __str__(self) -> str:
        return f"({', '.join(self.columns)})"


@dataclass(frozen=True)
class Thing:
    """One index or constraint, live or wanted."""

    key: Key
    name: str | None
    constraint: bool = False  # a UNIQUE or FOREIGN KEY constraint rather than an index
    obj: Any = None  # wanted ones: the SQLAlchemy Index or Constraint


@dataclass
class LiveColumn:
    name: str
    type: sa.types.TypeEngine[Any]
    kind: ColumnType
    nullable: bool


@dataclass
class LiveTable:
    name: str
    columns: dict[str, LiveColumn]
    things: list[Thing] = field(default_factory=list)
    #: trigram search indexes (engine.query makes them after every migration): name → column
    search: dict[str, str] = field(default_factory=dict)


def ondelete(value: str | None) -> str:
    return (value or "NO ACTION").upper()


def reflect(conn: Connection) -> dict[str, LiveTable]:
    """Every table of the connection's default (PostgreSQL) schema."""
    inspector = sa.inspect(conn)
    sqlite = conn.dialect.name == "sqlite"
    names = [
        n
        for n in inspector.get_table_names()
        if not n.startswith(IGNORED_PREFIXES) and not (sqlite and is_search_table(n))
    ]
    if not names:
        return {}
    dialect = conn.dialect
    columns = inspector.get_multi_columns(filter_names=names)
    indexes = inspector.get_multi_indexes(filter_names=names)
    uniques = inspector.get_multi_unique_constraints(filter_names=names)
    fks = inspector.get_multi_foreign_keys(filter_names=names)
    live: dict[str, LiveTable] = {}
    for (_, name), cols in columns.items():
        table = LiveTable(
            name,
            {
                c["name"]: LiveColumn(
                    c["name"], c["type"], describe(c["type"], dialect), bool(c["nullable"])
                )
                for c in cols
            },
        )
        for ix in indexes.get((None, name), []):
            indexed = [str(c) for c in ix.get("column_names") or () if c is not None]
            ops = (ix.get("dialect_options") or {}).get("postgresql_ops") or {}
            if ix["name"] and len(indexed) == 1 and "gin_trgm_ops" in ops.values():
                table.search[ix["name"]] = indexed[0]
            if ix.get("duplicates_constraint") or not _plain(ix):
                continue
            kind = "unique" if ix.get("unique") else "index"
            table.things.append(Thing(Key(kind, tuple(indexed)), ix["name"]))
        for uq in uniques.get((None, name), []):
            table.things.append(
                Thing(Key("unique", tuple(uq["column_names"])), uq.get("name"), True)
            )
        for fk in fks.get((None, name), []):
            key = Key(
                "fk",
                tuple(fk["constrained_columns"]),
                fk["referred_table"],
                ondelete((fk.get("options") or {}).get("ondelete")),
            )
            table.things.append(Thing(key, fk.get("name"), True))
        live[name] = table
    return live


def _plain(index: Any) -> bool:
    """A B-tree index on plain columns, the only kind tables.py declares. Others (trigram
    search indexes, expression or partial indexes) belong to someone else: never matched,
    never dropped."""
    options = index.get("dialect_options") or {}
    return bool(
        index.get("column_names")
        and None not in index["column_names"]
        and options.get("postgresql_using", "btree") == "btree"
        and not options.get("postgresql_ops")
        and not options.get("postgresql_where")
        and not options.get("sqlite_where")
    )


def rendered_name(obj: sa.Index | sa.Constraint, dialect: Dialect) -> str | None:
    """The name the database will know ``obj`` by (naming convention applied)."""
    if obj.name is None:
        return None
    preparer = dialect.identifier_preparer
    if isinstance(obj, sa.Index):
        text = preparer.format_index(obj)
    else:
        text = preparer.format_constraint(obj) or ""
    if text.startswith(preparer.initial_quote):
        return text[1:-1].replace(preparer.escape_to_quote, preparer.escape_quote)
    return text


def wanted_things(table: sa.Table, dialect: Dialect) -> list[Thing]:
    """The indexes, unique and foreign key constraints a built table declares."""
    things: list[Thing] = []
    for ix in sorted(table.indexes, key=lambda i: str(i.name)):
        kind = "unique" if ix.unique else "index"
        cols = tuple(c.name for c in ix.columns)
        things.append(Thing(Key(kind, cols), rendered_name(ix, dialect), False, ix))
    for constraint in sorted(table.constraints, key=lambda c: str(c.name)):
        if isinstance(constraint, sa.UniqueConstraint):
            cols = tuple(c.name for c in constraint.columns)
            things.append(
                Thing(Key("unique", cols), rendered_name(constraint, dialect), True, constraint)
            )
        elif isinstance(constraint, sa.ForeignKeyConstraint):
            cols = tuple(c.name for c in constraint.columns)
            key = Key("fk", cols, constraint.referred_table.name, ondelete(constraint.ondelete))
            things.append(Thing(key, rendered_name(constraint, dialect), True, constraint))
    return things


def match(wanted: list[Thing], live: list[Thing]) -> tuple[list[Thing], list[Thing]]:
    """Pair wanted things with live ones, by name and key first, then by key alone.

    Returns (wanted things with no live counterpart, live things nobody wants).
    """
    missing = list(wanted)
    spare = list(live)
    for exact in (True, False):
        for thing in list(missing):
            for other in spare:
                if other.key == thing.key and (not exact or other.name == thing.name):
                    missing.remove(thing)
                    spare.remove(other)
                    break
    return missing, spare
