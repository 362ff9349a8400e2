"""Audit history: who changed what, when, field by field; and a record as it once was.

Each create, update and delete of an audited entity writes one ``heddle_audit`` row with
the actor, the record's new version and the diff of raw values ``{field: [old, new]}``.
Replaying those rows up to a moment gives the record as it was then.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from metamodel import Entity

from .context import Actor
from .fieldtypes import python_value
from .tables import AUDIT_TABLE, Tables

#: Columns that change with every write and say nothing about the record's content.
BOOKKEEPING = frozenset({"id", "created_at", "updated_at", "created_by", "updated_by", "version"})


def jsonable(value: Any) -> Any:
    """A raw value as JSON: decimals as text (exact), dates and times in ISO form."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


class Audit:
    def __init__(self, tables: Tables) -> None:
        self.tables = tables
        self.table = tables.metadata.tables[AUDIT_TABLE]

    def _columns(self, ent: Entity) -> list[str]:
        derived = {f.name for f in ent.fields_of_type("rollup")}
        return [
            c.name
            for c in self.tables.table(ent.name).columns
            if c.name not in BOOKKEEPING and c.name not in derived
        ]

    def record(
        self,
        conn: sa.Connection,
        ent: Entity,
        record_id: int,
        action: str,
        actor: Actor,
        version: int,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any] | None,
    ) -> None:
        if not ent.audit:
            return
        changes: dict[str, list[Any]] = {}
        for name in self._columns(ent):
            old = jsonable(before.get(name)) if before is not None else None
            new = jsonable(after.get(name)) if after is not None else None
            if old != new:
                changes[name] = [old, new]
        if action == "update" and not changes:
            return
        conn.execute(
            self.table.insert().values(
                entity=ent.name,
                record_id=record_id,
                action=action,
                at=dt.datetime.now(dt.UTC),
                actor_id=actor.user_id,
                version=version,
                changes=changes,
            )
        )

    def history(self, conn: sa.Connection, entity: str, record_id: int) -> list[dict[str, Any]]:
        t = self.table
        rows = conn.execute(
            sa.select(t.c.action, t.c.at, t.c.actor_id, t.c.version, t.c.changes)
            .where(t.c.entity == entity, t.c.record_id == record_id)
            .order_by(t.c.id)
        ).mappings()
        return [dict(row) for row in rows]

    def as_of(
        self, conn: sa.Connection, ent: Entity, record_id: int, at: dt.datetime
    ) -> dict[str, Any] | None:
        state: dict[str, Any] | None = None
        for entry in self.history(conn, ent.name, record_id):
            if entry["at"] > at:
                break
            if entry["action"] == "delete":
                state = None
                continue
            state = {} if state is None or entry["action"] == "create" else state
            for name, (_old, new) in entry["changes"].items():
                state[name] = new
            state["version"] = entry["version"]
        if state is None:
            return None
        restored = {
            name: python_value(ent.fields[name], value) if name in ent.fields else value
            for name, value in state.items()
        }
        for name in self._columns(ent):
            restored.setdefault(name, None)
        restored["id"] = record_id
        return restored
