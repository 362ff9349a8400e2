"""Claiming records from a public pool, assigning them from it, and returning them to it.

The rules of a pool (its record's settings, :data:`metamodel.POOL_SETTINGS`) decide:

- **claim** — a member takes a pooled record: the pool must be active; a previous owner
  waits ``reclaim_cooldown_days`` after the record returned from them; a user claims at
  most ``daily_claim_limit`` records of the pool a day (UTC days); and nobody claims past
  ``max_owned`` records owned (won records not counted unless ``count_won``).
- **assign** — a pool admin (or an admin) gives a pooled record to a member; the cap on
  owned records holds, the daily limit and the cooldown do not (they are about claiming).
- **return** — whoever may update a record hands it back to a pool: the pool named, or
  the first active pool its owner belongs to (then the caller's). The owner is cleared and
  kept as the previous owner, with the time it entered the pool.

A claim or an assignment moves the records the definition ``carry``-s (an account's
contacts) to the new owner. Each operation is one transaction: the record's row is
locked, the claiming user's claims are serialized (the daily limit cannot be overrun by
two claims at once), every write goes through the record service — validated, audited,
with its events — and a line is added to ``heddle_pool_log``, which the daily limit counts.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from metamodel import Entity, PublicPool, local_midnight
from metamodel.expressions import Context

from .._coerce import MAX_ID
from ..context import Actor
from ..errors import BadRequest, Forbidden, NotFound, PoolRefused, ValidationFailed
from ..paths import Resolver
from ..pools import Pool, PoolDirectory
from ..sqlexpr import to_sql
from ..tables import POOL_LOG_TABLE, USER_TABLE

if TYPE_CHECKING:
    from . import Records

CLAIM, ASSIGN, RETURN = "claim", "assign", "return"


def _day_start(actor: Actor, now: dt.datetime) -> dt.datetime:
    """The start of the actor's day (its midnight in the deployment's time zone)."""
    return local_midnight(actor.today or now.astimezone().date())


class PoolDesk:
    """The pool operations of one record service."""

    def __init__(self, records: Records, directory: PoolDirectory) -> None:
        self.records = records
        self.tables = records.tables
        self.model = records.model
        self.writer = records.writer
        self.directory = directory
        self.log = self.tables.metadata.tables[POOL_LOG_TABLE]

    # the operations ---------------------------------------------------------------------

    def claim(
        self, conn: sa.Connection, actor: Actor, ent: Entity, record_id: int
    ) -> dict[str, Any]:
        spec = _spec(ent)
        if actor.user_id is None:
            raise Forbidden("only a user may claim records")
        self.records.access.grant(actor, ent, "read")
        before = self.writer.row(conn, ent, record_id, lock=True)
        pool = self._pool_of(conn, actor, ent, before)
        if not pool.administers(actor) and not self.directory.is_member(conn, ent, pool, actor):
            raise Forbidden(f"you are not a member of the pool {pool.name}")
        if not pool.active:
            raise _refused("inactive", f"the pool {pool.name} is closed", pool)
        now = dt.datetime.now(dt.UTC)
        self._serialize(conn, actor.user_id)
        self._cooldown(actor, spec, pool, before, now)
        self._daily_limit(conn, actor, ent, pool, now)
        self._cap(conn, ent, pool, actor.user_id, "you own")
        record = self._hand_over(conn, actor, ent, before, actor.user_id, now)
        self._write_log(conn, ent, record_id, pool.id, CLAIM, actor.user_id, actor, None, now)
        return record

    def assign(
        self, conn: sa.Connection, actor: Actor, ent: Entity, record_id: int, owner_id: Any
    ) -> dict[str, Any]:
        _spec(ent)
        self.records.access.grant(actor, ent, "read")
        if not _is_id(owner_id):
            raise BadRequest("send the id of the user to assign to as owner_id",
                             {"owner_id": ["Not a valid id."]})  # fmt: skip
        before = self.writer.row(conn, ent, record_id, lock=True)
        pool = self._pool_of(conn, actor, ent, before)
        if not pool.administers(actor):
            raise Forbidden(f"only an admin of the pool {pool.name} may assign its records")
        users = self.tables.metadata.tables[USER_TABLE]
        user = conn.execute(
            sa.select(users.c.team_id, users.c.active).where(users.c.id == owner_id)
        ).first()
        if user is None or not user.active:
            raise ValidationFailed("no such active user", {"owner_id": ["Unknown user."]})
        teams = self.directory.teams_up(conn, ent, user.team_id)
        if not pool.has_member(owner_id, teams) and owner_id not in pool.admins:
            raise ValidationFailed(
                f"the user is not a member of the pool {pool.name}",
                {"owner_id": ["Not a member of this pool."]},
            )
        now = dt.datetime.now(dt.UTC)
        self._serialize(conn, owner_id)
        self._cap(conn, ent, pool, owner_id, "the user owns")
        record = self._hand_over(conn, actor, ent, before, owner_id, now)
        self._write_log(conn, ent, record_id, pool.id, ASSIGN, owner_id, actor, None, now)
        return record

    def give_back(
        self,
        conn: sa.Connection,
        actor: Actor,
        ent: Entity,
        record_id: int,
        pool_id: Any = None,
        note: str | None = None,
    ) -> dict[str, Any]:
        """Return a record to a pool: ``pool_id``, or the owner's (then the actor's)."""
        spec = _spec(ent)
        if pool_id is not None and not _is_id(pool_id):
            raise BadRequest("pool is the id of a pool", {"pool": ["Not a valid id."]})
        self.records.access.writable(conn, actor, ent, record_id, "update")
        before = self.writer.row(conn, ent, record_id, lock=True)
        if before.get(spec.field) is not None:
            raise _refused("pooled", f"the {ent.name} is in a public pool already")
        pool = self._destination(conn, actor, ent, before.get("owner_id"), pool_id)
        values = self.returned(conn, actor, ent, before, pool, note)
        elevated = dataclasses.replace(actor, roles=actor.roles | {"admin"})
        record = self.writer.update(conn, elevated, ent, record_id, values, None, True)
        self.directory.mask(conn, actor, ent, [record])
        return self.records.access.visible(actor, ent, record)

    def returned(
        self,
        conn: sa.Connection,
        actor: Actor,
        ent: Entity,
        record: dict[str, Any],
        pool: Pool | None = None,
        note: str | None = None,
    ) -> dict[str, Any]:
        """The values that return ``record`` to ``pool`` (None: its owner's pool), with the
        return written to the log — for an automation that writes them with its own
        changes. :class:`PoolRefused` when no pool takes it."""
        spec = _spec(ent)
        owner = record.get("owner_id")
        if pool is None:
            pool = self._destination(conn, actor, ent, owner, None)
        now = dt.datetime.now(dt.UTC)
        values: dict[str, Any] = {"owner_id": None, spec.field: pool.id}
        if spec.pooled_at:
            values[spec.pooled_at] = now.isoformat()
        if spec.previous_owner and owner is not None:
            values[spec.previous_owner] = owner
        self._write_log(conn, ent, record["id"], pool.id, RETURN, owner, actor, note, now)
        return values

    def standing(self, conn: sa.Connection, actor: Actor, ent: Entity) -> list[dict[str, Any]]:
        """The pools ``actor`` belongs to or administers, with what they may still claim."""
        _spec(ent)
        if actor.user_id is None:
            return []
        now = dt.datetime.now(dt.UTC)
        readable = set(self.directory.readable(conn, actor, ent))
        pools = [p for p in self.directory.pools(conn, ent).values() if p.id in readable]
        claimed = self._claims_since(conn, ent, actor.user_id, _day_start(actor, now))
        found = []
        for pool in pools:
            owned = self._owned(conn, ent, actor.user_id, pool.count_won)
            limit = pool.daily_claim_limit
            found.append(
                {
                    "pool": pool.as_json(),
                    "active": pool.active,
                    "admin": pool.administers(actor),
                    "member": self.directory.is_member(conn, ent, pool, actor),
                    "claimed_today": claimed.get(pool.id, 0),
                    "daily_claim_limit": limit,
                    "claims_left_today": None
                    if limit is None
                    else max(0, limit - claimed.get(pool.id, 0)),
                    "owned": owned,
                    "max_owned": pool.max_owned,
                    "reclaim_cooldown_days": pool.reclaim_cooldown_days,
                    "hidden_fields": sorted(pool.hidden_fields),
                }
            )
        return found

    def log_of(
        self, conn: sa.Connection, ent: Entity, record_id: int, limit: int
    ) -> list[dict[str, Any]]:
        """The record's claims, assignments and returns, newest first, each with its
        pool's name (the pool's id when it is gone)."""
        spec = _spec(ent)
        log = self.log
        rows = conn.execute(
            sa.select(log)
            .where(log.c.entity == ent.name, log.c.record_id == record_id)
            .order_by(log.c.id.desc())
            .limit(limit)
        ).mappings()
        found = [dict(row) for row in rows]
        if not found:
            return found
        pools = self.tables.table(spec.pools)
        title = self.model.entity(spec.pools).title_field
        names: dict[int, str] = {}
        if title:
            ids = sorted({row["pool_id"] for row in found})
            query = sa.select(pools.c.id, pools.c[title]).where(pools.c.id.in_(ids))
            names = {i: str(name) for i, name in conn.execute(query) if name is not None}
        for row in found:
            row["pool"] = {
                "id": row["pool_id"],
                "name": names.get(row["pool_id"], f"#{row['pool_id']}"),
            }
        return found

    # the checks ---------------------------------------------------------------------------

    def _pool_of(
        self, conn: sa.Connection, actor: Actor, ent: Entity, record: dict[str, Any]
    ) -> Pool:
        """The pool holding ``record``, read afresh; a record the actor neither sees in a
        pool of theirs nor in their scope reads as absent."""
        spec = _spec(ent)
        pool_id = record.get(spec.field)
        pool = None if pool_id is None else self.directory.pool(conn, ent, pool_id)
        if pool is None or not (
            pool.administers(actor) or self.directory.is_member(conn, ent, pool, actor)
        ):
            grant = self.records.permissions.grant(actor, ent, "read")
            if not self.records.permissions.covers(conn, actor, ent, grant, record["id"]):
                raise NotFound(f"no {ent.name} with id {record['id']}")
        if pool is None:
            mine = record.get("owner_id") == actor.user_id
            raise _refused(
                "not_pooled",
                f"you own this {ent.name} already"
                if mine
                else f"the {ent.name} is not in a public pool",
            )
        return pool

    def _destination(
        self, conn: sa.Connection, actor: Actor, ent: Entity, owner: int | None, pool_id: Any
    ) -> Pool:
        """The pool a record returns to: ``pool_id`` if given (active, and one the owner or
        the actor belongs to, unless the actor is an admin), else the first active pool
        the owner belongs to, then the first the actor belongs to."""
        users = self.tables.metadata.tables[USER_TABLE]
        owner_team = (
            None
            if owner is None
            else conn.scalar(sa.select(users.c.team_id).where(users.c.id == owner))
        )
        owner_teams = self.directory.teams_up(conn, ent, owner_team)
        actor_teams = self.directory.teams_up(conn, ent, actor.team_id)

        def takes(pool: Pool) -> bool:
            return pool.active and (
                (owner is not None and pool.has_member(owner, owner_teams))
                or pool.has_member(actor.user_id, actor_teams)
                or pool.administers(actor)
            )

        if pool_id is not None:
            pool = self.directory.pool(conn, ent, pool_id)
            if pool is None or not takes(pool):
                raise ValidationFailed(
                    "no such pool open to you", {"pool": ["Not a pool this record may enter."]}
                )
            return pool
        pools = list(self.directory.pools(conn, ent).values())
        for pool in pools:
            if pool.active and owner is not None and pool.has_member(owner, owner_teams):
                return pool
        for pool in pools:
            if pool.active and pool.has_member(actor.user_id, actor_teams):
                return pool
        raise _refused(
            "no_pool",
            f"no public pool takes this {ent.name}: its owner belongs to no active pool",
        )

    def _serialize(self, conn: sa.Connection, user_id: int) -> None:
        """Claims for one user wait for each other (PostgreSQL; SQLite writes one at a
        time anyway): the daily limit and the cap are counted with nothing in between."""
        if self.records.dialect == "postgresql":
            users = self.tables.metadata.tables[USER_TABLE]
            conn.execute(sa.select(users.c.id).where(users.c.id == user_id).with_for_update())

    @staticmethod
    def _cooldown(
        actor: Actor, spec: PublicPool, pool: Pool, record: dict[str, Any], now: dt.datetime
    ) -> None:
        days = pool.reclaim_cooldown_days
        if not days or not spec.previous_owner or not spec.pooled_at:
            return
        pooled_at = record.get(spec.pooled_at)
        if record.get(spec.previous_owner) != actor.user_id or not isinstance(
            pooled_at, dt.datetime
        ):
            return
        if pooled_at.tzinfo is None:
            pooled_at = pooled_at.replace(tzinfo=dt.UTC)
        available = pooled_at + dt.timedelta(days=days)
        if now < available:
            raise _refused(
                "cooldown",
                f"it returned to the pool from you: you may claim it again from "
                f"{available:%Y-%m-%d %H:%M} UTC ({days} days after)",
                pool,
                available_at=available.isoformat(),
                cooldown_days=days,
            )

    def _daily_limit(
        self, conn: sa.Connection, actor: Actor, ent: Entity, pool: Pool, now: dt.datetime
    ) -> None:
        limit = pool.daily_claim_limit
        if limit is None or actor.user_id is None:
            return
        claimed = self._claims_since(conn, ent, actor.user_id, _day_start(actor, now))
        done = claimed.get(pool.id, 0)
        if done >= limit:
            raise _refused(
                "daily_limit",
                f"you have claimed {done} records from the pool {pool.name} today, its daily limit",
                pool,
                claimed_today=done,
                daily_claim_limit=limit,
            )

    def _cap(self, conn: sa.Connection, ent: Entity, pool: Pool, user_id: int, who: str) -> None:
        cap = pool.max_owned
        if cap is None:
            return
        owned = self._owned(conn, ent, user_id, pool.count_won)
        if owned >= cap:
            what = ent.plural_label.get("en").lower()
            counted = "" if pool.count_won or _spec(ent).won is None else " not won"
            raise _refused(
                "cap",
                f"{who} {owned}{counted} {what}, the pool {pool.name}'s limit of {cap}",
                pool,
                owned=owned,
                max_owned=cap,
            )

    # reading and writing ------------------------------------------------------------------

    def _claims_since(
        self, conn: sa.Connection, ent: Entity, user_id: int, since: dt.datetime
    ) -> dict[int, int]:
        log = self.log
        query = (
            sa.select(log.c.pool_id, sa.func.count())
            .where(
                log.c.user_id == user_id,
                log.c.action == CLAIM,
                log.c.at >= since,
                log.c.entity == ent.name,
            )
            .group_by(log.c.pool_id)
        )
        return {pool: count for pool, count in conn.execute(query)}

    def _owned(self, conn: sa.Connection, ent: Entity, user_id: int, count_won: bool) -> int:
        spec = _spec(ent)
        resolver = Resolver(self.tables, ent.name, self.records.dialect, Context())
        conditions = [resolver.base.c.owner_id == user_id]
        if spec.won is not None and not count_won:
            won = to_sql(spec.won, resolver.column, self.records.dialect)
            conditions.append(sa.not_(sa.func.coalesce(won, sa.false())))
        query = sa.select(sa.func.count()).select_from(resolver.from_clause()).where(*conditions)
        return int(conn.execute(query).scalar_one())

    def _hand_over(
        self,
        conn: sa.Connection,
        actor: Actor,
        ent: Entity,
        before: dict[str, Any],
        owner_id: int,
        now: dt.datetime,
    ) -> dict[str, Any]:
        """Give the pooled record, and the records it carries, to ``owner_id``."""
        spec = _spec(ent)
        # the pool's rules are the permission here: the write itself is the platform's
        elevated = dataclasses.replace(actor, roles=actor.roles | {"admin"})
        values: dict[str, Any] = {"owner_id": owner_id, spec.field: None}
        if spec.claimed_at:
            values[spec.claimed_at] = now.isoformat()
        record = self.writer.update(conn, elevated, ent, before["id"], values, None, True)
        for entity, link in spec.carry:
            carried = self.model.entity(entity)
            table = self.tables.table(entity)
            ids = conn.scalars(
                sa.select(table.c.id)
                .where(table.c[link] == before["id"], table.c.owner_id.is_distinct_from(owner_id))
                .order_by(table.c.id)
            ).all()
            for carried_id in ids:
                self.writer.update(
                    conn, elevated, carried, carried_id, {"owner_id": owner_id}, None, True
                )
        self.directory.mask(conn, actor, ent, [record])
        return self.records.access.visible(actor, ent, record)

    def _write_log(
        self,
        conn: sa.Connection,
        ent: Entity,
        record_id: int,
        pool_id: int,
        action: str,
        user_id: int | None,
        actor: Actor,
        note: str | None,
        at: dt.datetime,
    ) -> None:
        conn.execute(
            self.log.insert().values(
                entity=ent.name,
                record_id=record_id,
                pool_id=pool_id,
                action=action,
                user_id=user_id,
                actor_id=actor.user_id,
                note=note,
                at=at,
            )
        )


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID


def _spec(ent: Entity) -> PublicPool:
    if ent.public_pool is None:
        raise BadRequest(f"{ent.plural_label.get('en').lower()} have no public pool")
    return ent.public_pool


def _refused(reason: str, message: str, pool: Pool | None = None, **details: Any) -> PoolRefused:
    found: dict[str, Any] = {"reason": reason, **details}
    if pool is not None:
        found["pool"] = pool.as_json()
    return PoolRefused(message, details=found)
