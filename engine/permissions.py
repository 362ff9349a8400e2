"""Permissions: what an actor may do to which records and which of their fields.

A role grants, per entity (or ``'*'`` for every entity), a *scope* for each action —
``none``, ``own``, ``team``, ``team_and_below`` or ``all`` — and field rules, ``hidden`` or
``readonly``. A user with several roles gets the widest scope any of them grants; a field
is hidden (or read-only) only if every role that grants the action hides it. The built-in
``admin`` role may do everything.

A computed field that reads a hidden one is hidden too — ``margin = price - cost`` would
give ``cost`` away — whether it reads it directly, through another formula, through a
reference (``account.cost``) or as a rollup over (or filtered by) a hidden field of the
related records.

Scopes become SQL (:meth:`Permissions.where`), so lists and reports filter in the
database, never in Python. A child entity (quote lines) follows its parent: reading a line
needs read on the quote, writing one needs update on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from metamodel import Entity, Field

from .context import Actor
from .tables import TEAM_TABLE, USER_TABLE, Tables

SCOPES = ("none", "own", "team", "team_and_below", "all")
_RANK = {scope: rank for rank, scope in enumerate(SCOPES)}


@dataclass(frozen=True, slots=True)
class Grant:
    """The outcome for one actor, entity and action."""

    scope: str
    hidden: frozenset[str] = frozenset()
    readonly: frozenset[str] = frozenset()

    @property
    def allowed(self) -> bool:
        return self.scope != "none"


EVERYTHING = Grant("all")
NOTHING = Grant("none")


class Permissions:
    def __init__(self, tables: Tables) -> None:
        self.tables = tables
        self.model = tables.model
        # Grants depend on the roles only, never on the user: computed once per set of
        # roles, entity and action (the Model, and so this object, is immutable).
        self._grants: dict[tuple[frozenset[str], str, str], Grant] = {}

    def _root(self, ent: Entity, action: str) -> tuple[Entity, str]:
        """The entity and action whose grant decides: a child defers to its parent."""
        while ent.child and ent.parent:
            ent = self.model.entity(ent.parent)
            action = "read" if action == "read" else "update"
        return ent, action

    def grant(self, actor: Actor, entity: Entity, action: str) -> Grant:
        """What ``actor`` may do with ``action`` on ``entity``."""
        if actor.is_admin:
            return EVERYTHING
        key = (actor.roles, entity.name, action)
        found = self._grants.get(key)
        if found is None:
            found = self._grants[key] = self._grant(actor.roles, entity, action)
        return found

    def _grant(self, roles: frozenset[str], entity: Entity, action: str) -> Grant:
        declared = self._declared(roles, entity, action)
        if declared is NOTHING:
            return NOTHING
        hidden = self._derived_hidden(roles, entity, declared.hidden, frozenset())
        return Grant(declared.scope, hidden, declared.readonly | hidden)

    def _declared(self, roles: frozenset[str], entity: Entity, action: str) -> Grant:
        """The grant as the role definitions state it, before computed fields follow."""
        root, root_action = self._root(entity, action)
        scopes: list[str] = []
        hidden: list[set[str]] = []
        readonly: list[set[str]] = []
        for name in sorted(roles):
            role = self.model.roles.get(name)
            if role is None:
                continue
            rule = role.permissions.get(root.name) or role.permissions.get("*")
            if rule is None or rule.scope(root_action) == "none":
                continue
            scopes.append(rule.scope(root_action))
            own = role.permissions.get(entity.name) if entity is not root else rule
            fields = dict(own.fields) if own is not None else {}
            hidden.append({f for f, how in fields.items() if how == "hidden"})
            readonly.append({f for f, how in fields.items() if how in ("hidden", "readonly")})
        if not scopes:
            return NOTHING
        return Grant(
            max(scopes, key=_RANK.__getitem__),
            frozenset(set.intersection(*hidden)),
            frozenset(set.intersection(*readonly)),
        )

    def _derived_hidden(
        self,
        roles: frozenset[str],
        entity: Entity,
        hidden: frozenset[str],
        visiting: frozenset[str],
    ) -> frozenset[str]:
        """``hidden`` and every computed field of ``entity`` that reads one of them.

        ``visiting`` holds the entities whose hidden fields are being worked out further
        up, so formulas that refer back and forth between entities end."""
        visiting = visiting | {entity.name}
        found = set(hidden)
        computed = [f for f in entity.fields.values() if f.type in ("formula", "rollup")]
        changed = True
        while changed:  # formulas may read formulas: repeat until nothing new is hidden
            changed = False
            for field in computed:
                if field.name not in found and self._reads_hidden(
                    roles, entity, field, found, visiting
                ):
                    found.add(field.name)
                    changed = True
        return frozenset(found)

    def _reads_hidden(
        self,
        roles: frozenset[str],
        entity: Entity,
        field: Field,
        hidden: set[str],
        visiting: frozenset[str],
    ) -> bool:
        if field.type == "formula" and field.expression is not None:
            return any(
                self._path_hidden(roles, entity, path, hidden, visiting)
                for path in field.expression.fields
            )
        if field.type == "rollup" and field.of:
            related = self.model.entity(field.of)
            paths: list[tuple[str, ...]] = [(field.rollup_field,)] if field.rollup_field else []
            paths += list(field.filter.fields) if field.filter is not None else []
            theirs = self._hidden_of(roles, related, visiting)
            return any(
                self._path_hidden(roles, related, path, set(theirs), visiting) for path in paths
            )
        return False

    def _path_hidden(
        self,
        roles: frozenset[str],
        entity: Entity,
        path: Sequence[str],
        hidden: set[str] | frozenset[str],
        visiting: frozenset[str],
    ) -> bool:
        """Whether reading ``path`` from ``entity`` (``cost``, ``account.cost``) passes a
        field hidden from ``roles``."""
        here, here_hidden = entity, hidden
        for depth, name in enumerate(path):
            if name in here_hidden:
                return True
            field = here.fields.get(name)
            if field is None or field.to is None or depth == len(path) - 1:
                return False
            here = self.model.entity(field.to)
            here_hidden = self._hidden_of(roles, here, visiting)
        return False

    def _hidden_of(
        self, roles: frozenset[str], entity: Entity, visiting: frozenset[str]
    ) -> frozenset[str]:
        """What ``roles`` may not see of ``entity`` (its declared hidden fields only, while
        that entity is still being worked out further up)."""
        if "admin" in roles:
            return frozenset()
        declared = self._declared(roles, entity, "read")
        if entity.name in visiting:
            return declared.hidden
        return self._derived_hidden(roles, entity, declared.hidden, visiting)

    def sight(self, actor: Actor) -> Callable[[str, Any], Any] | None:
        """What ``actor`` may read of each entity's records, as a condition on a table (or
        an alias) of it — for paths through references; None for an admin."""
        if actor.is_admin:
            return None

        def visible(entity: str, table: Any) -> Any:
            target = self.model.entity(entity)
            return self.where(actor, target, self.grant(actor, target, "read"), table)

        return visible

    def hidden_of(self, actor: Actor) -> Callable[[str], frozenset[str]]:
        """The fields of each entity (by name) hidden from ``actor``."""
        return lambda entity: self.grant(actor, self.model.entity(entity), "read").hidden

    def where(self, actor: Actor, entity: Entity, grant: Grant, table: Any) -> Any:
        """The records of ``table`` (rows of ``entity``) that ``grant``'s scope covers, as a
        SQL condition; None when it covers them all."""
        if grant.scope == "all":
            return None
        if grant.scope == "none":
            return sa.false()
        if entity.child and entity.parent and entity.parent_field:
            parent = self.model.entity(entity.parent)
            parent_table = self.tables.table(parent.name)
            inner = self.where(actor, parent, grant, parent_table)
            ids = sa.select(parent_table.c.id)
            if inner is not None:
                ids = ids.where(inner)
            return table.c[entity.parent_field].in_(ids)
        users = self.tables.metadata.tables[USER_TABLE]
        mine = table.c.owner_id if entity.ownable else table.c.created_by
        own = mine == actor.user_id if actor.user_id is not None else sa.false()
        if grant.scope == "own" or actor.team_id is None:
            return own
        if grant.scope == "team":
            # team_id = :team, which an index serves (IN (SELECT :team) is a filter)
            if entity.ownable:
                return sa.or_(own, table.c.team_id == actor.team_id)
            members = sa.select(users.c.id).where(users.c.team_id == actor.team_id)
            return sa.or_(own, table.c.created_by.in_(members))
        teams = self._team_and_below(actor.team_id)
        if entity.ownable:
            return sa.or_(own, table.c.team_id.in_(teams))
        members = sa.select(users.c.id).where(users.c.team_id.in_(teams))
        return sa.or_(own, table.c.created_by.in_(members))

    def _team_and_below(self, team_id: int) -> Any:
        """The ids of a team and every team under it (a recursive query)."""
        teams = self.tables.metadata.tables[TEAM_TABLE]
        # anonymous: a report joining two scoped entities holds two of these trees, and
        # two CTEs of one name in a statement do not compile
        tree = sa.select(teams.c.id).where(teams.c.id == team_id).cte(recursive=True)
        tree = tree.union_all(sa.select(teams.c.id).where(teams.c.parent_id == tree.c.id))
        return sa.select(tree.c.id)

    def team_reached(self, conn: sa.Connection, actor: Actor, grant: Grant, team_id: int) -> bool:
        """Whether ``grant``'s scope reaches team ``team_id``: the actor's own team for
        ``own`` and ``team``, it and the teams under it for ``team_and_below``."""
        if grant.scope == "all":
            return True
        if grant.scope == "none" or actor.team_id is None:
            return False
        if team_id == actor.team_id:
            return True
        if grant.scope != "team_and_below":
            return False
        return team_id in set(conn.scalars(self._team_and_below(actor.team_id)))

    def covers_values(
        self, actor: Actor, entity: Entity, grant: Grant, record: Mapping[str, Any]
    ) -> bool | None:
        """Whether a record with these values lies within ``grant``'s scope, decided from
        the values alone where they suffice (own, team); None when only the database can
        say (teams below, a child's parent, an unowned record's author's team)."""
        if grant.scope == "all":
            return True
        if grant.scope == "none":
            return False
        if entity.child:
            return None
        mine = record.get("owner_id" if entity.ownable else "created_by")
        if actor.user_id is not None and mine == actor.user_id:
            return True
        if grant.scope == "own" or actor.team_id is None:
            return False
        if entity.ownable and grant.scope == "team":
            return record.get("team_id") == actor.team_id
        return None

    def covers(
        self, conn: sa.Connection, actor: Actor, entity: Entity, grant: Grant, record_id: int
    ) -> bool:
        """Whether one record lies within ``grant``'s scope."""
        table = self.tables.table(entity.name)
        condition = self.where(actor, entity, grant, table)
        if condition is None:
            return True
        query = sa.select(table.c.id).where(table.c.id == record_id, condition)
        return conn.execute(query).first() is not None
