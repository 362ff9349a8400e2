"""Merging two records of one entity: the survivor takes in the loser.

1. Both rows are locked (in id order) and their versions checked.
2. Survivorship, per field: the survivor's value, the loser's, or a value given; a field
   not named keeps the survivor's value, or takes the loser's where the survivor has none
   (and the merging user may write the field).
3. Every reference to the loser, in every entity (child rows too), is moved to the
   survivor through the record service — audited, rollups kept, each row's rules checked.
   A row its own rules refuse to move (an account related to itself, a unique pair) stops
   the merge, listed with its problem; a reference from the survivor to the loser is
   cleared (a record cannot refer to itself).
4. The loser is archived (its row copied into ``heddle_archive``, where ``heddle
   restore`` finds it) and deleted; its keys go with it. Its history and workflow
   transitions are handed to the survivor (:meth:`Audit.move`).
5. The survivor is updated with the values chosen — audited as ``merge`` — its duplicate
   keys recomputed, and ``after_merge`` is emitted.

All in one transaction: a refusal at any step changes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from metamodel import Entity

from ..audit import jsonable
from ..context import Actor
from ..errors import BadRequest, StaleVersion, ValidationFailed
from ..events import RecordEvent
from ..fieldtypes import stored
from ..permissions import Grant
from ..tables import ARCHIVE_TABLE, TRANSITION_TABLE
from ._common import Errors, add, empty

if TYPE_CHECKING:
    from . import Records

SURVIVOR, LOSER = "survivor", "loser"


class Merger:
    """The merges of one record service."""

    def __init__(self, records: Records) -> None:
        self.records = records
        self.model = records.model
        self.tables = records.tables
        self.writer = records.writer

    def merge(
        self,
        conn: sa.Connection,
        actor: Actor,
        ent: Entity,
        survivor_id: int,
        loser_id: int,
        fields: Mapping[str, Any],
        *,
        version: int | None,
        loser_version: int | None,
        grant: Grant,
        confirmed: frozenset[str],
    ) -> dict[str, Any]:
        writer = self.writer
        first, second = sorted((survivor_id, loser_id))
        rows = {n: writer.row(conn, ent, n, lock=True) for n in (first, second)}
        survivor, loser = rows[survivor_id], rows[loser_id]
        for row, sent, which in (
            (survivor, version, "version"),
            (loser, loser_version, "loser_version"),
        ):
            if sent is not None and row["version"] != sent:
                raise StaleVersion(
                    f"the {ent.name} {row['id']} was changed by someone else (version "
                    f"{row['version']}, you sent {sent} as {which}): reload both and merge "
                    "again",
                    details={"current_version": row["version"], "record_id": row["id"]},
                )
        data = self.survivorship(ent, survivor, loser, fields, grant)
        self.move_references(conn, actor, ent, survivor_id, loser_id, data)
        self.records.events.emit(
            RecordEvent(
                "before_merge", ent.name, actor, conn, self.records, survivor_id,
                dict(survivor), loser,
            )
        )  # fmt: skip
        self.archive(conn, ent, loser)
        writer.delete(conn, actor, ent, loser_id, None, depth=0)
        self.records.audit.move(conn, ent.name, loser_id, survivor_id)
        transitions = self.tables.metadata.tables[TRANSITION_TABLE]
        conn.execute(
            transitions.update()
            .where(transitions.c.entity == ent.name, transitions.c.record_id == loser_id)
            .values(record_id=survivor_id)
        )
        result = writer.update(
            conn,
            actor,
            ent,
            survivor_id,
            data,
            None,
            False,
            confirmed=confirmed,
            merged_from=loser_id,
        )
        self.records.events.emit(
            RecordEvent(
                "after_merge", ent.name, actor, conn, self.records, survivor_id, result, loser
            )
        )
        return result

    def survivorship(
        self,
        ent: Entity,
        survivor: Mapping[str, Any],
        loser: Mapping[str, Any],
        fields: Mapping[str, Any],
        grant: Grant,
    ) -> dict[str, Any]:
        """The values the survivor is to take (as a client would send them), per the
        choices in ``fields``; see the module docstring."""
        if not isinstance(fields, Mapping):
            raise BadRequest(
                "fields must be an object: {field: 'survivor', 'loser' or {'value': …}}",
                {"fields": ["Not a valid mapping type."]},
            )
        choosable = self.choosable(ent)
        errors: Errors = {}
        data: dict[str, Any] = {}
        for name, choice in fields.items():
            where = f"fields.{name}"
            field = ent.fields.get(name)
            system = name in ("owner_id", "team_id") and ent.ownable
            if name in grant.hidden or (field is None and not system):
                add(errors, where, "Unknown field.")
                continue
            if name not in choosable:
                assert field is not None
                add(
                    errors,
                    where,
                    "Not a field to choose: "
                    + (
                        "the child rows of both records are kept."
                        if field.type == "children"
                        else "it is computed or set by the system."
                    ),
                )
                continue
            if choice == SURVIVOR:
                data[name] = survivor.get(name)
            elif choice == LOSER:
                data[name] = loser.get(name)
            elif isinstance(choice, Mapping) and set(choice) == {"value"}:
                data[name] = choice["value"]
                continue  # already as a client sends it
            else:
                add(errors, where, "Must be 'survivor', 'loser' or {\"value\": …}.")
                continue
            data[name] = jsonable(data[name])
        for name, value in data.items():
            if name in grant.readonly and value != jsonable(survivor.get(name)):
                add(errors, f"fields.{name}", "Read-only field.")
        if errors:
            raise BadRequest("the merge's field choices are not valid", errors)
        for name in choosable:
            if name in fields or name in grant.hidden or name in grant.readonly:
                continue
            if empty(survivor.get(name)) and not empty(loser.get(name)):
                data[name] = jsonable(loser[name])
        # only what changes: a value equal to the survivor's is no change to check
        return {k: v for k, v in data.items() if jsonable(survivor.get(k)) != v}

    def choosable(self, ent: Entity) -> list[str]:
        """The fields whose value a merge chooses: stored, and a client may set them."""
        names = [
            f.name
            for f in ent.fields.values()
            if stored(f) and not f.computed and not f.readonly and f.type != "autonumber"
        ]
        if ent.ownable:
            names += ["owner_id", "team_id"]
        return names

    def move_references(
        self,
        conn: sa.Connection,
        actor: Actor,
        ent: Entity,
        survivor_id: int,
        loser_id: int,
        data: dict[str, Any],
    ) -> None:
        """Point every reference to the loser at the survivor (see the module docstring)."""
        errors: Errors = {}
        for other, field in self.model.references_to(ent.name):
            table = self.tables.table(other.name)
            ids = conn.scalars(
                sa.select(table.c.id).where(table.c[field.name] == loser_id).order_by(table.c.id)
            ).all()
            for other_id in ids:
                if other.name == ent.name and other_id == loser_id:
                    continue  # the loser itself: it goes
                if other.name == ent.name and other_id == survivor_id:
                    data.setdefault(field.name, None)  # cannot refer to itself
                    continue
                try:
                    self.writer.update(
                        conn, actor, other, other_id, {field.name: survivor_id}, None, True
                    )
                except ValidationFailed as exc:
                    for name, messages in exc.fields.items():
                        for message in messages:
                            add(errors, f"{other.name}[{other_id}].{name}", message)
        if errors:
            listing = "; ".join(f"{k}: {' '.join(v)}" for k, v in list(errors.items())[:5])
            raise ValidationFailed(
                f"the records cannot be merged: records that refer to the loser could not "
                f"be moved to the survivor ({listing}); change or delete them first",
                errors,
            )

    def archive(self, conn: sa.Connection, ent: Entity, row: Mapping[str, Any]) -> None:
        """The loser's row as it was, in ``heddle_archive`` (``heddle restore`` brings it
        back, under its id)."""
        archive = self.tables.metadata.tables[ARCHIVE_TABLE]
        conn.execute(
            archive.insert().values(
                source_table=self.tables.table(ent.name).name,
                source_column=None,
                record_id=row["id"],
                data={name: jsonable(value) for name, value in row.items()},
                archived_at=dt.datetime.now(dt.UTC),
                model_hash=self.model.hash,
            )
        )
