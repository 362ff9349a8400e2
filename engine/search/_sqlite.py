"""SQLite text search: an FTS5 trigram table per entity table, kept in step by triggers.

Each table with search fields gets an *external-content* FTS5 table (it stores the index,
not a copy of the text) over those columns, ``tokenize='trigram'``, and three triggers
that write every insert, update and delete into it (the FTS5 manual's pattern, with its
``'delete'`` command). A trigram index finds any substring of three characters or more,
ignoring case (for every alphabet, not only ASCII as ``LIKE`` does), so it keeps search's
meaning: every word a substring of a search field.

Objects are named from the table: ``<table>__fts`` and ``<table>__fts_insert`` /
``_update`` / ``_delete`` (no entity name may hold ``__``, so only a ``table`` option
could clash; a table whose name is taken, or with a search field FTS5 reserves — ``rank``,
``rowid`` — gets no index). :func:`ensure` makes them match the Model after every
migration; whether they match is read from ``sqlite_master``: the SQL SQLite keeps for
each object must be the SQL :func:`definitions` writes. A table rebuild (which drops the
table's triggers), a renamed column or table (which rewrites them), a search field added
or dropped: each leaves SQL that differs, so the object is made again and the index is
rebuilt from the table.

:func:`usable` tells the query layer which indexes it may read, once per connection pool
and Model (not once per search); anything else searches with ``LIKE``, as before.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import Pool
from sqlalchemy.sql.elements import ColumnElement

#: The trigram tokenizer finds nothing shorter: shorter words stay ``LIKE`` scans.
MIN_WORD = 3
#: The first SQLite with the trigram tokenizer.
TRIGRAM_SINCE = (3, 34, 0)
SUFFIX = "__fts"
TRIGGERS = ("insert", "update", "delete")
#: Column names FTS5 keeps for itself (whatever their case).
RESERVED = frozenset({"rank", "rowid"})


def fts_name(table: str) -> str:
    """``account`` → ``account__fts``, the FTS5 table over ``account``'s search fields."""
    return f"{table}{SUFFIX}"


#: The tables SQLite makes for an FTS5 table ``x``: ``x`` itself and its shadow tables.
_SHADOWS = ("", "_data", "_idx", "_docsize", "_config")


def is_search_table(name: str) -> bool:
    """Whether ``name`` is one of the tables of an FTS5 table :func:`ensure` makes (the
    migration planner leaves them alone: they are not the Model's)."""
    return any(name.endswith(SUFFIX + shadow) for shadow in _SHADOWS)


def trigger_name(table: str, event: str) -> str:
    """``account``, ``insert`` → ``account__fts_insert``."""
    return f"{fts_name(table)}_{event}"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True, slots=True)
class Definition:
    """One object as ``sqlite_master`` holds it: kind, name, the table it is on, its SQL."""

    type: str  # "table" | "trigger"
    name: str
    table: str
    sql: str


def definitions(table: str, columns: Sequence[str]) -> list[Definition]:
    """The FTS5 table over ``table``'s ``columns`` and the triggers that feed it, as SQL.

    Written in the form SQLite stores, so comparing them with ``sqlite_master`` says
    whether what is there is exactly this.
    """
    fts = fts_name(table)
    cols = ", ".join(_quote(c) for c in columns)
    on = _quote(table)

    def values(row: str) -> str:
        return ", ".join(f"{row}.{_quote(c)}" for c in columns)

    insert = f'INSERT INTO {_quote(fts)}(rowid, {cols}) VALUES (new."id", {values("new")});'
    delete = (
        f"INSERT INTO {_quote(fts)}({_quote(fts)}, rowid, {cols})"
        f" VALUES ('delete', old.\"id\", {values('old')});"
    )
    # Only a change to the id or a searched column touches the index (an update that
    # sets them to what they were, or changes other columns, costs nothing).
    watched = ["id", *columns]
    changed = " OR ".join(f"old.{_quote(c)} IS NOT new.{_quote(c)}" for c in watched)
    of = ", ".join(_quote(c) for c in watched)
    return [
        Definition(
            "table",
            fts,
            fts,
            f"CREATE VIRTUAL TABLE {_quote(fts)} USING fts5({cols}, content={_string(table)},"
            " content_rowid='id', tokenize='trigram')",
        ),
        Definition(
            "trigger",
            trigger_name(table, "insert"),
            table,
            f"CREATE TRIGGER {_quote(trigger_name(table, 'insert'))} AFTER INSERT ON {on}"
            f" BEGIN {insert} END",
        ),
        Definition(
            "trigger",
            trigger_name(table, "update"),
            table,
            f"CREATE TRIGGER {_quote(trigger_name(table, 'update'))} AFTER UPDATE OF {of}"
            f" ON {on} WHEN {changed} BEGIN {delete} {insert} END",
        ),
        Definition(
            "trigger",
            trigger_name(table, "delete"),
            table,
            f"CREATE TRIGGER {_quote(trigger_name(table, 'delete'))} AFTER DELETE ON {on}"
            f" BEGIN {delete} END",
        ),
    ]


