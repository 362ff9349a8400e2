"""Multi-step approvals: a transition with ``approval:`` starts one; approvers decide it.

A record submitted for approval waits in the transition's target state. The approval's
steps run in order — a step marked ``parallel`` together with the one before it — each
skipped when its ``when`` does not hold, each approved when ``mode`` is met (any one of
its approvers, all of them, or N). When the last step approves, the record moves to
``on_approve``; one rejection (with a comment) moves it to ``on_reject``; the submitter
may recall it (``on_recall``, by default the state it was submitted from). Every step
is a row of ``heddle_approval_step``, every approver's seat a row of
``heddle_approval_task`` and everything that happens a row of ``heddle_approval_event``:
the history the record shows.

Decisions lock the approval's row, so of two approvers giving the last approval at once
one settles the record and the other finds it decided (409). Subscribers of
:data:`APPROVAL_HOOKS` get each event inside its transaction, with the users it
concerns — notifications subscribe there.

>>> approvals = Approvals(records)
>>> approvals.approve(manager, 12, comment="fine by me")
>>> approvals.run_due(dt.datetime.now(dt.UTC))   # reminders and escalations now due
"""

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
from engine.errors import Forbidden, NotFound, StaleVersion, ValidationFailed
from metamodel import Approval, ApprovalStep, Entity, UnknownName, Workflow

from ._approvers import Directory
from .errors import ApprovalDecided, NoApprover
from .machine import FIRED, Fired, StateMachines

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


