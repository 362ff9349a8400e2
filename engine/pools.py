"""Public pools (公海): who sees the records an entity keeps in its pools, and what of them.

An ownable entity with a ``public_pool`` (:class:`metamodel.PublicPool`) keeps records
without an owner in pools: records of another entity that say, through the fields the
definition maps to :data:`metamodel.POOL_SETTINGS`, who belongs (members, and every user
of the member teams and the teams under them), who administers the pool, its limits and
the fields it hides. Claiming, assigning and returning records are the record service's
(:mod:`engine.records._pool`); this module answers the questions every read asks:

- a pool's members and admins read its records whatever their role's scope, as long as
  the role lets them read the entity at all (:meth:`PoolDirectory.widen` adds the pools to
  the scope of a list or a read, in the same statement);
- while a record waits in a pool, the fields the pool hides read as empty to everyone but
  the pool's admins (:meth:`PoolDirectory.mask`).

Pools are few and change seldom: each process reads an entity's pools, with the teams'
tree, once and keeps them for :data:`TTL` seconds, and forgets them as soon as it writes a
pool itself (another process sees a change within :data:`TTL`). Claims and assignments
read their pool afresh inside their own transaction (:meth:`PoolDirectory.pool`).

>>> directory.widen(conn, rep, model.entity("account"), owned, table)  # owned OR pool IN (3)
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import sqlalchemy as sa

from metamodel import Entity, PublicPool

from .context import Actor
from .tables import TEAM_TABLE, Tables

#: Seconds a process keeps the pools it read.
TTL = 30.0


@dataclass(frozen=True, slots=True)
class Pool:
    """One pool's settings, as its record states them (an unmapped setting: no limit)."""

    id: int
    name: str
    active: bool = True
    members: frozenset[int] = frozenset()
    member_teams: frozenset[int] = frozenset()
    admins: frozenset[int] = frozenset()
    daily_claim_limit: int | None = None
    reclaim_cooldown_days: int | None = None
    max_owned: int | None = None
    count_won: bool = False
    exempt_won: bool = False
    hidden_fields: frozenset[str] = frozenset()

    def administers(self, actor: Actor) -> bool:
        return actor.is_admin or (actor.user_id is not None and actor.user_id in self.admins)

    def has_member(self, user_id: int | None, teams_up: frozenset[int]) -> bool:
        """Whether the user is a member: named, or in a member team or a team under one
        (``teams_up``: the user's team and every team above it)."""
        return (user_id is not None and user_id in self.members) or bool(
            self.member_teams & teams_up
        )

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name}


@dataclass(frozen=True, slots=True)
class _Snapshot:
    until: float
    pools: Mapping[int, Pool]
    parents: Mapping[int, int | None]  # team → the team above it


