"""Import runs and mapping templates in the database (``heddle_import_run``,
``heddle_import_template``): what a run was asked, its file, its progress and its report.

A run's ``done`` is its checkpoint: how many groups of rows (a record with its child
rows) are committed. It is written in the same transaction as the rows of each batch, so
after a crash a resumed run starts exactly where the committed work ends.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from ..context import SYSTEM, Actor
from ..errors import BadRequest, Conflict, Forbidden, NotFound
from ..tables import IMPORT_RUN_TABLE, IMPORT_TEMPLATE_TABLE, USER_TABLE, Tables

STATUSES = ("queued", "running", "done", "failed", "interrupted")


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Store:
    """Runs and templates of one database."""

    def __init__(self, tables: Tables) -> None:
        self.tables = tables
        self.runs = tables.metadata.tables[IMPORT_RUN_TABLE]
        self.templates = tables.metadata.tables[IMPORT_TEMPLATE_TABLE]
        self.users = tables.metadata.tables[USER_TABLE]

    # --- runs --------------------------------------------------------------------------

    def create_run(
        self,
        conn: sa.Connection,
        *,
        kind: str,
        entity: str,
        actor: Actor,
        options: Mapping[str, Any],
        filename: str = "",
        content: bytes | None = None,
        total: int = 0,
    ) -> int:
        stamp = now()
        values = {
            "kind": kind,
            "entity": entity,
            "user_id": actor.user_id,
            "status": "queued",
            "options": {**options, "system": actor.user_id is None and actor.is_admin},
            "filename": filename[:255],
            "content": content,
            "total": total,
            "done": 0,
            "report": {},
            "created_at": stamp,
            "updated_at": stamp,
        }
        return int(conn.execute(self.runs.insert().values(**values).returning(self.runs.c.id))
                   .scalar_one())  # fmt: skip

    def run(
        self, conn: sa.Connection, run_id: int, *, content: bool = False, lock: bool = False
    ) -> dict[str, Any]:
        """A run's row (its file's ``content`` when asked); ``lock``: locked to the end of
        ``conn``'s transaction (the processes of a run add their batches to its report)."""
        columns = [c for c in self.runs.c if content or c.name != "content"]
        query = sa.select(*columns).where(self.runs.c.id == run_id)
        row = conn.execute(query.with_for_update() if lock else query).mappings().first()
        if row is None:
            raise NotFound(f"no import run with id {run_id}")
        return dict(row)

    def update_run(self, conn: sa.Connection, run_id: int, **values: Any) -> None:
        conn.execute(
            self.runs.update().where(self.runs.c.id == run_id).values(**values, updated_at=now())
        )

    def runs_of(self, conn: sa.Connection, actor: Actor, limit: int = 50) -> list[dict[str, Any]]:
        columns = [c for c in self.runs.c if c.name not in ("content", "report")]
        query = sa.select(*columns).order_by(self.runs.c.id.desc()).limit(limit)
        if not actor.is_admin:
            query = query.where(self.runs.c.user_id == actor.user_id)
        return [dict(r) for r in conn.execute(query).mappings()]

    def actor_of(self, conn: sa.Connection, run: Mapping[str, Any]) -> Actor:
        """Who a stored run acts for, with the roles they have now (a resumed run must not
        keep a role taken away since)."""
        if run["user_id"] is None:
            if run["options"].get("system"):
                return SYSTEM
            raise Conflict("the user who started this import no longer exists")
        user = conn.execute(sa.select(self.users).where(self.users.c.id == run["user_id"])).first()
        if user is None or not user.active:
            raise Conflict("the user who started this import is disabled")
        return Actor(
            user_id=user.id,
            team_id=user.team_id,
            roles=frozenset(user.roles or ()),
            locale=user.locale,
            label=user.username,
        )

    # --- templates ---------------------------------------------------------------------

    def templates_of(self, conn: sa.Connection, entity: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(self.templates).order_by(self.templates.c.entity, self.templates.c.name)
        if entity:
            query = query.where(self.templates.c.entity == entity)
        return [dict(r) for r in conn.execute(query).mappings()]

    def template(
        self, conn: sa.Connection, ref: int | str, entity: str | None = None
    ) -> dict[str, Any]:
        """A template by id, or by name (of ``entity``)."""
        query = sa.select(self.templates)
        if isinstance(ref, int):
            query = query.where(self.templates.c.id == ref)
        else:
            query = query.where(self.templates.c.name == ref)
            if entity:
                query = query.where(self.templates.c.entity == entity)
        row = conn.execute(query).mappings().first()
        if row is None:
            raise NotFound(f"no import template {ref!r}")
        return dict(row)

    def save_template(
        self,
        conn: sa.Connection,
        actor: Actor,
        *,
        name: str,
        entity: str,
        mapping: Mapping[str, Any],
        options: Mapping[str, Any],
        template_id: int | None = None,
    ) -> dict[str, Any]:
        problems = _template_problems(name, mapping, options)
        if problems:
            first = next(iter(problems.values()))[0]
            raise BadRequest(f"the template is not valid: {first}", problems)
        other = conn.scalar(
            sa.select(self.templates.c.id).where(
                self.templates.c.entity == entity, self.templates.c.name == name
            )
        )
        if other is not None and other != template_id:
            raise Conflict(f"a template '{name}' of {entity} exists already",
                           {"name": ["Already exists."]})  # fmt: skip
        values = {"name": name, "entity": entity, "mapping": dict(mapping),
                  "options": dict(options), "updated_at": now()}  # fmt: skip
        if template_id is None:
            values.update(user_id=actor.user_id, created_at=values["updated_at"])
            template_id = int(conn.execute(
                self.templates.insert().values(**values).returning(self.templates.c.id)
            ).scalar_one())  # fmt: skip
        else:
            self.owned(conn, actor, template_id)
            conn.execute(
                self.templates.update().where(self.templates.c.id == template_id).values(**values)
            )
        return self.template(conn, template_id)

    def delete_template(self, conn: sa.Connection, actor: Actor, template_id: int) -> None:
        self.owned(conn, actor, template_id)
        conn.execute(self.templates.delete().where(self.templates.c.id == template_id))

    def owned(self, conn: sa.Connection, actor: Actor, template_id: int) -> dict[str, Any]:
        """A template its maker (or an administrator) may change; anyone may use it."""
        found = self.template(conn, template_id)
        if not actor.is_admin and found["user_id"] != actor.user_id:
            raise Forbidden("only the user who saved a template, or an administrator, may "
                            "change or delete it")  # fmt: skip
        return found


def _template_problems(name: Any, mapping: Any, options: Any) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        problems["name"] = ["A name of 1 to 200 characters."]
    if not isinstance(mapping, Mapping) or not all(
        isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in mapping.items()
    ):
        problems["mapping"] = ["An object of column header → field name (or null)."]
    if not isinstance(options, Mapping):
        problems["options"] = ["An object of import options."]
    return problems
