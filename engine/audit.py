"""Audit history: who changed what, when, field by field; and a record as it once was.

Each create, update, delete and merge of an audited entity writes one ``heddle_audit`` row
with the actor, the record's new version and the diff of raw values ``{field: [old, new]}``.
Replaying those rows up to a moment gives the record as it was then. A merge hands the
loser's rows to the survivor, marked ``merged_from``: shown in its history, skipped when
replaying it; the merge's own entry changes ``id`` from the loser's to the survivor's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
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
    if isinstance(value, _MOMENTS):
        return value.isoformat()
    return value


_MOMENTS = (dt.datetime, dt.date)  # a tuple: ``dt.datetime | dt.date`` is made per call
_AS_IS = frozenset({str, int, bool, float})  # JSON already: no call of jsonable for them


class Audit:
    def __init__(self, tables: Tables) -> None:
        self.tables = tables
        self.table = tables.metadata.tables[AUDIT_TABLE]
        self._audited: dict[str, list[str]] = {}  # the tables are fixed: found once each

    def _columns(self, ent: Entity) -> list[str]:
        found = self._audited.get(ent.name)
        if found is None:
            derived = {f.name for f in ent.fields_of_type("rollup")}
            found = self._audited[ent.name] = [
                c.name
                for c in self.tables.table(ent.name).columns
                if c.name not in BOOKKEEPING and c.name not in derived
            ]
        return found

    def changes(
        self, ent: Entity, before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
    ) -> dict[str, list[Any]]:
        """The diff of raw values ``{field: [old, new]}`` between two states of a record."""
        if before is None and after is not None:  # a create: every value that is set
            return {
                name: [None, value if value.__class__ in _AS_IS else jsonable(value)]
                for name in self._columns(ent)
                if (value := after.get(name)) is not None
            }
        found: dict[str, list[Any]] = {}
        for name in self._columns(ent):
            old = jsonable(before.get(name)) if before is not None else None
            new = jsonable(after.get(name)) if after is not None else None
            if old != new:
                found[name] = [old, new]
        return found

    def entry(
        self,
        ent: Entity,
        action: str,
        actor: Actor,
        version: int,
        changes: Mapping[str, Any],
        at: dt.datetime | None = None,
    ) -> dict[str, Any]:
        """An audit row, but for the record's id; ``at``: when (now by default)."""
        return {
            "entity": ent.name,
            "action": action,
            "at": at or dt.datetime.now(dt.UTC),
            "actor_id": actor.user_id,
            "version": version,
            "changes": dict(changes),
        }

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
        *,
        merged: int | None = None,
    ) -> None:
        """One entry; ``merged``: the id of the record a merge folded into this one, which
        the entry's changes show as ``id: [merged, record_id]``."""
        if not ent.audit:
            return
        changes = self.changes(ent, before, after)
        if action == "update" and not changes:
            return
        if merged is not None:
            changes = {"id": [merged, record_id], **changes}
        entry = self.entry(ent, action, actor, version, changes)
        conn.execute(self.table.insert().values(record_id=record_id, **entry))

    def inserting(self, created: sa.CTE, numbered: Sequence[str] = ()) -> sa.CTE:
        """On PostgreSQL, the audit row of the record ``created`` (a data-modifying CTE
        inserting it and returning it) written by the same statement — one round trip —
        its values bound as ``a_<column>``. Elsewhere :meth:`record` writes the entry.

        ``numbered``: columns whose values the statement itself gives (autonumbers drawn
        in SQL), so they are not among the changes bound: each is added to them as
        ``[null, value]``, as :meth:`changes` gives a create's."""
        columns = self.table.c
        names = ("entity", "action", "at", "actor_id", "version", "changes")
        values: list[Any] = [sa.bindparam(f"a_{name}", type_=columns[name].type) for name in names]
        if numbered:
            pairs: list[Any] = []
            for name in numbered:
                pairs += [sa.literal(name), sa.func.jsonb_build_array(sa.null(), created.c[name])]
            added = sa.func.jsonb_build_object(*pairs)
            values[-1] = values[-1].op("||", return_type=columns["changes"].type)(added)
        audited = self.table.insert().from_select(
            [*names, "record_id"], sa.select(*values, created.c.id)
        )
        return audited.cte("audited")

    def history(self, conn: sa.Connection, entity: str, record_id: int) -> list[dict[str, Any]]:
        """Every entry of a record, oldest first; an entry a merge brought here from the
        record merged into this one says so with ``merged_from`` (that record's id)."""
        t = self.table
        rows = conn.execute(
            sa.select(t.c.action, t.c.at, t.c.actor_id, t.c.version, t.c.changes, t.c.merged_from)
            .where(t.c.entity == entity, t.c.record_id == record_id)
            .order_by(t.c.id)
        ).mappings()
        found = []
        for row in rows:
            entry = dict(row)
            if entry["merged_from"] is None:
                del entry["merged_from"]
            found.append(entry)
        return found

    def move(self, conn: sa.Connection, entity: str, loser: int, survivor: int) -> None:
        """Give the loser's history to the survivor of a merge, each entry marked with
        where it came from (entries it had itself received from an earlier merge keep
        their first origin)."""
        t = self.table
        conn.execute(
            t.update()
            .where(t.c.entity == entity, t.c.record_id == loser)
            .values(record_id=survivor, merged_from=sa.func.coalesce(t.c.merged_from, loser))
        )

    def as_of(
        self, conn: sa.Connection, ent: Entity, record_id: int, at: dt.datetime
    ) -> dict[str, Any] | None:
        state: dict[str, Any] | None = None
        for entry in self.history(conn, ent.name, record_id):
            if entry["at"] > at:
                break
            if "merged_from" in entry:
                continue  # another record's history, merged into this one
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
