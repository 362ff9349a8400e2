"""What an actor may do to a record: grants, sight, and the fields hidden from them.

Every refusal of the record service that is about permissions is made here: a record
out of sight is absent (404), one in sight but out of the action's scope is forbidden,
input to hidden or read-only fields is refused, and what leaves the service has the
hidden fields taken out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from metamodel import Entity

from ..context import Actor
from ..errors import BadRequest, Forbidden, NotFound, ValidationFailed
from ..permissions import Grant, Permissions
from ..pools import PoolDirectory
from ..tables import Tables
from ._common import RECORD, Errors, add


class Access:
    """Permission checks of one Model's record service."""

    def __init__(self, tables: Tables, permissions: Permissions, pools: PoolDirectory) -> None:
        self.tables = tables
        self.model = tables.model
        self.permissions = permissions
        self.pools = pools

    def grant(self, actor: Actor, ent: Entity, action: str) -> Grant:
        grant = self.permissions.grant(actor, ent, action)
        if not grant.allowed:
            raise Forbidden(f"you may not {action} {ent.plural_label.get(actor.locale)}")
        return grant

    def exists(self, conn: sa.Connection, ent: Entity, record_id: int) -> bool:
        table = self.tables.table(ent.name)
        return (
            conn.execute(sa.select(table.c.id).where(table.c.id == record_id)).first() is not None
        )

    def readable(self, conn: sa.Connection, actor: Actor, ent: Entity, record_id: int) -> None:
        """NotFound for a record that does not exist or that the actor may not see."""
        grant = self.grant(actor, ent, "read")
        if self.permissions.covers(conn, actor, ent, grant, record_id):
            return
        if ent.public_pool is not None and not actor.is_admin:  # waiting in a pool of theirs?
            table = self.tables.table(ent.name)
            pool_id = conn.scalar(
                sa.select(table.c[ent.public_pool.field]).where(table.c.id == record_id)
            )
            if self.pools.in_sight(conn, actor, ent, pool_id):
                return
        raise NotFound(f"no {ent.name} with id {record_id}")

    def writable(
        self, conn: sa.Connection, actor: Actor, ent: Entity, record_id: int, action: str
    ) -> Grant:
        self.readable(conn, actor, ent, record_id)
        grant = self.grant(actor, ent, action)
        if not self.permissions.covers(conn, actor, ent, grant, record_id):
            raise Forbidden(f"you may not {action} this {ent.label.get(actor.locale)}")
        return grant

    def stays_in_scope(
        self,
        conn: sa.Connection,
        actor: Actor,
        ent: Entity,
        grant: Grant,
        record: Mapping[str, Any],
    ) -> None:
        """A record written must stay within the writer's scope (a rep cannot hand an
        account to another team); decided from its values where they suffice."""
        inside = self.permissions.covers_values(actor, ent, grant, record)
        if inside is None:
            inside = self.permissions.covers(conn, actor, ent, grant, record["id"])
        if not inside:
            where = "owner_id" if ent.ownable else RECORD
            raise ValidationFailed(
                f"the {ent.name} would leave what you may manage",
                {where: [f"Outside what you may manage ({grant.scope.replace('_', ' ')})."]},
            )

    def gives_to_own_teams(
        self,
        conn: sa.Connection,
        actor: Actor,
        ent: Entity,
        grant: Grant,
        record: Mapping[str, Any],
    ) -> None:
        """A record may be given only to a team the actor's scope reaches: their own team
        (``own``, ``team``), it and the teams under it (``team_and_below``), any (``all``).
        Else a rep could move a record out of their own manager's sight."""
        team_id = record.get("team_id")
        if not ent.ownable or team_id is None:
            return
        if not self.permissions.team_reached(conn, actor, grant, team_id):
            scope = grant.scope.replace("_", " ")
            raise ValidationFailed(
                f"the {ent.name} would leave what you may manage",
                {"team_id": [f"Outside the teams you may give records to ({scope})."]},
            )

    def guard(
        self, actor: Actor, ent: Entity, data: Mapping[str, Any], grant: Grant, action: str
    ) -> None:
        """Refuse input to fields the actor may not see or change."""
        if not isinstance(data, Mapping):
            return  # _input reports it
        if not grant.hidden and not grant.readonly and not ent.fields_of_type("children"):
            return  # nothing it could refuse: no walk over the record (imports: every row)
        errors: Errors = {}
        for name, value in data.items():
            if name in grant.hidden:
                add(errors, name, "Unknown field.")
            elif name in grant.readonly:
                add(errors, name, "Read-only field.")
            field = ent.fields.get(name) if isinstance(name, str) else None
            if field is not None and field.type == "children" and isinstance(value, list):
                child = self.model.entity(field.children or "")
                child_grant = self.permissions.grant(actor, child, action)
                for index, row in enumerate(value):
                    for key in row if isinstance(row, Mapping) else ():
                        if key in child_grant.hidden:
                            add(errors, f"{name}[{index}].{key}", "Unknown field.")
                        elif key in child_grant.readonly:
                            add(errors, f"{name}[{index}].{key}", "Read-only field.")
        if errors:
            raise ValidationFailed(f"the {ent.name} is not valid", errors)

    def within_sight(self, actor: Actor, ent: Entity, grant: Grant, query: Any) -> Any:
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
                add(errors, item.key, "Unknown field.")
        for key in query.sort:
            if hidden_on_path(key.field.split(".")):
                add(errors, "sort", f"unknown field '{key.field}'")
        for name in query.fields or ():
            if name in grant.hidden:
                add(errors, "fields", f"unknown field '{name}'")
        for name in query.expand:
            field = ent.fields.get(name)
            if name in grant.hidden:
                add(errors, "expand", f"unknown field '{name}'")
            elif field is not None and field.to is not None:
                target = self.model.entity(field.to)
                if not self.permissions.grant(actor, target, "read").allowed:
                    add(errors, "expand", f"you may not read {target.name}")
        if errors:
            first = next(iter(errors.values()))[0]
            raise BadRequest(f"Invalid list query: {first}", errors)
        if query.search and set(ent.search_fields) & grant.hidden:
            visible = tuple(f for f in ent.search_fields if f not in grant.hidden)
            query = dataclasses.replace(query, search_in=visible)
        return query

    def visible(self, actor: Actor, ent: Entity, record: dict[str, Any]) -> dict[str, Any]:
        """The record without the fields hidden from the actor (children too). ``record``
        is the service's own (never a caller's): with nothing hidden it is returned as is."""
        hidden = self.permissions.grant(actor, ent, "read").hidden
        visible = {k: v for k, v in record.items() if k not in hidden} if hidden else record
        for field in ent.fields_of_type("children"):
            if isinstance(visible.get(field.name), list):
                child = self.model.entity(field.children or "")
                visible[field.name] = [
                    self.visible(actor, child, row) for row in visible[field.name]
                ]
        return visible
