"""Delegations: while a user is away (a range of dates, both included), a colleague
decides the approvals that wait for them; the history says on whose behalf.

Users set and clear their own; administrators anyone's.

>>> delegations = Delegations(records)
>>> delegations.set(mia, {"delegate_id": 7, "starts_on": "2025-08-01", "ends_on": "2025-08-15"})
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from engine import Actor, Records
from engine.approval_tables import DELEGATION_TABLE
from engine.errors import Forbidden, NotFound, ValidationFailed
from metamodel import local_today

from ._approvers import Directory

NOTE_SIZE = 200
#: The longest delegation: a year (a longer absence is a change of approver, not a leave).
LONGEST = dt.timedelta(days=366)


class Delegations:
    def __init__(self, records: Records) -> None:
        self.records = records
        self.table = records.tables.metadata.tables[DELEGATION_TABLE]
        self.directory = Directory(records)

    def list(self, actor: Actor, *, everyone: bool = False) -> list[dict[str, Any]]:
        """The delegations the actor gave or received (an admin's ``everyone``: all),
        those still running or to come, by start date."""
        d = self.table
        today = actor.today or local_today()
        query = sa.select(d).where(d.c.ends_on >= today).order_by(d.c.starts_on, d.c.id)
        if not (everyone and actor.is_admin):
            query = query.where(
                sa.or_(d.c.user_id == actor.user_id, d.c.delegate_id == actor.user_id)
            )
        with self.records.reader.connect() as conn:
            return [_shown(row) for row in conn.execute(query).mappings()]

    def set(self, actor: Actor, data: Mapping[str, Any]) -> dict[str, Any]:
        """Record a delegation: ``delegate_id``, ``starts_on``, ``ends_on``, ``note``, and
        (admins) ``user_id``, whose approvals the delegate decides; the actor's by default."""
        errors: dict[str, list[str]] = {}
        known = {"user_id", "delegate_id", "starts_on", "ends_on", "note"}
        for name in data:
            if name not in known:
                errors[str(name)] = [f"Unknown field: send {', '.join(sorted(known))}."]
        user = data.get("user_id", actor.user_id)
        delegate = data.get("delegate_id")
        for name, value in (("user_id", user), ("delegate_id", delegate)):
            if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**31:
                errors.setdefault(name, []).append("Not a valid user id.")
        starts, ends = _date(data, "starts_on", errors), _date(data, "ends_on", errors)
        note = data.get("note", "")
        if not isinstance(note, str) or len(note) > NOTE_SIZE:
            errors["note"] = [f"Text of at most {NOTE_SIZE} characters."]
        if starts and ends and ends < starts:
            errors.setdefault("ends_on", []).append("The end cannot be before the start.")
        elif starts and ends and ends - starts > LONGEST:
            errors.setdefault("ends_on", []).append("A delegation lasts at most a year.")
        if errors:
            raise ValidationFailed("the delegation is not valid", errors)
        assert isinstance(user, int) and isinstance(delegate, int)
        if user != actor.user_id and not actor.is_admin:
            raise Forbidden("only an administrator may set someone else's delegation")
        if user == delegate:
            raise ValidationFailed(
                "nobody delegates to themselves", {"delegate_id": ["Choose someone else."]}
            )
        with self.records.transaction() as conn:
            active = self.directory.active(conn, [user, delegate])
            for name, value in (("user_id", user), ("delegate_id", delegate)):
                if value not in active:
                    errors[name] = ["No active user with this id."]
            if errors:
                raise ValidationFailed("the delegation is not valid", errors)
            d = self.table
            new_id = conn.execute(
                d.insert()
                .values(
                    user_id=user,
                    delegate_id=delegate,
                    starts_on=starts,
                    ends_on=ends,
                    note=note,
                    created_by=actor.user_id,
                    created_at=dt.datetime.now(dt.UTC),
                )
                .returning(d.c.id)
            ).scalar_one()
            return _shown(conn.execute(sa.select(d).where(d.c.id == new_id)).mappings().one())

    def clear(self, actor: Actor, delegation_id: int) -> None:
        """Remove a delegation the actor gave (an admin: anyone's)."""
        d = self.table
        with self.records.transaction() as conn:
            row = conn.execute(sa.select(d).where(d.c.id == delegation_id)).mappings().first()
            if row is None or (
                row["user_id"] != actor.user_id
                and not actor.is_admin
                and row["delegate_id"] != actor.user_id
            ):
                raise NotFound(f"no delegation with id {delegation_id}")
            if row["user_id"] != actor.user_id and not actor.is_admin:
                raise Forbidden("only the user who delegated (or an administrator) may clear it")
            conn.execute(d.delete().where(d.c.id == delegation_id))


def _date(data: Mapping[str, Any], name: str, errors: dict[str, list[str]]) -> dt.date | None:
    value = data.get(name)
    if value is None:
        errors[name] = ["Missing data for required field."]
        return None
    try:
        if isinstance(value, str) and len(value) == 10:
            return dt.date.fromisoformat(value)
    except ValueError:
        pass
    errors[name] = ["Not a valid date (YYYY-MM-DD)."]
    return None


def _shown(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "user_id": row["user_id"],
        "delegate_id": row["delegate_id"],
        "starts_on": row["starts_on"],
        "ends_on": row["ends_on"],
        "note": row["note"],
        "created_by": row["created_by"],
        "created_at": row["created_at"],
    }