def indexable(table: str, columns: Sequence[str]) -> bool:
    """Whether FTS5 takes these columns (not its own ``rank`` or ``rowid``, nor its table's
    name); when it does not, the table's search stays a ``LIKE`` scan."""
    return bool(columns) and not any(
        c.lower() in RESERVED or c.lower() == fts_name(table).lower() for c in columns
    )


def supports_trigram(version: str, modules: Sequence[str]) -> bool:
    """Whether a SQLite of ``version`` with these modules has FTS5's trigram tokenizer."""
    try:
        number = tuple(int(part) for part in version.split(".")[:3])
    except ValueError:
        return False
    return number >= TRIGRAM_SINCE and "fts5" in modules


def available(conn: Connection) -> bool:
    """Whether this connection's SQLite has FTS5 with the trigram tokenizer."""
    try:
        version = str(conn.exec_driver_sql("SELECT sqlite_version()").scalar_one())
        modules = conn.exec_driver_sql("SELECT name FROM pragma_module_list").scalars().all()
    except sa.exc.DBAPIError:  # a SQLite built without the introspection pragmas
        return False
    return supports_trigram(version, [str(m).lower() for m in modules])


# --- what is there ---------------------------------------------------------------------


def _live(conn: Connection) -> dict[tuple[str, str], Definition]:
    """Every table and trigger that could be ours, by (type, name)."""
    rows = conn.exec_driver_sql(
        "SELECT type, name, tbl_name, sql FROM sqlite_master"
        " WHERE type IN ('table', 'trigger') AND instr(name, ?) > 0",
        (SUFFIX,),
    )
    return {(r[0], r[1]): Definition(r[0], r[1], r[2], r[3] or "") for r in rows}


def _ours(thing: Definition) -> bool:
    """An object :func:`definitions` made, for some table (maybe one gone since)."""
    if thing.type == "trigger":
        return any(thing.name.endswith(f"{SUFFIX}_{event}") for event in TRIGGERS)
    return (
        thing.name.endswith(SUFFIX)
        and thing.sql.startswith("CREATE VIRTUAL TABLE")
        and "tokenize='trigram'" in thing.sql
    )


# --- making it so ---------------------------------------------------------------------


def ensure(conn: Connection, wanted: Mapping[str, Sequence[str]]) -> list[str]:
    """Make the FTS5 tables and triggers of ``wanted`` (table → search columns) exist
    exactly, drop those of tables or columns gone, rebuild every index whose table or
    triggers had to be made. Returns the FTS5 tables that now serve search.

    Without FTS5 or the trigram tokenizer, creates nothing (search stays a ``LIKE``
    scan) and drops the triggers, which would make every write fail there.
    """
    try:
        return _ensure(conn, wanted)
    finally:
        forget(conn.engine)


