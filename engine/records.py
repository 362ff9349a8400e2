"""The record service: the one way records are created, read, changed and deleted.

Every call takes an explicit :class:`~engine.context.Actor`. Input is coerced by schemas
generated from the Model, then checked as a whole record (required, required_when,
references, uniqueness, validations); defaults and autonumbers are filled in; rollups on
parent records are kept right in the same transaction; every change is audited with its
field-level diff; and record events let the workflows layer react before and after.

>>> records = Records(engine, model)
>>> deal = records.create(actor, "opportunity", {"name": "ERP", "account": 1, "amount": "5000"})
>>> records.update(actor, "opportunity", deal["id"], {"stage": "proposal"}, version=deal["version"])
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, TypeVar

import sqlalchemy as sa
from marshmallow import ValidationError as InputError
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from metamodel import Entity, Field, Model

from ._coerce import OWNERSHIP, input_schema
from ._compute import Computer
from .audit import Audit, jsonable
from .context import SYSTEM, Actor
from .database import reader
from .errors import (
    BadRequest,
    Forbidden,
    NotFound,
    Restricted,
    StaleVersion,
    ValidationFailed,
)
from .events import EventBus, RecordEvent
from .permissions import Grant, Permissions
from .tables import SEQUENCE_TABLE, TEAM_TABLE, USER_TABLE, Schema, build_schema, stored

Errors = dict[str, list[str]]
T = TypeVar("T")
REQUIRED = "Missing data for required field."
RECORD = "_record"  # where errors about the whole record go
MAX_CASCADE = 10_000


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == ()


def _add(errors: Errors, field: str, message: str) -> None:
    errors.setdefault(field, [])
    if message not in errors[field]:
        errors[field].append(message)


class Records:
    """Create, read, update, delete and list records of one Model on one database."""

    def __init__(
        self,
        engine: Engine,
        model: Model,
        *,
        schema: Schema | None = None,
        events: EventBus | None = None,
    ) -> None:
        self.engine = engine
        self.model = model
        self.schema = schema or build_schema(model)
        self.events = events or EventBus()
        self.dialect = engine.dialect.name
        self.audit = Audit(self.schema)
        self.computer = Computer(self.schema, self.dialect)
        self.permissions = Permissions(self.schema)
        self.reader: Engine = reader(engine)

    # transactions ---------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """One transaction for several calls: pass the connection as ``conn=``."""
        with self.engine.begin() as conn:
            yield conn

    def _run(self, conn: sa.Connection | None, work: Callable[[sa.Connection], T]) -> T:
        if conn is not None:
            return work(conn)
        with self.engine.begin() as new:
            return work(new)

    def _read_only(self, conn: sa.Connection | None, work: Callable[[sa.Connection], T]) -> T:
        """Reads need no transaction of their own (see :func:`engine.database.reader`)."""
        if conn is not None:
            return work(conn)
        with self.reader.connect() as new:
            return work(new)

    def entity(self, name: str) -> Entity:
        try:
            return self.model.entity(name)
        except KeyError as exc:
            raise NotFound(str(exc)) from None

    # public API -------------------------------------------------------------------------

    def create(
        self,
        actor: Actor,
        entity: str,
        data: Mapping[str, Any],
        *,
        conn: sa.Connection | None = None,
        trusted: bool = False,
    ) -> dict[str, Any]:
        """Create a record from client ``data``; returns it as :meth:`get` would.

        ``trusted`` lets the platform itself (workflows, imports) set read-only fields.
        """
        ent = self.entity(entity)
        grant = self._grant(actor, ent, "create")
        if not trusted:
            self._guard(actor, ent, data, grant, "create")

        def work(c: sa.Connection) -> dict[str, Any]:
            record = self._create(c, actor, ent, data, trusted)
            self._stays_in_scope(c, actor, ent, grant, record["id"])
            return self._visible(actor, ent, record)

        return self._run(conn, work)

    def get(
        self, actor: Actor, entity: str, record_id: int, *, conn: sa.Connection | None = None
    ) -> dict[str, Any]:
        """One record with its formulas and child rows; :class:`NotFound` if absent or out
        of the actor's sight."""
        ent = self.entity(entity)

        def work(c: sa.Connection) -> dict[str, Any]:
            self._readable(c, actor, ent, record_id)
            return self._visible(actor, ent, self._read(c, actor, ent, record_id, children=True))

        return self._read_only(conn, work)

    def update(
        self,
        actor: Actor,
        entity: str,
        record_id: int,
        data: Mapping[str, Any],
        *,
        version: int | None,
        conn: sa.Connection | None = None,
        trusted: bool = False,
    ) -> dict[str, Any]:
        """Change the fields in ``data``. ``version`` is the version the client read; a
        stale one raises :class:`StaleVersion` (``None`` skips the check: trusted callers)."""
        ent = self.entity(entity)
        if version is None and not trusted:
            raise BadRequest("the record's version is required", {"version": [REQUIRED]})

        def work(c: sa.Connection) -> dict[str, Any]:
            grant = self._writable(c, actor, ent, record_id, "update")
            if not trusted:
                self._guard(actor, ent, data, grant, "update")
            record = self._update(c, actor, ent, record_id, data, version, trusted)
            self._stays_in_scope(c, actor, ent, grant, record_id)
            return self._visible(actor, ent, record)

        return self._run(conn, work)

    def delete(
        self,
        actor: Actor,
        entity: str,
        record_id: int,
        *,
        version: int | None,
        conn: sa.Connection | None = None,
    ) -> None:
        """Delete a record, following each reference's ``on_delete`` for records that
        point at it; :class:`Restricted` lists what prevents it."""
        ent = self.entity(entity)

        def work(c: sa.Connection) -> None:
            self._writable(c, actor, ent, record_id, "delete")
            self._delete(c, actor, ent, record_id, version, depth=0)

        self._run(conn, work)

    def query(
        self, actor: Actor, entity: str, query: Any, *, conn: sa.Connection | None = None
    ) -> Any:
        """A page of the records the actor may read, for a :class:`engine.query.ListQuery`,
        formulas computed and hidden fields left out. Filtering or sorting by a hidden field
        is refused as an unknown field."""
        from . import query as queries

        ent = self.entity(entity)
        grant = self._grant(actor, ent, "read")
        query = self._within_sight(actor, ent, grant, query)
        scope = self.permissions.where(actor, ent, grant, self.schema.table(ent.name))

        def work(c: sa.Connection) -> Any:
            page = queries.run(c, self.schema, ent.name, query, actor, scope=scope)
            self.computer.formulas(c, ent, page.rows, actor.context())
            page.rows = [self._visible(actor, ent, row) for row in page.rows]
            return page

        return self._read_only(conn, work)

    def history(
        self, actor: Actor, entity: str, record_id: int, *, conn: sa.Connection | None = None
    ) -> list[dict[str, Any]]:
        """Every change to a record, oldest first: who, when, version and the diff."""
        ent = self.entity(entity)
        grant = self._grant(actor, ent, "read")

        def work(c: sa.Connection) -> list[dict[str, Any]]:
            entries = self.audit.history(c, ent.name, record_id)
            exists = self._exists(c, ent, record_id)
            if (exists and not self.permissions.covers(c, actor, ent, grant, record_id)) or (
                not exists and (grant.scope != "all" or not entries)
            ):
                raise NotFound(f"no {ent.name} with id {record_id}")
            for entry in entries:
                entry["changes"] = {
                    k: v for k, v in entry["changes"].items() if k not in grant.hidden
                }
            return entries

        return self._read_only(conn, work)

    def as_of(
        self,
        actor: Actor,
        entity: str,
        record_id: int,
        at: dt.datetime,
        *,
        conn: sa.Connection | None = None,
    ) -> dict[str, Any] | None:
        """The record's stored fields as they were at ``at`` (None if it did not exist)."""
        ent = self.entity(entity)

        def work(c: sa.Connection) -> dict[str, Any] | None:
            self.history(actor, entity, record_id, conn=c)  # the same sight rules
            state = self.audit.as_of(c, ent, record_id, at)
            return None if state is None else self._visible(actor, ent, state)

        return self._read_only(conn, work)

    # permissions --------------------------------------------------------------------------

    def _grant(self, actor: Actor, ent: Entity, action: str) -> Grant:
        grant = self.permissions.grant(actor, ent, action)
        if not grant.allowed:
            raise Forbidden(f"you may not {action} {ent.plural_label.get(actor.locale)}")
        return grant

    def _exists(self, conn: sa.Connection, ent: Entity, record_id: int) -> bool:
        table = self.schema.table(ent.name)
        return (
            conn.execute(sa.select(table.c.id).where(table.c.id == record_id)).first() is not None
        )

    def _readable(self, conn: sa.Connection, actor: Actor, ent: Entity, record_id: int) -> None:
        """NotFound for a record that does not exist or that the actor may not see."""
        grant = self._grant(actor, ent, "read")
        if not self.permissions.covers(conn, actor, ent, grant, record_id):
            raise NotFound(f"no {ent.name} with id {record_id}")

    def _writable(
        self, conn: sa.Connection, actor: Actor, ent: Entity, record_id: int, action: str
    ) -> Grant:
        self._readable(conn, actor, ent, record_id)
        grant = self._grant(actor, ent, action)
        if not self.permissions.covers(conn, actor, ent, grant, record_id):
            raise Forbidden(f"you may not {action} this {ent.label.get(actor.locale)}")
        return grant

    def _stays_in_scope(
        self, conn: sa.Connection, actor: Actor, ent: Entity, grant: Grant, record_id: int
    ) -> None:
        """A record written must stay within the writer's scope (a rep cannot hand an
        account to another team)."""
        if not self.permissions.covers(conn, actor, ent, grant, record_id):
            where = "owner_id" if ent.ownable else RECORD
            raise ValidationFailed(
                f"the {ent.name} would leave what you may manage",
                {where: [f"Outside what you may manage ({grant.scope.replace('_', ' ')})."]},
            )

    def _guard(
        self, actor: Actor, ent: Entity, data: Mapping[str, Any], grant: Grant, action: str
    ) -> None:
        """Refuse input to fields the actor may not see or change."""
        if not isinstance(data, Mapping):
            return  # _input reports it
        errors: Errors = {}
        for name, value in data.items():
            if name in grant.hidden:
                _add(errors, name, "Unknown field.")
            elif name in grant.readonly:
                _add(errors, name, "Read-only field.")
            field = ent.fields.get(name) if isinstance(name, str) else None
            if field is not None and field.type == "children" and isinstance(value, list):
                child = self.model.entity(field.children or "")
                child_grant = self.permissions.grant(actor, child, action)
                for index, row in enumerate(value):
                    for key in row if isinstance(row, Mapping) else ():
                        if key in child_grant.hidden:
                            _add(errors, f"{name}[{index}].{key}", "Unknown field.")
                        elif key in child_grant.readonly:
                            _add(errors, f"{name}[{index}].{key}", "Read-only field.")
        if errors:
            raise ValidationFailed(f"the {ent.name} is not valid", errors)

    def _within_sight(self, actor: Actor, ent: Entity, grant: Grant, query: Any) -> Any:
        """Refuse a list query that would reveal hidden fields (filtering or sorting by
        them, even through a reference, is a way of reading them), and search only the
        visible search fields."""
        errors: Errors = {}

        def hidden_on_path(path: Sequence[str]) -> bool:
            here = ent
            for name in path:
                if name in self.permissions.grant(actor, here, "read").hidden:
                    return True
                field = here.fields.get(name)
                if field is None or field.to is None:
                    return False
                here = self.model.entity(field.to)
            return False

        for item in query.filters:
            if hidden_on_path(item.path):
                _add(errors, item.key, "Unknown field.")
        for key in query.sort:
            if hidden_on_path(key.field.split(".")):
                _add(errors, "sort", f"unknown field '{key.field}'")
        for name in query.fields or ():
            if name in grant.hidden:
                _add(errors, "fields", f"unknown field '{name}'")
        for name in query.expand:
            field = ent.fields.get(name)
            if name in grant.hidden:
                _add(errors, "expand", f"unknown field '{name}'")
            elif field is not None and field.to is not None:
                target = self.model.entity(field.to)
                if not self.permissions.grant(actor, target, "read").allowed:
                    _add(errors, "expand", f"you may not read {target.name}")
        if errors:
            first = next(iter(errors.values()))[0]
            raise BadRequest(f"Invalid list query: {first}", errors)
        if query.search and set(ent.search_fields) & grant.hidden:
            visible = tuple(f for f in ent.search_fields if f not in grant.hidden)
            query = dataclasses.replace(query, search_in=visible)
        return query

    def _visible(self, actor: Actor, ent: Entity, record: dict[str, Any]) -> dict[str, Any]:
        """The record without the fields hidden from the actor (children too). ``record``
        is the service's own (never a caller's): with nothing hidden it is returned as is."""
        hidden = self.permissions.grant(actor, ent, "read").hidden
        visible = {k: v for k, v in record.items() if k not in hidden} if hidden else record
        for field in ent.fields_of_type("children"):
            if isinstance(visible.get(field.name), list):
                child = self.model.entity(field.children or "")
                visible[field.name] = [
                    self._visible(actor, child, row) for row in visible[field.name]
                ]
        return visible

    # reading ----------------------------------------------------------------------------

    def _row(
        self, conn: sa.Connection, ent: Entity, record_id: int, *, lock: bool = False
    ) -> dict[str, Any]:
        table = self.schema.table(ent.name)
        query = sa.select(table).where(table.c.id == record_id)
        if lock and self.dialect == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).mappings().first()
        if row is None:
            raise NotFound(f"no {ent.name} with id {record_id}")
        return dict(row)

    def _read(
        self, conn: sa.Connection, actor: Actor, ent: Entity, record_id: int, *, children: bool
    ) -> dict[str, Any]:
        row = self._row(conn, ent, record_id)
        self.computer.formulas(conn, ent, [row], actor.context())
        if children:
            for field in ent.fields_of_type("children"):
                row[field.name] = self._children(conn, actor, ent, field, record_id)
        return row

    def _children(
        self, conn: sa.Connection, actor: Actor, ent: Entity, field: Field, parent_id: int
    ) -> list[dict[str, Any]]:
        child = self.model.entity(field.children or "")
        table = self.schema.table(child.name)
        link = child.parent_field or ""
        rows = [
            dict(r)
            for r in conn.execute(
                sa.select(table).where(table.c[link] == parent_id).order_by(table.c.id)
            ).mappings()
        ]
        self.computer.formulas(conn, child, rows, actor.context())
        return rows

    # input --------------------------------------------------------------------------------

    def _input(
        self, ent: Entity, data: Mapping[str, Any], *, partial: bool, trusted: bool
    ) -> tuple[dict[str, Any], dict[str, list[Any]], Errors]:
        """Coerced values, child rows by children field, and errors."""
        if not isinstance(data, Mapping):
            raise BadRequest("a record must be a JSON object")
        errors: Errors = {}
        children: dict[str, list[Any]] = {}
        plain: dict[str, Any] = {}
        for name, value in data.items():
            field = ent.fields.get(name) if isinstance(name, str) else None
            if field is not None and field.type == "children":
                if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
                    _add(errors, name, "Must be a list of objects.")
                else:
                    children[name] = list(value)
            elif field is not None and (field.computed or field.readonly) and not trusted:
                _add(errors, name, "Read-only field.")
            elif name in ("id", "version", *ent.system_fields) and name not in OWNERSHIP:
                _add(errors, name, "Set by the system.")
            else:
                plain[name] = value
        try:
            values = input_schema(self.model, ent.name, self.dialect).load(plain, partial=partial)
        except InputError as exc:
            for name, messages in _messages(exc.messages).items():
                for message in messages:
                    _add(errors, name, message)
            values = dict(exc.valid_data or {})  # so the other fields are checked too
        return dict(values), children, errors

    def _defaults(
        self, conn: sa.Connection, ent: Entity, values: dict[str, Any], actor: Actor
    ) -> None:
        context = actor.context()
        for field in ent.fields.values():
            if field.name in values or not stored(field) or field.computed:
                continue
            if field.default_expression is not None:
                values[field.name] = field.default_expression.evaluate(values, context)
            elif field.default is not None:
                values[field.name] = _coerce_default(field, field.default)
        if ent.ownable:
            owner = values.setdefault("owner_id", actor.user_id)
            if "team_id" not in values:
                values["team_id"] = (
                    actor.team_id if owner == actor.user_id else self._team_of(conn, owner)
                )

    def _team_of(self, conn: sa.Connection, user_id: Any) -> int | None:
        """A user's team: a record given to someone belongs to their team, not the giver's
        (an unknown user has none; the owner check reports the user)."""
        if not isinstance(user_id, int):
            return None
        users = self.schema.metadata.tables[USER_TABLE]
        team: int | None = conn.scalar(sa.select(users.c.team_id).where(users.c.id == user_id))
        return team

    # checks -------------------------------------------------------------------------------

    def _check(
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
    ) -> None:
        """Check a whole candidate record; problems are added to ``errors``."""
        view = self.computer.view(conn, ent, record, actor.context())
        context = actor.context()
        for field in ent.fields.values():
            needed = field.required or (
                field.required_when is not None
                and bool(field.required_when.evaluate(view, context))
            )
            if not needed or field.name in errors:
                continue
            if field.type == "children":
                # on create a missing list means no rows; on update it means "unchanged"
                if child_counts.get(field.name, 0 if record_id is None else 1) == 0:
                    _add(errors, field.name, REQUIRED)
            elif stored(field) and not field.computed and _empty(record.get(field.name)):
                _add(errors, field.name, REQUIRED)
        self._check_references(conn, ent, record, errors, changed)
        self._check_unique(conn, ent, record, record_id, errors, changed)
        for validation in ent.validations:
            if validation.when is not None and not validation.when.evaluate(view, context):
                continue
            if not validation.rule.evaluate(view, context):
                message = validation.message.get(actor.locale)
                for name in validation.fields or (RECORD,):
                    _add(errors, name, message)

    def _check_references(
        self,
        conn: sa.Connection,
        ent: Entity,
        record: Mapping[str, Any],
        errors: Errors,
        changed: set[str] | None,
    ) -> None:
        targets: list[tuple[str, str, Any]] = []
        for field in ent.fields_of_type("reference", "user", "team"):
            if changed is None or field.name in changed:
                target_table = (
                    self.schema.table(field.to or "").name
                    if field.type == "reference"
                    else (USER_TABLE if field.type == "user" else TEAM_TABLE)
                )
                targets.append((field.name, target_table, record.get(field.name)))
        if ent.ownable:
            for name, owner_table in (("owner_id", USER_TABLE), ("team_id", TEAM_TABLE)):
                if changed is None or name in changed:
                    targets.append((name, owner_table, record.get(name)))
        for name, table_name, value in targets:
            if name in errors or _empty(value):
                continue
            wanted = set(value) if isinstance(value, list) else {value}
            table = self.schema.metadata.tables[table_name]
            found = set(conn.scalars(sa.select(table.c.id).where(table.c.id.in_(wanted))))
            for missing in sorted(wanted - found):
                what = ent.fields[name].to if name in ent.fields else None
                target = what or table_name.removeprefix("heddle_")
                _add(errors, name, f"No {target} with id {missing}.")

    def _check_unique(
        self,
        conn: sa.Connection,
        ent: Entity,
        record: Mapping[str, Any],
        record_id: int | None,
        errors: Errors,
        changed: set[str] | None,
    ) -> None:
        table = self.schema.table(ent.name)
        for names in _unique_groups(ent):
            if changed is not None and not set(names) & changed:
                continue
            if any(_empty(record.get(n)) for n in names) or any(n in errors for n in names):
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
                _add(errors, names[0], message)

    def _unique_write(
        self,
        conn: sa.Connection,
        ent: Entity,
        record: Mapping[str, Any],
        record_id: int | None,
        written: set[str] | None,
        write: Callable[[], T],
    ) -> T:
        """Run ``write`` (the INSERT or UPDATE of ``record``) so that a unique constraint
        broken under a race becomes the field error :meth:`_check_unique` gives.

        The check before the write cannot see a rival transaction that commits the same
        value between the check and the write; the database's constraint then refuses the
        write, and the check runs again to name the field (the database's error text is
        never parsed). A refusal the check cannot explain (a foreign key whose target was
        just deleted, say) propagates unchanged.

        The transaction stays usable after the refusal: PostgreSQL would abort all of it,
        so the write runs in a SAVEPOINT there (only when it sets a unique field, to spare
        most writes the round trips); SQLite undoes just the refused statement by itself.
        """
        groups = _unique_groups(ent)
        if written is not None:
            groups = [names for names in groups if set(names) & written]
        if not any(all(not _empty(record.get(n)) for n in names) for names in groups):
            return write()
        try:
            if self.dialect == "sqlite":
                return write()
            with conn.begin_nested():
                return write()
        except sa.exc.IntegrityError:
            errors: Errors = {}
            self._check_unique(conn, ent, record, record_id, errors, written)
            if errors:
                raise ValidationFailed(f"the {ent.name} is not valid", errors) from None
            raise

    # writing ------------------------------------------------------------------------------

    def _create(
        self,
        conn: sa.Connection,
        actor: Actor,
        ent: Entity,
        data: Mapping[str, Any],
        trusted: bool,
        *,
        parent: tuple[str, int] | None = None,
    ) -> dict[str, Any]:
        values, children, errors = self._input(ent, data, partial=False, trusted=trusted)
        if parent is not None:
            values[parent[0]] = parent[1]
        self._defaults(conn, ent, values, actor)
        event = RecordEvent("before_create", ent.name, actor, conn, self, None, values)
        self.events.emit(event)
        counts = {name: len(rows) for name, rows in children.items()}
        self._check(conn, actor, ent, values, None, errors, changed=None, child_counts=counts)
        if errors:
            raise ValidationFailed(f"the {ent.name} is not valid", errors)
        now = dt.datetime.now(dt.UTC)
        row = {name: value for name, value in values.items() if self._column(ent, name)}
        for field in ent.fields_of_type("autonumber"):
            row[field.name] = self._autonumber(conn, ent, field, now)
        row.update(
            created_at=now,
            updated_at=now,
            created_by=actor.user_id,
            updated_by=actor.user_id,
            version=1,
        )
        table = self.schema.table(ent.name)
        insert = table.insert().values(row).returning(table.c.id)
        record_id = self._unique_write(
            conn, ent, values, None, None, lambda: conn.execute(insert).scalar_one()
        )
        self._write_children(conn, actor, ent, record_id, children, trusted, replace=False)
        stored_row = self._row(conn, ent, record_id)
        self.computer.refresh_rollups(conn, ent, [None], [stored_row])
        self.audit.record(conn, ent, record_id, "create", actor, 1, None, stored_row)
        result = self._read(conn, actor, ent, record_id, children=True)
        self.events.emit(
            RecordEvent("after_create", ent.name, actor, conn, self, record_id, result)
        )
        return result

    def _update(
        self,
        conn: sa.Connection,
        actor: Actor,
        ent: Entity,
        record_id: int,
        data: Mapping[str, Any],
        version: int | None,
        trusted: bool,
    ) -> dict[str, Any]:
        before = self._row(conn, ent, record_id, lock=True)
        if version is not None and before["version"] != version:
            raise StaleVersion(
                f"the {ent.name} was changed by someone else (version {before['version']}, "
                f"you sent {version}): reload it and apply your change again",
                details={"current_version": before["version"]},
            )
        values, children, errors = self._input(ent, data, partial=True, trusted=trusted)
        handed_over = "owner_id" in values and values["owner_id"] != before.get("owner_id")
        if ent.ownable and handed_over and "team_id" not in values:
            values["team_id"] = self._team_of(conn, values["owner_id"])  # the new owner's team
        record = {**before, **values}
        event = RecordEvent(
            "before_update",
            ent.name,
            actor,
            conn,
            self,
            record_id,
            record,
            before,
            frozenset(values),
        )
        self.events.emit(event)
        changed = {
            name for name in record if name in before and record[name] != before[name]
        } | set(children)
        counts = {name: len(rows) for name, rows in children.items()}
        self._check(
            conn, actor, ent, record, record_id, errors, changed=changed, child_counts=counts
        )
        if errors:
            raise ValidationFailed(f"the {ent.name} is not valid", errors)
        updates = {n: record[n] for n in changed if n in before and self._column(ent, n)}
        if not updates and not children:
            return self._read(conn, actor, ent, record_id, children=True)
        table = self.schema.table(ent.name)
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
        done = self._unique_write(
            conn, ent, record, record_id, set(updates), lambda: conn.execute(update).rowcount
        )
        if done != 1:  # pragma: no cover - the row is locked (PostgreSQL) or the
            raise StaleVersion(f"the {ent.name} was changed by someone else")  # write lock held
        self._write_children(conn, actor, ent, record_id, children, trusted, replace=True)
        after = self._row(conn, ent, record_id)
        self.computer.refresh_rollups(conn, ent, [before], [after])
        self.audit.record(conn, ent, record_id, "update", actor, new_version, before, after)
        result = self._read(conn, actor, ent, record_id, children=True)
        self.events.emit(
            RecordEvent(
                "after_update",
                ent.name,
                actor,
                conn,
                self,
                record_id,
                result,
                before,
                frozenset(updates) | frozenset(children),
            )
        )
        return result

    def _write_children(
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
            table = self.schema.table(child.name)
            existing = set(conn.scalars(sa.select(table.c.id).where(table.c[link] == parent_id)))
            kept: set[int] = set()
            for index, item in enumerate(rows):
                row: Mapping[str, Any] = item
                data = {k: v for k, v in row.items() if k not in ("id", "version", link)}
                try:
                    if "id" in row:
                        if row["id"] not in existing:
                            _add(errors, f"{name}[{index}].id", f"No {child.name} row {row['id']}.")
                            continue
                        kept.add(row["id"])
                        self._update(conn, actor, child, row["id"], data, None, trusted)
                    else:
                        self._create(conn, actor, child, data, trusted, parent=(link, parent_id))
                except ValidationFailed as exc:
                    for field, messages in exc.fields.items():
                        for message in messages:
                            _add(errors, f"{name}[{index}].{field}", message)
            if replace:
                for gone in sorted(existing - kept):
                    self._delete(conn, actor, child, gone, None, depth=1)
        if errors:
            raise ValidationFailed(f"the {ent.name}'s rows are not valid", errors)

    def _delete(
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
        before = self._row(conn, ent, record_id, lock=True)
        if version is not None and before["version"] != version:
            raise StaleVersion(
                f"the {ent.name} was changed by someone else (version {before['version']}, "
                f"you sent {version}): reload it before deleting",
                details={"current_version": before["version"]},
            )
        self.events.emit(
            RecordEvent("before_delete", ent.name, actor, conn, self, record_id, before, before)
        )
        referrers = self._referrers(conn, ent, record_id)
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
                    self._delete(conn, actor, other, other_id, None, depth=depth + 1)
                else:  # set_null
                    self._update(conn, SYSTEM, other, other_id, {field.name: None}, None, True)
        table = self.schema.table(ent.name)
        conn.execute(table.delete().where(table.c.id == record_id))
        self.computer.refresh_rollups(conn, ent, [before], [None])
        self.audit.record(conn, ent, record_id, "delete", actor, before["version"], before, None)
        self.events.emit(
            RecordEvent("after_delete", ent.name, actor, conn, self, record_id, before, before)
        )

    def _referrers(
        self, conn: sa.Connection, ent: Entity, record_id: int
    ) -> list[tuple[Entity, Field, list[int]]]:
        found = []
        for other, field in self.model.references_to(ent.name):
            table = self.schema.table(other.name)
            ids = list(
                conn.scalars(
                    sa.select(table.c.id).where(table.c[field.name] == record_id).order_by("id")
                )
            )
            if ids:
                found.append((other, field, ids))
        return found

    # helpers ------------------------------------------------------------------------------

    def _column(self, ent: Entity, name: str) -> bool:
        return name in self.schema.table(ent.name).c

    def _autonumber(self, conn: sa.Connection, ent: Entity, field: Field, now: dt.datetime) -> str:
        """The next number of an autonumber format such as ``CT-{YYYY}-{seq:05}``.

        The counter is one row per format and period (the rendered date part), incremented
        with an atomic upsert: concurrent creates get distinct numbers, and the transaction
        holds the row until it commits.
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
        key = f"{ent.table}.{field.name}:{text}"
        table = self.schema.metadata.tables[SEQUENCE_TABLE]
        dialect_insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        statement = (
            dialect_insert(table)
            .values(name=key, value=1)
            .on_conflict_do_update(index_elements=["name"], set_={"value": table.c.value + 1})
            .returning(table.c.value)
        )
        number = conn.execute(statement).scalar_one()
        start, end = text.find("{seq"), text.find("}", text.find("{seq"))
        spec = text[start + 4 : end].lstrip(":")
        return text[:start] + format(number, spec or "d") + text[end + 1 :]


def _unique_groups(ent: Entity) -> list[tuple[str, ...]]:
    """The fields, alone or together, whose values must be unique among ``ent``'s records."""
    groups: list[tuple[str, ...]] = [
        (f.name,) for f in ent.fields.values() if f.unique and stored(f)
    ]
    return groups + [index.fields for index in ent.indexes if index.unique]


def _messages(messages: Any, prefix: str = "") -> Errors:
    """Flatten marshmallow's messages (nested for lists) into ``{field: [messages]}``."""
    flat: Errors = {}
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            name = (
                f"{prefix}[{key}]"
                if isinstance(key, int)
                else (f"{prefix}.{key}" if prefix else str(key))
            )
            for sub_name, sub_messages in _messages(value, name).items():
                flat.setdefault(sub_name, []).extend(sub_messages)
    elif isinstance(messages, Sequence) and not isinstance(messages, str):
        for item in messages:
            if isinstance(item, str):
                flat.setdefault(prefix, []).append(item)
            else:
                for sub_name, sub_messages in _messages(item, prefix).items():
                    flat.setdefault(sub_name, []).extend(sub_messages)
    else:
        flat.setdefault(prefix, []).append(str(messages))
    return flat


def _coerce_default(field: Field, value: Any) -> Any:
    if field.type in ("decimal", "money", "percent"):
        return Decimal(str(value))
    if field.type == "date" and isinstance(value, str):
        return dt.date.fromisoformat(value)
    if field.type == "datetime" and isinstance(value, str):
        parsed = dt.datetime.fromisoformat(value)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    if field.type == "multichoice":
        return list(value)
    return value


__all__ = ["Records", "jsonable"]
