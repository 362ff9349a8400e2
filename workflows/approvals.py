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
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from engine import Actor, Records
from engine.errors import Forbidden, NotFound, ValidationFailed
from metamodel import Approval, ApprovalStep, Entity

from ._approval_reads import ApprovalReads
from ._approval_rows import (
    APPROVAL_HOOKS,
    APPROVED,
    CANCELLED,
    CLOSED,
    COMMENT,
    LISTS,
    PENDING,
    RECALLED,
    REJECTED,
    SKIPPED,
    ApprovalEvent,
    _now,
    _today,
    subscribe,
)
from .errors import ApprovalDecided, NoApprover
from .machine import FIRED, Fired

__all__ = ["APPROVAL_HOOKS", "LISTS", "ApprovalEvent", "Approvals", "run_due", "subscribe"]


class Approvals(ApprovalReads):
    """The approvals of one record service's Model, run on its database."""

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
            because = "; ".join(reasons)
            if users:  # some, but fewer than the step's mode needs
                because = f"it needs {needed} approvers and only {len(users)} can" + (
                    f" ({because})" if because else ""
                )
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
        if decision == REJECTED:  # the step rejected; its parallel siblings are cancelled
            s = self.steps
            conn.execute(
                s.update().where(s.c.id.in_(list(touched))).values(status=REJECTED, decided_at=now)
            )
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
            if actor.user_id != row["submitted_by"] and not actor.is_admin:
                raise Forbidden("only the submitter (or an administrator) may recall an approval")
            try:
                _, approval = self._definition(row)
            except NotFound:
                if not actor.is_admin:
                    raise
                # its definition is gone: an administrator closes it, the record stays
                self._close(c, row, RECALLED, _now())
                self._event(c, row, "recalled", None, actor.user_id, None, text, (), _now())
                return self._describe(c, self._row(c, approval_id))
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
        conn.execute(
            s.update()
            .where(s.c.approval_id == row["id"], s.c.status == PENDING)
            .values(status=CANCELLED, decided_at=now)
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
                        t.c.approval_id,
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
                    done["reminders"] += self._remind(conn, task, now)
            if (
                approval.escalate_after is not None
                and task["escalated_at"] is None
                and waited >= approval.escalate_after
            ):
                with self.records.transaction() as conn:
                    done["escalations"] += self._escalate(conn, approval, task, now)
        return done

    def _claim(
        self, conn: sa.Connection, due: Mapping[str, Any], column: str, now: dt.datetime
    ) -> dict[str, Any] | None:
        """Mark the task reminded (or escalated) unless another run did, or a decision
        came first (the approval's row is locked, as a decision locks it): the task's row,
        or None."""
        try:
            self._locked(conn, int(due["approval_id"]), None)
        except (ApprovalDecided, NotFound):
            return None
        t, s = self.tasks, self.steps
        open_steps = sa.select(s.c.id).where(s.c.status == PENDING)
        claimed = conn.execute(
            t.update()
            .where(
                t.c.id == due["id"],
                t.c.status == PENDING,
                t.c[column].is_(None),
                t.c.step_id.in_(open_steps),
            )
            .values({column: now})
        ).rowcount
        if claimed != 1:
            return None
        task_id = int(due["id"])
        return dict(
            conn.execute(
                sa.select(t, s.c.step).join(s, s.c.id == t.c.step_id).where(t.c.id == task_id)
            )
            .mappings()
            .one()
        )

    def _remind(self, conn: sa.Connection, due: Mapping[str, Any], now: dt.datetime) -> int:
        task = self._claim(conn, due, "reminded_at", now)
        if task is None or task["approver_id"] is None:
            return 0
        row = self._row(conn, int(task["approval_id"]))
        people = self._with_delegates(conn, [task["approver_id"]], now.date())
        self._event(
            conn, row, "reminder", task["step"], None, task["approver_id"], None, people, now
        )
        return 1

    def _escalate(
        self, conn: sa.Connection, approval: Approval, due: Mapping[str, Any], now: dt.datetime
    ) -> int:
        task = self._claim(conn, due, "escalated_at", now)
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
    if not fired.workflow.approvals:  # most transitions: nothing to start or cancel
        return None
    return Approvals(fired.machines.records).on_fired(fired)


FIRED.append(_start)
