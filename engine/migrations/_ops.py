"""The Alembic operations and SQL statements a migration runs: small builders the planner
(:mod:`._migrate_plan`) puts into its drafts, and the SQLite table rebuild they feed.

Each builder returns an :data:`Action`, run once against Alembic's offline context (to
show its SQL) and once against the migration's connection.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from alembic.operations import BatchOperations, Operations

from metamodel import Field

from ..fieldtypes import python_value
from ..tables import ARCHIVE_TABLE, AUDIT_TABLE
from . import _checks as checks
from ._live import Key, LiveTable, Thing, ondelete

Action = Callable[[Operations], None]
#: SQLite's json_object takes at most 127 arguments: this many columns per call.
JSON_PAIRS = 30


@dataclass
class Rebuild:
    """One SQLite table rebuild being assembled: Alembic copies ``table`` (edited by the
    parts) into a new table, runs ``batch`` on the way, then the ``after`` statements."""

    table: sa.Table
    batch: list[Callable[[BatchOperations], None]] = field(default_factory=list)
    after: list[sa.Executable] = field(default_factory=list)


RebuildPart = Callable[[Rebuild], None]


def creation_order(
    tables: list[sa.Table],
) -> list[tuple[sa.Table | None, list[sa.ForeignKeyConstraint]]]:
    """Tables in the order they can be created; the last entry holds the foreign keys of a
    cycle, to be added once every table exists."""
    ordered: list[tuple[sa.Table | None, list[sa.ForeignKeyConstraint]]]
    ordered = sa.schema.sort_tables_and_constraints(tables)  # type: ignore[no-untyped-call]
    return ordered


def retarget(thing: Thing, renames: dict[str, str]) -> Thing:
    target = thing.key.target
    if target is None or target not in renames:
        return thing
    key = Key(thing.key.kind, thing.key.columns, renames[target], thing.key.ondelete)
    return Thing(key, thing.name, thing.constraint)


def rename_audit_key(entity: str, old: str, new: str, sqlite: bool) -> Action:
    """Rename a field in the audit history of ``entity``: each change ``{old: [a, b]}``
    becomes ``{new: [a, b]}``, so history and as-of reads use the field's new name."""
    if sqlite:
        params = {"entity": entity, "old_path": f'$."{old}"', "new_path": f'$."{new}"'}
        statement = sa.text(
            f"UPDATE {AUDIT_TABLE} SET changes = json_set(json_remove(changes, :old_path),"
            " :new_path, json(json_extract(changes, :old_path)))"
            " WHERE entity = :entity AND json_type(changes, :old_path) IS NOT NULL"
        )
    else:
        params = {"entity": entity, "old": old, "new": new}
        statement = sa.text(
            f"UPDATE {AUDIT_TABLE} SET changes = (changes - CAST(:old AS text))"
            " || jsonb_build_object(CAST(:new AS text), changes -> CAST(:old AS text))"
            " WHERE entity = :entity AND jsonb_exists(changes, CAST(:old AS text))"
        )
    typed = statement.bindparams(
        *(sa.bindparam(key, value, type_=sa.String()) for key, value in params.items())
    )
    return lambda op: op.execute(typed)


def rename_table(old: str, new: str) -> Action:
    return lambda op: op.rename_table(old, new)


def drop_table(name: str) -> Action:
    return lambda op: op.drop_table(name)


def drop_constraint(name: str, table: str, type_: str) -> Action:
    return lambda op: op.drop_constraint(name, table, type_=type_)


def drop_index(name: str, table: str) -> Action:
    return lambda op: op.drop_index(name, table_name=table)


def everything(table: sa.TableClause) -> sa.ColumnElement[bool]:
    return sa.true()


def create_table(table: sa.Table, inline: list[sa.ForeignKeyConstraint] | None) -> Action:
    def run(op: Operations) -> None:
        op.execute(sa.schema.CreateTable(table, include_foreign_key_constraints=inline))
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            op.execute(sa.schema.CreateIndex(index))

    return run


def remove(table: sa.Table, doomed: Callable[[Key], bool]) -> None:
    """Take indexes and constraints out of a rebuild's copy of a table."""
    for index in list(table.indexes):
        kind = "unique" if index.unique else "index"
        if doomed(Key(kind, tuple(c.name for c in index.columns))):
            table.indexes.discard(index)
    for constraint in list(table.constraints):
        key: Key | None = None
        if isinstance(constraint, sa.UniqueConstraint):
            key = Key("unique", tuple(c.name for c in constraint.columns))
        elif isinstance(constraint, sa.ForeignKeyConstraint):
            target = constraint.elements[0].target_fullname.split(".")[0]
            key = Key(
                "fk",
                tuple(c.name for c in constraint.columns),
                target,
                ondelete(constraint.ondelete),
            )
        if key is not None and doomed(key):
            table.constraints.discard(constraint)


