"""Input and whole-record checks: coercion, defaults, required fields, references,
uniqueness (also under a race) and the entity's validations."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import sqlalchemy as sa
from marshmallow import ValidationError as InputError

from metamodel import Entity, Field

from .._compute import Computer
from ..context import Actor
from ..errors import BadRequest, Conflict, ValidationFailed
from ..fieldtypes import python_value, stored
from ..inputs import OWNERSHIP, input_loader
from ..permissions import Permissions
from ..tables import TEAM_TABLE, USER_TABLE, Tables
from ._common import LOCKED, RECORD, REQUIRED, Errors, add, empty

T = TypeVar("T")


class Validator:
    """Coerces and checks records of one Model on one database."""

    def __init__(
        self,
        tables: Tables,
        dialect: str,
        computer: Computer,
        permissions: Permissions,
        fresh: Callable[[], AbstractContextManager[sa.Connection]],
    ) -> None:
        self.tables = tables
        self.model = tables.model
        self.dialect = dialect
        self.computer = computer
        self.permissions = permissions
        self.fresh = fresh  # a connection of its own, for checks after a refused write
        self._defaults: dict[str, list[Field]] = {}
        self._required: dict[str, list[Field]] = {}
        self._kinds: dict[tuple[str, bool], dict[str, str]] = {}

    def input(
        self, ent: Entity, data: Mapping[str, Any], *, partial: bool, trusted: bool
    ) -> tuple[dict[str, Any], dict[str, list[Any]], Errors]:
        """Coerced values, child rows by children field, and errors."""
        if not isinstance(data, Mapping):
            raise BadRequest("a record must be a JSON object")
        errors: Errors = {}
        children: dict[str, list[Any]] = {}
        plain: dict[str, Any] = {}
        kinds = self._input_kinds(ent, trusted)
        for name, value in data.items():
            kind = kinds.get(name) if isinstance(name, str) else None
            if kind is None:
                plain[name] = value
            elif kind == "children":
                if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
                    add(errors, name, "Must be a list of objects.")
                else:
                    children[name] = list(value)
            elif kind == "readonly":
                add(errors, name, "Read-only field.")
            else:
                add(errors, name, "Set by the system.")
        try:
            values = input_loader(self.model, ent.name, self.dialect).load(plain, partial=partial)
        except InputError as exc:
            for name, messages in flat_messages(exc.messages).items():
                for message in messages:
                    add(errors, name, message)
            values = dict(exc.valid_data or {})  # so the other fields are checked too
        return dict(values), children, errors

    def defaults(
        self, conn: sa.Connection, ent: Entity, values: dict[str, Any], actor: Actor
    ) -> None:
        context = actor.context()
        missing = [f for f in self._defaultable(ent) if f.name not in values]
        # A default may read through a reference (unit_price: =product.list_price): the
        # view loads the records it names.
        view: dict[str, Any] = values
        if any(f.default_expression is not None for f in missing):
            view = self.computer.view(conn, ent, values, context)
        for field in missing:
            if field.default_expression is not None:
                value = field.default_expression.evaluate(view, context)
                values[field.name] = view[field.name] = value
            elif field.default is not None:
                values[field.name] = view[field.name] = python_value(field, field.default)
        if ent.ownable:
            owner = values.setdefault("owner_id", actor.user_id)
            if "team_id" not in values:
                values["team_id"] = (
                    actor.team_id if owner == actor.user_id else self.team_of(conn, owner)
                )

    def _input_kinds(self, ent: Entity, trusted: bool) -> dict[str, str]:
        """The names of a record's input that are not plain values, each with what it is:
        ``children`` (a list of child rows), ``readonly`` (refused unless ``trusted``),
        ``system`` (set by the system); found once per entity."""
        found = self._kinds.get((ent.name, trusted))
        if found is None:
            found = {
                name: "system"
                for name in ("id", "version", *ent.system_fields)
                if name not in OWNERSHIP
            }
            for name, field in ent.fields.items():
                if field.type == "children":
                    found[name] = "children"
                elif (field.computed or field.readonly) and not trusted:
                    found[name] = "readonly"
            self._kinds[(ent.name, trusted)] = found
        return found

    def _defaultable(self, ent: Entity) -> list[Field]:
        """The fields a default fills: stored, not computed, with a default value or
        expression (found once per entity)."""
        found = self._defaults.get(ent.name)
        if found is None:
            found = self._defaults[ent.name] = [
                f
                for f in ent.fields.values()
                if stored(f)
                and not f.computed
                and (f.default_expression is not None or f.default is not None)
            ]
        return found

    def _requirable(self, ent: Entity) -> list[Field]:
        """The fields ``required`` or ``required_when`` (found once per entity)."""
        found = self._required.get(ent.name)
        if found is None:
            found = self._required[ent.name] = [
                f for f in ent.fields.values() if f.required or f.required_when is not None
            ]
        return found

    def team_of(self, conn: sa.Connection, user_id: Any) -> int | None:
        """A user's team: a record given to someone belongs to their team, not the giver's
        (an unknown user has none; the owner check reports the user)."""
        if not isinstance(user_id, int):
            return None
        users = self.tables.metadata.tables[USER_TABLE]
        team: int | None = conn.scalar(sa.select(users.c.team_id).where(users.c.id == user_id))
        return team

    def check(
        self,
        conn: sa.Connection,
        actor: Actor,
        ent: Entity,
        record: dict[str, Any],
        record_id: int | None,
        errors: Errors,
        *,
        changed: set[str] | None,
        child_counts: Mapping[str, int],
        trusted: bool = False,
    ) -> None:
        """Check a whole candidate record; problems are added to ``errors``. ``trusted``
        (the platform's own writes) may link to records the actor does not see."""
        context = actor.context()
        view = self.computer.view(conn, ent, record, context)
        for field in self._requirable(ent):
            needed = field.required or (
                field.required_when is not None
                and bool(field.required_when.evaluate(view, context))
            )
            if not needed or field.name in errors:
                continue
            if field.type == "children":
                # on create a missing list means no rows; on update it means "unchanged"
                if child_counts.get(field.name, 0 if record_id is None else 1) == 0:
                    add(errors, field.name, REQUIRED)
            elif stored(field) and not field.computed and empty(record.get(field.name)):
                add(errors, field.name, REQUIRED)
        for validation in ent.validations:
            if validation.when is not None and not validation.when.evaluate(view, context):
                continue
            if not validation.rule.evaluate(view, context):
                message = validation.message.get(actor.locale)
                for name in validation.fields or (RECORD,):
                    add(errors, name, message)
        # On the way to a write, unique values and references to records anyone may link
        # to are left to the database's constraints (guarded_write); a record refused
        # anyway is checked in full, so every problem is reported at once.
        refused = bool(errors)
        who = None if trusted else actor
        self.check_references(conn, who, ent, record, errors, changed, constrained=not refused)
        if refused:
            self.check_unique(conn, ent, record, record_id, errors, changed)

    def locked(
        self,
        conn: sa.Connection,
        actor: Actor,
        ent: Entity,
        before: Mapping[str, Any],
        sent: Collection[str],
        changed: Collection[str],
        errors: Errors,
    ) -> None:
        """Refuse a change to a field whose ``readonly_when`` holds for the stored record
        (the forms lock it as the user types; this is the same rule for every writer). The
        Model's own writes — transitions' and automations' ``set`` — are trusted and not
        checked here."""
        fields = [
            f for f in ent.fields.values()
            if f.readonly_when is not None and f.name in sent and f.name in changed
        ]  # fmt: skip
        if not fields:
            return
        context = actor.context()
        view = self.computer.view(conn, ent, dict(before), context)
        for field in fields:
            assert field.readonly_when is not None
            if field.readonly_when.evaluate(view, context):
                add(errors, field.name, LOCKED)

    def check_references(
        self,
        conn: sa.Connection,
        actor: Actor | None,
        ent: Entity,
        record: Mapping[str, Any],
        errors: Errors,
        changed: set[str] | None,
        *,
        constrained: bool = True,
    ) -> None:
        """Every id a reference, user or team field holds names a record that exists — and,
        for a reference, one ``actor`` may read (unless the field says ``link: any``): an
        id out of sight is refused exactly like an id of nothing, so a reference is no way
        to learn which records exist.

        ``constrained``: leave to the foreign keys the ids any user may link to (the write
        is guarded, :meth:`guarded_write`); only lists of ids and records out of some
        sight need a query."""
        targets: list[tuple[str, str, Any, Any]] = []
        for field in ent.fields_of_type("reference", "user", "team"):
            value = record.get(field.name)
            if (changed is not None and field.name not in changed) or empty(value):
                continue  # (most records name few: the sight is worked out for those only)
            if field.type == "reference":
                table = self.tables.table(field.to or "")
                sight = None
                if actor is not None and field.settings.get("link") != "any":
                    target = self.model.entity(field.to or "")
                    grant = self.permissions.grant(actor, target, "read")
                    sight = self.permissions.where(actor, target, grant, table)
                targets.append((field.name, table.name, value, sight))
            else:
                system = USER_TABLE if field.type == "user" else TEAM_TABLE
                targets.append((field.name, system, value, None))
        if ent.ownable:
            for name, owner_table in (("owner_id", USER_TABLE), ("team_id", TEAM_TABLE)):
                if changed is None or name in changed:
                    targets.append((name, owner_table, record.get(name), None))
        for name, table_name, value, sight in targets:
            if name in errors or empty(value):
                continue
            if constrained and sight is None and not isinstance(value, list):
                continue  # a foreign key refuses an id of nothing
            wanted = set(value) if isinstance(value, list) else {value}
            table = self.tables.metadata.tables[table_name]
            query = sa.select(table.c.id).where(table.c.id.in_(wanted))
            if sight is not None:
                query = query.where(sight)
            found = set(conn.scalars(query))
            for missing in sorted(wanted - found):
                what = ent.fields[name].to if name in ent.fields else None
                target_name = what or table_name.removeprefix("heddle_")
                add(errors, name, f"No {target_name} with id {missing}.")

    def check_unique(
        self,
        conn: sa.Connection,
        ent: Entity,
        record: Mapping[str, Any],
        record_id: int | None,
        errors: Errors,
        changed: set[str] | None,
    ) -> None:
        table = self.tables.table(ent.name)
        for names in unique_groups(ent):
            if changed is not None and not set(names) & changed:
                continue
            if any(empty(record.get(n)) for n in names) or any(n in errors for n in names):
                continue
            query = sa.select(table.c.id).where(*(table.c[n] == record[n] for n in names))
            if record_id is not None:
                query = query.where(table.c.id != record_id)
            if conn.execute(query.limit(1)).first() is not None:
                message = (
                    "Already exists."
                    if len(names) == 1
                    else f"This combination of {', '.join(names)} already exists."
                )
                add(errors, names[0], message)

    def guarded_write(
        self,
        conn: sa.Connection,
        actor: Actor | None,
        ent: Entity,
        record: Mapping[str, Any],
        record_id: int | None,
        written: set[str] | None,
        write: Callable[[], T],
        *,
        alone: bool,
    ) -> T:
        """Run ``write`` (the INSERT or UPDATE of ``record``), letting the database's
        constraints do the checks they can — unique values, references that must exist —
        and turning a refusal into the field errors the checks give (the database's error
        text is never parsed): the checks run again to name the field. A refusal they
        cannot explain propagates unchanged.

        ``alone``: the write is the only one of its transaction (the record service opened
        it for this call), which fails as a whole on a refusal; the checks then run on a
        connection of their own, as PostgreSQL has aborted this one. Otherwise (the caller
        shares its transaction) the write runs in a SAVEPOINT on PostgreSQL so the
        transaction stays usable; SQLite undoes just the refused statement by itself.
        """
        try:
            if alone or self.dialect == "sqlite":
                return write()
            with conn.begin_nested():
                return write()
        except sa.exc.IntegrityError:
            errors: Errors = {}
            if alone and self.dialect != "sqlite":
                with self.fresh() as other:
                    self._recheck(other, actor, ent, record, record_id, written, errors)
            else:
                self._recheck(conn, actor, ent, record, record_id, written, errors)
            if errors:
                raise ValidationFailed(f"the {ent.name} is not valid", errors) from None
            raise

    def _recheck(
        self,
        conn: sa.Connection,
        actor: Actor | None,
        ent: Entity,
        record: Mapping[str, Any],
        record_id: int | None,
        written: set[str] | None,
        errors: Errors,
    ) -> None:
        self.check_references(conn, actor, ent, record, errors, written, constrained=False)
        self.check_unique(conn, ent, record, record_id, errors, written)
        if not errors:
            self._clashing_numbers(conn, ent, record, record_id)

    def _clashing_numbers(
        self, conn: sa.Connection, ent: Entity, record: Mapping[str, Any], record_id: int | None
    ) -> None:
        """An autonumber someone has already: records imported or restored with numbers
        ahead of the counter, or a process still counting the old way during an upgrade.
        Not the client's doing, and the next attempt draws the next number: a conflict."""
        table = self.tables.table(ent.name)
        for field in ent.fields_of_type("autonumber"):
            value = record.get(field.name)
            if empty(value):
                continue
            query = sa.select(table.c.id).where(table.c[field.name] == value)
            if record_id is not None:
                query = query.where(table.c.id != record_id)
            if conn.execute(query.limit(1)).first() is not None:
                raise Conflict(
                    f"the number {value} ({field.name}) is taken already: the counter is "
                    f"behind the numbers stored (on PostgreSQL the next attempt draws the "
                    f"next number)",
                    details={"field": field.name, "value": value},
                )


def unique_groups(ent: Entity) -> list[tuple[str, ...]]:
    """The fields, alone or together, whose values must be unique among ``ent``'s records."""
    groups: list[tuple[str, ...]] = [
        (f.name,) for f in ent.fields.values() if f.unique and stored(f)
    ]
    return groups + [index.fields for index in ent.indexes if index.unique]


def flat_messages(messages: Any, prefix: str = "") -> Errors:
    """Flatten marshmallow's messages (nested for lists) into ``{field: [messages]}``."""
    flat: Errors = {}
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            name = (
                f"{prefix}[{key}]"
                if isinstance(key, int)
                else (f"{prefix}.{key}" if prefix else str(key))
            )
            for sub_name, sub_messages in flat_messages(value, name).items():
                flat.setdefault(sub_name, []).extend(sub_messages)
    elif isinstance(messages, Sequence) and not isinstance(messages, str):
        for item in messages:
            if isinstance(item, str):
                flat.setdefault(prefix, []).append(item)
            else:
                for sub_name, sub_messages in flat_messages(item, prefix).items():
                    flat.setdefault(sub_name, []).extend(sub_messages)
    else:
        flat.setdefault(prefix, []).append(str(messages))
    return flat
