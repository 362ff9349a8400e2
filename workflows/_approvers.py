"""Who may approve: an approval step's approvers resolved to users, and the delegations
that let a colleague approve for someone away.

An approver is written ``role:<role>`` (the active users with the role who can see the
record), ``user:<username>``, ``manager`` / ``manager:<levels>`` (the manager of the
record's owner — or, for a record without one, of the submitter — that many levels up)
or ``field:<user field>`` (the users the record names there).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from engine import Actor, Records
from engine.approval_tables import DELEGATION_TABLE
from engine.tables import USER_TABLE
from metamodel import Entity


class Directory:
    """The users and delegations of one record service's database."""

    def __init__(self, records: Records) -> None:
        self.records = records
        tables = records.tables.metadata.tables
        self.users = tables[USER_TABLE]
        self.delegations = tables[DELEGATION_TABLE]

    # users ----------------------------------------------------------------------------------

    def active(self, conn: sa.Connection, ids: Iterable[int]) -> list[int]:
        """Those of ``ids`` that are active users, in the order given."""
        wanted = list(dict.fromkeys(int(i) for i in ids))
        if not wanted:
            return []
        u = self.users
        found = set(conn.scalars(sa.select(u.c.id).where(u.c.id.in_(wanted), u.c.active)))
        return [i for i in wanted if i in found]

    def by_username(self, conn: sa.Connection, username: str) -> int | None:
        u = self.users
        found = conn.scalar(sa.select(u.c.id).where(u.c.username == username, u.c.active))
        return int(found) if found is not None else None

    def manager(self, conn: sa.Connection, user_id: int | None, levels: int = 1) -> int | None:
        """The manager ``levels`` up from ``user_id`` (None when the chain ends first)."""
        u = self.users
        current = user_id
        for _ in range(levels):
            if current is None:
                return None
            found = conn.scalar(sa.select(u.c.manager_id).where(u.c.id == current))
            current = int(found) if found is not None else None
        return current

    def names(self, conn: sa.Connection, ids: Iterable[int]) -> dict[int, str]:
        wanted = {int(i) for i in ids}
        if not wanted:
            return {}
        u = self.users
        rows = conn.execute(sa.select(u.c.id, u.c.username).where(u.c.id.in_(wanted)))
        return {int(row.id): str(row.username) for row in rows}

    def with_role(
        self, conn: sa.Connection, role: str, entity: Entity, record_id: int
    ) -> list[int]:
        """The active users with ``role`` whose permissions let them see the record."""
        u = self.users
        rows = conn.execute(
            sa.select(u.c.id, u.c.team_id, u.c.roles).where(u.c.active).order_by(u.c.id)
        )
        permissions = self.records.permissions
        found = []
        for row in rows:
            roles = frozenset(row.roles or ())
            if role not in roles:
                continue
            actor = Actor(user_id=int(row.id), team_id=row.team_id, roles=roles)
            grant = permissions.grant(actor, entity, "read")
            if grant.allowed and permissions.covers(conn, actor, entity, grant, record_id):
                found.append(int(row.id))
        return found

    def resolve(
        self,
        conn: sa.Connection,
        approver: str,
        entity: Entity,
        record: Mapping[str, Any],
        submitter: int | None,
        relative_to: int | None = None,
    ) -> tuple[list[int], str]:
        """The users ``approver`` names for ``record``, and why there are none when empty.
        ``relative_to``: whose manager ``manager`` means (escalations: the approver's)."""
        kind, _, name = approver.partition(":")
        if kind == "role":
            users = self.with_role(conn, name, entity, int(record["id"]))
            return users, f"no active user with role '{name}' can see this {entity.name}"
        if kind == "user":
            found = self.by_username(conn, name)
            return ([found] if found else []), f"there is no active user '{name}'"
        if kind == "field":
            value = record.get(name)
            given = value if isinstance(value, list) else [value] if value is not None else []
            users = self.active(conn, (int(v) for v in given))
            return users, f"the {entity.name}'s '{name}' names no active user"
        levels = int(name or 1)
        base = relative_to
        if base is None:
            base = record.get("owner_id") if entity.ownable else None
            base = base if base is not None else submitter
        found = self.manager(conn, base, levels)
        users = self.active(conn, [found] if found is not None else [])
        who = "the owner" if relative_to is None else "the approver"
        up = "manager" if levels == 1 else f"manager {levels} levels up"
        return users, f"{who} has no active {up}"

    # delegations ----------------------------------------------------------------------------

    def delegators(self, conn: sa.Connection, delegate: int, today: dt.date) -> list[int]:
        """The users whose approvals ``delegate`` may decide today."""
        d = self.delegations
        rows = conn.scalars(
            sa.select(d.c.user_id).where(
                d.c.delegate_id == delegate, d.c.starts_on <= today, d.c.ends_on >= today
            )
        )
        return sorted({int(r) for r in rows})

    def delegates(
        self, conn: sa.Connection, users: Iterable[int], today: dt.date
    ) -> dict[int, list[int]]:
        """For each of ``users`` away today, who decides for them."""
        wanted = {int(u) for u in users}
        if not wanted:
            return {}
        d = self.delegations
        rows = conn.execute(
            sa.select(d.c.user_id, d.c.delegate_id).where(
                d.c.user_id.in_(wanted), d.c.starts_on <= today, d.c.ends_on >= today
            )
        )
        found: dict[int, list[int]] = {}
        for row in rows:
            found.setdefault(int(row.user_id), []).append(int(row.delegate_id))
        return found
