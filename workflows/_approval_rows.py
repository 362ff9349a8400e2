"""The rows of approvals and what every part of them shares: the tables, the event
history and its subscribers (:data:`APPROVAL_HOOKS`), the definitions behind a row."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa

from engine import Actor, Records
from engine.approval_tables import (
    APPROVAL_EVENT_TABLE,
    APPROVAL_STEP_TABLE,
    APPROVAL_TABLE,
    APPROVAL_TASK_TABLE,
)
from engine.errors import NotFound, StaleVersion
from metamodel import Approval, Entity, UnknownName, Workflow

from ._approvers import Directory
from .errors import ApprovalDecided
from .machine import StateMachines

PENDING, APPROVED, REJECTED, RECALLED, CANCELLED = (
    "pending",
    "approved",
    "rejected",
    "recalled",
    "cancelled",
)
SKIPPED, CLOSED = "skipped", "closed"
COMMENT = "comment"
T = TypeVar("T")
#: What ``GET /approvals?status=`` may ask for.
LISTS = ("pending", "decided", "mine")


@dataclass(frozen=True)
class ApprovalEvent:
    """Something that happened to an approval, as :data:`APPROVAL_HOOKS` see it.

    ``kind`` is one of ``submitted``, ``requested`` (a step waits for ``recipients``),
    ``skipped``, ``approved``, ``rejected``, ``recalled``, ``cancelled`` (a transition moved
    the record on), ``completed`` (the last step approved), ``reminder`` and
    ``escalated``. ``conn`` is the transaction's connection: write through it, and what
    you write is undone with the change if it rolls back."""

    kind: str
    approval_id: int
    entity: str
    record_id: int
    workflow: str
    approval: str
    step: str | None
    actor_id: int | None
    on_behalf_of: int | None
    comment: str | None
    recipients: tuple[int, ...]
    at: dt.datetime
    conn: sa.Connection
    #: the record service the approval runs on (its Model and tables)
    records: Records | None = None


#: Subscribers called with every :class:`ApprovalEvent`, in its transaction.
APPROVAL_HOOKS: list[Callable[[ApprovalEvent], None]] = []


def subscribe(hook: Callable[[ApprovalEvent], None]) -> Callable[[ApprovalEvent], None]:
    """Add ``hook`` to :data:`APPROVAL_HOOKS` (once); usable as a decorator."""
    if hook not in APPROVAL_HOOKS:
        APPROVAL_HOOKS.append(hook)
    return hook


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _today(actor: Actor, now: dt.datetime) -> dt.date:
    return actor.today or now.date()


class ApprovalRows:
    """The approval tables of one record service's database, and their helpers."""

    def __init__(self, records: Records) -> None:
        self.records = records
        self.model = records.model
        self.machines = StateMachines(records)
        self.directory = Directory(records)
        tables = records.tables.metadata.tables
        self.approvals = tables[APPROVAL_TABLE]
        self.steps = tables[APPROVAL_STEP_TABLE]
        self.tasks = tables[APPROVAL_TASK_TABLE]
        self.events = tables[APPROVAL_EVENT_TABLE]

    # the rows -------------------------------------------------------------------------------

    def _in(self, conn: sa.Connection | None, work: Callable[[sa.Connection], T]) -> T:
        if conn is not None:
            return work(conn)
        with self.records.transaction() as new:
            return work(new)

    def _row(self, conn: sa.Connection, approval_id: int) -> dict[str, Any]:
        found = (
            conn.execute(sa.select(self.approvals).where(self.approvals.c.id == approval_id))
            .mappings()
            .first()
        )
        if found is None:
            raise NotFound(f"no approval with id {approval_id}")
        return dict(found)

    def _locked(self, conn: sa.Connection, approval_id: int, version: int | None) -> dict[str, Any]:
        """The approval's row, locked until the transaction ends; a 409 when it is decided
        or not at the ``version`` the client read."""
        row = self._row(conn, approval_id)
        if self.records.dialect == "postgresql":
            # the record first, then the approval: the order a transition fired on the
            # record takes them, so the two never wait for each other
            ent = self.records.model.entities.get(row["entity"])
            if ent is not None:
                self.machines._locked_row(conn, ent, int(row["record_id"]))
            query = sa.select(self.approvals).where(self.approvals.c.id == approval_id)
            row = dict(conn.execute(query.with_for_update()).mappings().one())
        if row["status"] != PENDING:
            raise ApprovalDecided(
                f"this approval is {row['status']} already", details={"status": row["status"]}
            )
        if version is not None and row["version"] != version:
            raise StaleVersion(
                f"the approval changed since you read it (version {row['version']}, you sent "
                f"{version}): reload it and decide again",
                details={"current_version": row["version"]},
            )
        return row

    def _update(self, conn: sa.Connection, row: Mapping[str, Any], **values: Any) -> None:
        a = self.approvals
        conn.execute(
            a.update().where(a.c.id == row["id"]).values(version=a.c.version + 1, **values)
        )

    def _definition(self, row: Mapping[str, Any]) -> tuple[Workflow, Approval]:
        try:
            workflow = self.model.workflow(row["workflow"])
            return workflow, workflow.approval(row["approval"])
        except (KeyError, UnknownName):
            raise NotFound(
                f"approval {row['approval']} of workflow {row['workflow']} is no longer "
                "defined: an administrator can recall this request"
            ) from None

    def _record(
        self, conn: sa.Connection, ent: Entity, record_id: int, actor: Actor
    ) -> dict[str, Any]:
        table = self.records.tables.table(ent.name)
        row = conn.execute(sa.select(table).where(table.c.id == record_id)).mappings().one()
        return self.records.computer.view(conn, ent, dict(row), actor.context())

    def _submitter(self, row: Mapping[str, Any]) -> tuple[int, ...]:
        return (int(row["submitted_by"]),) if row["submitted_by"] is not None else ()

    def _waiting(self, conn: sa.Connection, row: Mapping[str, Any]) -> list[int]:
        t = self.tasks
        return [
            int(u)
            for u in conn.scalars(
                sa.select(t.c.approver_id).where(
                    t.c.approval_id == row["id"], t.c.status == PENDING
                )
            )
            if u is not None
        ]

    def _with_delegates(
        self, conn: sa.Connection, users: Iterable[int], today: dt.date
    ) -> tuple[int, ...]:
        users = list(users)
        stand_ins = self.directory.delegates(conn, users, today)
        return tuple(dict.fromkeys([*users, *(d for u in users for d in stand_ins.get(u, ()))]))

    def _event(
        self,
        conn: sa.Connection,
        row: Mapping[str, Any],
        kind: str,
        step: str | None,
        actor_id: int | None,
        behalf: int | None,
        comment: str | None,
        recipients: Iterable[int],
        at: dt.datetime,
    ) -> None:
        people = tuple(int(r) for r in recipients)
        conn.execute(
            self.events.insert().values(
                approval_id=row["id"],
                kind=kind,
                step=step,
                actor_id=actor_id,
                on_behalf_of=behalf,
                comment=comment,
                recipients=list(people),
                at=at,
            )
        )
        event = ApprovalEvent(
            kind,
            int(row["id"]),
            row["entity"],
            int(row["record_id"]),
            row["workflow"],
            row["approval"],
            step,
            actor_id,
            behalf,
            comment,
            people,
            at,
            conn,
            self.records,
        )
        for hook in list(APPROVAL_HOOKS):
            hook(event)
