"""Rows as the record service would store them, written in batches.

The demo bypasses :class:`engine.Records` for speed (a million accounts through the
per-record path would take hours) but must leave exactly what it would have left. So each
record is given as its values at creation plus the changes made to it later (a stage
move, a conversion), and :class:`RowSink` does what the engine's writer does:

- fields not given take their definition's default (a default *expression* must be given:
  the story knows what ``now()`` or ``current_user()`` was at the time);
- an ownable record's team is its owner's team; ``created_at/by``, ``updated_at/by`` and
  ``version`` follow the record's history;
- autonumbers are drawn from the same counters (:mod:`engine.counters`), stamped with the
  creation date;
- every create and change writes its ``heddle_audit`` row with the same diff the engine
  computes, and a workflow transition its ``heddle_transition`` row;
- rollups are recomputed at the end by the engine's own :class:`~engine._compute.Computer`.

Rows carry explicit ids, so a story can link records before they are written; the inserts
run in the order of the references between entities, as SQLAlchemy Core executemany.
"""

from __future__ import annotations

import datetime as dt
import graphlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from engine import Tables
from engine._compute import Computer
from engine.audit import Audit
from engine.counters import Counters
from engine.fieldtypes import python_value, stored
from engine.records import autonumber_counter, autonumber_text
from engine.tables import TRANSITION_TABLE
from metamodel import Entity, Field


@dataclass(frozen=True, slots=True)
class Change:
    """A later change to a record: who, when, which values, and the workflow transition
    that made it, if one did (``(workflow, transition, from_state, to_state)``)."""

    at: dt.datetime
    actor: int | None
    values: Mapping[str, Any]
    transition: tuple[str, str, str, str] | None = None