def _ids(value: Any) -> frozenset[int]:
    if not isinstance(value, list | tuple):
        return frozenset()
    return frozenset(v for v in value if isinstance(v, int) and not isinstance(v, bool))


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class PoolDirectory:
    """The pools of each entity that has some, kept a while per process."""

    def __init__(self, tables: Tables, *, ttl: float = TTL) -> None:
        self.tables = tables
        self.model = tables.model
        self.ttl = ttl
        self._snapshots: dict[str, _Snapshot] = {}

    def forget(self, *_: Any) -> None:
        """Read the pools afresh next time (a pool or a team changed)."""
        self._snapshots = {}

    def pools(self, conn: sa.Connection, ent: Entity) -> Mapping[int, Pool]:
        return self._snapshot(conn, ent).pools

    def pool(self, conn: sa.Connection, ent: Entity, pool_id: int) -> Pool | None:
        """One pool read now, in ``conn``'s transaction: what a claim checks against."""
        found = self._read(conn, _spec(ent), pool_id)
        return found[0] if found else None

    def teams_up(self, conn: sa.Connection, ent: Entity, team_id: int | None) -> frozenset[int]:
        """``team_id`` and every team above it."""
        parents = self._snapshot(conn, ent).parents
        found: set[int] = set()
        while team_id is not None and team_id not in found:
            found.add(team_id)
            team_id = parents.get(team_id)
        return frozenset(found)

    def teams_below(self, conn: sa.Connection, ent: Entity, teams: Iterable[int]) -> frozenset[int]:
        """``teams`` and every team under them."""
        parents = self._snapshot(conn, ent).parents
        roots = frozenset(teams)
        return frozenset(t for t in parents if self.teams_up(conn, ent, t) & roots)

    def is_member(self, conn: sa.Connection, ent: Entity, pool: Pool, actor: Actor) -> bool:
        return pool.has_member(actor.user_id, self.teams_up(conn, ent, actor.team_id))

    def readable(self, conn: sa.Connection, actor: Actor, ent: Entity) -> tuple[int, ...]:
        """The pools whose records ``actor`` reads beyond their role's scope: the active
        pools they belong to, and every pool they administer."""
        if ent.public_pool is None or actor.user_id is None:
            return ()
        snapshot = self._snapshot(conn, ent)
        if not snapshot.pools:
            return ()
        teams = self.teams_up(conn, ent, actor.team_id)
        return tuple(
            pool.id
            for pool in snapshot.pools.values()
            if (pool.active and pool.has_member(actor.user_id, teams))
            or actor.user_id in pool.admins
        )

    def widen(self, conn: sa.Connection, actor: Actor, ent: Entity, scope: Any, table: Any) -> Any:
        """``scope`` (a role's condition on ``table``; None for all records) and the
        records waiting in the pools ``actor`` belongs to."""
        if scope is None or ent.public_pool is None or actor.is_admin:
            return scope
        ids = self.readable(conn, actor, ent)
        if not ids:
            return scope
        return sa.or_(scope, table.c[ent.public_pool.field].in_(ids))

    def in_sight(self, conn: sa.Connection, actor: Actor, ent: Entity, pool_id: Any) -> bool:
        """Whether a record waiting in ``pool_id`` is one ``actor`` reads through it."""
        return pool_id is not None and pool_id in self.readable(conn, actor, ent)

    def hidden(
        self, conn: sa.Connection, actor: Actor, ent: Entity, pool_id: Any
    ) -> frozenset[str]:
        """The fields a record waiting in ``pool_id`` hides from ``actor``."""
        if pool_id is None or actor.is_admin or ent.public_pool is None:
            return frozenset()
        if "hidden_fields" not in ent.public_pool.settings:
            return frozenset()
        pool = self.pools(conn, ent).get(pool_id)
        if pool is None or pool.administers(actor):
            return frozenset()
        return pool.hidden_fields

    def mask(
        self, conn: sa.Connection, actor: Actor, ent: Entity, rows: Iterable[dict[str, Any]]
    ) -> None:
        """Empty the fields each pooled row's pool hides from ``actor``, in place."""
        spec = ent.public_pool
        if spec is None or actor.is_admin or "hidden_fields" not in spec.settings:
            return
        for row in rows:
            for name in self.hidden(conn, actor, ent, row.get(spec.field)):
                if name in row:
                    row[name] = None

    # reading ----------------------------------------------------------------------------

    def _snapshot(self, conn: sa.Connection, ent: Entity) -> _Snapshot:
        spec = _spec(ent)
        found = self._snapshots.get(ent.name)
        now = time.monotonic()
        if found is None or found.until < now:
            pools = {pool.id: pool for pool in self._read(conn, spec)}
            teams = self.tables.metadata.tables[TEAM_TABLE]
            parents = {
                team: parent
                for team, parent in conn.execute(sa.select(teams.c.id, teams.c.parent_id))
            }
            found = _Snapshot(now + self.ttl, MappingProxyType(pools), MappingProxyType(parents))
            self._snapshots = {**self._snapshots, ent.name: found}
        return found

    def _read(
        self, conn: sa.Connection, spec: PublicPool, pool_id: int | None = None
    ) -> list[Pool]:
        table = self.tables.table(spec.pools)
        title = self.model.entity(spec.pools).title_field
        names = {"id", *spec.settings.values(), *([title] if title else [])}
        query = sa.select(*(table.c[n] for n in sorted(names))).order_by(table.c.id)
        if pool_id is not None:
            query = query.where(table.c.id == pool_id)
        return [self._pool(spec, dict(row), title) for row in conn.execute(query).mappings()]

    @staticmethod
    def _pool(spec: PublicPool, row: Mapping[str, Any], title: str | None) -> Pool:
        def setting(name: str) -> Any:
            field = spec.settings.get(name)
            return None if field is None else row[field]

        active = setting("active")
        hidden = setting("hidden_fields")
        return Pool(
            id=row["id"],
            name=str(row[title]) if title and row[title] is not None else f"#{row['id']}",
            active=active is not False,
            members=_ids(setting("members")),
            member_teams=_ids(setting("member_teams")),
            admins=_ids(setting("admins")),
            daily_claim_limit=_count(setting("daily_claim_limit")),
            reclaim_cooldown_days=_count(setting("reclaim_cooldown_days")),
            max_owned=_count(setting("max_owned")),
            count_won=setting("count_won") is True,
            exempt_won=setting("exempt_won") is True,
            hidden_fields=frozenset(h for h in hidden or () if isinstance(h, str)),
        )


def _spec(ent: Entity) -> PublicPool:
    if ent.public_pool is None:
        raise ValueError(f"{ent.name} has no public pool")  # a caller's mistake
    return ent.public_pool