def _ensure(conn: Connection, wanted: Mapping[str, Sequence[str]]) -> list[str]:
    live = _live(conn)
    if not available(conn):
        for thing in live.values():
            if thing.type == "trigger" and _ours(thing):
                conn.exec_driver_sql(f"DROP TRIGGER {_quote(thing.name)}")
        return []
    plans: dict[str, list[Definition]] = {}
    for table, columns in wanted.items():
        taken = live.get(("table", fts_name(table)))
        if indexable(table, columns) and (taken is None or _ours(taken)):
            plans[table] = definitions(table, columns)
    expected = {(d.type, d.name): d for group in plans.values() for d in group}
    # Triggers first: one left pointing at an FTS table about to go would break writes.
    for kind in ("trigger", "table"):
        for key, thing in live.items():
            if key[0] == kind and _ours(thing) and expected.get(key) != thing:
                conn.exec_driver_sql(f"DROP {kind.upper()} {_quote(thing.name)}")
    kept = {key for key, thing in live.items() if expected.get(key) == thing}
    for table, group in plans.items():
        made = False
        for item in group:
            if (item.type, item.name) not in kept:
                conn.exec_driver_sql(item.sql)
                made = True
        if made:  # rows written while a trigger was missing (or never seen) are indexed now
            fts = _quote(fts_name(table))
            conn.exec_driver_sql(f"INSERT INTO {fts}({fts}) VALUES ('rebuild')")
    return sorted(fts_name(table) for table in plans)


# --- reading it ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextIndex:
    """An FTS5 trigram table that search may read, and the columns it indexes."""

    name: str
    columns: tuple[str, ...]

    def covers(self, columns: Sequence[str]) -> bool:
        return set(columns) <= set(self.columns)

    def condition(
        self, row_id: ColumnElement[Any], columns: Sequence[str], words: Sequence[str]
    ) -> ColumnElement[bool]:
        """``id IN (SELECT rowid FROM <fts> WHERE <fts> MATCH …)``: rows where every word
        is a substring of one of ``columns`` (a subset of the indexed ones)."""
        phrases = " AND ".join(_phrase(word) for word in words)
        if set(columns) != set(self.columns):  # narrowed: a hidden field is not searched
            phrases = "{" + " ".join(_phrase(c) for c in columns) + "} : (" + phrases + ")"
        # An FTS5 table has a hidden column of its own name: "<fts> MATCH" is "<fts>.<fts>".
        fts = sa.table(self.name, sa.column("rowid"), sa.column(self.name))
        found = sa.select(fts.c.rowid).where(fts.c[self.name].match(phrases))
        return row_id.in_(found)


def _phrase(text: str) -> str:
    """``text`` as an FTS5 string: every character literal, ``"`` doubled."""
    return '"' + text.replace('"', '""') + '"'


# By pool: an engine and the engines made from it with execution_options() (the record
# service's reader) share one pool, and so one database and one memory of it.
_usable: weakref.WeakKeyDictionary[Pool, dict[str, dict[str, TextIndex]]]
_usable = weakref.WeakKeyDictionary()
_lock = threading.Lock()
_MODELS_PER_POOL = 8


def usable(
    conn: Connection, model_hash: str, wanted: Callable[[], Mapping[str, Sequence[str]]]
) -> Mapping[str, TextIndex]:
    """The FTS5 tables search may use, by entity table: those whose table and triggers are
    exactly as :func:`ensure` makes them for ``wanted()`` (table → search columns).

    Read from ``sqlite_master`` once per connection pool and Model, then remembered;
    :func:`ensure` forgets what its engine's pool remembered. A database made without the
    migrator (tests' ``metadata.create_all``) or without FTS5 has none: search scans with
    ``LIKE``, and so does a table whose index is missing or stale.
    """
    pool = conn.engine.pool
    with _lock:
        known = _usable.get(pool, {}).get(model_hash)
    if known is not None:
        return known
    found: dict[str, TextIndex] = {}
    if available(conn):
        live = _live(conn)
        for table, columns in wanted().items():
            if indexable(table, columns) and all(
                live.get((d.type, d.name)) == d for d in definitions(table, columns)
            ):
                found[table] = TextIndex(fts_name(table), tuple(columns))
    with _lock:
        per_model = _usable.setdefault(pool, {})
        if len(per_model) >= _MODELS_PER_POOL:
            per_model.pop(next(iter(per_model)))
        per_model[model_hash] = found
    return found


def forget(engine: Engine) -> None:
    """Drop what :func:`usable` remembered for ``engine``'s database (its search tables
    changed), for every engine sharing its pool."""
    with _lock:
        _usable.pop(engine.pool, None)
