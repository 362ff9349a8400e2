"""Search: what ``q=`` looks in, the condition it adds, and the indexes that serve it.

An entity searches its ``search_fields`` (or its title field). Every word must appear,
ignoring case, in one of them. The indexes: trigram GIN indexes on PostgreSQL (``pg_trgm``),
an FTS5 trigram table per table on SQLite (:mod:`engine.search._sqlite`); the migrator
keeps them after every migration (:func:`ensure_search_indexes`). The same kind of index
serves fuzzy duplicate rules, over the key column of ``heddle_duplicate_key``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from metamodel import Entity

from ..fieldtypes import stored
from ..paths import target
from ..tables import DUPLICATE_KEY_TABLE, Tables
from . import _sqlite as fts
from ._sqlite import MIN_WORD, TextIndex

Column = ColumnElement[Any]
Condition = ColumnElement[bool]


def search_fields(entity: Entity) -> tuple[str, ...]:
    """The entity's search fields, or its title field if it declares none."""
    if entity.search_fields:
        return entity.search_fields
    title = entity.fields.get(entity.title_field or "")
    if title is not None and stored(title) and target(entity, title.name).kind == "text":
        return (title.name,)
    return ()


def like_escape(text: str) -> str:
    """Text as a LIKE pattern that matches it literally (``\\`` escapes ``%`` and ``_``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def like(column: Column, pattern: str, dialect: str, *, insensitive: bool) -> Condition:
    if dialect == "postgresql":
        # Backslash is PostgreSQL's default LIKE escape; no ESCAPE clause keeps the
        # condition in the shape the trigram index matches.
        return column.ilike(pattern) if insensitive else column.like(pattern)
    # SQLite's LIKE ignores case (for ASCII letters) and has no default escape.
    return column.like(pattern, escape="\\")


def search_condition(
    columns: Sequence[sa.Column[Any]],
    text: str,
    dialect: str,
    index: TextIndex | None = None,
) -> Condition:
    """Every word of ``text`` appears, ignoring case, in at least one of ``columns``.

    With ``index`` (SQLite's FTS5 trigram table over these columns' table), the words of
    three characters or more are looked up in it, all in one ``MATCH``; shorter words —
    common in Chinese and Japanese (张三, 佐藤) — cannot be found by trigrams and stay
    ``LIKE`` conditions.
    """
    words = text.split()[:10]
    if not words:
        return sa.true()
    names = [column.name for column in columns]
    indexed: list[str] = []
    if index is not None and columns and index.covers(names):
        indexed = [word for word in words if len(word) >= MIN_WORD]
    conditions = [
        sa.or_(
            *(
                like(column, f"%{like_escape(word)}%", dialect, insensitive=True)
                for column in columns
            )
        )
        for word in words
        if len(word) < MIN_WORD or not indexed
    ]
    if indexed:
        assert index is not None
        conditions.append(index.condition(columns[0].table.c.id, names, indexed))
    return sa.and_(*conditions)


# --- search indexes -------------------------------------------------------------------------


def search_index_name(table: str, column: str) -> str:
    """``ix_<table>_<column>_trgm``, shortened with a hash to PostgreSQL's 63 characters."""
    name = f"ix_{table}_{column}_trgm"
    if len(name) <= 63:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[:50]}_{digest}_trgm"


def search_columns(tables: Tables) -> dict[str, tuple[str, ...]]:
    """Entity table → its search columns, for every entity that has some; and the keys of
    duplicate rules when a rule is fuzzy (its candidates are found by trigrams too,
    :mod:`engine.dedupe`)."""
    found = {}
    for entity in tables.model:
        table = tables.table(entity.name)
        columns = tuple(c for c in search_fields(entity) if c in table.c)
        if columns:
            found[table.name] = columns
    if any(rule.fuzzy is not None for entity in tables.model for rule in entity.duplicate_rules):
        found[DUPLICATE_KEY_TABLE] = ("key",)
    return found


def ensure_search_indexes(conn: sa.Connection, tables: Tables) -> list[str]:
    """Make the indexes that serve search; returns the names of those that now exist.

    - PostgreSQL: ``pg_trgm`` and a trigram GIN index on every search field. None when
      the extension cannot be created (no privilege): search is then a plain ``ILIKE`` scan.
    - SQLite: per table with search fields, an FTS5 trigram table over them kept in step
      by triggers (``engine._search_sqlite``), remade and rebuilt when the search fields,
      the table's name or the table itself changed, dropped with its table or its last
      search field. None without FTS5: search is then a plain ``LIKE`` scan.

    Idempotent; the migrator calls it after each migration, in its transaction.
    """
    if conn.dialect.name == "sqlite":
        return fts.ensure(conn, search_columns(tables))
    if conn.dialect.name != "postgresql":
        return []
    try:
        with conn.begin_nested():
            conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except sa.exc.DBAPIError:
        return []
    quote = conn.dialect.identifier_preparer.quote
    names = []
    for table_name, columns in search_columns(tables).items():
        for column in columns:
            name = search_index_name(table_name, column)
            conn.execute(
                sa.text(
                    f"CREATE INDEX IF NOT EXISTS {quote(name)} ON {quote(table_name)}"
                    f" USING gin ({quote(column)} gin_trgm_ops)"
                )
            )
            names.append(name)
    return names
