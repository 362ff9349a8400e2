"""Drafting a migration: what takes the live database to the new Model's tables.

The planner reads three things: the new Model's tables (:func:`~engine.tables.build_tables`),
the live database (:mod:`._migrate_live`) and the last applied Model. The live database says
what exists; the last Model says what Heddle made, so only what it made is ever dropped —
a column somebody added by hand is left alone. Each difference becomes a :class:`Draft`
with the Alembic operations that make it, and every change that could lose or break a
value runs its data checks first (:mod:`._migrate_checks`); a failed check is a refusal.

On SQLite, changes ALTER TABLE cannot make in place (column types, dropped columns and
constraints, foreign keys on existing columns) are gathered into one Alembic batch per
table, run as its own ``rebuild_table`` operation before the in-place ones, so the table
is copied once and the copy starts from the table exactly as reflected.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import sqlalchemy as sa
from alembic.operations import Operations
from sqlalchemy.engine import Connection

from metamodel import Entity, Model

from ..tables import Tables, build_tables
from . import _checks as checks
from . import _ops as ops
from ._columns import ColumnDrafts
from ._draft import Draft
from ._live import LiveTable


@dataclass
class Drafted:
    drafts: list[tuple[Draft, ops.Action]]
    refusals: list[str]
    notes: list[str]
    tables: Tables


_tables: dict[str, Tables] = {}
_tables_lock = threading.Lock()


def tables_of(model: Model) -> Tables:
    """``build_tables(model)``, kept for the last few Models: a plan reads two of them."""
    with _tables_lock:
        tables = _tables.get(model.hash)
    if tables is None:
        tables = build_tables(model)
        with _tables_lock:
            if len(_tables) >= 4:
                _tables.pop(next(iter(_tables)))
            _tables[model.hash] = tables
    return tables


def draft(
    conn: Connection,
    live: dict[str, LiveTable],
    model: Model,
    previous: Model | None,
    archive_hash: str,
) -> Drafted:
    """Compare and draft; see the module docstring. ``live``: :func:`reflect`'s."""
    planner = _Planner(conn, live, model, previous, archive_hash)
    planner.run()
    return Drafted(planner.ordered(), planner.refusals, planner.notes, planner.tables)