def retarget_copy(table: sa.Table, old: str, new: str) -> None:
    """Point a rebuild copy's foreign keys at ``new`` where they pointed at ``old``."""
    for constraint in list(table.constraints):
        if not isinstance(constraint, sa.ForeignKeyConstraint):
            continue
        targets = [element.target_fullname.split(".") for element in constraint.elements]
        if all(t[0] != old for t in targets):
            continue
        table.constraints.discard(constraint)
        table.append_constraint(
            sa.ForeignKeyConstraint(
                [c.name for c in constraint.columns],
                [f"{new if t[0] == old else t[0]}.{t[1]}" for t in targets],
                name=constraint.name,
                ondelete=constraint.ondelete,
            )
        )


def sqlite_json(
    source: sa.TableClause,
    names: list[str],
    json_columns: set[str],
    times: set[str],
) -> sa.ColumnElement[Any]:
    """``json_object`` over many columns, in calls SQLite's argument limit allows.

    Times (stored in UTC as ``2024-03-01 09:30:00.000000``) are written the way the API
    and PostgreSQL's archive write them, ISO 8601 with the zone: ``2024-03-01T09:30:00…+00:00``.
    """

    def value(name: str) -> sa.ColumnElement[Any]:
        column = source.c[name]
        if name in times:
            return sa.func.replace(column, " ", "T").concat("+00:00")
        return sa.func.json(column) if name in json_columns else column

    first, rest = names[:JSON_PAIRS], names[JSON_PAIRS:]
    data: sa.ColumnElement[Any] = sa.func.json_object(
        *(item for n in first for item in (sa.literal(str(n), sa.String()), value(n)))
    )
    while rest:
        chunk, rest = rest[:JSON_PAIRS], rest[JSON_PAIRS:]
        data = sa.func.json_set(
            data, *(item for n in chunk for item in (sa.literal(f"$.{n}", sa.String()), value(n)))
        )
    return data


def constant_default(spec: Field) -> Any:
    """The value existing rows get when the field is added: its constant default."""
    if spec.default is None or spec.default_expression is not None or spec.computed:
        return None
    value = spec.default
    if spec.value_type.startswith("list:") and not isinstance(value, list | tuple):
        value = [value]
    return python_value(spec, value)


def shown(value: Any) -> str:
    if isinstance(value, list):
        return json.dumps(value, ensure_ascii=False)
    return repr(value) if isinstance(value, str) else str(value)


def bind(value: Any, type_: sa.types.TypeEngine[Any]) -> sa.ColumnElement[Any]:
    if isinstance(value, list):
        return sa.literal(json.dumps(value, ensure_ascii=False))
    return sa.literal(value, type_)


def literal(value: Any, type_: sa.types.TypeEngine[Any], dialect: sa.Dialect) -> str | None:
    """``value`` as SQL text for a column default, or None when it cannot be written."""
    if value is None:
        return None
    element = (
        sa.literal(json.dumps(value, ensure_ascii=False))
        if isinstance(value, list)
        else sa.literal(value, type_)
    )
    try:
        return str(element.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    except (sa.exc.CompileError, NotImplementedError, TypeError):
        return None


def archive(
    live: LiveTable, table: str, column: str | None, sqlite: bool, model_hash: str
) -> Action:
    """Copy a column's values (or whole rows) into heddle_archive, one row per record.

    Built at plan time, run after renames: ``table`` is the name it has by then.
    """
    names = [column] if column else list(live.columns)
    json_columns = {n for n in names if live.columns[n].kind.kind == "json"}
    has_id = "id" in live.columns
    source = checks.light_table(table, *(["id"] if has_id else []), *names)
    if sqlite:
        times = {n for n in names if live.columns[n].kind.kind == "datetime"}
        data = sqlite_json(source, names, json_columns, times)
    elif column is None:
        data = sa.func.to_jsonb(source.table_valued())
    else:
        data = sa.func.jsonb_build_object(sa.literal(str(column), sa.Text()), source.c[column])
    query = sa.select(
        sa.literal(str(table), sa.String()),
        sa.literal(str(column), sa.String()) if column else sa.null(),
        source.c.id if has_id else sa.null(),
        data,
        sa.func.current_timestamp(),
        sa.literal(model_hash, sa.String()),
    ).select_from(source)
    if column:
        query = query.where(source.c[column].is_not(None))
    archive = checks.light_table(
        ARCHIVE_TABLE,
        "source_table",
        "source_column",
        "record_id",
        "data",
        "archived_at",
        "model_hash",
    )
    statement = archive.insert().from_select(list(archive.c.keys()), query)
    return lambda op: op.execute(statement)
