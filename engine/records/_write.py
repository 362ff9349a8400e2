"""Writing records: create, update (with child rows), delete (following ``on_delete``),
autonumbers, rollups kept in the same transaction, audit and record events."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from metamodel import Entity, Field

from ..context import SYSTEM, Actor
from ..counters import autonumber_parts, current, current_params
from ..dedupe import FOUND, Keys
from ..errors import NotFound, Restricted, StaleVersion, ValidationFailed
from ..events import RecordEvent
from ..pipeline import Batch, Guard, fetch
from ._common import Errors, add

if TYPE_CHECKING:
    from . import Records

MAX_CASCADE = 10_000


class Writer:
    """The writes of one record service (``records``), within a transaction it is given."""

    def __init__(self, records: Records) -> None:
        self.records = records
        self.tables = records.tables
        self.model = records.model
        self.dialect = records.dialect
        self.validator = records.validator
        self.computer = records.computer
        self.audit = records.audit
        self.events = records.events
        self.dedupe = records.dedupe
        self.counters = records.counters
        # (entity, columns, folded, numbered) → (statement, audited, keyed): Writer._insert
        self._inserts: dict[
            tuple[str, tuple[str, ...], bool, tuple[str, ...]], tuple[sa.Executable, bool, bool]
        ]
        self._inserts = {}
        self._columns: dict[str, frozenset[str]] = {}

    def row(
        self,
        conn: sa.Connection,
        ent: Entity,
        record_id: int,
        *,
        lock: bool = False,
        where: Any = None,
    ) -> dict[str, Any]:
        """The stored row; :class:`NotFound` when there is none (or, with ``where``, none
        that meets it: a scope, so that out of sight reads as absent)."""
        table = self.tables.table(ent.name)
        query = sa.select(table).where(table.c.id == record_id)
        if where is not None:
            query = query.where(where)
        if lock and self.dialect == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).mappings().first()
        if row is None:
            raise NotFound(f"no {ent.name} with id {record_id}")
        return dict(row)

    def read(
        self,
        conn: sa.Connection,
        actor: Actor,
        ent: Entity,
        record_id: int,
        *,
        children: bool,
        where: Any = None,
    ) -> dict[str, Any]:
        row = self.row(conn, ent, record_id, where=where)
        self.computer.formulas(conn, ent, [row], actor.context())
        if children:
            for field in ent.fields_of_type("children"):
                row[field.name] = self.children(conn, actor, ent, field, record_id)
        return row

    def children(
        self, conn: sa.Connection, actor: Actor, ent: Entity, field: Field, parent_id: int
    ) -> list[dict[str, Any]]:
        child = self.model.entity(field.children or "")
        table = self.tables.table(child.name)
        link = child.parent_field or ""
        rows = [
            dict(r)
            for r in conn.execute(
                sa.select(table).where(table.c[link] == parent_id).order_by(table.c.id)
            ).mappings()
        ]
        self.computer.formulas(conn, child, rows, actor.context())
        return rows

    def create(
        self,
        conn: sa.Connection,
        actor: Actor,
        ent: Entity,
        data: Mapping[str, Any],
        trusted: bool,
        *,
        parent: tuple[str, int] | None = None,
        alone: bool = False,
        confirmed: frozenset[str] = frozenset(),
        made_from: tuple[str, int] | None = None,
        guard: Guard | None = None,
    ) -> dict[str, Any]:
        """Create a record; ``alone``: the only write of a transaction the record service
        opened for it (see :meth:`Validator.guarded_write`). ``confirmed``: the duplicate
        rules whose warnings the writer accepts; ``made_from``: the record this one is made
        from, which is not its duplicate (:meth:`DuplicateIndex.check`); ``guard``: the
        caller's check sent with the first statements (:data:`engine.pipeline.Guard`)."""
        values, children, errors = self.validator.input(ent, data, partial=False, trusted=trusted)
        if parent is not None:
            values[parent[0]] = parent[1]
        self.validator.defaults(conn, ent, values, actor)
        event = RecordEvent(
            "before_create", ent.name, actor, conn, self.records, None, values, trusted=trusted
        )
        self.events.emit(event)
        counts = {name: len(rows) for name, rows in children.items()}
        self.validator.check(
            conn,
            actor,
            ent,
            values,
            None,
            errors,
            changed=None,
            child_counts=counts,
            trusted=trusted,
        )
        if errors:
            raise ValidationFailed(f"the {ent.name} is not valid", errors)
        # The duplicate check's locks and lookups and the autonumbers' counters go to the
        # database together, with the transaction's BEGIN (one round trip on PostgreSQL);
        # a refused create rolls the counters back on SQLite, and leaves a gap in the
        # sequence on PostgreSQL (engine.counters).
        batch = Batch(conn)
        postgresql = self.dialect == "postgresql"
        fold = postgresql and bool(self.dedupe.of(ent.name))
        check = self.dedupe.start(
            batch, actor, ent, values, None, confirmed=confirmed, made_from=made_from, fold=fold
        )
        now = dt.datetime.now(dt.UTC)
        numbers = []
        for field in ent.fields_of_type("autonumber"):
            counter, text = autonumber_counter(ent, field, now)
            numbers.append((field.name, counter, text, self.counters.take(batch, counter)))
        judge = guard(batch) if guard is not None else None
        columns = self.columns(ent)
        row = {name: value for name, value in values.items() if name in columns}
        row.update(
            created_at=now,
            updated_at=now,
            created_by=actor.user_id,
            updated_by=actor.user_id,
            version=1,
        )
        record = dict(values)  # what the database's refusals are explained from
        folded = check.folded

        def judged() -> None:
            """The caller's check first (before anything found is told), then the numbers
            taken, for the record."""
            if judge is not None:
                judge()
            for name, _counter, text, number in numbers:
                if number.ran:
                    row[name] = record[name] = autonumber_text(text, number.scalar_one())

        def insert(write: Callable[[], list[dict[str, Any]]]) -> dict[str, Any]:
            return self.validator.guarded_write(
                conn, None if trusted else actor, ent, record, None, None,
                lambda: _one(write()), alone=alone,
            )  # fmt: skip

        # On PostgreSQL the record's statement goes with them too, unless a lookup must be
        # judged before it (a fuzzy rule's): it writes the numbers the sequences gave
        # (``currval``), so BEGIN, the locks, the numbers, the token's check and the
        # record — with its audit row and keys — are one round trip.
        if postgresql and not check.found:
            keys = check.keys
            numbered = tuple(name for name, _counter, _text, _number in numbers)
            statement, audited, keyed = self._insert(ent, tuple(row), folded is not None, numbered)
            params = self._bound(ent, actor, row, audited, keyed, keys, folded)
            for name, counter, text, _number in numbers:
                params.update(current_params(f"n_{name}_", counter, text))
            written = batch.fetch(statement, params)

            def write() -> list[dict[str, Any]]:
                try:
                    batch.run()
                except sa.exc.IntegrityError:  # the record's statement, refused: the
                    judged()  # statements before it ran, and say what explains it
                    raise
                judged()
                return written.mappings()

            stored = insert(write)
        else:
            batch.run()
            judged()
            keys = check.keys if folded is not None else check.finish(conn)
            statement, audited, keyed = self._insert(ent, tuple(row), folded is not None)
            params = self._bound(ent, actor, row, audited, keyed, keys, folded)
            stored = insert(lambda: fetch(conn, statement, params))
        found = stored.pop(FOUND) if folded is not None else None
        if found is not None:
            # the lookup found keys, so the statement wrote nothing: the rules judge what
            # it found (a refusal ends here), then the record is written without the lookup
            check.finish(conn, found)
            statement, audited, keyed = self._insert(ent, tuple(row), False)
            params = self._bound(ent, actor, row, audited, keyed, keys, None)
            stored = insert(lambda: fetch(conn, statement, params))
        record_id = stored["id"]
        if not keyed:  # else the statement wrote the keys too
            self.dedupe.write(conn, ent.name, record_id, keys, replace=False)
        if not audited:  # else the statement wrote the audit row too
            self.audit.record(conn, ent, record_id, "create", actor, 1, None, stored)
        self.write_children(conn, actor, ent, record_id, children, trusted, replace=False)
        self.computer.refresh_rollups(conn, ent, [None], [stored])
        if children:
            # the rows, and the rollups over them, are read back
            result = self.read(conn, actor, ent, record_id, children=True)
        else:
            result = stored  # what RETURNING gave: no second read
            self.computer.formulas(conn, ent, [result], actor.context())
            for field in ent.fields_of_type("children"):
                result[field.name] = []
        self.events.emit(
            RecordEvent("after_create", ent.name, actor, conn, self.records, record_id, result)
        )
        return result

    def _bound(
        self,
        ent: Entity,
        actor: Actor,
        row: Mapping[str, Any],
        audited: bool,
        keyed: bool,
        keys: Keys,
        folded: Mapping[str, str] | None,
    ) -> dict[str, Any]:
        """The parameters of :meth:`_insert`'s statement for ``row``."""
        params = {f"v_{name}": value for name, value in row.items()}
        if audited:
            entry = self.audit.entry(ent, "create", actor, 1, self.audit.changes(ent, None, row))
            params.update({f"a_{name}": value for name, value in entry.items()})
        if keyed:
            params.update(self.dedupe.bound(ent.name, keys))
        if folded is not None:
            params.update(folded)
        return params

    def _insert(
        self, ent: Entity, columns: tuple[str, ...], folded: bool, numbered: tuple[str, ...] = ()
    ) -> tuple[sa.Executable, bool, bool]:
        """The INSERT of a record with these columns, returning it, built once per entity
        and set of columns; values are bound as ``v_<column>``. On PostgreSQL the same
        statement (data-modifying CTEs: one round trip) writes the record's audit row
        (bound as ``a_<audit column>``: :meth:`Audit.inserting`) and its duplicate keys
        (:meth:`DuplicateIndex.inserting`). Also says whether it writes each.

        ``folded``: it also runs the duplicate check's lookup (its parameters: those of
        :attr:`PendingCheck.folded`), inserts only when the lookup finds nothing, and
        returns one row whatever happened — the record's columns (all null when it was
        not inserted) and :data:`~engine.dedupe.FOUND`, what the lookup found.

        ``numbered`` (PostgreSQL): autonumber columns whose values are the numbers their
        sequences gave this transaction last, written out in SQL
        (:func:`engine.counters.current`, bound as ``n_<column>_<name>``)."""
        key = (ent.name, columns, folded, numbered)
        found = self._inserts.get(key)
        if found is None:
            table = self.tables.table(ent.name)
            values: dict[str, sa.ColumnElement[Any]] = {
                n: sa.bindparam(f"v_{n}", type_=table.c[n].type) for n in columns
            }
            values.update({n: current(f"n_{n}_") for n in numbered})
            lookup = None
            if folded:
                insert, lookup = self.dedupe.guarded(table.insert(), values)
            else:
                insert = table.insert().values(values)
            insert = insert.returning(*table.c)
            audited = ent.audit and self.dialect == "postgresql"
            keyed = bool(self.dedupe.of(ent.name)) and self.dialect == "postgresql"
            statement: sa.Executable = insert
            if audited or keyed:
                created = insert.cte("created")
                if lookup is None:
                    combined = sa.select(created)
                else:  # one row, inserted or not
                    one = sa.select(sa.literal_column("1").label("one")).subquery("one")
                    combined = sa.select(*created.c, self.dedupe.found(lookup)).select_from(
                        one.outerjoin(created, sa.true())
                    )
                if audited:
                    combined = combined.add_cte(self.audit.inserting(created, numbered))
                if keyed:
                    combined = combined.add_cte(self.dedupe.inserting(ent.name, created))
                statement = combined
            found = self._inserts[key] = (statement, audited, keyed)
        return found

    def update(
        self,
        conn: sa.Connection,
        actor: Actor,
        ent: Entity,
        record_id: int,
        data: Mapping[str, Any],
        version: int | None,
        trusted: bool,
        *,
        alone: bool = False,
        confirmed: frozenset[str] = frozenset(),
        merged_from: int | None = None,
    ) -> dict[str, Any]:
        """Change a record. ``merged_from``: the update that ends a merge (the record takes
        in the loser's values): audited as ``merge``, and it counts as a change even when
        no field changes (:mod:`._merge`)."""
        before = self.row(conn, ent, record_id, lock=True)
        if version is not None and before["version"] != version:
            raise StaleVersion(
                f"the {ent.name} was changed by someone else (version {before['version']}, "
                f"you sent {version}): reload it and apply your change again",
                details={"current_version": before["version"]},
            )
        values, children, errors = self.validator.input(ent, data, partial=True, trusted=trusted)
        handed_over = "owner_id" in values and values["owner_id"] != before.get("owner_id")
        if ent.ownable and handed_over and "team_id" not in values:
            values["team_id"] = self.validator.team_of(
                conn, values["owner_id"]
            )  # the new owner's team
        record = {**before, **values}
        event = RecordEvent(
            "before_update",
            ent.name,
            actor,
            conn,
            self.records,
            record_id,
            record,
            before,
            frozenset(values),
            trusted,
        )
        self.events.emit(event)
        changed = {
            name for name in record if name in before and record[name] != before[name]
        } | set(children)
        counts = {name: len(rows) for name, rows in children.items()}
        if not trusted:
            self.validator.locked(conn, actor, ent, before, values, changed, errors)
        self.validator.check(
            conn,
            actor,
            ent,
            record,
            record_id,
            errors,
            changed=changed,
            child_counts=counts,
            trusted=trusted,
        )
        if errors:
            raise ValidationFailed(f"the {ent.name} is not valid", errors)
        updates = {n: record[n] for n in changed if n in before and self.column(ent, n)}
        if not updates and not children and merged_from is None:
            return self.read(conn, actor, ent, record_id, children=True)
        keys = self.dedupe.check(
            conn, actor, ent, record, record_id, before=before, changed=changed,
            confirmed=confirmed,
        )  # fmt: skip
        table = self.tables.table(ent.name)
        new_version = before["version"] + 1
        update = (
            table.update()
            .where(table.c.id == record_id, table.c.version == before["version"])
            .values(
                **updates,
                updated_at=dt.datetime.now(dt.UTC),
                updated_by=actor.user_id,
                version=new_version,
            )
        )
        found = self.validator.guarded_write(
            conn,
            None if trusted else actor,
            ent,
            record,
            record_id,
            set(updates),
            lambda: conn.execute(update.returning(*table.c)).mappings().first(),
            alone=alone,
        )
        if found is None:  # pragma: no cover - the row is locked (PostgreSQL) or the
            raise StaleVersion(f"the {ent.name} was changed by someone else")  # write lock held
        after = dict(found)
        self.dedupe.write(conn, ent.name, record_id, keys, replace=True)
        self.write_children(conn, actor, ent, record_id, children, trusted, replace=True)
        self.computer.refresh_rollups(conn, ent, [before], [after])
        if merged_from is None:
            self.audit.record(conn, ent, record_id, "update", actor, new_version, before, after)
        else:
            self.audit.record(
                conn, ent, record_id, "merge", actor, new_version, before, after,
                merged=merged_from,
            )  # fmt: skip
        if children:
            result = self.read(conn, actor, ent, record_id, children=True)
        else:
            result = after  # what RETURNING gave: no second read
            self.computer.formulas(conn, ent, [result], actor.context())
            for field in ent.fields_of_type("children"):
                result[field.name] = self.children(conn, actor, ent, field, record_id)
        self.events.emit(
            RecordEvent(
                "after_update",
                ent.name,
                actor,
                conn,
                self.records,
                record_id,
                result,
                before,
                frozenset(updates) | frozenset(children),
            )
        )
        return result

    def write_children(
        self,
        conn: sa.Connection,
        actor: Actor,
        ent: Entity,
        parent_id: int,
        children: Mapping[str, list[Any]],
        trusted: bool,
        *,
        replace: bool,
    ) -> None:
        """Create, change and (on update) delete child rows so they match the list sent."""
        errors: Errors = {}
        for name, rows in children.items():
            child = self.model.entity(ent.fields[name].children or "")
            link = child.parent_field or ""
            table = self.tables.table(child.name)
            existing = set(conn.scalars(sa.select(table.c.id).where(table.c[link] == parent_id)))
            kept: set[int] = set()
            for index, item in enumerate(rows):
                row: Mapping[str, Any] = item
                data = {k: v for k, v in row.items() if k not in ("id", "version", link)}
                try:
                    if "id" in row:
                        if row["id"] not in existing:
                            add(errors, f"{name}[{index}].id", f"No {child.name} row {row['id']}.")
                            continue
                        kept.add(row["id"])
                        self.update(conn, actor, child, row["id"], data, None, trusted)
                    else:
                        self.create(conn, actor, child, data, trusted, parent=(link, parent_id))
                except ValidationFailed as exc:
                    for field, messages in exc.fields.items():
                        for message in messages:
                            add(errors, f"{name}[{index}].{field}", message)
            if replace:
                for gone in sorted(existing - kept):
                    self.delete(conn, actor, child, gone, None, depth=1)
        if errors:
            raise ValidationFailed(f"the {ent.name}'s rows are not valid", errors)

    def delete(
        self,
        conn: sa.Connection,
        actor: Actor,
        ent: Entity,
        record_id: int,
        version: int | None,
        *,
        depth: int,
    ) -> None:
        if depth > MAX_CASCADE:  # pragma: no cover - a pathological cascade
            raise Restricted("too many records would be deleted in one cascade")
        before = self.row(conn, ent, record_id, lock=True)
        if version is not None and before["version"] != version:
            raise StaleVersion(
                f"the {ent.name} was changed by someone else (version {before['version']}, "
                f"you sent {version}): reload it before deleting",
                details={"current_version": before["version"]},
            )
        self.events.emit(
            RecordEvent(
                "before_delete",
                ent.name,
                actor,
                conn,
                self.records,
                record_id,
                before,
                before,
                trusted=depth > 0,  # a cascade follows the definitions, not the client
            )
        )
        referrers = self.referrers(conn, ent, record_id)
        blocking = [r for r in referrers if r[1].on_delete == "restrict"]
        if blocking:
            details = [
                {"entity": other.name, "field": field.name, "count": len(ids), "ids": ids[:10]}
                for other, field, ids in blocking
            ]
            listing = "; ".join(
                f"{d['count']} {d['entity']} record(s) by {d['field']}" for d in details
            )
            raise Restricted(
                f"the {ent.name} is still referred to: {listing}", details={"referrers": details}
            )
        for other, field, ids in referrers:
            for other_id in ids:
                if other.name == ent.name and other_id == record_id:
                    continue
                if field.on_delete == "cascade":
                    self.delete(conn, actor, other, other_id, None, depth=depth + 1)
                else:  # set_null
                    self.update(conn, SYSTEM, other, other_id, {field.name: None}, None, True)
        table = self.tables.table(ent.name)
        conn.execute(table.delete().where(table.c.id == record_id))
        self.dedupe.remove(conn, ent.name, record_id)
        self.computer.refresh_rollups(conn, ent, [before], [None])
        self.audit.record(conn, ent, record_id, "delete", actor, before["version"], before, None)
        self.events.emit(
            RecordEvent(
                "after_delete", ent.name, actor, conn, self.records, record_id, before, before
            )
        )

    def referrers(
        self, conn: sa.Connection, ent: Entity, record_id: int
    ) -> list[tuple[Entity, Field, list[int]]]:
        found = []
        for other, field in self.model.references_to(ent.name):
            table = self.tables.table(other.name)
            ids = list(
                conn.scalars(
                    sa.select(table.c.id).where(table.c[field.name] == record_id).order_by("id")
                )
            )
            if ids:
                found.append((other, field, ids))
        return found

    def column(self, ent: Entity, name: str) -> bool:
        return name in self.columns(ent)

    def columns(self, ent: Entity) -> frozenset[str]:
        """The names of ``ent``'s table's columns (found once per entity)."""
        found = self._columns.get(ent.name)
        if found is None:
            found = self._columns[ent.name] = frozenset(self.tables.table(ent.name).c.keys())
        return found


def _one(rows: list[dict[str, Any]]) -> dict[str, Any]:
    (row,) = rows
    return row


def autonumber_counter(ent: Entity, field: Field, now: dt.datetime) -> tuple[str, str]:
    """The counter (:mod:`engine.counters`) an autonumber created at ``now`` draws from,
    and its format with the date part filled in: one counter per format and period.

    >>> autonumber_counter(contract, contract.fields["number"], now)
    ('contract.number:CT-2026-{seq:05}', 'CT-2026-{seq:05}')
    """
    text = field.format or "{seq}"
    stamp = {
        "{YYYY}": f"{now.year:04d}",
        "{YY}": f"{now.year % 100:02d}",
        "{MM}": f"{now.month:02d}",
        "{DD}": f"{now.day:02d}",
    }
    for token, value in stamp.items():
        text = text.replace(token, value)
    return f"{ent.table}.{field.name}:{text}", text


def autonumber_text(text: str, number: int) -> str:
    """``number`` in its place in a filled-in format: ``CT-2026-{seq:05}`` and 7 give
    ``CT-2026-00007``."""
    head, spec, tail = autonumber_parts(text)
    return head + format(number, spec or "d") + tail