class _Planner(ColumnDrafts):
    def __init__(
        self,
        conn: Connection,
        live: dict[str, LiveTable],
        model: Model,
        previous: Model | None,
        archive_hash: str,
    ) -> None:
        self.conn = conn
        self.dialect = conn.dialect
        self.sqlite = conn.dialect.name == "sqlite"
        self.model = model
        self.tables = tables_of(model)
        self.previous = previous
        self.before = tables_of(previous) if previous is not None else None
        self.live = live
        self.archive_hash = archive_hash
        self.head: list[Draft] = []  # renames and creations of tables
        self.groups: dict[str, list[Draft]] = {}  # changes per existing table
        self.tail: list[Draft] = []  # dropped tables
        self.refusals: list[str] = []
        self.notes: list[str] = []
        self.table_renames: dict[str, str] = {}  # old → new
        self._rows: dict[str, bool] = {}

    # --- helpers ------------------------------------------------------------------

    def has_rows(self, table: str) -> bool:
        table = self.now(table)
        if table not in self._rows:
            self._rows[table] = checks.has_rows(self.conn, table)
        return self._rows[table]

    def entity_of(self, table: sa.Table) -> Entity | None:
        name = table.info.get("entity")
        return self.model.entity(name) if name else None

    def previous_entity(self, name: str) -> Entity | None:
        if self.previous is None:
            return None
        return self.previous.entities.get(name)

    def previous_table(self, table: sa.Table) -> sa.Table | None:
        if self.before is None:
            return None
        entity = table.info.get("entity")
        if entity is None:
            return self.before.metadata.tables.get(table.name)
        old = self.previous_entity(entity)
        return self.before.table(entity) if old is not None else None

    def add(self, draft: Draft) -> None:
        self.groups.setdefault(draft.table, []).append(draft)

    def refuse(self, message: str) -> None:
        self.refusals.append(message)

    def now(self, name: str) -> str:
        """The name a table has while planning (before a rename_table runs)."""
        for old, new in self.table_renames.items():
            if new == name:
                return old
        return name

    # --- the plan -----------------------------------------------------------------

    def run(self) -> None:
        self.rename_tables()
        self.create_tables()
        for table in self.tables.metadata.tables.values():
            if table.name in self.live:
                self.alter_table(table)
        self.drop_tables()

    def rename_tables(self) -> None:
        for entity in self.model:
            old = self.previous_entity(entity.name)
            if old is None or old.table == entity.table:
                continue
            if old.table in self.live and entity.table not in self.live:
                self.head.append(
                    Draft(
                        "rename_table",
                        entity.table,
                        None,
                        f"rename table {old.table} to {entity.table}",
                        native=ops.rename_table(old.table, entity.table),
                    )
                )
                self.table_renames[old.table] = entity.table
                live = self.live.pop(old.table)
                live.name = entity.table
                self.live[entity.table] = live
        for live in self.live.values():  # foreign keys follow a renamed table
            live.things = [ops.retarget(t, self.table_renames) for t in live.things]

    def create_tables(self) -> None:
        missing = [t for t in self.tables.metadata.tables.values() if t.name not in self.live]
        system = [t for t in missing if "entity" not in t.info]
        entities = [t for t in missing if "entity" in t.info]
        deferred: list[sa.ForeignKeyConstraint] = []
        for group in (system, entities):
            ordered = ops.creation_order(group)
            cyclic = {fk for table, fks in ordered if table is None for fk in fks}
            for table, _ in ordered:
                if table is None:
                    continue
                inline = None
                if not self.sqlite:  # SQLite takes references to tables made later
                    inline = [fk for fk in table.foreign_key_constraints if fk not in cyclic]
                    deferred += [fk for fk in table.foreign_key_constraints if fk in cyclic]
                self.head.append(
                    Draft(
                        "create_table",
                        table.name,
                        None,
                        f"create table {table.name}",
                        native=ops.create_table(table, inline),
                    )
                )
        for fk in deferred:
            self.head.append(self.add_foreign_key_draft(fk.table.name, fk, check=False))

    def drop_tables(self) -> None:
        if self.before is None:
            return
        wanted = set(self.tables.metadata.tables)
        gone = [
            t
            for t in self.before.metadata.tables.values()
            if "entity" in t.info
            and t.name not in wanted
            and t.name not in self.table_renames
            and t.name in self.live
        ]
        for table, fks in reversed(ops.creation_order(gone)):
            if table is None:
                for fk in fks:  # a cycle among dropped tables: cut it first
                    name = str(fk.name)
                    self.tail.append(
                        Draft(
                            "drop_foreign_key",
                            fk.table.name,
                            None,
                            f"drop foreign key {name} of table {fk.table.name}",
                            native=ops.drop_constraint(name, fk.table.name, "foreignkey"),
                        )
                    )
                continue
            count = checks.count_rows(self.conn, table.name, ops.everything, False).count
            rows = f"{count:,} row{'s' if count != 1 else ''}"
            self.tail.append(
                Draft(
                    "drop_table",
                    table.name,
                    None,
                    f"drop table {table.name} ({rows} archived first)",
                    destructive=True,
                    before=self.archive(table.name, None),
                    native=ops.drop_table(table.name),
                )
            )

    # --- order ------------------------------------------------------------------------

    def ordered(self) -> list[tuple[Draft, ops.Action]]:
        result = [(d, d.action(False)) for d in self.head]
        for table, drafts in self.groups.items():
            drafts.sort(key=lambda d: d.phase)
            rebuilt = self.sqlite and any(d.native is None for d in drafts)
            if not rebuilt:
                result += [(d, d.action(False)) for d in drafts]
                continue
            parts = [d for d in drafts if d.rebuild is not None]
            result += [(d, d.action(True)) for d in parts]
            result.append(self.rebuild_table(table, parts))
            result += [(d, d.action(False)) for d in drafts if d.rebuild is None]
        result += [(d, d.action(False)) for d in self.tail]
        return result

    def rebuild_table(self, table: str, parts: list[Draft]) -> tuple[Draft, ops.Action]:
        reflected = sa.Table(self.now(table), sa.MetaData(), autoload_with=self.conn)
        kinds = ", ".join(dict.fromkeys(d.kind.replace("_", " ") for d in parts))

        def run(op: Operations) -> None:
            job = ops.Rebuild(reflected.to_metadata(sa.MetaData(), name=table))
            if reflected.name != table:  # renamed in this migration: so are self-references
                ops.retarget_copy(job.table, reflected.name, table)
            for part in parts:
                assert part.rebuild is not None
                part.rebuild(job)
            with op.batch_alter_table(table, copy_from=job.table, recreate="always") as batch:
                for step in job.batch:
                    step(batch)
            for statement in job.after:
                op.execute(statement)

        described = (
            f"rebuild table {table}: SQLite makes the changes above ({kinds}) by copying the table"
        )
        return Draft("rebuild_table", table, None, described), run
