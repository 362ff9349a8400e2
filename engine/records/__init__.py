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
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from metamodel import Entity, Model

from .. import query as queries
from .._compute import Computer
from ..audit import Audit, jsonable
from ..context import Actor
from ..counters import Counters
from ..database import reader
from ..dedupe import DuplicateIndex
from ..errors import BadRequest, NotFound
from ..events import EventBus
from ..permissions import Permissions
from ..pipeline import Guard, write_transaction
from ..pools import Pool, PoolDirectory
from ..tables import Tables, build_tables
from ._access import Access
from ._batch import BatchCreator, Created
from ._common import REQUIRED
from ._merge import Merger
from ._pool import PoolDesk
from ._preview import FieldState, Preview, preview
from ._validate import Validator
from ._write import Writer, autonumber_counter, autonumber_text

T = TypeVar("T")


class Records:
    """Create, read, update, delete and list records of one Model on one database.

    The work is shared by three parts: :class:`Access` (permissions), :class:`Validator`
    (input and whole-record checks) and :class:`Writer` (writes, audit, events).
    """

    def __init__(
        self,
        engine: Engine,
        model: Model,
        *,
        tables: Tables | None = None,
        events: EventBus | None = None,
    ) -> None:
        self.engine = engine
        self.model = model
        self.tables = tables or build_tables(model)
        self.events = events or EventBus()
        self.dialect = engine.dialect.name
        self.audit = Audit(self.tables)
        self.computer = Computer(self.tables, self.dialect)
        self.permissions = Permissions(self.tables)
        self.pools = PoolDirectory(self.tables)
        self.reader: Engine = reader(engine)
        self.access = Access(self.tables, self.permissions, self.pools)
        self.validator = Validator(
            self.tables, self.dialect, self.computer, self.permissions, self.reader.connect
        )
        self.dedupe = DuplicateIndex(self.tables, self.dialect, self.computer)
        self.counters = Counters(self.tables, self.dialect)
        self.writer = Writer(self)
        self.merger = Merger(self)
        self.batch = BatchCreator(self)
        self.pool_desk = PoolDesk(self, self.pools)
        for pools in {e.public_pool.pools for e in self.model if e.public_pool is not None}:
            for action in ("after_create", "after_update", "after_delete"):
                self.events.subscribe(action, self.pools.forget, pools)

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
        confirm_duplicates: Iterable[str] | None = None,
        made_from: tuple[str, int] | None = None,
        guard: Guard | None = None,
    ) -> dict[str, Any]:
        """Create a record from client ``data``; returns it as :meth:`get` would.

        ``trusted`` lets the platform itself (workflows, imports) set read-only fields.
        A duplicate rule that finds the record exists already refuses it with
        :class:`DuplicateFound`; ``confirm_duplicates`` names the rules whose warnings the
        writer accepts (docs/duplicates.md). ``made_from``: ``(entity, id)`` of the record
        this one is made from (a lead converted into an account), which is not its duplicate.
        ``guard``: a check of the caller's that goes to the database with the create's
        first statements and may refuse it (:data:`engine.pipeline.Guard`).
        """
        ent = self.entity(entity)
        grant = self.access.grant(actor, ent, "create")
        if not trusted:
            self.access.guard(actor, ent, data, grant, "create")
        confirmed = self.dedupe.confirmations(ent.name, confirm_duplicates)

        def work(c: sa.Connection) -> dict[str, Any]:
            record = self.writer.create(
                c, actor, ent, data, trusted, alone=conn is None, confirmed=confirmed,
                made_from=made_from, guard=guard,
            )  # fmt: skip
            self.access.stays_in_scope(c, actor, ent, grant, record)
            self.access.gives_to_own_teams(c, actor, ent, grant, record)
            return self.access.visible(actor, ent, record)

        if conn is not None:
            return work(conn)
        with write_transaction(self.engine) as new:  # its BEGIN travels with the first batch
            return work(new)

    def create_many(
        self,
        actor: Actor,
        entity: str,
        rows: Sequence[Mapping[str, Any]],
        *,
        conn: sa.Connection | None = None,
        trusted: bool = False,
    ) -> list[Created]:
        """Create many records of one entity at once — what :meth:`create` would do for
        each, in a few statements for all (imports). For each row: the record as
        :meth:`create` returns it, or the :class:`EngineError` that refused it (a refused
        row leaves the others alone). A row with child rows, or one a duplicate rule finds
        something for, is created the one-record way (see :mod:`._batch`)."""
        ent = self.entity(entity)
        return self._run(
            conn, lambda c: self.batch.create_many(c, actor, ent, rows, trusted=trusted)
        )

    def preview(
        self,
        actor: Actor,
        entity: str,
        data: Mapping[str, Any],
        *,
        base: Mapping[str, Any] | None = None,
    ) -> Preview:
        """A form's live state for ``data`` as typed, over ``base`` (the stored record):
        which fields ``visible_when``, ``required_when`` and ``readonly_when`` show, require
        and lock, and the formulas and child-row rollups it comes to. Writes nothing."""
        self.access.grant(actor, self.entity(entity), "read")
        return preview(self, actor, entity, data, base=base)

    def get(
        self, actor: Actor, entity: str, record_id: int, *, conn: sa.Connection | None = None
    ) -> dict[str, Any]:
        """One record with its formulas and child rows; :class:`NotFound` if absent or out
        of the actor's sight."""
        ent = self.entity(entity)
        grant = self.access.grant(actor, ent, "read")
        # the scope joins the read itself: one statement, and absent reads as out of sight
        table = self.tables.table(ent.name)
        sight = self.permissions.where(actor, ent, grant, table)

        def work(c: sa.Connection) -> dict[str, Any]:
            where = self.pools.widen(c, actor, ent, sight, table)  # and the actor's pools
            record = self.writer.read(c, actor, ent, record_id, children=True, where=where)
            self.pools.mask(c, actor, ent, [record])
            return self.access.visible(actor, ent, record)

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
        confirm_duplicates: Iterable[str] | None = None,
    ) -> dict[str, Any]:
        """Change the fields in ``data``. ``version`` is the version the client read; a
        stale one raises :class:`StaleVersion` (``None`` skips the check: trusted callers).
        Duplicate rules apply to the keys the change gives the record, as on
        :meth:`create`."""
        ent = self.entity(entity)
        if version is None and not trusted:
            raise BadRequest("the record's version is required", {"version": [REQUIRED]})
        confirmed = self.dedupe.confirmations(ent.name, confirm_duplicates)

        def work(c: sa.Connection) -> dict[str, Any]:
            grant = self.access.writable(c, actor, ent, record_id, "update")
            if not trusted:
                self.access.guard(actor, ent, data, grant, "update")
            record = self.writer.update(
                c, actor, ent, record_id, data, version, trusted, alone=conn is None,
                confirmed=confirmed,
            )  # fmt: skip
            self.access.stays_in_scope(c, actor, ent, grant, record)
            if isinstance(data, Mapping) and {"team_id", "owner_id"} & set(data):
                self.access.gives_to_own_teams(c, actor, ent, grant, record)
            return self.access.visible(actor, ent, record)

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
            self.access.writable(c, actor, ent, record_id, "delete")
            self.writer.delete(c, actor, ent, record_id, version, depth=0)

        self._run(conn, work)

    def merge(
        self,
        actor: Actor,
        entity: str,
        survivor_id: int,
        loser_id: int,
        *,
        fields: Mapping[str, Any] | None = None,
        version: int | None,
        loser_version: int | None,
        conn: sa.Connection | None = None,
        confirm_duplicates: Iterable[str] | None = None,
    ) -> dict[str, Any]:
        """Merge ``loser_id`` into ``survivor_id``; returns the survivor as :meth:`get`
        would. ``fields`` chooses, per field, ``"survivor"``, ``"loser"`` or
        ``{"value": …}`` (a field not named keeps the survivor's value, or takes the
        loser's where the survivor has none); every reference to the loser moves to the
        survivor, the loser is archived and deleted, its history handed over.

        The actor must be allowed to update the survivor and delete the loser. ``version``
        and ``loser_version`` are the versions the client read (``None``: no check).

        >>> records.merge(actor, "account", 12, 17, fields={"phone": "loser"},
        ...               version=3, loser_version=1)
        """
        ent = self.entity(entity)
        if ent.child:
            raise BadRequest(
                f"rows of a {ent.parent} are not merged one by one: merge the {ent.parent} "
                "records they belong to"
            )
        if survivor_id == loser_id:
            raise BadRequest(
                "a record cannot be merged into itself", {"loser": ["Same as the survivor."]}
            )
        confirmed = self.dedupe.confirmations(ent.name, confirm_duplicates)

        def work(c: sa.Connection) -> dict[str, Any]:
            grant = self.access.writable(c, actor, ent, survivor_id, "update")
            self.access.writable(c, actor, ent, loser_id, "delete")
            record = self.merger.merge(
                c, actor, ent, survivor_id, loser_id, fields or {}, version=version,
                loser_version=loser_version, grant=grant, confirmed=confirmed,
            )  # fmt: skip
            self.access.stays_in_scope(c, actor, ent, grant, record)
            self.access.gives_to_own_teams(c, actor, ent, grant, record)
            return self.access.visible(actor, ent, record)

        if conn is not None:
            with conn.begin_nested():  # a refusal leaves the caller's transaction as it was
                return work(conn)
        return self._run(None, work)

    def claim(
        self, actor: Actor, entity: str, record_id: int, *, conn: sa.Connection | None = None
    ) -> dict[str, Any]:
        """Take a record waiting in a public pool the actor belongs to, within the pool's
        daily limit, cap and cooldown (:class:`PoolRefused` says which stops it); the
        records it carries (an account's contacts) follow. Returns the record."""
        ent = self.entity(entity)
        return self._run(conn, lambda c: self.pool_desk.claim(c, actor, ent, record_id))

    def assign_from_pool(
        self,
        actor: Actor,
        entity: str,
        record_id: int,
        owner_id: Any,
        *,
        conn: sa.Connection | None = None,
    ) -> dict[str, Any]:
        """A pool admin gives a pooled record to a member of the pool (the cap holds)."""
        ent = self.entity(entity)
        return self._run(conn, lambda c: self.pool_desk.assign(c, actor, ent, record_id, owner_id))

    def return_to_pool(
        self,
        actor: Actor,
        entity: str,
        record_id: int,
        *,
        pool: Any = None,
        note: str | None = None,
        conn: sa.Connection | None = None,
    ) -> dict[str, Any]:
        """Hand a record the actor may update back to ``pool`` (an id; None: the first
        active pool its owner belongs to, then the actor's)."""
        ent = self.entity(entity)
        return self._run(
            conn, lambda c: self.pool_desk.give_back(c, actor, ent, record_id, pool, note)
        )

    def pool_return(
        self,
        actor: Actor,
        entity: str,
        record: Mapping[str, Any],
        *,
        conn: sa.Connection,
        note: str | None = None,
        pool: Pool | None = None,
    ) -> dict[str, Any]:
        """The field values that return ``record`` (its ``id`` and ``owner_id`` at least)
        to ``pool`` (None: the first active pool its owner belongs to), the return written
        to the pool's log in ``conn``: for an automation that writes them with its other
        changes, or a pool's recycle rule."""
        ent = self.entity(entity)
        return self.pool_desk.returned(conn, actor, ent, dict(record), pool, note)

    def pool_log(
        self,
        actor: Actor,
        entity: str,
        record_id: int,
        *,
        limit: int = 50,
        conn: sa.Connection | None = None,
    ) -> list[dict[str, Any]]:
        """The record's claims, assignments and returns (newest first), for whoever may
        read the record: ``action``, ``pool`` ({"id", "name"}), ``user_id`` (the new
        owner, or the owner it left), ``actor_id``, ``note``, ``at``."""
        ent = self.entity(entity)

        def work(c: sa.Connection) -> list[dict[str, Any]]:
            self.access.readable(c, actor, ent, record_id)
            return self.pool_desk.log_of(c, ent, record_id, limit)

        return self._read_only(conn, work)

    def pool_standing(
        self, actor: Actor, entity: str, *, conn: sa.Connection | None = None
    ) -> list[dict[str, Any]]:
        """The pools of ``entity`` the actor belongs to or administers, with today's
        claims, the claims left, the records owned and the cap."""
        ent = self.entity(entity)
        return self._read_only(conn, lambda c: self.pool_desk.standing(c, actor, ent))

    def parse(self, actor: Actor, entity: str, params: Mapping[str, Any]) -> queries.ListQuery:
        """A list query from the API's parameters (:func:`engine.query.parse_params`), whose
        error messages never suggest a field hidden from ``actor``."""
        ent = self.entity(entity)
        hidden = self.permissions.hidden_of(actor)
        return queries.parse_params(self.model, ent.name, params, hidden=hidden)

    def query(
        self, actor: Actor, entity: str, query: Any, *, conn: sa.Connection | None = None
    ) -> Any:
        """A page of the records the actor may read, for a :class:`engine.query.ListQuery`,
        formulas computed and hidden fields left out. Filtering or sorting by a hidden field
        is refused as an unknown field."""
        ent = self.entity(entity)
        grant = self.access.grant(actor, ent, "read")
        query = self.access.within_sight(actor, ent, grant, query)
        table = self.tables.table(ent.name)
        own_scope = self.permissions.where(actor, ent, grant, table)
        # the pool a row waits in decides what it hides: read it even when not asked for
        pool_field = ent.public_pool.field if ent.public_pool and not actor.is_admin else None
        unasked = query.fields is not None and pool_field not in query.fields
        if pool_field is not None and unasked:
            query = dataclasses.replace(query, fields=(*query.fields, pool_field))

        def work(c: sa.Connection) -> Any:
            sight = self.permissions.sight(actor)
            scope = self.pools.widen(c, actor, ent, own_scope, table)  # and the actor's pools
            page = queries.run(c, self.tables, ent.name, query, actor, scope=scope, sight=sight)
            if query.fields is None:
                self.computer.formulas(c, ent, page.rows, actor.context())
            else:
                self._chosen_formulas(c, actor, ent, query.fields, page.rows)
            self.pools.mask(c, actor, ent, page.rows)
            if pool_field is not None and unasked:
                for row in page.rows:
                    row.pop(pool_field, None)
            page.rows = [self.access.visible(actor, ent, row) for row in page.rows]
            return page

        return self._read_only(conn, work)

    def _chosen_formulas(
        self,
        conn: sa.Connection,
        actor: Actor,
        ent: Entity,
        chosen: Sequence[str],
        rows: list[dict[str, Any]],
    ) -> None:
        """With ``fields=``, the formulas asked for, computed from all their inputs (the
        page holds only the fields asked for), exactly as a record read shows them."""
        formulas = [n for n in chosen if n in ent.fields and ent.fields[n].type == "formula"]
        if not formulas or not rows:
            return
        table = self.tables.table(ent.name)
        ids = [row["id"] for row in rows]
        full = [
            dict(r) for r in conn.execute(sa.select(table).where(table.c.id.in_(ids))).mappings()
        ]
        self.computer.formulas(conn, ent, full, actor.context())
        by_id = {row["id"]: row for row in full}
        for row in rows:
            for name in formulas:
                row[name] = by_id[row["id"]].get(name)

    def history(
        self, actor: Actor, entity: str, record_id: int, *, conn: sa.Connection | None = None
    ) -> list[dict[str, Any]]:
        """Every change to a record, oldest first: who, when, version and the diff."""
        ent = self.entity(entity)
        grant = self.access.grant(actor, ent, "read")

        def work(c: sa.Connection) -> list[dict[str, Any]]:
            entries = self.audit.history(c, ent.name, record_id)
            exists = self.access.exists(c, ent, record_id)
            if not exists and (grant.scope != "all" or not entries):
                raise NotFound(f"no {ent.name} with id {record_id}")
            hidden = grant.hidden
            if exists:
                self.access.readable(c, actor, ent, record_id)  # in scope, or in their pool
                hidden = hidden | self._pool_hidden(c, actor, ent, record_id)
            for entry in entries:
                entry["changes"] = {k: v for k, v in entry["changes"].items() if k not in hidden}
            return entries

        return self._read_only(conn, work)

    def _pool_hidden(
        self, conn: sa.Connection, actor: Actor, ent: Entity, record_id: int
    ) -> frozenset[str]:
        """The fields the pool a record waits in hides from ``actor`` (none if not pooled)."""
        if ent.public_pool is None or actor.is_admin:
            return frozenset()
        table = self.tables.table(ent.name)
        field = table.c[ent.public_pool.field]
        pool_id = conn.scalar(sa.select(field).where(table.c.id == record_id))
        return self.pools.hidden(conn, actor, ent, pool_id)

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
            if state is None:
                return None
            for name in self._pool_hidden(c, actor, ent, record_id):
                state.pop(name, None)
            return self.access.visible(actor, ent, state)

        return self._read_only(conn, work)


__all__ = [
    "Created",
    "FieldState",
    "Preview",
    "Records",
    "autonumber_counter",
    "autonumber_text",
    "jsonable",
]