class Approvals:
    """The approvals of one record service's Model, run on its database."""

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

    # starting -------------------------------------------------------------------------------

    def on_fired(self, fired: Fired) -> dict[str, Any] | None:
        """A transition fired: approvals of the record it leaves pending are cancelled,
        and its own approval (if it has one) starts. Answers the record if it moved on."""
        if not fired.workflow.approvals:
            return None
        conn, now = fired.conn, _now()
        a = self.approvals
        open_ = conn.execute(
            sa.select(a).where(
                a.c.entity == fired.entity.name,
                a.c.record_id == fired.record_id,
                a.c.workflow == fired.workflow.name,
                a.c.status == PENDING,
            )
        ).mappings()
        for found in list(open_):
            pending = dict(found)
            self._close(conn, pending, CANCELLED, now)
            self._event(
                conn,
                pending,
                "cancelled",
                None,
                fired.actor.user_id,
                None,
                f"'{fired.transition.name}' moved the record on",
                (),
                now,
            )
        if not fired.transition.approval:
            return None
        approval = fired.workflow.approval(fired.transition.approval)
        approval_id = conn.execute(
            a.insert()
            .values(
                entity=fired.entity.name,
                record_id=fired.record_id,
                workflow=fired.workflow.name,
                approval=approval.name,
                transition=fired.transition.name,
                from_state=fired.from_state,
                status=PENDING,
                stage=-1,
                submitted_by=fired.actor.user_id,
                submitted_at=now,
                version=1,
            )
            .returning(a.c.id)
        ).scalar_one()
        row = self._row(conn, approval_id)
        self._event(conn, row, "submitted", None, fired.actor.user_id, None, fired.comment, (), now)
        return self._advance(conn, fired.actor, row, now)

    def _advance(
        self, conn: sa.Connection, actor: Actor, row: Mapping[str, Any], now: dt.datetime
    ) -> dict[str, Any] | None:
        """Start the next stage with a step that applies; with none left, the approval is
        approved and the record settles. Answers the record when it moved."""
        workflow, approval = self._definition(row)
        ent = self.records.entity(row["entity"])
        stages = approval.stages
        record = self._record(conn, ent, int(row["record_id"]), actor)
        for index in range(int(row["stage"]) + 1, len(stages)):
            started = False
            for step in stages[index]:
                if not self._applies(step, record, actor):
                    self._step_row(conn, row, index, step, SKIPPED, 0, now)
                    self._event(
                        conn,
                        row,
                        "skipped",
                        step.name,
                        None,
                        None,
                        f"'{step.when.source if step.when else ''}' does not hold",
                        (),
                        now,
                    )
                    continue
                self._start_step(conn, row, approval, index, step, ent, record, now)
                started = True
            if started:
                self._update(conn, row, stage=index)
                return None
        self._update(conn, row, stage=len(stages), status=APPROVED, decided_at=now)
        self._event(
            conn, row, "completed", None, actor.user_id, None, None, self._submitter(row), now
        )
        if approval.on_approve is None:
            return None
        return self.machines.settle(
            conn,
            actor,
            ent.name,
            int(row["record_id"]),
            workflow,
            approval.on_approve,
            name=f"{approval.name}:approved",
        )

    def _applies(self, step: ApprovalStep, record: Mapping[str, Any], actor: Actor) -> bool:
        if step.when is None:
            return True
        try:
            return bool(step.when.evaluate(record, actor.context()))
        except (ArithmeticError, TypeError, ValueError):
            return True  # a condition that cannot be judged does not skip anyone's review

    def _start_step(
        self,
        conn: sa.Connection,
        row: Mapping[str, Any],
        approval: Approval,
        stage: int,
        step: ApprovalStep,
        ent: Entity,
        record: Mapping[str, Any],
        now: dt.datetime,
    ) -> None:
        submitter = row["submitted_by"]
        users: list[int] = []
        reasons = []
        for approver in step.approvers:
            found, why = self.directory.resolve(conn, approver, ent, record, submitter)
            users += found
            if not found:
                reasons.append(why)
        users = list(dict.fromkeys(users))
        if not approval.allow_self_approval and submitter in users:
            users.remove(submitter)
            reasons.append("the submitter may not approve their own request")
        needed = len(users) if step.mode == "all" else 1 if step.mode == "any" else int(step.mode)
        if not users or needed > len(users):
            because = "; ".join(reasons) or f"it needs {needed} approvers, {len(users)} can"
            raise NoApprover(
                f"nobody can approve step '{step.name}' of {approval.name}: {because}",
                details={"approval": approval.name, "step": step.name},
            )
        step_id = self._step_row(conn, row, stage, step, PENDING, needed, now)
        for user in users:
            task_id = conn.execute(
                self.tasks.insert()
                .values(
                    approval_id=row["id"],
                    step_id=step_id,
                    seat=0,
                    approver_id=user,
                    status=PENDING,
                    created_at=now,
                )
                .returning(self.tasks.c.id)
            ).scalar_one()
            conn.execute(self.tasks.update().where(self.tasks.c.id == task_id).values(seat=task_id))
        self._event(
            conn,
            row,
            "requested",
            step.name,
            None,
            None,
            None,
            self._with_delegates(conn, users, now.date()),
            now,
        )

    def _step_row(
        self,
        conn: sa.Connection,
        row: Mapping[str, Any],
        stage: int,
        step: ApprovalStep,
        status: str,
        needed: int,
        now: dt.datetime,
    ) -> int:
        decided = now if status != PENDING else None
        return int(
            conn.execute(
                self.steps.insert()
                .values(
                    approval_id=row["id"],
                    stage=stage,
                    step=step.name,
                    status=status,
                    needed=needed,
                    started_at=now,
                    decided_at=decided,
                )
                .returning(self.steps.c.id)
            ).scalar_one()
        )

    # deciding -------------------------------------------------------------------------------

    def approve(
        self,
        actor: Actor,
        approval_id: int,
        *,
        comment: Any = None,
        version: int | None = None,
        conn: sa.Connection | None = None,
    ) -> dict[str, Any]:
        """Approve what waits for ``actor`` (or for those they stand in for) in the
        approval's current steps; answers the approval as :meth:`get` does."""
        return self._in(
            conn, lambda c: self._decide(c, actor, approval_id, APPROVED, comment, version)
        )

    def reject(
        self,
        actor: Actor,
        approval_id: int,
        *,
        comment: Any = None,
        version: int | None = None,
        conn: sa.Connection | None = None,
    ) -> dict[str, Any]:
        """Reject the approval, saying why (``comment`` is required): the record moves to
        the approval's ``on_reject`` state, or back to where it was submitted from."""
        return self._in(
            conn, lambda c: self._decide(c, actor, approval_id, REJECTED, comment, version)
        )

    def _decide(
        self,
        conn: sa.Connection,
        actor: Actor,
        approval_id: int,
        decision: str,
        comment: Any,
        version: int | None,
    ) -> dict[str, Any]:
        row = self._locked(conn, approval_id, version)
        text = _comment(comment, required=decision == REJECTED)
        now = _now()
        if actor.user_id == row["submitted_by"] and not actor.is_admin:
            _, approval = self._definition(row)
            if not approval.allow_self_approval:
                raise Forbidden(
                    f"you submitted this {row['entity']} for approval: {approval.name} does "
                    "not let a submitter approve or reject their own request (recall it instead)"
                )
        mine = self._actionable(conn, actor, row, now)
        if not mine:
            self._why_not(conn, actor, row)
        t = self.tasks
        touched: dict[int, list[Mapping[str, Any]]] = {}
        for task in mine:
            conn.execute(
                t.update()
                .where(t.c.id == task["id"])
                .values(status=decision, decided_at=now, decided_by=actor.user_id, comment=text)
            )
            conn.execute(  # the rest of the seat (an escalation's tasks) is not needed now
                t.update()
                .where(t.c.seat == task["seat"], t.c.id != task["id"], t.c.status == PENDING)
                .values(status=CLOSED, decided_at=now)
            )
            touched.setdefault(int(task["step_id"]), []).append(task)
            behalf = task["approver_id"] if task["approver_id"] != actor.user_id else None
            self._event(
                conn,
                row,
                decision,
                task["step"],
                actor.user_id,
                behalf,
                text,
                self._submitter(row),
                now,
            )
        self._update(conn, row)
        if decision == REJECTED:
            self._finish(conn, actor, row, REJECTED, text, now)
        else:
            self._count(conn, actor, row, touched, now)
        return self._describe(conn, self._row(conn, approval_id))

    def _count(
        self,
        conn: sa.Connection,
        actor: Actor,
        row: Mapping[str, Any],
        touched: Mapping[int, Any],
        now: dt.datetime,
    ) -> None:
        """Close the steps whose approvals now suffice; advance when the stage is done."""
        s, t = self.steps, self.tasks
        for step_id in touched:
            needed = conn.scalar(sa.select(s.c.needed).where(s.c.id == step_id))
            approved = conn.scalar(
                sa.select(sa.func.count(sa.distinct(t.c.seat))).where(
                    t.c.step_id == step_id, t.c.status == APPROVED
                )
            )
            if int(approved or 0) >= int(needed or 0):
                conn.execute(
                    s.update().where(s.c.id == step_id).values(status=APPROVED, decided_at=now)
                )
                conn.execute(
                    t.update()
                    .where(t.c.step_id == step_id, t.c.status == PENDING)
                    .values(status=CLOSED, decided_at=now)
                )
        waiting = conn.scalar(
            sa.select(sa.func.count()).where(
                s.c.approval_id == row["id"], s.c.stage == row["stage"], s.c.status == PENDING
            )
        )
        if not waiting:
            self._advance(conn, actor, self._row(conn, int(row["id"])), now)

    def recall(
        self,
        actor: Actor,
        approval_id: int,
        *,
        comment: Any = None,
        version: int | None = None,
        conn: sa.Connection | None = None,
    ) -> dict[str, Any]:
        """The submitter (or an admin) withdraws a pending approval: the record goes back
        to ``on_recall``, by default the state it was submitted from."""

        def work(c: sa.Connection) -> dict[str, Any]:
            text = _comment(comment, required=False)
            row = self._locked(c, approval_id, version)
            _, approval = self._definition(row)
            if actor.user_id != row["submitted_by"] and not actor.is_admin:
                raise Forbidden("only the submitter (or an administrator) may recall an approval")
            if not approval.recall and not actor.is_admin:
                raise Forbidden(f"{approval.name} cannot be recalled once submitted")
            now = _now()
            waiting = self._waiting(c, row)
            self._update(c, row)
            self._event(
                c,
                row,
                "recalled",
                None,
                actor.user_id,
                None,
                text,
                self._with_delegates(c, waiting, now.date()),
                now,
            )
            self._finish(c, actor, row, RECALLED, text, now)
            return self._describe(c, self._row(c, approval_id))

        return self._in(conn, work)

    def _finish(
        self,
        conn: sa.Connection,
        actor: Actor,
        row: Mapping[str, Any],
        status: str,
        text: str | None,
        now: dt.datetime,
    ) -> None:
        """End the approval rejected or recalled, and move the record back."""
        workflow, approval = self._definition(row)
        self._close(conn, row, status, now)
        to = approval.on_reject if status == REJECTED else approval.on_recall
        outcome = "rejected" if status == REJECTED else "recalled"
        self.machines.settle(
            conn,
            actor,
            row["entity"],
            int(row["record_id"]),
            workflow,
            to or row["from_state"],
            name=f"{approval.name}:{outcome}",
            comment=text,
        )

    def _close(
        self, conn: sa.Connection, row: Mapping[str, Any], status: str, now: dt.datetime
    ) -> None:
        s, t = self.steps, self.tasks
        conn.execute(
            self.approvals.update()
            .where(self.approvals.c.id == row["id"])
            .values(status=status, decided_at=now)
        )
        closing = REJECTED if status == REJECTED else CANCELLED
        conn.execute(
            s.update()
            .where(s.c.approval_id == row["id"], s.c.status == PENDING)
            .values(status=closing, decided_at=now)
        )
        conn.execute(
            t.update()
            .where(t.c.approval_id == row["id"], t.c.status == PENDING)
            .values(status=CANCELLED, decided_at=now)
        )

    def _actionable(
        self, conn: sa.Connection, actor: Actor, row: Mapping[str, Any], now: dt.datetime
    ) -> list[dict[str, Any]]:
        """The pending tasks of the current stage ``actor`` may decide: their own, those of
        people who delegated to them today; an admin with none decides one seat a step."""
        t, s = self.tasks, self.steps
        pending = [
            dict(r)
            for r in conn.execute(
                sa.select(t, s.c.step)
                .join(s, s.c.id == t.c.step_id)
                .where(
                    t.c.approval_id == row["id"],
                    t.c.status == PENDING,
                    s.c.stage == row["stage"],
                    s.c.status == PENDING,
                )
                .order_by(t.c.id)
            ).mappings()
        ]
        if actor.user_id is None:
            return []
        own = [task for task in pending if task["approver_id"] == actor.user_id]
        stand_in = set(self.directory.delegators(conn, actor.user_id, _today(actor, now)))
        mine = own + [task for task in pending if task["approver_id"] in stand_in]
        if not mine and actor.is_admin:
            mine = list({task["step_id"]: task for task in reversed(pending)}.values())
        seats: dict[int, dict[str, Any]] = {}
        for task in mine:
            seats.setdefault(int(task["seat"]), task)
        return list(seats.values())

    def _why_not(self, conn: sa.Connection, actor: Actor, row: Mapping[str, Any]) -> None:
        t = self.tasks
        decided = conn.scalar(
            sa.select(t.c.status)
            .where(
                t.c.approval_id == row["id"],
                t.c.decided_by == actor.user_id,
                t.c.status.in_((APPROVED, REJECTED)),
            )
            .limit(1)
        )
        if decided:
            raise ApprovalDecided(f"you have {decided} this already; the others' turn now")
        raise Forbidden("this approval is not yours to decide: it waits for someone else")

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
        )
        for hook in list(APPROVAL_HOOKS):
            hook(event)

    # reading --------------------------------------------------------------------------------

    def get(self, actor: Actor, approval_id: int) -> dict[str, Any]:
        """One approval with its steps, their approvers and its history; for those
        involved (submitter, approvers, their stand-ins) and those who can see the record."""
        with self.records.reader.connect() as conn:
            row = self._row(conn, approval_id)
            if not self._involved(conn, actor, row):
                ent = self.records.entity(row["entity"])
                try:
                    self.records.access.readable(conn, actor, ent, int(row["record_id"]))
                except (Forbidden, NotFound):
                    raise NotFound(f"no approval with id {approval_id}") from None
            return self._describe(conn, row)

    def for_record(self, actor: Actor, entity: str, record_id: int) -> list[dict[str, Any]]:
        """Every approval of a record the actor can see, newest first, with the history."""
        ent = self.records.entity(entity)
        with self.records.reader.connect() as conn:
            if not self.records.access.exists(conn, ent, record_id):
                raise NotFound(f"no {ent.name} with id {record_id}")
            self.records.access.readable(conn, actor, ent, record_id)
            a = self.approvals
            rows = conn.execute(
                sa.select(a)
                .where(a.c.entity == ent.name, a.c.record_id == record_id)
                .order_by(a.c.id.desc())
            ).mappings()
            return [self._describe(conn, dict(r)) for r in rows]

    def pending_summary(
        self, conn: sa.Connection, entity: str, record_id: int
    ) -> dict[str, Any] | None:
        """The record's pending approval, briefly (for the record's own GET), or None."""
        a = self.approvals
        row = (
            conn.execute(
                sa.select(a).where(
                    a.c.entity == entity, a.c.record_id == record_id, a.c.status == PENDING
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        steps = self._steps(conn, dict(row))
        current = [s for s in steps if s["status"] == PENDING]
        return {
            "id": row["id"],
            "approval": row["approval"],
            "version": row["version"],
            "steps": [s["name"] for s in current],
            "waiting_for": sorted(
                {t["approver_id"] for s in current for t in s["tasks"] if t["status"] == PENDING}
            ),
        }

    def listing(
        self, actor: Actor, status: str = "pending", *, limit: int = 50, before: int | None = None
    ) -> list[dict[str, Any]]:
        """``pending``: what waits for the actor (or for those they stand in for today);
        ``decided``: what they decided; ``mine``: what they submitted. Newest first;
        ``before`` (an approval id) pages on."""
        a, t, s = self.approvals, self.tasks, self.steps
        with self.records.reader.connect() as conn:
            if status == "mine":
                where = a.c.submitted_by == actor.user_id
            elif status == "decided":
                where = a.c.id.in_(
                    sa.select(t.c.approval_id).where(
                        t.c.decided_by == actor.user_id, t.c.status.in_((APPROVED, REJECTED))
                    )
                )
            else:
                for_whom = [
                    actor.user_id,
                    *self.directory.delegators(conn, actor.user_id or 0, _today(actor, _now())),
                ]
                where = sa.and_(
                    a.c.status == PENDING,
                    a.c.id.in_(
                        sa.select(t.c.approval_id)
                        .join(s, s.c.id == t.c.step_id)
                        .where(
                            t.c.status == PENDING,
                            s.c.status == PENDING,
                            t.c.approver_id.in_(for_whom),
                        )
                    ),
                )
            query = sa.select(a).where(where).order_by(a.c.id.desc()).limit(limit)
            if before is not None:
                query = query.where(a.c.id < before)
            rows = [dict(r) for r in conn.execute(query).mappings()]
            found = []
            for row in rows:
                item = self._describe(conn, row, history=False)
                item["record"] = self._title(conn, row)
                found.append(item)
            return found

    def _involved(self, conn: sa.Connection, actor: Actor, row: Mapping[str, Any]) -> bool:
        if actor.user_id is None:
            return False
        if row["submitted_by"] == actor.user_id:
            return True
        t = self.tasks
        people = {
            int(u)
            for u in conn.scalars(sa.select(t.c.approver_id).where(t.c.approval_id == row["id"]))
            if u is not None
        }
        people |= {
            int(u)
            for u in conn.scalars(sa.select(t.c.decided_by).where(t.c.approval_id == row["id"]))
            if u is not None
        }
        today = _today(actor, _now())
        return actor.user_id in people or bool(
            people & set(self.directory.delegators(conn, actor.user_id, today))
        )

    def _title(self, conn: sa.Connection, row: Mapping[str, Any]) -> dict[str, Any]:
        ent = self.model.entities.get(row["entity"])
        summary: dict[str, Any] = {"entity": row["entity"], "id": row["record_id"]}
        if ent is None:
            return summary
        summary["label"] = ent.label.to_json()
        table = self.records.tables.table(ent.name)
        title = ent.title_field
        if title and title in table.c:
            summary["title"] = conn.scalar(
                sa.select(table.c[title]).where(table.c.id == row["record_id"])
            )
        return summary

    def _steps(self, conn: sa.Connection, row: Mapping[str, Any]) -> list[dict[str, Any]]:
        s, t = self.steps, self.tasks
        tasks: dict[int, list[dict[str, Any]]] = {}
        for task in conn.execute(
            sa.select(t).where(t.c.approval_id == row["id"]).order_by(t.c.id)
        ).mappings():
            decided_by = task["decided_by"]
            tasks.setdefault(int(task["step_id"]), []).append(
                {
                    "id": task["id"],
                    "approver_id": task["approver_id"],
                    "status": task["status"],
                    "decided_by": decided_by,
                    "on_behalf_of": task["approver_id"]
                    if decided_by is not None and decided_by != task["approver_id"]
                    else None,
                    "decided_at": task["decided_at"],
                    "comment": task["comment"],
                    "escalated": task["seat"] != task["id"],
                }
            )
        labels: dict[str, Any] = {}
        try:
            _, approval = self._definition(row)
            labels = {step.name: step.label.to_json() for step in approval.steps}
        except NotFound:
            pass
        return [
            {
                "name": step["step"],
                "label": labels.get(step["step"], step["step"]),
                "stage": step["stage"],
                "status": step["status"],
                "needed": step["needed"],
                "approved": len(
                    {t["id"] for t in tasks.get(int(step["id"]), ()) if t["status"] == APPROVED}
                ),
                "started_at": step["started_at"],
                "decided_at": step["decided_at"],
                "tasks": tasks.get(int(step["id"]), []),
            }
            for step in conn.execute(
                sa.select(s).where(s.c.approval_id == row["id"]).order_by(s.c.id)
            ).mappings()
        ]

    def _describe(
        self, conn: sa.Connection, row: Mapping[str, Any], *, history: bool = True
    ) -> dict[str, Any]:
        steps = self._steps(conn, row)
        found = {
            "id": row["id"],
            "entity": row["entity"],
            "record_id": row["record_id"],
            "workflow": row["workflow"],
            "approval": row["approval"],
            "transition": row["transition"],
            "status": row["status"],
            "submitted_by": row["submitted_by"],
            "submitted_at": row["submitted_at"],
            "decided_at": row["decided_at"],
            "version": row["version"],
            "steps": steps,
            "waiting_for": sorted(
                {
                    t["approver_id"]
                    for s in steps
                    if s["status"] == PENDING
                    for t in s["tasks"]
                    if t["status"] == PENDING
                }
            ),
        }
        if history:
            e = self.events
            found["history"] = [
                {
                    "kind": ev["kind"],
                    "step": ev["step"],
                    "actor_id": ev["actor_id"],
                    "on_behalf_of": ev["on_behalf_of"],
                    "comment": ev["comment"],
                    "recipients": list(ev["recipients"] or ()),
                    "at": ev["at"],
                }
                for ev in conn.execute(
                    sa.select(e).where(e.c.approval_id == row["id"]).order_by(e.c.id)
                ).mappings()
            ]
        return found

    # timers ---------------------------------------------------------------------------------

    def run_due(self, now: dt.datetime | None = None) -> dict[str, int]:
        """Send the reminders and make the escalations due at ``now`` (default: now), each
        once: running twice has the effect of running once. Returns how many of each."""
        now = now or _now()
        done = {"reminders": 0, "escalations": 0}
        a, t, s = self.approvals, self.tasks, self.steps
        with self.records.reader.connect() as conn:
            due = [
                dict(r)
                for r in conn.execute(
                    sa.select(
                        t.c.id,
                        t.c.created_at,
                        t.c.reminded_at,
                        t.c.escalated_at,
                        a.c.workflow,
                        a.c.approval,
                    )
                    .join(a, a.c.id == t.c.approval_id)
                    .join(s, s.c.id == t.c.step_id)
                    .where(
                        t.c.status == PENDING,
                        s.c.status == PENDING,
                        a.c.status == PENDING,
                        sa.or_(t.c.reminded_at.is_(None), t.c.escalated_at.is_(None)),
                    )
                    .order_by(t.c.id)
                ).mappings()
            ]
        for task in due:
            try:
                _, approval = self._definition(task)
            except NotFound:
                continue
            waited = (now - task["created_at"]).total_seconds()
            if (
                approval.remind_after is not None
                and task["reminded_at"] is None
                and waited >= approval.remind_after
            ):
                with self.records.transaction() as conn:
                    done["reminders"] += self._remind(conn, int(task["id"]), now)
            if (
                approval.escalate_after is not None
                and task["escalated_at"] is None
                and waited >= approval.escalate_after
            ):
                with self.records.transaction() as conn:
                    done["escalations"] += self._escalate(conn, approval, int(task["id"]), now)
        return done

    def _claim(
        self, conn: sa.Connection, task_id: int, column: str, now: dt.datetime
    ) -> dict[str, Any] | None:
        """Mark the task reminded (or escalated) unless another run did: the task's row,
        or None."""
        t = self.tasks
        claimed = conn.execute(
            t.update()
            .where(t.c.id == task_id, t.c.status == PENDING, t.c[column].is_(None))
            .values({column: now})
        ).rowcount
        if claimed != 1:
            return None
        s = self.steps
        return dict(
            conn.execute(
                sa.select(t, s.c.step).join(s, s.c.id == t.c.step_id).where(t.c.id == task_id)
            )
            .mappings()
            .one()
        )

    def _remind(self, conn: sa.Connection, task_id: int, now: dt.datetime) -> int:
        task = self._claim(conn, task_id, "reminded_at", now)
        if task is None or task["approver_id"] is None:
            return 0
        row = self._row(conn, int(task["approval_id"]))
        people = self._with_delegates(conn, [task["approver_id"]], now.date())
        self._event(
            conn, row, "reminder", task["step"], None, task["approver_id"], None, people, now
        )
        return 1

    def _escalate(
        self, conn: sa.Connection, approval: Approval, task_id: int, now: dt.datetime
    ) -> int:
        task = self._claim(conn, task_id, "escalated_at", now)
        if task is None or approval.escalate_to is None:
            return 0
        row = self._row(conn, int(task["approval_id"]))
        ent = self.records.entity(row["entity"])
        record = self._record(conn, ent, int(row["record_id"]), Actor())
        users, _ = self.directory.resolve(
            conn, approval.escalate_to, ent, record, row["submitted_by"], task["approver_id"]
        )
        t = self.tasks
        seated = set(
            conn.scalars(
                sa.select(t.c.approver_id).where(t.c.seat == task["seat"], t.c.status == PENDING)
            )
        )
        new = [
            u
            for u in users
            if u not in seated and (approval.allow_self_approval or u != row["submitted_by"])
        ]
        if not new:
            return 0  # nobody to escalate to: the task stays with its approver
        for user in new:
            conn.execute(
                t.insert().values(
                    approval_id=row["id"],
                    step_id=task["step_id"],
                    seat=task["seat"],
                    approver_id=user,
                    status=PENDING,
                    created_at=now,
                    escalated_at=now,
                )
            )
        self._update(conn, row)
        self._event(
            conn,
            row,
            "escalated",
            task["step"],
            None,
            task["approver_id"],
            None,
            self._with_delegates(conn, new, now.date()),
            now,
        )
        return 1


def _comment(comment: Any, *, required: bool) -> str | None:
    if comment is not None and not isinstance(comment, str):
        raise ValidationFailed("the comment is not valid", {COMMENT: ["Not a valid string."]})
    text = comment.strip() if isinstance(comment, str) else ""
    if required and not text:
        raise ValidationFailed(
            "a rejection needs a comment saying why",
            {COMMENT: ["A comment is required to reject."]},
        )
    return text or None


def run_due(records: Records, now: dt.datetime | None = None) -> dict[str, int]:
    """The reminders and escalations due at ``now``, for a scheduler or cron to call
    (``heddle approvals run-due``): ``{"reminders": n, "escalations": m}``."""
    return Approvals(records).run_due(now)


def _start(fired: Fired) -> dict[str, Any] | None:
    return Approvals(fired.machines.records).on_fired(fired)


FIRED.append(_start)
