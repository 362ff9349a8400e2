"""The tables the database really has, read back from it: each field type's column type,
the system columns, foreign keys with their on_delete, child tables and indexes."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from engine.tables import build_tables
from metamodel import load_packages

PACKAGE = """\
kind: package
name: kinds
---
kind: entity
name: thing
ownable: true
fields:
  label: {type: string, max_length: 80, unique: true}
  body: {type: text}
  email: {type: email, index: true}
  count: {type: integer}
  price: {type: money}
  ratio: {type: decimal, precision: 12, scale: 4}
  share: {type: percent}
  done: {type: boolean}
  due: {type: date}
  at: {type: datetime}
  kind: {type: choice, options: [a, b]}
  tags: {type: multichoice, options: [x, y]}
  code: {type: autonumber, format: "T-{seq:04}"}
  parent: {type: reference, to: thing, on_delete: set_null}
  group: {type: reference, to: group, on_delete: restrict}
  helper: {type: user}
  helpers: {type: user, multiple: true}
  squad: {type: team}
  doc: {type: file}
  docs: {type: file, multiple: true}
  double: {type: formula, returns: integer, expression: "count * 2"}
  total: {type: rollup, of: part, via: thing, aggregate: sum, field: amount}
  parts: {type: children, entity: part}
---
kind: entity
name: group
fields:
  name: {type: string}
---
kind: entity
name: part
child: true
fields:
  thing: {type: reference, to: thing, on_delete: cascade}
  amount: {type: money}
"""

POSTGRESQL = {
    "label": "VARCHAR(80)",
    "body": "TEXT",
    "email": "VARCHAR(255)",
    "count": "INTEGER",
    "price": "NUMERIC(18, 2)",
    "ratio": "NUMERIC(12, 4)",
    "share": "NUMERIC(9, 2)",  # percent: a smaller default precision
    "done": "BOOLEAN",
    "due": "DATE",
    "at": "TIMESTAMP WITH TIME ZONE",
    "kind": "VARCHAR(63)",
    "tags": "JSONB",
    "code": "VARCHAR(64)",
    "parent": "BIGINT",
    "group": "BIGINT",
    "helper": "BIGINT",
    "helpers": "JSONB",
    "squad": "BIGINT",
    "doc": "BIGINT",
    "docs": "JSONB",
    "total": "NUMERIC",
    "id": "BIGINT",
    "version": "INTEGER",
    "created_at": "TIMESTAMP WITH TIME ZONE",
    "owner_id": "BIGINT",
    "team_id": "BIGINT",
}
# SQLite keeps the declared names (its affinity comes from them): exact types in name only.
SQLITE = {
    **POSTGRESQL,
    "at": "DATETIME",
    "created_at": "DATETIME",
    "tags": "JSON",
    "helpers": "JSON",
    "docs": "JSON",
    "parent": "INTEGER",
    "group": "INTEGER",
    "helper": "INTEGER",
    "squad": "INTEGER",
    "doc": "INTEGER",
    "id": "INTEGER",
    "owner_id": "INTEGER",
    "team_id": "INTEGER",
}


def _reflected(db_engine: Engine, tmp_path: Path) -> sa.Inspector:
    path = tmp_path / "kinds.yaml"
    path.write_text(textwrap.dedent(PACKAGE), encoding="utf-8")
    build_tables(load_packages([path])).metadata.create_all(db_engine)
    return sa.inspect(db_engine)


def _types(inspector: sa.Inspector, table: str, dialect: Any) -> dict[str, str]:
    return {
        column["name"]: column["type"].compile(dialect=dialect)
        for column in inspector.get_columns(table)
    }


def test_every_field_type_has_its_column_type(db_engine: Engine, tmp_path: Path) -> None:
    inspector = _reflected(db_engine, tmp_path)
    types = _types(inspector, "thing", db_engine.dialect)
    expected = POSTGRESQL if db_engine.dialect.name == "postgresql" else SQLITE
    assert {name: types.get(name) for name in expected} == expected
    assert not {"double", "parts"} & set(types)  # formulas and children have no column
    assert {"updated_at", "created_by", "updated_by"} <= set(types)


def test_references_are_foreign_keys_with_their_on_delete(
    db_engine: Engine, tmp_path: Path
) -> None:
    inspector = _reflected(db_engine, tmp_path)

    def keys(table: str) -> dict[str, tuple[str, str | None]]:
        return {
            key["constrained_columns"][0]: (
                key["referred_table"],
                (key.get("options") or {}).get("ondelete"),
            )
            for key in inspector.get_foreign_keys(table)
        }

    things = keys("thing")
    assert things["parent"] == ("thing", "SET NULL")
    assert things["group"] == ("group", "RESTRICT")
    assert things["owner_id"][0] == "heddle_user" and things["team_id"][0] == "heddle_team"
    assert keys("part")["thing"] == ("thing", "CASCADE")  # child rows go with their parent


def test_unique_indexed_and_reference_columns_are_indexed(
    db_engine: Engine, tmp_path: Path
) -> None:
    inspector = _reflected(db_engine, tmp_path)
    indexed = {
        tuple(index["column_names"]): bool(index["unique"])
        for index in inspector.get_indexes("thing")
    }
    uniques = {tuple(c["column_names"]) for c in inspector.get_unique_constraints("thing")}
    assert ("label",) in uniques or indexed.get(("label",)) is True
    assert ("email",) in indexed
    for reference in ("parent", "group", "owner_id", "team_id"):
        assert (reference,) in indexed, reference
    assert ("thing",) in {tuple(index["column_names"]) for index in inspector.get_indexes("part")}
