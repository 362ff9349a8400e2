"""Approvals tell people, and keep their clocks: the bridge between approvals and jobs.

- A step that starts waits for its approvers: each gets a notification (in the
  application and, with an address, by email), and again on a reminder or an escalation.
- The submitter hears how it ended: approved, or rejected with the comment.
- The scheduler's minute (:data:`workflows.outbox.TICKS`) writes one keyed job that sends
  the reminders and makes the escalations due (:func:`workflows.approvals.run_due`), so a
  minute checked twice runs them once, and ``heddle approvals run-due`` is only needed
  where no scheduler runs.

Notifications are written in the approval's own transaction: a decision rolled back
tells nobody.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from engine.tables import NOTIFICATION_TABLE, USER_TABLE
from metamodel import Entity

from ._approval_rows import APPROVAL_HOOKS, ApprovalEvent
from .approvals import run_due
from .notifications import title_of
from .outbox import JOBS, TICKS, Job, JobQueue, JobRun, Tick, add

#: What each kind of event says, by recipient language.
MESSAGES: dict[str, dict[str, str]] = {
    "requested": {
        "en": "{entity} “{title}” waits for your approval",
        "zh": "{entity}“{title}”等待您审批",
        "ja": "{entity}「{title}」の承認をお願いします",
    },
    "reminder": {
        "en": "Reminder: {entity} “{title}” still waits for your approval",
        "zh": "提醒：{entity}“{title}”仍在等待您审批",
        "ja": "リマインド：{entity}「{title}」が承認を待っています",
    },
    "escalated": {
        "en": "Escalated to you: {entity} “{title}” waits for approval",
        "zh": "已升级给您：{entity}“{title}”等待审批",
        "ja": "エスカレーション：{entity}「{title}」の承認をお願いします",
    },
    "completed": {
        "en": "{entity} “{title}” was approved",
        "zh": "{entity}“{title}”已审批通过",
        "ja": "{entity}「{title}」が承認されました",
    },
    "rejected": {
        "en": "{entity} “{title}” was rejected",
        "zh": "{entity}“{title}”被驳回",
        "ja": "{entity}「{title}」が却下されました",
    },
}
#: the kinds told to the event's recipients (the approvers); the others to the submitter
TO_APPROVERS = frozenset({"requested", "reminder", "escalated"})


def notice(event: ApprovalEvent) -> None:
    """An :data:`APPROVAL_HOOKS` subscriber: the notifications an event calls for."""
    records = event.records
    if event.kind not in MESSAGES or records is None:
        return
    ent = records.model.entities.get(event.entity)
    if ent is None:
        return
    conn = event.conn
    tables = records.tables.metadata.tables
    if event.kind in TO_APPROVERS:
        people: list[int] = list(event.recipients)
    else:
        approvals = tables["heddle_approval"]
        submitter = conn.scalar(
            sa.select(approvals.c.submitted_by).where(approvals.c.id == event.approval_id)
        )
        people = [int(submitter)] if submitter is not None else []
    if not people:
        return
    users = tables[USER_TABLE]
    found = conn.execute(
        sa.select(users.c.id, users.c.email, users.c.locale).where(
            users.c.id.in_(people), users.c.active.is_(True)
        )
    ).all()
    title = _title(conn, records.tables.table(ent.name), ent, event.record_id)
    notes = tables[NOTIFICATION_TABLE]
    for user in found:
        locale = _locale(user.locale)
        subject = MESSAGES[event.kind][locale].format(entity=ent.label.get(locale), title=title)
        created = conn.execute(
            notes.insert()
            .values(
                user_id=user.id,
                subject=subject,
                body=event.comment or title,
                entity=ent.name,
                record_id=event.record_id,
                source=f"approval:{event.kind}",
                created_at=event.at,
            )
            .returning(notes.c.id)
        ).scalar_one()
        if user.email:
            add(conn, records.tables, "email", {"notification": created})


def _title(conn: sa.Connection, table: sa.Table, ent: Entity, record_id: int) -> str:
    view: dict[str, Any] = {}
    if ent.title_field and ent.title_field in table.c:
        column = table.c[ent.title_field]
        view[ent.title_field] = conn.scalar(sa.select(column).where(table.c.id == record_id))
    return title_of(ent, view, record_id)


def _locale(value: Any) -> str:
    base = str(value or "en").split("-")[0]
    return base if base in ("en", "zh", "ja") else "en"


# the scheduler's minute ---------------------------------------------------------------------


def _approval_timers(run: JobRun, args: Mapping[str, Any]) -> None:
    run_due(run.records, dt.datetime.fromisoformat(str(args["at"])))


def enqueue_timers(queue: JobQueue, now: dt.datetime) -> int:
    """The tick: one job for this minute's reminders and escalations (keyed by minute)."""
    minute = now.replace(second=0, microsecond=0)
    records = queue.records()
    with records.transaction() as conn:
        added = add(
            conn,
            records.tables,
            "approval_timers",
            {"at": minute.isoformat()},
            key=f"approval_timers:{minute.isoformat()}",
        )
    queue.flush()
    return int(added)


JOBS.register(
    Job(
        "approval_timers",
        _approval_timers,
        "Send the approval reminders and make the escalations due.",
        atomic=False,  # run_due opens a transaction per approval it touches
    )
)
TICKS.register(Tick("approvals", enqueue_timers))
APPROVAL_HOOKS.append(notice)