class RowSink:
    """Collects records of one Model and writes them in batches (see the module doc)."""

    def __init__(self, engine: sa.Engine, tables: Tables, teams: Mapping[int, int | None]) -> None:
        self.engine = engine
        self.tables = tables
        self.model = tables.model
        self.teams = dict(teams)  # user id -> team id
        self.audit = Audit(tables)
        self.dialect = engine.dialect.name
        self.pending: dict[str, list[dict[str, Any]]] = {}
        self.audits: list[dict[str, Any]] = []
        self.transitions: list[dict[str, Any]] = []
        self.counters: dict[str, int] = {}  # the last number given, by counter
        self.numbers = Counters(tables, self.dialect)
        self.counted: dict[str, int] = {}
        self.order = _insert_order(tables)
        self._columns = {ent.name: self._insert_columns(ent) for ent in self.model}
        with engine.connect() as conn:
            self.next_ids = {
                ent.name: int(conn.scalar(sa.select(sa.func.max(t.c.id))) or 0) + 1
                for ent in self.model
                for t in (tables.table(ent.name),)
            }

    # --- building records ---------------------------------------------------------------------

    def new_id(self, entity: str) -> int:
        value = self.next_ids[entity]
        self.next_ids[entity] = value + 1
        return value

    def add(
        self,
        entity: str,
        values: Mapping[str, Any],
        *,
        at: dt.datetime,
        actor: int | None,
        changes: Iterable[Change] = (),
    ) -> dict[str, Any]:
        """A record created by ``actor`` at ``at`` with ``values`` (``id`` among them or
        drawn here), then changed by ``changes``; returns its final stored row."""
        ent = self.model.entity(entity)
        row = self._complete(ent, values, actor, at)
        version = 1
        self._audited(ent, "create", row["id"], at, actor, version, None, row)
        for change in changes:
            before = dict(row)
            row.update(change.values)
            if ent.ownable and "owner_id" in change.values and "team_id" not in change.values:
                row["team_id"] = self.teams.get(row["owner_id"])
            if self.audit.changes(ent, before, row) or change.transition:
                version += 1
                row.update(updated_at=change.at, updated_by=change.actor, version=version)
                self._audited(
                    ent, "update", row["id"], change.at, change.actor, version, before, row
                )
            if change.transition is not None:
                workflow, name, source, target = change.transition
                self.transitions.append(
                    {
                        "entity": entity,
                        "record_id": row["id"],
                        "workflow": workflow,
                        "transition": name,
                        "from_state": source,
                        "to_state": target,
                        "comment": None,
                        "actor_id": change.actor,
                        "at": change.at,
                        "version": version,
                    }
                )
        self.pending.setdefault(entity, []).append(row)
        self.counted[entity] = self.counted.get(entity, 0) + 1
        return row

    def _complete(
        self, ent: Entity, values: Mapping[str, Any], actor: int | None, at: dt.datetime
    ) -> dict[str, Any]:
        row: dict[str, Any] = dict(values)
        unknown = set(row) - set(self._columns[ent.name]) - {"id"}
        if unknown:
            raise ValueError(f"demo: {ent.name} has no stored field {', '.join(sorted(unknown))}")
        for field in ent.fields.values():
            if field.name in row or not stored(field) or field.computed:
                continue
            if field.default_expression is not None:
                raise ValueError(
                    f"demo: {ent.name}.{field.name} has a default expression"
                    f" ({field.default_expression.source}): the story must give it"
                )
            row[field.name] = python_value(field, field.default)
        if ent.ownable:
            owner = row.setdefault("owner_id", actor)
            row.setdefault("team_id", self.teams.get(owner) if owner is not None else None)
        for field in ent.fields_of_type("autonumber"):
            row[field.name] = self._autonumber(ent, field, at)
        row.setdefault("id", self.new_id(ent.name))
        row.update(created_at=at, updated_at=at, created_by=actor, updated_by=actor, version=1)
        return row

    def _audited(
        self,
        ent: Entity,
        action: str,
        record_id: int,
        at: dt.datetime,
        actor: int | None,
        version: int,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any],
    ) -> None:
        if not ent.audit:
            return
        self.audits.append(
            {
                "entity": ent.name,
                "record_id": record_id,
                "action": action,
                "at": at,
                "actor_id": actor,
                "version": version,
                "changes": self.audit.changes(ent, before, after),
            }
        )

    def _autonumber(self, ent: Entity, field: Field, now: dt.datetime) -> str:
        """As the record service numbers, from counters kept here and saved with each batch."""
        key, text = autonumber_counter(ent, field, now)
        if key not in self.counters:
            with self.engine.connect() as conn:
                self.counters[key] = self.numbers.last(conn, key)
        self.counters[key] += 1
        return autonumber_text(text, self.counters[key])

    # --- writing ------------------------------------------------------------------------------

    def _insert_columns(self, ent: Entity) -> list[str]:
        rollups = {f.name for f in ent.fields_of_type("rollup")}
        return [c.name for c in self.tables.table(ent.name).columns if c.name not in rollups]

    @property
    def waiting(self) -> int:
        return sum(len(rows) for rows in self.pending.values())

    def flush(self) -> None:
        """Write what is pending, with the counters it used, in one transaction."""
        with self.engine.begin() as conn:
            for entity in self.order:
                rows = self.pending.pop(entity, None)
                if not rows:
                    continue
                columns = self._columns[entity]
                table = self.tables.table(entity)
                conn.execute(table.insert(), [{c: row.get(c) for c in columns} for row in rows])
            if self.audits:
                conn.execute(self.audit.table.insert(), self.audits)
            if self.transitions:
                history = self.tables.metadata.tables[TRANSITION_TABLE]
                conn.execute(history.insert(), self.transitions)
            self._save_counters(conn)
        self.audits, self.transitions = [], []

    def _save_counters(self, conn: sa.Connection) -> None:
        for counter, value in self.counters.items():
            self.numbers.advance(conn, counter, value)

    def finish(self) -> None:
        """Flush, recompute every rollup as the engine does, and move PostgreSQL's id
        sequences past the ids given here."""
        self.flush()
        computer = Computer(self.tables, self.dialect)
        with self.engine.begin() as conn:
            for ent in self.model:
                for field in ent.fields_of_type("rollup"):
                    computer.recompute_all(conn, ent, field)
            if self.dialect == "postgresql":
                for ent in self.model:
                    table = ent.table
                    conn.execute(
                        sa.text(
                            "SELECT setval(pg_get_serial_sequence(:t, 'id'),"
                            f' (SELECT coalesce(max(id), 0) + 1 FROM "{table}"), false)'
                        ),
                        {"t": table},
                    )


def _insert_order(tables: Tables) -> list[str]:
    """Entities, each after those its references point at (a self-reference aside)."""
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for ent in tables.model:
        targets = {f.to for f in ent.fields_of_type("reference") if f.to and f.to != ent.name}
        sorter.add(ent.name, *targets)
    return list(sorter.static_order())
