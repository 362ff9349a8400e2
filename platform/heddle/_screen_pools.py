"""The public pool on the screens: the record page's pool panel of an entity with a
``public_pool`` — which pool holds the record and since when, what it hides, and the
buttons the user may use — and the forms those buttons post. The rules are the engine's
(:mod:`engine.records._pool`); a refusal comes back as a message in the user's language.

- ``POST /app/<entity>/<id>/claim`` — claim the pooled record;
- ``POST /app/<entity>/<id>/assign`` — give it to a member (``owner_id``; pool admins);
- ``POST /app/<entity>/<id>/return`` — hand it back to a pool (``pool``, ``note``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from flask import flash, redirect, request, url_for
from flask.typing import ResponseReturnValue

from engine import Actor, EngineError, NotFound, PoolRefused
from engine.pools import Pool
from engine.tables import USER_TABLE
from metamodel import Entity
from ui_renderer import pages as P

from . import i18n
from ._screens import actor, locale, may_update, readable, ui
from .extensions import runtime
from .i18n import gettext as _

#: the most people the assign form offers (a pool of a whole company lists the first)
MAX_ASSIGNEES = 200


def pool_hidden(act: Actor, ent: Entity, row: Mapping[str, Any]) -> frozenset[str]:
    """What the pool holding ``row`` hides from the user (left off the record page)."""
    spec = ent.public_pool
    if spec is None:
        return frozenset()
    records = runtime().records
    with records.reader.connect() as conn:
        return records.pools.hidden(conn, act, ent, row.get(spec.field))


def record_pool(
    act: Actor, ent: Entity, row: Mapping[str, Any], here: str
) -> dict[str, Any] | None:
    """The record page's pool panel (None for an entity without a pool, or a record the
    user can do nothing about)."""
    spec = ent.public_pool
    if spec is None:
        return None
    records = runtime().records
    fmt = i18n.BabelFormatter()
    record_id = int(row["id"])
    with records.reader.connect() as conn:
        pools = records.pools.pools(conn, ent)
        pool_id = row.get(spec.field)
        pool = pools.get(pool_id) if isinstance(pool_id, int) else None
        if pool is not None:
            member = pool.administers(act) or records.pools.is_member(conn, ent, pool, act)
            hidden = records.pools.hidden(conn, act, ent, pool.id)
            panel: dict[str, Any] = {
                "state": "pooled",
                "name": pool.name,
                "active": pool.active,
                "since": fmt.datetime(row.get(spec.pooled_at)) if spec.pooled_at else "",
                "previous_owner": _user_name(conn, row.get(spec.previous_owner or "")),
                "hidden": [P.column_label(ent, n, here) for n in sorted(hidden)],
                "claim": url_for("ui.claim", entity=ent.name, record_id=record_id)
                if member and pool.active
                else "",
                "left": _claims_left(act, ent, pool.id) if member else None,
                "assign": "",
                "members": [],
            }
            if pool.administers(act):
                panel["assign"] = url_for("ui.assign", entity=ent.name, record_id=record_id)
                panel["members"] = _members(conn, ent, pool)
            return panel
        if not may_update(act, ent, record_id):
            return None
        mine = [p for p in pools.values() if p.active and _takes(conn, act, ent, p)]
        return {
            "state": "owned",
            "return": url_for("ui.give_back", entity=ent.name, record_id=record_id),
            "pools": [{"id": p.id, "name": p.name} for p in mine],
        }


def _takes(conn: sa.Connection, act: Actor, ent: Entity, pool: Pool) -> bool:
    return pool.administers(act) or runtime().records.pools.is_member(conn, ent, pool, act)


def _claims_left(act: Actor, ent: Entity, pool_id: int) -> int | None:
    for standing in runtime().records.pool_standing(act, ent.name):
        if standing["pool"]["id"] == pool_id:
            left: int | None = standing["claims_left_today"]
            return left
    return None


def _user_name(conn: sa.Connection, user_id: Any) -> str:
    if not isinstance(user_id, int):
        return ""
    users = runtime().records.tables.metadata.tables[USER_TABLE]
    name = conn.scalar(sa.select(users.c.name).where(users.c.id == user_id))
    return str(name or "")


def _members(conn: sa.Connection, ent: Entity, pool: Pool) -> list[dict[str, Any]]:
    """Who the pool's admin may assign to: its members, the users of its member teams
    and of the teams under them, and its admins — active ones, by name."""
    records = runtime().records
    users = records.tables.metadata.tables[USER_TABLE]
    teams = records.pools.teams_below(conn, ent, pool.member_teams)
    named = pool.members | pool.admins
    conditions = [users.c.id.in_(sorted(named))] if named else []
    if teams:
        conditions.append(users.c.team_id.in_(sorted(teams)))
    if not conditions:
        return []
    query = (
        sa.select(users.c.id, users.c.name, users.c.username)
        .where(users.c.active, sa.or_(*conditions))
        .order_by(users.c.name, users.c.id)
        .limit(MAX_ASSIGNEES)
    )
    return [{"id": r.id, "name": r.name or r.username} for r in conn.execute(query)]


# --- the forms -------------------------------------------------------------------------------


def refusal(exc: EngineError) -> str:
    """A pool's refusal in the user's language."""
    if not isinstance(exc, PoolRefused):
        if exc.fields:
            first = next(iter(exc.fields.values()))
            return i18n.gettext(first[0]) if first else i18n.gettext(exc.message)
        return i18n.gettext(exc.message)
    details = exc.details
    pool = (details.get("pool") or {}).get("name", "")
    reason = details.get("reason")
    fmt = i18n.BabelFormatter()
    if reason == "cooldown":
        return _(
            "It returned to the pool from you: you may claim it again from %(date)s.",
            date=fmt.datetime(details.get("available_at")),
        )
    if reason == "daily_limit":
        return _(
            "You have claimed %(count)s from %(pool)s today, its daily limit.",
            count=details.get("claimed_today"),
            pool=pool,
        )
    if reason == "cap":
        return _(
            "%(owned)s owned already: %(pool)s allows %(cap)s per person.",
            owned=details.get("owned"),
            pool=pool,
            cap=details.get("max_owned"),
        )
    messages = {
        "not_pooled": _("It is no longer in a public pool."),
        "pooled": _("It is in a public pool already."),
        "inactive": _("The pool %(pool)s is closed.", pool=pool),
        "no_pool": _("No public pool takes it: its owner belongs to no open pool."),
    }
    return messages.get(str(reason), i18n.gettext(exc.message))


def _back(ent: Entity, record_id: int) -> ResponseReturnValue:
    return redirect(url_for("ui.record", entity=ent.name, record_id=record_id))


def _title(ent: Entity, record: Mapping[str, Any]) -> str:
    return P.record_title(ent, record, locale())


def _do(
    entity: str, record_id: int, work: Callable[[Actor, Entity], dict[str, Any]], done: str
) -> ResponseReturnValue:
    """Run one pool operation for the user, then back to the record page with its outcome
    (``done`` names the record as ``%(what)s``) or the refusal."""
    act = actor()
    ent = readable(entity, act)
    try:
        record = work(act, ent)
    except NotFound:
        raise
    except EngineError as exc:
        flash(refusal(exc), "warning" if exc.status == 409 else "danger")
        return _back(ent, record_id)
    flash(done % {"what": _title(ent, record)}, "success")
    return _back(ent, record_id)


@ui.post("/app/<entity>/<record_id>/claim")
def claim(entity: str, record_id: int) -> ResponseReturnValue:
    return _do(
        entity,
        record_id,
        lambda act, ent: runtime().records.claim(act, ent.name, record_id),
        _("%(what)s is yours now."),
    )


@ui.post("/app/<entity>/<record_id>/assign")
def assign(entity: str, record_id: int) -> ResponseReturnValue:
    owner = request.form.get("owner_id", "")
    return _do(
        entity,
        record_id,
        lambda act, ent: runtime().records.assign_from_pool(
            act, ent.name, record_id, int(owner) if owner.isdigit() else 0
        ),
        _("%(what)s assigned."),
    )


@ui.post("/app/<entity>/<record_id>/return")
def give_back(entity: str, record_id: int) -> ResponseReturnValue:
    chosen = request.form.get("pool", "")
    note = request.form.get("note", "").strip()[:2000] or None
    return _do(
        entity,
        record_id,
        lambda act, ent: runtime().records.return_to_pool(
            act, ent.name, record_id, pool=int(chosen) if chosen.isdigit() else None, note=note
        ),
        _("%(what)s returned to the public pool."),
    )
